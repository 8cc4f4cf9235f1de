import calendar
import importlib.util
import itertools
from datetime import date, timedelta

from dateutil.relativedelta import relativedelta

from odoo import SUPERUSER_ID, Command, api
from odoo.exceptions import UserError
from odoo.tests import new_test_user, tagged
from odoo.tools.misc import file_path

from .recurring_common import BillingRecurringCommon

CYCLES = [
    ("week", 1),
    ("week", 2),
    ("month", 1),
    ("month", 2),
    ("quarter", 1),
    ("year", 1),
]
MONTHS = {"month": 1, "quarter": 3, "year": 12}
# Anchors whose periods cross short Februaries, of a common and of a leap year.
ANCHORS = [date(2026, 1, 1), date(2027, 11, 1)]
MAX_MISSED = 13


def grid_date(kind, number, day, anchor, k):
    """The ``k``-th invoice date from ``anchor`` (negative: before it) of a cycle
    of ``number`` ``kind`` on the preferred ``day``, computed independently of
    the addon: the day clamped to the end of short months, never drifting."""
    if kind == "week":
        return anchor + timedelta(weeks=number * k)
    month = anchor + relativedelta(months=MONTHS[kind] * number * k)
    last = calendar.monthrange(month.year, month.month)[1]
    return month.replace(day=min(day, last))


@tagged("post_install", "-at_install")
class TestBillingRecurringPeriods(BillingRecurringCommon):
    """Periods of a recurring invoice tile exactly, however many are caught up."""

    def _check_tiling(self, periods, expected_dates, first_start, label):
        """Problems of ``periods`` (one run's or several runs' in a row) against
        the invoice dates ``expected_dates`` and the start of the first."""
        problems = []
        dates = [period["invoice_date"] for period in periods]
        if dates != expected_dates:
            problems.append(f"{label}: invoice dates {dates} != {expected_dates}")
            return problems
        if periods[0]["start"] != first_start:
            problems.append(
                f"{label}: first period starts {periods[0]['start']}, not {first_start}"
            )
        for period in periods:
            if period["end"] != period["invoice_date"] - timedelta(days=1):
                problems.append(f"{label}: period {period} does not end the day before")
            if period["start"] > period["end"]:
                problems.append(f"{label}: period {period} is empty")
        for previous, following in itertools.pairwise(periods):
            if following["start"] != previous["end"] + timedelta(days=1):
                problems.append(
                    f"{label}: period from {following['start']} does not follow the "
                    f"one ending {previous['end']}"
                )
        return problems

    def test_catch_up_periods_tile_for_every_day_and_cycle(self):
        """Days 1-31 x every cycle x 1 to 13 missed periods, caught up in one run
        or in two: each period starts the day after the previous one ended."""
        schedule = self._schedule().with_context(tracking_disable=True)
        problems = []
        for anchor in ANCHORS:
            for day in range(1, 32):
                for kind, number in CYCLES:
                    first = grid_date(kind, number, day, anchor, 0)
                    expected = [
                        grid_date(kind, number, day, first, k)
                        for k in range(MAX_MISSED + 1)
                    ]
                    previous = grid_date(kind, number, day, first, -1)
                    vals = {
                        "interval_type": kind,
                        "interval_number": number,
                        "invoice_day": day,
                        "next_date": first,
                        "period_start": False,
                    }
                    schedule.write(vals)
                    for missed in range(1, MAX_MISSED + 1):
                        label = f"day {day}, every {number} {kind}, {missed} missed"
                        periods, next_dates = schedule._billing_due_periods(
                            expected[missed - 1]
                        )
                        problems += self._check_tiling(
                            periods, expected[:missed], previous, label
                        )
                        if next_dates[schedule.id] != expected[missed]:
                            problems.append(
                                f"{label}: next date {next_dates[schedule.id]}"
                            )
                    # The same periods caught up by two runs, as the run leaves
                    # the schedule after the first.
                    for split in (1, 5, 12):
                        label = f"day {day}, every {number} {kind}, split at {split}"
                        schedule.write(vals)
                        periods, next_dates = schedule._billing_due_periods(
                            expected[split - 1]
                        )
                        schedule.write(
                            {
                                "next_date": next_dates[schedule.id],
                                "period_start": periods[-1]["invoice_date"],
                            }
                        )
                        more, _next = schedule._billing_due_periods(
                            expected[MAX_MISSED - 1]
                        )
                        problems += self._check_tiling(
                            periods + more, expected[:MAX_MISSED], previous, label
                        )
        if problems:
            self.fail(f"{len(problems)} problems:\n" + "\n".join(problems[:20]))

    def test_catch_up_preferred_day_31_bills_each_charge_once(self):
        """Five months missed with a preferred day of 31: five invoices, each
        charge on the invoice of the period of its date, the next date moved."""
        schedule = self._schedule(next_date=date(2026, 1, 31), invoice_day=31)
        # The days where periods computed one cycle back from a clamped date
        # overlapped (January 28-30, February 28), and both ends of each period.
        days = [
            "2025-12-31",
            "2026-01-28",
            "2026-01-29",
            "2026-01-30",
            "2026-01-31",
            "2026-02-27",
            "2026-02-28",
            "2026-03-30",
            "2026-03-31",
            "2026-04-29",
            "2026-04-30",
            "2026-05-30",
        ]
        for day in days:
            self._usage(self.postpaid, self.sms, f"{day} 12:00:00")
        self._usage(self.postpaid, self.sms, "2026-05-31 00:00:00")  # next period
        run = self._run(today=date(2026, 5, 31))
        self.assertEqual(run.state, "done", run.failure_ids.mapped("error"))
        invoices = self._invoices(schedule)
        self.assertEqual(
            [(inv.billing_period_start, inv.billing_period_end) for inv in invoices],
            [
                (date(2025, 12, 31), date(2026, 1, 30)),
                (date(2026, 1, 31), date(2026, 2, 27)),
                (date(2026, 2, 28), date(2026, 3, 30)),
                (date(2026, 3, 31), date(2026, 4, 29)),
                (date(2026, 4, 30), date(2026, 5, 30)),
            ],
        )
        self.assertEqual(
            [sum(inv.invoice_line_ids.mapped("quantity")) for inv in invoices],
            [4, 2, 2, 2, 2],
        )
        for invoice in invoices:
            self.assertChargesMatchUsageLines(invoice)
            for charge in invoice.invoice_line_ids.billing_charge_ids:
                self.assertLessEqual(
                    charge.date.date(), invoice.billing_period_end, charge.name
                )
        self.assertEqual(run.invoice_count, 5)
        self.assertEqual(run.charge_count, 12)
        self.assertEqual(schedule.next_date, date(2026, 6, 30))
        self.assertEqual(schedule.period_start, date(2026, 5, 31))
        # The next run starts where this one ended.
        self._run(today=date(2026, 6, 30))
        june = self._invoices(schedule)[-1:]
        self.assertEqual(june.billing_period_start, date(2026, 5, 31))
        self.assertEqual(june.billing_period_end, date(2026, 6, 29))
        self.assertChargesMatchUsageLines(june)
        pending = self.env["billing.charge"].search(
            [("partner_id", "=", self.postpaid.id), ("state", "!=", "invoiced")]
        )
        self.assertFalse(pending)

    def test_period_after_a_date_off_the_preferred_day_starts_on_it(self):
        """A first invoice on the 15th with a preferred day of 31: the next
        period, invoiced by another run, starts on the 15th."""
        schedule = self._schedule(next_date=date(2026, 1, 15), invoice_day=31)
        self._usage(self.postpaid, self.sms, "2026-01-10 12:00:00")
        self._usage(self.postpaid, self.sms, "2026-01-20 12:00:00")
        self._run(today=date(2026, 1, 15))
        self._run(today=date(2026, 2, 28))
        january, february = self._invoices(schedule)
        self.assertEqual(january.billing_period_start, date(2025, 12, 15))
        self.assertEqual(january.billing_period_end, date(2026, 1, 14))
        self.assertEqual(february.billing_period_start, date(2026, 1, 15))
        self.assertEqual(february.billing_period_end, date(2026, 2, 27))
        self.assertEqual(schedule.next_date, date(2026, 3, 31))


@tagged("post_install", "-at_install")
class TestBillingRecurringInvoiceUndone(BillingRecurringCommon):
    """The usage of a deleted or cancelled invoice goes back to pending and is
    billed again, once; a credit note says what it credits."""

    def _cancelled_october_invoice(self):
        """A confirmed recurring invoice of 3 usage records of October, then
        cancelled: its schedule and it."""
        schedule = self._schedule(generation_mode="confirm")
        self._usage(self.postpaid, self.sms, "2026-10-03", count=3)
        self._run()
        invoice = self._invoices(schedule)
        invoice.button_cancel()
        return schedule, invoice

    def _charges(self, partner=None):
        return self.env["billing.charge"].search(
            [("partner_id", "=", (partner or self.postpaid).id)]
        )

    def test_deleted_draft_invoice_charges_billed_on_next_invoice(self):
        schedule = self._schedule()
        self._usage(self.postpaid, self.sms, "2026-10-03", count=3)
        self._run()
        self._invoices(schedule).unlink()
        charges = self._charges()
        self.assertEqual(set(charges.mapped("state")), {"pending"})
        self.assertFalse(charges.invoice_line_id)
        self.assertEqual(schedule.next_date, date(2026, 12, 1))
        self._usage(self.postpaid, self.sms, "2026-11-10", count=2)
        run = self._run(today=date(2026, 12, 2))
        december = self._invoices(schedule)
        self.assertEqual(len(december), 1)
        self.assertEqual(december.billing_period_start, date(2026, 11, 1))
        self.assertEqual(sum(december.invoice_line_ids.mapped("quantity")), 5)
        self.assertChargesMatchUsageLines(december)
        self.assertEqual(run.charge_count, 5)
        self.assertEqual(self._charges().invoice_line_id.move_id, december)

    def test_deleted_invoice_charges_billed_by_create_invoice(self):
        schedule = self._schedule()
        self._usage(self.postpaid, self.sms, "2026-10-03", count=3)
        self._run()
        self._invoices(schedule).unlink()
        wizard = self._postpaid_wizard()
        self.assertEqual(wizard.charge_count, 3)
        invoice = self.env["account.move"].browse(
            wizard.action_create_invoice()["res_id"]
        )
        self.assertChargesMatchUsageLines(invoice)
        self.assertEqual(self._charges().invoice_line_id.move_id, invoice)

    def test_deleted_usage_line_of_draft_puts_its_charges_back(self):
        schedule = self._schedule()
        self._usage(self.postpaid, self.sms, "2026-10-03", count=2)
        self._usage(self.postpaid, self.minutes, "2026-10-04")
        self._run()
        invoice = self._invoices(schedule)
        sms_line = invoice.invoice_line_ids.filtered(
            lambda line: line.product_id == self.sms
        )
        invoice.write({"invoice_line_ids": [Command.delete(sms_line.id)]})
        charges = self._charges()
        sms = charges.filtered(lambda charge: charge.product_id == self.sms)
        self.assertEqual(set(sms.mapped("state")), {"pending"})
        self.assertFalse(sms.invoice_line_id)
        self.assertEqual((charges - sms).state, "invoiced")
        self.assertChargesMatchUsageLines(invoice)

    def test_cancelled_invoice_charges_billed_on_next_invoice(self):
        schedule = self._schedule(generation_mode="confirm")
        self._usage(self.postpaid, self.sms, "2026-10-03", count=3)
        self._run()
        invoice = self._invoices(schedule)
        self.assertEqual(invoice.state, "posted")
        invoice.button_cancel()
        charges = self._charges()
        self.assertEqual(set(charges.mapped("state")), {"pending"})
        self.assertFalse(charges.invoice_line_id)
        self.assertEqual(invoice.billing_charge_count, 0)
        self.assertEqual(charges.cancelled_line_id.move_id, invoice)
        self.assertIn(
            "3 usage records billed by this invoice are pending again",
            invoice.message_ids[:1].body,
        )
        self._usage(self.postpaid, self.sms, "2026-11-10", count=2)
        self._run(today=date(2026, 12, 2))
        december = self._invoices(schedule) - invoice
        self.assertEqual(sum(december.invoice_line_ids.mapped("quantity")), 5)
        self.assertChargesMatchUsageLines(december)
        self.assertEqual(self._charges().invoice_line_id.move_id, december)

    def test_cancelled_invoice_reset_after_next_invoice_deleted(self):
        """Billed again on the next invoice, which was deleted: the usage is
        pending again, and the first invoice reset to draft bills it."""
        schedule, invoice = self._cancelled_october_invoice()
        schedule.generation_mode = "draft"
        self._run(today=date(2026, 12, 2))
        december = self._invoices(schedule) - invoice
        self.assertEqual(self._charges().invoice_line_id.move_id, december)
        december.unlink()
        invoice.button_draft()
        self.assertEqual(set(self._charges().mapped("state")), {"invoiced"})
        self.assertEqual(self._charges().invoice_line_id.move_id, invoice)
        self.assertChargesMatchUsageLines(invoice)

    def test_cancelled_invoice_reset_refused_once_another_took_its_usage(self):
        """Billed again on the next invoice, cancelled too: resetting the first
        invoice to draft is refused, as resetting the second one would bill the
        usage a second time."""
        schedule, invoice = self._cancelled_october_invoice()
        self._run(today=date(2026, 12, 2))
        december = self._invoices(schedule) - invoice
        december.button_cancel()
        with self.assertRefusedWritingNothing(UserError, "cannot be reset to draft"):
            invoice.button_draft()
        december.button_draft()
        self.assertEqual(self._charges().invoice_line_id.move_id, december)
        self.assertChargesMatchUsageLines(december)

    def test_accountant_without_billing_rights_cancels_a_usage_invoice(self):
        """Cancelling is an accountant's work: one without any Billing role
        cancels the invoice and resets it to draft, its usage follows."""
        accountant = new_test_user(
            self.env,
            login="cancel_accountant",
            groups="account.group_account_invoice",
            company_id=self.company.id,
            company_ids=[Command.set(self.company.ids)],
        )
        schedule = self._schedule(generation_mode="confirm")
        self._usage(self.postpaid, self.sms, "2026-10-03", count=3)
        self._run()
        invoice = self._invoices(schedule).with_user(accountant)
        invoice.button_cancel()
        self.assertEqual(set(self._charges().mapped("state")), {"pending"})
        invoice.button_draft()
        self.assertEqual(set(self._charges().mapped("state")), {"invoiced"})
        self.assertEqual(self._charges().invoice_line_id.move_id, invoice)
        invoice.unlink()
        self.assertEqual(set(self._charges().mapped("state")), {"pending"})
        self.assertFalse(self._charges().invoice_line_id)

    def test_cancelled_invoice_reset_to_draft_bills_its_charges_again(self):
        _recurring, invoice = self._cancelled_october_invoice()
        invoice.button_draft()
        self.assertEqual(invoice.state, "draft")
        charges = self._charges()
        self.assertEqual(set(charges.mapped("state")), {"invoiced"})
        self.assertEqual(charges.invoice_line_id.move_id, invoice)
        self.assertFalse(charges.cancelled_line_id)
        self.assertChargesMatchUsageLines(invoice)
        # Not billed a second time by the next invoice.
        self._usage(self.postpaid, self.sms, "2026-11-10", count=2)
        run = self._run(today=date(2026, 12, 2))
        self.assertEqual(run.charge_count, 2)
        october = self._charges().filtered(lambda charge: charge.date.month == 10)
        self.assertEqual(october, charges)
        self.assertEqual(october.invoice_line_id.move_id, invoice)

    def test_cancelled_invoice_reset_refused_once_its_charges_billed_again(self):
        schedule, invoice = self._cancelled_october_invoice()
        self._run(today=date(2026, 12, 2))
        december = self._invoices(schedule) - invoice
        self.assertChargesMatchUsageLines(december)
        with self.assertRefusedWritingNothing(
            UserError, "cannot be reset to draft"
        ) as error:
            invoice.button_draft()
        self.assertIn(december.name, str(error.exception))
        self.assertEqual(invoice.state, "cancel")
        self.assertEqual(self._charges().invoice_line_id.move_id, december)

    def test_credit_note_of_usage_invoice_names_what_it_credits(self):
        schedule = self._schedule(
            generation_mode="confirm",
            line_ids=[
                Command.create(
                    {"product_id": self.plan.id, "quantity": 1, "price_unit": 20.0}
                )
            ],
        )
        self._usage(self.postpaid, self.sms, "2026-10-03", count=3)
        self._run()
        invoice = self._invoices(schedule)
        manual = self._invoice([(self.service, 1, 10.0)], partner=self.postpaid)
        for move in invoice | manual:
            move.invalidate_recordset()
        reversal = (
            self.env["account.move.reversal"]
            .with_context(active_model="account.move", active_ids=invoice.ids)
            .create({"reason": "Disputed", "journal_id": invoice.journal_id.id})
        )
        credit = self.env["account.move"].browse(reversal.refund_moves()["res_id"])
        self.assertEqual(credit.move_type, "out_refund")
        self.assertCountEqual(
            credit.invoice_line_ids.mapped("name"),
            [
                f"Credit of {invoice.name}: {name}"
                for name in (invoice.invoice_line_ids.mapped("name"))
            ],
        )
        self.assertIn("2026-10-01 to 2026-10-31", credit.invoice_line_ids[0].name)
        # The usage was billed: its charges stay on the invoice.
        self.assertEqual(self._charges().invoice_line_id.move_id, invoice)
        self.assertEqual(set(self._charges().mapped("state")), {"invoiced"})
        manual_credit = manual._reverse_moves()
        self.assertEqual(
            manual_credit.invoice_line_ids.mapped("name"),
            manual.invoice_line_ids.mapped("name"),
        )

    def test_migration_puts_usage_of_undone_invoices_back_to_pending(self):
        """Databases where deleting or cancelling an invoice left its charges
        invoiced by nothing: the upgrade puts them back to pending."""
        schedule = self._schedule(generation_mode="confirm")
        other = self._postpaid_customer("Other One")
        other_schedule = self._schedule(other, generation_mode="confirm")
        self._usage(self.postpaid, self.sms, "2026-10-03", count=2)
        self._usage(other, self.sms, "2026-10-03", count=3)
        self._run()
        invoice, other_invoice = (
            self._invoices(schedule),
            self._invoices(other_schedule),
        )
        self.env.flush_all()
        # As the previous version left them: one invoice's lines gone, the other
        # invoice cancelled with its charges still on it.
        self.env.cr.execute(
            "UPDATE billing_charge SET invoice_line_id = NULL WHERE partner_id = %s",
            [self.postpaid.id],
        )
        self.env.cr.execute(
            "UPDATE account_move SET state = 'cancel' WHERE id = %s",
            [other_invoice.id],
        )
        self.env.invalidate_all()
        path = file_path(
            "prepaid_postpaid_billing/migrations/18.0.1.3.0/post-migrate.py"
        )
        spec = importlib.util.spec_from_file_location("billing_migration", path)
        migration = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(migration)
        migration.migrate(self.env.cr, "18.0.1.2.0")
        self.env.invalidate_all()
        charges = self._charges()
        self.assertEqual(set(charges.mapped("state")), {"pending"})
        self.assertFalse(charges.cancelled_line_id)
        other_charges = self._charges(other)
        self.assertEqual(set(other_charges.mapped("state")), {"pending"})
        self.assertFalse(other_charges.invoice_line_id)
        self.assertEqual(other_charges.cancelled_line_id.move_id, other_invoice)
        self.assertEqual(other_charges.cancelled_line_id.billing_released_count, 3)
        self.assertTrue(invoice.exists())


@tagged("post_install", "-at_install")
class TestBillingRunInterrupted(BillingRecurringCommon):
    """A run whose process is gone is closed as interrupted by the next run
    (a run killed inside a batch, its batches committed on a cursor of its
    own: ``TestBillingRecurringConcurrency``; killed with SIGKILL at random
    moments: ``scripts/chaos crash``)."""

    def test_live_run_is_not_closed(self):
        """A run whose process still works holds its row: only once that
        process is gone does the next run close it."""
        with self.registry.cursor() as live_cr:
            live = api.Environment(live_cr, SUPERUSER_ID, {})["billing.run"].create(
                {"trigger": "cron"}
            )
            live_cr.commit()
            run_id = live.id
            try:
                live._lock()
                with self.registry.cursor() as other_cr:
                    other = api.Environment(other_cr, SUPERUSER_ID, {})["billing.run"]
                    self.assertNotIn(run_id, other._close_interrupted().ids)
                    other_cr.rollback()
                live_cr.rollback()  # the process is gone, its lock with it
                with self.registry.cursor() as next_cr:
                    Run = api.Environment(next_cr, SUPERUSER_ID, {})["billing.run"]
                    self.assertIn(run_id, Run._close_interrupted().ids)
                    self.assertEqual(Run.browse(run_id).state, "interrupted")
                    next_cr.rollback()
            finally:
                live_cr.rollback()
                live_cr.execute("DELETE FROM billing_run WHERE id = %s", [run_id])
                live_cr.commit()
