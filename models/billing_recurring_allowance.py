from odoo import api, fields, models
from odoo.exceptions import ValidationError


class BillingRecurringAllowance(models.Model):
    _name = "billing.recurring.allowance"
    _description = "Recurring Invoice Included Allowance"

    recurring_id = fields.Many2one(
        comodel_name="billing.recurring",
        required=True,
        ondelete="cascade",
        index=True,
    )
    company_id = fields.Many2one(
        related="recurring_id.company_id", store=True, index=True, precompute=True
    )
    product_id = fields.Many2one(
        comodel_name="product.product", string="Service", required=True
    )
    quantity = fields.Float(
        string="Included per Period",
        digits="Billing Usage",
        required=True,
        help="Usage of this service included in each period, consumed first and "
        "reset every period.",
    )

    _sql_constraints = [
        (
            "product_uniq",
            "unique(recurring_id, product_id)",
            "A service has one allowance per recurring invoice.",
        ),
    ]

    @api.constrains("quantity")
    def _check_quantity(self):
        for allowance in self:
            if allowance.quantity <= 0:
                raise ValidationError(
                    self.env._(
                        "Included per Period of %(product)s on %(recurring)s must be "
                        "positive.",
                        product=allowance.product_id.display_name,
                        recurring=allowance.recurring_id.display_name,
                    )
                )
