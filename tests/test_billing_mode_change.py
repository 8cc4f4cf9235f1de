from datetime import date

from odoo import Command
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import Form, tagged
from odoo.tools import format_date

from .recurring_common import BillingRecurringCommon

ONCHANGE_LOGGER = "odoo.tests.form.onchange"


@tagged("post_install", "-at_install")
class TestBillingModeChange(BillingRecurringCommon):
    """Switching a customer between prepaid and postpaid billing: its recurring
    invoice stops once its pending usage is invoiced, its wallet stays usable,
    and the administrator is told what happens in the form and the chatter."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.company.billing_wallet_allow_payments = False

    # -------------------------------------------------------------------------
    # Helpers
    # -------------------------------------------------------------------------

    def _switch(self, partner, mode):
        """Switch ``partner`` to ``mode`` as a Billing Administrator would."""
        partner.with_user(self.billing_manager).write({"billing_mode": mode})

    def _messages(self, record, text):
        return record.message_ids.filtered(lambda m: text in (m.body or ""))

    def _pending(self, partner):
        return self.env["billing.charge"].search(
            [("partner_id", "=", partner.id), ("state", "=", "pending")]
        )

    def _form_warning(self, record, mode):
        """Change the billing mode of ``record`` in its form as a Billing
        Administrator; returns the form and the warning it shows."""
        form = Form(record.with_user(self.billing_manager))
        with self.assertLogs(ONCHANGE_LOGGER, level="WARNING") as logs:
            form.billing_mode = mode
        self.assertEqual(len(logs.output), 1)
        return form, logs.output[0]

    def _flush_tracking(self):
        """Run the precommit hooks that write tracking values into the chatter."""
        self.env.flush_all()
        self.env.cr.flush()

    def _tracked(self, record):
        """(field, old, new) of the tracking values of ``record``, oldest first."""
        self._flush_tracking()
        values = []
        for tracking in record.message_ids.tracking_value_ids.sorted("id"):
            name, ttype = tracking.field_id.name, tracking.field_id.ttype
            if ttype == "boolean":
                values.append(
                    (name, tracking.old_value_integer, tracking.new_value_integer)
                )
            else:
                values.append((name, tracking.old_value_char, tracking.new_value_char))
        return values

    def _plan_line(self):
        return [
            Command.create(
                {"product_id": self.plan.id, "quantity": 1, "price_unit": 20.0}
            )
        ]

    # -------------------------------------------------------------------------
    # Postpaid to prepaid
    # -------------------------------------------------------------------------

    def test_to_prepaid_without_pending_usage_stops_at_once(self):
        schedule = self._schedule(line_ids=self._plan_line())
        self._usage(self.postpaid, self.sms, "2026-10-03", count=2)
        self._run()
        self.assertEqual(len(self._invoices(schedule)), 1)
        self.assertFalse(self._pending(self.postpaid), "October is invoiced")

        self._switch(self.postpaid, "prepaid")
        self.assertEqual(schedule.state, "stopped")
        self.assertFalse(schedule.stop_when_invoiced)
        self.assertTrue(
            self._messages(
                self.postpaid,
                f"Recurring invoice {schedule.name} stops at once: no usage is "
                "pending.",
            )
        )
        self.assertTrue(
            self._messages(schedule, "is billed prepaid now and no usage is pending")
        )
        # Its fixed line would be invoiced in December if it were still running.
        self._run(today=date(2026, 12, 5))
        self.assertEqual(len(self._invoices(schedule)), 1)
        self.assertEqual(schedule.next_date, date(2026, 12, 1))

    def test_to_prepaid_invoices_pending_usage_then_stops(self):
        schedule = self._schedule(line_ids=self._plan_line())
        self._usage(self.postpaid, self.sms, "2026-10-03", count=5)

        self._switch(self.postpaid, "prepaid")
        self.assertEqual(schedule.state, "running")
        self.assertTrue(schedule.stop_when_invoiced)
        self.assertTrue(
            self._messages(
                self.postpaid,
                f"Recurring invoice {schedule.name} keeps running until its 5 "
                "pending usage records are invoiced, from its next invoice date "
                f"{format_date(self.env, date(2026, 11, 1))}, then stops.",
            )
        )
        self.assertTrue(
            self._messages(
                schedule, "keeps running until its 5 pending usage records are"
            )
        )

        # Usage after the switch is prepaid: paid from the wallet, not pending.
        self._fund(10.0, partner=self.postpaid)
        self._usage(self.postpaid, self.sms, "2026-11-03", count=2)
        self.assertEqual(len(self._pending(self.postpaid)), 5)
        debited = self.env["billing.charge"].search(
            [("partner_id", "=", self.postpaid.id), ("state", "=", "debited")]
        )
        self.assertEqual(len(debited), 2)
        self.assertEqual(self.postpaid.billing_balance, 9.9)

        run = self._run()
        invoice = self._invoices(schedule)
        self.assertEqual(len(invoice), 1)
        self.assertEqual(invoice.amount_untaxed, 20.0 + 5 * 0.05)
        self.assertChargesMatchUsageLines(invoice)
        self.assertEqual(run.charge_count, 5)
        self.assertFalse(self._pending(self.postpaid))
        self.assertEqual(schedule.state, "stopped", "stopped by the run itself")
        self.assertFalse(schedule.stop_when_invoiced)
        self.assertTrue(
            self._messages(schedule, "Stopped: the usage pending when Postpaid One")
        )
        self.assertTrue(
            self._messages(
                self.postpaid, f"Recurring invoice {schedule.name} stopped: the usage"
            )
        )
        # No second invoice, however many runs follow.
        self._run(today=date(2026, 12, 5))
        self._run(today=date(2027, 1, 5))
        self.assertEqual(len(self._invoices(schedule)), 1)
        self.assertEqual(schedule.next_date, date(2026, 12, 1))

    def test_flag_and_stop_tracked_on_the_schedule(self):
        env = self.env(
            context=dict(self.env.context, tracking_disable=False, mail_notrack=False)
        )
        schedule = self._schedule().with_env(env)
        self._usage(self.postpaid, self.sms, "2026-10-03")
        self._flush_tracking()  # Odoo tracks records created earlier only
        self._switch(self.postpaid.with_env(env), "prepaid")
        self.assertEqual(self._tracked(schedule), [("stop_when_invoiced", 0, 1)])
        env["billing.recurring"]._billing_run(today=date(2026, 11, 5))
        self.assertEqual(schedule.state, "stopped")
        self.assertIn(("stop_when_invoiced", 1, 0), self._tracked(schedule))
        self.assertIn(("state", "Running", "Stopped"), self._tracked(schedule))

    def test_to_prepaid_usage_of_the_next_period_waits_for_its_invoice(self):
        schedule = self._schedule()
        self._usage(self.postpaid, self.sms, "2026-10-10", count=2)
        # Usage of November, sent before the switch: invoiced on 1 December.
        self._usage(self.postpaid, self.sms, "2026-11-02", count=3)
        self._switch(self.postpaid, "prepaid")
        self.assertTrue(
            self._messages(self.postpaid, "until its 5 pending usage records")
        )

        self._run()
        self.assertEqual(len(self._invoices(schedule)), 1)
        self.assertEqual(len(self._pending(self.postpaid)), 3)
        self.assertEqual(schedule.state, "running", "November is still pending")
        self.assertTrue(schedule.stop_when_invoiced)

        self._run(today=date(2026, 12, 5))
        october, november = self._invoices(schedule)
        self.assertEqual(sum(october.invoice_line_ids.mapped("quantity")), 2)
        self.assertEqual(sum(november.invoice_line_ids.mapped("quantity")), 3)
        self.assertChargesMatchUsageLines(november)
        self.assertEqual(schedule.state, "stopped")
        self.assertFalse(self._pending(self.postpaid))

    def test_back_to_postpaid_before_the_run_clears_the_flag(self):
        schedule = self._schedule()
        self._usage(self.postpaid, self.sms, "2026-10-03", count=4)
        self._switch(self.postpaid, "prepaid")
        self.assertTrue(schedule.stop_when_invoiced)

        self._switch(self.postpaid, "postpaid")
        self.assertEqual(schedule.state, "running")
        self.assertFalse(schedule.stop_when_invoiced)
        self.assertTrue(
            self._messages(
                self.postpaid,
                f"Recurring invoice {schedule.name} keeps running and no longer "
                "stops once its pending usage is invoiced.",
            )
        )
        self.assertTrue(self._messages(schedule, "is billed postpaid again"))

        self._run()
        self.assertEqual(len(self._invoices(schedule)), 1)
        self.assertEqual(schedule.state, "running", "postpaid: it keeps running")
        self._usage(self.postpaid, self.sms, "2026-11-10", count=2)
        self.assertEqual(len(self._pending(self.postpaid)), 2, "postpaid usage")
        self._run(today=date(2026, 12, 5))
        self.assertEqual(len(self._invoices(schedule)), 2)
        self.assertEqual(schedule.state, "running")

    def test_to_prepaid_says_which_usage_stays_pending(self):
        """Pending usage that no running recurring invoice will invoice is named,
        not silently left behind."""
        schedule = self._schedule()
        self._usage(self.postpaid, self.sms, "2026-10-03", count=3)
        schedule.action_stop()
        self._switch(self.postpaid, "prepaid")
        self.assertEqual(schedule.state, "stopped")
        self.assertTrue(
            self._messages(
                self.postpaid,
                "3 pending usage records stay pending: no recurring invoice is "
                "running to invoice them.",
            )
        )
        self.assertEqual(len(self._pending(self.postpaid)), 3)

    def test_schedule_of_a_prepaid_customer_cannot_run_again(self):
        schedule = self._schedule()
        self._switch(self.postpaid, "prepaid")
        self.assertEqual(schedule.state, "stopped")
        with self.assertRaisesRegex(ValidationError, "is not billed postpaid"):
            schedule.action_start()
        # That it stays stopped (the request's rollback, which a check after
        # assertRaises cannot tell): TestBillingRefusedRequests, over JSON-RPC.
        other = self._schedule(self._postpaid_customer("Still Postpaid"))
        with self.assertRaisesRegex(
            ValidationError, "Still Postpaid is billed postpaid"
        ):
            other.write({"stop_when_invoiced": True})

    def test_manual_stop_of_a_waiting_schedule_clears_the_flag(self):
        schedule = self._schedule()
        self._usage(self.postpaid, self.sms, "2026-10-03")
        self._switch(self.postpaid, "prepaid")
        self.assertTrue(schedule.stop_when_invoiced)
        schedule.with_user(self.billing_manager).action_stop()
        self.assertEqual(schedule.state, "stopped")
        self.assertFalse(schedule.stop_when_invoiced)

    # -------------------------------------------------------------------------
    # Prepaid to postpaid
    # -------------------------------------------------------------------------

    def test_to_postpaid_keeps_balance_and_pays_invoices_from_it(self):
        self._fund(100.0)
        wallet = self._wallet()
        self.assertEqual(self.customer.billing_balance, 100.0)

        form, warning = self._form_warning(self.customer, "postpaid")
        balance = self.currency.format(100.0)
        self.assertIn(
            f"The wallet balance of {balance} stays usable to pay invoices with Pay "
            "from Wallet.",
            warning,
        )
        self.assertIn(
            "No recurring invoice exists yet: create one with Create Recurring "
            "Invoice on the Billing tab",
            warning,
        )
        self.assertNotIn("automatically", warning, "the company does not allow it")
        form.save()
        self.assertEqual(self.customer.billing_mode, "postpaid")
        self.assertEqual(self._wallet(), wallet)
        self.assertEqual(self.customer.billing_balance, 100.0)
        message = self._messages(self.customer, "Switched to Postpaid billing")
        self.assertEqual(len(message), 1)
        self.assertIn("stays usable to pay invoices", message.body)
        self.assertIn("No recurring invoice exists yet", message.body)

        invoice = self._invoice([(self.service, 1, 30.0)])
        self.assertEqual(invoice.payment_state, "not_paid")
        invoice.with_user(self.billing_user).action_billing_pay_from_wallet()
        self.assertEqual(invoice.payment_state, "paid")
        self.assertEqual(self.customer.billing_balance, 70.0)
        self.assertBooksMatchWallet()

    def test_to_postpaid_auto_pays_recurring_invoices_from_the_wallet(self):
        self.company.billing_wallet_allow_payments = True
        self._fund(50.0)
        form, warning = self._form_warning(self.customer, "postpaid")
        self.assertIn(
            "Invoices are paid from the wallet automatically when they are posted",
            warning,
        )
        form.save()
        schedule = self._schedule(self.customer, generation_mode="confirm")
        self._usage(self.customer, self.sms, "2026-10-03", count=100)
        self.assertEqual(len(self._pending(self.customer)), 100, "postpaid usage")
        self.assertEqual(self.customer.billing_balance, 50.0)

        self._run()
        invoice = self._invoices(schedule)
        self.assertEqual(invoice.state, "posted")
        self.assertEqual(invoice.amount_total, 5.0)
        self.assertEqual(invoice.payment_state, "paid", "paid from the wallet")
        self.assertEqual(self.customer.billing_balance, 45.0)
        self.assertBooksMatchWallet()

    def test_create_recurring_invoice_button(self):
        self._switch(self.customer, "postpaid")
        self.assertFalse(self.customer.billing_recurring_id)
        arch = self.customer.with_user(self.billing_manager).get_views(
            [(False, "form")]
        )["views"]["form"]["arch"]
        self.assertIn('name="action_billing_create_recurring"', arch)
        with self.assertRaisesRegex(AccessError, "Only Billing Administrators"):
            self.customer.with_user(self.billing_user).action_billing_create_recurring()

        action = self.customer.with_user(
            self.billing_manager
        ).action_billing_create_recurring()
        self.assertEqual(action["res_model"], "billing.recurring")
        self.assertEqual(action["view_mode"], "form")
        form = Form(
            self.env["billing.recurring"]
            .with_user(self.billing_manager)
            .with_context(**action["context"])
        )
        self.assertEqual(form.partner_id, self.customer)
        form.next_date = date(2026, 11, 1)
        schedule = form.save()
        self.customer.invalidate_recordset(["billing_recurring_id"])
        self.assertEqual(self.customer.billing_recurring_id, schedule)
        with self.assertRaisesRegex(UserError, "already has the recurring invoice"):
            self.customer.with_user(
                self.billing_manager
            ).action_billing_create_recurring()
        with self.assertRaisesRegex(UserError, "is not billed postpaid"):
            self.other_customer.with_user(
                self.billing_manager
            ).action_billing_create_recurring()

    def test_to_postpaid_with_a_stopped_schedule_says_start_it(self):
        schedule = self._schedule()
        self._switch(self.postpaid, "prepaid")
        self.assertEqual(schedule.state, "stopped")
        form, warning = self._form_warning(self.postpaid, "postpaid")
        self.assertIn(
            f"Recurring invoice {schedule.name} is stopped: start it to invoice the "
            "usage",
            warning,
        )
        self.assertNotIn("No recurring invoice exists yet", warning)
        form.save()
        self.assertTrue(
            self._messages(self.postpaid, "is stopped: start it to invoice the usage")
        )
        self.assertEqual(self.postpaid.billing_recurring_id, schedule)
        schedule.with_user(self.billing_manager).action_start()
        self.assertEqual(schedule.state, "running")

    # -------------------------------------------------------------------------
    # The customer form
    # -------------------------------------------------------------------------

    def test_form_warns_what_switch_to_prepaid_does(self):
        schedule = self._schedule()
        self._usage(self.postpaid, self.sms, "2026-10-03", count=3)
        quiet_customer = self._postpaid_customer("Quiet One")
        quiet = self._schedule(quiet_customer)

        form, warning = self._form_warning(self.postpaid, "prepaid")
        self.assertIn("Switching Postpaid One to Prepaid billing", warning)
        self.assertIn(
            f"Recurring invoice {schedule.name} keeps running until its 3 pending "
            "usage records are invoiced, from its next invoice date "
            f"{format_date(self.env, date(2026, 11, 1))}, then stops.",
            warning,
        )
        self.assertIn("New usage is paid from the wallet at once", warning)
        self.assertFalse(schedule.stop_when_invoiced, "nothing done before saving")
        form.save()
        self.assertTrue(schedule.stop_when_invoiced)

        form, warning = self._form_warning(quiet_customer, "prepaid")
        self.assertIn(
            f"Recurring invoice {quiet.name} stops at once: no usage is pending.",
            warning,
        )
        self.assertEqual(quiet.state, "running")
        form.save()
        self.assertEqual(quiet.state, "stopped")

    def test_form_warns_only_on_a_switch_of_a_saved_customer(self):
        self._schedule()
        form, _warning = self._form_warning(self.postpaid, "prepaid")
        with self.assertNoLogs(ONCHANGE_LOGGER, level="WARNING"):
            form.billing_mode = "postpaid"  # back to the saved mode
        form.save()
        with self.assertNoLogs(ONCHANGE_LOGGER, level="WARNING"):
            new = Form(self.env["res.partner"].with_user(self.billing_manager))
            new.name = "Brand New"
            new.billing_mode = "postpaid"
            new.billing_mode = "prepaid"
        self.assertFalse(self._messages(self.postpaid, "Switched to"))
