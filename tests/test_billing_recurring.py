from datetime import date
from unittest.mock import patch

import psycopg2

from odoo import Command
from odoo.exceptions import UserError
from odoo.tests import tagged
from odoo.tools import mute_logger

from .recurring_common import BillingRecurringCommon

RECURRING_LOGGER = "odoo.addons.prepaid_postpaid_billing.models.billing_recurring"


@tagged("post_install", "-at_install")
class TestBillingRecurring(BillingRecurringCommon):
    def test_invoice_sums_usage_per_product_and_price(self):
        schedule = self._schedule(
            line_ids=[
                Command.create(
                    {"product_id": self.plan.id, "quantity": 1, "price_unit": 20.0}
                )
            ]
        )
        self._usage(self.postpaid, self.sms, "2026-10-03 08:00:00", count=30)
        self._usage(
            self.postpaid, self.sms, "2026-10-20 08:00:00", price_unit=0.04, count=10
        )
        self._usage(self.postpaid, self.minutes, "2026-10-31 23:59:59", quantity=12.5)
        # After the period: left for the next invoice.
        self._usage(self.postpaid, self.sms, "2026-11-01 00:00:00", count=7)
        run = self._run()
        invoice = self._invoices(schedule)
        self.assertEqual(len(invoice), 1)
        self.assertEqual(invoice.state, "draft")
        self.assertEqual(invoice.invoice_date, date(2026, 11, 1))
        self.assertEqual(invoice.billing_period_start, date(2026, 10, 1))
        self.assertEqual(invoice.billing_period_end, date(2026, 10, 31))
        lines = {
            (line.product_id, line.price_unit): line
            for line in invoice.invoice_line_ids
        }
        self.assertEqual(lines[(self.sms, 0.05)].quantity, 30)
        self.assertEqual(lines[(self.sms, 0.04)].quantity, 10)
        self.assertEqual(lines[(self.minutes, 0.10)].quantity, 12.5)
        self.assertEqual(lines[(self.plan, 20.0)].quantity, 1)
        self.assertIn("2026-10-01 to 2026-10-31", lines[(self.plan, 20.0)].name)
        self.assertEqual(invoice.amount_untaxed, 1.5 + 0.4 + 1.25 + 20.0)
        self.assertChargesMatchUsageLines(invoice)
        self.assertEqual(run.invoice_count, 1)
        self.assertEqual(run.charge_count, 41)
        self.assertEqual(run.state, "done")
        self.assertEqual(schedule.next_date, date(2026, 12, 1))
        pending = self.env["billing.charge"].search(
            [("partner_id", "=", self.postpaid.id), ("state", "=", "pending")]
        )
        self.assertEqual(len(pending), 7)

    def test_usage_priced_finer_than_prices_bills_exact_total(self):
        schedule = self._schedule()
        self._usage(
            self.postpaid, self.sms, "2026-10-03", price_unit=0.0035, count=1000
        )
        self._run()
        invoice = self._invoices(schedule)
        self.assertEqual(invoice.amount_untaxed, 3.5)
        self.assertChargesMatchUsageLines(invoice)

    def test_running_twice_makes_one_invoice(self):
        schedule = self._schedule()
        self._usage(self.postpaid, self.sms, "2026-10-03", count=5)
        self._run()
        self._run()
        self.assertEqual(len(self._invoices(schedule)), 1)
        self.assertEqual(schedule.next_date, date(2026, 12, 1))

    def test_manual_run_beside_cron_makes_one_invoice(self):
        schedules = self._schedule() | self._schedule(
            self._postpaid_customer("Other One")
        )
        for schedule in schedules:
            self._usage(schedule.partner_id, self.sms, "2026-10-03", count=3)
        with patch("odoo.fields.Date.context_today", return_value=date(2026, 11, 5)):
            self.env["billing.recurring"].with_user(
                self.billing_manager
            ).action_run_now()
        self.env["billing.recurring"]._billing_run(
            trigger="cron", today=date(2026, 11, 5)
        )
        for schedule in schedules:
            self.assertEqual(len(self._invoices(schedule)), 1)
        runs = self.env["billing.run"].search([], order="id")
        self.assertEqual(runs.mapped("trigger")[-1:], ["manual"])

    def test_database_refuses_second_invoice_for_a_period(self):
        schedule = self._schedule()
        self._usage(self.postpaid, self.sms, "2026-10-03")
        self._run()
        invoice = self._invoices(schedule)
        with mute_logger("odoo.sql_db"), self.assertRaises(psycopg2.IntegrityError):
            invoice.copy(
                {
                    "billing_recurring_id": schedule.id,
                    "billing_period_start": invoice.billing_period_start,
                }
            ).flush_recordset()

    def test_catch_up_three_missed_months(self):
        schedule = self._schedule(next_date=date(2026, 9, 1))
        for month, count in ((8, 1), (9, 2), (10, 3)):
            self._usage(self.postpaid, self.sms, f"2026-{month:02d}-10", count=count)
        run = self._run()
        invoices = self._invoices(schedule)
        self.assertEqual(
            invoices.mapped("billing_period_start"),
            [date(2026, 8, 1), date(2026, 9, 1), date(2026, 10, 1)],
        )
        self.assertEqual(
            [sum(inv.invoice_line_ids.mapped("quantity")) for inv in invoices],
            [1, 2, 3],
        )
        for invoice in invoices:
            self.assertChargesMatchUsageLines(invoice)
        self.assertEqual(schedule.next_date, date(2026, 12, 1))
        self.assertEqual(run.invoice_count, 3)

    def test_allowance_consumed_first_and_reset_each_period(self):
        schedule = self._schedule(
            next_date=date(2026, 10, 1),
            allowance_ids=[
                Command.create({"product_id": self.sms.id, "quantity": 100})
            ],
        )
        self._usage(self.postpaid, self.sms, "2026-09-10", count=150)
        self._usage(self.postpaid, self.sms, "2026-10-10", count=80)
        self._run()
        september, october = self._invoices(schedule)
        self.assertEqual(september.amount_untaxed, 2.5, "150 used, 100 included")
        included = september.invoice_line_ids.filtered(lambda line: line.quantity < 0)
        self.assertEqual(included.quantity, -100)
        self.assertEqual(october.amount_untaxed, 0.0, "80 used, 100 included again")
        self.assertChargesMatchUsageLines(september)
        self.assertChargesMatchUsageLines(october)

    def test_failing_customer_does_not_stop_the_others(self):
        good = self._schedule()
        bad_partner = self._postpaid_customer("Broken Customer")
        bad = self._schedule(bad_partner)
        for schedule in good | bad:
            self._usage(schedule.partner_id, self.sms, "2026-10-03")
        original = type(good)._billing_prepare_invoice_vals

        def fail_for_broken(records, period, groups, defaults=None):
            if period["recurring"] == bad:
                raise UserError(self.env._("No payment terms for Broken Customer"))
            return original(records, period, groups, defaults)

        with (
            patch.object(type(good), "_billing_prepare_invoice_vals", fail_for_broken),
            self.assertLogs(RECURRING_LOGGER, level="WARNING") as logs,
        ):
            run = self._run()
        self.assertIn("Broken Customer", logs.output[0])
        self.assertEqual(len(self._invoices(good)), 1)
        self.assertFalse(self._invoices(bad))
        self.assertEqual(run.state, "failed")
        self.assertEqual(run.failure_ids.partner_id, bad_partner)
        self.assertIn("No payment terms", run.failure_ids.error)
        self.assertEqual(bad.next_date, date(2026, 11, 1), "retried on the next run")
        charge = self.env["billing.charge"].search(
            [("partner_id", "=", bad_partner.id)]
        )
        self.assertEqual(charge.state, "pending")

    def test_invoicing_off_skips_and_keeps_charges_pending(self):
        self.postpaid.billing_invoice_enabled = False
        schedule = self._schedule()
        self._usage(self.postpaid, self.sms, "2026-10-03", count=4)
        run = self._run()
        self.assertFalse(self._invoices(schedule))
        self.assertEqual(run.skipped_count, 1)
        self.assertEqual(schedule.next_date, date(2026, 12, 1))
        charges = self.env["billing.charge"].search(
            [("partner_id", "=", self.postpaid.id)]
        )
        self.assertEqual(set(charges.mapped("state")), {"pending"})
        # Switched on again: the pending usage goes on the next invoice.
        self.postpaid.billing_invoice_enabled = True
        self._run(today=date(2026, 12, 2))
        invoice = self._invoices(schedule)
        self.assertEqual(sum(invoice.invoice_line_ids.mapped("quantity")), 4)

    def test_zero_amount_period_skipped(self):
        schedule = self._schedule()
        run = self._run()
        self.assertFalse(self._invoices(schedule))
        self.assertEqual(run.skipped_count, 1)
        self.assertEqual(schedule.next_date, date(2026, 12, 1))

    def test_stopped_schedule_not_invoiced(self):
        schedule = self._schedule()
        self._usage(self.postpaid, self.sms, "2026-10-03")
        schedule.action_stop()
        self._run()
        self.assertFalse(self._invoices(schedule))
        schedule.action_start()
        self._run()
        self.assertEqual(len(self._invoices(schedule)), 1)

    def test_confirm_mode_posts_and_emails(self):
        schedule = self._schedule(generation_mode="confirm", send_email=True)
        self._usage(self.postpaid, self.sms, "2026-10-03", count=2)
        self._run()
        invoice = self._invoices(schedule)
        self.assertEqual(invoice.state, "posted")
        self.assertTrue(invoice.is_move_sent)
        sent = invoice.message_ids.filtered(
            lambda m: m.message_type == "comment" and self.postpaid in m.partner_ids
        )
        self.assertEqual(len(sent), 1, "the invoice was emailed to the customer")
        self.assertTrue(sent.attachment_ids, "with its PDF")

    def test_approve_drafts(self):
        schedule = self._schedule(send_email=False)
        self._usage(self.postpaid, self.sms, "2026-10-03", count=2)
        self._run()
        invoice = self._invoices(schedule)
        manual = self._invoice([(self.service, 1, 10.0)], post=False)
        action = (
            (invoice | manual)
            .with_user(self.billing_user)
            .action_billing_approve_drafts()
        )
        self.assertEqual(invoice.state, "posted")
        self.assertEqual(manual.state, "draft", "only recurring drafts are approved")
        self.assertIn("1 invoices approved", action["params"]["message"])
        self.assertIn("1 skipped", action["params"]["message"])

    def test_recurring_needs_postpaid_customer(self):
        with self.assertRaisesRegex(Exception, "is not billed postpaid"):
            self._schedule(self.customer)

    def test_preferred_day_in_short_months(self):
        schedule = self._schedule(next_date=date(2026, 1, 31), invoice_day=31)
        self.assertEqual(
            schedule._next_invoice_date(date(2026, 1, 31)), date(2026, 2, 28)
        )
        self.assertEqual(
            schedule._next_invoice_date(date(2026, 2, 28)), date(2026, 3, 31)
        )
        schedule.write({"interval_type": "quarter"})
        self.assertEqual(
            schedule._next_invoice_date(date(2026, 1, 31)), date(2026, 4, 30)
        )
        schedule.write({"interval_type": "week", "interval_number": 2})
        self.assertEqual(
            schedule._next_invoice_date(date(2026, 1, 31)), date(2026, 2, 14)
        )

    def test_query_count_does_not_grow_with_customers(self):
        def prepare(count, offset):
            for index in range(count):
                partner = self._postpaid_customer(f"Volume {offset + index}")
                self._schedule(partner)
                self._usage(partner, self.sms, "2026-10-03", count=3)
                self._usage(partner, self.minutes, "2026-10-04", count=2)
            self.env.flush_all()
            self.env.invalidate_all()

        def queries_of_run():
            before = self.env.cr.sql_log_count
            run = self._run(today=date(2026, 11, 5))
            self.env.flush_all()
            return self.env.cr.sql_log_count - before, run

        prepare(2, 0)
        queries_of_run()  # warm the caches
        prepare(4, 100)
        small, small_run = queries_of_run()
        prepare(16, 200)
        large, large_run = queries_of_run()
        self.assertEqual(small_run.invoice_count, 4)
        self.assertEqual(large_run.invoice_count, 16)
        self.assertLessEqual(
            large, small, f"{large} queries for 16 customers, {small} for 4"
        )
        prepare(16, 300)
        with self.assertQueryCount(small):
            self._run(today=date(2026, 11, 5))
