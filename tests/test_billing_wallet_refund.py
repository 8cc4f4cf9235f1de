from odoo import Command
from odoo.exceptions import AccessError, UserError
from odoo.tests import new_test_user, tagged

from .wallet_common import BillingWalletCommon


@tagged("post_install", "-at_install")
class TestBillingWalletRefund(BillingWalletCommon):
    """Credit notes of top-up invoices take back the credit they granted."""

    def _paid_package(self, quantity=1):
        invoice = self._invoice([(self.package, quantity, 100.0)])
        self._pay(invoice)
        return invoice

    def _credit_note(self, invoice, price_unit=None, post=True):
        """A credit note of ``invoice`` (its lines at ``price_unit`` when given),
        as the accountant makes it with *Credit Note*."""
        refund = invoice._reverse_moves(
            [{"invoice_date": "2026-11-10", "ref": f"Refund of {invoice.name}"}]
        )
        if price_unit is not None:
            refund.invoice_line_ids.price_unit = price_unit
        if post:
            refund.action_post()
        return refund

    def _spend(self, amount):
        """Pay an invoice of ``amount`` from the wallet."""
        self._invoice([(self.service, 1, amount)]).action_billing_pay_from_wallet()

    def _refund_moves(self, refund):
        return self.env["billing.wallet.move"].search([("invoice_id", "=", refund.id)])

    def test_full_refund_of_paid_package_takes_back_credit_and_bonus(self):
        invoice = self._paid_package()
        self.assertEqual(self.customer.billing_balance, 150.0)
        refund = self._credit_note(invoice)
        self.assertEqual(refund.state, "posted")
        movement = self._refund_moves(refund)
        self.assertEqual(len(movement), 1)
        self.assertEqual(movement.kind, "refund")
        self.assertEqual(movement.amount, -150.0)
        self.assertEqual(movement.idempotency_key, f"refund:{refund.id}")
        self.assertTrue(movement.account_move_id)
        self.customer.invalidate_recordset()
        self.assertEqual(self.customer.billing_balance, 0.0)
        self.assertBooksMatchWallet()
        # The pending top-ups and bonus accounts are back to nothing for it.
        self.assertAlmostEqual(
            self._account_balance(
                self.company.billing_wallet_topup_account_id, self.customer
            ),
            0.0,
        )
        self.assertAlmostEqual(
            self._account_balance(
                self.company.billing_wallet_bonus_account_id, self.customer
            ),
            0.0,
        )
        self.assertIn("taken back", refund.message_ids[:1].body)

    def test_partial_refund_takes_bonus_in_proportion(self):
        invoice = self._paid_package()
        refund = self._credit_note(invoice, price_unit=40.0)
        # 40 of 100 refunded: 40 paid and 20 of bonus.
        self.assertEqual(self._refund_moves(refund).amount, -60.0)
        self.customer.invalidate_recordset()
        self.assertEqual(self.customer.billing_balance, 90.0)
        self.assertBooksMatchWallet()
        # The rest refunded later takes back the rest, never more.
        second = self._credit_note(invoice, price_unit=60.0)
        self.assertEqual(self._refund_moves(second).amount, -90.0)
        self.customer.invalidate_recordset()
        self.assertEqual(self.customer.billing_balance, 0.0)
        self.assertBooksMatchWallet()

    def test_refund_of_half_spent_package(self):
        invoice = self._paid_package()
        self._spend(90.0)  # 60 of the 150 left
        refund = self._credit_note(invoice, post=False)
        with self.assertRefusedWritingNothing(
            UserError,
            r"Prepaid Customer has spent in part\. The wallet balance of "
            r".*60\.00 covers a refund of at most .*40\.00",
        ):
            refund.action_post()
        self.assertEqual(refund.state, "draft")
        self.assertFalse(self._refund_moves(refund))
        # What the balance covers can be refunded: 40 paid is 60 of credit.
        refund.invoice_line_ids.price_unit = 40.0
        refund.action_post()
        self.assertEqual(self._refund_moves(refund).amount, -60.0)
        self.assertAlmostEqual(self._wallet().balance, 0.0, places=6)
        self.assertBooksMatchWallet()

    def test_refund_of_recharge(self):
        invoice = self._fund(50.0)
        refund = self._credit_note(invoice, price_unit=20.0)
        self.assertEqual(self._refund_moves(refund).amount, -20.0)
        self.assertAlmostEqual(self._wallet().balance, 30.0, places=6)
        self.assertBooksMatchWallet()

    def test_refund_of_unpaid_topup_grants_and_takes_nothing(self):
        invoice = self._invoice([(self.package, 1, 100.0)])
        refund = self._credit_note(invoice)
        self.assertEqual(refund.state, "posted")
        self.assertFalse(self._refund_moves(refund))
        # The credit note settles the invoice: it is reversed, not paid, and
        # credits nothing.
        self.assertEqual(invoice.payment_state, "reversed")
        self.assertFalse(self._wallet())
        self.assertBooksMatchWallet()

    def test_cancelled_credit_note_takes_nothing(self):
        invoice = self._paid_package()
        refund = self._credit_note(invoice, post=False)
        refund.button_cancel()
        self.assertEqual(refund.state, "cancel")
        self.assertFalse(self._refund_moves(refund))
        self.customer.invalidate_recordset()
        self.assertEqual(self.customer.billing_balance, 150.0)
        self.assertBooksMatchWallet()

    def test_credit_note_of_an_ordinary_invoice_takes_nothing(self):
        self._fund(50.0)
        invoice = self._invoice([(self.service, 1, 30.0)])
        refund = self._credit_note(invoice)
        self.assertFalse(self._refund_moves(refund))
        self.customer.invalidate_recordset()
        self.assertEqual(self.customer.billing_balance, 50.0)

    def test_accountant_without_billing_rights_refunds_a_package(self):
        """Credit notes are an accountant's work: one without any Billing role
        posts it, the credit is taken back, and the wallets stay out of reach."""
        accountant = new_test_user(
            self.env,
            login="refund_accountant",
            groups="account.group_account_invoice",
            company_id=self.company.id,
            company_ids=[Command.set(self.company.ids)],
        )
        invoice = self._paid_package()
        refund = self._credit_note(invoice, price_unit=50.0, post=False)
        refund.with_user(accountant).action_post()
        self.assertEqual(self._refund_moves(refund).amount, -75.0)
        self.assertAlmostEqual(self._wallet().balance, 75.0, places=6)
        self.assertBooksMatchWallet()
        with self.assertRaises(AccessError):
            self.env["billing.wallet"].with_user(accountant).search([])

    # -------------------------------------------------------------------------
    # Credit notes undone
    # -------------------------------------------------------------------------

    def _balance(self):
        self.customer.invalidate_recordset()
        return self.customer.billing_balance

    def _keys(self, refund):
        return [
            (move.amount, move.idempotency_key)
            for move in self._refund_moves(refund).sorted("id")
        ]

    def test_credit_note_reset_cancelled_and_posted_again_follows_the_books(self):
        invoice = self._paid_package()
        refund = self._credit_note(invoice, price_unit=40.0)
        self.assertEqual(self._balance(), 90.0)  # 60 of the 150 taken back
        self.assertBooksMatchWallet()

        # Reset to draft: the credit note no longer refunds, the credit is back.
        refund.button_draft()
        self.assertEqual(self._balance(), 150.0)
        self.assertBooksMatchWallet()
        self.assertEqual(
            self._keys(refund),
            [(-60.0, f"refund:{refund.id}"), (60.0, f"unrefund:{refund.id}:1")],
        )
        # The pending top-ups and bonus accounts are as before the credit note.
        self.assertAlmostEqual(
            self._account_balance(
                self.company.billing_wallet_topup_account_id, self.customer
            ),
            0.0,
        )

        # Posted again, it takes back again, with a key of its own.
        refund.action_post()
        self.assertEqual(self._balance(), 90.0)
        self.assertBooksMatchWallet()
        self.assertEqual(self._keys(refund)[-1], (-60.0, f"refund:{refund.id}:2"))

        # Cancelled: the credit is back once more, and only once.
        refund.button_cancel()
        self.assertEqual(refund.state, "cancel")
        self.assertEqual(self._balance(), 150.0)
        self.assertBooksMatchWallet()
        self.assertEqual(self._keys(refund)[-1], (60.0, f"unrefund:{refund.id}:2"))
        refund.button_draft()
        self.assertEqual(self._balance(), 150.0, "a draft gives nothing back twice")
        self.assertBooksMatchWallet()

    def test_credit_note_reset_gives_nothing_when_the_topup_is_unpaid(self):
        invoice = self._invoice([(self.package, 1, 100.0)])
        # Reverse and cancel of an unpaid package: nothing granted, nothing taken.
        refund = invoice._reverse_moves(
            [{"invoice_date": "2026-11-10", "ref": "Cancel"}], cancel=True
        )
        self.assertEqual(invoice.payment_state, "reversed")
        refund.button_draft()
        self.assertFalse(self._refund_moves(refund))
        self.assertEqual(self._balance(), 0.0)
        self.assertBooksMatchWallet()
