from datetime import date
from unittest.mock import patch

from freezegun import freeze_time
from psycopg2 import IntegrityError

from odoo import fields
from odoo.exceptions import AccessError, UserError
from odoo.tests import new_test_user, tagged
from odoo.tools import mute_logger

from odoo.addons.prepaid_postpaid_billing.models.billing_service import (
    BillingService,
)

from .service_common import BillingServiceCommon


@tagged("post_install", "-at_install")
class TestBillingService(BillingServiceCommon):
    def _renewal_moves(self, partner=None):
        wallet = self._wallet(partner)
        return wallet.move_ids.filtered(lambda move: move.kind == "renewal")

    def _mails(self, service, template_xmlid):
        """Messages of ``service`` posted from the template ``template_xmlid``."""
        template = self.env.ref(f"prepaid_postpaid_billing.{template_xmlid}")
        subject = template._render_field("subject", service.ids)[service.id]
        return service.message_ids.filtered(lambda message: message.subject == subject)

    # -------------------------------------------------------------------------
    # Activation
    # -------------------------------------------------------------------------

    def test_activation_charges_the_first_period_from_the_wallet(self):
        self._fund(50.0)
        service = self._service(start=date(2026, 11, 1))
        self.assertEqual(service.state, "active")
        self.assertEqual(service.next_date, date(2026, 12, 1))
        self.assertEqual(service.price_unit, 10.0)  # the product's price
        charge = service.charge_ids
        self.assertEqual(len(charge), 1)
        self.assertEqual(charge.service_period_start, date(2026, 11, 1))
        self.assertEqual(charge.state, "debited")
        self.assertEqual(charge.amount, 10.0)
        self.assertEqual(charge.wallet_move_id.kind, "renewal")
        self.assertEqual(charge.wallet_move_id.amount, -10.0)
        self.assertIn("2026-11-01 to 2026-11-30", charge.name)
        self.assertEqual(self._wallet().balance, 40.0)
        # The renewal is booked with the consumption, in the books.
        self.assertEqual(self._post_consumption(), 1)
        self.assertTrue(charge.wallet_move_id.account_move_id)
        self.assertBooksMatchWallet()

    def test_activation_of_a_postpaid_service_waits_for_the_invoice(self):
        service = self._service(self.postpaid, start=date(2026, 11, 1))
        self.assertEqual(service.state, "active")
        self.assertEqual(service.charge_ids.state, "pending")
        self.assertFalse(service.charge_ids.wallet_move_id)
        self.assertEqual(service.next_date, date(2026, 12, 1))

    def test_activation_twice_is_refused(self):
        self._fund(50.0)
        service = self._service()
        with self.assertRefusedWritingNothing(UserError, "was activated already"):
            service.action_activate()
        self.assertEqual(len(service.charge_ids), 1)

    def test_activation_without_credit_suspends(self):
        service = self._service(start=date(2026, 11, 1))
        self.assertEqual(service.state, "suspended")
        self.assertFalse(service.charge_ids)
        self.assertEqual(service.next_date, date(2026, 11, 1))
        self.assertTrue(self._mails(service, "mail_template_service_suspended"))

    def test_only_billing_administrators_activate_close_and_resume(self):
        service = self._service(activate=False)
        user = new_test_user(
            self.env,
            login="service_billing_user",
            groups="prepaid_postpaid_billing.group_billing_user",
            company_id=self.company.id,
        )
        for action in ("action_activate", "action_close", "action_resume"):
            with self.assertRaises(AccessError):
                getattr(service.with_user(user), action)()
        with self.assertRefusedWritingNothing(AccessError):
            service.with_user(user).action_run_now()
        self.assertEqual(service.state, "draft")

    def test_fractions_of_a_cent_are_debited_exactly(self):
        self._fund(1.0)
        service = self._service(quantity=3.0, price_unit=0.0075)
        self.assertEqual(service.renewal_amount, 0.0225)
        self.assertEqual(service.charge_ids.amount, 0.0225)
        self.assertEqual(self._wallet().balance, 0.9775)
        with freeze_time("2027-01-01"):
            self._renew(date(2027, 1, 1))
        self.assertEqual(self._wallet().balance, 0.9325)
        self.assertEqual(len(service.charge_ids), 3)

    # -------------------------------------------------------------------------
    # The anchors' failures
    # -------------------------------------------------------------------------

    def test_missed_runs_catch_up_once_per_period_not_every_day(self):
        self._fund(100.0)
        service = self._service(start=date(2026, 11, 1))
        # No run on Dec 1, Jan 1 nor Feb 1: three periods missed.
        with freeze_time("2027-02-10"):
            runs = self._renew(date(2027, 2, 10))
        self.assertEqual(
            self._periods(service),
            [date(2026, 11, 1), date(2026, 12, 1), date(2027, 1, 1), date(2027, 2, 1)],
        )
        self.assertEqual(service.next_date, date(2027, 3, 1))
        self.assertEqual(runs.kind, "renewal")
        self.assertEqual(runs.charge_count, 3)
        self.assertEqual(runs.service_count, 1)
        self.assertEqual(self._wallet().balance, 60.0)
        # The following days charge nothing more: not a charge a day.
        for day in (11, 12, 28):
            with freeze_time(f"2027-02-{day}"):
                self._renew(date(2027, 2, day))
        self.assertEqual(len(service.charge_ids), 4)
        self.assertEqual(self._wallet().balance, 60.0)
        # The next period on its day.
        with freeze_time("2027-03-01"):
            self._renew(date(2027, 3, 1))
        self.assertEqual(len(service.charge_ids), 5)
        self.assertEqual(service.next_date, date(2027, 4, 1))

    def test_a_missed_day_is_caught_up_not_left_stuck(self):
        """Selection is ``next_date <= today``: a run the day after the renewal
        date (the cron did not run on it) renews, and so does one a week
        later."""
        self._fund(100.0)
        late = self._service(start=date(2026, 11, 1))
        later = self._service(start=date(2026, 11, 3))
        with freeze_time("2026-12-02"):
            self._renew(date(2026, 12, 2))
        self.assertEqual(late.next_date, date(2027, 1, 1))
        self.assertEqual(later.next_date, date(2026, 12, 3))
        with freeze_time("2026-12-10"):
            self._renew(date(2026, 12, 10))
        self.assertEqual(later.next_date, date(2027, 1, 3))
        self.assertEqual(len(late.charge_ids), 2)
        self.assertEqual(len(later.charge_ids), 2)

    def test_run_again_charges_nothing_twice(self):
        self._fund(100.0)
        prepaid = self._service(start=date(2026, 11, 1))
        postpaid = self._service(self.postpaid, start=date(2026, 11, 1))
        with freeze_time("2026-12-01"):
            self._renew(date(2026, 12, 1))
            self._renew(date(2026, 12, 1))
            self.env["billing.service"].action_run_now()
        self.assertEqual(len(prepaid.charge_ids), 2)
        self.assertEqual(len(postpaid.charge_ids), 2)
        self.assertEqual(self._wallet().balance, 80.0)
        self.assertEqual(len(self._renewal_moves()), 2)

    def test_a_period_charged_already_is_not_charged_again(self):
        """A run that stopped between its charges and the update of the renewal
        dates (as if killed) is completed by the next without a second charge;
        the database refuses a second charge of a period."""
        self._fund(100.0)
        service = self._service(start=date(2026, 11, 1))
        with freeze_time("2026-12-01"):
            self._renew(date(2026, 12, 1))
        # The renewal date set back, as if its update had been lost.
        self.env.cr.execute(
            "UPDATE billing_service SET next_date = '2026-12-01' WHERE id = %s",
            [service.id],
        )
        service.invalidate_recordset(["next_date"])
        with freeze_time("2026-12-01"):
            self._renew(date(2026, 12, 1))
        self.assertEqual(len(service.charge_ids), 2)
        self.assertEqual(service.next_date, date(2027, 1, 1))
        self.assertEqual(self._wallet().balance, 80.0)
        charge = service.charge_ids[:1]
        with (
            mute_logger("odoo.sql_db"),
            self.assertRaises(IntegrityError),
            self.env.cr.savepoint(),
        ):
            self.env.cr.execute(
                """
                INSERT INTO billing_charge
                    (partner_id, product_id, date, quantity, price_unit, amount,
                     external_ref, company_id, state, service_id,
                     service_period_start)
                VALUES (%s, %s, NOW(), 1, 10, 10, 'another-ref', %s, 'pending',
                        %s, %s)
                """,
                [
                    charge.partner_id.id,
                    charge.product_id.id,
                    self.company.id,
                    service.id,
                    charge.service_period_start,
                ],
            )
        # The guard is a partial index: usage records (no service) are not in it.
        self.env.cr.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = %s",
            ["billing_charge_service_period_uniq"],
        )
        self.assertIn("WHERE (service_id IS NOT NULL)", self.env.cr.fetchone()[0])

    def test_one_failing_service_does_not_stop_the_run(self):
        self._fund(100.0)
        services = [self._service(start=date(2026, 11, 1)) for _i in range(3)]
        failing = services[1]
        original = BillingService._renew_charge_periods

        def fail_for_one(service, periods, balances, already, todo):
            if service == failing:
                raise UserError(self.env._("The service product is misconfigured."))
            return original(service, periods, balances, already, todo)

        with (
            patch.object(BillingService, "_renew_charge_periods", fail_for_one),
            freeze_time("2026-12-01"),
            mute_logger("odoo.addons.prepaid_postpaid_billing.models.billing_service"),
        ):
            run = self._renew(date(2026, 12, 1))
        self.assertEqual(run.state, "failed")
        self.assertEqual(run.failure_ids.service_id, failing)
        self.assertIn("misconfigured", run.failure_ids.error)
        self.assertEqual(run.charge_count, 2)
        for service in services:
            expected = 1 if service == failing else 2
            self.assertEqual(len(service.charge_ids), expected, service.name)
        self.assertEqual(failing.next_date, date(2026, 12, 1))
        # Mended, the next run renews it.
        with freeze_time("2026-12-01"):
            self._renew(date(2026, 12, 1))
        self.assertEqual(len(failing.charge_ids), 2)
        self.assertEqual(self._wallet().balance, 100.0 - 6 * 10.0)

    def test_day_31_renews_on_the_last_day_of_shorter_months(self):
        self._fund(100.0)
        service = self._service(start=date(2027, 1, 31))
        with freeze_time("2027-05-01"):
            self._renew(date(2027, 5, 1))
        self.assertEqual(
            self._periods(service),
            [
                date(2027, 1, 31),
                date(2027, 2, 28),
                date(2027, 3, 31),
                date(2027, 4, 30),
            ],
        )
        self.assertEqual(service.next_date, date(2027, 5, 31))

    def test_weekly_and_yearly_periods(self):
        self._fund(100.0)
        weekly = self._service(
            start=date(2026, 11, 2), interval_type="week", interval_number=2
        )
        yearly = self._service(
            start=date(2024, 2, 29), interval_type="year", price_unit=1.0
        )
        with freeze_time("2026-12-01"):
            self._renew(date(2026, 12, 1))
        self.assertEqual(
            self._periods(weekly),
            [date(2026, 11, 2), date(2026, 11, 16), date(2026, 11, 30)],
        )
        self.assertEqual(weekly.next_date, date(2026, 12, 14))
        self.assertEqual(
            self._periods(yearly),
            [date(2024, 2, 29), date(2025, 2, 28), date(2026, 2, 28)],
        )
        self.assertEqual(yearly.next_date, date(2027, 2, 28))

    # -------------------------------------------------------------------------
    # Suspension and resumption
    # -------------------------------------------------------------------------

    def test_suspended_when_the_balance_does_not_cover_then_resumed_once(self):
        self._fund(15.0)
        service = self._service(start=date(2026, 11, 1))
        with freeze_time("2026-12-01"):
            self._renew(date(2026, 12, 1))
        self.assertEqual(service.state, "suspended")
        self.assertEqual(service.suspended_date, date(2026, 12, 1))
        self.assertEqual(service.next_date, date(2026, 12, 1))  # unpaid period
        self.assertEqual(len(service.charge_ids), 1)
        self.assertEqual(self._wallet().balance, 5.0)  # never below zero
        self.assertEqual(
            len(self._mails(service, "mail_template_service_suspended")), 1
        )
        # The runs of the following days neither charge nor email again.
        with freeze_time("2026-12-05"):
            self._renew(date(2026, 12, 5))
        self.assertEqual(
            len(self._mails(service, "mail_template_service_suspended")), 1
        )
        # A top-up in January resumes it: the current period is charged once,
        # December's (missed while suspended) is not.
        with freeze_time("2027-01-15"):
            self._fund(20.0)
        self.assertEqual(service.state, "active")
        self.assertEqual(self._periods(service), [date(2026, 11, 1), date(2027, 1, 1)])
        self.assertEqual(service.next_date, date(2027, 2, 1))
        self.assertEqual(self._wallet().balance, 15.0)
        self.assertEqual(len(self._mails(service, "mail_template_service_resumed")), 1)
        # More funds, and runs, charge nothing more for the period.
        with freeze_time("2027-01-20"):
            self._fund(20.0)
            self._renew(date(2027, 1, 20))
        self.assertEqual(len(service.charge_ids), 2)
        self.assertEqual(self._wallet().balance, 35.0)
        self.assertEqual(len(self._mails(service, "mail_template_service_resumed")), 1)
        self._post_consumption()
        self.assertBooksMatchWallet()

    def test_a_top_up_too_small_does_not_resume(self):
        service = self._service(start=date(2026, 11, 1))
        self.assertEqual(service.state, "suspended")
        with freeze_time("2026-11-02"):
            self._fund(9.99)
        self.assertEqual(service.state, "suspended")
        self.assertFalse(service.charge_ids)
        with freeze_time("2026-11-03"):
            self._fund(0.01)
        self.assertEqual(service.state, "active")
        self.assertEqual(self._periods(service), [date(2026, 11, 1)])
        self.assertEqual(self._wallet().balance, 0.0)

    def test_the_run_resumes_what_a_credit_could_not(self):
        """A suspended service whose wallet covers it (credited while the
        service was held by another transaction) resumes at the next run."""
        service = self._service(start=date(2026, 11, 1))
        with (
            patch.object(BillingService, "_resume_for_wallet", lambda self, w: None),
            freeze_time("2026-11-10"),
        ):
            self._fund(30.0)
        self.assertEqual(service.state, "suspended")
        with freeze_time("2026-11-10"):
            run = self._renew(date(2026, 11, 10))
        self.assertEqual(run.resumed_count, 1)
        self.assertEqual(service.state, "active")
        self.assertEqual(self._periods(service), [date(2026, 11, 1)])
        self.assertEqual(self._wallet().balance, 20.0)

    def test_resume_by_hand(self):
        service = self._service(start=date(2026, 11, 1))
        with freeze_time("2026-11-10"):
            with self.assertRefusedWritingNothing(
                UserError, "does not cover its renewal"
            ):
                service.action_resume()
            self.assertEqual(service.state, "suspended")
            self._fund(30.0)  # resumes it
        self.assertEqual(service.state, "active")
        with self.assertRefusedWritingNothing(UserError, "is not suspended"):
            service.action_resume()
        self.assertEqual(len(service.charge_ids), 1)

    def test_grace_days_keep_the_service_active_until_they_pass(self):
        self.company.billing_service_grace_days = 3
        self._fund(10.0)
        service = self._service(start=date(2026, 11, 1))
        with freeze_time("2026-12-01"):
            run = self._renew(date(2026, 12, 1))
        self.assertEqual(service.state, "active")
        self.assertEqual(service.next_date, date(2026, 12, 1))
        self.assertEqual(run.suspended_count, 0)
        with freeze_time("2026-12-03"):
            self._fund(10.0)  # the service is not suspended: the run renews it
            self._renew(date(2026, 12, 3))
        self.assertEqual(self._periods(service), [date(2026, 11, 1), date(2026, 12, 1)])
        self.assertEqual(service.next_date, date(2027, 1, 1))
        # January: no credit, suspended once the 3 days have passed.
        for day, state in ((1, "active"), (3, "active"), (4, "suspended")):
            with freeze_time(f"2027-01-0{day}"):
                self._renew(date(2027, 1, day))
            self.assertEqual(service.state, state, f"January {day}")
        self.assertEqual(len(service.charge_ids), 2)

    # -------------------------------------------------------------------------
    # Close, auto-renew
    # -------------------------------------------------------------------------

    def test_close_stops_renewals_from_the_end_of_the_paid_period(self):
        self._fund(100.0)
        service = self._service(start=date(2026, 11, 1))
        with freeze_time("2026-11-20"):
            service.action_close()
        self.assertEqual(service.state, "active")  # paid until Nov 30
        self.assertFalse(service.auto_renew)
        with freeze_time("2026-12-01"):
            run = self._renew(date(2026, 12, 1))
        self.assertEqual(service.state, "closed")
        self.assertEqual(service.closed_date, date(2026, 12, 1))
        self.assertEqual(run.closed_count, 1)
        self.assertEqual(len(service.charge_ids), 1)
        with freeze_time("2027-01-01"):
            self._renew(date(2027, 1, 1))
        self.assertEqual(len(service.charge_ids), 1)
        self.assertEqual(self._wallet().balance, 90.0)

    def test_auto_renew_off_closes_at_the_end_of_the_period(self):
        service = self._service(self.postpaid, start=date(2026, 11, 1))
        service.auto_renew = False
        with freeze_time("2026-11-30"):
            self._renew(date(2026, 11, 30))
        self.assertEqual(service.state, "active")
        with freeze_time("2026-12-03"):
            self._renew(date(2026, 12, 3))
        self.assertEqual(service.state, "closed")
        self.assertEqual(service.closed_date, date(2026, 12, 1))
        self.assertEqual(len(service.charge_ids), 1)

    def test_a_suspended_service_closes_at_once(self):
        service = self._service(start=date(2026, 11, 1))
        self.assertEqual(service.state, "suspended")
        with freeze_time("2026-11-05"):
            service.action_close()
            self._fund(50.0)
        self.assertEqual(service.state, "closed")
        self.assertFalse(service.charge_ids)
        self.assertEqual(self._wallet().balance, 50.0)

    def test_an_active_service_keeps_its_terms(self):
        self._fund(50.0)
        service = self._service()
        with self.assertRefusedWritingNothing(UserError, "cannot change"):
            service.interval_type = "week"
        with self.assertRefusedWritingNothing(UserError, "cannot be deleted"):
            service.unlink()
        service.price_unit = 12.0  # the price may change, from the next period
        with freeze_time("2026-12-01"):
            self._renew(date(2026, 12, 1))
        self.assertEqual(
            service.charge_ids.sorted("service_period_start").mapped("amount"),
            [10.0, 12.0],
        )

    # -------------------------------------------------------------------------
    # Reminders
    # -------------------------------------------------------------------------

    def _remind(self, day):
        with freeze_time(day):
            return self.env["billing.service"]._send_renewal_reminders(
                today=fields.Date.to_date(day)
            )

    def test_reminders_once_per_period_the_days_before(self):
        self._fund(100.0)
        service = self._service(start=date(2026, 11, 1))
        self.assertEqual(self._remind("2026-11-23"), 0)  # 8 days before
        self.assertEqual(self._remind("2026-11-24"), 1)  # 7 days before
        self.assertEqual(service.reminder_date, date(2026, 12, 1))
        self.assertEqual(self._remind("2026-11-25"), 0)
        self.assertEqual(self._remind("2026-11-30"), 0)
        reminders = self._mails(service, "mail_template_service_reminder")
        self.assertEqual(len(reminders), 1)
        self.assertIn("covers it", reminders.body)
        self.assertIn(self.customer, reminders.partner_ids)
        # The next period gets its own reminder.
        with freeze_time("2026-12-01"):
            self._renew(date(2026, 12, 1))
        self.assertEqual(self._remind("2026-12-25"), 1)
        self.assertEqual(service.reminder_date, date(2027, 1, 1))

    def test_reminder_wording_by_balance_and_mode(self):
        self._fund(100.0)
        covered = self._service(start=date(2026, 11, 1))
        self._fund(15.0, partner=self.other_customer)
        short = self._service(self.other_customer, start=date(2026, 11, 1))
        postpaid = self._service(self.postpaid, start=date(2026, 11, 1))
        self.assertEqual(self._wallet(self.other_customer).balance, 5.0)
        self.assertEqual(self._remind("2026-11-28"), 3)
        covered_mail = self._mails(covered, "mail_template_service_reminder")
        short_mail = self._mails(short, "mail_template_service_reminder")
        postpaid_mail = self._mails(postpaid, "mail_template_service_reminder")
        self.assertIn("covers it", covered_mail.body)
        self.assertIn("does not cover it", short_mail.body)
        self.assertNotIn("covers it", short_mail.body)
        self.assertIn("next invoice", postpaid_mail.body)
        self.assertNotIn("balance", postpaid_mail.body)
        # The template is editable: the wording is the company's.
        template = self.env.ref(
            "prepaid_postpaid_billing.mail_template_service_reminder"
        )
        template.body_html = "<p>Renewal ahead</p>"
        with freeze_time("2026-12-01"):
            self._renew(date(2026, 12, 1))
        self.assertEqual(self._remind("2026-12-28"), 2)  # short was suspended
        self.assertIn(
            "Renewal ahead",
            self._mails(covered, "mail_template_service_reminder")[:1].body,
        )
        self.assertEqual(short.state, "suspended")

    def test_no_reminders_at_zero_days_nor_without_auto_renew(self):
        self._fund(100.0)
        service = self._service(start=date(2026, 11, 1))
        closing = self._service(start=date(2026, 11, 1))
        closing.auto_renew = False
        self.company.billing_service_reminder_days = 0
        self.assertEqual(self._remind("2026-11-28"), 0)
        self.company.billing_service_reminder_days = 7
        self.assertEqual(self._remind("2026-11-28"), 1)
        self.assertEqual(service.reminder_date, date(2026, 12, 1))
        self.assertFalse(closing.reminder_date)

    # -------------------------------------------------------------------------
    # Postpaid: the next recurring invoice
    # -------------------------------------------------------------------------

    def test_postpaid_renewal_on_the_next_recurring_invoice(self):
        schedule = self._schedule(self.postpaid, next_date=date(2026, 12, 1))
        service = self._service(self.postpaid, start=date(2026, 11, 15))
        # Usage of the same product is billed on its own line.
        self._usage(self.postpaid, self.number, "2026-11-20", quantity=2.0)
        self.env["billing.recurring"]._billing_run(today=date(2026, 12, 1))
        invoice = self._invoices(schedule)
        self.assertEqual(len(invoice), 1)
        charge = service.charge_ids
        self.assertEqual(charge.state, "invoiced")
        line = charge.invoice_line_id
        self.assertEqual(line.move_id, invoice)
        self.assertEqual(line.name, "Phone Number (2026-11-15 to 2026-12-14)")
        self.assertEqual(line.price_subtotal, 10.0)
        usage_line = invoice.invoice_line_ids - line
        self.assertEqual(len(usage_line), 1)
        self.assertEqual(usage_line.quantity, 2.0)
        self.assertEqual(invoice.amount_untaxed, 30.0)
        self.assertChargesMatchUsageLines(invoice)
        # The next period is on the next invoice, not this one.
        with freeze_time("2026-12-15"):
            self._renew(date(2026, 12, 15))
        self.env["billing.recurring"]._billing_run(today=date(2027, 1, 1))
        invoices = self._invoices(schedule)
        self.assertEqual(len(invoices), 2)
        self.assertEqual(
            invoices[1].invoice_line_ids.name, "Phone Number (2026-12-15 to 2027-01-14)"
        )

    def test_ingest_refuses_the_references_of_renewals(self):
        result = self.env["billing.charge"].ingest(
            [
                {
                    "partner_id": self.postpaid.id,
                    "product_id": self.number.id,
                    "date": "2026-11-02",
                    "quantity": 1,
                    "external_ref": "billing.service:1:2026-11-01",
                }
            ]
        )
        self.assertEqual(result["created"], 0)
        self.assertIn("service renewals", result["rejected"][0]["reason"])

    def test_customer_smart_button(self):
        self._fund(50.0)
        service = self._service()
        self.assertEqual(self.customer.billing_service_count, 1)
        action = self.customer.action_view_billing_services()
        self.assertEqual(self.env["billing.service"].search(action["domain"]), service)
