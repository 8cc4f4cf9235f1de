from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL

MOVE_KINDS = [
    ("topup", "Top-up"),
    ("bonus", "Bonus"),
    ("invoice_payment", "Invoice Payment"),
    ("usage", "Usage"),
    ("renewal", "Renewal"),
    ("manual", "Manual"),
    ("refund", "Refund"),
    ("recharge", "Reseller Recharge"),
]
# Debits of prepaid usage and renewals: booked later, in aggregates, by the
# consumption posting (billing.wallet._post_consumption).
CONSUMPTION_KINDS = ("usage", "renewal")


class BillingWalletMove(models.Model):
    _name = "billing.wallet.move"
    _description = "Wallet Movement"
    _order = "id desc"
    _check_company_auto = True

    wallet_id = fields.Many2one(
        comodel_name="billing.wallet",
        required=True,
        readonly=True,
        index=True,
        ondelete="restrict",
    )
    partner_id = fields.Many2one(
        related="wallet_id.partner_id", store=True, index=True, string="Customer"
    )
    company_id = fields.Many2one(related="wallet_id.company_id", store=True)
    currency_id = fields.Many2one(related="wallet_id.currency_id")
    date = fields.Datetime(default=fields.Datetime.now, required=True, readonly=True)
    kind = fields.Selection(selection=MOVE_KINDS, required=True, readonly=True)
    name = fields.Char(string="Description", required=True, readonly=True)
    amount = fields.Float(
        required=True,
        readonly=True,
        digits="Billing Usage",
        help="Positive for a credit, negative for a debit; exact to the usage "
        "precision.",
    )
    balance_after = fields.Float(readonly=True, digits="Billing Usage")
    # What the consumption posting books a debit of usage or renewals by:
    # without it, the posting would read the charges by their movement, and
    # that index would cost every prepaid usage record ingested.
    usage_amounts = fields.Json(
        readonly=True,
        copy=False,
        help="Usage and renewals: the exact amount debited per service, "
        "{product id: amount as decimal text}.",
    )
    origin = fields.Char(readonly=True, help="What caused the movement.")
    idempotency_key = fields.Char(
        required=True,
        readonly=True,
        help="Unique key of the event: the same event is never applied twice.",
    )
    account_move_id = fields.Many2one(
        comodel_name="account.move",
        string="Journal Entry",
        readonly=True,
        index="btree_not_null",
        ondelete="restrict",
        help="The journal entry that booked this movement. Usage is booked later, "
        "in aggregates, by the consumption posting: until then it has none.",
    )
    invoice_id = fields.Many2one(
        comodel_name="account.move",
        readonly=True,
        index="btree_not_null",
        ondelete="restrict",
    )
    user_id = fields.Many2one(
        comodel_name="res.users",
        string="Done By",
        default=lambda self: self.env.user,
        readonly=True,
    )

    _sql_constraints = [
        (
            "idempotency_key_uniq",
            "unique(idempotency_key)",
            "This wallet movement was already recorded.",
        ),
    ]

    def init(self):
        # The consumption posting selects the usage and renewals not yet booked.
        self.env.cr.execute(
            SQL(
                """
                DROP INDEX IF EXISTS billing_wallet_move_unposted_idx;
                CREATE INDEX IF NOT EXISTS billing_wallet_move_unposted_consumption_idx
                    ON billing_wallet_move (wallet_id)
                 WHERE kind IN ('usage', 'renewal') AND account_move_id IS NULL
                """
            )
        )
        self._fill_usage_amounts()

    def _fill_usage_amounts(self):
        """Give the usage and renewal debits not yet posted that an earlier
        version recorded their ``usage_amounts``, from their charges."""
        cr = self.env.cr
        cr.execute(
            SQL(
                """
                SELECT id FROM billing_wallet_move
                 WHERE kind IN ('usage', 'renewal') AND account_move_id IS NULL
                   AND usage_amounts IS NULL
                """
            )
        )
        move_ids = [row[0] for row in cr.fetchall()]
        if not move_ids:
            return
        cr.execute(
            SQL(
                """
                UPDATE billing_wallet_move m SET usage_amounts = v.amounts
                  FROM (SELECT wallet_move_id,
                               jsonb_object_agg(product_id::text, amount::text)
                                   AS amounts
                          FROM (SELECT wallet_move_id, product_id,
                                       SUM(amount) AS amount
                                  FROM billing_charge
                                 WHERE wallet_move_id = ANY(%s)
                              GROUP BY wallet_move_id, product_id) AS s
                      GROUP BY wallet_move_id) AS v
                 WHERE m.id = v.wallet_move_id
                """,
                move_ids,
            )
        )

    # -------------------------------------------------------------------------
    # CRUD METHODS
    # -------------------------------------------------------------------------

    def write(self, vals):
        if vals:
            raise UserError(
                self.env._("Wallet movements cannot be changed: record a new movement.")
            )
        return super().write(vals)

    @api.ondelete(at_uninstall=False)
    def _unlink_never(self):
        raise UserError(
            self.env._("Wallet movements cannot be deleted: record a new movement.")
        )
