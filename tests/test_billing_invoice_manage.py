from ast import literal_eval
from datetime import date

from freezegun import freeze_time

from odoo import Command
from odoo.tests import tagged

from .recurring_common import BillingRecurringCommon


@tagged("post_install", "-at_install")
class TestBillingInvoiceManage(BillingRecurringCommon):
    """Manage Invoices: due status, reseller, recurring terms; Payments
    Received by method."""

    def _due_invoice(self, due, partner=None, post=True):
        invoice = self._invoice([(self.service, 1, 100.0)], partner=partner, post=False)
        invoice.write({"invoice_payment_term_id": False, "invoice_date_due": due})
        if post:
            invoice.action_post()
        return invoice

    @freeze_time("2026-11-10")
    def test_due_status(self):
        not_due = self._due_invoice(date(2026, 11, 11))
        due_today = self._due_invoice(date(2026, 11, 10))
        overdue = self._due_invoice(date(2026, 11, 3))
        partial = self._due_invoice(date(2026, 11, 1))
        self._pay(partial, amount=40.0)
        paid = self._due_invoice(date(2026, 11, 1))
        self._pay(paid)
        draft = self._due_invoice(date(2026, 11, 1), post=False)
        self.assertEqual(not_due.billing_due_status, "not_due")
        self.assertEqual(due_today.billing_due_status, "due_today")
        self.assertEqual(overdue.billing_due_status, "overdue")
        self.assertEqual(overdue.billing_days_overdue, 7)
        self.assertEqual(partial.billing_due_status, "overdue")
        self.assertEqual(partial.billing_days_overdue, 9)
        self.assertFalse(paid.billing_due_status)
        self.assertFalse(draft.billing_due_status)
        self.assertEqual(not_due.billing_days_overdue, 0)

        invoices = not_due | due_today | overdue | partial | paid | draft
        Move = self.env["account.move"]

        def search(domain):
            return Move.search([("id", "in", invoices.ids), *domain])

        self.assertEqual(
            search([("billing_due_status", "=", "overdue")]), overdue | partial
        )
        self.assertEqual(search([("billing_due_status", "=", "due_today")]), due_today)
        self.assertEqual(search([("billing_due_status", "=", "not_due")]), not_due)
        self.assertEqual(
            search([("billing_due_status", "in", ["not_due", "due_today"])]),
            not_due | due_today,
        )
        self.assertEqual(search([("billing_due_status", "=", False)]), paid | draft)
        self.assertEqual(
            search([("billing_due_status", "!=", "overdue")]),
            not_due | due_today | paid | draft,
        )

    def test_reseller_and_action_domain(self):
        reseller = self.env["res.partner"].create(
            {"name": "Reseller One", "is_company": True, "is_billing_reseller": True}
        )
        customer = self._postpaid_customer(
            "Reseller Customer", billing_reseller_id=reseller.id
        )
        invoice = self._invoice([(self.service, 1, 10.0)], partner=customer)
        direct = self._invoice([(self.service, 1, 10.0)])
        self.assertEqual(invoice.billing_reseller_id, reseller)
        self.assertFalse(direct.billing_reseller_id)
        groups = self.env["account.move"]._read_group(
            [("id", "in", (invoice | direct).ids)],
            groupby=["billing_reseller_id"],
            aggregates=["__count"],
        )
        self.assertEqual(dict(groups), {reseller: 1, self.env["res.partner"]: 1})
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "prepaid_postpaid_billing.account_move_action_billing"
        )
        bill = self.init_invoice("in_invoice", amounts=[10.0], post=True)
        listed = self.env["account.move"].search(literal_eval(action["domain"]))
        self.assertIn(invoice, listed)
        self.assertNotIn(bill, listed)

    def test_recurring_invoices_carry_settings_texts(self):
        self.company.write(
            {
                "billing_invoice_terms": "<p>Terms of the billing service.</p>",
                "billing_customer_notes": "<p>Questions? Call us.</p>",
            }
        )
        self._schedule(
            line_ids=[
                Command.create(
                    {"product_id": self.plan.id, "quantity": 1, "price_unit": 20.0}
                )
            ]
        )
        self._run()
        invoice = self.env["account.move"].search(
            [("partner_id", "=", self.postpaid.id)]
        )
        self.assertEqual(len(invoice), 1)
        self.assertIn("Terms of the billing service.", str(invoice.narration))
        self.assertIn("Questions? Call us.", str(invoice.billing_customer_notes))

    def test_payment_methods(self):
        invoice = self._fund(50.0)
        bank_payment = invoice.matched_payment_ids
        self.assertEqual(bank_payment.billing_payment_method, "bank")
        self.company.billing_wallet_allow_payments = False
        due = self._invoice([(self.service, 1, 30.0)])
        due.action_billing_pay_from_wallet()
        wallet_payment = due.matched_payment_ids
        self.assertEqual(due.payment_state, "paid")
        self.assertEqual(wallet_payment.billing_payment_method, "wallet")
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "prepaid_postpaid_billing.account_payment_action_billing"
        )
        received = self.env["account.payment"].search(
            [*literal_eval(action["domain"]), ("billing_payment_method", "=", "wallet")]
        )
        self.assertEqual(received, wallet_payment)
