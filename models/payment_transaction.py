from odoo import models


class PaymentTransaction(models.Model):
    _inherit = "payment.transaction"

    def _post_process(self):
        # A payment confirmed after its top-up invoice expired: reopen the invoice
        # first, so that the payment created next reconciles with it.
        self.filtered(
            lambda tx: tx.state == "done"
        ).invoice_ids._billing_reopen_expired_topups()
        return super()._post_process()
