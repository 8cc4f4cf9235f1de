from odoo import api, fields, models
from odoo.exceptions import AccessError, ValidationError

from .billing_charge import USAGE_DIGITS

PRICE_DIGITS_MIN = 2


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
    billing_service_reminder_days = fields.Integer(
        related="company_id.billing_service_reminder_days", readonly=False
    )
    billing_service_grace_days = fields.Integer(
        related="company_id.billing_service_grace_days", readonly=False
    )
    billing_low_balance_threshold = fields.Monetary(
        related="company_id.billing_low_balance_threshold", readonly=False
    )
    billing_zero_balance_alert = fields.Boolean(
        related="company_id.billing_zero_balance_alert", readonly=False
    )
    billing_alert_notify_reseller = fields.Boolean(
        related="company_id.billing_alert_notify_reseller", readonly=False
    )
    billing_price_digits = fields.Integer(
        string="Price Decimals",
        help="Decimals kept in sale prices, pricelist prices and invoice unit "
        "prices (Odoo's Product Price precision, for every company), from 2 to "
        "the usage precision of 6. Installing Billing raises it to 6 so that "
        "services priced at fractions of a cent keep their price.",
    )

    @api.model
    def get_values(self):
        res = super().get_values()
        res["billing_price_digits"] = self.env["decimal.precision"].precision_get(
            "Product Price"
        )
        return res

    def set_values(self):
        super().set_values()
        precision = self.env.ref("product.decimal_price", raise_if_not_found=False)
        if not precision or self.billing_price_digits == precision.digits:
            return
        if not self.env.user.has_group(
            "prepaid_postpaid_billing.group_billing_manager"
        ):
            raise AccessError(
                self.env._("Only Billing Administrators can change Price Decimals.")
            )
        if not PRICE_DIGITS_MIN <= self.billing_price_digits <= USAGE_DIGITS:
            raise ValidationError(
                self.env._(
                    "Price Decimals must be between %(min)s and %(max)s, not "
                    "%(digits)s.",
                    min=PRICE_DIGITS_MIN,
                    max=USAGE_DIGITS,
                    digits=self.billing_price_digits,
                )
            )
        # sudo: decimal precisions are technical records; the user was checked
        # to be a Billing Administrator just above.
        precision.sudo().digits = self.billing_price_digits
