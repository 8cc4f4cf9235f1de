from odoo import api, fields, models
from odoo.exceptions import ValidationError

BILLING_MODES = [("prepaid", "Prepaid"), ("postpaid", "Postpaid")]


class ResCompany(models.Model):
    _inherit = "res.company"

    billing_offer_prepaid = fields.Boolean(
        string="Offer Prepaid Billing",
        default=True,
        help="Customers of this company may be billed in advance from a credit wallet.",
    )
    billing_offer_postpaid = fields.Boolean(
        string="Offer Postpaid Billing",
        default=True,
        help="Customers of this company may be billed after use by recurring invoices.",
    )
    billing_default_mode = fields.Selection(
        selection=BILLING_MODES,
        string="Default Billing Mode",
        default="prepaid",
        required=True,
        help="Billing mode given to new customers unless another one is chosen.",
    )
    billing_invoice_terms = fields.Html(
        string="Billing Terms and Conditions",
        translate=True,
        help="Terms and conditions proposed on invoices created from the Billing app.",
    )
    billing_customer_notes = fields.Html(
        translate=True,
        help="Notes to the customer proposed on invoices created from the Billing app.",
    )

    # -------------------------------------------------------------------------
    # CONSTRAINT METHODS
    # -------------------------------------------------------------------------

    @api.constrains(
        "billing_offer_prepaid", "billing_offer_postpaid", "billing_default_mode"
    )
    def _check_billing_modes(self):
        labels = dict(BILLING_MODES)
        for company in self:
            if not (company.billing_offer_prepaid or company.billing_offer_postpaid):
                raise ValidationError(
                    self.env._(
                        "Company %(company)s must offer at least one billing mode "
                        "(Offer Prepaid Billing or Offer Postpaid Billing).",
                        company=company.name,
                    )
                )
            if not company._billing_mode_offered(company.billing_default_mode):
                raise ValidationError(
                    self.env._(
                        "Default Billing Mode of company %(company)s is %(mode)s, "
                        "which the company does not offer.",
                        company=company.name,
                        mode=labels[company.billing_default_mode],
                    )
                )

    # -------------------------------------------------------------------------
    # BUSINESS METHODS
    # -------------------------------------------------------------------------

    def _billing_mode_offered(self, mode):
        """Tell whether this company offers the billing mode ``mode``."""
        self.ensure_one()
        return bool(self[f"billing_offer_{mode}"])
