from odoo import fields, models

REGISTER_SCOPES = [
    ("selection", "Selected invoices"),
    ("filter", "Every invoice of the filter"),
]


class BillingInvoiceRegister(models.TransientModel):
    """The invoices of one *Download Invoice Report*, kept on the server so that
    the download link stays short however many they are: a search domain (the
    ids of the selection, or the list's filter when the user selected all its
    records) and the companies the user had enabled. Only the user who asked
    for it downloads it, and sees only the invoices they may read."""

    _name = "billing.invoice.register"
    _inherit = ["billing.wizard.mixin"]
    _description = "Invoice Report Download"
    _billing_checked_fields = ("company_ids",)

    domain = fields.Json(help="Search domain of the invoices of the report.")
    scope = fields.Selection(
        selection=REGISTER_SCOPES, required=True, default="selection"
    )
    company_ids = fields.Many2many(comodel_name="res.company", string="Companies")

    # -------------------------------------------------------------------------
    # ACTION METHODS
    # -------------------------------------------------------------------------

    def action_download(self):
        """Download the Excel invoice register of these invoices."""
        self.ensure_one()
        self.check_access("read")
        self._billing_check_access()
        return {
            "type": "ir.actions.act_url",
            "url": f"/billing/invoice_register/{self.id}",
            "target": "download",
        }

    # -------------------------------------------------------------------------
    # BUSINESS METHODS
    # -------------------------------------------------------------------------

    def _get_invoices(self):
        """The invoices of the report, searched as the current user (record
        rules apply) in the companies enabled when the download was asked."""
        self.ensure_one()
        self._billing_check_access()
        Move = self.env["account.move"]
        if self.company_ids:
            Move = Move.with_context(allowed_company_ids=self.company_ids.ids)
        return Move.search(self.domain or [], order=self._get_invoice_order())

    def _get_invoice_order(self):
        return "invoice_date, name, id"

    def _get_filename(self):
        self.ensure_one()
        return f"invoices-{fields.Date.context_today(self).isoformat()}.xlsx"

    def _generate_xlsx(self):
        """Content of the Excel invoice register."""
        self.ensure_one()
        scope = dict(self._fields["scope"]._description_selection(self.env))
        return self.env["billing.invoice.register.xlsx"]._generate_xlsx(
            self._get_invoices(), scope=scope[self.scope]
        )
