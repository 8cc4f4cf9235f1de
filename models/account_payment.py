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
        # sudo: the wallet of the payment's own customer, debited again when a
        # wallet payment reset to draft is posted again.
        Wallet = self.env["billing.wallet"].sudo()
        reposted = Wallet._wallet_payments_to_repost(self)
        if not self.env.context.get("billing_wallet_payment"):
            wallet_payments = self.filtered(
                lambda p: (
                    p.journal_id == p.company_id.billing_wallet_journal_id
                    and p not in reposted
                )
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
        Wallet._debit_reposted_payments(reposted)
        # Payments without a journal entry settle their invoices without a
        # reconciliation, so without Odoo's paid-invoice hook.
        self.invoice_ids._billing_credit_topups()
        return res

    def _billing_check_undoable(self):
        """Refuse, before anything is written, what the posted entries of these
        payments will refuse once Odoo resets them to draft."""
        self.check_access("write")  # the user's rights first, as Odoo's write
        posted = self.move_id.filtered(lambda move: move.state == "posted")
        self.env["billing.wallet"].sudo()._check_entries_undoable(posted)

    def action_draft(self):
        # Refused before Odoo writes the payment's state (the entry's button_draft
        # checks again): a wallet payment whose amount was given back already.
        self._billing_check_undoable()
        res = super().action_draft()
        # Payments without a journal entry settle their invoices without a
        # reconciliation: a top-up they paid gives its credit back.
        self.env["billing.wallet"].sudo()._take_back_unpaid_topups(
            self.invoice_ids.sudo()
        )
        return res

    def action_cancel(self):
        # Refused before anything is written, as action_draft.
        self._billing_check_undoable()
        # A wallet payment reset to draft keeps its entry, cancelled with it: the
        # wallet movements it booked refer to it.
        kept = self.env["billing.wallet"].sudo()._wallet_payment_drafts(self)
        if kept:
            kept.state = "canceled"
            kept.move_id.button_cancel()
        res = super(AccountPayment, self - kept).action_cancel()
        self.env["billing.wallet"].sudo()._take_back_unpaid_topups(
            self.invoice_ids.sudo()
        )
        return res
