from odoo import api, fields, models
from odoo.exceptions import UserError


class AccountPayment(models.Model):
    _inherit = "account.payment"

    billing_payment_method = fields.Selection(
        selection=[
            ("bank", "Bank or Cash"),
            ("online", "Online"),
            ("wallet", "Wallet"),
        ],
        string="Received By",
        compute="_compute_billing_payment_method",
        store=True,
        help="How the customer paid: recorded by hand from a bank or cash journal, "
        "online through a payment provider, or from the customer's wallet credit.",
    )

    @api.depends("journal_id", "payment_transaction_id")
    def _compute_billing_payment_method(self):
        for payment in self:
            if payment.journal_id == payment.company_id.billing_wallet_journal_id:
                payment.billing_payment_method = "wallet"
            elif payment.payment_transaction_id:
                payment.billing_payment_method = "online"
            else:
                payment.billing_payment_method = "bank"

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
