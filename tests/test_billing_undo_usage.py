from datetime import date

from freezegun import freeze_time

from odoo.exceptions import UserError
from odoo.tests import tagged

from .recurring_common import BillingRecurringCommon


@tagged("post_install", "-at_install")
@freeze_time("2026-11-05")
class TestBillingUndoUsageInvoice(BillingRecurringCommon):
    """A recurring invoice of fractional usage paid from the wallet, cancelled,
    reset, posted again and billed again by Create Invoice: after every step
    the wallet equals the books (invariant 1) and every charge is in exactly
    one place (invariant 4)."""

    def setUp(self):
        super().setUp()
        self.company.billing_wallet_allow_payments = True
        self._fund(50.0, partner=self.postpaid)
        self.schedule = self._schedule(generation_mode="confirm")
        # 0.125 + 0.333 + 1.0044 GB at 10.00: 14.624, billed 14.62.
        for quantity in (0.125, 0.333, 1.0044):
            self._usage(self.postpaid, self.sms, "2026-10-03", quantity, 10.0)
        self.charges = self.env["billing.charge"].search(
            [("partner_id", "=", self.postpaid.id)]
        )

    def _balance(self):
        wallet = self._wallet(self.postpaid)
        wallet.invalidate_recordset(["balance"])
        return wallet.balance

    def assertChargesOn(self, invoice):
        """Every charge is billed by ``invoice``, at its exact sum."""
        self.charges.invalidate_recordset()
        self.assertEqual(set(self.charges.mapped("state")), {"invoiced"})
        self.assertEqual(self.charges.invoice_line_id.move_id, invoice)
        self.assertChargesMatchUsageLines(invoice)

    def assertChargesPending(self):
        self.charges.invalidate_recordset()
        self.assertEqual(set(self.charges.mapped("state")), {"pending"})
        self.assertFalse(self.charges.invoice_line_id)

    def test_cancel_reset_post_and_bill_again(self):
        self._run()
        invoice = self._invoices(self.schedule)
        self.assertEqual(invoice.state, "posted")
        self.assertEqual(invoice.amount_total, 14.62)
        self.assertIn(invoice.payment_state, ("paid", "in_payment"))
        self.assertAlmostEqual(self._balance(), 35.38, places=6)
        self.assertChargesOn(invoice)
        self.assertBooksMatchWallet(self.postpaid)

        # Cancelled: the wallet gets its money back, the usage is pending again.
        invoice.button_cancel()
        self.assertEqual(invoice.state, "cancel")
        self.assertAlmostEqual(self._balance(), 50.0, places=6)
        self.assertChargesPending()
        self.assertBooksMatchWallet(self.postpaid)

        # Reset to draft: it bills the same usage again; nothing paid yet.
        invoice.button_draft()
        self.assertChargesOn(invoice)
        self.assertAlmostEqual(self._balance(), 50.0, places=6)
        self.assertBooksMatchWallet(self.postpaid)

        # Posted again: paid from the wallet once more, one net debit.
        invoice.action_post()
        self.assertIn(invoice.payment_state, ("paid", "in_payment"))
        self.assertAlmostEqual(self._balance(), 35.38, places=6)
        self.assertChargesOn(invoice)
        self.assertBooksMatchWallet(self.postpaid)

        # Cancelled for good: it cannot be deleted (it moved the wallet), and
        # Create Invoice bills its usage for the period instead.
        invoice.button_cancel()
        self.assertAlmostEqual(self._balance(), 50.0, places=6)
        self.assertBooksMatchWallet(self.postpaid)
        with self.assertRefusedWritingNothing(UserError, "cannot be deleted"):
            invoice.unlink()
        self.assertChargesPending()
        wizard = self._postpaid_wizard()
        self.assertEqual(wizard.charge_count, 3)
        self.assertEqual(wizard.charge_amount, 14.62)
        action = wizard.action_create_invoice()
        again = self.env["account.move"].browse(action["res_id"])
        self.assertEqual(again.amount_total, 14.62)
        self.assertChargesOn(again)
        if again.state == "draft":
            again.action_post()
        self.assertIn(again.payment_state, ("paid", "in_payment"))
        self.assertAlmostEqual(self._balance(), 35.38, places=6)
        self.assertBooksMatchWallet(self.postpaid)

        # The first invoice, billed elsewhere since, cannot bill it twice.
        with self.assertRefusedWritingNothing(UserError, again.name):
            invoice.button_draft()
        self.assertEqual(invoice.state, "cancel")

    def test_draft_deleted_usage_billed_on_the_next_invoice(self):
        self.schedule.generation_mode = "draft"
        self._run()
        draft = self._invoices(self.schedule)
        self.assertEqual(draft.state, "draft")
        self.assertChargesOn(draft)
        draft.unlink()
        self.assertChargesPending()
        self.assertBooksMatchWallet(self.postpaid)
        # The next period's invoice takes the late usage of October.
        self._run(today=date(2026, 12, 5))
        december = self._invoices(self.schedule)
        self.assertEqual(len(december), 1)
        self.assertChargesOn(december)
        self.assertEqual(december.amount_total, 14.62)
        self.assertBooksMatchWallet(self.postpaid)
