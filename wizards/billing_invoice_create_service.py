from odoo import fields, models


class BillingInvoiceCreateService(models.TransientModel):
    _name = "billing.invoice.create.service"
    _inherit = ["billing.wizard.mixin"]
    _description = "Usage of a Service to Invoice"
    _billing_checked_fields = ("wizard_id", "product_id")
    _order = "product_id"

    wizard_id = fields.Many2one(
        comodel_name="billing.invoice.create", required=True, ondelete="cascade"
    )
    currency_id = fields.Many2one(related="wizard_id.currency_id")
    product_id = fields.Many2one(
        comodel_name="product.product", string="Service", readonly=True
    )
    charge_count = fields.Integer(string="Records", readonly=True)
    quantity = fields.Float(readonly=True, digits="Billing Usage")
    amount = fields.Monetary(readonly=True)
