import logging
from collections import defaultdict
from datetime import datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from dateutil.relativedelta import relativedelta
from psycopg2 import errors as pg_errors

from odoo import api, fields, models
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tools import SQL

from odoo.addons.base.models.ir_model import MODULE_UNINSTALL_FLAG

from .billing_charge import SERVICE_REF_PREFIX, USAGE_DIGITS

_logger = logging.getLogger(__name__)

INTERVAL_TYPES = [
    ("day", "Days"),
    ("week", "Weeks"),
    ("month", "Months"),
    ("year", "Years"),
]
SERVICE_STATES = [
    ("draft", "New"),
    ("active", "Active"),
    ("suspended", "Suspended"),
    ("closed", "Closed"),
]
MICRO = Decimal(1).scaleb(-USAGE_DIGITS)
# Errors of one service that must not stop a renewal run.
RENEWAL_ERRORS = (UserError, ValidationError, AccessError, ValueError)


def _exact(value):
    """``value`` as the Decimal of the usage precision it stands for."""
    return Decimal(repr(float(value))).quantize(MICRO, rounding=ROUND_HALF_UP)


class BillingService(models.Model):
    _name = "billing.service"
    _description = "Renewable Service"
    _inherit = ["mail.thread", "billing.seller.mixin"]
    _order = "next_date, id"
    _check_company_auto = True

    name = fields.Char(
        string="Description",
        compute="_compute_name",
        store=True,
        precompute=True,
        readonly=False,
        required=True,
        tracking=True,
    )
    partner_id = fields.Many2one(
        comodel_name="res.partner",
        string="Customer",
        required=True,
        index=True,
        check_company=True,
        ondelete="restrict",
        tracking=True,
        domain="[('parent_id', '=', False)]",
    )
    billing_mode = fields.Selection(related="partner_id.billing_mode")
    product_id = fields.Many2one(
        comodel_name="product.product",
        string="Service Product",
        required=True,
        check_company=True,
        ondelete="restrict",
        tracking=True,
        domain="[('sale_ok', '=', True), ('billing_topup_credit', '=', 0)]",
    )
    quantity = fields.Float(default=1.0, required=True, digits="Billing Usage")
    price_unit = fields.Float(
        string="Unit Price",
        compute="_compute_price_unit",
        store=True,
        precompute=True,
        readonly=False,
        required=True,
        digits="Billing Usage",
        tracking=True,
        help="Price of one unit for one period: the customer's pricelist price "
        "unless set here.",
    )
    renewal_amount = fields.Float(
        compute="_compute_renewal_amount",
        digits="Billing Usage",
        help="What each period costs: quantity times unit price, exact to the "
        "usage precision.",
    )
    interval_number = fields.Integer(
        string="Renew Every", default=1, required=True, tracking=True
    )
    interval_type = fields.Selection(
        selection=INTERVAL_TYPES,
        string="Period",
        default="month",
        required=True,
        tracking=True,
    )
    date_start = fields.Date(
        string="Start Date",
        default=fields.Date.context_today,
        required=True,
        tracking=True,
        help="First day of the first period; every period starts this many days, "
        "weeks, months or years after it (on the last day of a shorter month).",
    )
    next_date = fields.Date(
        string="Next Renewal",
        readonly=True,
        index=True,
        copy=False,
        tracking=True,
        help="Start of the next period to charge. For a suspended service, the "
        "period left unpaid.",
    )
    auto_renew = fields.Boolean(
        default=True,
        tracking=True,
        help="Renew at the end of each period. Off: the service closes at the end "
        "of its paid period.",
    )
    state = fields.Selection(
        selection=SERVICE_STATES,
        default="draft",
        required=True,
        readonly=True,
        copy=False,
        tracking=True,
    )
    suspended_date = fields.Date(string="Suspended On", readonly=True, copy=False)
    closed_date = fields.Date(string="Closed On", readonly=True, copy=False)
    reminder_date = fields.Date(
        string="Reminder Sent For",
        readonly=True,
        copy=False,
        help="The renewal the last renewal reminder was sent for: one reminder a "
        "period.",
    )
    company_id = fields.Many2one(
        comodel_name="res.company",
        required=True,
        index=True,
        default=lambda self: self.env.company,
    )
    currency_id = fields.Many2one(related="company_id.currency_id")
    charge_ids = fields.One2many(
        comodel_name="billing.charge",
        inverse_name="service_id",
        string="Renewals",
        readonly=True,
    )
    charge_count = fields.Integer(compute="_compute_charge_count")

    _sql_constraints = [
        (
            "quantity_positive",
            "CHECK(quantity > 0)",
            "The quantity of a service must be positive.",
        ),
        (
            "price_not_negative",
            "CHECK(price_unit >= 0)",
            "The unit price of a service cannot be negative.",
        ),
        (
            "interval_positive",
            "CHECK(interval_number > 0)",
            "A service renews every 1 or more days, weeks, months or years.",
        ),
    ]

    def init(self):
        # The renewal run selects active services by renewal date.
        self.env.cr.execute(
            SQL(
                """
                CREATE INDEX IF NOT EXISTS billing_service_due_idx
                    ON billing_service (company_id, next_date)
                 WHERE state IN ('active', 'suspended')
                """
            )
        )

    # -------------------------------------------------------------------------
    # COMPUTE METHODS
    # -------------------------------------------------------------------------

    @api.depends("product_id")
    def _compute_name(self):
        for service in self:
            if service.product_id and not service.name:
                service.name = service.product_id.display_name

    @api.depends("product_id", "partner_id", "quantity", "company_id")
    def _compute_price_unit(self):
        for service in self:
            product = service.product_id.with_company(service.company_id)
            if not product:
                service.price_unit = 0.0
                continue
            pricelist = service.partner_id.with_company(
                service.company_id
            ).property_product_pricelist
            price = (
                pricelist._get_product_price(
                    product,
                    service.quantity or 1.0,
                    currency=service.company_id.currency_id,
                )
                if pricelist
                else product.lst_price
            )
            service.price_unit = round(price, USAGE_DIGITS)

    @api.depends("quantity", "price_unit")
    def _compute_renewal_amount(self):
        for service in self:
            service.renewal_amount = float(service._renewal_exact_amount())

    def _compute_charge_count(self):
        counts = dict(
            self.env["billing.charge"]._read_group(
                [("service_id", "in", self.ids)], ["service_id"], ["__count"]
            )
        )
        for service in self:
            service.charge_count = counts.get(service, 0)

    # -------------------------------------------------------------------------
    # CONSTRAINT METHODS
    # -------------------------------------------------------------------------

    @api.constrains("partner_id", "product_id")
    def _check_service(self):
        for service in self:
            if service.product_id.billing_topup_credit:
                raise ValidationError(
                    self.env._(
                        "Service %(service)s: product %(product)s is a credit "
                        "package, not a service.",
                        service=service.display_name,
                        product=service.product_id.display_name,
                    )
                )
            if service.partner_id.parent_id:
                raise ValidationError(
                    self.env._(
                        "Service %(service)s: the customer must be a company or an "
                        "individual, not the contact %(partner)s.",
                        service=service.display_name,
                        partner=service.partner_id.display_name,
                    )
                )

    # -------------------------------------------------------------------------
    # CRUD METHODS
    # -------------------------------------------------------------------------

    def write(self, vals):
        frozen = {
            "partner_id",
            "product_id",
            "interval_number",
            "interval_type",
            "date_start",
            "company_id",
        } & set(vals)
        if frozen and self.filtered(lambda service: service.state != "draft"):
            raise UserError(
                self.env._(
                    "Service %(services)s is active: its customer, product, period "
                    "and start date cannot change. Close it and create another.",
                    services=", ".join(
                        self.filtered(lambda s: s.state != "draft").mapped(
                            "display_name"
                        )
                    ),
                )
            )
        return super().write(vals)

    def unlink(self):
        # Refused before Odoo deletes their messages, so that the refusal writes
        # nothing (as @api.ondelete(at_uninstall=False), not on uninstall).
        if not self.env.context.get(MODULE_UNINSTALL_FLAG):
            self.check_access("unlink")  # the user's rights first, as Odoo's
            self._check_deletable()
        return super().unlink()

    def _check_deletable(self):
        if self.filtered("charge_ids") or self.filtered(lambda s: s.state == "active"):
            raise UserError(
                self.env._(
                    "A service that was charged or is active cannot be deleted: "
                    "close it."
                )
            )
        # Charges the user cannot read count as well (no foreign key refuses it).
        self.env["billing.charge"]._check_unreferenced(self, "service_id")

    # -------------------------------------------------------------------------
    # ACTION METHODS
    # -------------------------------------------------------------------------

    def action_activate(self):
        """Start these new services: their first period is charged at once, as
        renewals are (from the wallet of a prepaid customer, else on the next
        recurring invoice), with the periods since their start date."""
        self.check_access("write")
        for service in self:
            if service.state != "draft":
                raise UserError(
                    self.env._(
                        "Service %(service)s is not new: it was activated already.",
                        service=service.display_name,
                    )
                )
        today = fields.Date.context_today(self)
        # sudo: the user may change these services (checked above); the renewal
        # writes the charges and the wallet debits of their own customers.
        services = self.sudo()
        services.write({"state": "active"})
        self.env.cr.execute(
            SQL(
                "UPDATE billing_service SET next_date = date_start WHERE id = ANY(%s)",
                services.ids,
            )
        )
        services.invalidate_recordset(["next_date"])
        for company, company_services in services.grouped("company_id").items():
            company_services.with_company(company)._renew_locked(today, first=True)
        return True

    def action_close(self):
        """Close these services at the end of their paid period: they renew no
        more. A suspended service, whose period is unpaid, closes at once."""
        self.check_access("write")
        self._close_at_period_end()
        return True

    def action_resume(self):
        """Resume these suspended services now: the current period is charged
        once (from the wallet of a prepaid customer, who must have the credit),
        the periods missed while suspended are not."""
        self.check_access("write")
        for service in self:
            if service.state != "suspended":
                raise UserError(
                    self.env._(
                        "Service %(service)s is not suspended.",
                        service=service.display_name,
                    )
                )
        services = self.sudo()
        for company, company_services in services.grouped("company_id").items():
            stats = company_services.with_company(company)._renew_locked(
                fields.Date.context_today(self)
            )
            if stats["not_covered"]:
                raise UserError(
                    self.env._(
                        "Service %(services)s cannot resume: the wallet balance "
                        "does not cover its renewal.",
                        services=", ".join(
                            company_services.filtered(
                                lambda s: s.state == "suspended"
                            ).mapped("display_name")
                        ),
                    )
                )
        return True

    def action_view_charges(self):
        self.ensure_one()
        self.check_access("read")
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "prepaid_postpaid_billing.billing_charge_action"
        )
        action["domain"] = [("service_id", "=", self.id)]
        action["context"] = {}
        return action

    @api.model
    def action_run_now(self):
        """Renew the due services now, as the scheduler does, in the companies
        the user works in."""
        self.env["billing.recurring"]._check_billing_manager()
        # sudo: the user was checked to be a Billing Administrator just above;
        # the run renews the due services of the user's companies only.
        runs = self.sudo()._renewal_run(trigger="manual", companies=self.env.companies)
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "prepaid_postpaid_billing.billing_run_action"
        )
        if len(runs) == 1:
            action.update(
                {"res_id": runs.id, "view_mode": "form", "views": [(False, "form")]}
            )
        else:
            action["domain"] = [("id", "in", runs.ids)]
        return action

    # -------------------------------------------------------------------------
    # BUSINESS METHODS: periods
    # -------------------------------------------------------------------------

    def _interval(self, count=1):
        self.ensure_one()
        number = self.interval_number * count
        return relativedelta(**{f"{self.interval_type}s": number})

    def _period_start_at(self, index):
        """Start of the period ``index`` (0: the first): counted from the start
        date, so that a service started on the 31st renews on the last day of
        shorter months and on the 31st again after them."""
        return self.date_start + self._interval(index)

    def _period_index(self, day):
        """Index of the period ``day`` is in (0 before the start)."""
        self.ensure_one()
        if day <= self.date_start:
            return 0
        if self.interval_type in ("day", "week"):
            length = self.interval_number * (7 if self.interval_type == "week" else 1)
            return (day - self.date_start).days // length
        months = self.interval_number * (12 if self.interval_type == "year" else 1)
        elapsed = (day.year - self.date_start.year) * 12 + (
            day.month - self.date_start.month
        )
        index = elapsed // months
        while index > 0 and self._period_start_at(index) > day:
            index -= 1
        return index

    def _period_after(self, start):
        """Start of the period after the one starting on ``start``."""
        return self._period_start_at(self._period_index(start) + 1)

    def _period_label(self, start):
        return self.env._(
            "%(start)s to %(end)s",
            start=fields.Date.to_string(start),
            end=fields.Date.to_string(self._period_after(start) - timedelta(days=1)),
        )

    def _renewal_exact_amount(self):
        """What a period costs, exactly: quantity times unit price rounded once
        to the usage precision."""
        self.ensure_one()
        return (_exact(self.quantity) * _exact(self.price_unit)).quantize(
            MICRO, rounding=ROUND_HALF_UP
        )

    def _balance_covers_renewal(self):
        """Whether the customer's wallet covers the next renewal, exactly."""
        self.ensure_one()
        # sudo: the balance of the service's own customer.
        wallet = (
            self.env["billing.wallet"]
            .sudo()
            ._get_wallet(self.partner_id, self.company_id, create=False)
        )
        return _exact(wallet.balance) >= self._renewal_exact_amount()

    # -------------------------------------------------------------------------
    # BUSINESS METHODS: renewals
    # -------------------------------------------------------------------------

    def _lock_rows(self, skip_locked=False):
        """Lock these services' rows in id order; those another transaction
        holds are left out with ``skip_locked``. Returns the locked ones."""
        if not self:
            return self
        self.flush_recordset()
        self.env.cr.execute(
            SQL(
                "SELECT id FROM billing_service WHERE id = ANY(%s) ORDER BY id "
                "FOR NO KEY UPDATE%s",
                self.ids,
                SQL(" SKIP LOCKED") if skip_locked else SQL(""),
            )
        )
        locked = self.browse(row[0] for row in self.env.cr.fetchall())
        locked.invalidate_recordset()
        return locked

    def _renew_locked(self, today, first=False):
        """Lock these services, then renew them (see ``_renew``)."""
        return self._lock_rows()._renew(today, first=first)

    def _renew_plan(self, today, first=False):
        """What each of these locked services does today, in id order:
        [(service, action, [period starts])], the action one of ``renew``
        (charge the periods, oldest first), ``resume`` (charge the current
        period, the missed ones not) and ``close``."""
        plan = []
        for service in self.sorted("id"):
            if service.state == "active" and service.next_date:
                if service.next_date > today and not first:
                    continue
                if not service.auto_renew and not first:
                    plan.append((service, "close", []))
                    continue
                periods, start = [], service.next_date
                while start <= today or (first and not periods):
                    periods.append(start)
                    start = service._period_after(start)
                plan.append((service, "renew", periods))
            elif service.state == "suspended":
                if not service.auto_renew:
                    plan.append((service, "close", []))
                    continue
                current = service._period_start_at(service._period_index(today))
                plan.append((service, "resume", [max(current, service.next_date)]))
        return plan

    def _renew(self, today, first=False):
        """Renew these locked services of the current company as of ``today``:
        one charge per service and period due, created with one INSERT per
        billing mode; prepaid ones paid from the wallet at once (one ledger
        line each, all with one INSERT, the wallets locked in id order),
        postpaid ones pending for the next recurring invoice. A prepaid service
        whose exact balance does not cover a period stops there: it is
        suspended (and its customer emailed) once the grace days of the period
        have passed. Services whose auto-renew is off close at the end of their
        paid period. Returns the figures."""
        stats = defaultdict(int)
        plan = self._renew_plan(today, first=first)
        if not plan:
            return stats
        balances = self._renew_lock_wallets(plan)
        already = self._charged_periods(plan)
        grace = timedelta(days=self.env.company.billing_service_grace_days)
        todo = {
            "debits": [],
            "prepaid": [],
            "postpaid": [],
            "updates": {},  # service id -> next renewal date
            "changes": [],  # (service, new state, next renewal date)
        }
        for service, action, periods in plan:
            stats["services"] += 1
            if action == "close":
                todo["changes"].append((service, "closed", service.next_date))
                stats["closed"] += 1
                continue
            paid_until = service._renew_charge_periods(periods, balances, already, todo)
            next_date = (
                service._period_after(paid_until) if paid_until else service.next_date
            )
            unpaid = paid_until != periods[-1]
            if action == "resume":
                if paid_until is None:
                    stats["not_covered"] += 1
                else:
                    todo["changes"].append((service, "active", next_date))
                    stats["resumed"] += 1
            elif unpaid and today >= next_date + grace:
                todo["changes"].append((service, "suspended", next_date))
                stats["suspended"] += 1
            else:
                todo["updates"][service.id] = next_date
                stats["not_covered"] += unpaid
        stats["charges"] += len(todo["prepaid"]) + len(todo["postpaid"])
        self._renew_write(todo, today)
        return stats

    def _renew_lock_wallets(self, plan):
        """Lock the wallets of the prepaid customers of ``plan`` that renew, in
        id order: {partner id: (wallet id, exact balance)}."""
        partners = {
            service.partner_id.id
            for service, action, _periods in plan
            if action != "close" and service.partner_id.billing_mode == "prepaid"
        }
        if not partners:
            return {}
        wallets = (
            self.env["billing.wallet"]
            .sudo()
            ._lock_usage_wallets(list(partners), self.env.company)
        )
        return {
            partner_id: (wallet_id, _exact(balance))
            for partner_id, (wallet_id, balance) in wallets.items()
        }

    def _renew_charge_periods(self, periods, balances, already, todo):
        """Add to ``todo`` the charges (and, for a prepaid customer, the wallet
        debits, ``balances`` kept up to date) of this service's ``periods``, in
        order, up to the first one the balance does not cover; a period charged
        already (``already``) counts as paid. Returns the start of the last
        period paid (None: none)."""
        self.ensure_one()
        amount = self._renewal_exact_amount()
        prepaid = self.partner_id.id in balances
        paid_until = None
        for start in periods:
            if (self.id, start) in already:
                paid_until = start
                continue
            if prepaid:
                wallet_id, balance = balances[self.partner_id.id]
                if amount > balance:
                    break
                balance -= amount
                balances[self.partner_id.id] = (wallet_id, balance)
                todo["debits"].append(
                    {
                        "wallet_id": wallet_id,
                        "amount": amount,
                        "balance_after": balance,
                        "name": self.env._("Renewal of %(service)s", service=self.name),
                        "origin": self._period_label(start),
                        "idempotency_key": f"renewal:{self.id}:{start}",
                        "product_id": self.product_id.id,
                    }
                )
            todo["prepaid" if prepaid else "postpaid"].append(
                self._renewal_charge_vals(start, amount)
            )
            paid_until = start
        return paid_until

    def _renew_write(self, todo, today):
        """Write what ``_renew`` planned: the wallet debits, the charges (one
        INSERT per billing mode; raises when one of them exists already, so
        that nothing of the batch is written), the next renewal dates (one
        UPDATE) and the changes of state."""
        moves = self.env["billing.wallet"].sudo()._debit_renewals(todo["debits"])
        for vals in todo["prepaid"]:
            vals["wallet_move_id"] = moves[vals.pop("_key")]
        for vals in todo["postpaid"]:
            vals.pop("_key")
        Charge = self.env["billing.charge"].sudo()
        for vals_list, state in (
            (todo["prepaid"], "debited"),
            (todo["postpaid"], "pending"),
        ):
            if not vals_list:
                continue
            if len(Charge._ingest_insert(vals_list, state=state)) != len(vals_list):
                raise UserError(
                    self.env._(
                        "Renewals of services %(services)s were charged by another "
                        "run meanwhile: nothing was charged, the next run goes on.",
                        services=", ".join(
                            str(vals["service_id"]) for vals in vals_list
                        ),
                    )
                )
        updates = todo["updates"]
        if updates:
            self.env.cr.execute(
                SQL(
                    """
                    UPDATE billing_service s
                       SET next_date = v.next_date, write_uid = %(uid)s,
                           write_date = NOW() AT TIME ZONE 'UTC'
                      FROM unnest(%(ids)s::int4[], %(dates)s::date[])
                           AS v(id, next_date)
                     WHERE s.id = v.id
                    """,
                    uid=self.env.uid,
                    ids=list(updates),
                    dates=list(updates.values()),
                )
            )
            self.browse(updates).invalidate_recordset(["next_date"])
        for service, state, next_date in todo["changes"]:
            service._change_state(state, next_date, today)

    def _charged_periods(self, plan):
        """{(service id, period start)} of the periods of ``plan`` charged
        already (none, unless a run was interrupted between its charges and its
        update of the services)."""
        pairs = [
            (service.id, start)
            for service, _action, periods in plan
            for start in periods
        ]
        if not pairs:
            return set()
        self.env["billing.charge"].flush_model(["service_id", "service_period_start"])
        self.env.cr.execute(
            SQL(
                """
                SELECT c.service_id, c.service_period_start FROM billing_charge c
                  JOIN unnest(%(ids)s::int4[], %(starts)s::date[]) AS v(id, start)
                    ON c.service_id = v.id AND c.service_period_start = v.start
                """,
                ids=[pair[0] for pair in pairs],
                starts=[pair[1] for pair in pairs],
            )
        )
        return set(self.env.cr.fetchall())

    def _renewal_charge_vals(self, start, amount):
        """Values of the charge renewing this service for the period starting on
        ``start`` (for ``billing.charge._ingest_insert``)."""
        self.ensure_one()
        return {
            "partner_id": self.partner_id.id,
            "product_id": self.product_id.id,
            "date": datetime.combine(start, time.min),
            "quantity": self.quantity,
            "price_unit": self.price_unit,
            "amount": float(amount),
            "name": self.env._(
                "%(service)s (%(period)s)",
                service=self.name,
                period=self._period_label(start),
            ),
            "external_ref": f"{SERVICE_REF_PREFIX}{self.id}:{start}",
            "service_id": self.id,
            "service_period_start": start,
            "_key": f"renewal:{self.id}:{start}",
        }

    def _change_state(self, state, next_date, today):
        """Suspend, resume or close this service, say so in its chatter and
        email its customer about a suspension or a resumption."""
        self.ensure_one()
        vals = {"state": state, "next_date": next_date}
        if state == "suspended":
            vals["suspended_date"] = today
        elif state == "active":
            vals["suspended_date"] = False
        elif state == "closed":
            # An active service closes at the end of its paid period.
            vals["closed_date"] = (
                min(today, next_date) if self.state == "active" and next_date else today
            )
        self.write(vals)
        template_xmlid = {
            "suspended": "prepaid_postpaid_billing.mail_template_service_suspended",
            "active": "prepaid_postpaid_billing.mail_template_service_resumed",
        }.get(state)
        if template_xmlid:
            self._notify_customer(template_xmlid)

    def _notify_customer(self, template_xmlid):
        self.ensure_one()
        template = self.env.ref(template_xmlid, raise_if_not_found=False)
        if template:
            self.with_context(mail_notify_force_send=False).message_post_with_source(
                template, subtype_xmlid="mail.mt_comment"
            )

    def _close_at_period_end(self):
        """Renew these services no more: an active one closes at the end of its
        paid period (the next renewal run closes it), a suspended one at once."""
        today = fields.Date.context_today(self)
        for service in self.sudo()._lock_rows():
            if service.state == "closed":
                continue
            if service.state in ("draft", "suspended"):
                service._change_state("closed", service.next_date, today)
            elif service.auto_renew:
                service.write({"auto_renew": False})
                service.message_post(
                    body=self.env._(
                        "Closes at the end of its paid period, on %(date)s.",
                        date=fields.Date.to_string(service.next_date),
                    )
                )

    @api.model
    def _resume_for_wallet(self, wallet):
        """Resume the suspended services of ``wallet``'s customer that its
        balance now covers (a top-up, a recharge, any credit): called with the
        wallet locked. A service another transaction holds, or one that fails,
        is left to the next renewal run, which resumes the services whose
        wallets cover them; the credit is never refused for it."""
        # sudo: the services of the wallet's own customer, resumed by the credit.
        services = self.sudo().search(
            [
                ("partner_id", "=", wallet.partner_id.id),
                ("company_id", "=", wallet.company_id.id),
                ("state", "=", "suspended"),
                ("auto_renew", "=", True),
            ]
        )
        if not services:
            return
        try:
            with self.env.cr.savepoint():
                services.with_company(wallet.company_id)._lock_rows(
                    skip_locked=True
                )._renew(fields.Date.context_today(self))
        except (*RENEWAL_ERRORS, pg_errors.SerializationFailure) as error:
            _logger.info(
                "Services of %s not resumed now (%s): the next renewal run does",
                wallet.partner_id.display_name,
                error,
            )

    # -------------------------------------------------------------------------
    # SCHEDULED RUN
    # -------------------------------------------------------------------------

    @api.model
    def _cron_renew(self, batch_size=200):
        """Scheduled action: renew the due services, then send the renewal
        reminders (with OCA queue_job installed: in queue jobs, the reminders
        in a run of their own, see billing_queue.py)."""
        Run = self.env["billing.run"]
        if Run._billing_queue_active():
            runs = Run._billing_queue_start("renewal", batch_size)
            Run._billing_queue_start("reminder", batch_size)
            return runs
        runs = self._renewal_run(
            trigger="cron", batch_size=batch_size, auto_commit=True
        )
        self._send_renewal_reminders(auto_commit=True)
        return runs

    @api.model
    def _renewal_run(
        self,
        trigger="manual",
        batch_size=200,
        auto_commit=False,
        today=None,
        companies=None,
    ):
        """Renew the due services of ``companies`` (by default every company) in
        batches, each company's run recorded in a ``billing.run`` of kind
        renewal. With ``auto_commit`` (the cron), each batch is committed on
        its own: a run killed half-way keeps what it finished and the next run
        completes the rest, without charging a period twice (a unique
        constraint on the charge) or skipping one (the next renewal date moves
        with the charges, in the same transaction)."""
        today = today or fields.Date.context_today(self)
        Run = self.env["billing.run"].sudo()
        runs = Run
        Run._close_interrupted()
        due_companies = self._renewal_due_companies(today)
        if companies is not None:
            due_companies &= companies
        if not due_companies and trigger == "manual":
            due_companies = self.env.company
        for company in due_companies:
            run = Run.create(
                {"trigger": trigger, "company_id": company.id, "kind": "renewal"}
            )
            runs |= run
            run._work(
                lambda company=company, run=run: self.with_company(
                    company
                )._renewal_run_company(run, today, batch_size, auto_commit),
                auto_commit,
            )
        return runs

    @api.model
    def _renewal_due_condition(self, today):
        """The services a renewal run takes (alias ``s``): active ones whose
        renewal date has come, suspended ones to close (auto-renew off) and
        suspended ones of prepaid customers whose wallet now covers them (to
        resume: a credit resumes them at once, the run resumes those it could
        not)."""
        return SQL(
            """
            (s.state = 'active' AND s.next_date <= %(today)s)
            OR (s.state = 'suspended' AND NOT s.auto_renew)
            OR (s.state = 'suspended' AND EXISTS (
                SELECT 1 FROM billing_wallet w
                  JOIN res_partner p ON p.id = w.partner_id
                 WHERE w.partner_id = s.partner_id
                   AND w.company_id = s.company_id
                   AND p.billing_mode = 'prepaid'
                   AND w.balance >= ROUND(s.quantity * s.price_unit, %(digits)s)))
            """,
            today=today,
            digits=USAGE_DIGITS,
        )

    @api.model
    def _renewal_due_companies(self, today):
        self.flush_model()
        self.env.cr.execute(
            SQL(
                "SELECT DISTINCT s.company_id FROM billing_service s WHERE %s",
                self._renewal_due_condition(today),
            )
        )
        return self.env["res.company"].browse(
            sorted(row[0] for row in self.env.cr.fetchall())
        )

    def _renewal_select(self, today, seen, limit):
        """Ids of the next batch of services of the current company to renew,
        locked, skipping those another run holds and those of ``seen``."""
        self.env.cr.execute(
            SQL(
                """
                SELECT s.id FROM billing_service s
                 WHERE s.company_id = %(company)s AND s.id != ALL(%(seen)s)
                   AND (%(due)s)
              ORDER BY s.next_date, s.id
                 LIMIT %(limit)s
                   FOR NO KEY UPDATE OF s SKIP LOCKED
                """,
                company=self.env.company.id,
                seen=seen,
                due=self._renewal_due_condition(today),
                limit=limit,
            ),
            log_exceptions=False,
        )
        return [row[0] for row in self.env.cr.fetchall()]

    def _renewal_run_company(self, run, today, batch_size, auto_commit):
        seen = []
        totals = defaultdict(int)
        while True:
            # Another run may have renewed some of them since this transaction
            # began (see _select_batch).
            ids = run._select_batch(
                lambda: self._renewal_select(today, seen, batch_size),
                auto_commit,
                "Renewal run %s stops: another run is renewing",
            )
            if not ids:
                break
            seen.extend(ids)
            batch = self.browse(ids)
            stats, failures = batch._renewal_process_batch(today)
            for key, value in stats.items():
                totals[key] += value
            run.write(
                {
                    "service_count": totals["services"],
                    "charge_count": totals["charges"],
                    "suspended_count": totals["suspended"],
                    "resumed_count": totals["resumed"],
                    "closed_count": totals["closed"],
                    "failure_ids": [
                        fields.Command.create(
                            {
                                "service_id": service.id,
                                "partner_id": service.partner_id.id,
                                "error": error,
                            }
                        )
                        for service, error in failures
                    ],
                }
            )
            self.env["ir.cron"]._notify_progress(
                done=len(seen),
                remaining=self.search_count(
                    [
                        ("company_id", "=", self.env.company.id),
                        ("state", "=", "active"),
                        ("next_date", "<=", today),
                        ("id", "not in", seen),
                    ]
                ),
            )
            if auto_commit:
                self.env.cr.commit()  # pylint: disable=invalid-commit  # batch boundary
                self.env.invalidate_all()
                run._lock()

    def _renewal_process_batch(self, today):
        """Renew these locked services together; on an error, again one at a
        time, each in its own savepoint, so that a failing service does not stop
        the others. Returns (stats, [(service, error)])."""
        try:
            with self.env.cr.savepoint():
                return self._renew(today), []
        except RENEWAL_ERRORS as error:
            _logger.info("Renewal batch failed (%s); retrying one by one", error)
        stats = defaultdict(int)
        failures = []
        for service in self:
            try:
                with self.env.cr.savepoint():
                    for key, value in service._renew(today).items():
                        stats[key] += value
            except RENEWAL_ERRORS as error:
                _logger.warning(
                    "Renewal of service %s of %s failed: %s",
                    service.id,
                    service.partner_id.display_name,
                    error,
                )
                failures.append((service, str(error)))
        return stats, failures

    # -------------------------------------------------------------------------
    # REMINDERS
    # -------------------------------------------------------------------------

    @api.model
    def _send_renewal_reminders(self, today=None, auto_commit=False, batch_size=200):
        """Email each active auto-renewing service's customer once per period,
        the company's reminder days before its renewal: from the template
        ``mail_template_service_reminder``, whose wording says whether the
        balance covers the renewal (prepaid) or that it goes on the next invoice
        (postpaid). Recorded on the service (``reminder_date``). Returns how
        many were sent."""
        today = today or fields.Date.context_today(self)
        sent = 0
        for company in self.env["res.company"].sudo().search([]):
            days = company.billing_service_reminder_days
            if days <= 0:
                continue
            # sudo: the reminders are the scheduler's work, in every company.
            Service = self.sudo().with_company(company)
            seen = []
            while True:
                services = Service.browse(
                    Service._reminder_select(today, days, seen, batch_size)
                )
                if not services:
                    break
                seen.extend(services.ids)
                sent += services._send_renewal_reminder()
                if auto_commit:
                    self.env.cr.commit()  # pylint: disable=invalid-commit  # batch boundary
        return sent

    def _reminder_select(self, today, days, seen, limit):
        """Ids of the next batch of active auto-renewing services of the current
        company renewing within ``days`` of ``today`` and not reminded of that
        renewal yet, but for ``seen``; locked, those another transaction holds
        left out (none at all when a concurrent run reminded some meanwhile:
        the next run goes on)."""
        self.flush_model()
        try:
            with self.env.cr.savepoint():
                self.env.cr.execute(
                    SQL(
                        """
                        SELECT id FROM billing_service
                         WHERE company_id = %(company)s AND state = 'active'
                           AND auto_renew AND next_date > %(today)s
                           AND next_date <= %(until)s
                           AND reminder_date IS DISTINCT FROM next_date
                           AND id != ALL(%(seen)s)
                      ORDER BY id
                         LIMIT %(limit)s
                           FOR NO KEY UPDATE SKIP LOCKED
                        """,
                        company=self.env.company.id,
                        today=today,
                        until=today + timedelta(days=days),
                        seen=seen,
                        limit=limit,
                    )
                )
                return [row[0] for row in self.env.cr.fetchall()]
        except pg_errors.SerializationFailure:
            _logger.info("Renewal reminders stop: another run is sending them")
            return []

    def _send_renewal_reminder(self):
        """Email these locked services' customers the renewal reminder, each in
        a savepoint, and record it; returns how many were sent."""
        sent = 0
        for service in self:
            try:
                with self.env.cr.savepoint():
                    service._notify_customer(
                        "prepaid_postpaid_billing.mail_template_service_reminder"
                    )
                    service.reminder_date = service.next_date
                    service.flush_recordset(["reminder_date"])
                    sent += 1
            except RENEWAL_ERRORS as error:
                _logger.warning(
                    "Renewal reminder of service %s not sent: %s", service.id, error
                )
        return sent

    # -------------------------------------------------------------------------
    # MAIL AND PORTAL
    # -------------------------------------------------------------------------

    def _check_portal_owner(self):
        """Only the service's own customer changes it from the portal (its
        reseller sees it)."""
        self.check_access("read")
        if self.partner_id != self.env.user.partner_id.commercial_partner_id:
            raise AccessError(
                self.env._(
                    "Service %(service)s is not yours to change.",
                    service=self.display_name,
                )
            )

    def _portal_set_auto_renew(self, auto_renew):
        """Turn auto-renew on or off for this service of the portal user (read
        with the user's rights by the caller). Off: the service closes at the
        end of its paid period."""
        self.ensure_one()
        self._check_portal_owner()
        if self.state not in ("active", "suspended") or (
            self.state == "suspended" and auto_renew
        ):
            raise UserError(
                self.env._(
                    "Service %(service)s is %(state)s: its auto-renew cannot change.",
                    service=self.display_name,
                    state=dict(self._fields["state"].selection)[self.state],
                )
            )
        # sudo: the portal user's own service, checked readable just above; only
        # auto-renew changes.
        service = self.sudo()
        if not auto_renew and service.state == "suspended":
            service._close_at_period_end()
        else:
            service.write({"auto_renew": bool(auto_renew)})
        return True

    def _portal_close(self):
        """Close this service of the portal user at the end of its paid period."""
        self.ensure_one()
        self._check_portal_owner()
        if self.state not in ("active", "suspended"):
            raise UserError(
                self.env._(
                    "Service %(service)s is not running: there is nothing to close.",
                    service=self.display_name,
                )
            )
        # sudo: the portal user's own service, checked readable just above.
        self.sudo()._close_at_period_end()
        return True
