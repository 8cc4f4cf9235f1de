from odoo import models


class BillingSellerMixin(models.AbstractModel):
    """The seller shown in the emails of a record of a customer (``partner_id``)
    in a company (``company_id``): the customer's reseller, else the company."""

    _name = "billing.seller.mixin"
    _description = "Billing Seller of a Customer's Record"

    def _billing_seller(self):
        """The reseller of the record's customer, the seller of its emails; else
        an empty recordset (the company)."""
        self.ensure_one()
        # sudo: the seller's name is shown to the customer, as the company is.
        return self.sudo().partner_id.commercial_partner_id.billing_reseller_id

    def _billing_seller_name(self):
        """Name of the seller (for the email templates)."""
        return (self._billing_seller() or self.sudo().company_id).name

    def _billing_email_from(self):
        """Sender of the emails (for the email templates): the invoice contact of
        the reseller, else the company."""
        seller = self._billing_seller()
        if seller:
            return seller._billing_seller_values()["email_formatted"]
        return self.sudo().company_id.email_formatted or False
