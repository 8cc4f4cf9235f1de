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
