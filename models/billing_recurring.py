import calendar
import logging
from collections import defaultdict
from datetime import datetime, time, timedelta

from dateutil.relativedelta import relativedelta
from markupsafe import Markup

from odoo import api, fields, models
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tools import SQL, format_date

_logger = logging.getLogger(__name__)

INTERVAL_TYPES = [
    ("week", "Weeks"),
    ("month", "Months"),
    ("quarter", "Quarters"),
    ("year", "Years"),
]
MONTHS_PER_INTERVAL = {"month": 1, "quarter": 3, "year": 12}


def _month_days(day):
    """Number of days of the month of ``day``."""
    return calendar.monthrange(day.year, day.month)[1]


class BillingRecurring(models.Model):
    _name = "billing.recurring"
    _description = "Recurring Invoice"
    _inherit = ["mail.thread"]
    _order = "next_date, id"
    _check_company_auto = True

    name = fields.Char(compute="_compute_name", store=True)
    partner_id = fields.Many2one(
        comodel_name="res.partner",
        string="Customer",
        required=True,
        tracking=True,
        domain="[('billing_mode', '=', 'postpaid'), '|', ('is_company', '=', True), "
        "('parent_id', '=', False)]",
        check_company=True,
    )
    company_id = fields.Many2one(
        comodel_name="res.company",
        required=True,
        default=lambda self: self.env.company,
    )
    currency_id = fields.Many2one(related="company_id.currency_id")
    interval_type = fields.Selection(
        selection=INTERVAL_TYPES,
        string="Cycle",
        required=True,
        default="month",
        tracking=True,
    )
    interval_number = fields.Integer(
        string="Every", required=True, default=1, tracking=True
    )
    invoice_day = fields.Integer(
        string="Preferred Day",
        compute="_compute_invoice_day",
        store=True,
        readonly=False,
        help="Day of the month of the invoice date (monthly, quarterly and yearly "
        "cycles); in shorter months a day past the end means the last day.",
    )
    next_date = fields.Date(
        string="Next Invoice Date",
        required=True,
        default=fields.Date.context_today,
        tracking=True,
        help="Date of the next invoice; the period it invoices ends the day before "
        "and starts the day after the period invoiced before it ended (one cycle "
        "earlier for the first invoice).",
    )
    period_start = fields.Date(
        string="Next Period Start",
        readonly=True,
        copy=False,
        help="First day of the period the next invoice bills: the day after the "
        "last period the recurring run went through ended. Empty until the first "
        "run, when the first period starts one cycle before the next invoice date.",
    )
    state = fields.Selection(
        selection=[("running", "Running"), ("stopped", "Stopped")],
        required=True,
        default="running",
        tracking=True,
    )
    stop_when_invoiced = fields.Boolean(
        string="Stops Once Pending Usage Is Invoiced",
        readonly=True,
        copy=False,
        tracking=True,
        help="Set when the customer is switched to prepaid billing while some of "
        "its usage is still pending: the recurring invoice keeps running until that "
        "usage is invoiced, then stops itself. Switching the customer back to "
        "postpaid clears it.",
    )
    generation_mode = fields.Selection(
        selection=[("draft", "Drafts to approve"), ("confirm", "Confirmed")],
        required=True,
        default=lambda self: self.env.company.billing_generation_mode,
        tracking=True,
    )
    send_email = fields.Boolean(
        string="Email on Confirmation",
        default=True,
        help="Email the invoice to the customer when it is confirmed.",
    )
    line_ids = fields.One2many(
        comodel_name="billing.recurring.line",
        inverse_name="recurring_id",
        string="Fixed Lines",
        copy=True,
    )
    allowance_ids = fields.One2many(
        comodel_name="billing.recurring.allowance",
        inverse_name="recurring_id",
        string="Included Allowances",
        copy=True,
    )
    invoice_ids = fields.One2many(
        comodel_name="account.move",
        inverse_name="billing_recurring_id",
        string="Invoices",
        readonly=True,
    )
    invoice_count = fields.Integer(compute="_compute_invoice_count")

    _sql_constraints = [
        (
            "partner_company_uniq",
            "unique(partner_id, company_id)",
            "A customer has one recurring invoice per company.",
        ),
        (
            "interval_number_positive",
            "CHECK(interval_number > 0)",
            "Every must be positive.",
        ),
        (
            "invoice_day_range",
            "CHECK(invoice_day IS NULL OR (invoice_day BETWEEN 1 AND 31))",
            "Preferred Day must be between 1 and 31.",
        ),
    ]

    def init(self):
        # The run selects the running schedules whose next date has come.
        self.env.cr.execute(
            SQL(
                """
                CREATE INDEX IF NOT EXISTS billing_recurring_due_idx
                    ON billing_recurring (company_id, next_date)
                 WHERE state = 'running'
                """
            )
        )

    # -------------------------------------------------------------------------
    # COMPUTE METHODS
    # -------------------------------------------------------------------------

    @api.depends("partner_id", "interval_type", "interval_number")
    def _compute_name(self):
        labels = dict(INTERVAL_TYPES)
        for recurring in self:
            recurring.name = self.env._(
                "%(partner)s, every %(number)s %(cycle)s",
                partner=recurring.partner_id.display_name or "",
                number=recurring.interval_number,
                cycle=labels.get(recurring.interval_type, "").lower(),
            )

    @api.depends("partner_id")
    def _compute_invoice_day(self):
        for recurring in self:
            recurring.invoice_day = recurring.partner_id.billing_invoice_day or 1

    def _compute_invoice_count(self):
        groups = self.env["account.move"]._read_group(
            [("billing_recurring_id", "in", self.ids)],
            groupby=["billing_recurring_id"],
            aggregates=["__count"],
        )
        counts = {recurring.id: count for recurring, count in groups}
        for recurring in self:
            recurring.invoice_count = counts.get(recurring.id, 0)

    # -------------------------------------------------------------------------
    # CONSTRAINT METHODS
    # -------------------------------------------------------------------------

    @api.constrains(
        "partner_id",
        "interval_number",
        "invoice_day",
        "state",
        "stop_when_invoiced",
        "next_date",
        "period_start",
    )
    def _check_recurring(self):
        for recurring in self:
            postpaid = (
                recurring.partner_id.commercial_partner_id.billing_mode == "postpaid"
            )
            # A customer switched to prepaid keeps its schedule only stopped, or
            # running until the usage pending at the switch is invoiced.
            if (
                not postpaid
                and recurring.state == "running"
                and not recurring.stop_when_invoiced
            ):
                raise ValidationError(
                    self.env._(
                        "Customer of recurring invoice %(name)s: %(partner)s is not "
                        "billed postpaid.",
                        name=recurring.name,
                        partner=recurring.partner_id.display_name,
                    )
                )
            if postpaid and recurring.stop_when_invoiced:
                raise ValidationError(
                    self.env._(
                        "Stops Once Pending Usage Is Invoiced of recurring invoice "
                        "%(name)s: %(partner)s is billed postpaid, its recurring "
                        "invoice keeps running.",
                        name=recurring.name,
                        partner=recurring.partner_id.display_name,
                    )
                )
            if recurring.interval_number < 1:
                raise ValidationError(
                    self.env._(
                        "Every of recurring invoice %(name)s must be at least 1.",
                        name=recurring.name,
                    )
                )
            if recurring.invoice_day and not 1 <= recurring.invoice_day <= 31:
                raise ValidationError(
                    self.env._(
                        "Preferred Day of recurring invoice %(name)s must be between 1 "
                        "and 31.",
                        name=recurring.name,
                    )
                )
            if recurring.period_start and recurring.next_date <= recurring.period_start:
                raise ValidationError(
                    self.env._(
                        "Next Invoice Date of recurring invoice %(name)s must be after "
                        "%(start)s: the periods before it are invoiced.",
                        name=recurring.name,
                        start=format_date(self.env, recurring.period_start),
                    )
                )

    # -------------------------------------------------------------------------
    # ACTION METHODS
    # -------------------------------------------------------------------------

    def action_start(self):
        self._check_billing_manager()
        self.write({"state": "running"})

    def action_stop(self):
        self._check_billing_manager()
        self.write({"state": "stopped", "stop_when_invoiced": False})

    def action_view_invoices(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "account.action_move_out_invoice_type"
        )
        action["domain"] = [("billing_recurring_id", "=", self.id)]
        action["context"] = {"default_move_type": "out_invoice", "create": False}
        return action

    @api.model
    def action_run_now(self):
        """Generate the invoices whose date has come, now, as the scheduler does,
        in the companies the user works in."""
        self._check_billing_manager()
        # sudo: the user was checked to be a Billing Administrator just above; the
        # run invoices the due schedules of the user's companies (env.companies,
        # which Odoo keeps within the user's allowed companies) only.
        runs = self.sudo()._billing_run(trigger="manual", companies=self.env.companies)
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
    # BUSINESS METHODS
    # -------------------------------------------------------------------------

    def _check_billing_manager(self):
        if not self.env.user.has_group(
            "prepaid_postpaid_billing.group_billing_manager"
        ):
            raise AccessError(
                self.env._(
                    "Only Billing Administrators can start, stop or run billing."
                )
            )

    def _next_invoice_date(self, current, day=None):
        """The invoice date one cycle after ``current``, on the preferred day
        (``day``, default the schedule's)."""
        self.ensure_one()
        if self.interval_type == "week":
            return current + timedelta(weeks=self.interval_number)
        months = MONTHS_PER_INTERVAL[self.interval_type] * self.interval_number
        following = current + relativedelta(months=months)
        day = day or self.invoice_day or current.day
        last = _month_days(following)
        return following.replace(day=min(day, last))

    def _period_start(self, invoice_date, day=None):
        """First day of a first period invoiced on ``invoice_date``: one cycle
        earlier, on the preferred day when ``invoice_date`` is on it (so that with
        a preferred day of 31, the period invoiced on February 28 starts on
        January 31, not 28). The later periods start where the previous one
        ended (see ``_billing_due_periods``)."""
        self.ensure_one()
        if self.interval_type == "week":
            return invoice_date - timedelta(weeks=self.interval_number)
        months = MONTHS_PER_INTERVAL[self.interval_type] * self.interval_number
        previous = invoice_date - relativedelta(months=months)
        day = day or self.invoice_day
        if day and invoice_date.day == min(day, _month_days(invoice_date)):
            previous = previous.replace(day=min(day, _month_days(previous)))
        return previous

    # -------------------------------------------------------------------------
    # PREFERRED DAY CHANGES
    # -------------------------------------------------------------------------

    def _billing_set_invoice_day(self, day):
        """Invoice these schedules on the preferred ``day`` (1 to 31; in shorter
        months a day past the end means the last day) from their next period on:
        the current period ends as planned, on its next invoice date, and the
        invoice after it is on the new day; the period between them starts where
        the current one ends, so that nothing is invoiced twice or left out. Say
        so in the chatter of each schedule and of its customer. For Billing
        Administrators, or a caller that checked the user may change the
        customer's billing profile (``res.partner.write``). Returns the schedules
        whose day changed."""
        if not (
            self.env.su
            or self.env.user.has_group("prepaid_postpaid_billing.group_billing_manager")
        ):
            raise AccessError(
                self.env._(
                    "Only Billing Administrators can change the preferred day of "
                    "recurring invoices."
                )
            )
        if isinstance(day, bool) or not isinstance(day, int) or not 1 <= day <= 31:
            raise UserError(
                self.env._(
                    "Preferred Day of recurring invoice %(name)s must be a whole "
                    "number from 1 to 31, not %(day)r.",
                    name=", ".join(self.mapped("name")),
                    day=day,
                )
            )
        changed = self.browse()
        for recurring in self:
            old = recurring.invoice_day
            if old == day:
                continue
            vals = {"invoice_day": day}
            if not recurring.period_start:
                # Before the first run the first period is computed from the
                # preferred day: keep the one planned with the old day.
                planned = recurring._period_start(recurring.next_date)
                if recurring._period_start(recurring.next_date, day) != planned:
                    vals["period_start"] = planned
            recurring.write(vals)
            changed |= recurring
            recurring._billing_post_invoice_day_change(old, day)
        return changed

    @api.model
    def _billing_follow_invoice_day(self, partners):
        """Invoice the schedules of the customers ``partners`` (commercial
        partners) on the preferred invoice day just given to them, from their
        next period on (see ``_billing_set_invoice_day``). Called by
        ``res.partner.write`` once the user was checked to be allowed to change
        billing profiles."""
        # sudo: the caller checked the user may change these customers' billing
        # profile; a customer's preferred day holds in every company, so do its
        # schedules of every company follow it.
        schedules = self.sudo().search([("partner_id", "in", partners.ids)])
        for partner in partners:
            schedules.filtered(
                lambda r, p=partner: r.partner_id == p
            )._billing_set_invoice_day(partner.billing_invoice_day)
        return schedules

    def _billing_post_invoice_day_change(self, old, new):
        """Tell the chatter of this schedule and of its customer that the
        preferred day changed from ``old`` to ``new``, by whom, and the dates
        of the next invoices."""
        self.ensure_one()
        summary = self.env._(
            "Preferred invoice day changed from %(old)s to %(new)s by %(user)s.",
            old=old or "-",
            new=new,
            user=self.env.user.name,
        )
        if self.state == "running":
            following = self._next_invoice_date(self.next_date)
            dates = self.env._(
                "The invoice of %(next)s closes the current period as planned; the "
                "next one is on %(following)s.",
                next=format_date(self.env, self.next_date),
                following=format_date(self.env, following),
            )
            summary = f"{summary} {dates}"
        self.message_post(body=summary)
        self.partner_id.message_post(
            body=self.env._(
                "%(summary)s (recurring invoice %(name)s)",
                summary=summary,
                name=self._billing_label(),
            )
        )

    # -------------------------------------------------------------------------
    # MODE CHANGES
    # -------------------------------------------------------------------------

    @api.model
    def _billing_action_create_for(self, partner):
        """The form of a new recurring invoice of the customer ``partner``, billed
        postpaid and without one in the current company, for a Billing
        Administrator."""
        if not self.env.user.has_group(
            "prepaid_postpaid_billing.group_billing_manager"
        ):
            raise AccessError(
                self.env._("Only Billing Administrators can create recurring invoices.")
            )
        partner.ensure_one()
        customer = partner.commercial_partner_id
        if customer.billing_mode != "postpaid":
            raise UserError(
                self.env._(
                    "Create Recurring Invoice: %(partner)s is not billed postpaid.",
                    partner=customer.display_name,
                )
            )
        existing = self.search(
            [("partner_id", "=", customer.id), ("company_id", "=", self.env.company.id)]
        )
        if existing:
            raise UserError(
                self.env._(
                    "Create Recurring Invoice: %(partner)s already has the recurring "
                    "invoice %(name)s in %(company)s.",
                    partner=customer.display_name,
                    name=existing.name,
                    company=self.env.company.name,
                )
            )
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "prepaid_postpaid_billing.billing_recurring_action"
        )
        action.update(
            {
                "view_mode": "form",
                "views": [
                    (
                        self.env.ref(
                            "prepaid_postpaid_billing.billing_recurring_view_form"
                        ).id,
                        "form",
                    )
                ],
                "target": "current",
                "context": {
                    "default_partner_id": customer.id,
                    "default_company_id": self.env.company.id,
                },
            }
        )
        return action

    @api.model
    def _billing_pending_usage(self, partners):
        """Pending usage records of ``partners`` (commercial partners), in one
        grouped query: {(partner id, company id): count}."""
        groups = self.env["billing.charge"]._read_group(
            [("state", "=", "pending"), ("partner_id", "in", partners.ids)],
            groupby=["partner_id", "company_id"],
            aggregates=["__count"],
        )
        return {(partner.id, company.id): count for partner, company, count in groups}

    def _billing_label(self):
        """Name of this schedule in messages, with its company when that is not
        the current company."""
        self.ensure_one()
        if self.company_id == self.env.company:
            return self.name
        return self.env._(
            "%(name)s (%(company)s)", name=self.name, company=self.company_id.name
        )

    @api.model
    def _billing_mode_change_plan(self, partner, mode):
        """What switching the customer ``partner`` to billing ``mode`` does to its
        schedules of the companies ``self`` reads:

        - ``stop``: (prepaid) running schedules that stop at once, as no usage of
          their customer is pending in their company;
        - ``wait``: (prepaid) running schedules that keep running until that
          usage is invoiced;
        - ``resume``: (postpaid) schedules that no longer stop once it is;
        - ``running``: (postpaid) other running schedules;
        - ``idle``: stopped schedules;
        - ``pending``: {company id: pending usage records};
        - ``unscheduled``: (prepaid) {company: count} of pending usage records
          that no running schedule invoices;
        - ``missing``: (postpaid) whether there is no schedule in the current
          company.
        """
        schedules = self.search([("partner_id", "=", partner.id)])
        running = schedules.filtered(lambda r: r.state == "running")
        pending = {
            company_id: count
            for (_partner_id, company_id), count in self._billing_pending_usage(
                partner
            ).items()
        }
        plan = {
            "stop": self.browse(),
            "wait": self.browse(),
            "resume": self.browse(),
            "running": self.browse(),
            "idle": schedules - running,
            "pending": pending,
            "unscheduled": {},
            "missing": False,
        }
        if mode == "prepaid":
            plan["wait"] = running.filtered(lambda r: pending.get(r.company_id.id))
            plan["stop"] = running - plan["wait"]
            covered = set(plan["wait"].company_id.ids)
            plan["unscheduled"] = {
                self.env["res.company"].browse(company_id): count
                for company_id, count in pending.items()
                if company_id not in covered
            }
        else:
            plan["resume"] = running.filtered("stop_when_invoiced")
            plan["running"] = running - plan["resume"]
            plan["missing"] = self.env.company not in schedules.company_id
        return plan

    @api.model
    def _billing_mode_change_lines(self, partner, mode, plan):
        """Sentences saying what switching ``partner`` to ``mode`` does, by
        ``plan`` (see ``_billing_mode_change_plan``)."""
        _ = self.env._
        company = self.env.company
        balance = company.currency_id.format(partner.billing_balance)
        lines = []
        if mode == "prepaid":
            for recurring in plan["stop"]:
                lines.append(
                    _(
                        "Recurring invoice %(name)s stops at once: no usage is "
                        "pending.",
                        name=recurring._billing_label(),
                    )
                )
            for recurring in plan["wait"]:
                lines.append(
                    _(
                        "Recurring invoice %(name)s keeps running until its "
                        "%(count)s pending usage records are invoiced, from its next "
                        "invoice date %(date)s, then stops.",
                        name=recurring._billing_label(),
                        count=plan["pending"][recurring.company_id.id],
                        date=format_date(self.env, recurring.next_date),
                    )
                )
            for other, count in plan["unscheduled"].items():
                if other == company:
                    lines.append(
                        _(
                            "%(count)s pending usage records stay pending: no "
                            "recurring invoice is running to invoice them.",
                            count=count,
                        )
                    )
                else:
                    lines.append(
                        _(
                            "%(count)s pending usage records of %(company)s stay "
                            "pending: no recurring invoice is running there to "
                            "invoice them.",
                            count=count,
                            company=other.name,
                        )
                    )
            if not (plan["stop"] or plan["wait"] or plan["unscheduled"]):
                lines.append(_("No recurring invoice is running."))
            lines.append(
                _(
                    "New usage is paid from the wallet at once (balance "
                    "%(balance)s); usage the balance cannot cover is refused.",
                    balance=balance,
                )
            )
            return lines
        lines.append(
            _(
                "The wallet balance of %(balance)s stays usable to pay invoices "
                "with Pay from Wallet.",
                balance=balance,
            )
        )
        if company.billing_wallet_allow_payments:
            lines.append(
                _(
                    "Invoices are paid from the wallet automatically when they are "
                    "posted, while its balance covers them."
                )
            )
        for recurring in plan["resume"]:
            lines.append(
                _(
                    "Recurring invoice %(name)s keeps running and no longer stops "
                    "once its pending usage is invoiced.",
                    name=recurring._billing_label(),
                )
            )
        for recurring in plan["running"]:
            lines.append(
                _(
                    "Recurring invoice %(name)s keeps running.",
                    name=recurring._billing_label(),
                )
            )
        for recurring in plan["idle"]:
            lines.append(
                _(
                    "Recurring invoice %(name)s is stopped: start it to invoice the "
                    "usage; until then, usage stays pending.",
                    name=recurring._billing_label(),
                )
            )
        if plan["missing"]:
            lines.append(
                _(
                    "No recurring invoice exists yet: create one with Create "
                    "Recurring Invoice on the Billing tab; until then, usage stays "
                    "pending."
                )
            )
        return lines

    @api.model
    def _billing_mode_label(self, mode):
        field = self.env["res.partner"]._fields["billing_mode"]
        return dict(field._description_selection(self.env))[mode]

    @api.model
    def _billing_mode_change_warning(self, partner, mode):
        """The warning of the customer form when the billing mode of the saved
        customer ``partner`` is changed to ``mode``: what saving will do."""
        lines = self._billing_mode_change_lines(
            partner, mode, self._billing_mode_change_plan(partner, mode)
        )
        return {
            "warning": {
                # A dialog, not a passing notification: it keeps the lines apart.
                "type": "dialog",
                "title": self.env._(
                    "Switching %(partner)s to %(mode)s billing",
                    partner=partner.display_name,
                    mode=self._billing_mode_label(mode),
                ),
                "message": "\n".join(
                    [self.env._("When you save:"), *(f"- {line}" for line in lines)]
                ),
            }
        }

    @api.model
    def _billing_apply_mode_change(self, partners):
        """Follow the billing mode just given to the customers ``partners``: to
        prepaid, their running schedules stop at once, or once the usage pending
        now is invoiced; to postpaid, they keep running. Say so in the chatter of
        the customers and of their schedules. Called by ``res.partner.write``
        once the user was checked to be allowed to change billing profiles."""
        # sudo: the caller checked the user may change these customers' billing
        # profile; a customer's billing mode holds in every company, so do its
        # schedules of every company follow it.
        Recurring = self.sudo()
        for partner in partners:
            mode = partner.billing_mode
            plan = Recurring._billing_mode_change_plan(partner, mode)
            plan["stop"].write({"state": "stopped"})
            plan["wait"].write({"stop_when_invoiced": True})
            plan["resume"].write({"stop_when_invoiced": False})
            for recurring in plan["stop"]:
                recurring.message_post(
                    body=self.env._(
                        "Stopped: %(partner)s is billed prepaid now and no usage is "
                        "pending.",
                        partner=partner.display_name,
                    )
                )
            for recurring in plan["wait"]:
                recurring.message_post(
                    body=self.env._(
                        "%(partner)s is billed prepaid now: this recurring invoice "
                        "keeps running until its %(count)s pending usage records are "
                        "invoiced, then stops.",
                        partner=partner.display_name,
                        count=plan["pending"][recurring.company_id.id],
                    )
                )
            for recurring in plan["resume"]:
                recurring.message_post(
                    body=self.env._(
                        "%(partner)s is billed postpaid again: this recurring "
                        "invoice keeps running.",
                        partner=partner.display_name,
                    )
                )
            lines = Recurring._billing_mode_change_lines(partner, mode, plan)
            partner.message_post(
                body=Markup("<p>%s</p><ul>%s</ul>")
                % (
                    self.env._(
                        "Switched to %(mode)s billing:",
                        mode=self._billing_mode_label(mode),
                    ),
                    Markup().join(Markup("<li>%s</li>") % line for line in lines),
                )
            )

    def _billing_stop_when_invoiced(self):
        """Stop those of these schedules that wait for the usage pending when
        their customer was switched to prepaid and have none left; say so in the
        chatter of the schedule and of the customer. Returns them."""
        waiting = self.filtered("stop_when_invoiced")
        if not waiting:
            return waiting
        pending = self._billing_pending_usage(waiting.partner_id.commercial_partner_id)
        done = waiting.filtered(
            lambda r: (
                not pending.get(
                    (r.partner_id.commercial_partner_id.id, r.company_id.id)
                )
            )
        )
        done.write({"state": "stopped", "stop_when_invoiced": False})
        for recurring in done:
            recurring.message_post(
                body=self.env._(
                    "Stopped: the usage pending when %(partner)s was switched to "
                    "prepaid billing is invoiced.",
                    partner=recurring.partner_id.display_name,
                )
            )
            recurring.partner_id.message_post(
                body=self.env._(
                    "Recurring invoice %(name)s stopped: the usage pending when the "
                    "customer was switched to prepaid billing is invoiced.",
                    name=recurring._billing_label(),
                )
            )
        return done

    @api.model
    def _cron_billing_recurring(self, batch_size=200):
        """Scheduled action: invoice every running schedule whose date has come
        (with OCA queue_job installed: in queue jobs, see billing_queue.py)."""
        Run = self.env["billing.run"]
        if Run._billing_queue_active():
            return Run._billing_queue_start("recurring", batch_size)
        return self._billing_run(
            trigger="cron", batch_size=batch_size, auto_commit=True
        )

    @api.model
    def _billing_run(
        self,
        trigger="manual",
        batch_size=200,
        auto_commit=False,
        today=None,
        companies=None,
    ):
        """Invoice the due schedules of ``companies`` (by default every company)
        in batches, each company's recorded in a ``billing.run``. With
        ``auto_commit`` (the cron), each batch is committed on its own, so that a
        run killed half-way keeps what it finished and the next run completes the
        rest."""
        today = today or fields.Date.context_today(self)
        # sudo: the run record is the log of this run, written whoever started it.
        Run = self.env["billing.run"].sudo()
        runs = Run
        # A run killed before its end is still "running": close it, as it was.
        Run._close_interrupted()
        domain = [("state", "=", "running"), ("next_date", "<=", today)]
        if companies is not None:
            domain.append(("company_id", "in", companies.ids))
        due_companies = self.search(domain).company_id
        if not due_companies and trigger == "manual":
            due_companies = self.env.company  # record that there was nothing to do
        for company in due_companies:
            run = Run.create({"trigger": trigger, "company_id": company.id})
            runs |= run
            run._work(
                lambda company=company, run=run: self.with_company(
                    company
                )._billing_run_company(run, today, batch_size, auto_commit),
                auto_commit,
            )
        return runs

    def _billing_run_company(self, run, today, batch_size, auto_commit):
        company = self.env.company
        failed_ids = []
        totals = defaultdict(int)
        while True:
            # Another run at work on the same schedules may have committed a
            # batch this transaction still sees due (see _select_batch).
            ids = run._select_batch(
                lambda: self._billing_select_batch(today, failed_ids, batch_size),
                auto_commit,
                "Billing run %s stops: another run is invoicing",
            )
            if not ids:
                break
            batch = self.browse(ids)
            stats, failures = batch._billing_process_batch(today)
            for key, value in stats.items():
                totals[key] += value
            failed_ids.extend(recurring.id for recurring, _error in failures)
            run.write(
                {
                    "invoice_count": totals["invoices"],
                    "charge_count": totals["charges"],
                    "skipped_count": totals["skipped"],
                    "failure_ids": [
                        fields.Command.create(
                            {
                                "recurring_id": recurring.id,
                                "partner_id": recurring.partner_id.id,
                                "error": error,
                            }
                        )
                        for recurring, error in failures
                    ],
                }
            )
            remaining = self.search_count(
                [
                    ("state", "=", "running"),
                    ("company_id", "=", company.id),
                    ("next_date", "<=", today),
                    ("id", "not in", failed_ids),
                ]
            )
            self.env["ir.cron"]._notify_progress(
                done=totals["schedules"], remaining=remaining
            )
            if auto_commit:
                self.env.cr.commit()  # pylint: disable=invalid-commit  # batch boundary
                # Memory stays that of one batch, however many customers.
                self.env.invalidate_all()
                run._lock()  # the commit released it: this run is still alive

    def _billing_select_batch(self, today, failed_ids, limit):
        """Ids of the next batch of due schedules of the current company,
        locked, skipping those another run holds (it invoices them) and those
        of ``failed_ids``. Raises a serialization failure when some of them
        were invoiced by another run since this transaction began."""
        self.env.cr.execute(
            SQL(
                """
                SELECT id FROM billing_recurring
                 WHERE state = 'running' AND company_id = %(company)s
                   AND next_date <= %(today)s AND id != ALL(%(failed)s)
              ORDER BY next_date, id
                 LIMIT %(limit)s
                   FOR UPDATE SKIP LOCKED
                """,
                company=self.env.company.id,
                today=today,
                failed=failed_ids,
                limit=limit,
            ),
            log_exceptions=False,
        )
        return [row[0] for row in self.env.cr.fetchall()]

    def _billing_process_batch(self, today):
        """Invoice these schedules; on an error, again one customer at a time, each
        in its own savepoint, so that a failing customer does not stop the others.
        Returns (stats, [(schedule, error)])."""
        try:
            with self.env.cr.savepoint():
                return self._billing_invoice_due(today), []
        except (UserError, ValidationError, AccessError, ValueError) as error:
            _logger.info("Billing batch failed (%s); retrying one by one", error)
        stats = defaultdict(int)
        failures = []
        for recurring in self:
            try:
                with self.env.cr.savepoint():
                    for key, value in recurring._billing_invoice_due(today).items():
                        stats[key] += value
            except (UserError, ValidationError, AccessError, ValueError) as error:
                _logger.warning(
                    "Recurring invoice %s of %s failed: %s",
                    recurring.id,
                    recurring.partner_id.display_name,
                    error,
                )
                failures.append((recurring, str(error)))
        return stats, failures

    def _billing_due_periods(self, today):
        """Periods of these schedules whose invoice date has come, oldest first,
        and the next invoice date of each schedule after them. The periods tile:
        each starts the day after the previous one ended (its invoice date), the
        first where the last run left off (``period_start``)."""
        periods, next_dates = [], {}
        for recurring in self:
            invoice_date = recurring.next_date
            start = recurring.period_start
            if not start or start >= invoice_date:
                start = recurring._period_start(invoice_date)
            first = True
            while invoice_date <= today:
                periods.append(
                    {
                        "recurring": recurring,
                        "start": start,
                        "end": invoice_date - timedelta(days=1),
                        "invoice_date": invoice_date,
                        # The first period also takes the customer's late charges.
                        "first": first,
                    }
                )
                first = False
                start = invoice_date
                invoice_date = recurring._next_invoice_date(invoice_date)
            next_dates[recurring.id] = invoice_date
        return periods, next_dates

    def _billing_invoice_due(self, today):
        """Create the invoices of the due periods of these schedules: one grouped
        query for their pending charges, one precomputed ``create`` for the
        invoices (see ``_billing_create_invoices``), one set-based ``UPDATE`` to
        link the charges and one to advance the schedules."""
        # The queries of a batch are many short ones on a few thousand rows
        # (the charges' UPDATE, account.move's payment state query), whose cost
        # estimates on large tables pass PostgreSQL's jit_above_cost: compiling
        # them took longer than running them (a third of a batch measured).
        # SET LOCAL: for this transaction only, the results are the same.
        self.env.cr.execute("SET LOCAL jit = off")
        stats = defaultdict(int)
        stats["schedules"] = len(self)
        periods, next_dates = self._billing_due_periods(today)
        to_invoice = []
        for period in periods:
            if period[
                "recurring"
            ].partner_id.commercial_partner_id.billing_invoice_enabled:
                to_invoice.append(period)
            else:
                stats["skipped"] += 1
        groups = self._billing_charge_groups(to_invoice)
        defaults = self._billing_invoice_defaults()
        vals_list, links, invoiced_periods = [], [], []
        for index, period in enumerate(to_invoice):
            period_groups = groups.get(index, [])
            vals, line_charges = self._billing_prepare_invoice_vals(
                period, period_groups, defaults
            )
            if vals is None:
                stats["skipped"] += 1
                continue
            vals_list.append(vals)
            # One usage line per group, in the order of the groups.
            links.append(
                [
                    (position, group)
                    for (position, _key), group in zip(
                        line_charges, period_groups, strict=True
                    )
                ]
            )
            invoiced_periods.append(period)
        invoices = self._billing_create_invoices(vals_list)
        charge_links = []
        for invoice, line_groups, period in zip(
            invoices, links, invoiced_periods, strict=True
        ):
            lines = invoice.invoice_line_ids.sorted("id")
            for position, group in line_groups:
                charge_links.append((lines[position].id, period, group))
        charge_count = self._billing_link_charges(charge_links)
        # The next period starts where the last one due ended: its invoice date.
        period_starts = {p["recurring"].id: p["invoice_date"] for p in periods}
        self.env.cr.execute(
            SQL(
                """
                UPDATE billing_recurring r
                   SET next_date = v.next_date,
                       period_start = COALESCE(v.period_start, r.period_start),
                       write_uid = %(uid)s, write_date = NOW() AT TIME ZONE 'UTC'
                  FROM unnest(%(ids)s::int4[], %(dates)s::date[], %(starts)s::date[])
                       AS v(id, next_date, period_start)
                 WHERE r.id = v.id
                """,
                uid=self.env.uid,
                ids=list(next_dates),
                dates=list(next_dates.values()),
                starts=[period_starts.get(id_) for id_ in next_dates],
            )
        )
        self.invalidate_recordset(["next_date", "period_start"])
        to_confirm = invoices.filtered(
            lambda move: move.billing_recurring_id.generation_mode == "confirm"
        )
        if to_confirm:
            self._billing_post_invoices(to_confirm)
            to_confirm._billing_send_recurring_invoices()
        stats["stopped"] += len(self._billing_stop_when_invoiced())
        stats["invoices"] += len(invoices)
        stats["charges"] += charge_count
        return stats

    def _billing_charge_groups(self, periods):
        """Pending charges of each period summed per product and unit price,
        each renewal of a service and period on its own: {period index:
        [(product_id, price_unit, quantity, amount, (count, service_id,
        service_period_start)[, renewal label])]}; the key in fifth place
        tells ``_billing_link_charges`` which charges the group's line bills,
        without carrying their ids."""
        if not periods:
            return {}
        self.env["billing.charge"].flush_model()
        self.env.cr.execute(
            SQL(
                """
                SELECT p.idx, c.product_id, c.price_unit, SUM(c.quantity),
                       SUM(c.amount), COUNT(*), c.service_id,
                       c.service_period_start
                  FROM unnest(%(idx)s::int4[], %(partners)s::int4[],
                              %(starts)s::timestamp[], %(ends)s::timestamp[])
                       AS p(idx, partner_id, date_start, date_end)
                  JOIN billing_charge c
                    ON c.partner_id = p.partner_id
                   AND c.state = 'pending'
                   AND c.company_id = %(company)s
                   AND c.date < p.date_end
                   AND (p.date_start IS NULL OR c.date >= p.date_start)
              GROUP BY p.idx, c.product_id, c.price_unit, c.service_id,
                       c.service_period_start
              ORDER BY p.idx, c.product_id, c.price_unit DESC, c.service_id,
                       c.service_period_start
                """,
                idx=list(range(len(periods))),
                partners=[
                    p["recurring"].partner_id.commercial_partner_id.id for p in periods
                ],
                starts=[
                    None if p["first"] else datetime.combine(p["start"], time.min)
                    for p in periods
                ],
                ends=[datetime.combine(p["invoice_date"], time.min) for p in periods],
                company=self.env.company.id,
            )
        )
        rows = [
            (*row[:5], (count, service_id, start), service_id, start)
            for *row, count, service_id, start in self.env.cr.fetchall()
        ]
        groups = defaultdict(list)
        for idx, *group in self.env["billing.charge"]._service_groups(rows):
            groups[idx].append(tuple(group))
        return groups

    def _billing_invoice_defaults(self):
        """Values common to the invoices of a batch, looked up once per batch so
        that the queries of a run do not grow with its invoices: the sales journal,
        the draft name (numbers are given when invoices are posted) and, when the
        company has no analytic distribution model, no distribution; the terms
        and customer notes of the Billing settings."""
        Journal = self.env["account.journal"]
        journal = Journal.search(
            [
                *Journal._check_company_domain(self.env.company),
                ("type", "=", "sale"),
                ("billing_reseller_id", "=", False),
            ],
            limit=1,
        )
        if not journal:
            raise UserError(
                self.env._(
                    "Company %(company)s has no sales journal for its recurring "
                    "invoices.",
                    company=self.env.company.name,
                )
            )
        defaults = {"move": {"journal_id": journal.id, "name": "/"}, "line": {}}
        defaults["move"].update(self.env.company._billing_invoice_text_vals())
        Model = self.env["account.analytic.distribution.model"]
        if not Model.search_count(
            Model._check_company_domain(self.env.company), limit=1
        ):
            defaults["line"]["analytic_distribution"] = False
        return defaults

    def _billing_prepare_invoice_vals(self, period, groups, defaults=None):
        """Values of the invoice of ``period`` and, per usage line position, the
        charges it bills; ``(None, [])`` when there is nothing to invoice."""
        recurring = period["recurring"]
        currency = recurring.currency_id
        period_label = self.env._(
            "%(start)s to %(end)s",
            start=fields.Date.to_string(period["start"]),
            end=fields.Date.to_string(period["end"]),
        )
        allowances = {a.product_id.id: a.quantity for a in recurring.allowance_ids}
        lines, line_charges = self.env["billing.charge"]._prepare_usage_line_vals(
            groups, currency, period_label, allowances
        )
        for fixed in recurring.line_ids:
            lines.append(
                {
                    "product_id": fixed.product_id.id,
                    "name": f"{fixed.name or fixed.product_id.display_name} "
                    f"({period_label})",
                    "quantity": fixed.quantity,
                    "price_unit": fixed.price_unit,
                }
            )
        if not groups and currency.is_zero(
            sum(line["quantity"] * line["price_unit"] for line in lines)
        ):
            return None, []
        defaults = defaults or {"move": {}, "line": {}}
        partner = recurring.partner_id
        # A reseller's customer is invoiced in the reseller's journal.
        reseller_journal = partner._billing_invoice_journal(recurring.company_id)
        journal = reseller_journal or self.env["account.journal"].browse(
            defaults["move"].get("journal_id")
        )
        if journal.currency_id and journal.currency_id != currency:
            # Usage is priced and summed in the company currency: an invoice in
            # another currency would bill those amounts as if they were its own.
            raise UserError(
                self.env._(
                    "Recurring invoice %(name)s: its journal %(journal)s invoices in "
                    "%(currency)s, and recurring invoices bill in the company "
                    "currency %(company_currency)s only. Invoice %(partner)s in a "
                    "journal in %(company_currency)s.",
                    name=recurring.name,
                    journal=journal.display_name,
                    currency=journal.currency_id.name,
                    company_currency=currency.name,
                    partner=partner.display_name,
                )
            )
        vals = {
            **defaults["move"],
            **({"journal_id": reseller_journal.id} if reseller_journal else {}),
            "move_type": "out_invoice",
            "partner_id": partner.id,
            "company_id": recurring.company_id.id,
            "invoice_date": period["invoice_date"],
            "billing_recurring_id": recurring.id,
            "billing_period_start": period["start"],
            "billing_period_end": period["end"],
            "invoice_origin": recurring.name,
            "invoice_line_ids": [
                fields.Command.create(
                    {**defaults["line"], **line, "sequence": 10 + position}
                )
                for position, line in enumerate(lines)
            ],
        }
        return vals, line_charges
