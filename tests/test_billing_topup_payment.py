from datetime import datetime, timedelta

from freezegun import freeze_time

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
        cls._setup_test_provider()

    def _topup(self):
        with freeze_time(START):
            return self._invoice([(self.package, 1, 100.0)])

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
        # Not under assertRaises, whose savepoint would undo a reopening made
        # before Odoo's refusal: what the confirmation did stays in this
        # transaction (Odoo's refusal is raised in Python, the transaction is
        # usable), flushed and read back from the database.
        try:
            self._set_state(tx, "done")
        except UserError as error:
            self.assertIn("only reconcile posted entries", str(error))
        else:
            self.fail("the payment of a cancelled top-up was not refused")
        self.env.flush_all()
        self.env.invalidate_all()
        self.assertEqual(invoice.state, "cancel")
        self.assertFalse(invoice.billing_topup_expired)
        self.assertFalse(self._wallet())
