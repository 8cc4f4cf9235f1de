from odoo import fields, models


class AccountMoveLine(models.Model):
    _inherit = "account.move.line"

    billing_charge_ids = fields.One2many(
        comodel_name="billing.charge",
        inverse_name="invoice_line_id",
        string="Usage Records",
        readonly=True,
    )

    def _billing_topup_credit(self):
        """Credit (company currency) this top-up line grants once paid, and the
        price paid for it before taxes."""
        self.ensure_one()
        sign = -1 if self.move_id.move_type == "out_refund" else 1
        paid = -self.balance
        template = self.product_id.product_tmpl_id
        if template.billing_is_recharge:
            return paid, paid
        credit = template.currency_id._convert(
            template.billing_topup_credit,
            self.company_currency_id,
            self.company_id,
            self.move_id.invoice_date or self.move_id.date,
        )
        return sign * credit * self.quantity, paid
