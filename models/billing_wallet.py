from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL


class BillingWallet(models.Model):
    _name = "billing.wallet"
    _description = "Customer Credit Wallet"
    _order = "id"
    _check_company_auto = True
    _rec_names_search = ["partner_id"]

    partner_id = fields.Many2one(
        comodel_name="res.partner",
        string="Customer",
        required=True,
        readonly=True,
        index=True,
        ondelete="restrict",
    )
    company_id = fields.Many2one(
        comodel_name="res.company",
        required=True,
        readonly=True,
        ondelete="cascade",
    )
    currency_id = fields.Many2one(related="company_id.currency_id")
    balance = fields.Monetary(
        readonly=True,
        help="Credit available to the customer. Changed only with the wallet row "
        "locked, never below zero.",
    )
    move_ids = fields.One2many(
        comodel_name="billing.wallet.move",
        inverse_name="wallet_id",
        string="Movements",
        readonly=True,
    )

    _sql_constraints = [
        (
            "partner_company_uniq",
            "unique(partner_id, company_id)",
            "A customer has one wallet per company.",
        ),
        (
            "balance_not_negative",
            "CHECK(balance >= 0)",
            "A wallet balance cannot go below zero.",
        ),
    ]

    # -------------------------------------------------------------------------
    # COMPUTE METHODS
    # -------------------------------------------------------------------------

    @api.depends("partner_id", "company_id")
    def _compute_display_name(self):
        for wallet in self:
            wallet.display_name = self.env._(
                "Wallet of %(partner)s", partner=wallet.partner_id.display_name
            )

    # -------------------------------------------------------------------------
    # ACTION METHODS
    # -------------------------------------------------------------------------

    def action_view_moves(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "prepaid_postpaid_billing.billing_wallet_move_action"
        )
        action["domain"] = [("wallet_id", "=", self.id)]
        action["context"] = {}
        return action

    # -------------------------------------------------------------------------
    # BUSINESS METHODS
    # -------------------------------------------------------------------------

    @api.model
    def _get_wallet(self, partner, company, create=True):
        """The wallet of ``partner``'s commercial partner in ``company`` (created
        when missing with ``create``); an empty recordset if there is none."""
        partner = partner.commercial_partner_id
        return self._get_wallets(partner, company, create=create).get(
            partner.id, self.browse()
        )

    @api.model
    def _get_wallets(self, partners, company, create=True):
        """The wallets of ``partners``' commercial partners in ``company``, by
        commercial partner id, in one query (two when some are created; creation
        is safe against a concurrent one)."""
        commercial = partners.commercial_partner_id
        domain = [("partner_id", "in", commercial.ids), ("company_id", "=", company.id)]
        wallets = self.search(domain)
        missing = set(commercial.ids) - set(wallets.partner_id.ids)
        if missing and create:
            self.env.cr.execute(
                SQL(
                    """
                    INSERT INTO billing_wallet
                        (partner_id, company_id, balance, create_uid, write_uid,
                         create_date, write_date)
                    SELECT partner_id, %(company)s, 0, %(uid)s, %(uid)s,
                           NOW() AT TIME ZONE 'UTC', NOW() AT TIME ZONE 'UTC'
                      FROM unnest(%(partners)s::int4[]) AS t(partner_id)
                    ON CONFLICT (partner_id, company_id) DO NOTHING
                    """,
                    company=company.id,
                    uid=self.env.uid,
                    partners=sorted(missing),
                )
            )
            wallets = self.search(domain)
        return {wallet.partner_id.id: wallet for wallet in wallets}

    def _apply_movements(self, movements):
        """Add ``movements`` (``billing.wallet.move`` values, each with a signed
        ``amount`` and a unique ``idempotency_key``) to this wallet.

        The wallet row is locked first, so that concurrent movements of one wallet
        are applied one after the other. Movements whose key is already recorded
        are not applied again: the existing ledger lines are returned instead. The
        balance is checked and updated in one statement and never goes below zero:
        a debit it cannot cover raises a ``UserError`` and writes nothing.
        """
        self.ensure_one()
        self._lock()
        Move = self.env["billing.wallet.move"]
        keys = [vals["idempotency_key"] for vals in movements]
        existing = Move.search([("idempotency_key", "in", keys)])
        if existing:
            if len(existing) != len(keys):
                raise UserError(
                    self.env._(
                        "Wallet of %(partner)s: movements %(keys)s were recorded only "
                        "in part.",
                        partner=self.partner_id.display_name,
                        keys=", ".join(keys),
                    )
                )
            return existing
        currency = self.currency_id
        amounts = [currency.round(vals["amount"]) for vals in movements]
        delta = currency.round(sum(amounts))
        self.env.cr.execute(
            SQL(
                """
                UPDATE billing_wallet
                   SET balance = balance + %(delta)s,
                       write_uid = %(uid)s,
                       write_date = NOW() AT TIME ZONE 'UTC'
                 WHERE id = %(id)s AND balance + %(delta)s >= 0
             RETURNING balance
                """,
                delta=delta,
                uid=self.env.uid,
                id=self.id,
            )
        )
        row = self.env.cr.fetchone()
        self.invalidate_recordset(["balance"])
        if row is None:
            raise UserError(
                self.env._(
                    "Wallet of %(partner)s: the balance of %(balance)s does not cover "
                    "a debit of %(amount)s.",
                    partner=self.partner_id.display_name,
                    balance=currency.format(self.balance),
                    amount=currency.format(-delta),
                )
            )
        balance_after = row[0] - delta
        vals_list = []
        for vals, amount in zip(movements, amounts, strict=True):
            balance_after += amount
            vals_list.append(
                {
                    **vals,
                    "wallet_id": self.id,
                    "amount": amount,
                    "balance_after": currency.round(balance_after),
                }
            )
        moves = Move.create(vals_list)
        # Amounts computed from wallets, cached in this transaction, are stale now.
        self.env["res.partner"].invalidate_model(["billing_balance"])
        self.env["account.move"].invalidate_model(
            ["billing_topup_credited", "billing_wallet_balance"]
        )
        return moves

    def _post_entry(self, ref, lines, date=None):
        """Post a journal entry of the wallet journal with ``lines``: a list of
        ``(account, balance, label)``; the wallet account lines carry the customer as
        partner. Returns the posted ``account.move``."""
        self.ensure_one()
        company = self.company_id
        journal = company.billing_wallet_journal_id
        if not journal or not company.billing_wallet_account_id:
            raise UserError(
                self.env._(
                    "Company %(company)s has no Customer Wallet Account or Journal: "
                    "install a chart of accounts, then set them in Billing settings.",
                    company=company.name,
                )
            )
        move = (
            self.env["account.move"]
            .with_company(company)
            .create(
                {
                    "move_type": "entry",
                    "journal_id": journal.id,
                    "date": date or fields.Date.context_today(self),
                    "ref": ref,
                    "line_ids": [
                        fields.Command.create(
                            {
                                "account_id": account.id,
                                "partner_id": self.partner_id.id,
                                "name": label,
                                "balance": balance,
                            }
                        )
                        for account, balance, label in lines
                        if not self.currency_id.is_zero(balance)
                    ],
                }
            )
        )
        move.action_post()
        return move

    def _lock(self):
        """Lock these wallet rows until the end of the transaction, in id order so
        that concurrent lockers of several wallets cannot deadlock."""
        self.env.cr.execute(
            SQL(
                "SELECT id FROM billing_wallet WHERE id = ANY(%s)"
                " ORDER BY id FOR UPDATE",
                self.ids,
            )
        )

    def _has_movement(self, key):
        return bool(
            self.env["billing.wallet.move"].search_count(
                [("idempotency_key", "=", key)], limit=1
            )
        )
