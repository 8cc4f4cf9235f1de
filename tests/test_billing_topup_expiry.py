from datetime import datetime, timedelta

from freezegun import freeze_time

from odoo.tests import tagged

from .wallet_common import BillingWalletCommon


@tagged("post_install", "-at_install")
class TestBillingTopupExpiry(BillingWalletCommon):
    def test_unpaid_topup_cancelled_after_window_not_before(self):
        self.company.billing_topup_expiry_hours = 48
        start = datetime(2026, 11, 2, 9, 0, 0)
        with freeze_time(start):
            invoice = self._invoice([(self.package, 1, 100.0)])
            paid = self._invoice([(self.package, 1, 100.0)])
            self._pay(paid)
            plain = self._invoice([(self.service, 1, 30.0)])
        self.assertEqual(invoice.billing_topup_expires_at, start + timedelta(hours=48))
        self.assertFalse(plain.billing_topup_expires_at)

        with freeze_time(start + timedelta(hours=47, minutes=59)):
            self.env["account.move"]._cron_billing_expire_topups()
        self.assertEqual(invoice.state, "posted")

        with freeze_time(start + timedelta(hours=48, minutes=1)):
            self.env["account.move"]._cron_billing_expire_topups()
        self.assertEqual(invoice.state, "cancel")
        self.assertEqual(paid.state, "posted", "a paid top-up is never cancelled")
        self.assertEqual(paid.payment_state, "paid")
        self.assertEqual(plain.state, "posted")
        message = invoice.message_ids.filtered(
            lambda m: "cancelled" in (m.subject or "")
        )
        self.assertEqual(len(message), 1)
        self.assertIn(self.customer, message.partner_ids)
        self.assertEqual(self.customer.billing_balance, 150.0)
        self.assertBooksMatchWallet()

    def test_no_window_keeps_topups_open(self):
        self.company.billing_topup_expiry_hours = 0
        invoice = self._invoice([(self.package, 1, 100.0)])
        self.assertFalse(invoice.billing_topup_expires_at)
        with freeze_time(datetime.now() + timedelta(days=30)):
            self.env["account.move"]._cron_billing_expire_topups()
        self.assertEqual(invoice.state, "posted")
