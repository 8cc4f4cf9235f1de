import csv
import io
import os
import tempfile
from contextlib import closing
from datetime import datetime, time, timedelta

import pytz
import xlsxwriter
from werkzeug.urls import url_encode

from odoo import api, fields, http
from odoo.http import content_disposition, request
from odoo.modules.registry import Registry
from odoo.tools import float_round

from odoo.addons.portal.controllers.portal import pager as portal_pager

from ..models.billing_charge import CHARGE_STATES, MICRO, USAGE_DIGITS, _micro
from ..report.billing_xlsx_report import XLSX_MIMETYPE
from .portal import billing_portal_customer
from .reseller_portal import BillingResellerPortal

# Usage records an export reads at a time.
USAGE_EXPORT_BATCH = 5000
# Bytes of the Excel file sent at a time.
USAGE_EXPORT_CHUNK = 1 << 16
# Rows of an Excel sheet, its header included: the rows beyond go on the next.
XLSX_SHEET_ROWS = 1048576
# Fields of billing.charge an export reads.
USAGE_EXPORT_FIELDS = [
    "date",
    "product_id",
    "name",
    "quantity",
    "price_unit",
    "amount",
    "company_id",
    "state",
    "invoice_line_id",
]
# Number formats of the Excel export: quantities and amounts with the
# decimals they have, up to the usage precision.
XLSX_USAGE_FORMAT = "#,##0.######"
XLSX_MONEY_FORMAT = "#,##0.00####"


def _usage_text(value):
    """``value`` at usage precision, as plain text with the decimals it has:
    0.004, 0.00003, 1000."""
    text = f"{float_round(value, USAGE_DIGITS):.{USAGE_DIGITS}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def usage_export_headers(env):
    """The column titles of the exports, in ``env``'s language."""
    _ = env._
    return [
        _("Date"),
        _("Service"),
        _("Product"),
        _("Description"),
        _("Quantity"),
        _("Unit Price"),
        _("Amount"),
        _("Currency"),
        _("Status"),
        _("Invoice"),
    ]


def usage_export_batches(dbname, uid, context, domain, batch=None):
    """Yield the rows of the usage records of ``domain`` (already restricted to
    one customer and company), ``batch`` records at a time in the order they
    were recorded, as lists of ``(date, service, product, description,
    quantity, unit price, amount, currency, status, invoice)``: the date in the
    user's time zone, the numbers exact at usage precision.

    The records are read in a cursor of their own: the response streaming
    them is consumed once the request's cursor is closed. Each batch is read
    by id after the last one, only the fields exported, and the cache is
    emptied after it, so that memory does not grow with the records."""
    batch = batch or USAGE_EXPORT_BATCH
    with closing(Registry(dbname).cursor()) as cr:
        env = api.Environment(cr, uid, context)
        tz = pytz.timezone(context.get("tz") or "UTC")
        # sudo: ``domain`` is restricted to the customer and company the
        # route checked.
        Charge = env["billing.charge"].sudo()
        states = dict(Charge._fields["state"]._description_selection(env))
        products, currencies = {}, {}
        last_id = 0
        while True:
            charges = Charge.search_fetch(
                [*domain, ("id", ">", last_id)],
                USAGE_EXPORT_FIELDS,
                order="id",
                limit=batch,
            )
            if not charges:
                return
            last_id = charges[-1].id
            new_products = charges.product_id.filtered(lambda p: p.id not in products)
            for product in new_products.with_context(active_test=False):
                products[product.id] = (product.display_name, product.default_code)
            for company in charges.company_id:
                if company.id not in currencies:
                    currencies[company.id] = company.currency_id.name
            lines = charges.invoice_line_id
            lines.fetch(["move_id"])
            lines.move_id.fetch(["name", "state"])
            rows = []
            for charge in charges:
                invoice = charge.invoice_line_id.move_id
                service, code = products[charge.product_id.id]
                rows.append(
                    (
                        pytz.utc.localize(charge.date)
                        .astimezone(tz)
                        .replace(tzinfo=None),
                        service,
                        code or "",
                        charge.name or "",
                        charge.quantity,
                        charge.price_unit,
                        charge.amount,
                        currencies[charge.company_id.id],
                        states.get(charge.state, charge.state),
                        invoice.name if invoice.state == "posted" else "",
                    )
                )
            env.invalidate_all()
            yield rows


def usage_csv_chunks(dbname, uid, context, domain, headers):
    """The CSV export of the usage records of ``domain``: the bytes of the
    header, then of each batch of rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(headers)
    yield buffer.getvalue().encode()
    for rows in usage_export_batches(dbname, uid, context, domain):
        buffer.seek(0)
        buffer.truncate()
        for row in rows:
            writer.writerow(
                (
                    fields.Datetime.to_string(row[0]),
                    *row[1:4],
                    _usage_text(row[4]),
                    _usage_text(row[5]),
                    _usage_text(row[6]),
                    *row[7:],
                )
            )
        yield buffer.getvalue().encode()


def usage_xlsx_chunks(dbname, uid, context, domain, headers, sheet_name):
    """The Excel export of the usage records of ``domain``: written row by
    row to a temporary file (xlsxwriter's constant memory mode), then that
    file's bytes, USAGE_EXPORT_CHUNK at a time; the file is deleted at the
    end, also when the download is interrupted."""
    handle, path = tempfile.mkstemp(prefix="billing_usage_", suffix=".xlsx")
    os.close(handle)
    try:
        workbook = xlsxwriter.Workbook(path, {"constant_memory": True})
        bold = workbook.add_format({"bold": True})
        when = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
        usage = workbook.add_format({"num_format": XLSX_USAGE_FORMAT})
        money = workbook.add_format({"num_format": XLSX_MONEY_FORMAT})
        widths = (20, 28, 14, 40, 14, 14, 16, 10, 12, 20)

        def new_sheet(number):
            name = sheet_name if number == 1 else f"{sheet_name} ({number})"
            sheet = workbook.add_worksheet(name[:31])
            for col, (title, width) in enumerate(zip(headers, widths, strict=True)):
                sheet.set_column(col, col, width)
                sheet.write_string(0, col, title, bold)
            return sheet

        sheets = 1
        sheet, row = new_sheet(sheets), 0
        for rows in usage_export_batches(dbname, uid, context, domain):
            for values in rows:
                row += 1
                if row == XLSX_SHEET_ROWS:
                    sheets += 1
                    sheet, row = new_sheet(sheets), 1
                sheet.write_datetime(row, 0, values[0], when)
                sheet.write_string(row, 1, values[1])
                sheet.write_string(row, 2, values[2])
                sheet.write_string(row, 3, values[3])
                sheet.write_number(row, 4, float_round(values[4], USAGE_DIGITS), usage)
                sheet.write_number(row, 5, float_round(values[5], USAGE_DIGITS), money)
                sheet.write_number(row, 6, float_round(values[6], USAGE_DIGITS), money)
                sheet.write_string(row, 7, values[7])
                sheet.write_string(row, 8, values[8])
                sheet.write_string(row, 9, values[9])
        workbook.close()
        with open(path, "rb") as file:
            while chunk := file.read(USAGE_EXPORT_CHUNK):
                yield chunk
    finally:
        os.unlink(path)


class BillingUsagePortal(BillingResellerPortal):
    """My Usage: the usage records of the portal user's own customer (and, for
    a reseller, of each of its customers), filtered, sorted, paged, with the
    totals of each service and CSV and Excel exports of the whole filter.

    The customer is checked first (the user's commercial partner, or a
    customer of the reseller, read with the user's rights); the records are
    then read with sudo on a domain restricted to that customer and the
    current company."""

    def _prepare_home_portal_values(self, counters):
        values = super()._prepare_home_portal_values(counters)
        if "billing_usage_count" in counters:
            customer = billing_portal_customer()
            values["billing_usage_count"] = (
                # sudo: counted on the user's own customer and company only.
                request.env["billing.charge"]
                .sudo()
                .search_count(self._billing_usage_base_domain(customer))
                if customer
                else 0
            )
        return values

    # -------------------------------------------------------------------------
    # Helpers
    # -------------------------------------------------------------------------

    def _billing_usage_customer_or_404(self):
        customer = billing_portal_customer()
        if not customer:
            raise request.not_found()
        return customer

    def _billing_usage_reseller_customer_or_404(self, partner_id):
        reseller = self._billing_reseller_or_404()
        return self._billing_customer_or_404(reseller, partner_id)

    def _billing_usage_base_domain(self, customer):
        """Every usage record of ``customer`` (a commercial partner the route
        checked) in the current company."""
        customer.ensure_one()
        return [
            ("partner_id", "=", customer.id),
            ("company_id", "=", request.env.company.id),
        ]

    def _billing_usage_sortings(self):
        return {
            "date_desc": {
                "label": request.env._("Newest First"),
                "order": "date desc, id desc",
            },
            "date_asc": {
                "label": request.env._("Oldest First"),
                "order": "date asc, id asc",
            },
            "amount": {
                "label": request.env._("Amount"),
                "order": "amount desc, date desc, id desc",
            },
            "service": {
                "label": request.env._("Service"),
                "order": "product_id, date desc, id desc",
            },
        }

    def _billing_usage_services(self, customer):
        """The services (products) ``customer`` has usage records of in the
        current company, by name."""
        # sudo: the records of the customer the route checked.
        groups = (
            request.env["billing.charge"]
            .sudo()
            ._read_group(self._billing_usage_base_domain(customer), ["product_id"])
        )
        # sudo: the names of the customer's own services (portal users do
        # not read products).
        return (
            request.env["product.product"]
            .sudo()
            .concat(*(product for (product,) in groups))
            .sorted(lambda product: (product.display_name or "", product.id))
        )

    def _billing_usage_parse_date(self, value, label, errors):
        if not value:
            return None
        try:
            return fields.Date.to_date(value)
        except ValueError:
            errors.append(
                request.env._(
                    "%(field)s: %(value)s is not a date (YYYY-MM-DD); it is not "
                    "applied.",
                    field=label,
                    value=value,
                )
            )
            return None

    def _billing_usage_filter(self, customer, params):
        """The filter of ``params`` (GET parameters) on ``customer``'s usage
        records: ``(domain, values, errors, services)``, ``values`` the parameters
        applied (a wrong one is not applied, and ``errors`` say why), and
        ``services``, the products the customer has usage of, for the filter's
        choices."""
        _ = request.env._
        errors = []
        values = {}
        domain = self._billing_usage_base_domain(customer)
        tz = pytz.timezone(request.env.context.get("tz") or "UTC")
        date_from = self._billing_usage_parse_date(
            params.get("date_from"), _("From"), errors
        )
        date_to = self._billing_usage_parse_date(params.get("date_to"), _("To"), errors)
        if date_from and date_to and date_from > date_to:
            errors.append(
                _(
                    "The dates are in the wrong order: %(date_from)s is after "
                    "%(date_to)s; they are not applied.",
                    date_from=date_from,
                    date_to=date_to,
                )
            )
            date_from = date_to = None

        def utc(day):
            # The start of ``day`` in the user's time zone, in UTC.
            return (
                tz.localize(datetime.combine(day, time.min))
                .astimezone(pytz.utc)
                .replace(tzinfo=None)
            )

        if date_from:
            values["date_from"] = fields.Date.to_string(date_from)
            domain.append(("date", ">=", utc(date_from)))
        if date_to:
            values["date_to"] = fields.Date.to_string(date_to)
            domain.append(("date", "<", utc(date_to + timedelta(days=1))))
        services = self._billing_usage_services(customer)
        service_id = params.get("service_id")
        if service_id:
            service = services.filtered(lambda product: str(product.id) == service_id)
            if service:
                values["service_id"] = str(service.id)
                domain.append(("product_id", "=", service.id))
            else:
                errors.append(
                    _(
                        "There is no usage of this service: choose one from the "
                        "list; it is not applied."
                    )
                )
        states = dict(CHARGE_STATES)
        state = params.get("state")
        if state:
            if state in states:
                values["state"] = state
                domain.append(("state", "=", state))
            else:
                errors.append(
                    _(
                        "Status %(state)s does not exist: choose one from the "
                        "list; it is not applied.",
                        state=state,
                    )
                )
        return domain, values, errors, services

    def _billing_usage_totals(self, domain, currency):
        """The totals of each service of the usage records of ``domain``, by
        one grouped query, and their grand total: exact at usage precision."""
        # sudo: ``domain`` is restricted to the customer the route checked.
        Charge = request.env["billing.charge"].sudo()
        groups = Charge._read_group(
            domain,
            ["product_id"],
            ["__count", "quantity:sum", "amount:sum"],
        )
        Wallet = request.env["billing.wallet"]
        Charge = request.env["billing.charge"]
        rows = [
            {
                "service": product.display_name,
                "count": count,
                "quantity": Charge._format_usage_quantity(quantity),
                "amount": Wallet._format_amount_exact(amount, currency),
            }
            for product, count, quantity, amount in sorted(
                groups, key=lambda group: (group[0].display_name or "", group[0].id)
            )
        ]
        total = sum(_micro(group[3]) for group in groups) / MICRO
        return rows, {
            "count": sum(group[1] for group in groups),
            "amount": Wallet._format_amount_exact(total, currency),
        }

    def _billing_usage_rows(self, charges, currency):
        Wallet = request.env["billing.wallet"]
        Charge = request.env["billing.charge"]
        rows = []
        for charge in charges:
            invoice = charge.invoice_id
            rows.append(
                {
                    "charge": charge,
                    "quantity": Charge._format_usage_quantity(charge.quantity),
                    "price_unit": Wallet._format_amount_exact(
                        charge.price_unit, currency
                    ),
                    "amount": Wallet._format_amount_exact(charge.amount, currency),
                    "invoice": invoice if invoice.state == "posted" else None,
                    # The invoice's own portal page (its access checked there).
                    "invoice_url": f"/my/invoices/{invoice.id}"
                    if invoice.state == "posted"
                    else None,
                }
            )
        return rows

    def _billing_usage_page(self, customer, url, page, sortby, params, reseller=None):
        """The usage page of ``customer`` at ``url`` (checked by the route)."""
        domain, filters, errors, services = self._billing_usage_filter(customer, params)
        sortings = self._billing_usage_sortings()
        if sortby not in sortings:
            sortby = "date_desc"
        # sudo: ``domain`` is restricted to the customer the route checked.
        Charge = request.env["billing.charge"].sudo()
        total = Charge.search_count(domain)
        pager = portal_pager(
            url=url,
            url_args={**filters, "sortby": sortby},
            total=total,
            page=page,
            step=self._items_per_page,
        )
        charges = Charge.search(
            domain,
            order=sortings[sortby]["order"],
            limit=self._items_per_page,
            offset=pager["offset"],
        )
        currency = request.env.company.currency_id
        totals, grand_total = self._billing_usage_totals(domain, currency)
        query = url_encode(filters)
        values = self._prepare_portal_layout_values()
        values.update(
            {
                "page_name": "billing_usage_customer" if reseller else "billing_usage",
                "default_url": url,
                "customer": customer,
                "reseller": reseller,
                "pager": pager,
                "usage_rows": self._billing_usage_rows(charges, currency),
                "usage_count": total,
                "usage_totals": totals,
                "usage_grand_total": grand_total,
                "usage_services": services,
                "usage_states": CHARGE_STATES,
                "usage_filters": filters,
                "usage_errors": errors,
                "usage_export_csv": f"{url}/export/csv?{query}",
                "usage_export_xlsx": f"{url}/export/xlsx?{query}",
                "searchbar_sortings": sortings,
                "sortby": sortby,
            }
        )
        return request.render("prepaid_postpaid_billing.portal_my_usage", values)

    def _billing_usage_export(self, customer, url, kind, params):
        """The CSV or Excel (``kind``) export of ``customer``'s usage records of
        the filter ``params``, streamed; a wrong filter sends the user back to
        the page, which says what is wrong."""
        domain, _filters, errors, _services = self._billing_usage_filter(
            customer, params
        )
        if errors:
            return request.redirect(f"{url}?{url_encode(params)}")
        env = request.env
        args = (env.cr.dbname, env.uid, dict(env.context), domain)
        headers = usage_export_headers(env)
        filename = env._("Usage %(customer)s", customer=customer.name)
        if kind == "csv":
            body = usage_csv_chunks(*args, headers)
            content_type = "text/csv; charset=utf-8"
            filename += ".csv"
        else:
            body = usage_xlsx_chunks(*args, headers, env._("Usage"))
            content_type = XLSX_MIMETYPE
            filename += ".xlsx"
        response = request.make_response(
            body,
            headers=[
                ("Content-Type", content_type),
                ("Content-Disposition", content_disposition(filename)),
                ("Cache-Control", "no-store"),
            ],
        )
        response.direct_passthrough = True
        return response

    # -------------------------------------------------------------------------
    # Routes: the customer's own usage
    # -------------------------------------------------------------------------

    @http.route(
        ["/my/usage", "/my/usage/page/<int:page>"],
        type="http",
        auth="user",
        website=True,
    )
    def portal_my_usage(self, page=1, sortby=None, **kw):
        customer = self._billing_usage_customer_or_404()
        return self._billing_usage_page(customer, "/my/usage", page, sortby, kw)

    @http.route(["/my/usage/export/csv"], type="http", auth="user")
    def portal_my_usage_csv(self, **kw):
        customer = self._billing_usage_customer_or_404()
        return self._billing_usage_export(customer, "/my/usage", "csv", kw)

    @http.route(["/my/usage/export/xlsx"], type="http", auth="user")
    def portal_my_usage_xlsx(self, **kw):
        customer = self._billing_usage_customer_or_404()
        return self._billing_usage_export(customer, "/my/usage", "xlsx", kw)

    # -------------------------------------------------------------------------
    # Routes: a reseller's customer's usage
    # -------------------------------------------------------------------------

    @http.route(
        [
            "/my/customers/<int:partner_id>/usage",
            "/my/customers/<int:partner_id>/usage/page/<int:page>",
        ],
        type="http",
        auth="user",
        website=True,
    )
    def portal_my_customer_usage(self, partner_id, page=1, sortby=None, **kw):
        customer = self._billing_usage_reseller_customer_or_404(partner_id)
        return self._billing_usage_page(
            customer,
            f"/my/customers/{customer.id}/usage",
            page,
            sortby,
            kw,
            reseller=self._billing_reseller(),
        )

    @http.route(
        ["/my/customers/<int:partner_id>/usage/export/csv"], type="http", auth="user"
    )
    def portal_my_customer_usage_csv(self, partner_id, **kw):
        customer = self._billing_usage_reseller_customer_or_404(partner_id)
        return self._billing_usage_export(
            customer, f"/my/customers/{customer.id}/usage", "csv", kw
        )

    @http.route(
        ["/my/customers/<int:partner_id>/usage/export/xlsx"], type="http", auth="user"
    )
    def portal_my_customer_usage_xlsx(self, partner_id, **kw):
        customer = self._billing_usage_reseller_customer_or_404(partner_id)
        return self._billing_usage_export(
            customer, f"/my/customers/{customer.id}/usage", "xlsx", kw
        )
