from collections import defaultdict

from xlsxwriter.utility import xl_range

from odoo import fields, models
from odoo.tools.misc import format_datetime


class BillingInvoiceRegisterXlsx(models.AbstractModel):
    """The invoice register as an Excel sheet: a title, a header, one row per
    invoice with its amounts in its currency's format, and a totals row per
    currency."""

    _name = "billing.invoice.register.xlsx"
    _inherit = "billing.xlsx.report"
    _description = "Excel Invoice Register"

    # Row of the column titles: the title and the export line come before it.
    _header_row = 3

    # -------------------------------------------------------------------------
    # BUSINESS METHODS
    # -------------------------------------------------------------------------

    def _get_columns(self):
        """The register's columns: dicts with ``key`` (the key of
        ``_get_row_values``), ``label``, ``width`` and ``type`` (``text``,
        ``date``, ``integer``, ``currency``, or ``money``: amounts in the
        invoice's currency, totalled per currency)."""
        return [
            {"key": "name", "label": self.env._("Number"), "width": 22, "type": "text"},
            {
                "key": "partner",
                "label": self.env._("Customer"),
                "width": 32,
                "type": "text",
            },
            {
                "key": "reseller",
                "label": self.env._("Reseller"),
                "width": 24,
                "type": "text",
            },
            {
                "key": "invoice_date",
                "label": self.env._("Invoice Date"),
                "width": 13,
                "type": "date",
            },
            {
                "key": "invoice_date_due",
                "label": self.env._("Due Date"),
                "width": 13,
                "type": "date",
            },
            {
                "key": "due_status",
                "label": self.env._("Due Status"),
                "width": 13,
                "type": "text",
            },
            {
                "key": "days_overdue",
                "label": self.env._("Days Late"),
                "width": 10,
                "type": "integer",
            },
            {
                "key": "payment_status",
                "label": self.env._("Payment Status"),
                "width": 16,
                "type": "text",
            },
            {
                "key": "currency",
                "label": self.env._("Currency"),
                "width": 10,
                "type": "currency",
            },
            {
                "key": "untaxed",
                "label": self.env._("Untaxed"),
                "width": 16,
                "type": "money",
            },
            {"key": "tax", "label": self.env._("Tax"), "width": 14, "type": "money"},
            {
                "key": "total",
                "label": self.env._("Total"),
                "width": 16,
                "type": "money",
            },
            {
                "key": "residual",
                "label": self.env._("Amount Due"),
                "width": 16,
                "type": "money",
            },
        ]

    def _get_selection_labels(self, invoices):
        """The labels users see for the due and payment statuses, in their
        language."""
        return {
            field: dict(invoices._fields[field]._description_selection(self.env))
            for field in ("billing_due_status", "status_in_payment")
        }

    def _get_row_values(self, invoice, labels):
        """The cells of ``invoice``'s row by column key. Amounts are in the
        invoice's currency, negative for credit notes; the days late are given
        for overdue invoices only."""
        sign = -1 if invoice.is_outbound() else 1
        overdue = invoice.billing_due_status == "overdue"
        return {
            # A draft has no number yet: "Draft Invoice", as in the lists.
            "name": invoice.display_name.strip(),
            "partner": invoice.partner_id.display_name or "",
            "reseller": invoice.billing_reseller_id.display_name or "",
            "invoice_date": invoice.invoice_date or None,
            "invoice_date_due": invoice.invoice_date_due or None,
            "due_status": labels["billing_due_status"].get(
                invoice.billing_due_status, ""
            ),
            "days_overdue": invoice.billing_days_overdue if overdue else None,
            "payment_status": labels["status_in_payment"].get(
                invoice.status_in_payment, ""
            ),
            "currency": invoice.currency_id.name,
            "untaxed": sign * invoice.amount_untaxed,
            "tax": sign * invoice.amount_tax,
            "total": sign * invoice.amount_total,
            "residual": sign * invoice.amount_residual,
        }

    def _write_workbook(self, workbook, formats, invoices, scope=None):
        """One sheet: the register of ``invoices`` in their order; ``scope``
        says under the title which invoices they are (e.g. the selection, or
        every invoice of a filter)."""
        sheet = workbook.add_worksheet(self.env._("Invoices"))
        columns = self._get_columns()
        self._check_row_count(
            sheet, self._header_row + 1 + len(invoices) + len(invoices.currency_id)
        )
        self._write_title(sheet, formats, invoices, scope)
        self._write_header(sheet, formats, columns)
        labels = self._get_selection_labels(invoices)
        sums = defaultdict(lambda: defaultdict(float))
        row = self._header_row
        for invoice in invoices:
            row += 1
            values = self._write_invoice(
                workbook, sheet, formats, columns, row, invoice, labels
            )
            for column in columns:
                if column["type"] == "money":
                    sums[invoice.currency_id][column["key"]] += values[column["key"]]
        sheet.autofilter(self._header_row, 0, row, len(columns) - 1)
        sheet.freeze_panes(self._header_row + 1, 1)
        self._write_totals(workbook, sheet, formats, columns, sums, row)

    def _write_title(self, sheet, formats, invoices, scope=None):
        company_names = invoices.company_id.mapped("name") or [self.env.company.name]
        sheet.write_string(
            0,
            0,
            self.env._("Invoice Report: %(company)s", company=", ".join(company_names)),
            formats["title"],
        )
        exported = self.env._(
            "Exported on %(date)s by %(user)s: %(count)s invoices.",
            date=format_datetime(self.env, fields.Datetime.now()),
            user=self.env.user.name,
            count=len(invoices),
        )
        if scope:
            exported = self.env._(
                "%(exported)s Scope: %(scope)s.", exported=exported, scope=scope
            )
        sheet.write_string(1, 0, exported, formats["subtitle"])

    def _write_invoice(self, workbook, sheet, formats, columns, row, invoice, labels):
        """Write ``invoice``'s row; returns its values by column key."""
        values = self._get_row_values(invoice, labels)
        money = self._money_format(workbook, formats, invoice.currency_id)
        for col, column in enumerate(columns):
            value = values.get(column["key"])
            kind = column["type"]
            if value is None or value == "":
                sheet.write_blank(row, col, None)
            elif kind == "money":
                sheet.write_number(row, col, value, money)
            elif kind == "date":
                sheet.write_datetime(row, col, value, formats["date"])
            elif kind == "integer":
                sheet.write_number(row, col, value, formats["integer"])
            else:
                sheet.write_string(row, col, value, formats["text"])
        return values

    def _write_totals(self, workbook, sheet, formats, columns, sums, last):
        """Under the invoices (rows up to ``last``), one totals row per currency
        of ``sums`` (``{currency: {column key: amount}}``): amounts in
        different currencies are never added up. Totals are formulas that
        carry their computed value, for the programs that do not compute
        formulas."""
        first = self._header_row + 1
        currency_col = next(
            (i for i, column in enumerate(columns) if column["type"] == "currency"),
            None,
        )
        several = len(sums) > 1
        row = last
        for currency in sorted(sums, key=lambda c: c.name):
            row += 1
            for col in range(len(columns)):
                sheet.write_blank(row, col, None, formats["total"])
            sheet.write_string(
                row,
                0,
                self.env._("Total %(currency)s", currency=currency.name)
                if several
                else self.env._("Total"),
                formats["total"],
            )
            if currency_col is not None:
                sheet.write_string(row, currency_col, currency.name, formats["total"])
            money = self._money_format(workbook, formats, currency, total=True)
            for col, column in enumerate(columns):
                if column["type"] != "money":
                    continue
                value = currency.round(sums[currency][column["key"]])
                amounts = xl_range(first, col, last, col)
                if not several:
                    formula = f"=SUM({amounts})"
                elif currency_col is not None:
                    keys = xl_range(first, currency_col, last, currency_col)
                    formula = f'=SUMIF({keys},"{currency.name}",{amounts})'
                else:
                    sheet.write_number(row, col, value, money)
                    continue
                sheet.write_formula(row, col, formula, money, value)
