from odoo.exceptions import UserError
from odoo.tests import tagged
from odoo.tools import SQL

from .wallet_common import BillingWalletCommon


@tagged("post_install", "-at_install")
class TestBillingWalletLimit(BillingWalletCommon):
    """Wallet amounts are exact: an amount or a balance a wallet cannot hold to the
    usage precision is refused with a clear message."""

    def _adjust_wizard(self, amount, direction="credit", partner=None):
        return self.env["billing.wallet.adjust"].create(
            {
                "partner_id": (partner or self.customer).id,
                "direction": direction,
                "amount": amount,
                "reason": "Large account",
            }
        )

    def _adjust(self, amount, direction="credit", partner=None):
        return self._adjust_wizard(amount, direction, partner).action_apply()

    def _stored(self, table, column, record_id):
        """The value PostgreSQL holds, as text: no float in between."""
        self.env.flush_all()
        self.env.cr.execute(
            SQL(
                "SELECT %s::text FROM %s WHERE id = %s",
                SQL.identifier(column),
                SQL.identifier(table),
                record_id,
            )
        )
        return self.env.cr.fetchone()[0]

    def test_huge_credit_refused_clearly(self):
        # 999,999,999.99 was stored as 999,999,999.990002 (Odoo's float rounding at
        # 6 decimals drifts from about 5e8), 12,345,678,901,234.56 as ...234.59.
        for amount in (12_345_678_901_234.56, 999_999_999.99, 100_000_000.0):
            wizard = self._adjust_wizard(amount)
            with (
                self.subTest(amount=amount),
                self.assertRefusedWritingNothing(
                    UserError,
                    r"Amount of the wallet credit for Prepaid Customer must be "
                    r"below \S*\s?100,000,000\.00",
                ),
            ):
                wizard.action_apply()

    def test_credit_below_the_limit_is_exact(self):
        self._adjust(99_999_999.99)
        wallet = self._wallet()
        move = wallet.move_ids
        self.assertEqual(
            self._stored("billing_wallet", "balance", wallet.id), "99999999.990000"
        )
        self.assertEqual(
            self._stored("billing_wallet_move", "amount", move.id), "99999999.990000"
        )
        self.assertEqual(
            self._stored("billing_wallet_move", "balance_after", move.id),
            "99999999.990000",
        )
        wallet_account = self.company.billing_wallet_account_id
        line = move.account_move_id.line_ids.filtered(
            lambda line: line.account_id == wallet_account
        )
        self.assertEqual(
            self._stored("account_move_line", "balance", line.id), "-99999999.99"
        )
        self.assertBooksMatchWallet()

        # Small movements on a large balance stay exact to the micro-unit.
        self._adjust(0.01, direction="debit")
        self.assertEqual(
            self._stored("billing_wallet", "balance", wallet.id), "99999999.980000"
        )
        self.assertEqual(
            self._stored(
                "billing_wallet_move",
                "balance_after",
                wallet.move_ids.sorted("id")[-1].id,
            ),
            "99999999.980000",
        )
        self.assertBooksMatchWallet()

    def test_balance_beyond_the_limit_refused(self):
        self._adjust(99_999_999.0)
        wizard = self._adjust_wizard(1.5)
        with self.assertRefusedWritingNothing(
            UserError, r"Wallet of Prepaid Customer.*to \S+\s?100,000,000\.50.*below"
        ):
            wizard.action_apply()
        self.assertEqual(self._wallet().balance, 99_999_999.0)
        self.assertBooksMatchWallet()

    def test_movement_beyond_the_limit_refused(self):
        wallet = (
            self.env["billing.wallet"].sudo()._get_wallet(self.customer, self.company)
        )
        with self.assertRefusedWritingNothing(
            UserError, r"Wallet of Prepaid Customer.*Amount"
        ):
            wallet._apply_movements(
                [
                    {
                        "kind": "manual",
                        "name": "Huge",
                        "amount": 12_345_678_901_234.56,
                        "idempotency_key": "manual:huge",
                    }
                ]
            )

    def test_usage_precision_sums_exact(self):
        """Many movements of fractions of a cent add up exactly in the ledger."""
        wallet = (
            self.env["billing.wallet"].sudo()._get_wallet(self.customer, self.company)
        )
        self._adjust(99_000_000.0)
        wallet._apply_movements(
            [
                {
                    "kind": "manual",
                    "name": f"Fraction {index}",
                    "amount": -0.100001,
                    "idempotency_key": f"manual:fraction:{index}",
                }
                for index in range(10)
            ]
        )
        self.assertEqual(
            self._stored("billing_wallet", "balance", wallet.id), "98999998.999990"
        )
        last = wallet.move_ids.sorted("id")[-1]
        self.assertEqual(
            self._stored("billing_wallet_move", "balance_after", last.id),
            "98999998.999990",
        )
