from datetime import datetime, timedelta
from unittest.mock import patch

from freezegun import freeze_time

from odoo import Command
from odoo.exceptions import UserError
from odoo.tests import tagged

from .wallet_common import BillingWalletCommon

START = datetime(2026, 11, 2, 9, 0, 0)
AFTER_WINDOW = START + timedelta(hours=48, minutes=1)


@tagged("post_install", "-at_install")
class TestBillingTopupInFlight(BillingWalletCommon):
    """The expiry of unpaid top-ups and the online payments of them: real
    transactions of a test provider, confirmed as the provider's notification
    would."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.company.billing_topup_expiry_hours = 48
        PaymentMethod = cls.env["account.payment.method"]
        method_information = PaymentMethod._get_payment_method_information()
        method_information["none"] = {"mode": "electronic", "type": ("bank",)}
        # The payment method of the test provider, as Odoo's account_payment
        # tests declare it.
        cls.payment_method = cls.env.ref("payment.payment_method_unknown")
        with patch.object(
            type(PaymentMethod),
            "_get_payment_method_information",
            lambda self: method_information,
        ):
            PaymentMethod.sudo().create(
                {"name": "Test provider", "code": "none", "payment_type": "inbound"}
            )
            cls.provider = cls.env["payment.provider"].create(
                {
                    "name": "Test Provider",
                    "code": "none",
                    "state": "test",
                    "company_id": cls.company.id,
                    "payment_method_ids": [Command.set(cls.payment_method.ids)],
                }
            )
            cls.provider.journal_id = cls.bank_journal
        cls.payment_method.active = True
        cls.tx_count = 0

    def _topup(self):
        with freeze_time(START):
            return self._invoice([(self.package, 1, 100.0)])

    def _transaction(self, invoice, state=None):
        """An online payment of ``invoice``, brought to ``state`` as the
        provider's notifications do."""
        self.tx_count += 1
        tx = (
            self.env["payment.transaction"]
            .sudo()
            .create(
                {
                    "provider_id": self.provider.id,
                    "payment_method_id": self.payment_method.id,
                    "amount": invoice.amount_residual,
                    "currency_id": invoice.currency_id.id,
                    "partner_id": invoice.partner_id.id,
                    "reference": f"{invoice.name}-TEST-{self.tx_count}",
                    "operation": "online_redirect",
                    "invoice_ids": [Command.set(invoice.ids)],
                }
            )
        )
        if state:
            self._set_state(tx, state)
        return tx

    def _set_state(self, tx, state):
        {
            "pending": tx._set_pending,
            "authorized": tx._set_authorized,
            "done": tx._set_done,
            "cancel": tx._set_canceled,
            "error": lambda: tx._set_error("Declined by the test provider."),
        }[state]()
        # What the provider's notification or the post-processing cron runs next.
        tx._post_process()

    def _expire(self, when=AFTER_WINDOW):
        with freeze_time(when):
            return self.env["account.move"]._cron_billing_expire_topups()

    # -------------------------------------------------------------------------
    # Tests
    # -------------------------------------------------------------------------

    def test_pending_or_authorized_payment_keeps_topup_open(self):
        # A provider capturing authorized payments by hand, as Odoo's tests set it.
        self.provider.support_manual_capture = "full_only"
        pending = self._topup()
        self._transaction(pending, "pending")
        authorized = self._topup()
        self._transaction(authorized, "authorized")
        unpaid = self._topup()
        self.assertEqual(self._expire(), 1, "only the top-up without a payment")
        self.assertEqual(unpaid.state, "cancel")
        self.assertEqual(pending.state, "posted")
        self.assertEqual(authorized.state, "posted")
        self.assertTrue(pending.billing_topup_expires_at, "picked again later")
        self.assertTrue(authorized.billing_topup_expires_at)
        self.assertBooksMatchWallet()

    def test_pending_payment_confirmed_after_window_credits_wallet(self):
        invoice = self._topup()
        tx = self._transaction(invoice, "pending")
        self._expire()
        self.assertEqual(invoice.state, "posted")
        with freeze_time(AFTER_WINDOW + timedelta(hours=1)):
            self._set_state(tx, "done")
        self.assertTrue(tx.payment_id)
        self.assertIn(invoice.payment_state, ("paid", "in_payment"))
        self.assertEqual(self.customer.billing_balance, 150.0)
        self.assertFalse(invoice.billing_topup_expires_at)
        self.assertEqual(self._expire(AFTER_WINDOW + timedelta(hours=2)), 0)
        self.assertEqual(invoice.state, "posted", "a paid top-up never expires")
        self.assertBooksMatchWallet()

    def test_confirmed_payment_not_yet_processed_keeps_topup_open(self):
        """The provider confirmed the payment; the post-processing creating its
        payment (the customer's return page or its cron) has not run yet."""
        invoice = self._topup()
        tx = self._transaction(invoice)
        tx._set_done()
        self.assertEqual(self._expire(), 0)
        self.assertEqual(invoice.state, "posted")
        tx._post_process()
        self.assertIn(invoice.payment_state, ("paid", "in_payment"))
        self.assertEqual(self.customer.billing_balance, 150.0)
        self.assertFalse(
            invoice.message_ids.filtered(lambda m: "cancelled" in (m.subject or "")),
            "no word of a cancellation to the customer",
        )
        self.assertBooksMatchWallet()

    def test_payment_failing_after_window_lets_topup_expire(self):
        for final in ("cancel", "error"):
            with self.subTest(final=final):
                invoice = self._topup()
                tx = self._transaction(invoice, "pending")
                self.assertEqual(self._expire(), 0)
                self.assertEqual(invoice.state, "posted")
                with freeze_time(AFTER_WINDOW + timedelta(hours=1)):
                    self._set_state(tx, final)
                self.assertEqual(self._expire(AFTER_WINDOW + timedelta(hours=2)), 1)
                self.assertEqual(invoice.state, "cancel")
                self.assertTrue(invoice.billing_topup_expired)
        self.assertFalse(self._wallet(), "nothing credited")

    def test_abandoned_draft_payment_does_not_block_expiry(self):
        invoice = self._topup()
        self._transaction(invoice)
        self.assertEqual(self._expire(), 1)
        self.assertEqual(invoice.state, "cancel")

    def test_payment_confirmed_after_expiry_reopens_and_credits(self):
        """The customer left the provider's page with the transaction draft; the
        top-up expired; the provider then confirms the payment."""
        invoice = self._topup()
        tx = self._transaction(invoice)
        self.assertEqual(self._expire(), 1)
        self.assertEqual(invoice.state, "cancel")
        with freeze_time(AFTER_WINDOW + timedelta(hours=1)):
            self._set_state(tx, "done")
        self.assertTrue(tx.payment_id, "the money received is a payment in Odoo")
        self.assertEqual(tx.payment_id.state, "paid")
        self.assertEqual(invoice.state, "posted")
        self.assertFalse(invoice.billing_topup_expired)
        self.assertIn(invoice.payment_state, ("paid", "in_payment"))
        self.assertEqual(self.customer.billing_balance, 150.0)
        self.assertFalse(invoice.billing_topup_expires_at)
        self.assertTrue(
            invoice.message_ids.filtered(lambda m: "Reopened" in str(m.body)),
        )
        self.assertBooksMatchWallet()

    def test_manually_cancelled_topup_is_not_reopened(self):
        """Only the expiry reopens a top-up: one an accountant cancelled stays
        cancelled, and its confirmed payment is refused as Odoo refuses the
        payment of any cancelled invoice (the transaction stays to process)."""
        invoice = self._topup()
        tx = self._transaction(invoice)
        invoice.button_draft()
        invoice.button_cancel()
        with self.assertRaisesRegex(UserError, "only reconcile posted entries"):
            self._set_state(tx, "done")
        self.assertEqual(invoice.state, "cancel")
        self.assertFalse(invoice.billing_topup_expired)
        self.assertFalse(self._wallet())
