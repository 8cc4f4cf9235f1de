import math
import uuid

from markupsafe import Markup

from odoo import Command, fields, http
from odoo.exceptions import UserError
from odoo.http import request
from odoo.osv import expression

from odoo.addons.account.controllers.portal import PortalAccount
from odoo.addons.portal.controllers.portal import pager as portal_pager

from ..models.account_move import OPEN_STATES
from .portal import format_portal_amount, is_record_id, portal_wallet
from .report import xlsx_response

RESELLER_GROUP = "prepaid_postpaid_billing.group_billing_reseller"
# Latest records of each kind a customer page lists.
CUSTOMER_PAGE_LIMIT = 50
# Invoices one reminder request may select.
MAX_REMINDERS = 200
# Session key of the result of the last reminders sent, shown once.
REMINDER_RESULT_KEY = "billing_reseller_reminders"
# Session key of the result of the last recharge, shown once.
RECHARGE_RESULT_KEY = "billing_reseller_recharge"


class BillingResellerPortal(PortalAccount):
    """The reseller portal: a reseller's customers, their wallets, usage and
    invoices, read as the reseller's portal user, so that the record rules of
    the Reseller group decide what it sees. Every route answers 404 to a user
    who is not a reseller, and to a record that is not one of its customers'."""

    # -------------------------------------------------------------------------
    # Portal home and the reseller's own invoices
    # -------------------------------------------------------------------------

    def _prepare_home_portal_values(self, counters):
        values = super()._prepare_home_portal_values(counters)
        reseller = self._billing_reseller()
        if "billing_customer_count" in counters:
            values["billing_customer_count"] = (
                request.env["res.partner"].search_count(
                    self._billing_customers_domain(reseller)
                )
                if reseller
                else 0
            )
        if "billing_customer_invoice_count" in counters:
            values["billing_customer_invoice_count"] = (
                request.env["account.move"].search_count(
                    self._billing_customer_invoices_domain(reseller)
                )
                if reseller
                else 0
            )
        return values

    def _get_invoices_domain(self, m_type=None):
        """/my/invoices of a reseller stays its own invoices: those of its
        customers, which it may read too, are under /my/customers/invoices."""
        domain = super()._get_invoices_domain(m_type)
        reseller = self._billing_reseller()
        if reseller:
            domain = expression.AND(
                [
                    domain,
                    [
                        "!",
                        ("commercial_partner_id.billing_reseller_id", "=", reseller.id),
                    ],
                ]
            )
        return domain

    # -------------------------------------------------------------------------
    # Helpers
    # -------------------------------------------------------------------------

    def _billing_reseller(self):
        """The reseller (commercial partner) of the current user, or an empty
        recordset when the user is not in the Reseller group."""
        user = request.env.user
        if user._is_public() or not user.has_group(RESELLER_GROUP):
            return request.env["res.partner"]
        return user.partner_id.commercial_partner_id

    def _billing_reseller_or_404(self):
        reseller = self._billing_reseller()
        if not reseller:
            raise request.not_found()
        return reseller

    def _billing_customer_or_404(self, reseller, partner_id):
        """The customer ``partner_id`` of ``reseller``, read as the user: a
        partner that is not one of its customers, or that it may not read, is
        not found."""
        if not is_record_id(partner_id):
            raise request.not_found()
        customer = request.env["res.partner"].search(
            [("id", "=", partner_id), *self._billing_customers_domain(reseller)],
            limit=1,
        )
        if not customer:
            raise request.not_found()
        return customer

    def _billing_recharge_values(self, customer):
        """Values of the recharge form of ``customer``'s page: the reseller's
        own balance, a new form key, and the result of the last recharge of
        this customer, shown once."""
        result = request.session.pop(RECHARGE_RESULT_KEY, None)
        if result and result.get("partner_id") != customer.id:
            result = None
        # The reseller is the user's commercial partner: its own wallet, read
        # as the user.
        wallet = portal_wallet()
        return {
            "recharge_balance": wallet.balance,
            "recharge_key": uuid.uuid4().hex,
            "recharge_result": result,
        }

    def _billing_customers_domain(self, reseller):
        return request.env["res.partner"]._billing_reseller_customers_domain(
            reseller.ids
        )

    def _billing_customer_invoices_domain(self, reseller):
        """The issued invoices and credit notes of the reseller's customers in
        the current company; the record rules restrict it further."""
        return [
            ("move_type", "in", ("out_invoice", "out_refund")),
            ("state", "=", "posted"),
            ("company_id", "=", request.env.company.id),
            ("commercial_partner_id.billing_reseller_id", "=", reseller.id),
        ]

    def _billing_open_amounts(self, customers):
        """{customer id: amount left to pay of its posted open invoices and
        credit notes}, in the company currency, read as the user."""
        if not customers:
            return {}
        groups = request.env["account.move"]._read_group(
            [
                ("commercial_partner_id", "in", customers.ids),
                ("move_type", "in", ("out_invoice", "out_refund")),
                ("state", "=", "posted"),
                ("payment_state", "in", OPEN_STATES),
                ("company_id", "=", request.env.company.id),
            ],
            groupby=["commercial_partner_id"],
            aggregates=["amount_residual_signed:sum"],
        )
        currency = request.env.company.currency_id
        return {partner.id: currency.round(amount) for partner, amount in groups}

    def _billing_search_domain(self, search, fnames):
        if not search:
            return []
        return expression.OR([[(fname, "ilike", search)] for fname in fnames])

    # -------------------------------------------------------------------------
    # Customers
    # -------------------------------------------------------------------------

    def _billing_customer_sortings(self):
        return {
            "name": {"label": request.env._("Name")},
            "balance": {"label": request.env._("Wallet Balance")},
            "open": {"label": request.env._("Open Amount")},
        }

    @http.route(
        ["/my/customers", "/my/customers/page/<int:page>"],
        type="http",
        auth="user",
        website=True,
    )
    def portal_my_customers(self, page=1, sortby=None, search=None, **kw):
        reseller = self._billing_reseller_or_404()
        Partner = request.env["res.partner"]
        sortings = self._billing_customer_sortings()
        if sortby not in sortings:
            sortby = "name"
        domain = expression.AND(
            [
                self._billing_customers_domain(reseller),
                self._billing_search_domain(search, ("name", "email")),
            ]
        )
        total = Partner.search_count(domain)
        pager = portal_pager(
            url="/my/customers",
            url_args={"sortby": sortby, "search": search},
            total=total,
            page=page,
            step=self._items_per_page,
        )
        if sortby == "name":
            customers = Partner.search(
                domain,
                order="name, id",
                limit=self._items_per_page,
                offset=pager["offset"],
            )
            open_amounts = self._billing_open_amounts(customers)
        else:
            # Balances and open amounts are computed, not stored: every customer
            # of the search is sorted by them, largest first, then paged.
            customers = Partner.search(domain, order="name, id")
            open_amounts = self._billing_open_amounts(customers)
            if sortby == "balance":
                customers = customers.sorted("billing_balance", reverse=True)
            else:
                customers = customers.sorted(
                    lambda c: open_amounts.get(c.id, 0.0), reverse=True
                )
            customers = customers[
                pager["offset"] : pager["offset"] + self._items_per_page
            ]
        values = self._prepare_portal_layout_values()
        values.update(
            {
                "page_name": "billing_customers",
                "default_url": "/my/customers",
                "pager": pager,
                "customers": customers,
                "open_amounts": open_amounts,
                "currency": request.env.company.currency_id,
                "billing_format_amount": format_portal_amount,
                "mode_labels": dict(
                    Partner._fields["billing_mode"]._description_selection(request.env)
                ),
                "searchbar_sortings": sortings,
                "sortby": sortby,
                "searchbar_inputs": {
                    "all": {
                        "input": "all",
                        "label": request.env._("Search in name and email"),
                    }
                },
                "search_in": "all",
                "search": search,
            }
        )
        return request.render(
            "prepaid_postpaid_billing.portal_my_billing_customers", values
        )

    @http.route(
        ["/my/customers/<int:partner_id>"], type="http", auth="user", website=True
    )
    def portal_my_customer(self, partner_id, **kw):
        reseller = self._billing_reseller_or_404()
        company = request.env.company
        customer = self._billing_customer_or_404(reseller, partner_id)
        wallet_moves = request.env["billing.wallet.move"].search(
            [("partner_id", "=", customer.id), ("company_id", "=", company.id)],
            order="date desc, id desc",
            limit=CUSTOMER_PAGE_LIMIT,
        )
        charges = request.env["billing.charge"].search(
            [("partner_id", "=", customer.id), ("company_id", "=", company.id)],
            order="date desc, id desc",
            limit=CUSTOMER_PAGE_LIMIT,
        )
        invoices = request.env["account.move"].search(
            [
                *self._billing_customer_invoices_domain(reseller),
                ("commercial_partner_id", "=", customer.id),
            ],
            order="invoice_date desc, id desc",
            limit=CUSTOMER_PAGE_LIMIT,
        )
        values = self._prepare_portal_layout_values()
        values.update(
            {
                "page_name": "billing_customer",
                "customer": customer,
                "reseller": reseller,
                "balance": customer.billing_balance,
                "open_amount": self._billing_open_amounts(customer).get(
                    customer.id, 0.0
                ),
                "currency": company.currency_id,
                "billing_format_amount": format_portal_amount,
                "mode_label": dict(
                    customer._fields["billing_mode"]._description_selection(request.env)
                ).get(customer.billing_mode),
                "wallet_moves": wallet_moves,
                "charges": charges,
                "invoices": invoices,
                **self._billing_recharge_values(customer),
            }
        )
        return request.render(
            "prepaid_postpaid_billing.portal_my_billing_customer", values
        )

    # -------------------------------------------------------------------------
    # Customers' invoices
    # -------------------------------------------------------------------------

    def _billing_invoice_payment_filters(self):
        return {
            "all": {"label": request.env._("All"), "domain": []},
            "not_paid": {
                "label": request.env._("Not Paid"),
                "domain": [("payment_state", "=", "not_paid")],
            },
            "partial": {
                "label": request.env._("Partially Paid"),
                "domain": [("payment_state", "=", "partial")],
            },
            "paid": {
                "label": request.env._("Paid"),
                "domain": [("payment_state", "in", ("in_payment", "paid", "reversed"))],
            },
        }

    def _billing_invoice_due_filters(self):
        return {
            "all": {"label": request.env._("Any Due Date"), "domain": []},
            "overdue": {
                "label": request.env._("Overdue"),
                "domain": [("billing_due_status", "=", "overdue")],
            },
            "not_due": {
                "label": request.env._("Not Overdue"),
                "domain": [("billing_due_status", "in", ("not_due", "due_today"))],
            },
        }

    def _billing_invoice_sortings(self):
        return {
            "date": {
                "label": request.env._("Invoice Date"),
                "order": "invoice_date desc, id desc",
            },
            "duedate": {
                "label": request.env._("Due Date"),
                "order": "invoice_date_due desc, id desc",
            },
            "name": {"label": request.env._("Number"), "order": "name desc, id desc"},
            "customer": {
                "label": request.env._("Customer"),
                "order": "invoice_partner_display_name, id desc",
            },
            "residual": {
                "label": request.env._("Amount Due"),
                "order": "amount_residual_signed desc, id desc",
            },
        }

    def _billing_invoice_filter(self, reseller, filterby, due, sortby, search):
        """The domain, order and the normalised options of the customers'
        invoices list (and of its Excel register)."""
        payment_filters = self._billing_invoice_payment_filters()
        due_filters = self._billing_invoice_due_filters()
        sortings = self._billing_invoice_sortings()
        filterby = filterby if filterby in payment_filters else "all"
        due = due if due in due_filters else "all"
        sortby = sortby if sortby in sortings else "date"
        domain = expression.AND(
            [
                self._billing_customer_invoices_domain(reseller),
                payment_filters[filterby]["domain"],
                due_filters[due]["domain"],
                self._billing_search_domain(
                    search, ("name", "invoice_partner_display_name", "ref")
                ),
            ]
        )
        return {
            "domain": domain,
            "order": sortings[sortby]["order"],
            "filterby": filterby,
            "due": due,
            "sortby": sortby,
            "search": search or "",
            "payment_filters": payment_filters,
            "due_filters": due_filters,
            "sortings": sortings,
        }

    @http.route(
        ["/my/customers/invoices", "/my/customers/invoices/page/<int:page>"],
        type="http",
        auth="user",
        website=True,
    )
    def portal_my_customer_invoices(
        self, page=1, filterby=None, due=None, sortby=None, search=None, **kw
    ):
        reseller = self._billing_reseller_or_404()
        Move = request.env["account.move"]
        options = self._billing_invoice_filter(reseller, filterby, due, sortby, search)
        url_args = {
            "filterby": options["filterby"],
            "due": options["due"],
            "sortby": options["sortby"],
            "search": options["search"],
        }
        pager = portal_pager(
            url="/my/customers/invoices",
            url_args=url_args,
            total=Move.search_count(options["domain"]),
            page=page,
            step=self._items_per_page,
        )
        invoices = Move.search(
            options["domain"],
            order=options["order"],
            limit=self._items_per_page,
            offset=pager["offset"],
        )
        result = request.session.pop(REMINDER_RESULT_KEY, None)
        values = self._prepare_portal_layout_values()
        values.update(
            {
                "page_name": "billing_customer_invoices",
                "default_url": "/my/customers/invoices",
                "pager": pager,
                "invoices": invoices,
                "url_args": url_args,
                "searchbar_sortings": options["sortings"],
                "sortby": options["sortby"],
                "searchbar_filters": options["payment_filters"],
                "filterby": options["filterby"],
                "due_filters": options["due_filters"],
                "due": options["due"],
                "searchbar_inputs": {
                    "all": {
                        "input": "all",
                        "label": request.env._("Search in number and customer"),
                    }
                },
                "search_in": "all",
                "search": options["search"],
                # The summary was rendered (escaped) by the reminder wizard of
                # this user's own last request.
                "reminder_result": result
                and {**result, "summary": Markup(result.get("summary") or "")},
            }
        )
        return request.render(
            "prepaid_postpaid_billing.portal_my_billing_customer_invoices", values
        )

    @http.route(["/my/customers/invoices/xlsx"], type="http", auth="user", website=True)
    def portal_my_customer_invoices_xlsx(
        self, filterby=None, due=None, sortby=None, search=None, **kw
    ):
        """The Excel invoice register of the invoices of the list's filter,
        read as the user: the same generator as the backend's Download Invoice
        Report."""
        reseller = self._billing_reseller_or_404()
        options = self._billing_invoice_filter(reseller, filterby, due, sortby, search)
        invoices = request.env["account.move"].search(
            options["domain"], order="invoice_date, name, id"
        )
        scope = request.env._(
            "invoices of the customers of %(reseller)s, %(payment)s, %(due)s",
            reseller=reseller.display_name,
            payment=options["payment_filters"][options["filterby"]]["label"],
            due=options["due_filters"][options["due"]]["label"],
        )
        if options["search"]:
            scope = request.env._(
                "%(scope)s, matching %(search)s", scope=scope, search=options["search"]
            )
        content = request.env["billing.invoice.register.xlsx"]._generate_xlsx(
            invoices, scope=scope
        )
        filename = (
            f"customer-invoices-{fields.Date.context_today(reseller).isoformat()}.xlsx"
        )
        return xlsx_response(content, filename)

    @http.route(
        ["/my/customers/invoices/remind"],
        type="http",
        auth="user",
        methods=["POST"],
        website=True,
    )
    def portal_my_customer_invoices_remind(self, **kw):
        """Email payment reminders for the selected invoices of the reseller's
        customers, by the rules and the once-per-day guard of Send Payment
        Reminders; what was sent and skipped is shown on the list."""
        reseller = self._billing_reseller_or_404()
        redirect = "/my/customers/invoices"
        query = request.httprequest.form.get("redirect_query") or ""
        if query and "\n" not in query and "\r" not in query:
            redirect = f"{redirect}?{query.lstrip('?')}"
        try:
            ids = {
                int(value) for value in request.httprequest.form.getlist("invoice_ids")
            }
        except ValueError:
            ids = set()
        if not ids or len(ids) > MAX_REMINDERS:
            request.session[REMINDER_RESULT_KEY] = {
                "error": request.env._(
                    "Select from 1 to %(max)s invoices to remind.", max=MAX_REMINDERS
                )
            }
            return request.redirect(redirect)
        # Ownership check, read as the user: each selected id must be an issued
        # invoice or credit note of one of the reseller's customers that the
        # user may read; one that is not refuses the whole request.
        invoices = request.env["account.move"].search(
            [("id", "in", list(ids)), *self._billing_customer_invoices_domain(reseller)]
        )
        if len(invoices) != len(ids):
            request.session[REMINDER_RESULT_KEY] = {
                "error": request.env._(
                    "No reminder was sent: %(count)s of the selected invoices are "
                    "not invoices of your customers.",
                    count=len(ids) - len(invoices),
                )
            }
            return request.redirect(redirect)
        # sudo: the reminder wizard is Billing Users' own; every invoice was just
        # checked to be one of this reseller's customers' that it may read. The
        # wizard's rules and once-per-day guard decide which are reminded
        # (never forced), with the addon's reminder template; the reminders are
        # authored by the reseller's user.
        wizard = (
            request.env["billing.reminder.send"]
            .sudo()
            .create(
                {
                    "scope": "selection",
                    "invoice_ids": [Command.set(invoices.ids)],
                }
            )
        )
        wizard._send_reminders()
        request.session[REMINDER_RESULT_KEY] = {
            "sent": wizard.sent_count,
            "skipped": wizard.result_skip_count,
            "summary": str(wizard.result_summary or ""),
        }
        return request.redirect(redirect)

    # -------------------------------------------------------------------------
    # Recharges
    # -------------------------------------------------------------------------

    @http.route(
        ["/my/customers/<int:partner_id>/recharge"],
        type="http",
        auth="user",
        methods=["POST"],
        website=True,
    )
    def portal_my_customer_recharge(self, partner_id, amount=None, key=None, **kw):
        """Recharge the reseller's customer ``partner_id`` with ``amount`` from
        the reseller's wallet, once per form ``key``; back to the customer's
        page with the result."""
        reseller = self._billing_reseller_or_404()
        customer = self._billing_customer_or_404(reseller, partner_id)
        try:
            value = float(str(amount).strip())
        except ValueError:
            value = math.nan
        try:
            if not math.isfinite(value):
                raise UserError(
                    request.env._(
                        "Amount of the recharge of %(customer)s: %(amount)r is not "
                        "an amount.",
                        customer=customer.display_name,
                        amount=amount,
                    )
                )
            # sudo: the user is in the Reseller group and ``customer`` is one of
            # its customers, read above with the user's rights; wallets, their
            # movements and the journal entry are the module's to write. The
            # recharge checks the reseller, the customer's mode, the amount and
            # the reseller's balance itself, and writes nothing when it refuses.
            _entry, replayed = (
                request.env["billing.wallet"]
                .sudo()
                ._reseller_recharge(reseller, customer, value, key, request.env.company)
            )
        except UserError as error:
            result = {"partner_id": customer.id, "ok": False, "message": str(error)}
        else:
            message = (
                request.env._(
                    "This recharge of %(customer)s was recorded already.",
                    customer=customer.display_name,
                )
                if replayed
                else request.env._(
                    "%(amount)s recharged to %(customer)s.",
                    amount=format_portal_amount(value),
                    customer=customer.display_name,
                )
            )
            result = {"partner_id": customer.id, "ok": True, "message": message}
        request.session[RECHARGE_RESULT_KEY] = result
        return request.redirect(f"/my/customers/{customer.id}#billing_recharge")
