import threading
import time
from datetime import date

from freezegun import freeze_time

from odoo import SUPERUSER_ID, api
from odoo.exceptions import AccessError, ValidationError
from odoo.tests import TransactionCase, tagged

from ..models.billing_wallet_alert import ALERT_PENDING_KEY, _check_after_commit
from .test_billing_reseller_concurrency import THREAD_TIMEOUT
from .wallet_common import BillingWalletCommon

LOW_SUBJECT = "your wallet balance is low"
ZERO_SUBJECT = "your wallet is empty"


@tagged("post_install", "-at_install")
class TestBillingWalletAlert(BillingWalletCommon):
    """Low and zero balance alerts of prepaid wallets: once per crossing,
    re-armed by a credit, the wallet's own threshold before the company's, the
    reseller told when the company says so, the hourly backstop. The check that
    follows a committed debit is called here directly: in a test transaction,
    post-commit hooks never run (see TestBillingWalletAlertCommit)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.company.billing_low_balance_threshold = 50.0
        cls.move_count = 0

    def _move(self, amount, partner=None, check=True):
        """A manual movement of ``amount`` on the wallet of ``partner``, then
        the check that runs once its transaction has committed."""
        self.move_count += 1
        wallet = (
            self.env["billing.wallet"]
            .sudo()
            ._get_wallet(partner or self.customer, self.company)
        )
        wallet._apply_movements(
            [
                {
                    "kind": "manual",
                    "name": "Alert test",
                    "amount": amount,
                    "idempotency_key": f"alert-test-{self.move_count}",
                }
            ]
        )
        if check:
            wallet._alert_check()
        return wallet

    def _mails(self, wallet, subject, partner=None):
        return self.env["mail.mail"].search(
            [
                ("model", "=", "billing.wallet"),
                ("res_id", "=", wallet.id),
                ("recipient_ids", "in", (partner or wallet.partner_id).ids),
                ("subject", "ilike", subject),
            ]
        )

    # -------------------------------------------------------------------------
    # Low level
    # -------------------------------------------------------------------------

    def test_each_crossing_alerts_once_and_a_credit_rearms(self):
        """100 -> 40 -> 35 -> 60 -> 40 with a threshold of 50: two alerts, one
        per fall through 50."""
        wallet = self._move(100.0)
        self.assertFalse(self._mails(wallet, LOW_SUBJECT))
        self._move(-60.0)
        self.assertEqual(len(self._mails(wallet, LOW_SUBJECT)), 1)
        self.assertTrue(wallet.low_balance_alerted)
        self.assertTrue(wallet.low_balance_alert_date)
        self._move(-5.0)
        self.assertEqual(len(self._mails(wallet, LOW_SUBJECT)), 1, "35: still below")
        self._move(25.0)
        self.assertFalse(wallet.low_balance_alerted, "60: re-armed by the credit")
        self.assertEqual(len(self._mails(wallet, LOW_SUBJECT)), 1)
        self._move(-20.0)
        mails = self._mails(wallet, LOW_SUBJECT)
        self.assertEqual(len(mails), 2)
        self.assertEqual(self._mails(wallet, ""), mails, "no other email")
        self.assertIn("40.00", mails[0].body_html)
        self.assertIn("50.00", mails[0].body_html)
        self.assertEqual(mails[0].recipient_ids, self.customer)
        # Checked again (the backstop, a second hook): nothing more.
        self.assertEqual(wallet._alert_check(), {"low": [], "zero": []})
        self.assertEqual(len(self._mails(wallet, LOW_SUBJECT)), 2)

    def test_credit_short_of_the_threshold_does_not_rearm(self):
        wallet = self._move(100.0)
        self._move(-60.0)
        self._move(9.99)
        self.assertTrue(wallet.low_balance_alerted, "49.99 is still below 50")
        self._move(-10.0)
        self.assertEqual(len(self._mails(wallet, LOW_SUBJECT)), 1)
        self._move(20.01)
        self.assertFalse(wallet.low_balance_alerted, "back to exactly 50")

    def test_debit_is_checked_after_commit_once_per_transaction(self):
        """A debit registers its wallet for the check after commit; several
        debits of a transaction share one hook. A credit registers nothing."""
        postcommit = self.env.cr.postcommit
        wallet = self._move(100.0, check=False)
        self.assertNotIn(ALERT_PENDING_KEY, postcommit.data)
        hooks = len(postcommit._funcs)
        self._move(-10.0, check=False)
        self._move(-10.0, check=False)
        other = self._move(100.0, partner=self.other_customer, check=False)
        self._move(-70.0, partner=self.other_customer, check=False)
        self.assertEqual(postcommit.data[ALERT_PENDING_KEY], {wallet.id, other.id})
        self.assertEqual(len(postcommit._funcs), hooks + 1)
        self.assertFalse(self._mails(other, LOW_SUBJECT), "nothing sent before commit")

    def test_usage_ingest_and_renewal_debits_are_checked(self):
        wallet = self._move(60.0)
        result = (
            self.env["billing.charge"]
            .with_user(self.billing_user)
            .ingest(
                [
                    {
                        "partner_id": self.customer.id,
                        "product_id": self.service.id,
                        "date": "2026-11-02 10:00:00",
                        "quantity": 1,
                        "price_unit": 15.0,
                        "external_ref": "alert-usage-1",
                    }
                ]
            )
        )
        self.assertEqual(result["created"], 1)
        self.assertIn(wallet.id, self.env.cr.postcommit.data[ALERT_PENDING_KEY])
        wallet._alert_check()
        self.assertEqual(len(self._mails(wallet, LOW_SUBJECT)), 1)

    def test_usage_ingest_checks_only_the_wallets_it_may_alert(self):
        """An ingest call registers for the check after commit only the wallets
        its debit leaves below a level they were not alerted of."""
        rich = self._move(200.0)
        poor = self._move(60.0, partner=self.other_customer)
        records = [
            {
                "partner_id": partner.id,
                "product_id": self.service.id,
                "date": "2026-11-02 10:00:00",
                "quantity": 1,
                "price_unit": 15.0,
                "external_ref": f"alert-due-{partner.id}",
            }
            for partner in (self.customer, self.other_customer)
        ]
        Charge = self.env["billing.charge"].with_user(self.billing_user)
        self.assertEqual(Charge.ingest(records)["created"], 2)
        self.assertEqual(self.env.cr.postcommit.data[ALERT_PENDING_KEY], {poor.id})
        self.assertEqual(poor._alert_check(), {"low": [poor.id], "zero": []})
        self.assertFalse(rich.low_balance_alerted)
        # Alerted already, still above zero: the next debit is not checked.
        self.env.cr.postcommit.data[ALERT_PENDING_KEY].clear()
        for record in records:
            record["external_ref"] += "-again"
        self.assertEqual(Charge.ingest(records)["created"], 2)
        self.assertFalse(self.env.cr.postcommit.data[ALERT_PENDING_KEY])
        self.assertAlmostEqual(poor.balance, 30.0)
        self.assertAlmostEqual(rich.balance, 170.0)

    def test_service_renewal_debit_is_checked(self):
        wallet = self._move(70.0)
        service = self.env["billing.service"].create(
            {
                "partner_id": self.customer.id,
                "product_id": self.service.id,
                "interval_type": "month",
                "interval_number": 1,
                "date_start": date(2026, 11, 1),
            }
        )
        with freeze_time(date(2026, 11, 1)):
            service.action_activate()
        self.assertEqual(wallet.balance, 40.0, "the first period of 30 charged")
        self.assertIn(wallet.id, self.env.cr.postcommit.data[ALERT_PENDING_KEY])
        wallet._alert_check()
        self.assertEqual(len(self._mails(wallet, LOW_SUBJECT)), 1)

    def test_wallet_threshold_beats_company_default(self):
        wallet = self._move(100.0, check=False)
        wallet.write(
            {"low_balance_threshold_custom": True, "low_balance_threshold": 20}
        )
        self.assertEqual(wallet.low_balance_threshold_effective, 20.0)
        self._move(-60.0)
        self.assertFalse(self._mails(wallet, LOW_SUBJECT), "40 is above its own 20")
        self._move(-25.0)
        self.assertEqual(len(self._mails(wallet, LOW_SUBJECT)), 1, "15 is below 20")
        # Higher than the company's, and alerts when the company has none.
        self.company.billing_low_balance_threshold = 0.0
        other = self._move(100.0, partner=self.other_customer, check=False)
        other.write({"low_balance_threshold_custom": True, "low_balance_threshold": 80})
        self.other_customer.email = "o@example.com"
        self._move(-25.0, partner=self.other_customer)
        self.assertEqual(len(self._mails(other, LOW_SUBJECT)), 1, "75 below 80")
        # An own threshold of 0: never alerted, whatever the company says.
        self.company.billing_low_balance_threshold = 50.0
        other.low_balance_threshold = 0.0
        other.low_balance_alerted = False
        self._move(-70.0, partner=self.other_customer)
        self.assertEqual(len(self._mails(other, LOW_SUBJECT)), 1)
        self.assertFalse(other.low_balance_alerted)

    def test_company_without_threshold_sends_nothing(self):
        self.company.billing_low_balance_threshold = 0.0
        wallet = self._move(100.0)
        self._move(-100.0)
        self.assertFalse(self._mails(wallet, ""))
        self.assertNotIn(ALERT_PENDING_KEY, self.env.cr.postcommit.data)

    def test_postpaid_and_never_debited_wallets_are_not_alerted(self):
        self.customer.billing_mode = "postpaid"
        wallet = self._move(100.0)
        self._move(-70.0)
        self.assertFalse(self._mails(wallet, ""))
        self.customer.billing_mode = "prepaid"
        # Credited 30 only: it never fell through anything.
        other = self._move(30.0, partner=self.other_customer)
        self.assertFalse(other._alert_check()["low"])
        self.assertEqual(
            self.env["billing.wallet"]._cron_alert_low_balance(auto_commit=False),
            1,
            "the prepaid one again, debited below 50",
        )

    # -------------------------------------------------------------------------
    # Zero level
    # -------------------------------------------------------------------------

    def test_zero_level_once_per_crossing(self):
        self.company.billing_zero_balance_alert = True
        wallet = self._move(100.0)
        self._move(-60.0)
        self._move(-40.0)
        self.assertEqual(len(self._mails(wallet, LOW_SUBJECT)), 1)
        zero = self._mails(wallet, ZERO_SUBJECT)
        self.assertEqual(len(zero), 1)
        self.assertIn("services are suspended", zero.subject)
        self.assertTrue(wallet.zero_balance_alerted)
        self._move(10.0)
        self.assertFalse(wallet.zero_balance_alerted, "re-armed above zero")
        self.assertTrue(wallet.low_balance_alerted, "10 is still below 50")
        self._move(-10.0)
        self.assertEqual(len(self._mails(wallet, ZERO_SUBJECT)), 2)
        self.assertEqual(len(self._mails(wallet, LOW_SUBJECT)), 1)

    def test_zero_at_once_sends_the_zero_alert_only(self):
        self.company.billing_zero_balance_alert = True
        wallet = self._move(100.0)
        self._move(-100.0)
        self.assertEqual(len(self._mails(wallet, ZERO_SUBJECT)), 1)
        self.assertFalse(self._mails(wallet, LOW_SUBJECT))
        self.assertTrue(wallet.low_balance_alerted)
        self._move(100.0)
        self.assertFalse(wallet.low_balance_alerted or wallet.zero_balance_alerted)

    def test_zero_level_off_sends_the_low_alert(self):
        wallet = self._move(100.0)
        self._move(-100.0)
        self.assertFalse(self._mails(wallet, ZERO_SUBJECT))
        self.assertEqual(len(self._mails(wallet, LOW_SUBJECT)), 1)
        self.assertFalse(wallet.zero_balance_alerted)

    # -------------------------------------------------------------------------
    # Resellers
    # -------------------------------------------------------------------------

    def _reseller_customer(self):
        reseller = self.env["res.partner"].create(
            {
                "name": "Alert Reseller",
                "is_company": True,
                "is_billing_reseller": True,
                "email": "reseller@example.com",
            }
        )
        self.customer.billing_reseller_id = reseller
        return reseller

    def test_reseller_notified_when_the_setting_is_on(self):
        reseller = self._reseller_customer()
        self.company.billing_alert_notify_reseller = True
        self.company.billing_zero_balance_alert = True
        wallet = self._move(100.0)
        self._move(-60.0)
        customer_mail = self._mails(wallet, LOW_SUBJECT)
        self.assertEqual(len(customer_mail), 1)
        self.assertIn("Alert Reseller", customer_mail.subject, "white label")
        self.assertIn("reseller@example.com", customer_mail.email_from)
        notice = self._mails(wallet, "Prepaid Customer", partner=reseller)
        self.assertEqual(len(notice), 1)
        self.assertEqual(notice.recipient_ids, reseller)
        self.assertIn("wallet balance low", notice.subject)
        self.assertIn("40.00", notice.body_html)
        self._move(-40.0)
        notices = self._mails(wallet, "Prepaid Customer", partner=reseller)
        self.assertEqual(len(notices), 2)
        self.assertIn("at zero", notices.sorted("id")[-1].subject)

    def test_reseller_not_notified_when_the_setting_is_off(self):
        reseller = self._reseller_customer()
        wallet = self._move(100.0)
        self._move(-60.0)
        self.assertEqual(len(self._mails(wallet, LOW_SUBJECT)), 1)
        self.assertFalse(self._mails(wallet, "", partner=reseller))

    # -------------------------------------------------------------------------
    # Backstop
    # -------------------------------------------------------------------------

    def test_cron_sends_what_no_hook_sent_and_never_again(self):
        """A debit whose post-commit check never ran (the process stopped):
        the hourly pass sends its alert, once."""
        wallet = self._move(100.0)
        self._move(-60.0, check=False)
        self.assertFalse(self._mails(wallet, LOW_SUBJECT))
        cron = self.env.ref("prepaid_postpaid_billing.ir_cron_billing_wallet_alerts")
        self.assertEqual(cron.interval_type, "hours")
        Wallet = self.env["billing.wallet"]
        self.assertEqual(Wallet._cron_alert_low_balance(auto_commit=False), 1)
        self.assertEqual(len(self._mails(wallet, LOW_SUBJECT)), 1)
        self.assertEqual(Wallet._cron_alert_low_balance(auto_commit=False), 0)
        wallet._alert_check()
        self.assertEqual(len(self._mails(wallet, LOW_SUBJECT)), 1)

    def test_cron_rearms_after_the_threshold_is_lowered(self):
        wallet = self._move(100.0)
        self._move(-60.0)
        self.company.billing_low_balance_threshold = 30.0
        self.env["billing.wallet"]._cron_alert_low_balance(auto_commit=False)
        self.assertFalse(wallet.low_balance_alerted, "40 is above 30 now")
        self._move(-15.0)
        self.assertEqual(len(self._mails(wallet, LOW_SUBJECT)), 2)

    # -------------------------------------------------------------------------
    # Settings and rights
    # -------------------------------------------------------------------------

    def test_settings_and_thresholds_are_checked(self):
        self.env["res.config.settings"].create(
            {
                "billing_low_balance_threshold": 25.0,
                "billing_zero_balance_alert": True,
                "billing_alert_notify_reseller": True,
            }
        ).execute()
        settings = self.env["res.config.settings"].create({})
        self.assertEqual(settings.billing_low_balance_threshold, 25.0)
        self.assertEqual(self.company.billing_low_balance_threshold, 25.0)
        self.assertTrue(self.company.billing_zero_balance_alert)
        self.assertTrue(self.company.billing_alert_notify_reseller)
        with self.assertRaisesRegex(ValidationError, "Low Balance Alert of company"):
            self.company.billing_low_balance_threshold = -1.0
        wallet = self._move(10.0)
        with self.assertRaisesRegex(ValidationError, "Low Balance Threshold of the"):
            wallet.low_balance_threshold = 100_000_000.0

    def test_only_administrators_set_a_wallet_threshold(self):
        wallet = self._move(10.0)
        as_manager = wallet.with_user(self.billing_manager).sudo(False)
        as_manager.write(
            {"low_balance_threshold_custom": True, "low_balance_threshold": 5}
        )
        self.assertEqual(wallet.low_balance_threshold, 5.0)
        with self.assertRefusedWritingNothing(AccessError, "only the alert threshold"):
            as_manager.write({"balance": 1000.0})
        with self.assertRefusedWritingNothing(AccessError, "only the alert threshold"):
            as_manager.write({"low_balance_alerted": True})
        with self.assertRefusedWritingNothing(AccessError):
            wallet.with_user(self.billing_user).sudo(False).write(
                {"low_balance_threshold": 1.0}
            )
        wallet.invalidate_recordset()
        self.assertEqual(wallet.balance, 10.0)
        self.assertEqual(wallet.low_balance_threshold, 5.0)


@tagged("post_install", "-at_install")
class TestBillingWalletAlertCommit(TransactionCase):
    """The check after a debit runs once the debit's transaction has committed,
    on cursors of its own: a debit rolled back sends nothing, a committed one
    sends once. Real cursors of the registry; the fixtures are committed and
    removed again in SQL after the test."""

    def setUp(self):
        super().setUp()
        self.data = {}
        self.addCleanup(self._clean_up)
        with self.registry.cursor() as alert_cr:
            env = api.Environment(alert_cr, SUPERUSER_ID, {})
            customer = env["res.partner"].create(
                {
                    "name": "Committed Alert Customer",
                    "is_company": True,
                    "email": "committed-alert@example.com",
                    "billing_mode": "prepaid",
                }
            )
            wallet = env["billing.wallet"]._get_wallet(customer, env.company)
            wallet.write(
                {"low_balance_threshold_custom": True, "low_balance_threshold": 50}
            )
            self.data = {"partner_id": customer.id, "wallet_id": wallet.id}
            wallet._apply_movements(
                [
                    {
                        "kind": "manual",
                        "name": "Alert test credit",
                        "amount": 100.0,
                        "idempotency_key": f"alert-commit-credit-{customer.id}",
                    }
                ]
            )
            alert_cr.commit()

    def _clean_up(self):
        if not self.data:
            return
        with self.registry.cursor() as alert_cr:
            alert_cr.execute(
                "DELETE FROM mail_message WHERE model = 'billing.wallet'"
                " AND res_id = %s",
                [self.data["wallet_id"]],
            )
            alert_cr.execute(
                "DELETE FROM billing_wallet_move WHERE wallet_id = %s",
                [self.data["wallet_id"]],
            )
            alert_cr.execute(
                "DELETE FROM billing_wallet WHERE id = %s", [self.data["wallet_id"]]
            )
            env = api.Environment(alert_cr, SUPERUSER_ID, {})
            env["res.partner"].browse(self.data["partner_id"]).unlink()
            alert_cr.commit()

    def _debit(self, alert_cr, amount, key):
        _balance, alerted_before, mails_before = self._state(alert_cr)
        env = api.Environment(alert_cr, SUPERUSER_ID, {})
        env["billing.wallet"].browse(self.data["wallet_id"])._apply_movements(
            [
                {
                    "kind": "manual",
                    "name": "Alert test debit",
                    "amount": -amount,
                    "idempotency_key": f"alert-commit-{key}-{self.data['wallet_id']}",
                }
            ]
        )
        self.assertIn(
            self.data["wallet_id"], alert_cr.postcommit.data[ALERT_PENDING_KEY]
        )
        # Nothing sent nor marked by the debit's own transaction.
        _balance, alerted, mails = self._state(alert_cr)
        self.assertEqual((alerted, mails), (alerted_before, mails_before))

    def _committed(self):
        """The wallet's committed balance and alert state, and its alerts."""
        with self.registry.cursor() as alert_cr:
            return self._state(alert_cr)

    def _state(self, alert_cr):
        """The wallet's balance and alert state, and its alerts, as ``alert_cr``
        sees them."""
        alert_cr.execute(
            "SELECT balance::float, low_balance_alerted IS TRUE FROM billing_wallet"
            " WHERE id = %s",
            [self.data["wallet_id"]],
        )
        balance, alerted = alert_cr.fetchone()
        alert_cr.execute(
            "SELECT COUNT(*) FROM mail_mail m"
            "  JOIN mail_message msg ON msg.id = m.mail_message_id"
            " WHERE msg.model = 'billing.wallet' AND msg.res_id = %s"
            "   AND msg.subject ILIKE %s",
            [self.data["wallet_id"], f"%{LOW_SUBJECT}%"],
        )
        return balance, alerted, alert_cr.fetchone()[0]

    def test_rolled_back_debit_sends_nothing(self):
        alert_cr = self.registry.cursor()
        try:
            self._debit(alert_cr, 70.0, "rollback")
            alert_cr.rollback()
        finally:
            alert_cr.close()
        self.assertEqual(self._committed(), (100.0, False, 0))

    def test_committed_debit_sends_once(self):
        with self.registry.cursor() as alert_cr:
            self._debit(alert_cr, 30.0, "first")
            self._debit(alert_cr, 40.0, "second")
            alert_cr.commit()  # the hook runs here, after the commit
            self.assertFalse(alert_cr.postcommit.data)
        self.assertEqual(self._committed(), (30.0, True, 1))
        with self.registry.cursor() as alert_cr:
            self._debit(alert_cr, 10.0, "third")
            alert_cr.commit()
        self.assertEqual(self._committed(), (20.0, True, 1), "still below: no resend")

    def test_concurrent_checks_send_once(self):
        """Two checks of a committed debit at the same moment (its hook and the
        scheduled pass, two hooks): both wait for the wallet row, one marks
        the alert sent and queues it, the other then finds it marked."""
        with self.registry.cursor() as alert_cr:
            self._debit(alert_cr, 70.0, "lost-hook")
            alert_cr.postcommit.clear()  # as if the process stopped at commit
            alert_cr.commit()
        self.assertEqual(self._committed(), (30.0, False, 0))
        wallet_ids = {self.data["wallet_id"]}
        threads = []
        with self.registry.cursor() as lock_cr:
            lock_cr.execute(
                "SELECT id FROM billing_wallet WHERE id = %s FOR UPDATE",
                [self.data["wallet_id"]],
            )
            for _index in range(2):
                thread = threading.Thread(
                    target=_check_after_commit, args=(self.registry, wallet_ids)
                )
                thread.dbname = self.env.cr.dbname
                thread.testing = True
                thread.start()
                threads.append(thread)
            # Both checks wait for the row this cursor holds.
            deadline = time.monotonic() + THREAD_TIMEOUT
            waiting = 0
            while waiting < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
                with self.registry.cursor() as watch_cr:
                    watch_cr.execute(
                        "SELECT COUNT(*) FROM pg_stat_activity"
                        " WHERE datname = current_database()"
                        "   AND wait_event_type = 'Lock'"
                    )
                    waiting = watch_cr.fetchone()[0]
            self.assertEqual(waiting, 2, "both checks wait for the wallet row")
            lock_cr.rollback()
        for thread in threads:
            thread.join(THREAD_TIMEOUT)
        self.assertFalse([thread for thread in threads if thread.is_alive()])
        self.assertEqual(self._committed(), (30.0, True, 1))
