from odoo.exceptions import ValidationError
from odoo.tests import Form, tagged

from .common import BillingCommon


@tagged("post_install", "-at_install")
class TestBillingSettings(BillingCommon):
    def test_settings_form_saves_company_billing_defaults(self):
        settings = Form(self.env["res.config.settings"])
        settings.billing_offer_prepaid = True
        settings.billing_offer_postpaid = True
        settings.billing_default_mode = "postpaid"
        settings.billing_invoice_terms = "<p>Payable within 15 days.</p>"
        settings.billing_customer_notes = "<p>Thank you for your business.</p>"
        settings.save().execute()
        self.assertEqual(self.company.billing_default_mode, "postpaid")
        self.assertIn("Payable within 15 days.", self.company.billing_invoice_terms)
        self.assertIn(
            "Thank you for your business.", self.company.billing_customer_notes
        )
        # The settings page reads them back.
        self.assertEqual(
            self.env["res.config.settings"].create({}).billing_default_mode,
            "postpaid",
        )

    def test_company_must_offer_a_mode(self):
        with self.assertRaisesRegex(ValidationError, "at least one billing mode"):
            self.company.write(
                {"billing_offer_prepaid": False, "billing_offer_postpaid": False}
            )
        # That nothing is kept (the request's rollback, which a check after
        # assertRaises cannot tell): TestBillingRefusedRequests, over JSON-RPC.

    def test_default_mode_must_be_offered(self):
        with self.assertRaisesRegex(
            ValidationError, "Default Billing Mode of company .* Postpaid"
        ):
            self.company.write(
                {"billing_offer_postpaid": False, "billing_default_mode": "postpaid"}
            )
        # That nothing is kept: TestBillingRefusedRequests, over JSON-RPC.
        self.company.write(
            {"billing_offer_prepaid": False, "billing_default_mode": "postpaid"}
        )
        self.assertFalse(self.company._billing_mode_offered("prepaid"))
        self.assertTrue(self.company._billing_mode_offered("postpaid"))

    def test_new_company_offers_both_modes_prepaid_by_default(self):
        company = self.env["res.company"].create({"name": "Billing Branch Co"})
        self.assertTrue(company.billing_offer_prepaid)
        self.assertTrue(company.billing_offer_postpaid)
        self.assertEqual(company.billing_default_mode, "prepaid")
