from odoo import api, fields, models
from odoo.exceptions import ValidationError


class BillingRecurringLine(models.Model):
    _name = "billing.recurring.line"
    _description = "Recurring Invoice Fixed Line"
    _order = "sequence, id"

    recurring_id = fields.Many2one(
        comodel_name="billing.recurring",
        required=True,
        ondelete="cascade",
        index=True,
    )
    company_id = fields.Many2one(
        related="recurring_id.company_id", store=True, index=True, precompute=True
    )
    sequence = fields.Integer(default=10)
    product_id = fields.Many2one(comodel_name="product.product", required=True)
    name = fields.Char(string="Description")
    quantity = fields.Float(
        default=1.0, digits="Product Unit of Measure", required=True
    )
    price_unit = fields.Float(
        string="Unit Price", digits="Product Price", required=True
    )

    @api.onchange("product_id")
    def _onchange_product_id(self):
        for line in self.filtered("product_id"):
            line.name = line.product_id.display_name
            line.price_unit = line.product_id.lst_price

    @api.constrains("quantity")
    def _check_quantity(self):
        for line in self:
            if line.quantity <= 0:
                raise ValidationError(
                    self.env._(
                        "Quantity of the fixed line %(product)s of %(recurring)s must "
                        "be positive.",
                        product=line.product_id.display_name,
                        recurring=line.recurring_id.display_name,
                    )
                )
