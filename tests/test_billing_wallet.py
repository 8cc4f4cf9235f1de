from odoo import fields
from odoo.exceptions import AccessError, UserError
from odoo.tests import Form, tagged

from .wallet_common import BillingWalletCommon


@tagged("post_install", "-at_install")
class TestBillingWallet(BillingWalletCommon):
    # -------------------------------------------------------------------------
    # Setup of the books
    # -------------------------------------------------------------------------

    def test_company_gets_wallet_accounts_and_journal(self):
        company = self.company
        self.assertEqual(
            company.billing_wallet_account_id.account_type, "liability_current"
        )
        self.assertEqual(company.billing_wallet_account_id.name, "Customer Wallet")
        self.assertEqual(
            company.billing_wallet_topup_account_id.account_type, "liability_current"
        )
        self.assertEqual(
            company.billing_wallet_bonus_account_id.account_type, "expense"
        )
        journal = company.billing_wallet_journal_id
        self.assertEqual(journal.type, "cash")
        self.assertEqual(journal.default_account_id, company.billing_wallet_account_id)
        self.assertEqual(
            journal.inbound_payment_method_line_ids.payment_account_id,
            company.billing_wallet_account_id,
        )
        # A new company gets its own when its chart is loaded.
        other = self.setup_other_company()["company"]
        self.assertTrue(other.billing_wallet_account_id)
        self.assertTrue(other.billing_wallet_journal_id)
        self.assertNotEqual(
            other.billing_wallet_account_id, company.billing_wallet_account_id
        )

    def test_package_lines_booked_to_pending_topups(self):
        invoice = self._invoice([(self.package, 1, 100.0)])
        self.assertTrue(invoice.billing_is_topup)
        self.assertEqual(
            invoice.invoice_line_ids.account_id,
            self.company.billing_wallet_topup_account_id,
        )
        # Nothing is credit before the invoice is paid.
        self.assertEqual(self.customer.billing_balance, 0.0)
        self.assertFalse(self._wallet().move_ids)
        self.assertBooksMatchWallet()

    # -------------------------------------------------------------------------
    # Credit exactly once per paid invoice
    # -------------------------------------------------------------------------

    def test_paid_package_credits_once_with_bonus(self):
        invoice = self._invoice([(self.package, 1, 100.0)])
        self._pay(invoice)
        self.assertEqual(invoice.payment_state, "paid")
        self.assertEqual(self.customer.billing_balance, 150.0)
        moves = self._wallet().move_ids.sorted("id")
        self.assertEqual(moves.mapped("kind"), ["topup", "bonus"])
        self.assertEqual(moves.mapped("amount"), [100.0, 50.0])
        self.assertEqual(moves.mapped("balance_after"), [100.0, 150.0])
        self.assertEqual(invoice.billing_topup_credited, 150.0)
        self.assertFalse(invoice.billing_topup_expires_at)
        # The bonus is booked to the bonus account, the pending top-up is cleared.
        self.assertEqual(
            self._account_balance(self.company.billing_wallet_bonus_account_id), 50.0
        )
        self.assertEqual(
            self._account_balance(
                self.company.billing_wallet_topup_account_id, self.customer
            ),
            0.0,
        )
        self.assertBooksMatchWallet()
        # The customer is told, with the amount and the new balance.
        message = invoice.message_ids.filtered(
            lambda m: "wallet was credited" in (m.subject or "")
        )
        self.assertEqual(len(message), 1)
        self.assertIn("150.00", message.body)
        self.assertIn(self.customer, message.partner_ids)

    def test_unreconcile_and_reconcile_again_credits_once(self):
        """Unreconciled, the payment no longer pays the top-up: its credit is taken
        back; reconciled again, it is credited again, once."""
        invoice = self._invoice([(self.package, 1, 100.0)])
        payment = self._pay(invoice)
        self.assertEqual(self.customer.billing_balance, 150.0)
        receivable = payment.move_id.line_ids.filtered(
            lambda line: line.account_id.account_type == "asset_receivable"
        )
        receivable.remove_move_reconcile()
        self.assertEqual(invoice.payment_state, "not_paid")
        self.customer.invalidate_recordset()
        self.assertEqual(self.customer.billing_balance, 0.0)
        self.assertBooksMatchWallet()
        (receivable + invoice.line_ids).filtered(
            lambda line: line.account_id.account_type == "asset_receivable"
        ).reconcile()
        self.assertEqual(invoice.payment_state, "paid")
        self.customer.invalidate_recordset()
        self.assertEqual(self.customer.billing_balance, 150.0)
        self.assertEqual(
            self._wallet().move_ids.sorted("id").mapped("idempotency_key"),
            [
                f"topup:{invoice.id}",
                f"bonus:{invoice.id}",
                f"untopup:{invoice.id}:1",
                f"topup:{invoice.id}:2",
                f"bonus:{invoice.id}:2",
            ],
        )
        invoice._billing_credit_topups()
        self.assertEqual(len(self._wallet().move_ids), 5)
        self.assertBooksMatchWallet()

    def test_confirming_payment_twice_credits_once(self):
        invoice = self._invoice([(self.package, 1, 100.0)])
        self._pay(invoice)
        invoice._invoice_paid_hook()
        invoice._billing_credit_topups()
        self.assertEqual(self.customer.billing_balance, 150.0)
        self.assertEqual(len(self._wallet().move_ids), 2)
        self.assertBooksMatchWallet()

    def test_partial_payment_credits_only_when_fully_paid(self):
        invoice = self._invoice([(self.package, 1, 100.0)])
        self._pay(invoice, amount=60.0)
        self.assertEqual(invoice.payment_state, "partial")
        self.assertEqual(self.customer.billing_balance, 0.0)
        self._pay(invoice, amount=40.0)
        self.assertEqual(self.customer.billing_balance, 150.0)
        self.assertBooksMatchWallet()

    def test_quantity_and_recharge(self):
        invoice = self._invoice([(self.package, 2, 100.0), (self.recharge, 1, 80.0)])
        self._pay(invoice)
        self.assertEqual(self.customer.billing_balance, 380.0)
        self.assertEqual(
            self._account_balance(self.company.billing_wallet_bonus_account_id), 100.0
        )
        self.assertBooksMatchWallet()

    def test_contact_invoice_credits_company_wallet(self):
        contact = self.env["res.partner"].create(
            {"name": "Buyer", "parent_id": self.customer.id}
        )
        invoice = self._invoice([(self.recharge, 1, 25.0)], partner=contact)
        self._pay(invoice)
        self.assertEqual(self.customer.billing_balance, 25.0)
        self.assertEqual(contact.billing_balance, 25.0)
        self.assertEqual(self._wallet().partner_id, self.customer)
        self.assertBooksMatchWallet()

    # -------------------------------------------------------------------------
    # Never below zero
    # -------------------------------------------------------------------------

    def test_debit_bigger_than_balance_refused_and_writes_nothing(self):
        self._fund(50.0)
        wallet = self._wallet()
        with self.assertRefusedWritingNothing(
            UserError, "balance of .*50.00 does not cover a debit of .*60.00"
        ):
            wallet._apply_movements(
                [
                    {
                        "kind": "usage",
                        "name": "Too much",
                        "amount": -60.0,
                        "idempotency_key": "test:too-much",
                    }
                ]
            )
        wallet.invalidate_recordset()
        self.assertEqual(wallet.balance, 50.0)
        self.assertFalse(wallet.move_ids.filtered(lambda m: m.kind == "usage"))
        # A debit the balance covers goes through, down to exactly zero.
        wallet._apply_movements(
            [
                {
                    "kind": "usage",
                    "name": "All",
                    "amount": -50.0,
                    "idempotency_key": "test:all",
                }
            ]
        )
        self.assertEqual(wallet.balance, 0.0)

    def test_refusal_check_sees_what_a_refusal_wrote(self):
        """``assertRefusedWritingNothing``, which the refusals here rely on, fails
        on a refusal raised after a write: sent to the database, or still in the
        ORM's cache; and when nothing is refused."""
        self._fund(50.0)
        wallet = self._wallet()
        debit = {"kind": "usage", "name": "Sent", "amount": -5.0}
        with (
            self.assertRaisesRegex(AssertionError, "refused after writing: late"),
            self.assertRefusedWritingNothing(UserError, "late"),
        ):
            wallet._apply_movements([{**debit, "idempotency_key": "test:sent"}])
            raise UserError(self.env._("late"))
        with (
            self.assertRaisesRegex(AssertionError, "refused after writing: late"),
            self.assertRefusedWritingNothing(UserError, "late"),
        ):
            self.customer.ref = "in the cache only"
            raise UserError(self.env._("late"))
        with (
            self.assertRaisesRegex(AssertionError, "UserError not raised"),
            self.assertRefusedWritingNothing(UserError),
        ):
            wallet.invalidate_recordset()
        with (
            self.assertRaisesRegex(AssertionError, "Regex didn't match"),
            self.assertRefusedWritingNothing(UserError, "another message"),
        ):
            raise UserError(self.env._("late"))
        # Nothing of the refusals above was kept: each ran in a savepoint.
        wallet.invalidate_recordset()
        self.assertEqual(wallet.balance, 50.0)
        self.assertFalse(self.customer.ref)

    def test_same_key_applied_once(self):
        self._fund(50.0)
        wallet = self._wallet()
        vals = {
            "kind": "usage",
            "name": "Once",
            "amount": -10.0,
            "idempotency_key": "test:once",
        }
        first = wallet._apply_movements([vals])
        second = wallet._apply_movements([vals])
        self.assertEqual(first, second)
        self.assertEqual(wallet.balance, 40.0)

    def test_ledger_is_append_only(self):
        self._fund(50.0)
        move = self._wallet().move_ids[:1]
        # Not even the superuser can change or delete a movement.
        with self.assertRaisesRegex(UserError, "cannot be changed"):
            move.sudo().write({"amount": 500.0})
        with self.assertRaisesRegex(UserError, "cannot be deleted"):
            move.sudo().unlink()

    # -------------------------------------------------------------------------
    # Paying invoices from the wallet
    # -------------------------------------------------------------------------

    def test_auto_pay_when_allowed_and_covered(self):
        self.company.billing_wallet_allow_payments = True
        self._fund(150.0)
        invoice = self._invoice([(self.service, 1, 30.0)])
        self.assertEqual(invoice.payment_state, "paid")
        self.assertEqual(self.customer.billing_balance, 120.0)
        payment = self.env["account.payment"].search(
            [
                ("partner_id", "=", self.customer.id),
                ("journal_id", "=", self.company.billing_wallet_journal_id.id),
            ]
        )
        self.assertEqual(payment.amount, 30.0)
        self.assertEqual(payment.payment_type, "inbound")
        self.assertIn(invoice, payment.reconciled_invoice_ids)
        debit = self._wallet().move_ids.filtered(lambda m: m.kind == "invoice_payment")
        self.assertEqual(debit.amount, -30.0)
        self.assertEqual(debit.account_move_id, payment.move_id)
        self.assertBooksMatchWallet()

    def test_auto_pay_not_covered_stays_open_and_says_why(self):
        self.company.billing_wallet_allow_payments = True
        self._fund(20.0)
        invoice = self._invoice([(self.service, 1, 30.0)])
        self.assertEqual(invoice.payment_state, "not_paid")
        self.assertEqual(self.customer.billing_balance, 20.0)
        self.assertTrue(
            invoice.message_ids.filtered(
                lambda m: (
                    "Not paid from the wallet" in m.body and "does not cover" in m.body
                )
            )
        )
        self.assertBooksMatchWallet()

    def test_auto_pay_only_flagged_products_when_setting_off(self):
        self.company.billing_wallet_allow_payments = False
        self._fund(100.0)
        plain = self._invoice([(self.service, 1, 30.0)])
        self.assertEqual(plain.payment_state, "not_paid")
        self.service.billing_pay_from_wallet = True
        flagged = self._invoice([(self.service, 1, 30.0)])
        self.assertEqual(flagged.payment_state, "paid")
        self.assertEqual(self.customer.billing_balance, 70.0)
        self.assertBooksMatchWallet()

    def test_pay_from_wallet_button_pays_what_balance_allows(self):
        self._fund(20.0)
        invoice = self._invoice([(self.service, 1, 50.0)])
        self.assertEqual(invoice.payment_state, "not_paid")
        self.assertEqual(invoice.billing_wallet_balance, 20.0)
        invoice.with_user(self.billing_user).action_billing_pay_from_wallet()
        self.assertEqual(invoice.payment_state, "partial")
        self.assertEqual(invoice.amount_residual, 30.0)
        self.assertEqual(self.customer.billing_balance, 0.0)
        with self.assertRaisesRegex(UserError, "has no credit"):
            invoice.action_billing_pay_from_wallet()
        self._fund(100.0)
        invoice.action_billing_pay_from_wallet()
        self.assertEqual(invoice.payment_state, "paid")
        self.assertEqual(self.customer.billing_balance, 70.0)
        self.assertBooksMatchWallet()

    def test_pay_from_wallet_refused_for_topups_and_paid(self):
        self._fund(200.0)
        topup = self._invoice([(self.package, 1, 100.0)])
        with self.assertRaisesRegex(UserError, "a top-up invoice credits the wallet"):
            topup.action_billing_pay_from_wallet()
        invoice = self._invoice([(self.service, 1, 10.0)])
        invoice.action_billing_pay_from_wallet()
        with self.assertRaisesRegex(UserError, "already paid"):
            invoice.action_billing_pay_from_wallet()

    def test_wallet_journal_takes_only_wallet_payments(self):
        invoice = self._invoice([(self.service, 1, 10.0)])
        with self.assertRaisesRegex(UserError, "Customer Wallet journal only takes"):
            self._pay(invoice, journal=self.company.billing_wallet_journal_id)

    # -------------------------------------------------------------------------
    # Manual credit and debit
    # -------------------------------------------------------------------------

    def test_manual_credit_and_debit_by_administrator(self):
        Adjust = self.env["billing.wallet.adjust"].with_user(self.billing_manager)
        form = Form(Adjust.with_context(default_partner_id=self.customer.id))
        form.direction = "credit"
        form.amount = 25.0
        form.reason = "Goodwill"
        form.save().action_apply()
        self.assertEqual(self.customer.billing_balance, 25.0)
        form = Form(Adjust.with_context(default_partner_id=self.customer.id))
        self.assertEqual(form.balance, 25.0)
        form.direction = "debit"
        form.amount = 10.0
        form.reason = "Correction"
        form.save().action_apply()
        self.assertEqual(self.customer.billing_balance, 15.0)
        self.assertEqual(
            self._wallet().move_ids.sorted("id").mapped("amount"), [25.0, -10.0]
        )
        self.assertTrue(
            self.customer.message_ids.filtered(lambda m: "Goodwill" in m.body)
        )
        self.assertBooksMatchWallet()
        # Over the balance: refused, nothing written.
        entries = self.env["account.move"].search_count([])
        wizard = Adjust.create(
            {
                "partner_id": self.customer.id,
                "direction": "debit",
                "amount": 16.0,
                "reason": "Too much",
            }
        )
        with self.assertRefusedWritingNothing(UserError, "does not cover a debit"):
            wizard.action_apply()
        self.assertEqual(self.env["account.move"].search_count([]), entries)
        self.assertEqual(self.customer.billing_balance, 15.0)

    def test_manual_adjustment_validation(self):
        wizard = self.env["billing.wallet.adjust"].create(
            {
                "partner_id": self.customer.id,
                "direction": "credit",
                "amount": -5.0,
                "reason": "x",
            }
        )
        with self.assertRaisesRegex(UserError, "must be positive"):
            wizard.action_apply()

    def test_manual_adjustment_administrators_only(self):
        with self.assertRaises(AccessError):
            self.env["billing.wallet.adjust"].with_user(self.billing_user).create(
                {"partner_id": self.customer.id, "amount": 5.0, "reason": "x"}
            )
        wizard = self.env["billing.wallet.adjust"].create(
            {"partner_id": self.customer.id, "amount": 5.0, "reason": "x"}
        )
        with self.assertRefusedWritingNothing(
            AccessError, "Only Billing Administrators"
        ):
            wizard.with_user(self.billing_user).action_apply()
        self.assertEqual(self.customer.billing_balance, 0.0)

    # -------------------------------------------------------------------------
    # Access
    # -------------------------------------------------------------------------

    def test_portal_user_sees_only_own_wallet(self):
        self._fund(40.0)
        self._fund(70.0, partner=self.other_customer)
        portal = self.env["res.users"].create(
            {
                "name": "Portal Buyer",
                "login": "portal_buyer",
                "partner_id": self.env["res.partner"]
                .create({"name": "Portal Buyer", "parent_id": self.customer.id})
                .id,
                "groups_id": [
                    fields.Command.set([self.env.ref("base.group_portal").id])
                ],
                "company_id": self.company.id,
                "company_ids": [fields.Command.set(self.company.ids)],
            }
        )
        wallets = self.env["billing.wallet"].with_user(portal).search([])
        self.assertEqual(wallets.partner_id, self.customer)
        self.assertEqual(wallets.balance, 40.0)
        moves = self.env["billing.wallet.move"].with_user(portal).search([])
        self.assertEqual(moves.partner_id, self.customer)
        with self.assertRaises(AccessError):
            self._wallet(self.other_customer).with_user(portal).read(["balance"])
        with self.assertRaises(AccessError):
            self.env["billing.wallet"].with_user(portal).create(
                {"partner_id": self.customer.id, "company_id": self.company.id}
            )

    def test_billing_user_reads_but_cannot_write_wallets(self):
        self._fund(40.0)
        wallet = self._wallet().with_user(self.billing_user)
        self.assertEqual(wallet.balance, 40.0)
        with self.assertRaises(AccessError):
            wallet.write({"balance": 1000.0})
        with self.assertRaises(AccessError):
            self.env["billing.wallet.move"].with_user(self.billing_user).create(
                {
                    "wallet_id": wallet.id,
                    "kind": "manual",
                    "name": "x",
                    "amount": 1000.0,
                    "idempotency_key": "forged",
                }
            )
