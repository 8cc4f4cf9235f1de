from odoo import Command
from odoo.exceptions import AccessError, ValidationError
from odoo.tests import Form, new_test_user, tagged

from .common import BillingCommon
from .recurring_common import BillingRecurringCommon
from .wallet_common import BillingWalletCommon


@tagged("post_install", "-at_install")
class TestBillingResellerNumbering(BillingWalletCommon):
    """A reseller's own sales journal numbers its invoices with its prefix,
    independently of the company's and of other resellers' numbering."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.acme = cls._reseller("Acme Telecom", "ACME")
        cls.beta = cls._reseller("Beta Networks", "BETA/X")

    @classmethod
    def _reseller(cls, name, prefix=False):
        return cls.env["res.partner"].create(
            {
                "name": name,
                "is_company": True,
                "is_billing_reseller": True,
                "billing_invoice_prefix": prefix,
            }
        )

    def _post(self, journal=None, move_type="out_invoice", date="2026-11-01"):
        move = self.env["account.move"].create(
            {
                "move_type": move_type,
                "partner_id": self.customer.id,
                "invoice_date": date,
                **({"journal_id": journal.id} if journal else {}),
                "invoice_line_ids": [
                    Command.create(
                        {
                            "product_id": self.service.id,
                            "price_unit": 10.0,
                            "tax_ids": [Command.clear()],
                        }
                    )
                ],
            }
        )
        move.action_post()
        return move

    def test_reseller_gets_its_own_sales_journal(self):
        journal = self.acme.billing_journal_id
        self.assertEqual(journal.type, "sale")
        self.assertEqual(journal.company_id, self.company)
        self.assertEqual(journal.billing_reseller_id, self.acme)
        self.assertTrue(journal.refund_sequence)
        self.assertNotEqual(journal, self.beta.billing_journal_id)
        # Made a reseller later: its journal then; its contacts get none.
        partner = self.env["res.partner"].create(
            {"name": "Gamma Retail", "is_company": True}
        )
        contact = self.env["res.partner"].create(
            {"name": "Gamma Agent", "parent_id": partner.id}
        )
        self.assertFalse(partner.billing_journal_id)
        partner.is_billing_reseller = True
        self.assertEqual(partner.billing_journal_id.billing_reseller_id, partner)
        self.assertTrue(contact.is_billing_reseller)
        self.assertFalse(contact.billing_journal_id)
        # One journal per company, made when first needed there.
        other = self.setup_other_company()["company"]
        there = self.acme._billing_reseller_journal(other)
        self.assertEqual(there.company_id, other)
        self.assertEqual(self.acme.with_company(other).billing_journal_id, there)
        self.assertEqual(self.acme._billing_reseller_journal(other), there)
        self.assertEqual(self.acme.billing_journal_id, journal)

    def test_numbering_is_independent_and_gap_free(self):
        acme, beta = self.acme.billing_journal_id, self.beta.billing_journal_id
        names = [
            self._post(journal).name
            for journal in (acme, beta, acme, False, acme, beta)
        ]
        company_name = names[3]
        self.assertEqual(
            names[:3] + names[4:],
            [
                "ACME/2026/00001",
                "BETA/X/2026/00001",
                "ACME/2026/00002",
                "ACME/2026/00003",
                "BETA/X/2026/00002",
            ],
        )
        self.assertFalse(company_name.startswith(("ACME", "BETA")), company_name)
        # Credit notes have their own numbers; a new year starts at 1.
        refund = self._post(acme, move_type="out_refund")
        self.assertEqual(refund.name, "RACME/2026/00001")
        self.assertEqual(self._post(acme, date="2027-01-04").name, "ACME/2027/00001")
        self.assertEqual(self._post(acme).name, "ACME/2026/00004")

    def test_prefix_change_applies_to_new_numbers_only(self):
        journal = self.acme.billing_journal_id
        first = self._post(journal)
        self.assertEqual(first.name, "ACME/2026/00001")
        self.acme.billing_invoice_prefix = "AC-2"
        second = self._post(journal)
        self.assertEqual(second.name, "AC-2/2026/00001")
        self.assertEqual(first.name, "ACME/2026/00001")
        self.assertEqual(self._post(journal).name, "AC-2/2026/00002")
        # Without a prefix, the journal's code (made of the first prefix here)
        # numbers them, after the numbers it already gave.
        self.acme.billing_invoice_prefix = False
        self.assertEqual(journal.code, "ACME")
        self.assertEqual(self._post(journal).name, "ACME/2026/00002")

    def test_prefix_is_validated(self):
        for prefix in ("AC ME", "ACME/", "/ACME", "AC_ME", "É", "A" * 21):
            with self.assertRaisesRegex(
                ValidationError, "Invoice Prefix of Acme Telecom"
            ):
                self.acme.billing_invoice_prefix = prefix
        with self.assertRaisesRegex(
            ValidationError,
            "Invoice Prefix of Acme Telecom: beta/x is the prefix of another "
            "reseller of the same company",
        ):
            self.acme.billing_invoice_prefix = "beta/x"
        # A reseller of every company (no company) shares every company's
        # prefixes; one of another company only may have the same.
        other = self.setup_other_company()["company"]
        there = self._reseller("Beta Overseas")
        there.company_id = other
        with self.assertRaisesRegex(ValidationError, "Invoice Prefix of Beta Overseas"):
            there.billing_invoice_prefix = "BETA/X"
        self.beta.company_id = self.company
        there.billing_invoice_prefix = "BETA/X"
        self.assertEqual(there.billing_invoice_prefix, "BETA/X")
        with self.assertRaisesRegex(ValidationError, "Invoice Prefix of Beta Overseas"):
            there.company_id = self.company

    def test_only_billing_administrators_set_the_reseller_invoicing(self):
        for field, value in (
            ("billing_invoice_prefix", "NEW"),
            ("billing_invoice_contact_id", self.customer.id),
        ):
            with self.assertRaisesRegex(
                AccessError, "Only Billing Administrators can change"
            ):
                self.acme.with_user(self.billing_user).write({field: value})
        self.acme.with_user(self.billing_manager).billing_invoice_prefix = "NEW"
        self.assertEqual(self.acme.billing_invoice_prefix, "NEW")


@tagged("post_install", "-at_install")
class TestBillingResellerInvoices(BillingRecurringCommon):
    """Every invoice of a reseller's customer is issued in the reseller's
    journal; the company's own customers stay on the company's journal."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Its journal's code sorts before the company's own sales journal.
        cls.reseller = cls.env["res.partner"].create(
            {
                "name": "Aaa Reseller",
                "is_company": True,
                "is_billing_reseller": True,
                "billing_invoice_prefix": "AAA",
            }
        )
        cls.reseller_journal = cls.reseller.billing_journal_id
        cls.company_journal = cls.company_data["default_journal_sale"]
        cls.prepaid_of_reseller = cls.env["res.partner"].create(
            {
                "name": "Prepaid Of Reseller",
                "is_company": True,
                "billing_mode": "prepaid",
                "billing_reseller_id": cls.reseller.id,
            }
        )
        cls.postpaid_of_reseller = cls._postpaid_customer(
            "Postpaid Of Reseller", billing_reseller_id=cls.reseller.id
        )

    def test_manual_invoices_follow_the_customer(self):
        self.assertLess(self.reseller_journal.code, self.company_journal.code)
        direct = self._invoice([(self.service, 1, 10.0)])
        self.assertEqual(direct.journal_id, self.company_journal)
        theirs = self._invoice(
            [(self.service, 1, 10.0)], partner=self.prepaid_of_reseller
        )
        self.assertEqual(theirs.journal_id, self.reseller_journal)
        self.assertEqual(theirs.name, "AAA/2026/00001")
        # A contact of the customer: its commercial partner's reseller.
        contact = self.env["res.partner"].create(
            {"name": "Their Accountant", "parent_id": self.prepaid_of_reseller.id}
        )
        self.assertEqual(
            self._invoice([(self.service, 1, 5.0)], partner=contact).journal_id,
            self.reseller_journal,
        )
        # On the invoice form, the journal follows the customer chosen.
        form = Form(
            self.env["account.move"].with_context(default_move_type="out_invoice")
        )
        form.partner_id = self.prepaid_of_reseller
        self.assertEqual(form.journal_id, self.reseller_journal)
        form.partner_id = self.customer
        self.assertEqual(form.journal_id, self.company_journal)

    def test_create_invoice_and_recurring_use_the_resellers_journal(self):
        form = Form(self.env["billing.invoice.create"])
        form.customer_type = "prepaid"
        form.partner_id = self.prepaid_of_reseller
        form.amount = 30.0
        recharge = form.save()
        invoice = self.env["account.move"].browse(
            recharge.action_create_invoice()["res_id"]
        )
        self.assertEqual(invoice.journal_id, self.reseller_journal)
        self.assertTrue(invoice.name.startswith("AAA/"))
        theirs = self._schedule(self.postpaid_of_reseller)
        direct = self._schedule(self.postpaid)
        for schedule in (theirs, direct):
            schedule.write(
                {
                    "line_ids": [
                        Command.create({"product_id": self.plan.id, "price_unit": 20.0})
                    ]
                }
            )
        self._run()
        self.assertEqual(self._invoices(theirs).journal_id, self.reseller_journal)
        self.assertEqual(self._invoices(direct).journal_id, self.company_journal)


@tagged("post_install", "-at_install")
class TestBillingResellerGroup(BillingCommon):
    """The Reseller group follows Is a Reseller for the portal users of the
    partner's company."""

    def test_group_follows_the_reseller_flag(self):
        group = self.env.ref("prepaid_postpaid_billing.group_billing_reseller")
        shop = self.Partner.create({"name": "Corner Shop", "is_company": True})
        agent = self.Partner.create({"name": "Shop Agent", "parent_id": shop.id})
        clerk = self.Partner.create({"name": "Shop Clerk", "parent_id": shop.id})
        portal = new_test_user(
            self.env,
            login="shop_agent",
            partner_id=agent.id,
            groups="base.group_portal",
        )
        staff = new_test_user(
            self.env, login="shop_staff", partner_id=clerk.id, groups="base.group_user"
        )
        self.assertNotIn(group, portal.groups_id)
        shop.is_billing_reseller = True
        self.assertIn(group, portal.groups_id)
        self.assertTrue(portal.has_group("base.group_portal"))
        self.assertNotIn(group, staff.groups_id)
        self.assertFalse(staff.share)
        # A portal user made later for the reseller is a reseller's user too.
        late = new_test_user(
            self.env,
            login="shop_late",
            partner_id=self.Partner.create(
                {"name": "Late Agent", "parent_id": shop.id}
            ).id,
            groups="base.group_portal",
        )
        self.assertIn(group, late.groups_id)
        # No reseller any more: the group is taken, the portal stays.
        shop.is_billing_reseller = False
        self.assertNotIn(group, portal.groups_id)
        self.assertNotIn(group, late.groups_id)
        self.assertTrue(portal.has_group("base.group_portal"))
        # Its user moved to a reseller's company: given.
        portal.partner_id = self.reseller_contact
        self.assertIn(group, portal.groups_id)
