from odoo.exceptions import ValidationError
from odoo.tests import Form, tagged

from .common import BillingCommon


@tagged("post_install", "-at_install")
class TestBillingProfile(BillingCommon):
    # -------------------------------------------------------------------------
    # Defaults
    # -------------------------------------------------------------------------

    def test_default_mode_from_settings(self):
        prepaid = self.Partner.create({"name": "Default Prepaid"})
        self.assertEqual(prepaid.billing_mode, "prepaid")
        self.assertTrue(prepaid.billing_invoice_enabled)
        self.assertEqual(prepaid.billing_invoice_day, 1)
        self.assertFalse(prepaid.is_billing_reseller)
        self.assertFalse(prepaid.billing_reseller_id)

        self.company.billing_default_mode = "postpaid"
        postpaid = self.Partner.create({"name": "Default Postpaid"})
        self.assertEqual(postpaid.billing_mode, "postpaid")
        form = Form(self.Partner.with_user(self.billing_user))
        form.name = "Created In The Form"
        self.assertEqual(form.billing_mode, "postpaid")
        self.assertEqual(form.save().billing_mode, "postpaid")

    def test_mode_chosen_at_creation(self):
        self.company.billing_default_mode = "prepaid"
        form = Form(self.Partner.with_user(self.billing_user))
        form.name = "Chosen Postpaid"
        form.billing_mode = "postpaid"
        form.billing_invoice_day = 15
        partner = form.save()
        self.assertEqual(partner.billing_mode, "postpaid")
        self.assertEqual(partner.billing_invoice_day, 15)

    # -------------------------------------------------------------------------
    # Portal self-signup
    # -------------------------------------------------------------------------

    def test_portal_self_signup_is_prepaid(self):
        self.company.billing_default_mode = "postpaid"
        self.env["ir.config_parameter"].sudo().set_param(
            "auth_signup.invitation_scope", "b2c"
        )
        self.env["res.users"].sudo().signup(
            {
                "login": "self.signup@example.com",
                "name": "Self Signup",
                "password": "a-long-secret-password",
            }
        )
        user = self.env["res.users"].search([("login", "=", "self.signup@example.com")])
        self.assertTrue(user.share, "a self-signed-up user is a portal user")
        self.assertEqual(user.partner_id.billing_mode, "prepaid")

    def test_portal_self_signup_is_prepaid_when_only_postpaid_offered(self):
        self.company.write(
            {
                "billing_offer_prepaid": False,
                "billing_default_mode": "postpaid",
            }
        )
        self.env["ir.config_parameter"].sudo().set_param(
            "auth_signup.invitation_scope", "b2c"
        )
        self.env["res.users"].sudo().signup(
            {"login": "walk.in@example.com", "name": "Walk In", "password": "x" * 12}
        )
        user = self.env["res.users"].search([("login", "=", "walk.in@example.com")])
        self.assertEqual(user.partner_id.billing_mode, "prepaid")

    def test_invited_signup_keeps_chosen_mode(self):
        partner = self.Partner.create(
            {
                "name": "Invited Postpaid",
                "email": "invited@example.com",
                "billing_mode": "postpaid",
            }
        )
        partner.sudo().signup_prepare()
        token = partner.sudo()._generate_signup_token()
        self.env["res.users"].sudo().signup(
            {"login": "invited@example.com", "password": "x" * 12}, token=token
        )
        self.assertTrue(partner.user_ids)
        self.assertEqual(partner.billing_mode, "postpaid")

    # -------------------------------------------------------------------------
    # Kept on the commercial partner
    # -------------------------------------------------------------------------

    def test_profile_kept_on_commercial_partner(self):
        company = self.Partner.create(
            {
                "name": "Parent Co",
                "is_company": True,
                "billing_mode": "postpaid",
                "billing_invoice_day": 20,
                "billing_reseller_id": self.reseller.id,
            }
        )
        contact = self.Partner.create({"name": "Child", "parent_id": company.id})
        self.assertEqual(contact.billing_mode, "postpaid")
        self.assertEqual(contact.billing_invoice_day, 20)
        self.assertEqual(contact.billing_reseller_id, self.reseller)

        company.write({"billing_mode": "prepaid", "billing_invoice_enabled": False})
        self.assertEqual(contact.billing_mode, "prepaid")
        self.assertFalse(contact.billing_invoice_enabled)

        # The reseller's customers are its commercial partners, not their contacts.
        self.assertEqual(self.reseller.billing_customer_count, 2)
        action = self.reseller.action_view_billing_customers()
        self.assertEqual(
            self.Partner.search(action["domain"]), company | self.reseller_customer
        )

    # -------------------------------------------------------------------------
    # Validation
    # -------------------------------------------------------------------------

    def test_invoice_day_range(self):
        for day in (0, 32, -5):
            with self.assertRaisesRegex(
                ValidationError,
                f"Preferred Invoice Day of Bad Day must be between 1 and 31, not {day}",
            ):
                self.Partner.create({"name": "Bad Day", "billing_invoice_day": day})
        for day in (1, 28, 31):
            partner = self.Partner.create(
                {"name": "Good Day", "billing_invoice_day": day}
            )
            self.assertEqual(partner.billing_invoice_day, day)

    def test_reseller_must_be_a_reseller(self):
        with self.assertRaisesRegex(
            ValidationError,
            "Reseller of Customer X: Direct Customer is not a reseller",
        ):
            self.Partner.create(
                {"name": "Customer X", "billing_reseller_id": self.direct_customer.id}
            )

    def test_reseller_cannot_be_its_own_reseller(self):
        with self.assertRaisesRegex(
            ValidationError, "Reseller of Reseller One: a reseller cannot be its own"
        ):
            self.reseller.billing_reseller_id = self.reseller

    def test_reseller_cannot_be_its_resellers_reseller(self):
        sub_reseller = self.Partner.create(
            {
                "name": "Sub Reseller",
                "is_company": True,
                "is_billing_reseller": True,
                "billing_reseller_id": self.reseller.id,
            }
        )
        self.assertEqual(sub_reseller.billing_reseller_id, self.reseller)
        with self.assertRaisesRegex(
            ValidationError, "cannot be the reseller of its own reseller"
        ):
            self.reseller.billing_reseller_id = sub_reseller

    def test_reseller_flag_kept_while_it_has_customers(self):
        with self.assertRaisesRegex(
            ValidationError,
            "Is a Reseller of Reseller One cannot be switched off while 1 customers",
        ):
            self.reseller.is_billing_reseller = False
        self.reseller_customer.billing_reseller_id = False
        self.reseller.is_billing_reseller = False
        self.assertFalse(self.reseller.is_billing_reseller)

    def test_mode_must_be_offered(self):
        self.company.billing_offer_postpaid = False
        with self.assertRaisesRegex(
            ValidationError,
            "Billing Mode of No Postpaid: company .* does not offer Postpaid billing",
        ):
            self.Partner.create({"name": "No Postpaid", "billing_mode": "postpaid"})
        # A contact follows its commercial partner, whatever is offered now.
        contact = self.Partner.create(
            {"name": "Contact", "parent_id": self.reseller_customer.id}
        )
        self.assertEqual(contact.billing_mode, "postpaid")

    def test_failed_validation_writes_nothing(self):
        """A write with a bad value beside a good one is refused by its
        constraint, which Odoo checks once the values are written: what leaves
        nothing is the rollback of the request, which a check after
        assertRaises (a savepoint) cannot tell apart. The proof is made over
        JSON-RPC: TestBillingRefusedRequests."""
        partner = self.Partner.create({"name": "Unchanged", "billing_invoice_day": 5})
        with self.assertRaisesRegex(
            ValidationError, "Preferred Invoice Day of Unchanged must be between"
        ):
            partner.write({"billing_mode": "postpaid", "billing_invoice_day": 40})

    # -------------------------------------------------------------------------
    # Chatter and search
    # -------------------------------------------------------------------------

    def test_changes_tracked_in_chatter(self):
        partner = self.Partner.create({"name": "Tracked", "is_company": True})
        # Odoo does not track changes of a record created in the same transaction.
        self._flush_tracking()
        partner.with_user(self.billing_manager).write(
            {
                "billing_mode": "postpaid",
                "billing_invoice_enabled": False,
                "billing_invoice_day": 12,
                "is_billing_reseller": True,
            }
        )
        self.assertLessEqual(
            {
                "billing_mode",
                "billing_invoice_enabled",
                "billing_invoice_day",
                "is_billing_reseller",
            },
            self._tracked_fields(partner),
        )
        mode_tracking = partner.message_ids.tracking_value_ids.filtered(
            lambda t: t.field_id.name == "billing_mode"
        )
        self.assertEqual(mode_tracking.old_value_char, "Prepaid")
        self.assertEqual(mode_tracking.new_value_char, "Postpaid")

    def test_search_filters(self):
        partners = self.reseller | self.reseller_customer | self.direct_customer
        Partner = self.Partner.with_user(self.billing_user)
        self.assertEqual(
            Partner.search(
                [("id", "in", partners.ids), ("billing_mode", "=", "postpaid")]
            ),
            self.reseller_customer,
        )
        self.assertEqual(
            Partner.search(
                [
                    ("id", "in", partners.ids),
                    ("billing_reseller_id", "=", self.reseller.id),
                ]
            ),
            self.reseller_customer,
        )
        self.assertEqual(
            Partner.search(
                [("id", "in", partners.ids), ("is_billing_reseller", "=", True)]
            ),
            self.reseller,
        )
        arch = Partner.get_views([(False, "search")])["views"]["search"]["arch"]
        for name in ("billing_prepaid", "billing_postpaid", "billing_reseller"):
            self.assertIn(f'name="{name}"', arch)
