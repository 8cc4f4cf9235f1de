from datetime import date, datetime

from freezegun import freeze_time

from odoo import Command
from odoo.exceptions import AccessError, UserError
from odoo.tests import Form, new_test_user, tagged

from .recurring_common import BillingRecurringCommon


@tagged("post_install", "-at_install")
@freeze_time("2026-11-10")
class TestBillingInvoiceCreate(BillingRecurringCommon):
    """Create Invoice and Create & Claim, prepaid and postpaid."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.company.write(
            {
                "billing_invoice_terms": "<p>Pay within 15 days.</p>",
                "billing_customer_notes": "<p>Thank you for your business.</p>",
            }
        )
        cls.tax = cls.env["account.tax"].create(
            {
                "name": "Usage VAT 10%",
                "amount": 10.0,
                "type_tax_use": "sale",
                "company_id": cls.company.id,
            }
        )
        cls.minutes.taxes_id = [Command.set(cls.tax.ids)]

    def _wizard_form(self, customer_type, **values):
        form = Form(self.env["billing.invoice.create"])
        form.customer_type = customer_type
        for name, value in values.items():
            setattr(form, name, value)
        return form

    def _prepaid_wizard(self, **values):
        defaults = {
            "partner_id": self.customer,
            "invoice_date": date(2026, 11, 10),
            "due_date": date(2026, 11, 25),
            "amount": 80.0,
            "description": "November recharge",
        }
        return self._wizard_form("prepaid", **{**defaults, **values}).save()

    def _postpaid_wizard(self, **values):
        defaults = {
            "partner_id": self.postpaid,
            "date_from": date(2026, 10, 1),
            "date_to": date(2026, 10, 31),
        }
        return self._wizard_form("postpaid", **{**defaults, **values}).save()

    def _invoice_of(self, action):
        self.assertEqual(action["res_model"], "account.move")
        return self.env["account.move"].browse(action["res_id"])

    # -------------------------------------------------------------------------
    # Prepaid
    # -------------------------------------------------------------------------

    def test_prepaid_defaults_from_settings(self):
        form = Form(self.env["billing.invoice.create"])
        self.assertEqual(form.customer_type, "prepaid")
        self.assertEqual(form.invoice_date, date(2026, 11, 10))
        self.assertEqual(form.due_date, date(2026, 11, 10))
        self.assertIn("Pay within 15 days.", str(form.terms))
        self.assertIn("Thank you for your business.", str(form.customer_notes))
        form.invoice_date = date(2026, 11, 12)
        self.assertEqual(form.due_date, date(2026, 11, 12), "due date follows")

    def test_prepaid_create_invoice(self):
        wizard = self._prepaid_wizard(customer_notes="<p>Edited note</p>")
        self.assertEqual(wizard.amount_total, 80.0)
        invoice = self._invoice_of(wizard.action_create_invoice())
        self.assertEqual(invoice.state, "posted")
        self.assertEqual(invoice.payment_state, "not_paid")
        self.assertEqual(invoice.partner_id, self.customer)
        self.assertEqual(invoice.invoice_date, date(2026, 11, 10))
        self.assertEqual(invoice.invoice_date_due, date(2026, 11, 25))
        self.assertEqual(invoice.invoice_line_ids.product_id, self.recharge)
        self.assertEqual(invoice.invoice_line_ids.name, "November recharge")
        self.assertEqual(invoice.amount_total, 80.0)
        self.assertTrue(invoice.billing_is_topup)
        self.assertIn("Pay within 15 days.", str(invoice.narration))
        self.assertIn("Edited note", str(invoice.billing_customer_notes))
        self.assertFalse(self._wallet(), "no credit before the payment")

    def test_prepaid_create_and_claim_credits_wallet(self):
        wizard = self._prepaid_wizard()
        action = wizard.action_claim()
        self.assertEqual(action["res_id"], wizard.id, "asks for the payment")
        self.assertEqual(wizard.step, "claim")
        self.assertEqual(wizard.payment_amount, 80.0)
        self.assertTrue(wizard.payment_journal_id)
        with Form(wizard) as form:
            form.payment_journal_id = self.bank_journal
            form.payment_reference = "TRANSFER-42"
            form.payment_date = date(2026, 11, 9)
        invoice = self._invoice_of(wizard.action_create_and_claim())
        self.assertIn(invoice.payment_state, ("paid", "in_payment"))
        payment = invoice.matched_payment_ids
        self.assertEqual(len(payment), 1)
        self.assertEqual(payment.journal_id, self.bank_journal)
        self.assertEqual(payment.amount, 80.0)
        self.assertEqual(payment.memo, "TRANSFER-42")
        self.assertEqual(payment.date, date(2026, 11, 9))
        self.assertEqual(payment.billing_payment_method, "bank")
        self.assertEqual(self.customer.billing_balance, 80.0)
        self.assertBooksMatchWallet()

    def test_prepaid_claim_total_includes_taxes(self):
        self.recharge.taxes_id = [Command.set(self.tax.ids)]
        wizard = self._prepaid_wizard(amount=50.0)
        self.assertEqual(wizard.amount_total, 55.0)
        wizard.action_claim()
        self.assertEqual(wizard.payment_amount, 55.0)
        invoice = self._invoice_of(wizard.action_create_and_claim())
        self.assertEqual(invoice.amount_total, 55.0)
        self.assertIn(invoice.payment_state, ("paid", "in_payment"))
        self.assertEqual(
            self.customer.billing_balance, 50.0, "credit is the amount before taxes"
        )

    def test_prepaid_partial_claim_credits_nothing_yet(self):
        wizard = self._prepaid_wizard()
        wizard.action_claim()
        wizard.payment_amount = 30.0
        invoice = self._invoice_of(wizard.action_create_and_claim())
        self.assertEqual(invoice.payment_state, "partial")
        self.assertEqual(invoice.amount_residual, 50.0)
        self.assertFalse(self._wallet(), "credited once fully paid")

    def test_prepaid_validation_errors(self):
        moves_before = self.env["account.move"].search_count([])
        wizard = self._prepaid_wizard(due_date=date(2026, 11, 9))
        with self.assertRefusedWritingNothing(
            UserError, "Due Date .* before its Invoice Date"
        ):
            wizard.action_create_invoice()
        with self.assertRefusedWritingNothing(
            UserError, "Due Date .* before its Invoice Date"
        ):
            wizard.action_claim()
        for amount in (0.0, -10.0):
            wizard = self._prepaid_wizard(amount=amount)
            with self.assertRefusedWritingNothing(
                UserError, "Recharge Amount .* positive"
            ):
                wizard.action_create_invoice()
        wizard = self._prepaid_wizard()
        wizard.partner_id = self.postpaid
        with self.assertRefusedWritingNothing(
            UserError, "Postpaid One is not a prepaid"
        ):
            wizard.action_create_invoice()
        self.assertEqual(self.env["account.move"].search_count([]), moves_before)

    def test_claim_validation_errors(self):
        moves_before = self.env["account.move"].search_count([])
        wizard = self._prepaid_wizard()
        wizard.action_claim()
        for amount in (0.0, -5.0):
            wizard.payment_amount = amount
            with self.assertRefusedWritingNothing(
                UserError, "Amount Received .* positive"
            ):
                wizard.action_create_and_claim()
        wizard.payment_amount = 80.0
        wizard.payment_journal_id = False
        with self.assertRefusedWritingNothing(UserError, "Payment Journal .* required"):
            wizard.action_create_and_claim()
        wizard.payment_journal_id = self.company.billing_wallet_journal_id
        with self.assertRefusedWritingNothing(
            UserError, "cannot be the Customer Wallet"
        ):
            wizard.action_create_and_claim()
        self.assertEqual(self.env["account.move"].search_count([]), moves_before)

    # -------------------------------------------------------------------------
    # Postpaid
    # -------------------------------------------------------------------------

    def _october_usage(self):
        self._usage(self.postpaid, self.sms, "2026-10-01 00:00:00", 10.0, 0.05, 3)
        self._usage(self.postpaid, self.sms, "2026-10-31 23:59:59", 1.0, 0.0133, 2)
        self._usage(self.postpaid, self.minutes, "2026-10-15 12:00:00", 7.0, 0.10)
        # Outside the period, or another customer's: not fetched.
        self._usage(self.postpaid, self.sms, "2026-09-30 23:59:59", 1.0, 0.05)
        self._usage(self.postpaid, self.sms, "2026-11-01 00:00:00", 1.0, 0.05)
        other = self._postpaid_customer("Postpaid Two")
        self._usage(other, self.sms, "2026-10-10 00:00:00", 1.0, 0.05)

    def test_postpaid_fetch_lists_period_charges(self):
        self._october_usage()
        wizard = self._postpaid_wizard()
        wizard.action_fetch_charges()
        self.assertTrue(wizard.fetched)
        self.assertEqual(wizard.charge_count, 6)
        self.assertEqual(set(wizard.charge_ids.partner_id.ids), {self.postpaid.id})
        self.assertTrue(
            all(
                datetime(2026, 10, 1) <= charge.date < datetime(2026, 11, 1)
                for charge in wizard.charge_ids
            )
        )
        per_service = {
            line.product_id: (line.charge_count, line.quantity, line.amount)
            for line in wizard.service_ids
        }
        self.assertEqual(per_service[self.sms], (5, 32.0, 1.53))  # 1.5266
        self.assertEqual(per_service[self.minutes], (1, 7.0, 0.7))
        self.assertEqual(wizard.charge_amount, 2.23)
        self.assertEqual(wizard.amount_total, 2.30, "the minutes carry 10% tax")
        # Changing the period forgets the fetched records.
        with Form(wizard) as form:
            form.date_to = date(2026, 10, 30)
            self.assertFalse(form.fetched)
            self.assertEqual(form.charge_count, 0)
        self.assertFalse(wizard.fetched)
        self.assertFalse(wizard.charge_ids)
        self.assertFalse(wizard.service_ids)

    def test_postpaid_create_invoice_links_charges(self):
        self._october_usage()
        wizard = self._postpaid_wizard()
        wizard.action_fetch_charges()
        charges = wizard.charge_ids
        invoice = self._invoice_of(wizard.action_create_invoice())
        self.assertEqual(invoice.state, "posted")
        self.assertEqual(invoice.payment_state, "not_paid")
        self.assertEqual(invoice.billing_period_start, date(2026, 10, 1))
        self.assertEqual(invoice.billing_period_end, date(2026, 10, 31))
        self.assertFalse(invoice.billing_recurring_id)
        self.assertEqual(set(charges.mapped("state")), {"invoiced"})
        self.assertEqual(charges.invoice_line_id.move_id, invoice)
        self.assertChargesMatchUsageLines(invoice)
        self.assertEqual(invoice.amount_untaxed, 2.23)
        self.assertEqual(invoice.amount_total, 2.30)
        # Pending records outside the period stay pending for the next cycle.
        pending = self.env["billing.charge"].search(
            [("partner_id", "=", self.postpaid.id), ("state", "=", "pending")]
        )
        self.assertEqual(len(pending), 2)
        # Fetching again finds nothing left in the period.
        wizard = self._postpaid_wizard()
        with self.assertRaisesRegex(UserError, "no pending usage record"):
            wizard.action_fetch_charges()

    def test_postpaid_create_and_claim(self):
        self._october_usage()
        wizard = self._postpaid_wizard()
        wizard.action_fetch_charges()
        wizard.action_claim()
        self.assertEqual(wizard.payment_amount, 2.30)
        wizard.payment_amount = 2.0
        invoice = self._invoice_of(wizard.action_create_and_claim())
        self.assertEqual(invoice.payment_state, "partial")
        self.assertEqual(invoice.amount_residual, 0.30)
        self.assertChargesMatchUsageLines(invoice)

    def test_postpaid_validation_errors(self):
        self._october_usage()
        wizard = self._postpaid_wizard(
            date_from=date(2026, 10, 31), date_to=date(2026, 10, 1)
        )
        with self.assertRaisesRegex(UserError, "To 2026-10-01 .* before From"):
            wizard.action_fetch_charges()
        wizard = self._postpaid_wizard(
            date_from=date(2026, 8, 1), date_to=date(2026, 8, 31)
        )
        with self.assertRaisesRegex(UserError, "Postpaid One has no pending usage"):
            wizard.action_fetch_charges()
        with self.assertRaisesRegex(UserError, "No usage record is listed"):
            wizard.action_create_invoice()
        with self.assertRaisesRegex(UserError, "No usage record is listed"):
            wizard.action_claim()

    def test_postpaid_listed_records_must_be_the_periods(self):
        """Over RPC the listed records can be written at will: only the pending
        records of the customer and period are invoiced."""
        self._october_usage()
        other = self.env["billing.charge"].search(
            [("partner_id.name", "=", "Postpaid Two")]
        )
        september = self.env["billing.charge"].search(
            [("partner_id", "=", self.postpaid.id), ("date", "<", "2026-10-01")]
        )
        moves_before = self.env["account.move"].search_count([])
        for foreign in (other, september):
            wizard = self._postpaid_wizard()
            wizard.action_fetch_charges()
            wizard.charge_ids = [Command.link(foreign.id)]
            with self.assertRaisesRegex(UserError, "fetch the records again"):
                wizard.action_create_invoice()
        self.assertEqual(self.env["account.move"].search_count([]), moves_before)
        self.assertEqual(set((other | september).mapped("state")), {"pending"})

    def test_postpaid_charges_invoiced_meanwhile_write_nothing(self):
        self._october_usage()
        first = self._postpaid_wizard()
        first.action_fetch_charges()
        second = self._postpaid_wizard()
        second.action_fetch_charges()
        self._invoice_of(first.action_create_invoice())
        moves_before = self.env["account.move"].search_count([])
        with self.assertRefusedWritingNothing(UserError, "fetch the records again"):
            second.action_create_invoice()
        self.assertEqual(self.env["account.move"].search_count([]), moves_before)

    # -------------------------------------------------------------------------
    # Access
    # -------------------------------------------------------------------------

    def test_only_billing_users_create_invoices(self):
        accountant = new_test_user(
            self.env,
            login="plain_accountant",
            groups="account.group_account_invoice",
            company_id=self.company.id,
            company_ids=[Command.set(self.company.ids)],
        )
        with self.assertRaises(AccessError):
            self.env["billing.invoice.create"].with_user(accountant).create(
                {"partner_id": self.customer.id, "amount": 10.0}
            )
        wizard = (
            self.env["billing.invoice.create"]
            .with_user(self.billing_user)
            .create({"partner_id": self.customer.id, "amount": 10.0})
        )
        invoice = self._invoice_of(wizard.action_create_invoice())
        self.assertEqual(invoice.create_uid, self.billing_user)
        self.assertEqual(invoice.amount_total, 10.0)
