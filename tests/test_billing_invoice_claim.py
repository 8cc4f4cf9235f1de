from datetime import date

from freezegun import freeze_time

from odoo.exceptions import UserError
from odoo.tests import Form, tagged

from .recurring_common import BillingRecurringCommon


@tagged("post_install", "-at_install")
@freeze_time("2026-11-10")
class TestBillingInvoiceClaim(BillingRecurringCommon):
    """Create & Claim records the payment the user says was received: never a
    wallet payment instead, and an over-payment is told, not hidden."""

    def _claim(self, customer_type, payment_amount=None, **values):
        form = Form(self.env["billing.invoice.create"])
        form.customer_type = customer_type
        for name, value in values.items():
            setattr(form, name, value)
        wizard = form.save()
        if customer_type == "postpaid":
            wizard.action_fetch_charges()
        wizard.action_claim()
        wizard.payment_journal_id = self.bank_journal
        if payment_amount is not None:
            wizard.payment_amount = payment_amount
        action = wizard.action_create_and_claim()
        return wizard, self.env["account.move"].browse(action["res_id"])

    def _postpaid_claim(self, payment_amount=None):
        self._usage(self.postpaid, self.sms, "2026-10-05 00:00:00", 10.0, 0.05, 2)
        return self._claim(
            "postpaid",
            payment_amount,
            partner_id=self.postpaid,
            date_from=date(2026, 10, 1),
            date_to=date(2026, 10, 31),
        )

    def test_claim_not_paid_from_the_wallet_it_would_cover(self):
        self.company.billing_wallet_allow_payments = True
        self._fund(50.0, partner=self.postpaid)
        self.assertEqual(self.postpaid.billing_balance, 50.0)
        _wizard, invoice = self._postpaid_claim()
        self.assertEqual(invoice.amount_total, 1.0)
        self.assertIn(invoice.payment_state, ("paid", "in_payment"))
        payment = invoice.matched_payment_ids
        self.assertEqual(len(payment), 1, "the bank payment alone")
        self.assertEqual(payment.journal_id, self.bank_journal)
        self.assertEqual(payment.amount, 1.0)
        self.assertEqual(self.postpaid.billing_balance, 50.0, "the wallet untouched")
        self.assertFalse(
            invoice.message_ids.filtered(lambda m: "wallet" in str(m.body).lower()),
            "no word of the wallet on a claimed invoice",
        )
        self.assertBooksMatchWallet(self.postpaid)

    def test_invoice_created_without_claim_still_paid_from_the_wallet(self):
        self.company.billing_wallet_allow_payments = True
        self._fund(50.0, partner=self.postpaid)
        self._usage(self.postpaid, self.sms, "2026-10-05 00:00:00", 10.0, 0.05, 2)
        wizard = self._postpaid_wizard()
        action = wizard.action_create_invoice()
        invoice = self.env["account.move"].browse(action["res_id"])
        self.assertIn(invoice.payment_state, ("paid", "in_payment"))
        self.assertEqual(
            invoice.matched_payment_ids.journal_id,
            self.company.billing_wallet_journal_id,
        )
        self.assertEqual(self.postpaid.billing_balance, 49.0)
        self.assertBooksMatchWallet(self.postpaid)

    def test_recharge_overpaid_excess_stays_outstanding_and_is_told(self):
        _wizard, invoice = self._claim(
            "prepaid",
            150.0,
            partner_id=self.customer,
            amount=100.0,
            description="Recharge",
        )
        self.assertIn(invoice.payment_state, ("paid", "in_payment"))
        self.assertEqual(invoice.matched_payment_ids.amount, 150.0)
        self.assertEqual(
            self.customer.billing_balance, 100.0, "the recharge credits its amount"
        )
        # The excess is the customer's outstanding credit on the receivable.
        receivable = self.customer.property_account_receivable_id
        self.assertEqual(self._account_balance(receivable, self.customer), -50.0)
        excess = invoice.message_ids.filtered(
            lambda m: "more than the invoice total" in str(m.body)
        )
        self.assertEqual(len(excess), 1)
        self.assertIn("50.00", str(excess.body))
        self.assertIn("outstanding credit", str(excess.body))
        self.assertBooksMatchWallet()

    def test_excess_shown_before_the_claim(self):
        form = Form(self.env["billing.invoice.create"])
        form.customer_type = "prepaid"
        form.partner_id = self.customer
        form.amount = 100.0
        wizard = form.save()
        wizard.action_claim()
        self.assertEqual(wizard.payment_excess, 0.0)
        wizard.payment_amount = 150.0
        self.assertEqual(wizard.payment_excess, 50.0)
        wizard.payment_amount = 60.0
        self.assertEqual(wizard.payment_excess, 0.0, "a partial payment has none")

    def test_postpaid_overpaid_excess_told(self):
        self.company.billing_wallet_allow_payments = True
        self._fund(50.0, partner=self.postpaid)
        _wizard, invoice = self._postpaid_claim(3.0)
        self.assertIn(invoice.payment_state, ("paid", "in_payment"))
        excess = invoice.message_ids.filtered(
            lambda m: "more than the invoice total" in str(m.body)
        )
        self.assertIn("2.00", str(excess.body))
        self.assertEqual(self.postpaid.billing_balance, 50.0)
        self.assertBooksMatchWallet(self.postpaid)

    def test_recharge_beyond_wallet_limit_refused(self):
        form = Form(self.env["billing.invoice.create"])
        form.customer_type = "prepaid"
        form.partner_id = self.customer
        form.amount = 12_345_678_901_234.56
        wizard = form.save()
        for action in (wizard.action_create_invoice, wizard.action_claim):
            with self.assertRefusedWritingNothing(
                UserError,
                r"Recharge Amount of the invoice for Prepaid Customer must be below",
            ):
                action()
