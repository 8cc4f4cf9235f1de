from datetime import date

from dateutil.relativedelta import relativedelta

from odoo import api, fields, models
from odoo.exceptions import AccessError, UserError
from odoo.osv import expression

from .account_move import OPEN_STATES, PAID_STATES

PERIODS = ("this_month", "last_month", "this_year", "custom")
PAYMENT_METHODS = ("bank", "online", "wallet")
# The action a figure opens, by the model it counts: the billing lists.
FIGURE_ACTIONS = {
    "account.move": "prepaid_postpaid_billing.account_move_action_billing",
    "account.payment": "prepaid_postpaid_billing.account_payment_action_billing",
    "account.move.line": "account.action_account_moves_all",
}
SUMMARY_LIMIT = 5
FAILURE_LIMIT = 3


class BillingDashboard(models.AbstractModel):
    """The figures of the Billing dashboard, the home of the Billing app.

    Every figure comes from grouped queries over a domain that the matching tile
    opens (``action_open``), so that a figure and the list it opens always agree,
    and the dashboard costs the same number of queries whatever the volume."""

    _name = "billing.dashboard"
    _description = "Billing Dashboard"

    # -------------------------------------------------------------------------
    # PUBLIC METHODS (called by the dashboard client action)
    # -------------------------------------------------------------------------

    @api.model
    def get_dashboard_data(self, filters=None):
        """Everything the dashboard shows, for ``filters`` (see
        ``_resolve_filters``), as plain JSON-safe data."""
        self._check_dashboard_access()
        scope = self._resolve_filters(filters)
        due = self._due_figures(scope)
        tiles = self._tiles(scope, due)
        payment_tile = next(tile for tile in tiles if tile["key"] == "payments")
        return {
            "filters": self._filters_values(scope),
            "options": self._filter_options(scope),
            "currency_id": scope["company"].currency_id.id,
            "is_manager": self.env.user.has_group(
                "prepaid_postpaid_billing.group_billing_manager"
            ),
            "tiles": tiles,
            "invoices": {
                "latest": self._latest_invoices(scope),
                "due": due,
            },
            "recurring": self._recurring_summary(scope),
            "payments": {
                "latest": self._latest_payments(scope),
                "by_method": payment_tile["subs"],
            },
        }

    @api.model
    def action_open(self, key, filters=None):
        """The window action listing exactly the records the figure ``key``
        counts, for ``filters``; or, for a ``page_*`` key, the page itself."""
        self._check_dashboard_access()
        scope = self._resolve_filters(filters)
        pages = {
            "page_invoices": "prepaid_postpaid_billing.account_move_action_billing",
            "page_recurring": "prepaid_postpaid_billing.billing_recurring_action",
            "page_payments": "prepaid_postpaid_billing.account_payment_action_billing",
        }
        figures = self._figure_domains(scope)
        if not isinstance(key, str) or not (
            key in pages or key in figures or key == "last_run"
        ):
            raise UserError(
                self.env._(
                    "The Billing dashboard has no figure %(key)s.", key=repr(key)
                )
            )
        if key in pages:
            return self.env["ir.actions.act_window"]._for_xml_id(pages[key])
        if key == "last_run":
            return self._last_run_action(scope)
        model, domain, label = figures[key]
        action = self.env["ir.actions.act_window"]._for_xml_id(
            self._figure_action_xmlid(model)
        )
        action.update(
            {
                "name": label,
                "display_name": label,
                "domain": domain,
                "context": {"create": False},
                "target": "current",
            }
        )
        return action

    # -------------------------------------------------------------------------
    # FILTERS
    # -------------------------------------------------------------------------

    def _check_dashboard_access(self):
        if not self.env.user.has_group("prepaid_postpaid_billing.group_billing_user"):
            raise AccessError(
                self.env._("Only Billing Users can open the Billing dashboard.")
            )

    @api.model
    def _period_labels(self):
        return {
            "this_month": self.env._("This Month"),
            "last_month": self.env._("Last Month"),
            "this_year": self.env._("This Year"),
            "custom": self.env._("Custom"),
        }

    @api.model
    def _resolve_filters(self, filters):
        """Validate ``filters`` and resolve them into a scope: ``period``,
        ``date_from`` and ``date_to`` (dates), ``company`` (one of the user's
        active companies) and ``reseller`` (a reseller partner, or empty)."""
        filters = filters or {}
        if not isinstance(filters, dict):
            raise UserError(self.env._("The dashboard filters must be a dictionary."))
        period = filters.get("period") or "this_month"
        if period not in PERIODS:
            raise UserError(
                self.env._(
                    "The dashboard has no period %(period)s.", period=repr(period)
                )
            )
        company = self.env.company
        if filters.get("company_id"):
            company_id = filters["company_id"]
            # Only the companies the user works in now: the lists the tiles open
            # show the records of those companies only.
            if (
                not isinstance(company_id, int)
                or company_id not in self.env.companies.ids
            ):
                raise AccessError(
                    self.env._(
                        "The Billing dashboard shows the companies you work in "
                        "only; company %(company)s is not one of them.",
                        company=company_id,
                    )
                )
            company = self.env["res.company"].browse(company_id)
        reseller = self.env["res.partner"]
        if filters.get("reseller_id"):
            reseller_id = filters["reseller_id"]
            if not isinstance(reseller_id, int):
                raise UserError(
                    self.env._(
                        "Reseller: %(value)s is not a reseller.",
                        value=repr(reseller_id),
                    )
                )
            reseller = reseller.browse(reseller_id).exists()
            if not reseller or not reseller.is_billing_reseller:
                raise UserError(
                    self.env._(
                        "Reseller: partner %(value)s is not a reseller.",
                        value=reseller_id,
                    )
                )
        date_from, date_to = self._period_dates(period, filters)
        return {
            "period": period,
            "date_from": date_from,
            "date_to": date_to,
            "company": company,
            "reseller": reseller,
        }

    @api.model
    def _period_dates(self, period, filters):
        today = fields.Date.context_today(self)
        if period == "this_month":
            start = today.replace(day=1)
            return start, start + relativedelta(months=1, days=-1)
        if period == "last_month":
            start = today.replace(day=1) - relativedelta(months=1)
            return start, start + relativedelta(months=1, days=-1)
        if period == "this_year":
            return date(today.year, 1, 1), date(today.year, 12, 31)
        dates = []
        for name, label in (
            ("date_from", self.env._("From")),
            ("date_to", self.env._("To")),
        ):
            try:
                dates.append(fields.Date.to_date(filters.get(name)))
            except (TypeError, ValueError):
                dates.append(None)
            if not dates[-1]:
                raise UserError(
                    self.env._(
                        "A custom period needs a %(field)s date (YYYY-MM-DD); got "
                        "%(value)s.",
                        field=label,
                        value=repr(filters.get(name)),
                    )
                )
        if dates[0] > dates[1]:
            raise UserError(
                self.env._(
                    "The period starts on %(start)s, after its end on %(end)s.",
                    start=dates[0],
                    end=dates[1],
                )
            )
        return dates[0], dates[1]

    def _filters_values(self, scope):
        return {
            "period": scope["period"],
            "date_from": fields.Date.to_string(scope["date_from"]),
            "date_to": fields.Date.to_string(scope["date_to"]),
            "company_id": scope["company"].id,
            "reseller_id": scope["reseller"].id or False,
        }

    def _filter_options(self, scope):
        resellers = self.env["res.partner"].search_fetch(
            [
                ("is_billing_reseller", "=", True),
                ("company_id", "in", [False, scope["company"].id]),
            ],
            ["display_name"],
            order="name, id",
        )
        return {
            "periods": list(self._period_labels().items()),
            "companies": [[company.id, company.name] for company in self.env.companies],
            "resellers": [[partner.id, partner.display_name] for partner in resellers],
        }

    # -------------------------------------------------------------------------
    # DOMAINS
    # -------------------------------------------------------------------------

    def _invoice_domain(self, scope):
        """The customer invoices of the period: wallet top-ups are not invoices
        of revenue (their money is the wallet's credit), cancelled invoices are
        not counted. A customer invoice's accounting date is its invoice date,
        and for a draft without one the day it was made."""
        domain = [
            ("move_type", "=", "out_invoice"),
            ("billing_is_topup", "=", False),
            ("state", "in", ("draft", "posted")),
            ("company_id", "=", scope["company"].id),
            ("date", ">=", scope["date_from"]),
            ("date", "<=", scope["date_to"]),
        ]
        if scope["reseller"]:
            domain.append(("billing_reseller_id", "=", scope["reseller"].id))
        return domain

    def _partner_reseller_domain(self, scope):
        """Records of a partner whose customer is of the reseller of the filter."""
        if not scope["reseller"]:
            return []
        return [
            (
                "partner_id.commercial_partner_id.billing_reseller_id",
                "=",
                scope["reseller"].id,
            )
        ]

    def _payment_domain(self, scope):
        domain = [
            ("partner_type", "=", "customer"),
            ("payment_type", "=", "inbound"),
            ("state", "in", ("in_process", "paid")),
            ("company_id", "=", scope["company"].id),
            ("date", ">=", scope["date_from"]),
            ("date", "<=", scope["date_to"]),
        ]
        return domain + self._partner_reseller_domain(scope)

    def _wallet_domain(self, scope):
        """The wallet account's journal items up to the end of the period: their
        balance is the credit the customers hold (a liability)."""
        domain = [
            ("account_id", "=", scope["company"].billing_wallet_account_id.id),
            ("parent_state", "=", "posted"),
            ("company_id", "=", scope["company"].id),
            ("date", "<=", scope["date_to"]),
        ]
        return domain + self._partner_reseller_domain(scope)

    def _figure_domains(self, scope):
        """Every figure of the dashboard: key -> (model, domain, label)."""
        invoices = self._invoice_domain(scope)
        posted = [*invoices, ("state", "=", "posted")]
        payments = self._payment_domain(scope)
        move, payment = "account.move", "account.payment"
        method_labels = self._payment_method_labels()
        figures = {
            "total": (move, invoices, self.env._("Invoices")),
            "posted": (move, posted, self.env._("Approved Invoices")),
            "draft": (
                move,
                [*invoices, ("state", "=", "draft")],
                self.env._("Invoices Not Approved"),
            ),
            "paid": (
                move,
                [*posted, ("payment_state", "in", PAID_STATES)],
                self.env._("Paid Invoices"),
            ),
            "unsettled": (
                move,
                [*posted, ("payment_state", "in", OPEN_STATES)],
                self.env._("Unsettled Invoices"),
            ),
            "unpaid": (
                move,
                [*posted, ("payment_state", "=", "not_paid")],
                self.env._("Unpaid Invoices"),
            ),
            "partial": (
                move,
                [*posted, ("payment_state", "=", "partial")],
                self.env._("Partially Paid Invoices"),
            ),
            "wallet": (
                "account.move.line",
                self._wallet_domain(scope),
                self.env._("Wallet Credit Held"),
            ),
            "payments": (payment, payments, self.env._("Payments Received")),
        }
        for status, label in self._due_labels().items():
            figures[status] = (
                move,
                [*invoices, ("billing_due_status", "=", status)],
                self.env._("Invoices %(status)s", status=label),
            )
        for method in PAYMENT_METHODS:
            figures[f"payments_{method}"] = (
                payment,
                [*payments, ("billing_payment_method", "=", method)],
                self.env._(
                    "Payments Received: %(method)s", method=method_labels[method]
                ),
            )
        return figures

    @api.model
    def _figure_action_xmlid(self, model):
        return FIGURE_ACTIONS[model]

    # -------------------------------------------------------------------------
    # FIGURES
    # -------------------------------------------------------------------------

    def _tiles(self, scope, due):
        """The tiles, from the figures of the invoices, of ``due`` (those of
        ``_due_figures``), of the wallet and of the payments."""
        figures = self._figure_domains(scope)
        invoices = self._invoice_figures(scope)
        overdue = next(values for values in due if values["key"] == "overdue")
        payments = self._payment_figures(scope)

        def figure(key, values):
            return {
                "key": key,
                "label": figures[key][2],
                "count": values["count"],
                "amount": values["amount"],
            }

        def tile(key, label, values, help_text, subs=()):
            return {
                **figure(key, values),
                "label": label,
                "help": help_text,
                "subs": list(subs),
            }

        return [
            tile(
                "total",
                self.env._("Invoices"),
                invoices["total"],
                self.env._(
                    "Customer invoices of the period, approved or not; wallet "
                    "top-ups and cancelled invoices are not counted."
                ),
                [
                    {
                        **figure("posted", invoices["posted"]),
                        "label": self.env._("Approved"),
                    },
                    {
                        **figure("draft", invoices["draft"]),
                        "label": self.env._("Not Approved"),
                    },
                ],
            ),
            tile(
                "paid",
                self.env._("Paid"),
                invoices["paid"],
                self.env._("Invoices of the period fully paid (or in payment)."),
            ),
            tile(
                "unsettled",
                self.env._("Unsettled"),
                invoices["unsettled"],
                self.env._(
                    "Approved invoices of the period still unpaid or partially "
                    "paid, with the amount they still owe."
                ),
                [
                    {
                        **figure("unpaid", invoices["unpaid"]),
                        "label": self.env._("Unpaid"),
                    },
                    {
                        **figure("partial", invoices["partial"]),
                        "label": self.env._("Partially Paid"),
                    },
                ],
            ),
            tile(
                "overdue",
                self.env._("Overdue"),
                overdue,
                self.env._(
                    "Approved invoices of the period past their due date, with the "
                    "amount they still owe."
                ),
            ),
            tile(
                "wallet",
                self.env._("Wallet Credit Held"),
                {"count": None, "amount": self._wallet_credit(scope)},
                self.env._(
                    "Prepaid credit the customers hold at the end of the period: the "
                    "balance of the Customer Wallet liability account."
                ),
            ),
            tile(
                "payments",
                self.env._("Payments Received"),
                payments["total"],
                self.env._("Customer payments received in the period, by method."),
                [
                    {
                        **figure(f"payments_{method}", payments[method]),
                        "label": self._payment_method_labels()[method],
                    }
                    for method in PAYMENT_METHODS
                ],
            ),
        ]

    def _labels(self, model, field):
        """{value: label} of the selection ``field`` of ``model``, translated."""
        return dict(self.env[model]._fields[field]._description_selection(self.env))

    def _payment_method_labels(self):
        return self._labels("account.payment", "billing_payment_method")

    def _invoice_figures(self, scope):
        """Counts and amounts of the invoices of the period by status, from one
        grouped query: amounts are totals, and what is still due for the
        unsettled ones."""
        groups = self.env["account.move"]._read_group(
            self._invoice_domain(scope),
            ["state", "payment_state"],
            ["__count", "amount_total_signed:sum", "amount_residual_signed:sum"],
        )
        figures = {
            key: {"count": 0, "amount": 0.0}
            for key in (
                "total",
                "posted",
                "draft",
                "paid",
                "unsettled",
                "unpaid",
                "partial",
            )
        }

        def add(key, count, amount):
            figures[key]["count"] += count
            figures[key]["amount"] += amount

        for state, payment_state, count, total, residual in groups:
            add("total", count, total)
            add(state, count, total)
            if state != "posted":
                continue
            if payment_state in PAID_STATES:
                add("paid", count, total)
            elif payment_state in OPEN_STATES:
                add("unsettled", count, residual)
                add(
                    "unpaid" if payment_state == "not_paid" else "partial",
                    count,
                    residual,
                )
        return self._round_figures(scope, figures)

    def _due_figures(self, scope):
        """Count and amount still due of the invoices of the period not due yet,
        due today and overdue: one grouped query each."""
        figures = self._figure_domains(scope)
        due = []
        for status in ("not_due", "due_today", "overdue"):
            [(count, residual)] = self.env["account.move"]._read_group(
                figures[status][1], [], ["__count", "amount_residual_signed:sum"]
            )
            due.append(
                {
                    "key": status,
                    "label": self._due_labels()[status],
                    "count": count,
                    "amount": scope["company"].currency_id.round(residual or 0.0),
                }
            )
        return due

    def _due_labels(self):
        return self._labels("account.move", "billing_due_status")

    def _payment_figures(self, scope):
        groups = self.env["account.payment"]._read_group(
            self._payment_domain(scope),
            ["billing_payment_method"],
            ["__count", "amount_company_currency_signed:sum"],
        )
        figures = {
            key: {"count": 0, "amount": 0.0} for key in ("total", *PAYMENT_METHODS)
        }
        for method, count, amount in groups:
            for key in ("total", method):
                figures[key]["count"] += count
                figures[key]["amount"] += amount
        return self._round_figures(scope, figures)

    def _wallet_credit(self, scope):
        if not scope["company"].billing_wallet_account_id:
            return 0.0
        [(balance,)] = self.env["account.move.line"]._read_group(
            self._wallet_domain(scope), [], ["balance:sum"]
        )
        # A liability: the credit held is the credit balance of the account.
        return scope["company"].currency_id.round(-(balance or 0.0))

    def _round_figures(self, scope, figures):
        currency = scope["company"].currency_id
        for values in figures.values():
            values["amount"] = currency.round(values["amount"])
        return figures

    # -------------------------------------------------------------------------
    # SUMMARIES
    # -------------------------------------------------------------------------

    def _latest_invoices(self, scope):
        Move = self.env["account.move"]
        invoices = Move.search_fetch(
            self._invoice_domain(scope),
            [
                "name",
                "partner_id",
                "date",
                "amount_total_signed",
                "amount_residual_signed",
                "state",
                "payment_state",
                "invoice_date_due",
            ],
            order="date desc, id desc",
            limit=SUMMARY_LIMIT,
        )
        states = self._labels("account.move", "state")
        payment_states = self._labels("account.move", "payment_state")
        due_labels = self._due_labels()
        return [
            {
                "id": invoice.id,
                "name": invoice.name
                if invoice.name and invoice.name != "/"
                else self.env._("Draft"),
                "partner": invoice.partner_id.display_name,
                "date": fields.Date.to_string(invoice.date),
                "amount_total": invoice.amount_total_signed,
                "amount_residual": invoice.amount_residual_signed,
                "state": invoice.state,
                "state_label": states[invoice.state],
                "payment_state": invoice.payment_state,
                "payment_state_label": payment_states.get(invoice.payment_state, ""),
                "due_status": invoice.billing_due_status,
                "due_status_label": due_labels.get(invoice.billing_due_status, ""),
            }
            for invoice in invoices
        ]

    def _latest_payments(self, scope):
        payments = self.env["account.payment"].search_fetch(
            self._payment_domain(scope),
            [
                "name",
                "partner_id",
                "date",
                "amount_company_currency_signed",
                "billing_payment_method",
            ],
            order="date desc, id desc",
            limit=SUMMARY_LIMIT,
        )
        labels = self._payment_method_labels()
        return [
            {
                "id": payment.id,
                "name": payment.name,
                "partner": payment.partner_id.display_name,
                "date": fields.Date.to_string(payment.date),
                "amount": payment.amount_company_currency_signed,
                "method": payment.billing_payment_method,
                "method_label": labels.get(payment.billing_payment_method, ""),
            }
            for payment in payments
        ]

    def _recurring_domain(self, scope):
        domain = [("company_id", "=", scope["company"].id)]
        if scope["reseller"]:
            domain.append(("partner_id.billing_reseller_id", "=", scope["reseller"].id))
        return domain

    def _recurring_summary(self, scope):
        Recurring = self.env["billing.recurring"]
        domain = self._recurring_domain(scope)
        counts = {"running": 0, "stopped": 0}
        next_date = False
        for state, count, first_date in Recurring._read_group(
            domain, ["state"], ["__count", "next_date:min"]
        ):
            counts[state] = count
            if state == "running":
                next_date = fields.Date.to_string(first_date)
        schedules = Recurring.search_fetch(
            domain,
            ["name", "partner_id", "next_date", "state"],
            order="state, next_date, id",
            limit=SUMMARY_LIMIT,
        )
        states = self._labels("billing.recurring", "state")
        return {
            **counts,
            "next_date": next_date,
            "schedules": [
                {
                    "id": schedule.id,
                    "name": schedule.name,
                    "partner": schedule.partner_id.display_name,
                    "next_date": fields.Date.to_string(schedule.next_date),
                    "state": schedule.state,
                    "state_label": states[schedule.state],
                }
                for schedule in schedules
            ],
            "last_run": self._last_run_values(scope),
        }

    def _last_run(self, scope):
        return self.env["billing.run"].search(
            [("company_id", "=", scope["company"].id), ("kind", "=", "recurring")],
            order="id desc",
            limit=1,
        )

    def _last_run_values(self, scope):
        run = self._last_run(scope)
        if not run:
            return False
        failures = self.env["billing.run.failure"].search_fetch(
            [("run_id", "=", run.id)], ["partner_id", "error"], limit=FAILURE_LIMIT
        )
        states = self._labels("billing.run", "state")
        return {
            "id": run.id,
            "name": run.name,
            "state": run.state,
            "state_label": states[run.state],
            "date_start": fields.Datetime.to_string(run.date_start),
            "invoice_count": run.invoice_count,
            "failure_count": run.failure_count,
            "failures": [
                {"partner": failure.partner_id.display_name, "error": failure.error}
                for failure in failures
            ],
        }

    def _last_run_action(self, scope):
        run = self._last_run(scope)
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "prepaid_postpaid_billing.billing_run_action"
        )
        if run:
            action.update(
                {"res_id": run.id, "view_mode": "form", "views": [(False, "form")]}
            )
        else:
            action["domain"] = expression.FALSE_DOMAIN
        return action
