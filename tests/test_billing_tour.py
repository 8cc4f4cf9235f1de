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
        cls.reminded_customer = cls.env["res.partner"].create(
            {"name": "Tour Reminder Customer", "email": "tour.reminder@example.com"}
        )
        cls.overdue = cls.env["account.move"].create(
            {
                "move_type": "out_invoice",
                "partner_id": cls.reminded_customer.id,
                "invoice_date": "2026-11-01",
                "invoice_date_due": "2026-11-01",
                "invoice_line_ids": [
                    Command.create(
                        {"name": "Service", "quantity": 1, "price_unit": 80.0}
                    )
                ],
            }
        )
        cls.overdue.action_post()

    def test_create_and_claim_then_remind(self):
        """An administrator creates a postpaid invoice from October's usage with
        Create & Claim, finds it paid in Manage Invoices, then selects it with an
        overdue invoice and sends payment reminders from the Actions menu: only
        the overdue invoice is reminded."""
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
        self.assertFalse(invoice.billing_reminder_count, "paid: not reminded")
        self.assertEqual(self.overdue.billing_reminder_count, 1)
        mails = self.env["mail.mail"].search(
            [
                ("model", "=", "account.move"),
                ("res_id", "in", (invoice | self.overdue).ids),
            ]
        )
        self.assertEqual(mails.res_id, self.overdue.id)
        self.assertEqual(mails.recipient_ids, self.reminded_customer)
