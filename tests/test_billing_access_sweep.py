"""The access sweep (issue 11): every model of the addon and the invoices,
payments and partners it extends, every public method of its models and every
route of its controllers, as each kind of user, on the records of the others.

Each party's records carry its marker ``SECRET-<label>`` in their names, so a
returned value or a page showing another party's data is caught. Every check
adds to a list of problems naming the user, the model, method or route and the
foreign record ids; a test fails once with all of them.
"""

import importlib
import inspect
import pkgutil
import re
from datetime import date

from odoo import Command, http
from odoo.exceptions import AccessError, MissingError, UserError, ValidationError
from odoo.http import Controller
from odoo.tests import Form, HttpCase, new_test_user, tagged
from odoo.tools import SQL

from odoo.addons.prepaid_postpaid_billing import controllers as addon_controllers

from ..models.billing_wallet import PORTAL_OPEN_TOPUPS_LIMIT
from .recurring_common import BillingRecurringCommon

ADDON = "prepaid_postpaid_billing"
ADDON_PACKAGE = f"odoo.addons.{ADDON}"
# The core models the addon extends whose records belong to a party.
CORE_MODELS = ("account.move", "account.move.line", "account.payment", "res.partner")
# What a refused operation raises.
REFUSED = (AccessError, MissingError, UserError, ValidationError)
MARKER = "SECRET-"
# Tables whose rows are compared before and after each operation.
FINGERPRINT_TABLES = (
    "account_move",
    "account_move_line",
    "account_payment",
    "account_partial_reconcile",
    "mail_mail",
    "mail_message",
    "res_partner",
    "ir_attachment",
)
# Records of each party and model the public methods may be called on, and
# of all parties, per model and user, they are called on, at most.
TARGETS_PER_PARTY = 3
TARGETS_PER_USER = 6
# Foreign records each CRUD check is tried on, at most, per model and user.
READ_SAMPLE = 30
WRITE_SAMPLE = 6

# Public methods of the addon the sweep does not call, with the reason. A method
# collected by introspection must be called or listed here; a listed one must
# still exist.
NOT_CALLED = {
    **{
        (wizard, method): "ORM override checking the wizard's companies and "
        "records (billing.wizard.mixin): the CRUD sweep and "
        "test_company_1_work_refuses_company_2_records call it"
        for wizard in (
            "billing.invoice.create",
            "billing.invoice.create.service",
            "billing.invoice.register",
            "billing.reminder.send",
            "billing.wallet.adjust",
        )
        for method in ("create", "write")
    },
    **{
        ("res.users", method): "ORM override of users (the Reseller group follows "
        "Is a Reseller); users are created and changed with Odoo's Settings "
        "rights, which none of the swept users has; TestBillingResellerGroup "
        "covers it"
        for method in ("create", "write")
    },
    ("account.move", "init"): "database set-up run by the module installation "
    "(indexes and constraints), not an operation on records",
    ("billing.charge", "init"): "database set-up run by the module installation",
    ("billing.recurring", "init"): "database set-up run by the module installation",
    ("billing.wallet.move", "init"): "database set-up run by the module installation",
    ("billing.service", "init"): "database set-up run by the module installation",
}
# Models of the addon without records: the CRUD sweep has nothing to read.
NO_RECORDS = {
    "billing.xlsx.report": "abstract report builder, no table",
    "billing.charge.history.xlsx": "abstract report builder, no table",
    "billing.invoice.register.xlsx": "abstract report builder, no table",
    "billing.wizard.mixin": "abstract checks of the wizards, no table; swept on "
    "the wizards using it",
    "billing.dashboard": "abstract figures of the dashboard, no table; its public "
    "methods are swept",
    "billing.seller.mixin": "abstract seller of the emails, no table; swept on the "
    "wallets and services using it",
}
# The routes of the addon's controllers TestBillingAccessSweepHttp covers.
COVERED_ROUTES = {
    "/my/wallet",
    "/my/wallet/buy",
    "/billing/invoice_register/<int:register_id>",
    "/billing/charge_history/<int:invoice_id>",
    # Pay from Wallet on the portal invoice page: TestBillingWalletPortalPay.
    "/my/invoices/<int:invoice_id>/pay_from_wallet",
    # The reseller portal: TestBillingResellerPortalSweep.
    "/my/customers",
    "/my/customers/page/<int:page>",
    "/my/customers/<int:partner_id>",
    "/my/customers/invoices",
    "/my/customers/invoices/page/<int:page>",
    "/my/customers/invoices/xlsx",
    "/my/customers/invoices/remind",
    # TestBillingResellerRechargePortal, TestBillingResellerRechargeSweep.
    "/my/customers/<int:partner_id>/recharge",
    # My Services: TestBillingServicePortal, TestBillingServicePortalSweep.
    "/my/services",
    "/my/services/page/<int:page>",
    "/my/services/<int:service_id>/auto_renew",
    "/my/services/<int:service_id>/close",
    # The preferred invoice day (GET and POST): TestBillingInvoiceDayPortal,
    # TestBillingInvoiceDaySweep.
    "/my/billing/invoice_day",
    # My Usage: TestBillingUsagePortal, test_usage_pages_show_only_own_usage.
    "/my/usage",
    "/my/usage/page/<int:page>",
    "/my/usage/export/csv",
    "/my/usage/export/xlsx",
    "/my/customers/<int:partner_id>/usage",
    "/my/customers/<int:partner_id>/usage/page/<int:page>",
    "/my/customers/<int:partner_id>/usage/export/csv",
    "/my/customers/<int:partner_id>/usage/export/xlsx",
}
# Party labels of each company; "c1"/"c2" own the company's billing runs.
COMPANY_1_PARTIES = frozenset({"A", "B", "C", "D", "E", "R", "R2", "c1"})
COMPANY_2_PARTIES = frozenset({"D2", "B2", "S", "c2"})
# Parties of no company: their partner records (labelled "shared") are every
# company's; their billing records are their company's.
SHARED_PARTIES = frozenset({"S"})
STAFF_LABELS = COMPANY_1_PARTIES | {"shared"}
# Field each model's records belong to a party by (None: to no party).
PARTNER_PATH = {
    "billing.charge": "partner_id",
    "billing.wallet": "partner_id",
    "billing.wallet.move": "partner_id",
    "billing.recurring": "partner_id",
    "billing.recurring.line": "recurring_id.partner_id",
    "billing.recurring.allowance": "recurring_id.partner_id",
    "billing.run": None,
    "billing.run.batch": None,
    "billing.run.failure": "partner_id",
    "account.move": "commercial_partner_id",
    "account.move.line": "move_id.commercial_partner_id",
    "account.payment": "partner_id",
    "res.partner": "id",
}
PREFERRED_WRITE_FIELDS = ("name", "ref", "reason", "description", "error", "comment")


class BillingAccessSweepCommon(BillingRecurringCommon):
    """Two companies and, in them, every kind of party with records of every
    billing model; the wizards of a Billing Administrator U2."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.company_1 = cls.company
        cls.company_2_data = cls.setup_other_company(name="Sweep Company Two")
        cls.company_2 = cls.company_2_data["company"]
        cls.product_2 = cls.env["product.product"].create(
            {
                "name": "SECRET-c2 Service",
                "type": "service",
                "list_price": 1.0,
                "company_id": cls.company_2.id,
                "taxes_id": [Command.clear()],
            }
        )
        c1, c2 = cls.company_1, cls.company_2
        cls.parties = {}
        cls.party_company = {}
        party = cls._sweep_party
        party("A", c1, "prepaid")
        party("B", c1, "postpaid")
        party("R", c1, "postpaid", is_billing_reseller=True)
        party("C", c1, "postpaid", billing_reseller_id=cls.parties["R"].id)
        party("D", c1, "prepaid")
        party("R2", c1, "postpaid", is_billing_reseller=True)
        party("E", c1, "postpaid", billing_reseller_id=cls.parties["R2"].id)
        party("D2", c2, "prepaid", company_id=c2.id)
        party("B2", c2, "postpaid", company_id=c2.id)
        # A customer shared by both companies (no company), with a wallet in
        # company 2 only.
        party("S", c2, "prepaid")
        P = cls.parties

        # Users: portal customers, a reseller, billing staff of company 1 only.
        cls.user_a = cls._sweep_portal_user("sweep_a", P["A"])
        cls.user_b = cls._sweep_portal_user("sweep_b", P["B"])
        cls.user_r = cls._sweep_portal_user(
            "sweep_r", P["R"], groups=f"{ADDON}.group_billing_reseller"
        )
        cls.user_u1 = cls._sweep_staff("sweep_u1", f"{ADDON}.group_billing_user")
        cls.user_m1 = cls._sweep_staff("sweep_m1", f"{ADDON}.group_billing_manager")
        cls.user_u2 = cls._sweep_staff("sweep_u2", f"{ADDON}.group_billing_manager")
        cls.sweep_users = {
            "customer A": (cls.user_a, frozenset({"A"})),
            "postpaid B": (cls.user_b, frozenset({"B"})),
            "reseller R": (cls.user_r, frozenset({"R", "C"})),
            "billing user U1": (cls.user_u1, STAFF_LABELS),
            "billing admin M1": (cls.user_m1, STAFF_LABELS),
        }

        # Records of every party, named by their marker.
        cls.targets = {}  # model -> [(owner label, record)]
        # Credit of different amounts, so that a page showing another's balance
        # is told from one showing its own.
        for label, company, credit in (
            ("A", c1, 100.0),
            ("D", c1, 77.0),
            ("D2", c2, 55.0),
            ("S", c2, 33.0),
        ):
            topup = cls._sweep_invoice(
                company, P[label], [(cls.recharge, 1, credit)], label=label
            )
            cls._sweep_pay(company, topup)
            cls._sweep_usage(company, P[label], "2026-10-04", 2)
        for label, company in (("B", c1), ("C", c1), ("E", c1), ("B2", c2)):
            cls._sweep_usage(company, P[label], "2026-10-04", 2)
            invoice = cls._sweep_postpaid_invoice(company, P[label], label)
            cls._sweep_tag(invoice, label)
        # The postpaid invoice of B2 partly paid: a payment and its
        # reconciliation in company 2.
        cls._sweep_pay(c2, cls._sweep_last_invoice(P["B2"]), amount=0.05)
        # Pending usage of November for B (the wizard of U2 lists it) and B2.
        cls._sweep_usage(c1, P["B"], "2026-11-04", 1)
        cls._sweep_usage(c2, P["B2"], "2026-11-04", 1)
        # Recurring invoices: B's not due (a Run Now of company 1 has nothing to
        # do), B2's due (a Run Now of company 1 must not invoice it).
        cls.schedule_b = cls._sweep_schedule(c1, P["B"], "B", date(2027, 6, 1))
        cls.schedule_b2 = cls._sweep_schedule(c2, P["B2"], "B2", date(2026, 11, 1))
        recurring_b = cls._sweep_invoice(c1, P["B"], [(cls.plan, 1, 20.0)], label="B")
        recurring_b.sudo().billing_recurring_id = cls.schedule_b
        draft_b2 = cls._sweep_invoice(
            c2, P["B2"], [(cls.plan, 1, 20.0)], label="B2", post=False
        )
        draft_b2.sudo().billing_recurring_id = cls.schedule_b2
        cls.draft_recurring_b2 = draft_b2
        cls.run_c1 = cls._sweep_run(c1, cls.schedule_b, P["B"], "B")
        cls.run_c2 = cls._sweep_run(c2, cls.schedule_b2, P["B2"], "B2")

        # U2's wizards, one of each transient model.
        env_u2 = cls.env(user=cls.user_u2)
        form = Form(env_u2["billing.invoice.create"])
        form.customer_type = "postpaid"
        form.partner_id = P["B"].with_env(env_u2)
        form.date_from = date(2026, 11, 1)
        form.date_to = date(2026, 11, 30)
        cls.wizard_create = form.save()
        cls.wizard_create.action_fetch_charges()
        cls.wizard_create.description = "SECRET-U2 wizard"
        cls.wizard_reminder = env_u2["billing.reminder.send"].create({})
        cls.wizard_register = env_u2["billing.invoice.register"].create(
            {
                "domain": [("partner_id", "=", P["B"].id)],
                "scope": "selection",
                "company_ids": [Command.set(c1.ids)],
            }
        )
        cls.wizard_adjust = env_u2["billing.wallet.adjust"].create(
            {"partner_id": P["A"].id, "amount": 5.0, "reason": "SECRET-U2 adjust"}
        )
        # Settings of the superuser, with other price decimals than today's.
        digits = cls.env["decimal.precision"].precision_get("Product Price")
        cls.settings_root = cls.env["res.config.settings"].create(
            {"billing_price_digits": 4 if digits != 4 else 5}
        )
        # A new service of every party, in its company (not activated: the
        # balances and charges of the fixtures stay as they are).
        cls.service_product = cls.env["product.product"].create(
            {
                "name": "Sweep Line",
                "type": "service",
                "list_price": 1.0,
                "taxes_id": [Command.clear()],
            }
        )
        cls.services = {label: cls._sweep_service(label) for label in cls.parties}
        cls._sweep_collect_targets()
        cls.env.flush_all()

    # -------------------------------------------------------------------------
    # Fixtures
    # -------------------------------------------------------------------------

    @classmethod
    def _sweep_party(cls, label, company, mode, **vals):
        partner = cls.env["res.partner"].create(
            {
                "name": f"{MARKER}{label} Ltd",
                "is_company": True,
                "email": f"sweep.{label.lower()}@example.com",
                "billing_mode": mode,
                **vals,
            }
        )
        cls.env["res.partner"].create(
            {
                "name": f"{MARKER}{label} Contact",
                "parent_id": partner.id,
                "email": f"contact.{label.lower()}@example.com",
            }
        )
        cls.party_company[label] = company
        cls.parties[label] = partner
        return partner

    @classmethod
    def _sweep_portal_user(cls, login, partner, groups="base.group_portal"):
        return new_test_user(
            cls.env,
            login=login,
            partner_id=partner.child_ids[:1].id,
            groups=groups,
            company_id=cls.company_1.id,
            company_ids=[Command.set(cls.company_1.ids)],
        )

    @classmethod
    def _sweep_staff(cls, login, groups):
        return new_test_user(
            cls.env,
            login=login,
            name=f"Sweep {login}",
            groups=groups,
            company_id=cls.company_1.id,
            company_ids=[Command.set(cls.company_1.ids)],
        )

    @classmethod
    def _sweep_service(cls, label):
        company = cls.party_company[label]
        return (
            cls.env["billing.service"]
            .with_company(company)
            .create(
                {
                    "partner_id": cls.parties[label].id,
                    "product_id": cls.service_product.id,
                    "name": f"{MARKER}{label} service",
                    "company_id": company.id,
                }
            )
        )

    @classmethod
    def _sweep_invoice(cls, company, partner, lines, label, post=True):
        invoice = (
            cls.env["account.move"]
            .with_company(company)
            .create(
                {
                    "move_type": "out_invoice",
                    "partner_id": partner.id,
                    "invoice_date": "2026-11-01",
                    "ref": f"{MARKER}{label} invoice",
                    "invoice_line_ids": [
                        Command.create(
                            {
                                "product_id": product.id,
                                "name": f"{MARKER}{label} {product.name}",
                                "quantity": quantity,
                                "price_unit": price,
                                "tax_ids": [Command.clear()],
                            }
                        )
                        for product, quantity, price in lines
                    ],
                }
            )
        )
        if post:
            invoice.action_post()
        return invoice

    @classmethod
    def _sweep_pay(cls, company, invoice, amount=None):
        journal = cls.env["account.journal"].search(
            [
                ("company_id", "=", company.id),
                ("type", "=", "bank"),
                ("id", "!=", company.billing_wallet_journal_id.id),
            ],
            limit=1,
        )
        vals = {"journal_id": journal.id}
        if amount is not None:
            vals["amount"] = amount
        wizard = (
            cls.env["account.payment.register"]
            .with_company(company)
            .with_context(active_model="account.move", active_ids=invoice.ids)
            .create(vals)
        )
        return wizard._create_payments()

    @classmethod
    def _sweep_usage(cls, company, partner, when, count):
        label = next(key for key, value in cls.parties.items() if value == partner)
        cls.ref_counter += 1
        records = [
            {
                "partner_id": partner.id,
                "product_id": cls.sms.id,
                "date": when,
                "quantity": 3.0,
                "price_unit": 0.05,
                "name": f"{MARKER}{label} usage",
                "external_ref": f"sweep-{cls.ref_counter}-{index}",
            }
            for index in range(count)
        ]
        result = cls.env["billing.charge"].with_company(company).ingest(records)
        assert not result["rejected"], result["rejected"]

    @classmethod
    def _sweep_postpaid_invoice(cls, company, partner, label):
        form = Form(cls.env["billing.invoice.create"].with_company(company))
        form.customer_type = "postpaid"
        form.partner_id = partner
        form.date_from = date(2026, 10, 1)
        form.date_to = date(2026, 10, 31)
        wizard = form.save()
        wizard.action_fetch_charges()
        wizard.action_create_invoice()
        return cls._sweep_last_invoice(partner)

    @classmethod
    def _sweep_last_invoice(cls, partner):
        return cls.env["account.move"].search(
            [("partner_id", "=", partner.id), ("move_type", "=", "out_invoice")],
            order="id desc",
            limit=1,
        )

    @classmethod
    def _sweep_tag(cls, invoice, label):
        invoice.sudo().ref = f"{MARKER}{label} invoice"

    @classmethod
    def _sweep_schedule(cls, company, partner, label, next_date):
        return (
            cls.env["billing.recurring"]
            .with_company(company)
            .create(
                {
                    "partner_id": partner.id,
                    "company_id": company.id,
                    "interval_type": "month",
                    "interval_number": 1,
                    "next_date": next_date,
                    "generation_mode": "draft",
                    "send_email": False,
                    "line_ids": [
                        Command.create(
                            {
                                "product_id": cls.plan.id,
                                "name": f"{MARKER}{label} plan",
                                "price_unit": 20.0,
                            }
                        )
                    ],
                    "allowance_ids": [
                        Command.create({"product_id": cls.sms.id, "quantity": 100})
                    ],
                }
            )
        )

    @classmethod
    def _sweep_run(cls, company, schedule, partner, label):
        # sudo: runs are written by the recurring run only.
        return (
            cls.env["billing.run"]
            .sudo()
            .create(
                {
                    "company_id": company.id,
                    "state": "failed",
                    "failure_ids": [
                        Command.create(
                            {
                                "recurring_id": schedule.id,
                                "partner_id": partner.id,
                                "error": f"{MARKER}{label} failure",
                            }
                        )
                    ],
                    # A batch of a run split into queue jobs (models/billing_queue.py).
                    "batch_ids": [
                        Command.create(
                            {
                                "date": date(2026, 11, 1),
                                "record_ids": [schedule.id],
                                "state": "failed",
                                "error": f"{MARKER}{label} job failure",
                            }
                        )
                    ],
                }
            )
        )

    @classmethod
    def _sweep_collect_targets(cls):
        """For each model, the records of each party (by owner label) that the
        method sweep calls the public methods on."""
        targets = {}

        def add(model, label, records):
            for record in records:
                targets.setdefault(model, []).append((label, record))

        for label, partner in cls.parties.items():
            company = cls.party_company[label]
            add("res.partner", "shared" if label in SHARED_PARTIES else label, partner)
            moves = cls.env["account.move"].search(
                [("commercial_partner_id", "=", partner.id)]
            )
            # Its invoices first (top-up, usage, recurring, draft), then its
            # other entries (payments).
            invoices = moves.filtered(lambda move: move.move_type == "out_invoice")
            add("account.move", label, (invoices | moves)[:TARGETS_PER_PARTY])
            add("account.move.line", label, moves.invoice_line_ids[:2])
            payments = cls.env["account.payment"].search(
                [("partner_id", "=", partner.id)]
            )
            add("account.payment", label, payments[:TARGETS_PER_PARTY])
            add(
                "account.partial.reconcile",
                label,
                moves.line_ids.matched_debit_ids | moves.line_ids.matched_credit_ids,
            )
            for model in (
                "billing.charge",
                "billing.wallet",
                "billing.wallet.move",
                "billing.recurring",
                "billing.run.failure",
                "billing.service",
            ):
                records = cls.env[model].search(
                    [("partner_id", "=", partner.id), ("company_id", "=", company.id)]
                )
                add(model, label, records[:2])
        for schedule, label in ((cls.schedule_b, "B"), (cls.schedule_b2, "B2")):
            add("billing.recurring.line", label, schedule.line_ids)
            add("billing.recurring.allowance", label, schedule.allowance_ids)
        add("billing.run", "c1", cls.run_c1)
        add("billing.run", "c2", cls.run_c2)
        add("billing.run.batch", "c1", cls.run_c1.batch_ids)
        add("billing.run.batch", "c2", cls.run_c2.batch_ids)
        add("billing.invoice.create", "U2", cls.wizard_create)
        add("billing.invoice.create.service", "U2", cls.wizard_create.service_ids)
        add("billing.reminder.send", "U2", cls.wizard_reminder)
        add("billing.invoice.register", "U2", cls.wizard_register)
        add("billing.wallet.adjust", "U2", cls.wizard_adjust)
        add("res.config.settings", "root", cls.settings_root)
        cls.targets = targets

    # -------------------------------------------------------------------------
    # Introspection
    # -------------------------------------------------------------------------

    def _addon_models(self):
        """Names of the models the addon defines (not only extends)."""
        return sorted(
            name
            for name, model in self.env.registry.items()
            if model._original_module == ADDON
        )

    def _addon_public_methods(self):
        """(model, method name) of every public method defined by a class of the
        addon, on every model of the registry."""
        found = {}
        for name, model in self.env.registry.items():
            # An abstract model's methods are swept on the models using it;
            # one that no model uses is called for itself (billing.dashboard).
            if model._abstract and model._inherit_children:
                continue
            for cls in model.__mro__:
                if not (cls.__module__ or "").startswith(ADDON_PACKAGE):
                    continue
                for attr, value in vars(cls).items():
                    if attr.startswith("_") or not inspect.isfunction(value):
                        continue
                    found[(name, attr)] = value
        return found

    # -------------------------------------------------------------------------
    # Scopes
    # -------------------------------------------------------------------------

    def _scope_partners(self, labels):
        """The partners (companies and contacts) of the parties ``labels``."""
        Partner = self.env["res.partner"].with_context(active_test=False)
        commercial = Partner.browse(
            self.parties[label].id for label in labels if label in self.parties
        )
        return Partner.search([("id", "child_of", commercial.ids)])

    def _is_staff(self, user):
        return not user.share

    def _allowed_domain(self, user, labels, model_name):
        """The records of ``model_name`` ``user`` may see: a portal user, those of
        its parties; billing staff, those of its companies; a wizard, its
        creator alone."""
        Model = self.env[model_name]
        if Model._transient:
            return [("create_uid", "=", user.id)]
        if self._is_staff(user):
            if model_name == "res.partner":
                # Odoo shows the partners of companies and internal users to
                # every company (partner_share unset).
                return [
                    "|",
                    ("partner_share", "=", False),
                    ("company_id", "in", [False, *user.company_ids.ids]),
                ]
            return [("company_id", "in", user.company_ids.ids)]
        path = PARTNER_PATH.get(model_name, "partner_id")
        if path is None:
            return [("id", "=", 0)]
        return [(path, "in", self._scope_partners(labels).ids)]

    def _foreign_records(self, user, labels, model_name):
        Model = self.env[model_name].sudo().with_context(active_test=False)
        return Model.search([]) - Model.search(
            self._allowed_domain(user, labels, model_name)
        )

    @staticmethod
    def _marker_leaks(value, labels):
        """Labels of the parties other than ``labels`` whose marker is in
        ``value``."""
        text = value if isinstance(value, str) else repr(value)
        found = set(re.findall(re.escape(MARKER) + r"([A-Za-z0-9]+)", text))
        return sorted(found - set(labels))

    # -------------------------------------------------------------------------
    # Fingerprints
    # -------------------------------------------------------------------------

    def _fingerprint_tables(self):
        self.env.cr.execute(
            SQL(
                """
                SELECT table_name, array_agg(column_name::text)
                  FROM information_schema.columns
                 WHERE table_schema = current_schema()
                   AND (left(table_name, 8) = 'billing_' OR table_name = ANY(%s))
                   AND table_name IN (
                       SELECT tablename FROM pg_tables
                        WHERE schemaname = current_schema())
              GROUP BY table_name
              ORDER BY table_name
                """,
                list(FINGERPRINT_TABLES),
            )
        )
        return self.env.cr.fetchall()

    def _fingerprint(self, user, whole=False):
        """Per table, a digest of the rows ``user`` does not own: for a portal
        user every row; for billing staff every row but those of its companies
        it created or last wrote, and its own wizards; every row with
        ``whole``."""
        self.env.flush_all()
        transient = {
            self.env[name]._table
            for name in self._addon_models()
            if self.env[name]._transient
        }
        digests = {}
        for table, columns in self._fingerprint_tables():
            if "id" not in columns:
                continue
            condition = SQL("TRUE")
            if self._is_staff(user) and not whole:
                if table in transient:
                    condition = SQL("t.create_uid IS DISTINCT FROM %s", user.id)
                else:
                    mine = SQL(
                        "(t.create_uid = %(uid)s OR t.write_uid = %(uid)s)", uid=user.id
                    )
                    company = next(
                        (
                            col
                            for col in ("company_id", "record_company_id")
                            if col in columns
                        ),
                        None,
                    )
                    if company:
                        mine = SQL(
                            "(%s AND t.%s = ANY(%s))",
                            mine,
                            SQL.identifier(company),
                            user.company_ids.ids,
                        )
                    condition = SQL("NOT COALESCE(%s, FALSE)", mine)
            self.env.cr.execute(
                SQL(
                    "SELECT count(*), md5(string_agg(t::text, ',' ORDER BY t.id)) "
                    "FROM %s t WHERE %s",
                    SQL.identifier(table),
                    condition,
                )
            )
            digests[table] = self.env.cr.fetchone()
        return digests

    def _attempt(self, user, problems, what, func, check_result=None, whole=False):
        """Run ``func`` as a request would, in a savepoint rolled back afterwards.
        A refusal (AccessError, MissingError, UserError, ValidationError) undoes
        the request's work, as the RPC layer does; a call that returns must have
        changed no row ``user`` does not own (every row with ``whole``), and
        ``check_result`` checks what it returned. Any other exception is a
        problem. Returns the error raised, if any."""
        baseline = self._baseline(user, whole)
        savepoint = self.env.cr.savepoint()
        self.env.invalidate_all(flush=False)
        error = None
        try:
            try:
                result = func()
                self.env.flush_all()
            except REFUSED as refused:
                error = refused
            except Exception as unexpected:  # noqa: BLE001 - reported
                error = unexpected
                problems.append(
                    f"{what}: raised {type(unexpected).__name__}: {unexpected}"
                )
            if error is None:
                after = self._fingerprint(user, whole)
                changed = sorted(
                    table for table in baseline if baseline[table] != after.get(table)
                )
                if changed:
                    problems.append(
                        f"{what}: changed rows it does not own in {', '.join(changed)}"
                    )
                if check_result:
                    check_result(result)
        finally:
            savepoint.close(rollback=True)
            self.env.invalidate_all(flush=False)
        return error

    def _baseline(self, user, whole=False):
        baselines = self.__dict__.setdefault("_sweep_baselines", {})
        if (user.id, whole) not in baselines:
            baselines[user.id, whole] = self._fingerprint(user, whole)
        return baselines[user.id, whole]

    def _report(self, problems):
        if problems:
            self.fail(f"{len(problems)} access problems:\n" + "\n".join(problems))


@tagged("post_install", "-at_install")
class TestBillingAccessSweep(BillingAccessSweepCommon):
    """Every model and public method of the addon, as each user, on the records
    of the others."""

    # -------------------------------------------------------------------------
    # Fixtures are what the sweep needs
    # -------------------------------------------------------------------------

    def test_fixtures_have_records_of_every_model_for_every_party(self):
        problems = []
        models = [
            name for name in self._addon_models() if name not in NO_RECORDS
        ] + list(CORE_MODELS)
        for name in models:
            owners = {label for label, _record in self.targets.get(name, [])}
            if not owners:
                problems.append(f"{name}: no record in the fixtures")
            elif not (self.env[name]._transient or name == "billing.run") and not (
                owners & COMPANY_2_PARTIES
            ):
                problems.append(f"{name}: no record of company 2 in the fixtures")
        for name in NO_RECORDS:
            if name in self.env and self.env[name]._auto:
                problems.append(f"{name} is listed in NO_RECORDS but has a table")
        self._report(problems)

    # -------------------------------------------------------------------------
    # search_read, read, write, unlink
    # -------------------------------------------------------------------------

    def test_crud_sweep(self):
        """As each user, on every model: ``search_read`` returns nothing of
        another party, ``read`` by id of another's record is refused, and
        ``write`` and ``unlink`` of another's records are refused and change
        nothing."""
        problems = []
        models = [
            name for name in self._addon_models() if name not in NO_RECORDS
        ] + list(CORE_MODELS)
        for who, (user, labels) in self.sweep_users.items():
            for name in models:
                self._sweep_crud(who, user, labels, name, problems)
        self._report(problems)

    def _sweep_crud(self, who, user, labels, name, problems):
        foreign = self._foreign_records(user, labels, name)
        if not foreign:
            problems.append(
                f"{who}: {name}: no record of others to sweep: complete the fixtures"
            )
            return
        Model = (
            self.env[name]
            .with_user(user)
            .with_company(user.company_id)
            .with_context(active_test=False)
        )
        field = self._harmless_field(name)
        # search_read
        try:
            rows = Model.search_read([], ["id"])
        except AccessError:
            rows = []
        leaked = sorted({row["id"] for row in rows} & set(foreign.ids))
        if leaked:
            problems.append(
                f"{who}: {name}.search_read([]) returns records of others: {leaked}"
            )
        # read by id
        read_leaks = []
        for record in foreign.sorted("id", reverse=True)[:READ_SAMPLE]:
            self.env.invalidate_all()
            try:
                rows = Model.browse(record.id).read([field])
            except (AccessError, MissingError):
                rows = []
            if rows:
                read_leaks.append(record.id)
        if read_leaks:
            problems.append(
                f"{who}: {name}.read by id of others' records: {read_leaks}"
            )
        # write and unlink
        for record in self._spread(foreign, name)[:WRITE_SAMPLE]:
            before = record[field]
            value = self._other_value(record._fields[field], before)
            what = f"{who}: {name}({record.id}).write({{{field!r}: ...}})"
            self._attempt(
                user,
                problems,
                what,
                lambda record=record, value=value: Model.browse(record.id).write(
                    {field: value}
                ),
                check_result=lambda _result, what=what: problems.append(
                    f"{what}: was not refused"
                ),
            )
            what = f"{who}: {name}({record.id}).unlink()"
            self._attempt(
                user,
                problems,
                what,
                lambda record=record: Model.browse(record.id).unlink(),
                check_result=lambda _result, what=what: problems.append(
                    f"{what}: was not refused"
                ),
            )
            self.env.invalidate_all()
            if not record.exists() or record[field] != before:
                problems.append(f"{who}: {name}({record.id}) changed by the sweep")

    def _harmless_field(self, name):
        """A stored plain field of ``name`` to write: the name or description
        where there is one."""
        kinds = ("char", "text", "html", "integer", "float", "monetary", "boolean")
        kinds += ("selection", "date", "datetime")
        plain = [
            field
            for field in self.env[name]._fields.values()
            if field.store
            and not field.compute
            and not field.related
            and field.type in kinds
            and not (field.type == "selection" and callable(field.selection))
            and field.name not in ("id", "create_date", "write_date")
        ]
        self.assertTrue(plain, f"{name} has a plain field to write")
        plain.sort(
            key=lambda field: (
                field.name not in PREFERRED_WRITE_FIELDS,
                PREFERRED_WRITE_FIELDS.index(field.name)
                if field.name in PREFERRED_WRITE_FIELDS
                else 0,
                kinds.index(field.type),
                field.name,
            )
        )
        return plain[0].name

    @staticmethod
    def _other_value(field, value):
        if field.type in ("char", "text", "html"):
            return f"{value or ''} sweep"
        if field.type == "boolean":
            return not value
        if field.type == "selection":
            keys = [key for key, _label in field.selection if key != value]
            return keys[0]
        if field.type == "date":
            return date(2001, 1, 1) if value != date(2001, 1, 1) else date(2002, 1, 1)
        if field.type == "datetime":
            return "2001-01-01 00:00:00"
        return (value or 0) + 1

    def _spread(self, records, name):
        """``records`` ordered so that the first ones belong to different
        parties and companies."""
        path = PARTNER_PATH.get(name, "partner_id") if not records._transient else None
        groups = {}
        for record in records.sorted("id", reverse=True):
            owner = record.mapped(path) if path else []
            owner = getattr(owner, "ids", owner)
            company = record.company_id.id if "company_id" in record._fields else None
            key = (tuple(owner), company, record.create_uid.id)
            groups.setdefault(key, []).append(record)
        spread = []
        while any(groups.values()):
            for key in list(groups):
                if groups[key]:
                    spread.append(groups[key].pop(0))
        return spread

    # -------------------------------------------------------------------------
    # Public methods
    # -------------------------------------------------------------------------

    def test_every_public_method_is_swept_or_listed(self):
        collected = set(self._addon_public_methods())
        problems = [
            f"{model}.{method}: listed in NOT_CALLED but no longer defined by the addon"
            for model, method in sorted(set(NOT_CALLED) - collected)
        ]
        for model, method in sorted(collected - set(NOT_CALLED)):
            if not self.targets.get(model) and not self._is_model_method(model, method):
                problems.append(
                    f"{model}.{method}: no foreign record to call it on: add records "
                    "of this model to the fixtures or list it in NOT_CALLED"
                )
            func = self._addon_public_methods()[(model, method)]
            if self._required_args(func) and (model, method) not in self._call_args(
                self.user_u1, STAFF_LABELS
            ):
                problems.append(
                    f"{model}.{method}: takes arguments: give them in _call_args or "
                    "list it in NOT_CALLED"
                )
        self._report(problems)

    def test_public_methods_sweep(self):
        """Every public method of the addon, as each user, on the records of
        others (another party, another company, another user's wizard): refused
        or harmless, nothing of others changed, none of their data returned."""
        problems = []
        methods = self._addon_public_methods()
        for who, (user, labels) in self.sweep_users.items():
            call_args = self._call_args(user, labels)
            for model, method in sorted(methods):
                if (model, method) in NOT_CALLED:
                    continue
                args, kwargs, context = call_args.get((model, method), ((), {}, {}))
                if self._is_model_method(model, method):
                    targets = [("model", self.env[model])]
                else:
                    targets = self._method_targets(model, labels)
                if not targets:
                    problems.append(
                        f"{who}: {model}.{method}: no record of others to call it "
                        "on: complete the fixtures"
                    )
                for label, record in targets:
                    recordset = (
                        record.with_user(user)
                        .with_company(user.company_id)
                        .with_context(**context)
                    )
                    what = (
                        f"{who}: {model}({','.join(map(str, record.ids))}).{method}() "
                        f"[record of {label}]"
                    )

                    def check(
                        result,
                        what=what,
                        labels=labels,
                        call=(model, method),
                        args=args,
                    ):
                        leaks = self._marker_leaks(result, labels)
                        if leaks:
                            problems.append(f"{what}: returned data of {leaks}")
                        if call == ("billing.charge", "ingest"):
                            # Every record names another party or another
                            # company's product: all rejected.
                            sent = len(args[0])
                            rejected = len(result.get("rejected") or [])
                            if result.get("created") or rejected != sent:
                                problems.append(
                                    f"{what}: stored usage of others: {sent} records "
                                    f"sent, {result.get('created')} created, "
                                    f"{rejected} rejected: {result}"
                                )

                    self._attempt(
                        user,
                        problems,
                        what,
                        lambda rs=recordset, name=method, args=args, kw=kwargs: getattr(
                            rs, name
                        )(*args, **kw),
                        check_result=check,
                    )
        self._report(problems)

    # -------------------------------------------------------------------------
    # Billing actions on invoices and wizards naming another company
    # -------------------------------------------------------------------------

    def test_invoice_billing_actions_need_a_billing_role(self):
        """An invoicing user without a billing role, on an open invoice of its
        own company, cannot pay it from the wallet or approve recurring
        drafts."""
        accountant = new_test_user(
            self.env,
            login="sweep_accountant",
            groups="account.group_account_invoice",
            company_id=self.company_1.id,
            company_ids=[Command.set(self.company_1.ids)],
        )
        invoice = self._sweep_invoice(
            self.company_1,
            self.parties["A"],
            [(self.service, 1, 10.0)],
            label="A",
            post=False,
        )
        invoice.with_context(billing_skip_wallet_auto_pay=True).action_post()
        draft = self._sweep_invoice(
            self.company_1, self.parties["B"], [(self.plan, 1, 20.0)], "B", post=False
        )
        draft.billing_recurring_id = self.schedule_b
        self.assertEqual(invoice.payment_state, "not_paid")
        problems = []
        for method, record in (
            ("action_billing_pay_from_wallet", invoice),
            ("action_billing_approve_drafts", draft),
        ):
            what = (
                f"accountant without billing role: account.move({record.id}).{method}()"
            )
            error = self._attempt(
                accountant,
                problems,
                what,
                lambda method=method, record=record: getattr(
                    record.with_user(accountant), method
                )(),
                whole=True,
            )
            if not isinstance(error, AccessError):
                problems.append(f"{what}: not refused with an AccessError ({error!r})")
        self._report(problems)

    def test_company_1_work_refuses_company_2_records(self):
        """Billing staff working in company 1 (of company 1 only, or of both
        companies with only company 1 enabled) cannot see the balance of a
        customer of company 2 in the wallet wizard, list its usage in Create
        Invoice, or send usage of company 1 naming a customer or a service of
        company 2."""
        user_12 = new_test_user(
            self.env,
            login="sweep_m12",
            groups=f"{ADDON}.group_billing_manager",
            company_id=self.company_1.id,
            company_ids=[Command.set((self.company_1 | self.company_2).ids)],
        )
        c1, c2 = self.company_1.ids, (self.company_1 | self.company_2).ids
        problems = []
        for who, user, ingest_companies in (
            ("billing user U1", self.user_u1, c1),
            ("billing admin M1", self.user_m1, c1),
            ("billing admin M12 of both companies", user_12, c2),
        ):
            env = self.env(user=user, context={"allowed_company_ids": c1})
            # The balance in company 2 of a customer of company 2 (D2) and of a
            # customer shared by both companies (S), in the wallet wizard.
            for label in ("D2", "S"):
                partner = self.parties[label]
                wallet = self.env["billing.wallet"]._get_wallet(
                    partner, self.company_2, create=False
                )
                self.assertTrue(wallet.balance > 0)
                vals = {
                    "partner_id": partner.id,
                    "company_id": self.company_2.id,
                    "amount": 1.0,
                    "reason": "sweep",
                }

                def balance_shown(balance, what, label=label):
                    if balance:
                        problems.append(
                            f"{what}: shows {balance}, the balance of {label} in "
                            "company 2"
                        )

                what = f"{who} in company 1: billing.wallet.adjust of {label} in c2"
                self._attempt(
                    user,
                    problems,
                    what,
                    lambda env=env, vals=vals: (
                        env["billing.wallet.adjust"]
                        .create(vals)
                        .read(["balance"])[0]["balance"]
                    ),
                    lambda balance, what=what, shown=balance_shown: shown(
                        balance, what
                    ),
                )
                what = f"{who} in company 1: billing.wallet.adjust.onchange of {label}"
                self._attempt(
                    user,
                    problems,
                    what,
                    lambda env=env, vals=vals: (
                        env["billing.wallet.adjust"]
                        .onchange(
                            vals,
                            ["partner_id"],
                            {"partner_id": {}, "company_id": {}, "balance": {}},
                        )["value"]
                        .get("balance")
                    ),
                    lambda balance, what=what, shown=balance_shown: shown(
                        balance, what
                    ),
                )

            what = f"{who} in company 1: billing.invoice.create of company 2"

            def fetch_usage(env=env):
                wizard = env["billing.invoice.create"].create(
                    {
                        "company_id": self.company_2.id,
                        "customer_type": "postpaid",
                        "partner_id": self.parties["B2"].id,
                        "date_from": "2026-11-01",
                        "date_to": "2026-11-30",
                    }
                )
                wizard.action_fetch_charges()
                return wizard.read(["charge_count", "charge_amount"])

            def usage_listed(result, what=what):
                if result and result[0]["charge_count"]:
                    problems.append(f"{what}: lists usage of company 2: {result}")

            self._attempt(user, problems, what, fetch_usage, usage_listed)

            records = [
                {
                    "partner_id": self.parties["B2"].id,
                    "product_id": self.sms.id,
                    "date": "2026-10-21",
                    "quantity": 1.0,
                    "price_unit": 0.05,
                    "external_ref": f"sweep-company-{user.id}-partner",
                },
                {
                    "partner_id": self.parties["B"].id,
                    "product_id": self.product_2.id,
                    "date": "2026-10-21",
                    "quantity": 1.0,
                    "price_unit": 0.05,
                    "external_ref": f"sweep-company-{user.id}-product",
                },
            ]
            what = (
                f"{who}: billing.charge.ingest in company 1 of a customer and a "
                "service of company 2"
            )

            def stored(result, what=what, records=tuple(records)):
                rejected = {row["external_ref"] for row in result["rejected"]}
                accepted = [
                    record["external_ref"]
                    for record in records
                    if record["external_ref"] not in rejected
                ]
                if result["created"] or accepted:
                    problems.append(f"{what}: accepted {accepted}: {result}")

            self._attempt(
                user,
                problems,
                what,
                lambda user=user, records=records, companies=ingest_companies: (
                    self.env["billing.charge"]
                    .with_user(user)
                    .with_context(allowed_company_ids=companies)
                    .ingest(records)
                ),
                stored,
                whole=True,
            )
        self._report(problems)

    def _method_targets(self, model, labels):
        """The records of ``model`` of parties other than ``labels`` to call a
        method on: one of each party in turn, company 2's first, at most
        TARGETS_PER_USER."""
        by_label = {}
        for label, record in self.targets.get(model, []):
            if label not in labels:
                by_label.setdefault(label, []).append(record)
        order = sorted(
            by_label, key=lambda label: (label not in COMPANY_2_PARTIES, label)
        )
        targets = []
        while len(targets) < TARGETS_PER_USER and any(by_label.values()):
            for label in order:
                if by_label[label] and len(targets) < TARGETS_PER_USER:
                    targets.append((label, by_label[label].pop(0)))
        return targets

    def _is_model_method(self, model, method):
        func = self._addon_public_methods()[(model, method)]
        return getattr(func, "_api", None) in ("model", "model_create")

    @staticmethod
    def _required_args(func):
        params = list(inspect.signature(func).parameters.values())[1:]
        return [
            param
            for param in params
            if param.default is param.empty
            and param.kind not in (param.VAR_POSITIONAL, param.VAR_KEYWORD)
        ]

    def _call_args(self, user, labels):
        """(args, kwargs, context) of the methods that take arguments or a
        context, naming the records of others."""
        foreign = [
            label
            for label in self.parties
            if label not in labels
            and not (label in SHARED_PARTIES and "shared" in labels)
        ]
        foreign_partners = [self.parties[label] for label in foreign]
        own = next(
            (self.parties[label] for label in sorted(labels) if label in self.parties),
            self.parties["A"],
        )
        self.ref_counter += 1
        records = [
            {
                "partner_id": partner.id,
                "product_id": self.sms.id,
                "date": "2026-10-20",
                "quantity": 1.0,
                "price_unit": 0.05,
                "external_ref": f"sweep-call-{self.ref_counter}-{partner.id}",
            }
            for partner in foreign_partners
        ]
        if user.company_ids == self.company_1:
            # A partner of its own with a product of company 2.
            records.append(
                {
                    "partner_id": own.id,
                    "product_id": self.product_2.id,
                    "date": "2026-10-20",
                    "quantity": 1.0,
                    "external_ref": f"sweep-call-{self.ref_counter}-product",
                }
            )
        foreign_moves = [
            record.id
            for label, record in self.targets["account.move"]
            if label not in labels
        ]
        return {
            ("billing.charge", "ingest"): ((records,), {}, {}),
            ("account.move.line", "copy_data"): ((), {"default": None}, {}),
            ("billing.wallet.move", "write"): (({"name": "sweep"},), {}, {}),
            ("billing.wallet", "write"): (({"low_balance_threshold": 1.0},), {}, {}),
            ("billing.service", "write"): (({"auto_renew": False},), {}, {}),
            # A change of billing mode (the override follows it on the recurring
            # invoices) and of a plain field, so that a write that went through
            # is seen whatever the partner's mode.
            ("res.partner", "write"): (
                ({"billing_mode": "prepaid", "comment": "sweep"},),
                {},
                {},
            ),
            ("billing.reminder.send", "default_get"): (
                (["scope", "invoice_ids", "template_id"],),
                {},
                {"active_model": "account.move", "active_ids": foreign_moves},
            ),
            ("res.config.settings", "get_values"): ((), {}, {}),
            # The whole year of the fixtures: the figures and the latest records
            # of the user's own company, nothing of the other's.
            ("billing.dashboard", "get_dashboard_data"): (
                ({"period": "this_year"},),
                {},
                {},
            ),
            ("billing.dashboard", "action_open"): (
                ("total", {"period": "this_year"}),
                {},
                {},
            ),
            ("res.partner", "create"): (
                (
                    [
                        {
                            "name": "Sweep New Partner",
                            "company_id": self.company_2.id,
                            "billing_mode": "postpaid",
                            "billing_reseller_id": self.parties["R2"].id,
                        }
                    ],
                ),
                {},
                {},
            ),
        }


@tagged("post_install", "-at_install")
class TestBillingAccessSweepHttp(BillingAccessSweepCommon, HttpCase):
    """Every route of the addon's controllers over HTTP, as each party and
    anonymously."""

    # Open unpaid top-ups a customer may not go beyond by buying on the portal.
    TOPUP_ATTEMPTS = 20

    def _addon_routes(self):
        routes = {}
        # Every module of the controllers package: a new one is swept too.
        modules = [
            importlib.import_module(f"{addon_controllers.__name__}.{info.name}")
            for info in pkgutil.iter_modules(addon_controllers.__path__)
        ]
        for module in modules:
            for cls in vars(module).values():
                if not (
                    inspect.isclass(cls)
                    and issubclass(cls, Controller)
                    and cls.__module__ == module.__name__
                ):
                    continue
                for attr, value in vars(cls).items():
                    routing = getattr(value, "original_routing", None)
                    if routing:
                        for route in routing["routes"]:
                            routes[route] = f"{cls.__name__}.{attr}"
        return routes

    def _login(self, user):
        self.authenticate(user.login, user.login)

    def test_every_route_is_covered(self):
        routes = self._addon_routes()
        self.assertIn("/my/wallet", routes)
        problems = [
            f"route {route} ({endpoint}) is not covered by the sweep"
            for route, endpoint in sorted(routes.items())
            if route not in COVERED_ROUTES
        ] + [
            f"route {route} is listed in COVERED_ROUTES but no longer exists"
            for route in sorted(COVERED_ROUTES - set(routes))
        ]
        self._report(problems)

    def test_anonymous_is_sent_to_login(self):
        problems = []
        invoices = self.env["account.move"].search_count([])
        urls = [
            "/my/wallet",
            f"/billing/invoice_register/{self.wizard_register.id}",
            f"/billing/charge_history/{self._sweep_last_invoice(self.parties['B']).id}",
        ]
        for url in urls:
            response = self.url_open(url, allow_redirects=False)
            location = response.headers.get("Location", "")
            if response.status_code not in (302, 303) or "/web/login" not in location:
                problems.append(
                    f"anonymous: GET {url}: {response.status_code} {location!r}, "
                    "not a redirection to the login"
                )
        response = self.url_open(
            "/my/wallet/buy",
            data={"product_id": self.package.id, "quantity": "1"},
            allow_redirects=False,
        )
        location = response.headers.get("Location", "")
        if response.status_code == 200 or (
            response.status_code in (302, 303) and "/web/login" not in location
        ):
            problems.append(
                f"anonymous: POST /my/wallet/buy: {response.status_code} {location!r}"
            )
        if self.env["account.move"].search_count([]) != invoices:
            problems.append("anonymous: POST /my/wallet/buy created an invoice")
        self._report(problems)

    def test_wallet_page_shows_only_own_wallet(self):
        problems = []
        wallet_a = self.env["billing.wallet"]._get_wallet(
            self.parties["A"], self.company_1, create=False
        )
        self.assertTrue(wallet_a.balance > 0)
        balances = {}
        for label in ("A", "D", "D2", "S"):
            wallet = self.env["billing.wallet"]._get_wallet(
                self.parties[label], self.party_company[label], create=False
            )
            # The integer part and cents of the balance, as any format shows them.
            balances[label] = {"text": f"{wallet.balance:.2f}"}
        self.assertEqual(len({row["text"] for row in balances.values()}), 4)
        for who, (user, labels) in self.sweep_users.items():
            self._login(user)
            response = self.url_open("/my/wallet")
            if response.status_code != 200:
                problems.append(f"{who}: GET /my/wallet: {response.status_code}")
                continue
            leaks = self._marker_leaks(response.text, labels)
            if leaks:
                problems.append(f"{who}: GET /my/wallet shows data of {leaks}")
            for label, wallet in balances.items():
                if label not in labels and wallet["text"] in response.text:
                    problems.append(
                        f"{who}: GET /my/wallet shows {wallet['text']}, the wallet "
                        f"balance of {label}"
                    )
        self._login(self.user_a)
        page = self.url_open("/my/wallet").text
        self.assertIn(f"{MARKER}A", page, "the page names the customer's own company")
        self.assertIn(balances["A"]["text"], page, "the page shows its own balance")
        self._report(problems)

    def _buy(self, quantity="1"):
        return self.url_open(
            "/my/wallet/buy",
            data={
                "product_id": self.package.id,
                "quantity": quantity,
                "csrf_token": self.csrf_token(),
            },
            allow_redirects=False,
        )

    def csrf_token(self):
        return http.Request.csrf_token(self)

    def _topups(self, partner):
        self.env.invalidate_all()
        return self.env["account.move"].search(
            [
                ("partner_id", "=", partner.id),
                ("move_type", "=", "out_invoice"),
                ("billing_is_topup", "=", True),
            ]
        )

    def test_postpaid_customer_cannot_buy_credit(self):
        partner = self.parties["B"]
        before = self._topups(partner)
        self._login(self.user_b)
        response = self._buy()
        created = self._topups(partner) - before
        problems = []
        if created:
            problems.append(
                f"postpaid B: POST /my/wallet/buy created top-up invoices "
                f"{created.ids} for a postpaid customer ({response.status_code} "
                f"{response.headers.get('Location')!r})"
            )
        self._report(problems)

    def test_prepaid_customer_cannot_pile_up_unpaid_topups(self):
        partner = self.parties["A"]
        before = self._topups(partner)
        self._login(self.user_a)
        for _attempt in range(self.TOPUP_ATTEMPTS):
            self._buy()
        created = self._topups(partner) - before
        open_unpaid = self._topups(partner).filtered(
            lambda move: (
                move.state == "draft"
                or (
                    move.state == "posted"
                    and move.payment_state in ("not_paid", "partial")
                )
            )
        )
        problems = []
        if len(open_unpaid) > PORTAL_OPEN_TOPUPS_LIMIT:
            problems.append(
                f"customer A: POST /my/wallet/buy {self.TOPUP_ATTEMPTS} times in a "
                f"row left {len(open_unpaid)} open unpaid top-ups, more than the "
                f"cap of {PORTAL_OPEN_TOPUPS_LIMIT}"
            )
        if not created:
            problems.append("customer A: POST /my/wallet/buy never created a top-up")
        self._report(problems)

    def test_register_download_is_its_creators_only(self):
        url = f"/billing/invoice_register/{self.wizard_register.id}"
        problems = []
        for who, (user, _labels) in self.sweep_users.items():
            self._login(user)
            response = self.url_open(url)
            if response.status_code != 404:
                problems.append(
                    f"{who}: GET {url} (register of U2): {response.status_code}, "
                    "not 404"
                )
        self._login(self.user_u2)
        self.assertEqual(self.url_open(url).status_code, 200, "U2 downloads its own")
        self._report(problems)

    def test_charge_history_of_others_is_not_found(self):
        problems = []
        invoices = {
            label: self.env["account.move"].search(
                [
                    ("partner_id", "=", self.parties[label].id),
                    ("move_type", "=", "out_invoice"),
                    ("invoice_line_ids.billing_charge_ids", "!=", False),
                ],
                limit=1,
            )
            for label in ("B", "C", "E", "B2")
        }
        for label, invoice in invoices.items():
            self.assertTrue(invoice, f"an invoice of {label} with usage")
        for who, (user, labels) in self.sweep_users.items():
            self._login(user)
            for label, invoice in invoices.items():
                if label in labels:
                    continue
                url = f"/billing/charge_history/{invoice.id}"
                response = self.url_open(url)
                if response.status_code != 404:
                    problems.append(
                        f"{who}: GET {url} (invoice of {label}): "
                        f"{response.status_code}, not 404"
                    )
        self._login(self.user_b)
        url = f"/billing/charge_history/{invoices['B'].id}"
        self.assertEqual(self.url_open(url).status_code, 200, "B downloads its own")
        self._report(problems)

    def test_usage_pages_show_only_own_usage(self):
        """My Usage and its exports show each user its own customer's usage
        only; a reseller's customer's usage is the reseller's alone, another
        reseller's customer and any other partner are not found."""
        problems = []
        charges = {
            label: self.env["billing.charge"].search(
                [
                    ("partner_id", "=", self.parties[label].id),
                    ("company_id", "=", self.party_company[label].id),
                ]
            )
            for label in self.parties
        }
        suffixes = ("", "/page/1", "/export/csv", "/export/xlsx")
        for who, (user, labels) in self.sweep_users.items():
            self._login(user)
            for suffix in suffixes:
                url = f"/my/usage{suffix}"
                response = self.url_open(url)
                if user.share:
                    if response.status_code != 200:
                        problems.append(f"{who}: GET {url}: {response.status_code}")
                elif response.status_code != 404:
                    problems.append(
                        f"{who}: GET {url} (an employee): {response.status_code}, "
                        "not 404"
                    )
                if suffix != "/export/xlsx":
                    leaks = self._marker_leaks(response.text, labels)
                    if leaks:
                        problems.append(f"{who}: GET {url} shows data of {leaks}")
            for label, partner in self.parties.items():
                own_customer = who == "reseller R" and label == "C"
                for suffix in suffixes:
                    url = f"/my/customers/{partner.id}/usage{suffix}"
                    response = self.url_open(url)
                    if own_customer:
                        if response.status_code != 200:
                            problems.append(f"{who}: GET {url}: {response.status_code}")
                    elif response.status_code != 404:
                        problems.append(
                            f"{who}: GET {url} (usage of {label}): "
                            f"{response.status_code}, not 404"
                        )
                    if suffix != "/export/xlsx":
                        leaks = self._marker_leaks(response.text, labels)
                        if leaks:
                            problems.append(f"{who}: GET {url} shows data of {leaks}")
        # The page of A lists A's usage records; R's page of C, C's.
        self._login(self.user_a)
        page = self.url_open("/my/usage").text
        listed = {int(i) for i in re.findall(r'data-charge-id="(\d+)"', page)}
        self.assertEqual(listed, set(charges["A"].ids))
        self._login(self.user_r)
        page = self.url_open(f"/my/customers/{self.parties['C'].id}/usage").text
        listed = {int(i) for i in re.findall(r'data-charge-id="(\d+)"', page)}
        self.assertEqual(listed, set(charges["C"].ids))
        self.assertTrue(charges["C"])
        self._report(problems)
