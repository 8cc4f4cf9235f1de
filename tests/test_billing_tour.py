from odoo import Command
from odoo.tests import HttpCase, tagged


@tagged("post_install", "-at_install")
class TestBillingTour(HttpCase):
    def test_billing_profile_tour(self):
        """An administrator opens Billing > Customers, creates a postpaid customer on
        the Billing tab and finds it under the Postpaid filter."""
        self.env.company.write(
            {"billing_offer_prepaid": True, "billing_offer_postpaid": True}
        )
        self.start_tour("/odoo", "prepaid_postpaid_billing_profile_tour", login="admin")
        partner = self.env["res.partner"].search([("name", "=", "Tess Postpaid")])
        self.assertEqual(partner.billing_mode, "postpaid")
        self.assertEqual(partner.billing_invoice_day, 28)


@tagged("post_install", "-at_install")
class TestBillingInvoiceTour(HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env.company.write(
            {"billing_offer_prepaid": True, "billing_offer_postpaid": True}
        )
        cls.customer = cls.env["res.partner"].create(
            {
                "name": "Tour Postpaid Co",
                "is_company": True,
                "email": "tour.postpaid@example.com",
                "billing_mode": "postpaid",
            }
        )
        cls.sms = cls.env["product.product"].create(
            {
                "name": "Tour SMS",
                "type": "service",
                "list_price": 0.10,
                "taxes_id": [Command.clear()],
            }
        )
        result = cls.env["billing.charge"].ingest(
            [
                {
                    "partner_id": cls.customer.id,
                    "product_id": cls.sms.id,
                    "date": f"2026-10-{day:02d} 10:00:00",
                    "quantity": 10.0,
                    "external_ref": f"tour-{day}",
                }
                for day in (1, 15, 31)
            ]
        )
        assert not result["rejected"], result["rejected"]

    def test_create_and_claim_postpaid_invoice(self):
        """An administrator creates a postpaid invoice from October's usage with
        Create & Claim, then finds it paid in Manage Invoices."""
        self.start_tour("/odoo", "prepaid_postpaid_billing_invoice_tour", login="admin")
        invoice = self.env["account.move"].search(
            [("partner_id", "=", self.customer.id), ("move_type", "=", "out_invoice")]
        )
        self.assertEqual(len(invoice), 1)
        self.assertEqual(invoice.state, "posted")
        self.assertEqual(invoice.amount_total, 3.0)
        self.assertIn(invoice.payment_state, ("paid", "in_payment"))
        self.assertEqual(invoice.matched_payment_ids.memo, "TOUR-TRANSFER-1")
        charges = self.env["billing.charge"].search(
            [("partner_id", "=", self.customer.id)]
        )
        self.assertEqual(set(charges.mapped("state")), {"invoiced"})
        self.assertEqual(charges.invoice_line_id.move_id, invoice)
