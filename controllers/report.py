from odoo import http
from odoo.exceptions import AccessError, MissingError
from odoo.http import content_disposition, request

from ..report.billing_xlsx_report import XLSX_MIMETYPE


def xlsx_response(content, filename):
    """The HTTP response downloading the Excel file ``content`` as ``filename``."""
    return request.make_response(
        content,
        headers=[
            ("Content-Type", XLSX_MIMETYPE),
            ("Content-Length", len(content)),
            ("Content-Disposition", content_disposition(filename)),
        ],
    )


class BillingReportController(http.Controller):
    """Downloads of the billing Excel reports. Records are read as the user,
    so access rights and record rules apply; what the user may not read is
    not found."""

    # -------------------------------------------------------------------------
    # Routes
    # -------------------------------------------------------------------------

    @http.route(
        ["/billing/invoice_register/<int:register_id>"], type="http", auth="user"
    )
    def billing_invoice_register_xlsx(self, register_id, **kw):
        """The Excel invoice register a *Download Invoice Report* asked for."""
        register = request.env["billing.invoice.register"].browse(register_id)
        try:
            # Only the user who asked for the report downloads it.
            if not register.exists() or register.create_uid != request.env.user:
                raise request.not_found()
            content = register._generate_xlsx()
        except (AccessError, MissingError):
            raise request.not_found() from None
        return xlsx_response(content, register._get_filename())

    @http.route(["/billing/charge_history/<int:invoice_id>"], type="http", auth="user")
    def billing_charge_history_xlsx(self, invoice_id, **kw):
        """The Excel charge history of an invoice the user may read (a portal
        customer: their own invoices)."""
        invoice = request.env["account.move"].browse(invoice_id)
        try:
            history = invoice.exists() and invoice._billing_charge_history()
        except (AccessError, MissingError):
            raise request.not_found() from None
        if not history:
            raise request.not_found()
        content = request.env["billing.charge.history.xlsx"]._generate_xlsx(
            invoice, history=history
        )
        return xlsx_response(content, invoice._billing_charge_history_filename())
