import re

from odoo import Command, api, fields, models
from odoo.exceptions import AccessError, ValidationError

from .res_company import BILLING_MODES

# Fields of the billing profile: kept on the commercial partner, copied to its
# contacts, changed after creation by Billing Administrators only.
BILLING_PROFILE_FIELDS = (
    "billing_mode",
    "is_billing_reseller",
    "billing_reseller_id",
    "billing_invoice_enabled",
    "billing_invoice_day",
)
# A reseller's invoicing: on the reseller itself, changed by Billing
# Administrators only.
BILLING_RESELLER_FIELDS = (
    "billing_invoice_prefix",
    "billing_invoice_logo",
    "billing_invoice_contact_id",
)
BILLING_ADMIN_FIELDS = BILLING_PROFILE_FIELDS + BILLING_RESELLER_FIELDS
INVOICE_PREFIX_PATTERN = re.compile(r"[A-Za-z0-9/-]+")
INVOICE_PREFIX_SIZE = 20
# Sequence of the resellers' sales journals: after the company's own.
RESELLER_JOURNAL_SEQUENCE = 100


class ResPartner(models.Model):
    _inherit = "res.partner"

    billing_mode = fields.Selection(
        selection=BILLING_MODES,
        required=True,
        default=lambda self: self.env.company.billing_default_mode or "prepaid",
        tracking=True,
        help="Prepaid customers pay in advance from a credit wallet; postpaid "
        "customers receive an invoice at the end of each billing cycle.",
    )
    is_billing_reseller = fields.Boolean(
        string="Is a Reseller",
        tracking=True,
        help="A reseller bills customers of its own under its own invoice numbering.",
    )
    billing_reseller_id = fields.Many2one(
        comodel_name="res.partner",
        string="Reseller",
        domain=[("is_billing_reseller", "=", True)],
        index="btree_not_null",
        ondelete="restrict",
        tracking=True,
        help="The reseller this customer belongs to; empty for the company's "
        "direct customers.",
    )
    billing_invoice_prefix = fields.Char(
        string="Invoice Prefix",
        copy=False,
        tracking=True,
        help="How the numbers of the reseller's invoices begin: PREFIX/2026/00001. "
        "Letters, digits, - and /; unique per company. A new prefix applies to new "
        "numbers; invoices already numbered keep theirs. Empty: the code of the "
        "reseller's journal.",
    )
    billing_journal_id = fields.Many2one(
        comodel_name="account.journal",
        string="Reseller Journal",
        company_dependent=True,
        copy=False,
        readonly=True,
        help="The reseller's own sales journal in the current company, created when "
        "the partner is made a reseller: its customers' invoices are numbered "
        "there, independently of the company's and of other resellers'.",
    )
    billing_invoice_logo = fields.Image(
        string="Invoice Logo",
        max_width=1024,
        max_height=1024,
        copy=False,
        help="The reseller's logo, shown to its customers on their invoices.",
    )
    billing_invoice_contact_id = fields.Many2one(
        comodel_name="res.partner",
        string="Invoice Contact",
        copy=False,
        domain="[('id', 'child_of', id)]",
        help="The reseller's contact (name, address, email) shown to its customers "
        "on their invoices; empty: the reseller itself.",
    )
    billing_invoice_enabled = fields.Boolean(
        string="Generate Invoices",
        default=True,
        tracking=True,
        help="When off, no recurring invoice is generated for this customer; "
        "its usage stays pending.",
    )
    billing_invoice_day = fields.Integer(
        string="Preferred Invoice Day",
        default=1,
        tracking=True,
        help="Day of the month on which the customer prefers to be invoiced, from 1 "
        "to 31; in shorter months a day past the end means the last day.",
    )
    billing_balance = fields.Monetary(
        string="Wallet Balance",
        currency_field="billing_currency_id",
        compute="_compute_billing_balance",
        help="Credit in the customer's wallet in the current company.",
    )
    billing_currency_id = fields.Many2one(
        comodel_name="res.currency",
        compute="_compute_billing_balance",
    )
    billing_profile_editable = fields.Boolean(
        compute="_compute_billing_profile_editable",
        help="Technical: the current user may change the billing profile of existing "
        "customers.",
    )
    billing_customer_count = fields.Integer(
        string="Reseller Customers",
        compute="_compute_billing_customer_count",
    )
    billing_service_count = fields.Integer(
        string="Services",
        compute="_compute_billing_service_count",
        groups="prepaid_postpaid_billing.group_billing_user",
    )
    billing_recurring_id = fields.Many2one(
        comodel_name="billing.recurring",
        string="Recurring Invoice",
        compute="_compute_billing_recurring_id",
        groups="prepaid_postpaid_billing.group_billing_user",
        help="The customer's recurring invoice in the current company.",
    )

    # -------------------------------------------------------------------------
    # COMPUTE METHODS
    # -------------------------------------------------------------------------

    @api.depends_context("company")
    def _compute_billing_balance(self):
        company = self.env.company
        # sudo: the balance is shown to whoever may read the partner, as Odoo shows
        # a customer's credit and receivable amounts.
        wallets = (
            self.env["billing.wallet"]
            .sudo()
            .search(
                [
                    ("partner_id", "in", self.commercial_partner_id.ids),
                    ("company_id", "=", company.id),
                ]
            )
        )
        balances = {wallet.partner_id.id: wallet.balance for wallet in wallets}
        for partner in self:
            partner.billing_currency_id = company.currency_id
            partner.billing_balance = balances.get(
                partner.commercial_partner_id.id, 0.0
            )

    def _compute_billing_profile_editable(self):
        editable = self.env.user.has_group(
            "prepaid_postpaid_billing.group_billing_manager"
        )
        for partner in self:
            partner.billing_profile_editable = editable

    def _compute_billing_customer_count(self):
        groups = self.env["res.partner"]._read_group(
            self._billing_reseller_customers_domain(self.ids),
            groupby=["billing_reseller_id"],
            aggregates=["__count"],
        )
        counts = {reseller.id: count for reseller, count in groups}
        for partner in self:
            partner.billing_customer_count = counts.get(partner.id, 0)

    def _compute_billing_service_count(self):
        counts = dict(
            self.env["billing.service"]._read_group(
                [("partner_id", "in", self.commercial_partner_id.ids)],
                ["partner_id"],
                ["__count"],
            )
        )
        for partner in self:
            partner.billing_service_count = counts.get(partner.commercial_partner_id, 0)

    @api.depends_context("company")
    def _compute_billing_recurring_id(self):
        customers = self.commercial_partner_id._origin
        schedules = self.env["billing.recurring"].search(
            [
                ("partner_id", "in", customers.ids),
                ("company_id", "=", self.env.company.id),
            ]
        )
        by_customer = {recurring.partner_id.id: recurring for recurring in schedules}
        for partner in self:
            partner.billing_recurring_id = by_customer.get(
                partner.commercial_partner_id._origin.id, False
            )

    # -------------------------------------------------------------------------
    # CONSTRAINT METHODS
    # -------------------------------------------------------------------------

    @api.constrains("billing_invoice_day")
    def _check_billing_invoice_day(self):
        for partner in self:
            if not 1 <= partner.billing_invoice_day <= 31:
                raise ValidationError(
                    self.env._(
                        "Preferred Invoice Day of %(partner)s must be between 1 and "
                        "31, not %(day)s.",
                        partner=partner.display_name,
                        day=partner.billing_invoice_day,
                    )
                )

    @api.constrains("billing_reseller_id", "is_billing_reseller")
    def _check_billing_reseller(self):
        for partner in self:
            reseller = partner.billing_reseller_id
            if reseller and not reseller.is_billing_reseller:
                raise ValidationError(
                    self.env._(
                        "Reseller of %(partner)s: %(reseller)s is not a reseller.",
                        partner=partner.display_name,
                        reseller=reseller.display_name,
                    )
                )
            if reseller and reseller.commercial_partner_id == (
                partner.commercial_partner_id
            ):
                raise ValidationError(
                    self.env._(
                        "Reseller of %(partner)s: a reseller cannot be its own "
                        "reseller.",
                        partner=partner.display_name,
                    )
                )
            if not partner.is_billing_reseller:
                count = self.search_count(
                    self._billing_reseller_customers_domain(partner.ids)
                )
                if count:
                    raise ValidationError(
                        self.env._(
                            "Is a Reseller of %(partner)s cannot be switched off "
                            "while %(count)s customers belong to it.",
                            partner=partner.display_name,
                            count=count,
                        )
                    )
        if self._has_cycle("billing_reseller_id"):
            raise ValidationError(
                self.env._(
                    "Reseller: a reseller cannot be the reseller of its own "
                    "reseller (%(partners)s).",
                    partners=", ".join(self.mapped("display_name")),
                )
            )

    @api.constrains("billing_invoice_prefix", "is_billing_reseller", "company_id")
    def _check_billing_invoice_prefix(self):
        for partner in self:
            prefix = partner.billing_invoice_prefix
            if (
                not prefix
                or not partner.is_billing_reseller
                or partner.commercial_partner_id != partner
            ):
                continue
            if (
                len(prefix) > INVOICE_PREFIX_SIZE
                or not INVOICE_PREFIX_PATTERN.fullmatch(prefix)
                or prefix.startswith("/")
                or prefix.endswith("/")
            ):
                raise ValidationError(
                    self.env._(
                        "Invoice Prefix of %(partner)s: %(prefix)r must be letters, "
                        "digits, - and / (not first or last), at most %(size)s "
                        "characters.",
                        partner=partner.display_name,
                        prefix=prefix,
                        size=INVOICE_PREFIX_SIZE,
                    )
                )
            # sudo: another reseller of the same company may not be readable.
            same = (
                self.sudo()
                .with_context(active_test=False)
                .search(
                    [
                        ("id", "!=", partner.id),
                        ("billing_invoice_prefix", "=ilike", prefix),
                        ("is_billing_reseller", "=", True),
                        *self._billing_commercial_domain(),
                        *(
                            [("company_id", "in", (False, partner.company_id.id))]
                            if partner.company_id
                            else []
                        ),
                    ],
                    limit=1,
                )
            )
            if same:
                raise ValidationError(
                    self.env._(
                        "Invoice Prefix of %(partner)s: %(prefix)s is the prefix of "
                        "another reseller of the same company already.",
                        partner=partner.display_name,
                        prefix=prefix,
                    )
                )

    @api.constrains("billing_mode")
    def _check_billing_mode_offered(self):
        if self.env.context.get("billing_self_signup"):
            # Customers who sign up on their own are always prepaid.
            return
        labels = dict(BILLING_MODES)
        for partner in self:
            if partner.commercial_partner_id != partner:
                continue  # a contact follows its commercial partner
            company = partner.company_id or self.env.company
            if not company._billing_mode_offered(partner.billing_mode):
                raise ValidationError(
                    self.env._(
                        "Billing Mode of %(partner)s: company %(company)s does not "
                        "offer %(mode)s billing.",
                        partner=partner.display_name,
                        company=company.name,
                        mode=labels[partner.billing_mode],
                    )
                )

    # -------------------------------------------------------------------------
    # ONCHANGE METHODS
    # -------------------------------------------------------------------------

    @api.onchange("billing_mode")
    def _onchange_billing_mode_warning(self):
        """Tell who switches a saved customer's billing mode what saving does."""
        customer = self._origin
        if (
            not customer
            or customer.commercial_partner_id != customer
            or customer.billing_mode == self.billing_mode
            or not self.billing_mode
        ):
            return None
        return self.env["billing.recurring"]._billing_mode_change_warning(
            customer, self.billing_mode
        )

    # -------------------------------------------------------------------------
    # CRUD METHODS
    # -------------------------------------------------------------------------

    @api.model_create_multi
    def create(self, vals_list):
        self._check_billing_profile_create_access(vals_list)
        partners = super().create(vals_list)
        partners._billing_reseller_journal()
        return partners

    def write(self, vals):
        self._check_billing_profile_write_access(vals)
        # A signup sets the mode of the partner it just created: not a switch.
        follow = "billing_mode" in vals and not self.env.context.get(
            "billing_self_signup"
        )
        modes = {partner.id: partner.billing_mode for partner in self} if follow else {}
        days = (
            {partner.id: partner.billing_invoice_day for partner in self}
            if "billing_invoice_day" in vals
            else {}
        )
        res = super().write(vals)
        if vals.get("is_billing_reseller"):
            self._billing_reseller_journal()
        if "is_billing_reseller" in vals:
            self._billing_sync_reseller_users()
        if modes:
            switched = self.filtered(
                lambda p: p.commercial_partner_id == p and p.billing_mode != modes[p.id]
            )
            if switched:
                self.env["billing.recurring"]._billing_apply_mode_change(switched)
        if days:
            moved = self.filtered(
                lambda p: (
                    p.commercial_partner_id == p and p.billing_invoice_day != days[p.id]
                )
            )
            if moved:
                self.env["billing.recurring"]._billing_follow_invoice_day(moved)
        return res

    @api.model
    def _commercial_fields(self):
        return super()._commercial_fields() + list(BILLING_PROFILE_FIELDS)

    # -------------------------------------------------------------------------
    # ACTION METHODS
    # -------------------------------------------------------------------------

    def action_view_billing_customers(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "prepaid_postpaid_billing.res_partner_action_billing_customer"
        )
        action["domain"] = self._billing_reseller_customers_domain(self.ids)
        action["context"] = {"default_billing_reseller_id": self.id}
        return action

    def action_view_billing_services(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "prepaid_postpaid_billing.billing_service_action"
        )
        action["domain"] = [("partner_id", "=", self.commercial_partner_id.id)]
        action["context"] = {"default_partner_id": self.commercial_partner_id.id}
        return action

    def action_view_billing_wallet_moves(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "prepaid_postpaid_billing.billing_wallet_move_action"
        )
        action["domain"] = [
            ("partner_id", "=", self.commercial_partner_id.id),
            ("company_id", "=", self.env.company.id),
        ]
        action["context"] = {}
        return action

    def action_billing_create_recurring(self):
        """Open a new recurring invoice of this postpaid customer in the current
        company (Billing Administrators)."""
        self.ensure_one()
        return self.env["billing.recurring"]._billing_action_create_for(self)

    def action_billing_wallet_adjust(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "prepaid_postpaid_billing.billing_wallet_adjust_action"
        )
        action["context"] = {"default_partner_id": self.commercial_partner_id.id}
        return action

    # -------------------------------------------------------------------------
    # BUSINESS METHODS
    # -------------------------------------------------------------------------

    def _billing_reseller_journal(self, company=None):
        """The sales journal of each of these resellers in ``company`` (default:
        the current one), created when it has none; its customers' invoices are
        numbered there. Contacts and other partners are skipped. Returns the
        journals."""
        company = company or self.env.company
        journals = self.env["account.journal"]
        resellers = self.filtered(
            lambda p: p.is_billing_reseller and p.commercial_partner_id == p
        )
        for reseller in resellers.with_company(company):
            journal = reseller.billing_journal_id
            if not journal:
                journal = reseller._billing_create_reseller_journal(company)
                # sudo: the journal is set by the module, not by the user.
                reseller.sudo().billing_journal_id = journal
            journals |= journal
        return journals

    def _billing_create_reseller_journal(self, company):
        """A new sales journal of ``company`` for this reseller, with a free
        code made of its prefix or name."""
        self.ensure_one()
        # sudo: a Billing Administrator makes a partner a reseller; its journal
        # is configuration the module keeps, whoever flags it.
        Journal = self.env["account.journal"].sudo().with_company(company)
        letters = re.sub(
            r"[^A-Z0-9]", "", (self.billing_invoice_prefix or self.name or "").upper()
        )
        base = (letters or "RSL")[:4]
        code, suffix = base, 1
        while Journal.search_count(
            [*Journal._check_company_domain(company), ("code", "=", code)], limit=1
        ):
            suffix += 1
            code = f"{base[: 5 - len(str(suffix))]}{suffix}"
        return Journal.create(
            {
                "name": self.env._("Invoices of %(reseller)s", reseller=self.name),
                "code": code,
                "type": "sale",
                "company_id": company.id,
                "refund_sequence": True,
                # After the company's own sales journals, which stay the default
                # of every other invoice.
                "sequence": RESELLER_JOURNAL_SEQUENCE,
                "billing_reseller_id": self.id,
            }
        )

    def _billing_sync_reseller_users(self):
        """Give the Reseller group to the portal users of these partners'
        companies that are resellers, and take it from those of the others: the
        group follows *Is a Reseller*. Internal users are left as they are."""
        commercial = self.commercial_partner_id
        if not commercial:
            return self
        group = self.env.ref("prepaid_postpaid_billing.group_billing_reseller")
        # sudo: a Billing Administrator sets Is a Reseller; the group of the
        # partner's portal users follows it, as the module's own configuration.
        users = (
            self.env["res.users"]
            .sudo()
            .with_context(active_test=False)
            .search(
                [
                    ("partner_id.commercial_partner_id", "in", commercial.ids),
                    ("share", "=", True),
                ]
            )
        )
        members = group.sudo().with_context(active_test=False).users
        resellers = users.filtered(
            "partner_id.commercial_partner_id.is_billing_reseller"
        )
        (resellers - members).write({"groups_id": [Command.link(group.id)]})
        ((users - resellers) & members).write({"groups_id": [Command.unlink(group.id)]})
        return self

    def _billing_seller_values(self):
        """What the customers of this reseller see of it as the seller of their
        invoices (PDF header, emails): its name and invoice logo, and the
        contact of its invoices (its Invoice Contact, else itself) with that
        contact's address, email and phone."""
        self.ensure_one()
        contact = self.billing_invoice_contact_id or self
        return {
            "partner": self,
            "contact": contact,
            "name": self.name,
            "logo": self.billing_invoice_logo,
            "email": contact.email,
            "email_formatted": contact.email_formatted if contact.email else False,
            "phone": contact.phone,
            "website": contact.website or self.website,
        }

    def _billing_invoice_journal(self, company):
        """The sales journal the invoices of this customer are issued in, in
        ``company``: its reseller's (created when missing) for a customer of a
        reseller, else none (the company's own)."""
        reseller = self.commercial_partner_id.billing_reseller_id
        if not reseller:
            return self.env["account.journal"]
        return reseller._billing_reseller_journal(company)

    @api.model
    def _billing_reseller_customers_domain(self, reseller_ids):
        """Domain of the customers (commercial partners) of the given resellers."""
        return [
            ("billing_reseller_id", "in", reseller_ids),
            *self._billing_commercial_domain(),
        ]

    @api.model
    def _billing_commercial_domain(self):
        """Domain of the partners that hold a billing profile (commercial
        partners), not their contacts."""
        return ["|", ("is_company", "=", True), ("parent_id", "=", False)]

    @api.model
    def _check_billing_profile_create_access(self, vals_list):
        """Only billing users choose a billing profile other than the defaults."""
        if self.env.su or self.env.user.has_group(
            "prepaid_postpaid_billing.group_billing_user"
        ):
            return
        defaults = self.default_get(list(BILLING_ADMIN_FIELDS))
        for vals in vals_list:
            chosen = [
                fname
                for fname in BILLING_ADMIN_FIELDS
                if fname in vals and vals[fname] != defaults.get(fname, False)
            ]
            if chosen:
                raise AccessError(
                    self.env._(
                        "Only Billing Users can set the billing profile (%(fields)s) "
                        "of a new customer %(partner)s.",
                        fields=", ".join(self._fields[f].string for f in chosen),
                        partner=vals.get("name") or "",
                    )
                )

    def _check_billing_profile_write_access(self, vals):
        """Only billing administrators change the billing profile of a customer."""
        if self.env.su or self.env.user.has_group(
            "prepaid_postpaid_billing.group_billing_manager"
        ):
            return
        fnames = [fname for fname in BILLING_ADMIN_FIELDS if fname in vals]
        if not fnames:
            return
        for partner in self:
            changed = [
                fname
                for fname in fnames
                if partner[fname] != partner._billing_value_as_record(fname, vals)
            ]
            if changed:
                raise AccessError(
                    self.env._(
                        "Only Billing Administrators can change the billing profile "
                        "(%(fields)s) of %(partner)s.",
                        fields=", ".join(self._fields[f].string for f in changed),
                        partner=partner.display_name,
                    )
                )

    def _billing_value_as_record(self, fname, vals):
        """Value ``vals[fname]`` as ``self[fname]`` would read once written."""
        field = self._fields[fname]
        return field.convert_to_record(field.convert_to_cache(vals[fname], self), self)

    @api.ondelete(at_uninstall=False)
    def _unlink_except_billing_charges(self):
        # Usage records have no foreign key on their customer (UsageMany2one).
        self.env["billing.charge"]._check_unreferenced(self, "partner_id")
