"""The integrity of usage records, whose customer, service, company and users
columns have no database foreign key (see ``UsageMany2one``): the records they
point to cannot be deleted while they do, and a user deleted is forgotten, as
the keys did."""

from odoo import api, models


class ResPartner(models.Model):
    _inherit = "res.partner"

    @api.ondelete(at_uninstall=False)
    def _unlink_except_billing_charges(self):
        self.env["billing.charge"]._check_unreferenced(self, "partner_id")


class ProductProduct(models.Model):
    _inherit = "product.product"

    @api.ondelete(at_uninstall=False)
    def _unlink_except_billing_charges(self):
        self.env["billing.charge"]._check_unreferenced(self, "product_id")


class ProductTemplate(models.Model):
    _inherit = "product.template"

    @api.ondelete(at_uninstall=False)
    def _unlink_except_billing_charges(self):
        # The database deletes the variants of a template deleted.
        self.env["billing.charge"]._check_unreferenced(
            self.with_context(active_test=False).product_variant_ids, "product_id"
        )


class ResCompany(models.Model):
    _inherit = "res.company"

    @api.ondelete(at_uninstall=False)
    def _unlink_except_billing_charges(self):
        self.env["billing.charge"]._check_unreferenced(self, "company_id")


class ResUsers(models.Model):
    _inherit = "res.users"

    @api.ondelete(at_uninstall=False)
    def _unlink_forget_billing_charges(self):
        self.env["billing.charge"]._forget_users(self)
