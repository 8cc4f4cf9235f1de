from decimal import Decimal

from odoo import SUPERUSER_ID, Command, api
from odoo.exceptions import UserError
from odoo.tests import TransactionCase, tagged

from .test_billing_reseller_concurrency import run_at_once


@tagged("post_install", "-at_install")
class TestBillingWalletPortalPayConcurrency(TransactionCase):
    """*Pay from Wallet* sent at the same moment from the portal, each request
    on its own cursor in its own thread (two tabs, a double click, two
    invoices paid at once): an invoice is paid once, and a balance is never
    spent twice nor below zero.

    The fixtures are committed on a cursor of their own and removed again
    after the test, in SQL: paid invoices, their payments and the wallet
    movements cannot be deleted through the ORM."""

    def setUp(self):
        super().setUp()
        company = self.env.company
        if not (
            company.billing_wallet_account_id and company.billing_wallet_journal_id
        ):
            self.skipTest(f"company {company.name} has no wallet account")
        self.data = {}
        self.addCleanup(self._clean_up)
        with self.registry.cursor() as fixture_cr:
            env = api.Environment(fixture_cr, SUPERUSER_ID, {})
            customer = env["res.partner"].create(
                {
                    "name": "Concurrent Wallet Payer",
                    "is_company": True,
                    "billing_mode": "prepaid",
                }
            )
            product = env["product.product"].create(
                {
                    "name": "Concurrently Paid Service",
                    "type": "service",
                    "list_price": 60.0,
                    "taxes_id": [Command.clear()],
                }
            )
            self.data = {"partner_id": customer.id, "product_id": product.id}
            wallet = env["billing.wallet"]._get_wallet(customer, env.company)
            wallet._apply_movements(
                [
                    {
                        "kind": "manual",
                        "name": "Concurrency test credit",
                        "amount": 100.0,
                        "idempotency_key": f"portal-pay-credit-{customer.id}",
                    }
                ]
            )
            invoices = env["account.move"].create(
                [
                    {
                        "move_type": "out_invoice",
                        "partner_id": customer.id,
                        "invoice_line_ids": [
                            Command.create(
                                {
                                    "product_id": product.id,
                                    "quantity": 1,
                                    "price_unit": 60.0,
                                }
                            )
                        ],
                    }
                    for _index in range(2)
                ]
            )
            self.data["invoice_ids"] = invoices.ids
            invoices.action_post()
            fixture_cr.commit()

    def _clean_up(self):
        if not self.data.get("invoice_ids"):
            return
        with self.registry.cursor() as cleanup_cr:
            partner = self.data["partner_id"]
            cleanup_cr.execute(
                """
                SELECT ARRAY_AGG(id) FROM account_move
                 WHERE id = ANY(%s)
                    OR id IN (SELECT move_id FROM account_payment
                               WHERE partner_id = %s)
                    OR id IN (SELECT m.account_move_id FROM billing_wallet_move m
                                JOIN billing_wallet w ON w.id = m.wallet_id
                               WHERE w.partner_id = %s)
                """,
                [self.data["invoice_ids"], partner, partner],
            )
            move_ids = cleanup_cr.fetchone()[0] or []
            cleanup_cr.execute(
                "DELETE FROM billing_wallet_move WHERE wallet_id IN "
                "(SELECT id FROM billing_wallet WHERE partner_id = %s)",
                [partner],
            )
            cleanup_cr.execute(
                "DELETE FROM billing_wallet WHERE partner_id = %s", [partner]
            )
            cleanup_cr.execute(
                "DELETE FROM account_payment WHERE partner_id = %s", [partner]
            )
            cleanup_cr.execute(
                "DELETE FROM mail_message WHERE model = 'account.move' "
                "AND res_id = ANY(%s)",
                [move_ids],
            )
            cleanup_cr.execute(
                "DELETE FROM account_partial_reconcile WHERE debit_move_id IN "
                "(SELECT id FROM account_move_line WHERE move_id = ANY(%s)) "
                "OR credit_move_id IN "
                "(SELECT id FROM account_move_line WHERE move_id = ANY(%s))",
                [move_ids, move_ids],
            )
            cleanup_cr.execute(
                "DELETE FROM account_move_line WHERE move_id = ANY(%s)", [move_ids]
            )
            cleanup_cr.execute(
                "DELETE FROM account_move WHERE id = ANY(%s)", [move_ids]
            )
            env = api.Environment(cleanup_cr, SUPERUSER_ID, {})
            env["res.partner"].browse(partner).unlink()
            env["product.product"].browse(self.data["product_id"]).unlink()
            cleanup_cr.commit()

    def _pay_at_once(self, invoice_ids):
        """Pay each of ``invoice_ids`` from the wallet in a thread of its own, at
        the same moment, as the portal route does (see ``run_at_once``)."""

        def read(env, invoice_id):
            invoice = env["account.move"].browse(invoice_id)
            customer = env["res.partner"].browse(self.data["partner_id"])
            # The page offered it: the wallet covered the invoice when the
            # customer clicked.
            self.assertTrue(
                env["billing.wallet"]._portal_wallet_for_invoice(invoice, customer)
            )

        def act(env, invoice_id):
            return env["billing.wallet"]._portal_pay_invoice(
                env["account.move"].browse(invoice_id),
                env["res.partner"].browse(self.data["partner_id"]),
            )

        return run_at_once(
            self,
            {
                label: (
                    lambda env, invoice_id=invoice_id: read(env, invoice_id),
                    lambda env, invoice_id=invoice_id: act(env, invoice_id),
                )
                for label, invoice_id in enumerate(invoice_ids)
            },
        )

    def _committed(self):
        """Per invoice: payment state and the wallet payments reconciled with
        it; the wallet's balance and its invoice payment movements."""
        with self.registry.cursor() as cr:
            cr.execute(
                """
                SELECT id, payment_state, amount_residual::text FROM account_move
                 WHERE id = ANY(%s) ORDER BY id
                """,
                [self.data["invoice_ids"]],
            )
            invoices = {row[0]: (row[1], Decimal(row[2])) for row in cr.fetchall()}
            cr.execute(
                """
                SELECT w.balance::text, ARRAY_AGG(m.invoice_id ORDER BY m.id)
                           FILTER (WHERE m.kind = 'invoice_payment')
                  FROM billing_wallet w
             LEFT JOIN billing_wallet_move m ON m.wallet_id = w.id
                 WHERE w.partner_id = %s
              GROUP BY w.id
                """,
                [self.data["partner_id"]],
            )
            balance, paid = cr.fetchone()
            cr.execute(
                "SELECT COUNT(*) FROM account_payment WHERE partner_id = %s",
                [self.data["partner_id"]],
            )
            payments = cr.fetchone()[0]
        return invoices, Decimal(balance), paid or [], payments

    def _assert_one_paid(self, outcomes, paid_invoice=None):
        succeeded = [label for label, (ok, _result) in outcomes.items() if ok]
        refused = [result for ok, result in outcomes.values() if not ok]
        self.assertEqual(len(succeeded), 1, outcomes)
        self.assertEqual(len(refused), 1, outcomes)
        self.assertIsInstance(refused[0], UserError)
        invoices, balance, paid, payments = self._committed()
        self.assertEqual(balance, Decimal(40), "100 less one payment of 60")
        self.assertEqual(payments, 1)
        self.assertEqual(len(paid), 1)
        if paid_invoice:
            self.assertEqual(paid, [paid_invoice])
        for invoice_id, (state, residual) in invoices.items():
            if invoice_id in paid:
                self.assertIn(state, ("paid", "in_payment"))
                self.assertEqual(residual, 0)
            else:
                self.assertEqual(state, "not_paid")
                self.assertEqual(residual, Decimal(60))
        return succeeded

    def test_same_invoice_twice_at_once_is_paid_once(self):
        first = self.data["invoice_ids"][0]
        outcomes = self._pay_at_once([first, first])
        self._assert_one_paid(outcomes, paid_invoice=first)

    def test_two_invoices_at_once_never_spend_the_balance_twice(self):
        """100 covers either invoice of 60, not both: one is paid, the other
        refused, and the balance stays 40, never below zero."""
        outcomes = self._pay_at_once(self.data["invoice_ids"])
        self._assert_one_paid(outcomes)
