from odoo.exceptions import AccessError
from odoo.tests import Form, tagged

from .common import BillingCommon

PROFILE_FIELDS = [
    "billing_mode",
    "is_billing_reseller",
    "billing_reseller_id",
    "billing_invoice_enabled",
    "billing_invoice_day",
]


@tagged("post_install", "-at_install")
class TestBillingAccess(BillingCommon):
    def _form_arch(self, user):
        views = self.Partner.with_user(user).get_views([(False, "form")])
        return views["views"]["form"]["arch"]

    # -------------------------------------------------------------------------
    # Billing user
    # -------------------------------------------------------------------------

    def test_billing_user_reads_and_sets_profile_of_new_customers(self):
        Partner = self.Partner.with_user(self.billing_user)
        values = Partner.browse(self.reseller_customer.id).read(PROFILE_FIELDS)[0]
        self.assertEqual(values["billing_mode"], "postpaid")
        self.assertEqual(values["billing_reseller_id"][0], self.reseller.id)
        customer = Partner.create(
            {
                "name": "New Postpaid",
                "billing_mode": "postpaid",
                "billing_reseller_id": self.reseller.id,
                "billing_invoice_day": 31,
            }
        )
        self.assertEqual(customer.billing_mode, "postpaid")
        self.assertEqual(customer.billing_reseller_id, self.reseller)

    def test_billing_user_cannot_change_profile(self):
        customer = self.direct_customer.with_user(self.billing_user)
        with self.assertRaisesRegex(
            AccessError,
            "Only Billing Administrators can change the billing profile "
            r"\(Billing Mode\) of Direct Customer",
        ):
            customer.write({"billing_mode": "postpaid"})
        with self.assertRaisesRegex(AccessError, "Preferred Invoice Day"):
            customer.billing_invoice_day = 9
        # Other fields, and the profile's current values, are fine.
        customer.write({"phone": "+1 555 0100", "billing_mode": "prepaid"})
        self.assertEqual(self.direct_customer.phone, "+1 555 0100")
        self.assertEqual(self.direct_customer.billing_mode, "prepaid")
        self.assertFalse(
            self.direct_customer.with_user(self.billing_user).billing_profile_editable
        )

    def test_billing_user_form_shows_profile_read_only_once_saved(self):
        arch = self._form_arch(self.billing_user)
        self.assertIn('name="billing_mode"', arch)
        form = Form(self.direct_customer.with_user(self.billing_user))
        with self.assertRaises(AssertionError):
            form.billing_mode = "postpaid"

    # -------------------------------------------------------------------------
    # Billing administrator
    # -------------------------------------------------------------------------

    def test_billing_manager_changes_profile(self):
        form = Form(self.direct_customer.with_user(self.billing_manager))
        form.billing_mode = "postpaid"
        form.billing_invoice_enabled = False
        form.billing_invoice_day = 30
        form.billing_reseller_id = self.reseller
        form.save()
        self.assertEqual(self.direct_customer.billing_mode, "postpaid")
        self.assertFalse(self.direct_customer.billing_invoice_enabled)
        self.assertEqual(self.direct_customer.billing_invoice_day, 30)
        self.assertEqual(self.direct_customer.billing_reseller_id, self.reseller)
        self.assertTrue(
            self.direct_customer.with_user(
                self.billing_manager
            ).billing_profile_editable
        )

    # -------------------------------------------------------------------------
    # Internal users without a billing role
    # -------------------------------------------------------------------------

    def test_internal_user_gets_defaults_only(self):
        Partner = self.Partner.with_user(self.internal_user)
        partner = Partner.create({"name": "From Sales"})
        self.assertEqual(partner.billing_mode, "prepaid")
        # Explicit default values are accepted, other choices are not.
        Partner.create({"name": "Explicit Default", "billing_mode": "prepaid"})
        with self.assertRaisesRegex(
            AccessError,
            r"Only Billing Users can set the billing profile \(Billing Mode\) of a "
            "new customer Chosen By Sales",
        ):
            Partner.create({"name": "Chosen By Sales", "billing_mode": "postpaid"})
        with self.assertRaisesRegex(AccessError, "Only Billing Administrators"):
            partner.write({"billing_mode": "postpaid"})
        self.assertNotIn('name="billing_mode"', self._form_arch(self.internal_user))

    def test_contact_of_customer_created_by_internal_user(self):
        """Contacts copy their company's profile, whoever creates them."""
        contact = self.Partner.with_user(self.internal_user).create(
            {"name": "New Contact", "parent_id": self.reseller_customer.id}
        )
        self.assertEqual(contact.billing_mode, "postpaid")
        self.assertEqual(contact.billing_reseller_id, self.reseller)

    # -------------------------------------------------------------------------
    # Portal users and resellers
    # -------------------------------------------------------------------------

    def test_portal_user_reads_own_profile_only(self):
        own = self.portal_user.partner_id.with_user(self.portal_user)
        self.assertEqual(own.read(["billing_mode"])[0]["billing_mode"], "prepaid")
        self.assertEqual(own.commercial_partner_id.billing_mode, "prepaid")
        with self.assertRaises(AccessError):
            self.reseller_customer.with_user(self.portal_user).read(["billing_mode"])
        with self.assertRaises(AccessError):
            own.write({"billing_mode": "postpaid"})

    def test_reseller_reads_its_customers_only(self):
        Partner = self.Partner.with_user(self.reseller_user)
        customers = Partner.search([("billing_reseller_id", "=", self.reseller.id)])
        self.assertEqual(customers, self.reseller_customer)
        self.assertEqual(
            customers.read(["billing_mode"])[0]["billing_mode"], "postpaid"
        )
        self.assertNotIn(
            self.direct_customer, Partner.search([("is_company", "=", True)])
        )
        with self.assertRaises(AccessError):
            self.direct_customer.with_user(self.reseller_user).read(["billing_mode"])
        with self.assertRaises(AccessError):
            customers.write({"billing_mode": "prepaid"})
        with self.assertRaises(AccessError):
            Partner.create(
                {"name": "Reseller Made", "billing_reseller_id": self.reseller.id}
            )

    def test_reseller_group_implies_portal(self):
        self.assertTrue(self.reseller_user.has_group("base.group_portal"))
        self.assertTrue(self.reseller_user.share)
        self.assertFalse(self.reseller_user.has_group("base.group_user"))
