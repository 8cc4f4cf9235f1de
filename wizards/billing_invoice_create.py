from datetime import datetime, time, timedelta

from odoo import api, fields, models
from odoo.exceptions import AccessError, UserError
from odoo.tools import SQL

from ..models.billing_wallet import WALLET_AMOUNT_LIMIT


class BillingInvoiceCreate(models.TransientModel):
    _name = "billing.invoice.create"
    _inherit = ["billing.wizard.mixin"]
    _description = "Create Invoice"
    _check_company_auto = True
    _billing_checked_fields = (
        "company_id",
        "partner_id",
        "payment_journal_id",
        "charge_ids",
    )

    step = fields.Selection(
        selection=[("invoice", "Invoice"), ("claim", "Payment Received")],
        required=True,
        default="invoice",
    )
    company_id = fields.Many2one(
        comodel_name="res.company", required=True, default=lambda self: self.env.company
    )
    currency_id = fields.Many2one(related="company_id.currency_id")
    customer_type = fields.Selection(
        selection=[("prepaid", "Prepaid"), ("postpaid", "Postpaid")],
        required=True,
        default="prepaid",
    )
    partner_id = fields.Many2one(
        comodel_name="res.partner",
        string="Customer",
        check_company=True,
        domain="[('billing_mode', '=', customer_type), '|', ('is_company', '=', True), "
        "('parent_id', '=', False)]",
    )
    invoice_date = fields.Date(required=True, default=fields.Date.context_today)
    due_date = fields.Date(required=True, default=fields.Date.context_today)
    terms = fields.Html(
        string="Terms and Conditions",
        default=lambda self: self.env.company.billing_invoice_terms,
    )
    customer_notes = fields.Html(
        default=lambda self: self.env.company.billing_customer_notes,
    )
    # Prepaid: a recharge of the wallet.
    amount = fields.Monetary(
        string="Recharge Amount",
        help="Credit added to the customer's wallet, before taxes.",
    )
    description = fields.Char(
        default=lambda self: self.env._("Wallet recharge"),
    )
    # Postpaid: the pending usage of a period.
    date_from = fields.Date(string="From")
    date_to = fields.Date(string="To")
    charge_ids = fields.Many2many(
        comodel_name="billing.charge",
        string="Usage Records",
        readonly=True,
    )
    charge_count = fields.Integer(
        string="Usage Record Count", compute="_compute_charge_totals"
    )
    charge_amount = fields.Monetary(
        string="Usage Total",
        compute="_compute_charge_totals",
        help="What the usage lines of the invoice bill, at the unit prices of the "
        "usage records (taxes included where the prices include them): the "
        "records of each service and unit price summed at usage precision, "
        "rounded once to the currency.",
    )
    service_ids = fields.One2many(
        comodel_name="billing.invoice.create.service",
        inverse_name="wizard_id",
        string="Per Service",
        readonly=True,
    )
    fetched = fields.Boolean(compute="_compute_charge_totals")
    # Create & Claim: the payment already received.
    amount_total = fields.Monetary(
        string="Invoice Total",
        compute="_compute_amount_total",
        help="Total of the invoice to create, taxes included.",
    )
    payment_journal_id = fields.Many2one(
        comodel_name="account.journal",
        check_company=True,
        domain="[('type', 'in', ('bank', 'cash')), "
        "('id', '!=', company_wallet_journal_id)]",
    )
    company_wallet_journal_id = fields.Many2one(
        related="company_id.billing_wallet_journal_id"
    )
    payment_date = fields.Date(default=fields.Date.context_today)
    payment_amount = fields.Monetary(string="Amount Received")
    payment_reference = fields.Char(
        help="Reference of the payment: bank transfer, receipt or cheque number."
    )
    payment_excess = fields.Monetary(
        string="Received Beyond the Total",
        compute="_compute_payment_excess",
        help="Part of the amount received beyond the invoice total: it is not "
        "credited to the wallet, it stays as outstanding credit of the customer.",
    )

    # -------------------------------------------------------------------------
    # COMPUTE METHODS
    # -------------------------------------------------------------------------

    @api.depends("charge_ids")
    def _compute_charge_totals(self):
        for wizard in self:
            wizard.fetched = bool(wizard.charge_ids)
            wizard.charge_count = len(wizard.charge_ids)
            # What the usage lines bill: each rounds the sum of its charges once.
            wizard.charge_amount = sum(
                wizard.currency_id.round(amount)
                for _product, _price, _quantity, amount, _ids in wizard._charge_groups()
            )

    @api.depends(
        "customer_type",
        "partner_id",
        "company_id",
        "invoice_date",
        "amount",
        "description",
        "charge_ids",
    )
    def _compute_amount_total(self):
        Move = self.env["account.move"]
        for wizard in self:
            has_lines = (
                wizard.amount > 0
                if wizard.customer_type == "prepaid"
                else bool(wizard.charge_ids)
            )
            # Nothing of a company or customer the user may not use: an onchange
            # is not checked at create.
            if (
                not (wizard.partner_id and has_lines)
                or wizard._billing_access_problem()
            ):
                wizard.amount_total = 0.0
                continue
            # The total Odoo computes for these lines, taxes and fiscal position
            # included, without creating anything.
            vals = wizard._prepare_invoice_vals()[0]
            draft = Move.with_company(wizard.company_id).new(vals)
            wizard.amount_total = draft.tax_totals["total_amount_currency"]

    @api.depends("payment_amount", "amount_total")
    def _compute_payment_excess(self):
        for wizard in self:
            excess = wizard.payment_amount - wizard.amount_total
            wizard.payment_excess = (
                excess if wizard.currency_id.compare_amounts(excess, 0) > 0 else 0.0
            )

    # -------------------------------------------------------------------------
    # ONCHANGE METHODS
    # -------------------------------------------------------------------------

    @api.onchange("customer_type")
    def _onchange_customer_type(self):
        if self.partner_id and self.partner_id.billing_mode != self.customer_type:
            self.partner_id = False
        self._reset_charges()

    @api.onchange("partner_id", "date_from", "date_to")
    def _onchange_period(self):
        self._reset_charges()

    @api.onchange("invoice_date")
    def _onchange_invoice_date(self):
        if self.invoice_date and (
            not self.due_date or self.due_date < self.invoice_date
        ):
            self.due_date = self.invoice_date

    # -------------------------------------------------------------------------
    # ACTION METHODS
    # -------------------------------------------------------------------------

    def action_fetch_charges(self):
        """List the pending usage records of the postpaid customer in the
        period, with their totals per service."""
        self.ensure_one()
        self._check_billing_user()
        self._check_postpaid_period()
        charges = self.env["billing.charge"].search(self._charges_domain())
        if not charges:
            raise UserError(
                self.env._(
                    "%(partner)s has no pending usage record from %(start)s to "
                    "%(end)s: there is nothing to invoice for this period.",
                    partner=self.partner_id.display_name,
                    start=fields.Date.to_string(self.date_from),
                    end=fields.Date.to_string(self.date_to),
                )
            )
        self.charge_ids = [fields.Command.set(charges.ids)]
        # Per service, what its usage lines bill: each rounds the sum of its
        # charges (one unit price) once.
        services = {}
        for product_id, _price, quantity, amount, ids in self._charge_groups():
            service = services.setdefault(
                product_id,
                {
                    "product_id": product_id,
                    "charge_count": 0,
                    "quantity": 0.0,
                    "amount": 0.0,
                },
            )
            service["charge_count"] += len(ids)
            service["quantity"] += quantity
            service["amount"] += self.currency_id.round(amount)
        self.service_ids = [
            fields.Command.clear(),
            *(fields.Command.create(vals) for vals in services.values()),
        ]
        return self._reopen()

    def action_create_invoice(self):
        """Create and confirm the invoice; its payment is still to come."""
        self.ensure_one()
        invoice = self._create_invoice()
        return self._open_invoice(invoice)

    def action_claim(self):
        """Check the invoice to create and ask for the payment received."""
        self.ensure_one()
        self._check_invoice_data()
        self.write(
            {
                "step": "claim",
                "payment_amount": self.payment_amount or self.amount_total,
                "payment_journal_id": self.payment_journal_id.id
                or self._default_payment_journal().id,
            }
        )
        return self._reopen()

    def action_back(self):
        self.ensure_one()
        self.step = "invoice"
        return self._reopen()

    def action_create_and_claim(self):
        """Create and confirm the invoice and register the payment already
        received; a paid recharge credits the customer's wallet. The invoice is
        not paid from the wallet: it is paid by the payment received."""
        self.ensure_one()
        self._check_payment_data()
        invoice = self._create_invoice(pay_from_wallet=False)
        self._register_payment(invoice)
        return self._open_invoice(invoice)

    # -------------------------------------------------------------------------
    # BUSINESS METHODS
    # -------------------------------------------------------------------------

    def _check_billing_user(self):
        """Raise unless the user is a Billing User who may use this wizard's
        company, customer, journal and usage records."""
        if not self.env.user.has_group("prepaid_postpaid_billing.group_billing_user"):
            raise AccessError(
                self.env._("Only Billing Users can create invoices from Billing.")
            )
        self._billing_check_access()

    def _check_invoice_data(self):
        """Raise a UserError naming the first field that keeps the invoice from
        being created."""
        self._check_billing_user()
        if not self.partner_id:
            raise UserError(self.env._("Customer is required to create an invoice."))
        partner = self.partner_id
        if partner.billing_mode != self.customer_type:
            raise UserError(
                self.env._(
                    "Customer %(partner)s is not a %(mode)s customer.",
                    partner=partner.display_name,
                    mode=dict(self._fields["customer_type"].selection)[
                        self.customer_type
                    ].lower(),
                )
            )
        if self.due_date < self.invoice_date:
            raise UserError(
                self.env._(
                    "Due Date %(due)s of the invoice for %(partner)s is before its "
                    "Invoice Date %(date)s.",
                    due=fields.Date.to_string(self.due_date),
                    date=fields.Date.to_string(self.invoice_date),
                    partner=partner.display_name,
                )
            )
        if self.customer_type == "prepaid":
            if self.currency_id.compare_amounts(self.amount, 0) <= 0:
                raise UserError(
                    self.env._(
                        "Recharge Amount of the invoice for %(partner)s must be "
                        "positive.",
                        partner=partner.display_name,
                    )
                )
            if self.currency_id.compare_amounts(self.amount, WALLET_AMOUNT_LIMIT) >= 0:
                raise UserError(
                    self.env._(
                        "Recharge Amount of the invoice for %(partner)s must be "
                        "below %(limit)s, the most a wallet holds exactly.",
                        partner=partner.display_name,
                        limit=self.currency_id.format(WALLET_AMOUNT_LIMIT),
                    )
                )
        else:
            self._check_postpaid_period()
            if not self.charge_ids:
                raise UserError(
                    self.env._(
                        "No usage record is listed for %(partner)s from %(start)s to "
                        "%(end)s: fetch the records of a period with pending usage "
                        "first.",
                        partner=partner.display_name,
                        start=fields.Date.to_string(self.date_from),
                        end=fields.Date.to_string(self.date_to),
                    )
                )
            listed = self.env["billing.charge"].search_count(
                [("id", "in", self.charge_ids.ids), *self._charges_domain()]
            )
            if listed != len(self.charge_ids):
                raise UserError(
                    self.env._(
                        "Usage Records listed for %(partner)s are not all its "
                        "pending records from %(start)s to %(end)s any more: fetch "
                        "the records again.",
                        partner=partner.display_name,
                        start=fields.Date.to_string(self.date_from),
                        end=fields.Date.to_string(self.date_to),
                    )
                )

    def _check_postpaid_period(self):
        if not self.partner_id:
            raise UserError(self.env._("Customer is required to fetch usage records."))
        if not (self.date_from and self.date_to):
            raise UserError(
                self.env._(
                    "From and To of the period to invoice %(partner)s are required.",
                    partner=self.partner_id.display_name,
                )
            )
        if self.date_to < self.date_from:
            raise UserError(
                self.env._(
                    "To %(end)s of the period to invoice %(partner)s is before From "
                    "%(start)s.",
                    partner=self.partner_id.display_name,
                    start=fields.Date.to_string(self.date_from),
                    end=fields.Date.to_string(self.date_to),
                )
            )

    def _check_payment_data(self):
        """Raise a UserError naming the first payment field that keeps the
        payment received from being registered; the invoice's own fields are
        checked when it is created."""
        partner = self.partner_id.display_name
        if not self.payment_journal_id:
            raise UserError(
                self.env._(
                    "Payment Journal of the payment received from %(partner)s is "
                    "required.",
                    partner=partner,
                )
            )
        if self.payment_journal_id == self.company_id.billing_wallet_journal_id:
            raise UserError(
                self.env._(
                    "Payment Journal of the payment received from %(partner)s cannot "
                    "be the Customer Wallet journal: pay from the wallet on the "
                    "invoice instead.",
                    partner=partner,
                )
            )
        if not self.payment_date:
            raise UserError(
                self.env._(
                    "Payment Date of the payment received from %(partner)s is "
                    "required.",
                    partner=partner,
                )
            )
        if self.currency_id.compare_amounts(self.payment_amount, 0) <= 0:
            raise UserError(
                self.env._(
                    "Amount Received from %(partner)s must be positive.",
                    partner=partner,
                )
            )

    def _charges_domain(self):
        return [
            ("partner_id", "=", self.partner_id.commercial_partner_id.id),
            ("company_id", "=", self.company_id.id),
            ("state", "=", "pending"),
            ("date", ">=", datetime.combine(self.date_from, time.min)),
            ("date", "<", datetime.combine(self.date_to + timedelta(days=1), time.min)),
        ]

    def _reset_charges(self):
        self.charge_ids = [fields.Command.clear()]
        self.service_ids = [fields.Command.clear()]

    def _recharge_product(self):
        return self.env.ref(
            "prepaid_postpaid_billing.product_product_wallet_recharge"
        ).with_company(self.company_id)

    def _default_payment_journal(self):
        return self.env["account.journal"].search(
            [
                *self.env["account.journal"]._check_company_domain(self.company_id),
                ("type", "in", ("bank", "cash")),
                ("id", "!=", self.company_id.billing_wallet_journal_id.id),
            ],
            limit=1,
        )

    def _prepare_invoice_vals(self):
        """Values of the invoice to create and, per usage line position, the ids
        of the charges it bills."""
        vals = {
            "move_type": "out_invoice",
            "partner_id": self.partner_id.id,
            "company_id": self.company_id.id,
            "invoice_date": self.invoice_date,
            "invoice_date_due": self.due_date,
            "invoice_payment_term_id": False,
            "narration": self.terms,
            "billing_customer_notes": self.customer_notes,
        }
        if self.customer_type == "prepaid":
            vals["invoice_line_ids"] = [
                fields.Command.create(
                    {
                        "product_id": self._recharge_product().id,
                        "name": self.description
                        or self._recharge_product().display_name,
                        "quantity": 1.0,
                        "price_unit": self.amount,
                    }
                )
            ]
            return vals, []
        period_label = self.env._(
            "%(start)s to %(end)s",
            start=fields.Date.to_string(self.date_from),
            end=fields.Date.to_string(self.date_to),
        )
        lines, line_charges = self.env["billing.charge"]._prepare_usage_line_vals(
            self._charge_groups(),
            self.currency_id,
            period_label,
        )
        vals.update(
            {
                "billing_period_start": self.date_from,
                "billing_period_end": self.date_to,
                "invoice_line_ids": [
                    fields.Command.create({**line, "sequence": 10 + position})
                    for position, line in enumerate(lines)
                ],
            }
        )
        return vals, line_charges

    def _charge_groups(self):
        """The listed usage records summed per service and unit price, each
        renewal of a service and period on its own, as the recurring invoices
        bill them."""
        # Only what the user may read: an onchange is not checked at create.
        charge_ids = self.charge_ids._origin._filtered_access("read").ids
        if not charge_ids:
            return []
        self.env["billing.charge"].flush_model()
        self.env.cr.execute(
            SQL(
                """
                SELECT product_id, price_unit, SUM(quantity), SUM(amount),
                       ARRAY_AGG(id ORDER BY id), service_id, service_period_start
                  FROM billing_charge
                 WHERE id = ANY(%(ids)s)
              GROUP BY product_id, price_unit, service_id, service_period_start
              ORDER BY product_id, price_unit DESC, service_id, service_period_start
                """,
                ids=charge_ids,
            )
        )
        return self.env["billing.charge"]._service_groups(self.env.cr.fetchall())

    def _create_invoice(self, pay_from_wallet=True):
        """Create and post the invoice, linking the listed usage records to its
        lines; nothing is written when one of them was invoiced meanwhile. Without
        ``pay_from_wallet``, posting it does not pay it from the wallet."""
        self._check_billing_user()
        if self.customer_type == "postpaid" and self.charge_ids:
            # Hold the listed records against a recurring run billing them now,
            # before checking they are still pending.
            self.env["billing.charge"].flush_model()
            self.env.cr.execute(
                SQL(
                    "SELECT id FROM billing_charge WHERE id = ANY(%s) ORDER BY id "
                    "FOR NO KEY UPDATE",
                    self.charge_ids.ids,
                )
            )
        self._check_invoice_data()
        vals, line_charges = self._prepare_invoice_vals()
        invoice = (
            self.env["account.move"]
            .with_company(self.company_id)
            .with_context(default_move_type="out_invoice")
            .create(vals)
        )
        lines = invoice.invoice_line_ids.sorted("id")
        charge_ids, line_ids = [], []
        for position, ids in line_charges:
            charge_ids.extend(ids)
            line_ids.extend([lines[position].id] * len(ids))
        # The user was checked to be a Billing User, who bills usage; charges are
        # read-only records whose state only invoicing changes.
        self.env["billing.charge"]._link_invoice_lines(charge_ids, line_ids)
        invoice.with_context(
            billing_skip_wallet_auto_pay=not pay_from_wallet
        ).action_post()
        return invoice

    def _register_payment(self, invoice):
        """Register the payment received for ``invoice`` with Odoo's payment
        wizard, reconciled with it. What is received beyond the invoice total
        stays as outstanding credit of the customer, as the invoice's chatter
        says."""
        excess = self.payment_amount - invoice.amount_residual
        method_line = self.payment_journal_id.inbound_payment_method_line_ids[:1]
        register = (
            self.env["account.payment.register"]
            .with_context(active_model="account.move", active_ids=invoice.ids)
            .create(
                {
                    "journal_id": self.payment_journal_id.id,
                    "payment_method_line_id": method_line.id,
                    "payment_date": self.payment_date,
                    "amount": self.payment_amount,
                    "communication": self.payment_reference or invoice.name,
                    "payment_difference_handling": "open",
                }
            )
        )
        payments = register._create_payments()
        if invoice.currency_id.compare_amounts(excess, 0) > 0:
            invoice.message_post(
                body=self.env._(
                    "Payment received: %(received)s, %(excess)s more than the "
                    "invoice total. The excess is not credited to the wallet: it "
                    "stays as outstanding credit of %(partner)s, to reconcile with "
                    "a later invoice or to refund.",
                    received=invoice.currency_id.format(self.payment_amount),
                    excess=invoice.currency_id.format(excess),
                    partner=invoice.commercial_partner_id.display_name,
                )
            )
        return payments

    def _reopen(self):
        return {
            "type": "ir.actions.act_window",
            "res_model": self._name,
            "res_id": self.id,
            "view_mode": "form",
            "target": "new",
            "name": self.env._("Create Invoice"),
        }

    def _open_invoice(self, invoice):
        return {
            "type": "ir.actions.act_window",
            "res_model": "account.move",
            "res_id": invoice.id,
            "view_mode": "form",
            "views": [(False, "form")],
            "target": "current",
        }
