import io

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools.misc import xlsxwriter

XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class BillingXlsxReport(models.AbstractModel):
    """What the billing Excel reports share: the workbook, its cell formats and
    the number formats of amounts in a currency. A report inherits it and fills
    its sheets in ``_write_workbook``."""

    _name = "billing.xlsx.report"
    _description = "Billing Excel Report"
    _header_row = 0

    # -------------------------------------------------------------------------
    # BUSINESS METHODS
    # -------------------------------------------------------------------------

    def _generate_xlsx(self, *args, **kwargs):
        """Content (bytes) of the workbook that ``_write_workbook(workbook,
        formats, *args, **kwargs)`` fills."""
        output = io.BytesIO()
        workbook = xlsxwriter.Workbook(output, {"in_memory": True})
        formats = self._get_formats(workbook)
        self._write_workbook(workbook, formats, *args, **kwargs)
        workbook.close()
        return output.getvalue()

    def _write_workbook(self, workbook, formats, *args, **kwargs):
        """Fill ``workbook``; each report implements it."""
        raise NotImplementedError()

    def _get_formats(self, workbook):
        """The cell formats of the report by name; amounts get theirs per
        currency from ``_money_format``, cached in ``formats["money"]``."""
        header = {"bold": True, "bg_color": "#E9ECEF", "bottom": 1, "text_wrap": True}
        total = {"bold": True, "top": 1}
        return {
            "title": workbook.add_format({"bold": True, "font_size": 14}),
            "subtitle": workbook.add_format({"italic": True, "font_color": "#6C757D"}),
            "header": workbook.add_format(header),
            "header_number": workbook.add_format({**header, "align": "right"}),
            "text": workbook.add_format({}),
            "section": workbook.add_format({"bold": True, "bg_color": "#F8F9FA"}),
            "total": workbook.add_format(total),
            "integer": workbook.add_format({"num_format": "0"}),
            "quantity": workbook.add_format({}),
            "quantity_total": workbook.add_format(total),
            "date": workbook.add_format({"num_format": "yyyy-mm-dd"}),
            "datetime": workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"}),
            "money": {},
        }

    def _write_header(self, sheet, formats, columns):
        """The header row (``_header_row``) of ``columns``, dicts with their
        ``label``, ``type`` and ``width``; numbers are aligned right."""
        for col, column in enumerate(columns):
            number = column["type"] in ("money", "quantity", "integer")
            sheet.write_string(
                self._header_row,
                col,
                column["label"],
                formats["header_number" if number else "header"],
            )
            sheet.set_column(col, col, column["width"])

    @api.model
    def _currency_num_format(self, currency, digits=None, max_digits=None):
        """Excel number format of amounts in ``currency``: its symbol on its
        side, ``digits`` decimals (the currency's by default) and up to
        ``max_digits`` when more are significant."""
        digits = currency.decimal_places if digits is None else digits
        max_digits = max(digits, max_digits or 0)
        number = "#,##0"
        if max_digits:
            number += "." + "0" * digits + "#" * (max_digits - digits)
        symbol = (currency.symbol or currency.name or "").replace('"', "")
        if currency.position == "after":
            return f'{number} "{symbol}"'
        return f'"{symbol}"{number}'

    def _money_format(
        self, workbook, formats, currency, digits=None, max_digits=None, total=False
    ):
        """The cell format of amounts in ``currency`` (see
        ``_currency_num_format``), bold above a rule for totals."""
        key = (currency.id, digits, max_digits, total)
        if key not in formats["money"]:
            props = {
                "num_format": self._currency_num_format(currency, digits, max_digits)
            }
            if total:
                props.update(bold=True, top=1)
            formats["money"][key] = workbook.add_format(props)
        return formats["money"][key]

    def _local_datetime(self, value):
        """``value`` (UTC) in the user's time zone, naive as Excel wants it."""
        if not value:
            return None
        return fields.Datetime.context_timestamp(self, value).replace(tzinfo=None)

    def _check_row_count(self, worksheet, row_count):
        """Refuse a sheet of more rows than Excel opens."""
        if row_count > worksheet.xls_rowmax:
            raise UserError(
                self.env._(
                    "There are too many rows (%(count)s rows, limit: %(limit)s) for "
                    "an Excel sheet; narrow the selection.",
                    count=row_count,
                    limit=worksheet.xls_rowmax,
                )
            )
