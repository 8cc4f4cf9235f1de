from odoo import fields, models


class BillingRunFailure(models.Model):
    _name = "billing.run.failure"
    _description = "Billing Run Failure"
    _order = "id"

    run_id = fields.Many2one(
        comodel_name="billing.run", required=True, ondelete="cascade", index=True
    )
    company_id = fields.Many2one(
        related="run_id.company_id", store=True, index=True, precompute=True
    )
    recurring_id = fields.Many2one(
        comodel_name="billing.recurring",
        string="Recurring Invoice",
        ondelete="set null",
    )
    service_id = fields.Many2one(comodel_name="billing.service", ondelete="set null")
    partner_id = fields.Many2one(comodel_name="res.partner", string="Customer")
    error = fields.Text(required=True)
