import uuid

from odoo import api, fields, models
from odoo.exceptions import AccessError, UserError

from ..models.billing_wallet import WALLET_AMOUNT_LIMIT


class BillingWalletAdjust(models.TransientModel):
    _name = "billing.wallet.adjust"
    _inherit = ["billing.wizard.mixin"]
    _description = "Credit or Debit a Wallet"
    _billing_checked_fields = ("company_id", "partner_id")

    partner_id = fields.Many2one(
        comodel_name="res.partner",
        string="Customer",
        required=True,
        domain="['|', ('is_company', '=', True), ('parent_id', '=', False)]",
    )
    company_id = fields.Many2one(
        comodel_name="res.company", required=True, default=lambda self: self.env.company
    )
    currency_id = fields.Many2one(related="company_id.currency_id")
    direction = fields.Selection(
        selection=[("credit", "Credit"), ("debit", "Debit")],
        required=True,
        default="credit",
    )
    amount = fields.Monetary(required=True)
    reason = fields.Char(required=True)
    balance = fields.Monetary(
        string="Current Balance", compute="_compute_balance", readonly=True
    )

    @api.depends("partner_id", "company_id")
    def _compute_balance(self):
        Wallet = self.env["billing.wallet"].sudo()
        for wizard in self:
            # Only the balance of a customer and company the user may use: an
            # onchange is not checked at create.
            wallet = (
                Wallet._get_wallet(wizard.partner_id, wizard.company_id, create=False)
                if wizard.partner_id and not wizard._billing_access_problem()
                else Wallet
            )
            wizard.balance = wallet.balance

    def action_apply(self):
        """Credit or debit the wallet by hand, with a reason: Billing
        Administrators only."""
        self.ensure_one()
        # A wallet row locked by a concurrent debit or ingest is waited for,
        # not a serialization error (see _start_read_committed).
        self.env["billing.wallet"]._start_read_committed()
        if not self.env.user.has_group(
            "prepaid_postpaid_billing.group_billing_manager"
        ):
            raise AccessError(
                self.env._("Only Billing Administrators can credit or debit a wallet.")
            )
        self._billing_check_access()
        if self.currency_id.compare_amounts(self.amount, 0) <= 0:
            raise UserError(
                self.env._(
                    "Amount of the wallet %(direction)s for %(partner)s must be "
                    "positive.",
                    direction=self.direction,
                    partner=self.partner_id.display_name,
                )
            )
        if self.currency_id.compare_amounts(self.amount, WALLET_AMOUNT_LIMIT) >= 0:
            raise UserError(
                self.env._(
                    "Amount of the wallet %(direction)s for %(partner)s must be "
                    "below %(limit)s: a wallet keeps its balance exact to the "
                    "fraction of a cent only up to there.",
                    direction=self.direction,
                    partner=self.partner_id.display_name,
                    limit=self.currency_id.format(WALLET_AMOUNT_LIMIT),
                )
            )
        if not self.reason.strip():
            raise UserError(
                self.env._(
                    "Reason of the wallet %(direction)s for %(partner)s is required.",
                    direction=self.direction,
                    partner=self.partner_id.display_name,
                )
            )
        company = self.company_id
        amount = self.amount if self.direction == "credit" else -self.amount
        # sudo: the user was checked to be a Billing Administrator just above.
        wallet = self.env["billing.wallet"].sudo()._get_wallet(self.partner_id, company)
        # A debit the balance cannot cover, or a credit beyond what a wallet
        # holds, is refused before the journal entry is written: a caller that
        # catches the refusal keeps nothing. _apply_movements checks it again,
        # in the same statement as it changes the balance.
        wallet._check_balance_change(amount)
        label = self.env._(
            "Manual %(direction)s: %(reason)s",
            direction=dict(self._fields["direction"].selection)[self.direction],
            reason=self.reason,
        )
        entry = wallet._post_entry(
            label,
            [
                (company.billing_wallet_bonus_account_id, amount, label),
                (company.billing_wallet_account_id, -amount, label),
            ],
        )
        move = wallet._apply_movements(
            [
                {
                    "kind": "manual",
                    "name": label,
                    "amount": amount,
                    "origin": self.reason,
                    "idempotency_key": f"manual:{uuid.uuid4()}",
                    "account_move_id": entry.id,
                }
            ]
        )
        self.partner_id.message_post(
            body=self.env._(
                "Wallet %(direction)s of %(amount)s: %(reason)s. New balance: "
                "%(balance)s.",
                direction=dict(self._fields["direction"].selection)[self.direction],
                amount=self.currency_id.format(self.amount),
                reason=self.reason,
                balance=self.currency_id.format(move.balance_after),
            )
        )
        return {"type": "ir.actions.act_window_close"}
