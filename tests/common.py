from contextlib import contextmanager

from odoo.tests import new_test_user
from odoo.tests.common import TransactionCase


class RollbackAssertMixin:
    """``assertRaisesRegex`` as Odoo's ``assertRaises``: in a savepoint, so that
    the failed operation is rolled back as the request's transaction would be."""

    @contextmanager
    def assertRaisesRegex(self, expected_exception, expected_regex):
        with self.assertRaises(expected_exception) as caught:
            yield caught
        self.assertRegex(str(caught.exception), expected_regex)


class BillingCommon(RollbackAssertMixin, TransactionCase):
    """Fixtures shared by the billing tests: a company offering both modes, its
    billing users and a reseller with one customer."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env = cls.env(context=dict(cls.env.context, tracking_disable=False))
        cls.company = cls.env.company
        cls.company.write(
            {
                "billing_offer_prepaid": True,
                "billing_offer_postpaid": True,
                "billing_default_mode": "prepaid",
            }
        )
        cls.Partner = cls.env["res.partner"]
        cls.billing_user = new_test_user(
            cls.env,
            login="billing_user",
            groups="prepaid_postpaid_billing.group_billing_user",
        )
        cls.billing_manager = new_test_user(
            cls.env,
            login="billing_manager",
            groups="prepaid_postpaid_billing.group_billing_manager",
        )
        cls.internal_user = new_test_user(
            cls.env,
            login="internal_user",
            groups="base.group_user,base.group_partner_manager",
        )
        cls.reseller = cls.Partner.create(
            {"name": "Reseller One", "is_company": True, "is_billing_reseller": True}
        )
        cls.reseller_customer = cls.Partner.create(
            {
                "name": "Reseller Customer",
                "is_company": True,
                "billing_mode": "postpaid",
                "billing_reseller_id": cls.reseller.id,
            }
        )
        cls.direct_customer = cls.Partner.create(
            {"name": "Direct Customer", "is_company": True}
        )
        cls.reseller_contact = cls.Partner.create(
            {"name": "Reseller Agent", "parent_id": cls.reseller.id}
        )
        cls.reseller_user = new_test_user(
            cls.env,
            login="reseller_user",
            partner_id=cls.reseller_contact.id,
            groups="prepaid_postpaid_billing.group_billing_reseller",
        )
        cls.customer_contact = cls.Partner.create(
            {"name": "Customer Contact", "parent_id": cls.direct_customer.id}
        )
        cls.portal_user = new_test_user(
            cls.env,
            login="portal_customer",
            partner_id=cls.customer_contact.id,
            groups="base.group_portal",
        )

    def _flush_tracking(self):
        """Run the precommit hooks that write tracking values into the chatter."""
        self.env.flush_all()
        self.env.cr.flush()

    def _tracked_fields(self, partner):
        """Names of the fields tracked in the chatter of ``partner``."""
        self._flush_tracking()
        return set(partner.message_ids.tracking_value_ids.field_id.mapped("name"))
