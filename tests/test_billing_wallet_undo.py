from datetime import datetime, timedelta

from freezegun import freeze_time

from odoo import Command
from odoo.exceptions import UserError
from odoo.tests import new_test_user, tagged

from .wallet_common import BillingWalletCommon


@tagged("post_install", "-at_install")
class TestBillingWalletUndo(BillingWalletCommon):
    """Every undo of a payment keeps the wallet equal to the books: a wallet
    payment undone gives its amount back, a top-up payment undone takes its
    credit back, and top-ups credit the money received."""

    # -------------------------------------------------------------------------
    # Helpers
    # -------------------------------------------------------------------------

    def _movements(self, partner=None):
        """The ledger of the customer's wallet, oldest first."""
        return self._wallet(partner).move_ids.sorted("id")

    def _ledger(self, partner=None):
        """(kind, amount, key) of each movement, oldest first."""
        return [
            (move.kind, move.amount, move.idempotency_key)
            for move in self._movements(partner)
        ]

    def _balance(self, partner=None):
        wallet = self._wallet(partner)
        wallet.invalidate_recordset(["balance"])
        return wallet.balance

    def _wallet_payment(self, invoice):
        return self.env["account.payment"].search(
            [
                ("invoice_ids", "in", invoice.ids),
                ("journal_id", "=", self.company.billing_wallet_journal_id.id),
            ]
        )

    def _receivable(self, move):
        return move.line_ids.filtered(
            lambda line: line.account_id.account_type == "asset_receivable"
        )

    def _customer_receivable(self):
        """The customer's balance on the receivable account (negative: credit
        left open in its favour)."""
        return self._account_balance(
            self.customer.property_account_receivable_id, self.customer
        )

    def _credit_note(self, invoice, price_unit=None, cancel=False):
        """A posted credit note of ``invoice`` (its lines at ``price_unit`` when
        given); with ``cancel``, reversing and reconciling it at once, as *Reverse
        and Create Invoice* does."""
        refund = invoice._reverse_moves(
            [{"invoice_date": "2026-11-10", "ref": f"Refund of {invoice.name}"}],
            cancel=cancel,
        )
        if price_unit is not None:
            refund.invoice_line_ids.price_unit = price_unit
        if refund.state == "draft":
            refund.action_post()
        return refund

    # -------------------------------------------------------------------------
    # Wallet payments undone
    # -------------------------------------------------------------------------

    def test_wallet_payment_reset_posted_reset_and_cancelled(self):
        self._fund(100.0)
        invoice = self._invoice([(self.service, 1, 30.0)])
        invoice.action_billing_pay_from_wallet()
        payment = self._wallet_payment(invoice)
        self.assertEqual(invoice.payment_state, "paid")
        self.assertAlmostEqual(self._balance(), 70.0, places=6)
        self.assertBooksMatchWallet()

        payment.action_draft()
        self.assertEqual(payment.state, "draft")
        self.assertEqual(invoice.payment_state, "not_paid")
        self.assertAlmostEqual(self._balance(), 100.0, places=6)
        refund = self._movements()[-1]
        self.assertEqual(refund.kind, "refund")
        self.assertEqual(refund.amount, 30.0)
        self.assertEqual(refund.idempotency_key, f"unpay:payment:{payment.id}:1")
        self.assertEqual(refund.account_move_id, payment.move_id)
        self.assertEqual(refund.invoice_id, invoice)
        self.assertBooksMatchWallet()

        # Posted again, it debits the wallet again, with its own key.
        payment.action_post()
        self.assertEqual(invoice.payment_state, "paid")
        self.assertAlmostEqual(self._balance(), 70.0, places=6)
        debit = self._movements()[-1]
        self.assertEqual(debit.kind, "invoice_payment")
        self.assertEqual(debit.amount, -30.0)
        self.assertEqual(debit.idempotency_key, f"invoice_payment:{payment.id}:2")
        self.assertBooksMatchWallet()

        # Reset again: a second undo of its own.
        payment.action_draft()
        self.assertEqual(invoice.payment_state, "not_paid")
        self.assertAlmostEqual(self._balance(), 100.0, places=6)
        self.assertEqual(
            self._movements()[-1].idempotency_key, f"unpay:payment:{payment.id}:2"
        )
        self.assertBooksMatchWallet()

        # Cancelled, the draft keeps its entry (the ledger refers to it) and the
        # wallet is not refunded twice.
        payment.action_cancel()
        self.assertEqual(payment.state, "canceled")
        self.assertEqual(payment.move_id.state, "cancel")
        self.assertAlmostEqual(self._balance(), 100.0, places=6)
        self.assertEqual(len(self._movements()), 5)
        self.assertBooksMatchWallet()

        # A cancelled wallet payment can be reset and posted once more.
        payment.action_draft()
        self.assertAlmostEqual(self._balance(), 100.0, places=6)
        self.assertBooksMatchWallet()
        payment.action_post()
        self.assertEqual(invoice.payment_state, "paid")
        self.assertAlmostEqual(self._balance(), 70.0, places=6)
        self.assertEqual(
            self._movements()[-1].idempotency_key, f"invoice_payment:{payment.id}:3"
        )
        self.assertBooksMatchWallet()

    def test_posted_wallet_payment_cancelled_gives_amount_back(self):
        self._fund(100.0)
        invoice = self._invoice([(self.service, 1, 30.0)])
        invoice.action_billing_pay_from_wallet()
        payment = self._wallet_payment(invoice)
        payment.action_cancel()
        self.assertEqual(payment.state, "canceled")
        self.assertEqual(invoice.payment_state, "not_paid")
        self.assertAlmostEqual(self._balance(), 100.0, places=6)
        self.assertEqual(
            self._ledger()[-2:],
            [
                ("invoice_payment", -30.0, f"invoice_payment:{payment.id}"),
                ("refund", 30.0, f"unpay:payment:{payment.id}:1"),
            ],
        )
        self.assertBooksMatchWallet()

    def test_wallet_payment_posted_again_refused_when_balance_short(self):
        self._fund(30.0)
        invoice = self._invoice([(self.service, 1, 30.0)])
        invoice.action_billing_pay_from_wallet()
        payment = self._wallet_payment(invoice)
        payment.action_draft()
        self.assertAlmostEqual(self._balance(), 30.0, places=6)
        self.assertBooksMatchWallet()
        # The credit given back is spent on another invoice meanwhile.
        self._invoice([(self.service, 1, 20.0)]).action_billing_pay_from_wallet()
        self.assertAlmostEqual(self._balance(), 10.0, places=6)
        self.assertBooksMatchWallet()
        with self.assertRefusedWritingNothing(
            UserError,
            r"cannot be posted again from the wallet of Prepaid Customer: the "
            r"wallet balance of .*10\.00 does not cover .*30\.00",
        ):
            payment.action_post()
        self.assertBooksMatchWallet()
        # More than the invoice still owes is refused too.
        self._fund(100.0)
        payment.amount = 40.0
        with self.assertRefusedWritingNothing(
            UserError, r"is more than the .*30\.00 due"
        ):
            payment.action_post()
        payment.amount = 30.0
        payment.action_post()
        self.assertEqual(invoice.payment_state, "paid")
        self.assertAlmostEqual(self._balance(), 80.0, places=6)
        self.assertBooksMatchWallet()

    def test_draft_wallet_payment_cannot_be_deleted(self):
        self._fund(30.0)
        invoice = self._invoice([(self.service, 1, 30.0)])
        invoice.action_billing_pay_from_wallet()
        payment = self._wallet_payment(invoice)
        payment.action_draft()
        with self.assertRefusedWritingNothing(
            UserError, "cannot be deleted; cancel it instead"
        ):
            payment.unlink()
        self.assertBooksMatchWallet()

    def test_auto_paid_invoice_reset_and_posted_again_debits_once(self):
        self.company.billing_wallet_allow_payments = True
        self._fund(100.0)
        invoice = self._invoice([(self.service, 1, 30.0)])
        first = self._wallet_payment(invoice)
        self.assertEqual(invoice.payment_state, "paid")
        self.assertAlmostEqual(self._balance(), 70.0, places=6)
        self.assertBooksMatchWallet()

        invoice.button_draft()
        self.assertAlmostEqual(self._balance(), 100.0, places=6)
        refund = self._movements()[-1]
        self.assertEqual(refund.kind, "refund")
        self.assertEqual(refund.amount, 30.0)
        self.assertRegex(refund.idempotency_key, r"^unpay:\d+$")
        self.assertNotEqual(refund.account_move_id, first.move_id)
        self.assertEqual(refund.account_move_id.state, "posted")
        # The first payment is matched with the entry that gave its amount back:
        # nothing is left open on the receivable.
        self.assertTrue(self._receivable(first.move_id).reconciled)
        self.assertAlmostEqual(self._customer_receivable(), 0.0)
        self.assertBooksMatchWallet()

        invoice.action_post()
        self.assertEqual(invoice.payment_state, "paid")
        self.assertAlmostEqual(self._balance(), 70.0, places=6)
        payments = self._wallet_payment(invoice)
        self.assertEqual(len(payments), 2)
        self.assertEqual(
            [kind for kind, _amount, _key in self._ledger()],
            ["topup", "invoice_payment", "refund", "invoice_payment"],
        )
        net = sum(move.amount for move in self._movements() if move.kind != "topup")
        self.assertAlmostEqual(net, -30.0, places=6)
        self.assertBooksMatchWallet()

        # The first payment's amount is back in the wallet: it can no longer be
        # reset, nor its reconciliation with that entry removed.
        with self.assertRefusedWritingNothing(UserError, "gave its amount back"):
            first.action_draft()
        with self.assertRefusedWritingNothing(UserError, "cannot be removed"):
            self._receivable(first.move_id).remove_move_reconcile()
        self.assertBooksMatchWallet()

    def test_cancelled_wallet_paid_invoice_gives_money_back(self):
        self.company.billing_wallet_allow_payments = True
        self._fund(100.0)
        invoice = self._invoice([(self.service, 1, 30.0)])
        self.assertAlmostEqual(self._balance(), 70.0, places=6)
        invoice.button_cancel()
        self.assertEqual(invoice.state, "cancel")
        self.assertAlmostEqual(self._balance(), 100.0, places=6)
        self.assertAlmostEqual(self._customer_receivable(), 0.0)
        self.assertBooksMatchWallet()

        # Reset first, then cancelled: given back once.
        other = self._invoice([(self.service, 1, 40.0)])
        self.assertAlmostEqual(self._balance(), 60.0, places=6)
        other.button_draft()
        self.assertAlmostEqual(self._balance(), 100.0, places=6)
        self.assertBooksMatchWallet()
        other.button_cancel()
        self.assertAlmostEqual(self._balance(), 100.0, places=6)
        self.assertAlmostEqual(self._customer_receivable(), 0.0)
        self.assertBooksMatchWallet()

    def test_unreconciled_wallet_payment_gives_amount_back(self):
        self._fund(100.0)
        invoice = self._invoice([(self.service, 1, 30.0)])
        invoice.action_billing_pay_from_wallet()
        payment = self._wallet_payment(invoice)
        partial = self._receivable(invoice).matched_credit_ids
        invoice.js_remove_outstanding_partial(partial.id)
        self.assertEqual(invoice.payment_state, "not_paid")
        self.assertAlmostEqual(self._balance(), 100.0, places=6)
        self.assertEqual(self._ledger()[-1], ("refund", 30.0, f"unpay:{partial.id}"))
        self.assertAlmostEqual(self._customer_receivable(), 30.0)  # the invoice
        self.assertBooksMatchWallet()
        self.assertIn("given back to the wallet", invoice.message_ids[:1].body)
        with self.assertRefusedWritingNothing(UserError, "gave its amount back"):
            payment.action_cancel()
        self.assertBooksMatchWallet()

    def test_credit_note_of_wallet_paid_invoice_credits_the_wallet(self):
        self._fund(100.0)
        invoice = self._invoice([(self.service, 1, 30.0)])
        invoice.action_billing_pay_from_wallet()
        self.assertBooksMatchWallet()
        # A credit note of part of it: that part goes back to the wallet.
        refund = self._credit_note(invoice, price_unit=10.0)
        self.assertAlmostEqual(self._balance(), 80.0, places=6)
        self.assertEqual(
            self._ledger()[-1], ("refund", 10.0, f"credit_note:{refund.id}")
        )
        self.assertTrue(self._receivable(refund).reconciled)
        self.assertAlmostEqual(self._customer_receivable(), 0.0)
        self.assertBooksMatchWallet()
        # The rest, and never more than the wallet paid.
        second = self._credit_note(invoice, price_unit=30.0)
        self.assertAlmostEqual(self._balance(), 100.0, places=6)
        self.assertEqual(
            self._ledger()[-1], ("refund", 20.0, f"credit_note:{second.id}")
        )
        # The 10 over what was paid stays open in the customer's favour.
        self.assertAlmostEqual(self._customer_receivable(), -10.0)
        self.assertBooksMatchWallet()
        # The credit note's money is in the wallet: it cannot be reset.
        with self.assertRefusedWritingNothing(UserError, "cannot be removed"):
            refund.button_draft()
        self.assertBooksMatchWallet()

    def test_reverse_and_cancel_of_wallet_paid_invoice_gives_back_once(self):
        self._fund(100.0)
        invoice = self._invoice([(self.service, 1, 30.0)])
        invoice.action_billing_pay_from_wallet()
        refund = self._credit_note(invoice, cancel=True)
        self.assertEqual(refund.state, "posted")
        self.assertEqual(invoice.payment_state, "reversed")
        self.assertAlmostEqual(self._balance(), 100.0, places=6)
        self.assertEqual(
            [kind for kind, _amount, _key in self._ledger()],
            ["topup", "invoice_payment", "refund"],
        )
        self.assertAlmostEqual(self._customer_receivable(), 0.0)
        self.assertBooksMatchWallet()

    def test_accountant_without_billing_rights_undoes_a_wallet_payment(self):
        """Undoing payments is an accountant's work: one without any Billing role
        resets an auto-paid invoice and a wallet payment, the wallet follows."""
        accountant = new_test_user(
            self.env,
            login="undo_accountant",
            groups="account.group_account_invoice",
            company_id=self.company.id,
            company_ids=[Command.set(self.company.ids)],
        )
        self.company.billing_wallet_allow_payments = True
        self._fund(100.0)
        invoice = self._invoice([(self.service, 1, 30.0)])
        invoice.with_user(accountant).button_draft()
        self.assertAlmostEqual(self._balance(), 100.0, places=6)
        self.assertBooksMatchWallet()
        invoice.with_user(accountant).action_post()
        self.assertAlmostEqual(self._balance(), 70.0, places=6)
        self.assertBooksMatchWallet()
        payment = self._wallet_payment(invoice).sorted("id")[-1]
        payment.with_user(accountant).action_draft()
        self.assertAlmostEqual(self._balance(), 100.0, places=6)
        self.assertBooksMatchWallet()
        payment.with_user(accountant).action_post()
        self.assertAlmostEqual(self._balance(), 70.0, places=6)
        self.assertBooksMatchWallet()

    def test_invoice_with_wallet_movements_cannot_be_deleted(self):
        self.company.billing_wallet_allow_payments = True
        self._fund(100.0)
        invoice = self._invoice([(self.service, 1, 30.0)])
        invoice.button_draft()
        self.assertBooksMatchWallet()
        with self.assertRefusedWritingNothing(
            UserError, "has movements of the wallet of Prepaid Customer"
        ):
            invoice.unlink()
        invoice.button_cancel()
        self.assertEqual(invoice.state, "cancel")
        self.assertAlmostEqual(self._balance(), 100.0, places=6)
        self.assertBooksMatchWallet()

    # -------------------------------------------------------------------------
    # Entries of the wallet journal
    # -------------------------------------------------------------------------

    def test_wallet_journal_entries_cannot_be_reset_or_cancelled(self):
        topup = self._invoice([(self.package, 1, 100.0)])
        self._pay(topup)
        entry = self._movements()[0].account_move_id
        self.assertEqual(entry.journal_id, self.company.billing_wallet_journal_id)
        with self.assertRefusedWritingNothing(
            UserError,
            r"books movements of the wallet of Prepaid Customer \(Bonus, Top-up\): "
            r"it cannot be reset to draft.*undo the payment of top-up",
        ):
            entry.button_draft()
        with self.assertRefusedWritingNothing(UserError, "cannot be reset to draft"):
            entry.button_cancel()
        self.assertEqual(entry.state, "posted")
        self.assertBooksMatchWallet()
        # The entry of a credit note's refund, and of a consumption posting.
        self._credit_note(topup, price_unit=40.0)
        refund_entry = self._movements()[-1].account_move_id
        with self.assertRefusedWritingNothing(
            UserError, r"\(Refund\).*Credit or Debit a Wallet"
        ):
            refund_entry.button_draft()
        self.assertBooksMatchWallet()

    def test_consumption_entry_cannot_be_reset(self):
        self._fund(50.0)
        self.env["billing.charge"].ingest(
            [
                {
                    "partner_id": self.customer.id,
                    "product_id": self.service.id,
                    "date": "2026-11-20 10:00:00",
                    "quantity": 1,
                    "price_unit": 1.5,
                    "external_ref": "undo-usage-1",
                }
            ]
        )
        self.env.invalidate_all()
        self._post_consumption()
        usage = self._movements().filtered(lambda m: m.kind == "usage")
        self.assertTrue(usage.account_move_id)
        with self.assertRefusedWritingNothing(
            UserError, r"\(Usage\): it cannot be reset"
        ):
            usage.account_move_id.button_draft()
        self.assertBooksMatchWallet()

    # -------------------------------------------------------------------------
    # Top-up credit follows the money
    # -------------------------------------------------------------------------

    def test_package_paid_in_part_closed_by_credit_note_credits_in_proportion(self):
        invoice = self._invoice([(self.package, 1, 100.0)])
        self._pay(invoice, amount=10.0)
        self.assertEqual(invoice.payment_state, "partial")
        self.assertFalse(self._wallet())
        self.assertBooksMatchWallet()
        self._credit_note(invoice, price_unit=90.0)
        self.assertIn(invoice.payment_state, ("paid", "in_payment"))
        # 10 of money for a package of 150: 15 of credit, 5 of it bonus.
        self.assertAlmostEqual(self._balance(), 15.0, places=6)
        self.assertEqual(
            self._ledger(),
            [
                ("topup", 10.0, f"topup:{invoice.id}"),
                ("bonus", 5.0, f"bonus:{invoice.id}"),
            ],
        )
        self.assertAlmostEqual(invoice.billing_topup_credited, 15.0)
        self.assertAlmostEqual(
            self._account_balance(
                self.company.billing_wallet_topup_account_id, self.customer
            ),
            0.0,
        )
        self.assertBooksMatchWallet()

    def test_cancelled_payment_of_package_takes_credit_back_and_it_expires(self):
        self.company.billing_topup_expiry_hours = 24
        start = datetime(2026, 11, 2, 9, 0, 0)
        with freeze_time(start):
            invoice = self._invoice([(self.package, 1, 100.0)])
            payment = self._pay(invoice)
        self.assertAlmostEqual(self._balance(), 150.0, places=6)
        self.assertFalse(invoice.billing_topup_expires_at)
        self.assertBooksMatchWallet()

        with freeze_time(start + timedelta(hours=2)):
            payment.action_cancel()
        self.assertEqual(invoice.payment_state, "not_paid")
        self.assertAlmostEqual(self._balance(), 0.0, places=6)
        self.assertEqual(
            self._ledger()[-1], ("refund", -150.0, f"untopup:{invoice.id}:1")
        )
        self.assertEqual(self._movements()[-1].account_move_id.state, "posted")
        self.assertAlmostEqual(invoice.billing_topup_credited, 0.0)
        self.assertEqual(invoice.billing_topup_expires_at, start + timedelta(hours=26))
        self.assertAlmostEqual(
            self._account_balance(
                self.company.billing_wallet_topup_account_id, self.customer
            ),
            -100.0,
        )
        self.assertAlmostEqual(
            self._account_balance(
                self.company.billing_wallet_bonus_account_id, self.customer
            ),
            0.0,
        )
        self.assertBooksMatchWallet()

        # Paid again: credited again, with keys of its own.
        self._pay(invoice)
        self.assertAlmostEqual(self._balance(), 150.0, places=6)
        self.assertEqual(
            self._ledger()[-2:],
            [
                ("topup", 100.0, f"topup:{invoice.id}:2"),
                ("bonus", 50.0, f"bonus:{invoice.id}:2"),
            ],
        )
        self.assertFalse(invoice.billing_topup_expires_at)
        self.assertBooksMatchWallet()
        # Confirmed again, it does not credit a third time.
        invoice._billing_credit_topups()
        self.assertEqual(len(self._movements()), 5)
        self.assertBooksMatchWallet()

    def test_unpaid_again_topup_expires(self):
        self.company.billing_topup_expiry_hours = 24
        start = datetime(2026, 11, 2, 9, 0, 0)
        with freeze_time(start):
            invoice = self._invoice([(self.package, 1, 100.0)])
            payment = self._pay(invoice)
            payment.action_draft()
        self.assertAlmostEqual(self._balance(), 0.0, places=6)
        self.assertBooksMatchWallet()
        with freeze_time(start + timedelta(hours=25)):
            self.env["account.move"]._cron_billing_expire_topups()
        self.assertEqual(invoice.state, "cancel")
        self.assertAlmostEqual(self._balance(), 0.0, places=6)
        self.assertBooksMatchWallet()

    def test_undo_of_topup_payment_refused_when_credit_spent(self):
        invoice = self._invoice([(self.package, 1, 100.0)])
        payment = self._pay(invoice)
        self._invoice([(self.service, 1, 100.0)]).action_billing_pay_from_wallet()
        self.assertAlmostEqual(self._balance(), 50.0, places=6)
        self.assertBooksMatchWallet()
        with self.assertRaisesRegex(
            UserError,
            r"The payment of top-up .* cannot be undone: the .*150\.00 of credit "
            r"it granted has been spent in part by Prepaid Customer, whose wallet "
            r"balance of .*50\.00",
        ):
            payment.action_draft()
        with self.assertRaisesRegex(UserError, "cannot be undone"):
            invoice.button_draft()
        # Both are refused once Odoo has started undoing the payment: that the
        # books and the wallet are left as they were is the request's rollback,
        # which a check after assertRaises cannot tell apart. The proof is made
        # over JSON-RPC: TestBillingRefusedRequests.

    def test_topup_reset_to_draft_takes_credit_back(self):
        invoice = self._invoice([(self.package, 1, 100.0)])
        self._pay(invoice)
        self.assertAlmostEqual(self._balance(), 150.0, places=6)
        invoice.button_draft()
        self.assertAlmostEqual(self._balance(), 0.0, places=6)
        self.assertEqual(self._ledger()[-1][:2], ("refund", -150.0))
        self.assertBooksMatchWallet()
        invoice.button_cancel()
        self.assertAlmostEqual(self._balance(), 0.0, places=6)
        self.assertBooksMatchWallet()

    def test_reverse_and_cancel_of_paid_package_takes_credit_back_once(self):
        invoice = self._invoice([(self.package, 1, 100.0)])
        self._pay(invoice)
        self.assertAlmostEqual(self._balance(), 150.0, places=6)
        refund = self._credit_note(invoice, cancel=True)
        self.assertEqual(invoice.payment_state, "reversed")
        self.assertAlmostEqual(self._balance(), 0.0, places=6)
        self.assertEqual(
            [kind for kind, _amount, _key in self._ledger()],
            ["topup", "bonus", "refund"],
        )
        self.assertFalse(refund.billing_wallet_move_ids)
        # The money received stays open in the customer's favour, to refund.
        self.assertAlmostEqual(self._customer_receivable(), -100.0)
        self.assertBooksMatchWallet()

    def test_credit_note_after_undone_payment_takes_nothing_more(self):
        invoice = self._invoice([(self.package, 1, 100.0)])
        self._pay(invoice)
        refund = self._credit_note(invoice, price_unit=40.0)
        self.assertAlmostEqual(self._balance(), 90.0, places=6)
        self.assertBooksMatchWallet()
        # The payment undone takes back what the credit note left: 90.
        self._receivable(invoice).remove_move_reconcile()
        self.assertAlmostEqual(self._balance(), 0.0, places=6)
        self.assertEqual(self._ledger()[-1][:2], ("refund", -90.0))
        self.assertNotEqual(self._movements()[-1].invoice_id, refund)
        self.assertBooksMatchWallet()
