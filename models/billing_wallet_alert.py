"""Low-balance alerts of prepaid wallets (issue 15, item 5).

Two levels, each sent once per crossing: *low* when a debit leaves the balance
below the wallet's threshold (its own, else its company's), *zero* (when the
company enables it) when a debit leaves it at zero. The wallet row records
whether each level was sent (``low_balance_alerted``, ``zero_balance_alerted``);
a credit that brings the balance back to the threshold or above (above zero)
re-arms it, in the credit's own transaction.

A debit never sends anything itself: it only registers its wallet for a check
that runs once the debit's transaction has committed, on a cursor of its own
(``cr.postcommit``), so that a debit rolled back alerts no one. The hourly
*Billing: send low-balance alerts* action is the backstop: it checks every
prepaid wallet below a level it was not alerted of. The state is changed by
``UPDATE ... WHERE NOT alerted RETURNING id`` on the locked rows, in the
transaction that queues the emails: however many checks run at once, each
crossing is emailed once.
"""

import logging

from psycopg2 import errors

from odoo import SUPERUSER_ID, api, fields, models
from odoo.exceptions import AccessError, ValidationError
from odoo.tools import SQL

from .billing_wallet import WALLET_AMOUNT_LIMIT

_logger = logging.getLogger(__name__)

# The wallets a transaction debited, in its cursor's postcommit data.
ALERT_PENDING_KEY = "prepaid_postpaid_billing.wallet_alerts"
# Fields of a wallet a Billing Administrator may change (the rest is changed by
# movements only, with the row locked).
ALERT_EDITABLE_FIELDS = frozenset(
    {"low_balance_threshold_custom", "low_balance_threshold"}
)
ALERT_TEMPLATES = {
    "low": "prepaid_postpaid_billing.mail_template_wallet_low_balance",
    "zero": "prepaid_postpaid_billing.mail_template_wallet_zero_balance",
}
RESELLER_TEMPLATE = "prepaid_postpaid_billing.mail_template_wallet_alert_reseller"
# Wallets each scheduled pass checks in one transaction.
ALERT_CRON_BATCH = 200


def _check_after_commit(registry, wallet_ids):
    """Post-commit hook of a transaction that debited ``wallet_ids``: check them
    on a new cursor, at READ COMMITTED so that a check waiting for a wallet row
    another transaction holds then reads its committed balance and state."""
    try:
        with registry.cursor() as cr:
            # The registry given, not looked up by name under its lock.
            cr.transaction = api.Transaction(registry)
            cr.execute(SQL("SET TRANSACTION ISOLATION LEVEL READ COMMITTED"))
            env = api.Environment(cr, SUPERUSER_ID, {})
            env["billing.wallet"].browse(sorted(wallet_ids)).exists()._alert_check()
    except Exception:
        # The debit is committed already: its request must not fail for this.
        _logger.exception(
            "Low-balance alerts of wallets %s not sent; the scheduled check sends them",
            sorted(wallet_ids),
        )


class BillingWallet(models.Model):
    _name = "billing.wallet"
    _inherit = ["billing.wallet", "billing.seller.mixin"]

    low_balance_threshold_custom = fields.Boolean(
        string="Own Alert Threshold",
        help="Alert this customer at its own threshold instead of the company's "
        "Low Balance Alert threshold.",
    )
    low_balance_threshold = fields.Monetary(
        help="With Own Alert Threshold: the customer is emailed once when a debit "
        "leaves the balance below this amount (0: never).",
    )
    low_balance_threshold_effective = fields.Monetary(
        string="Alert Threshold",
        compute="_compute_low_balance_threshold_effective",
        help="The threshold this wallet is alerted at: its own, else its "
        "company's (0: no low-balance alert).",
    )
    low_balance_alerted = fields.Boolean(
        string="Low Balance Alert Sent",
        readonly=True,
        copy=False,
        help="The customer was emailed that the balance fell below the threshold; "
        "re-armed when a credit brings it back to the threshold or above.",
    )
    low_balance_alert_date = fields.Datetime(
        string="Last Low Balance Alert", readonly=True, copy=False
    )
    zero_balance_alerted = fields.Boolean(
        string="Zero Balance Alert Sent",
        readonly=True,
        copy=False,
        help="The customer was emailed that the balance reached zero; re-armed "
        "when a credit brings it above zero.",
    )
    zero_balance_alert_date = fields.Datetime(
        string="Last Zero Balance Alert", readonly=True, copy=False
    )

    # -------------------------------------------------------------------------
    # COMPUTE AND CONSTRAINT METHODS
    # -------------------------------------------------------------------------

    @api.depends(
        "low_balance_threshold_custom",
        "low_balance_threshold",
        "company_id.billing_low_balance_threshold",
    )
    def _compute_low_balance_threshold_effective(self):
        for wallet in self:
            wallet.low_balance_threshold_effective = wallet._alert_threshold()

    @api.constrains("low_balance_threshold")
    def _check_low_balance_threshold(self):
        for wallet in self:
            amount = wallet.low_balance_threshold
            if amount < 0 or amount >= WALLET_AMOUNT_LIMIT:
                raise ValidationError(
                    self.env._(
                        "Low Balance Threshold of the wallet of %(partner)s must be "
                        "from 0 to below %(limit)s (%(amount)s).",
                        partner=wallet.partner_id.display_name,
                        limit=wallet._format_exact(WALLET_AMOUNT_LIMIT),
                        amount=wallet._format_exact(amount),
                    )
                )

    # -------------------------------------------------------------------------
    # CRUD METHODS
    # -------------------------------------------------------------------------

    def write(self, vals):
        """Billing Administrators change a wallet's alert threshold only: its
        balance and the rest change through movements."""
        forbidden = set(vals) - ALERT_EDITABLE_FIELDS
        if not self.env.su and forbidden:
            raise AccessError(
                self.env._(
                    "Wallets: only the alert threshold can be changed (not "
                    "%(fields)s); the balance changes through movements (Credit or "
                    "Debit a Wallet).",
                    fields=", ".join(sorted(forbidden)),
                )
            )
        return super().write(vals)

    # -------------------------------------------------------------------------
    # BUSINESS METHODS
    # -------------------------------------------------------------------------

    def _alert_threshold(self):
        """The low-balance threshold of this wallet (0: none)."""
        self.ensure_one()
        if self.low_balance_threshold_custom:
            return self.low_balance_threshold
        return self.company_id.billing_low_balance_threshold

    def _alert_watched(self):
        """Whether a debit of this wallet may call for an alert: a threshold, or
        the zero level enabled."""
        self.ensure_one()
        return bool(
            self._alert_threshold() > 0 or self.company_id.billing_zero_balance_alert
        )

    def _alert_after_debit(self):
        """Have these wallets, just debited, checked once this transaction has
        committed (see ``_check_after_commit``): one hook per transaction, for
        all the wallets it debits. A debit rolled back is never checked."""
        wallets = self.sudo().filtered(lambda wallet: wallet._alert_watched())
        if not wallets:
            return
        postcommit = self.env.cr.postcommit
        pending = postcommit.data.get(ALERT_PENDING_KEY)
        if pending is None:
            pending = postcommit.data[ALERT_PENDING_KEY] = set()
            registry = self.env.registry
            postcommit.add(lambda: _check_after_commit(registry, pending))
        pending.update(wallets.ids)

    def _alert_rearm(self, all_wallets=False):
        """Re-arm the levels these wallets (``all_wallets``: every wallet) were
        alerted of whose balance is no longer below them (after a credit, or a
        threshold changed)."""
        if not (self or all_wallets):
            return []
        self._alert_flush()
        self.env.cr.execute(
            SQL(
                """
                UPDATE billing_wallet w
                   SET low_balance_alerted =
                           w.low_balance_alerted AND w.balance < %(threshold)s,
                       zero_balance_alerted = w.zero_balance_alerted AND w.balance <= 0
                  FROM res_company c
                 WHERE c.id = w.company_id AND %(wallets)s
                   AND ((w.low_balance_alerted AND w.balance >= %(threshold)s)
                        OR (w.zero_balance_alerted AND w.balance > 0))
             RETURNING w.id
                """,
                threshold=self._alert_threshold_sql(),
                wallets=SQL("TRUE") if all_wallets else SQL("w.id = ANY(%s)", self.ids),
            )
        )
        rearmed = [row[0] for row in self.env.cr.fetchall()]
        if rearmed:
            self.browse(rearmed).invalidate_recordset(
                ["low_balance_alerted", "zero_balance_alerted"]
            )
        return rearmed

    def _alert_check(self, skip_locked=False):
        """Email the alerts these wallets are due, each level once per crossing.

        The rows are locked in id order (``skip_locked``: those another
        transaction holds are left for the next check), then each level is
        marked sent by one ``UPDATE ... WHERE NOT alerted RETURNING id``, in
        the transaction that queues its emails: a concurrent check finds it
        marked and sends nothing. The zero level goes first; a wallet alerted
        at zero is not sent the low alert too. Prepaid customers' wallets
        only, with a debit in their ledger (a wallet never debited has not
        fallen through anything).

        :return: {"low": wallet ids, "zero": wallet ids} emailed
        """
        sent = {"low": [], "zero": []}
        if not self:
            return sent
        self._alert_flush()
        cr = self.env.cr
        cr.execute(
            SQL(
                "SELECT id FROM billing_wallet WHERE id = ANY(%s) ORDER BY id"
                " FOR UPDATE%s",
                self.ids,
                SQL(" SKIP LOCKED") if skip_locked else SQL(),
            )
        )
        locked = [row[0] for row in cr.fetchall()]
        if not locked:
            return sent
        for level, also in (
            ("zero", SQL("low_balance_alerted = TRUE,")),
            ("low", SQL()),
        ):
            cr.execute(
                SQL(
                    """
                    UPDATE billing_wallet w
                       SET %(also)s %(alerted)s = TRUE,
                           %(date)s = NOW() AT TIME ZONE 'UTC'
                      FROM res_company c, res_partner p
                     WHERE w.id = ANY(%(ids)s) AND c.id = w.company_id
                       AND p.id = w.partner_id AND p.billing_mode = 'prepaid'
                       AND %(condition)s
                       AND EXISTS (SELECT 1 FROM billing_wallet_move m
                                    WHERE m.wallet_id = w.id AND m.amount < 0)
                 RETURNING w.id
                    """,
                    also=also,
                    alerted=SQL.identifier(f"{level}_balance_alerted"),
                    date=SQL.identifier(f"{level}_balance_alert_date"),
                    ids=locked,
                    condition=self._alert_level_sql(level),
                )
            )
            sent[level] = sorted(row[0] for row in cr.fetchall())
        self.invalidate_model(
            [
                "low_balance_alerted",
                "low_balance_alert_date",
                "zero_balance_alerted",
                "zero_balance_alert_date",
            ]
        )
        for level in ("zero", "low"):
            for wallet in self.browse(sent[level]):
                wallet.with_company(wallet.company_id)._alert_send(level)
        return sent

    def _alert_send(self, level):
        """Queue the ``level`` alert of this wallet to its customer and, when its
        company says so, to the customer's reseller."""
        self.ensure_one()
        template = self.env.ref(ALERT_TEMPLATES[level], raise_if_not_found=False)
        if template and self.partner_id.email:
            template.send_mail(self.id)
        elif template:
            _logger.info(
                "Wallet %s: %s balance alert not emailed, %s has no email",
                self.id,
                level,
                self.partner_id.display_name,
            )
        reseller = self._billing_seller()
        if reseller and self.company_id.billing_alert_notify_reseller:
            reseller_template = self.env.ref(
                RESELLER_TEMPLATE, raise_if_not_found=False
            )
            if reseller_template and reseller.email:
                reseller_template.with_context(billing_alert_level=level).send_mail(
                    self.id
                )

    def _alert_threshold_sql(self):
        """SQL of a wallet's threshold (``w``: the wallet, ``c``: its company)."""
        return SQL(
            "COALESCE(CASE WHEN w.low_balance_threshold_custom"
            " THEN w.low_balance_threshold"
            " ELSE c.billing_low_balance_threshold END, 0)"
        )

    def _alert_level_sql(self, level):
        """SQL of whether a wallet (``w``, its company ``c``) is due the alert
        of ``level`` ("low" or "zero") and was not sent it."""
        if level == "zero":
            return SQL(
                "c.billing_zero_balance_alert AND w.balance <= 0"
                " AND w.zero_balance_alerted IS NOT TRUE"
            )
        return SQL(
            "w.low_balance_alerted IS NOT TRUE AND w.balance < %s",
            self._alert_threshold_sql(),
        )

    def _alert_due_sql(self):
        """SQL of whether a wallet (``w``, its company ``c``) just debited is
        due an alert it was not sent: only those are checked after the commit
        (``_alert_after_debit``), which decides."""
        return SQL(
            "((%s) OR (%s))",
            self._alert_level_sql("zero"),
            self._alert_level_sql("low"),
        )

    def _alert_flush(self):
        """Write what the alert queries read."""
        self.env["billing.wallet"].flush_model()
        self.env["res.company"].flush_model(
            ["billing_low_balance_threshold", "billing_zero_balance_alert"]
        )
        self.env["res.partner"].flush_model(["billing_mode"])

    # -------------------------------------------------------------------------
    # CRON METHODS
    # -------------------------------------------------------------------------

    @api.model
    def _cron_alert_low_balance(self, batch_size=ALERT_CRON_BATCH, auto_commit=True):
        """Scheduled backstop of the checks after each debit: re-arm the levels
        whose balance is no longer below them (a threshold changed), then check
        every prepaid wallet below a level it was not alerted of, in batches,
        each committed with its emails. A wallet another transaction holds is
        left for the next run. Returns how many wallets were emailed."""
        self.browse()._alert_rearm(all_wallets=True)
        self._alert_flush()
        emailed, last_id = 0, 0
        while True:
            self.env.cr.execute(
                SQL(
                    """
                    SELECT w.id FROM billing_wallet w
                      JOIN res_company c ON c.id = w.company_id
                      JOIN res_partner p ON p.id = w.partner_id
                     WHERE w.id > %(last)s AND p.billing_mode = 'prepaid'
                       AND ((c.billing_zero_balance_alert AND w.balance <= 0
                             AND w.zero_balance_alerted IS NOT TRUE)
                            OR (w.low_balance_alerted IS NOT TRUE
                                AND w.balance < %(threshold)s))
                       AND EXISTS (SELECT 1 FROM billing_wallet_move m
                                    WHERE m.wallet_id = w.id AND m.amount < 0)
                  ORDER BY w.id
                     LIMIT %(limit)s
                    """,
                    last=last_id,
                    threshold=self._alert_threshold_sql(),
                    limit=batch_size,
                )
            )
            ids = [row[0] for row in self.env.cr.fetchall()]
            if not ids:
                break
            last_id = ids[-1]
            try:
                with self.env.cr.savepoint():
                    sent = self.browse(ids)._alert_check(skip_locked=True)
                emailed += len(set(sent["low"]) | set(sent["zero"]))
            except errors.SerializationFailure:
                # Changed since this run began: the next run checks them.
                _logger.info("Low-balance alerts of wallets %s: next run", ids)
            if auto_commit:
                self.env.cr.commit()  # pylint: disable=invalid-commit
        return emailed
