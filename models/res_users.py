from odoo import api, models


class ResUsers(models.Model):
    _inherit = "res.users"

    @api.model_create_multi
    def create(self, vals_list):
        users = super().create(vals_list)
        # A portal user of a reseller is a reseller's user.
        users.filtered("share").partner_id._billing_sync_reseller_users()
        return users

    def write(self, vals):
        res = super().write(vals)
        if "partner_id" in vals:
            self.filtered("share").partner_id._billing_sync_reseller_users()
        return res

    @api.model
    def _signup_create_user(self, values):
        """Customers who sign up on their own through the portal are prepaid.

        Invited partners (``partner_id`` in ``values``) keep the billing mode
        chosen when they were created.
        """
        if "partner_id" in values:
            return super()._signup_create_user(values)
        user = super(
            ResUsers, self.with_context(billing_self_signup=True)
        )._signup_create_user(values)
        # sudo: the partner was just created by this signup; its billing mode is
        # set by policy, not chosen by the visitor.
        user.partner_id.with_context(billing_self_signup=True).sudo().write(
            {"billing_mode": "prepaid"}
        )
        return user

    @api.ondelete(at_uninstall=False)
    def _unlink_forget_billing_charges(self):
        # Usage records have no foreign key on their log users (UsageMany2one):
        # a user deleted is emptied from them, as ON DELETE SET NULL did.
        self.env["billing.charge"]._forget_users(self)
