from odoo import fields, models

from .billing_precomputed import billing_add_precomputed


class AccountMoveLine(models.Model):
    _inherit = "account.move.line"

    billing_charge_ids = fields.One2many(
        comodel_name="billing.charge",
        inverse_name="invoice_line_id",
        string="Usage Records",
        readonly=True,
    )
    billing_released_count = fields.Integer(
        string="Usage Records Released",
        readonly=True,
        copy=False,
        help="Usage records this line billed that went back to pending when its "
        "invoice was cancelled; resetting the invoice to draft bills them here "
        "again, once they are all still pending.",
    )

    def _add_precomputed_values(self, vals_list):
        # The recurring run's precomputed invoices (billing_recurring_fast.py).
        return billing_add_precomputed(self, vals_list, super()._add_precomputed_values)

    def unlink(self):
        Charge = self.env["billing.charge"]
        Charge._release_invoice_lines(self)
        Charge._forget_lines(self)
        return super().unlink()

    def copy_data(self, default=None):
        vals_list = super().copy_data(default=default)
        if "move_reverse_cancel" in self.env.context:  # the lines of a reversal
            self.env["billing.charge"]._credit_note_line_vals(self, vals_list)
        return vals_list

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
