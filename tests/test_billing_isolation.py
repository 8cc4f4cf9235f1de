from datetime import date

from freezegun import freeze_time

from odoo import Command
from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged
from odoo.tools import convert_file

from .recurring_common import BillingRecurringCommon

ADDON = "prepaid_postpaid_billing"
# A field of each wizard another user tries to write, and the value.
HARMLESS_WRITES = {
    "billing.invoice.create": ("payment_amount", 1.0),
    "billing.invoice.create.service": ("charge_count", 99),
    "billing.reminder.send": ("force", True),
    "billing.invoice.register": ("scope", "filter"),
    "billing.wallet.adjust": ("amount", 1.0),
}


@tagged("post_install", "-at_install")
class TestBillingWizardOwner(BillingRecurringCommon):
    """Each wizard is its creator's alone: another user, even one with the
    same roles in the same company, neither reads, writes nor runs it."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.other_manager = new_test_user(
            cls.env,
            login="other_wallet_manager",
            groups=f"{ADDON}.group_billing_manager",
            company_id=cls.company.id,
            company_ids=[Command.set(cls.company.ids)],
        )

    def _wizards(self):
        """One record of each wizard, created by the Billing Administrator
        ``billing_manager`` as the screens do."""
        manager = self.billing_manager
        self._usage(self.postpaid, self.sms, "2026-10-03", count=2)
        invoice_create = (
            self.env["billing.invoice.create"]
            .with_user(manager)
            .create(
                {
                    "customer_type": "postpaid",
                    "partner_id": self.postpaid.id,
                    "date_from": date(2026, 10, 1),
                    "date_to": date(2026, 10, 31),
                }
            )
        )
        invoice_create.action_fetch_charges()
        self.assertTrue(invoice_create.service_ids)
        invoice = self._invoice([(self.service, 1, 40.0)], partner=self.postpaid)
        reminder = (
            self.env["billing.reminder.send"]
            .with_user(manager)
            .with_context(active_model="account.move", active_ids=invoice.ids)
            .create({})
        )
        register = (
            self.env["billing.invoice.register"]
            .with_user(manager)
            .create(
                {
                    "domain": [("id", "in", invoice.ids)],
                    "company_ids": [Command.set(self.company.ids)],
                }
            )
        )
        adjust = (
            self.env["billing.wallet.adjust"]
            .with_user(manager)
            .create(
                {"partner_id": self.customer.id, "amount": 25.0, "reason": "Goodwill"}
            )
        )
        return {
            "billing.invoice.create": invoice_create,
            "billing.invoice.create.service": invoice_create.service_ids,
            "billing.reminder.send": reminder,
            "billing.invoice.register": register,
            "billing.wallet.adjust": adjust,
        }

    def test_every_wizard_has_a_creator_rule(self):
        Rule = self.env["ir.rule"].sudo()
        wizards = [
            name
            for name, model in self.env.registry.items()
            if model._transient and model._original_module == ADDON
        ]
        self.assertIn("billing.wallet.adjust", wizards)
        missing = [
            name
            for name in sorted(wizards)
            if not Rule.search(
                [
                    ("model_id.model", "=", name),
                    ("groups", "=", False),
                    ("domain_force", "=", "[('create_uid', '=', user.id)]"),
                ]
            )
        ]
        self.assertFalse(missing, f"wizards without a creator-only rule: {missing}")
        self.assertEqual(set(self._wizards()), set(wizards))

    def test_another_user_neither_reads_writes_nor_runs_a_wizard(self):
        wizards = self._wizards()
        for name, wizard in wizards.items():
            theirs = wizard.with_user(self.other_manager)
            self.assertFalse(
                set(theirs.search([]).ids) & set(wizard.ids),
                f"{name}: another user's wizard is listed",
            )
            with self.assertRaises(AccessError, msg=f"{name}: read"):
                theirs.read(["create_uid"])
            field, value = HARMLESS_WRITES[name]
            with self.assertRaises(AccessError, msg=f"{name}: write"):
                theirs.write({field: value})
            with self.assertRaises(AccessError, msg=f"{name}: unlink"):
                theirs.unlink()
            # The wizard's own actions (not the ORM's archiving ones).
            actions = [
                method
                for cls in type(wizard).__mro__
                if cls.__module__.startswith(f"odoo.addons.{ADDON}.")
                for method in vars(cls)
                if method.startswith("action_")
            ]
            if name != "billing.invoice.create.service":
                self.assertTrue(actions, name)
            for method in actions:
                with self.assertRaises(AccessError, msg=f"{name}.{method}"):
                    getattr(theirs, method)()
        # Nothing was done with them: each is as its creator left it.
        self.assertEqual(wizards["billing.reminder.send"].state, "draft")
        self.assertEqual(wizards["billing.invoice.create"].step, "invoice")
        self.assertEqual(wizards["billing.wallet.adjust"].amount, 25.0)
        self.assertEqual(wizards["billing.invoice.create"].payment_amount, 0.0)
        self.assertFalse(self._wallet())
        self.assertEqual(
            self.env["account.move"].search_count(
                [("partner_id", "=", self.postpaid.id)]
            ),
            1,
        )
        # Their creator still uses them.
        wizards["billing.wallet.adjust"].with_user(self.billing_manager).action_apply()
        self.assertEqual(self._wallet().balance, 25.0)


@tagged("post_install", "-at_install")
class TestBillingWizardCompany(BillingRecurringCommon):
    """A wizard is given only companies the user works in and records the user
    may read; its computed fields show nothing of another company."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.other = cls.setup_other_company()["company"]
        # A credit of 40 in the other company's wallet of the customer.
        cls.env["billing.wallet.adjust"].with_company(cls.other).create(
            {
                "partner_id": cls.customer.id,
                "company_id": cls.other.id,
                "amount": 40.0,
                "reason": "Other company credit",
            }
        ).action_apply()
        cls.other_partner = cls._postpaid_customer(
            "Other Company Only", company_id=cls.other.id
        )

    def _as(self, user, model):
        return self.env[model].with_user(user)

    def test_wallet_adjust_of_another_company_shows_and_does_nothing(self):
        Adjust = self._as(self.billing_manager, "billing.wallet.adjust")
        # As the screen's onchange computes it, before anything is saved.
        draft = Adjust.new(
            {"partner_id": self.customer.id, "company_id": self.other.id}
        )
        self.assertEqual(draft.balance, 0.0)
        own = Adjust.new({"partner_id": self.customer.id})
        self.assertEqual(own.company_id, self.company)
        self.assertEqual(own.balance, 0.0)
        with self.assertRaisesRegex(
            AccessError,
            "Company of Credit or Debit a Wallet must be among the companies you "
            "work in",
        ):
            Adjust.create(
                {
                    "partner_id": self.customer.id,
                    "company_id": self.other.id,
                    "amount": 10.0,
                    "reason": "Not mine",
                }
            )
        wizard = Adjust.create(
            {"partner_id": self.customer.id, "amount": 10.0, "reason": "Mine"}
        )
        with self.assertRaisesRegex(AccessError, "Company of Credit or Debit"):
            wizard.write({"company_id": self.other.id})
        with self.assertRaisesRegex(AccessError, "Customer of Credit or Debit"):
            wizard.write({"partner_id": self.other_partner.id})
        # Its administrator, in that company, sees the balance.
        in_other = self.env["billing.wallet.adjust"].new(
            {"partner_id": self.customer.id, "company_id": self.other.id}
        )
        self.assertEqual(in_other.balance, 40.0)

    def test_invoice_create_of_another_company_is_refused(self):
        Create = self._as(self.billing_user, "billing.invoice.create")
        with self.assertRaisesRegex(
            AccessError, "Company of Create Invoice must be among the companies"
        ):
            Create.create({"company_id": self.other.id, "customer_type": "postpaid"})
        with self.assertRaisesRegex(
            AccessError, "Customer of Create Invoice: you may not read"
        ):
            Create.create(
                {"customer_type": "postpaid", "partner_id": self.other_partner.id}
            )
        with self.assertRaisesRegex(AccessError, "Company of Create Invoice"):
            Create.create({"customer_type": "prepaid"}).write(
                {"company_id": self.other.id}
            )
        # As the screen's onchange computes the total: nothing of them.
        draft = Create.new(
            {
                "company_id": self.other.id,
                "customer_type": "prepaid",
                "partner_id": self.customer.id,
                "amount": 10.0,
            }
        )
        self.assertEqual(draft.amount_total, 0.0)

    def test_invoice_create_totals_only_of_readable_usage(self):
        self._usage(self.postpaid, self.sms, "2026-10-03", quantity=100)
        theirs = self._usage_in_other_company()
        Create = self._as(self.billing_user, "billing.invoice.create")
        draft = Create.new(
            {
                "customer_type": "postpaid",
                "partner_id": self.postpaid.id,
                "charge_ids": [Command.set(theirs.ids)],
            }
        )
        self.assertEqual(draft.charge_amount, 0.0)
        with self.assertRaisesRegex(
            AccessError, "Usage Records of Create Invoice: you may not read"
        ):
            Create.create(
                {
                    "customer_type": "postpaid",
                    "partner_id": self.postpaid.id,
                    "charge_ids": [Command.set(theirs.ids)],
                }
            )

    def _usage_in_other_company(self):
        result = (
            self.env["billing.charge"]
            .with_company(self.other)
            .ingest(
                [
                    {
                        "partner_id": self.postpaid.id,
                        "product_id": self.sms.id,
                        "date": "2026-10-04",
                        "quantity": 1000,
                        "price_unit": 0.05,
                        "external_ref": "other-company-1",
                    }
                ]
            )
        )
        self.assertEqual(result["created"], 1, result)
        return self.env["billing.charge"].search(
            [("external_ref", "=", "other-company-1")]
        )

    def test_reminder_of_another_company_invoices_is_refused(self):
        theirs = (
            self.env["account.move"]
            .with_company(self.other)
            .create(
                {
                    "move_type": "out_invoice",
                    "partner_id": self.postpaid.id,
                    "invoice_line_ids": [
                        Command.create({"product_id": self.plan.id, "price_unit": 9.0})
                    ],
                }
            )
        )
        theirs.action_post()
        Reminder = self._as(self.billing_user, "billing.reminder.send")
        with self.assertRaisesRegex(
            AccessError, "Invoices of Send Payment Reminders: you may not read"
        ):
            Reminder.with_context(
                active_model="account.move", active_ids=theirs.ids
            ).create({})
        # As the screen's onchange computes the preview: nothing of them.
        draft = Reminder.new(
            {"scope": "selection", "invoice_ids": [Command.set(theirs.ids)]}
        )
        self.assertEqual((draft.send_count, draft.skip_count), (0, 0))
        self.assertFalse(draft.skip_summary)

    def test_register_of_another_company_is_refused(self):
        Register = self._as(self.billing_user, "billing.invoice.register")
        with self.assertRaisesRegex(
            AccessError, "Companies of Invoice Report Download must be among"
        ):
            Register.create({"company_ids": [Command.set(self.other.ids)]})
        own = Register.create({"company_ids": [Command.set(self.company.ids)]})
        self.assertEqual(own.action_download()["type"], "ir.actions.act_url")


@tagged("post_install", "-at_install")
class TestBillingIsolationRuns(BillingRecurringCommon):
    """Run Now, usage ingestion and Pay from Wallet stay within what the user
    may do."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.other = cls.setup_other_company()["company"]

    @freeze_time("2026-11-05")
    def test_run_now_invoices_the_users_companies_only(self):
        def plan():
            return [Command.create({"product_id": self.plan.id, "price_unit": 20.0})]

        here = self._schedule(company=self.company, line_ids=plan())
        there = self._schedule(
            self._postpaid_customer("Over There"), company=self.other, line_ids=plan()
        )
        both = new_test_user(
            self.env,
            login="two_company_manager",
            groups=f"{ADDON}.group_billing_manager",
            company_id=self.company.id,
            company_ids=[Command.set((self.company + self.other).ids)],
        )
        # One company enabled of two: that one only.
        self.env["billing.recurring"].with_user(both).with_context(
            allowed_company_ids=self.company.ids
        ).action_run_now()
        self.assertEqual(len(self._invoices(here)), 1)
        self.assertFalse(self._invoices(there))
        self.assertEqual(there.next_date, date(2026, 11, 1))
        # A manager of one company only, from the billing runs' list.
        self.env["billing.run"].with_user(self.billing_manager).action_run_now()
        self.assertFalse(self._invoices(there))
        # The scheduler's run invoices every company.
        self._run()
        self.assertEqual(len(self._invoices(there)), 1)

    def test_ingest_takes_customers_and_services_of_its_company_only(self):
        user = new_test_user(
            self.env,
            login="two_company_billing_user",
            groups=f"{ADDON}.group_billing_user",
            company_id=self.company.id,
            company_ids=[Command.set((self.company + self.other).ids)],
        )
        theirs = self._postpaid_customer("Their Customer", company_id=self.other.id)
        their_service = self.env["product.product"].create(
            {"name": "Their Service", "company_id": self.other.id}
        )
        Charge = self.env["billing.charge"].with_user(user)
        record = {
            "partner_id": theirs.id,
            "product_id": self.sms.id,
            "date": "2026-10-03",
            "quantity": 1,
            "price_unit": 0.05,
            "external_ref": "cross-1",
        }
        # Both companies enabled, the first one current: stored for the first.
        both = [self.company.id, self.other.id]
        result = Charge.with_context(allowed_company_ids=both).ingest(
            [
                record,
                {
                    **record,
                    "partner_id": self.postpaid.id,
                    "product_id": their_service.id,
                    "external_ref": "cross-2",
                },
            ]
        )
        self.assertEqual(result["created"], 0, result)
        reasons = {r["external_ref"]: r["reason"] for r in result["rejected"]}
        self.assertIn(
            f"unknown customer partner_id {theirs.id} in {self.company.name}",
            reasons["cross-1"],
        )
        self.assertIn(
            f"unknown service product_id {their_service.id} in {self.company.name}",
            reasons["cross-2"],
        )
        # In their company, they are stored there.
        result = Charge.with_context(
            allowed_company_ids=[self.other.id, self.company.id]
        ).ingest([record])
        self.assertEqual(result["created"], 1, result)
        charge = self.env["billing.charge"].search([("external_ref", "=", "cross-1")])
        self.assertEqual(charge.company_id, self.other)

    def test_pay_from_wallet_needs_a_billing_role(self):
        self._fund(50.0)
        invoice = self._invoice([(self.service, 1, 30.0)])
        accountant = new_test_user(
            self.env,
            login="plain_invoicing_user",
            groups="account.group_account_invoice",
            company_id=self.company.id,
            company_ids=[Command.set(self.company.ids)],
        )
        with self.assertRefusedWritingNothing(
            AccessError, "Only Billing Users can pay invoices from the wallet"
        ):
            invoice.with_user(accountant).action_billing_pay_from_wallet()
        self.assertEqual(invoice.payment_state, "not_paid")
        invoice.with_user(self.billing_user).action_billing_pay_from_wallet()
        self.assertIn(invoice.payment_state, ("paid", "in_payment"))
        self.assertEqual(self.customer.billing_balance, 20.0)
        self.assertBooksMatchWallet()


@tagged("post_install", "-at_install")
class TestBillingSecurityDataUpdate(BillingRecurringCommon):
    """Record rules and the administrator's billing role, loaded at
    installation, keep an administrator's changes through module updates."""

    def _update(self, filename):
        """Load ``filename`` as a module update does (as superuser)."""
        convert_file(
            self.env(su=True), ADDON, filename, {}, mode="update", noupdate=False
        )

    def test_rule_edits_survive_an_update(self):
        files = [
            "security/billing_charge_security.xml",
            "security/billing_wallet_security.xml",
            "security/billing_wizard_security.xml",
            "security/res_partner_security.xml",
        ]
        rules = self.env["ir.rule"].search(
            [("model_id.model", "like", "billing.")]
        ) | self.env.ref(f"{ADDON}.res_partner_rule_billing_reseller")
        self.assertGreater(len(rules), 10)
        for rule in rules:
            rule.name = f"Edited: {rule.id}"
        self.env.ref(f"{ADDON}.billing_charge_rule_portal").active = False
        for filename in files:
            self._update(filename)
        for rule in rules:
            self.assertEqual(rule.name, f"Edited: {rule.id}")
        self.assertFalse(self.env.ref(f"{ADDON}.billing_charge_rule_portal").active)

    def test_admin_without_billing_role_keeps_it_off_through_an_update(self):
        admin = self.env.ref("base.user_admin")
        manager = self.env.ref(f"{ADDON}.group_billing_manager")
        user_group = self.env.ref(f"{ADDON}.group_billing_user")
        self.assertIn(admin, manager.users)
        admin.groups_id -= manager + user_group
        self.assertFalse(admin.has_group(f"{ADDON}.group_billing_manager"))
        self._update("security/billing_security.xml")
        admin.invalidate_recordset()
        manager.invalidate_recordset()
        self.assertNotIn(admin, manager.users)
        self.assertFalse(admin.has_group(f"{ADDON}.group_billing_manager"))
