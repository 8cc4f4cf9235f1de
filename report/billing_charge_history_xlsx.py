from xlsxwriter.utility import xl_range, xl_rowcol_to_cell

from odoo import models
from odoo.tools import float_round
from odoo.tools.misc import format_date


class BillingChargeHistoryXlsx(models.AbstractModel):
    """The charge history of an invoice as an Excel sheet: every usage record
    and charge it bills, one block per service with its subtotal and the
    amount of the invoice's usage lines of that service (on the basis of their
    unit prices, as the charges: taxes included where the prices include
    them), then the grand totals (the grand total invoiced is the sum of the
    invoice's usage lines)."""

    _name = "billing.charge.history.xlsx"
    _inherit = "billing.xlsx.report"
    _description = "Excel Charge History"

    # Row of the column titles: the title, customer and period come before it.
    _header_row = 4

    # -------------------------------------------------------------------------
    # BUSINESS METHODS
    # -------------------------------------------------------------------------

    def _get_columns(self):
        """The columns of the charge rows: dicts with ``key`` (a field of
        ``billing.charge``), ``label``, ``width`` and ``type`` (``datetime``,
        ``text``, ``quantity`` or ``money``)."""
        return [
            {
                "key": "date",
                "label": self.env._("Date"),
                "width": 20,
                "type": "datetime",
            },
            {
                "key": "name",
                "label": self.env._("Description"),
                "width": 40,
                "type": "text",
            },
            {
                "key": "external_ref",
                "label": self.env._("External Reference"),
                "width": 24,
                "type": "text",
            },
            {
                "key": "quantity",
                "label": self.env._("Quantity"),
                "width": 12,
                "type": "quantity",
            },
            {
                "key": "price_unit",
                "label": self.env._("Unit Price"),
                "width": 14,
                "type": "money",
            },
            {
                "key": "amount",
                "label": self.env._("Amount"),
                "width": 16,
                "type": "money",
            },
        ]

    def _write_workbook(self, workbook, formats, invoice, history=None):
        """One sheet: the charges ``invoice`` bills, from ``history`` (its
        ``_billing_charge_history()`` by default)."""
        invoice.ensure_one()
        if history is None:
            history = invoice._billing_charge_history()
        sheet = workbook.add_worksheet(self.env._("Charges"))
        columns = self._get_columns()
        keys = [column["key"] for column in columns]
        qty_col, amount_col = keys.index("quantity"), keys.index("amount")
        self._check_row_count(
            sheet,
            self._header_row + 3 + sum(len(block["charges"]) + 4 for block in history),
        )
        self._write_title(sheet, formats, invoice)
        self._write_header(sheet, formats, columns)
        usage_digits = self.env["decimal.precision"].precision_get("Billing Usage")
        invoice_money = self._money_format(workbook, formats, invoice.currency_id)
        row = self._header_row
        subtotal_cells, invoiced_cells = [], []
        total_amount = total_invoiced = 0.0
        for block in history:
            charges = block["charges"]
            currency = charges[:1].currency_id or invoice.currency_id
            money = self._money_format(
                workbook, formats, currency, max_digits=usage_digits
            )
            row += 1
            for col in range(len(columns)):
                sheet.write_blank(row, col, None, formats["section"])
            sheet.write_string(
                row, 0, block["product"].display_name, formats["section"]
            )
            first = row + 1
            for charge in charges:
                row += 1
                self._write_charge(sheet, formats, columns, row, charge, money)
            last = row
            # Subtotal of the service: its quantity and the sum of its charges.
            row += 1
            amount = float_round(block["amount"], precision_digits=usage_digits)
            quantity = float_round(block["quantity"], precision_digits=usage_digits)
            self._write_label_row(
                sheet,
                formats,
                columns,
                row,
                self.env._(
                    "Subtotal %(service)s", service=block["product"].display_name
                ),
            )
            sheet.write_formula(
                row,
                qty_col,
                f"=SUM({xl_range(first, qty_col, last, qty_col)})",
                formats["quantity_total"],
                quantity,
            )
            sheet.write_formula(
                row,
                amount_col,
                f"=SUM({xl_range(first, amount_col, last, amount_col)})",
                self._money_format(
                    workbook, formats, currency, max_digits=usage_digits, total=True
                ),
                amount,
            )
            subtotal_cells.append(xl_rowcol_to_cell(row, amount_col))
            total_amount += amount
            # What the invoice's usage lines of the service bill.
            row += 1
            if block["taxes_included"]:
                invoiced_label = self.env._(
                    "Invoiced %(service)s (usage lines, taxes included)",
                    service=block["product"].display_name,
                )
            else:
                invoiced_label = self.env._(
                    "Invoiced %(service)s (usage lines, before taxes)",
                    service=block["product"].display_name,
                )
            sheet.write_string(row, 0, invoiced_label, formats["text"])
            sheet.write_number(row, amount_col, block["invoiced"], invoice_money)
            invoiced_cells.append(xl_rowcol_to_cell(row, amount_col))
            total_invoiced += block["invoiced"]
            row += 1
        charge_currency = (
            history[0]["charges"][:1].currency_id if history else invoice.currency_id
        )
        self._write_grand_totals(
            sheet,
            formats,
            columns,
            row,
            [
                (
                    self.env._("Total of the charges"),
                    subtotal_cells,
                    float_round(total_amount, precision_digits=usage_digits),
                    self._money_format(
                        workbook,
                        formats,
                        charge_currency,
                        max_digits=usage_digits,
                        total=True,
                    ),
                ),
                (
                    self._total_invoiced_label(history),
                    invoiced_cells,
                    invoice.currency_id.round(total_invoiced),
                    self._money_format(
                        workbook, formats, invoice.currency_id, total=True
                    ),
                ),
            ],
        )
        sheet.freeze_panes(self._header_row + 1, 0)

    def _total_invoiced_label(self, history):
        """Label of the total the usage lines bill, saying on which basis."""
        included = [block["taxes_included"] for block in history]
        if included and all(included):
            return self.env._("Total invoiced (usage lines, taxes included)")
        if any(included):
            return self.env._(
                "Total invoiced (usage lines, taxes included where the prices "
                "include them)"
            )
        return self.env._("Total invoiced (usage lines, before taxes)")

    def _write_title(self, sheet, formats, invoice):
        sheet.write_string(
            0,
            0,
            self.env._("Charge History: %(invoice)s", invoice=invoice.display_name),
            formats["title"],
        )
        sheet.write_string(
            1,
            0,
            self.env._(
                "Customer: %(customer)s", customer=invoice.partner_id.display_name
            ),
            formats["text"],
        )
        if invoice.billing_period_start and invoice.billing_period_end:
            period = self.env._(
                "Period: %(start)s to %(end)s",
                start=format_date(self.env, invoice.billing_period_start),
                end=format_date(self.env, invoice.billing_period_end),
            )
        else:
            period = self.env._(
                "Invoice Date: %(date)s",
                date=format_date(self.env, invoice.invoice_date) or "",
            )
        sheet.write_string(2, 0, period, formats["text"])

    def _write_charge(self, sheet, formats, columns, row, charge, money):
        for col, column in enumerate(columns):
            value = charge[column["key"]]
            kind = column["type"]
            if kind == "datetime":
                sheet.write_datetime(
                    row, col, self._local_datetime(value), formats["datetime"]
                )
            elif kind == "quantity":
                sheet.write_number(row, col, value, formats["quantity"])
            elif kind == "money":
                sheet.write_number(row, col, value, money)
            elif value:
                sheet.write_string(row, col, value, formats["text"])
            else:
                sheet.write_blank(row, col, None)

    def _write_label_row(self, sheet, formats, columns, row, label):
        for col in range(len(columns)):
            sheet.write_blank(row, col, None, formats["total"])
        sheet.write_string(row, 0, label, formats["total"])

    def _write_grand_totals(self, sheet, formats, columns, row, totals):
        """Under the blocks, after ``row``: the total of every charge and the
        total the invoice's usage lines bill. ``totals`` are (label, cells to
        add up, computed value, format); the formulas carry their value for the
        programs that do not compute formulas."""
        amount_col = [column["key"] for column in columns].index("amount")
        for label, cells, value, money in totals:
            row += 1
            self._write_label_row(sheet, formats, columns, row, label)
            formula = "=" + "+".join(cells) if cells else "=0"
            sheet.write_formula(row, amount_col, formula, money, value)
        return row
