from odoo import models
from odoo.exceptions import UserError


class AccountPayment(models.Model):
    _inherit = "account.payment"

    def action_post(self):
        if not self.env.context.get("billing_wallet_payment"):
            wallet_payments = self.filtered(
                lambda p: p.journal_id == p.company_id.billing_wallet_journal_id
            )
            if wallet_payments:
                raise UserError(
                    self.env._(
                        "Payment %(payment)s: the Customer Wallet journal only takes "
                        "payments made with Pay from Wallet, which also debit the "
                        "customer's wallet.",
                        payment=wallet_payments[0].display_name,
                    )
                )
        res = super().action_post()
        # Payments without a journal entry settle their invoices without a
        # reconciliation, so without Odoo's paid-invoice hook.
        self.invoice_ids._billing_credit_topups()
        return res
