from odoo import models


class AccountPartialReconcile(models.Model):
    _inherit = "account.partial.reconcile"

    def unlink(self):
        # Every unreconciliation goes through here: a wallet payment taken off its
        # invoice gives its amount back to the wallet, a top-up no longer paid
        # gives its credit back (see billing.wallet._unreconcile_plan).
        if not self:
            return super().unlink()
        # sudo: the wallets of these entries' customers, kept equal to the books
        # whoever unreconciles them.
        Wallet = self.env["billing.wallet"].sudo()
        plan = Wallet._unreconcile_plan(self.sudo())
        res = super().unlink()
        Wallet._after_unreconcile(plan)
        return res
