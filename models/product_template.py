from odoo import api, fields, models
from odoo.exceptions import ValidationError


class ProductTemplate(models.Model):
    _inherit = "product.template"

    billing_topup_credit = fields.Monetary(
        string="Wallet Credit",
        help="Credit a customer's wallet receives for each unit of this credit "
        "package once its invoice is paid, e.g. price 100, credit 150. 0: not a "
        "credit package.",
    )
    billing_is_recharge = fields.Boolean(
        string="Wallet Recharge",
        help="Invoice lines of this product credit the wallet with their amount "
        "before taxes once the invoice is paid.",
    )
    billing_pay_from_wallet = fields.Boolean(
        string="Pay from Wallet Automatically",
        help="Customer invoices with this product are paid from the customer's "
        "wallet when they are posted, if the balance covers them.",
    )

    @api.constrains("billing_topup_credit", "billing_is_recharge")
    def _check_billing_topup(self):
        for template in self:
            if (
                template.currency_id.compare_amounts(template.billing_topup_credit, 0)
                < 0
            ):
                raise ValidationError(
                    self.env._(
                        "Wallet Credit of %(product)s cannot be negative.",
                        product=template.display_name,
                    )
                )
            if template.billing_is_recharge and template.billing_topup_credit:
                raise ValidationError(
                    self.env._(
                        "%(product)s is a Wallet Recharge: its credit is the amount "
                        "invoiced, so its Wallet Credit must be 0.",
                        product=template.display_name,
                    )
                )

    def _get_product_accounts(self):
        """Credit packages and recharges are sold to the pending top-ups account:
        the money is owed to the customer as credit, not earned, until it is used."""
        accounts = super()._get_product_accounts()
        account = self.env.company.billing_wallet_topup_account_id
        if account and self._billing_is_topup():
            accounts["income"] = account
        return accounts

    def _billing_is_topup(self):
        """Whether invoice lines of this product credit the wallet when paid."""
        self.ensure_one()
        return self.billing_is_recharge or not self.currency_id.is_zero(
            self.billing_topup_credit
        )

    @api.ondelete(at_uninstall=False)
    def _unlink_except_billing_charges(self):
        # The database deletes the variants of a template deleted, and usage
        # records have no foreign key on their service (UsageMany2one).
        self.env["billing.charge"]._check_unreferenced(
            self.with_context(active_test=False).product_variant_ids, "product_id"
        )


class ProductProduct(models.Model):
    _inherit = "product.product"

    @api.ondelete(at_uninstall=False)
    def _unlink_except_billing_charges(self):
        # Usage records have no foreign key on their service (UsageMany2one).
        self.env["billing.charge"]._check_unreferenced(self, "product_id")
