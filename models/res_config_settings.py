from odoo import fields, models


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    billing_offer_prepaid = fields.Boolean(
        related="company_id.billing_offer_prepaid", readonly=False
    )
    billing_offer_postpaid = fields.Boolean(
        related="company_id.billing_offer_postpaid", readonly=False
    )
    billing_default_mode = fields.Selection(
        related="company_id.billing_default_mode", readonly=False
    )
    billing_invoice_terms = fields.Html(
        related="company_id.billing_invoice_terms", readonly=False
    )
    billing_customer_notes = fields.Html(
        related="company_id.billing_customer_notes", readonly=False
    )
    billing_wallet_allow_payments = fields.Boolean(
        related="company_id.billing_wallet_allow_payments", readonly=False
    )
    billing_topup_expiry_hours = fields.Integer(
        related="company_id.billing_topup_expiry_hours", readonly=False
    )
    billing_wallet_account_id = fields.Many2one(
        related="company_id.billing_wallet_account_id", readonly=False
    )
    billing_wallet_journal_id = fields.Many2one(
        related="company_id.billing_wallet_journal_id", readonly=False
    )
    billing_wallet_topup_account_id = fields.Many2one(
        related="company_id.billing_wallet_topup_account_id", readonly=False
    )
    billing_wallet_bonus_account_id = fields.Many2one(
        related="company_id.billing_wallet_bonus_account_id", readonly=False
    )
    billing_generation_mode = fields.Selection(
        related="company_id.billing_generation_mode", readonly=False
    )
