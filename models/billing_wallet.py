import json
import logging
import re
from collections import defaultdict
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

from psycopg2 import errors

from odoo import api, fields, models
from odoo.exceptions import AccessError, UserError
from odoo.tools import SQL, float_compare, float_round, formatLang

from .account_move import OPEN_STATES, PAID_STATES
from .billing_charge import USAGE_DIGITS

_logger = logging.getLogger(__name__)

# Wallet amounts and balances stay below this: the ORM keeps Float values as
# Python floats rounded to the usage precision, exact to the micro-unit only below
# about 5e8; from there a balance drifts (999,999,999.99 became ...990002).
WALLET_AMOUNT_LIMIT = 100_000_000
# Unpaid top-up invoices a customer may have open at once before buying more
# credit on the portal is refused.
PORTAL_OPEN_TOPUPS_LIMIT = 3
MICRO = Decimal(1).scaleb(-USAGE_DIGITS)
# The key a reseller's recharge form is sent with (see _reseller_recharge).
RECHARGE_KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{8,64}")


def exact_amount(value):
    """``value`` (a float of the usage precision, or any number) as the Decimal of
    the usage precision it stands for."""
    return Decimal(repr(float(value))).quantize(MICRO, rounding=ROUND_HALF_UP)


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
    balance = fields.Float(
        readonly=True,
        default=0.0,
        digits="Billing Usage",
        help="Credit available to the customer, exact to the usage precision "
        "(usage is debited to the fraction of a cent). Changed only with the "
        "wallet row locked, never below zero.",
    )
    unposted_consumption = fields.Float(
        string="Consumption Not Yet Posted",
        readonly=True,
        default=0.0,
        digits="Billing Usage",
        help="Prepaid usage debited from the wallet but not yet booked: the "
        "consumption posting books it to the income accounts, rounded to the "
        "currency, and carries the remainder to the next posting. The customer's "
        "balance on the wallet account equals the wallet balance plus this.",
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
            self._create_wallets(missing, company)
            wallets = self.search(domain)
        return {wallet.partner_id.id: wallet for wallet in wallets}

    @api.model
    def _create_wallets(self, partner_ids, company):
        """Create the missing wallets of these commercial partners in ``company``
        with one statement, safe against a concurrent creation."""
        self.env.cr.execute(
            SQL(
                """
                INSERT INTO billing_wallet
                    (partner_id, company_id, balance, unposted_consumption,
                     create_uid, write_uid, create_date, write_date)
                SELECT partner_id, %(company)s, 0, 0, %(uid)s, %(uid)s,
                       NOW() AT TIME ZONE 'UTC', NOW() AT TIME ZONE 'UTC'
                  FROM unnest(%(partners)s::int4[]) AS t(partner_id)
                ON CONFLICT (partner_id, company_id) DO NOTHING
                """,
                company=company.id,
                uid=self.env.uid,
                partners=sorted(partner_ids),
            )
        )

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
        for vals in movements:
            if abs(vals["amount"]) >= WALLET_AMOUNT_LIMIT:
                raise UserError(
                    self.env._(
                        "Wallet of %(partner)s: Amount %(amount)s of movement "
                        "%(name)s is beyond what a wallet holds exactly: amounts "
                        "must be below %(limit)s.",
                        partner=self.partner_id.display_name,
                        amount=self._format_exact(vals["amount"]),
                        name=vals.get("name") or vals["idempotency_key"],
                        limit=self._format_exact(WALLET_AMOUNT_LIMIT),
                    )
                )
        # Exact decimal arithmetic: the balance is numeric in PostgreSQL, the
        # amounts and balances written are exact Decimals of the usage precision.
        amounts = [exact_amount(vals["amount"]) for vals in movements]
        delta = sum(amounts, Decimal(0))
        self.env.cr.execute(
            SQL(
                """
                UPDATE billing_wallet
                   SET balance = ROUND(balance + %(delta)s, %(digits)s),
                       write_uid = %(uid)s,
                       write_date = NOW() AT TIME ZONE 'UTC'
                 WHERE id = %(id)s AND balance + %(delta)s >= 0
                   AND balance + %(delta)s < %(limit)s
             RETURNING balance::text
                """,
                delta=delta,
                digits=USAGE_DIGITS,
                uid=self.env.uid,
                id=self.id,
                limit=WALLET_AMOUNT_LIMIT,
            )
        )
        row = self.env.cr.fetchone()
        self.invalidate_recordset(["balance"])
        if row is None:
            raise self._balance_refusal(delta)
        balance_after = Decimal(row[0]) - delta
        vals_list = []
        for vals, amount in zip(movements, amounts, strict=True):
            balance_after += amount
            vals_list.append(
                {
                    **vals,
                    "wallet_id": self.id,
                    "amount": float(amount),
                    "balance_after": float(balance_after),
                }
            )
        moves = Move.create(vals_list)
        # Amounts computed from wallets, cached in this transaction, are stale now.
        self.env["res.partner"].invalidate_model(["billing_balance"])
        self.env["account.move"].invalidate_model(
            ["billing_topup_credited", "billing_wallet_balance"]
        )
        if delta > 0:
            # Credit added, by whatever path: suspended services it now pays for
            # resume, and the low-balance alerts it lifts the balance over re-arm.
            self.env["billing.service"]._resume_for_wallet(self)
            self._alert_rearm()
        elif delta < 0:
            self._alert_after_debit()  # once this transaction has committed
        return moves

    def _balance_refusal(self, delta):
        """The ``UserError`` that refuses a movement of ``delta`` (a Decimal) on
        this wallet: beyond what a wallet holds exactly, or a debit its balance
        does not cover."""
        if exact_amount(self.balance) + delta >= WALLET_AMOUNT_LIMIT:
            return UserError(
                self.env._(
                    "Wallet of %(partner)s: a movement of %(amount)s would bring "
                    "its balance of %(balance)s to %(new)s, beyond what a wallet "
                    "holds exactly: balances must stay below %(limit)s.",
                    partner=self.partner_id.display_name,
                    balance=self._format_exact(self.balance),
                    amount=self._format_exact(float(delta)),
                    new=self._format_exact(float(exact_amount(self.balance) + delta)),
                    limit=self._format_exact(WALLET_AMOUNT_LIMIT),
                )
            )
        return UserError(
            self.env._(
                "Wallet of %(partner)s: the balance of %(balance)s does not cover "
                "a debit of %(amount)s.",
                partner=self.partner_id.display_name,
                balance=self._format_exact(self.balance),
                amount=self._format_exact(float(-delta)),
            )
        )

    def _check_balance_change(self, amount):
        """Lock this wallet and refuse, as ``_apply_movements`` would, a movement
        of ``amount`` its balance cannot take: for callers that write before the
        movement (its journal entry), so that they refuse before writing."""
        self.ensure_one()
        self._lock()
        self.invalidate_recordset(["balance"])
        delta = exact_amount(amount)
        balance = exact_amount(self.balance) + delta
        if balance < 0 or balance >= WALLET_AMOUNT_LIMIT:
            raise self._balance_refusal(delta)

    @api.model
    def _lock_usage_wallets(self, partner_ids, company):
        """The wallets of these commercial partners in ``company``, created when
        missing and locked in id order: {partner id: (wallet id, balance)}."""
        query = SQL(
            """
            SELECT id, partner_id, balance FROM billing_wallet
             WHERE company_id = %(company)s AND partner_id = ANY(%(partners)s)
          ORDER BY id
               FOR UPDATE
            """,
            company=company.id,
            partners=list(partner_ids),
        )
        self.env.cr.execute(query)
        rows = self.env.cr.fetchall()
        if len(rows) < len(partner_ids):
            self._create_wallets(set(partner_ids) - {row[1] for row in rows}, company)
            self.env.cr.execute(query)
            rows = self.env.cr.fetchall()
        return {
            partner_id: (wallet_id, balance) for wallet_id, partner_id, balance in rows
        }

    @api.model
    def _reserve_usage_movements(self, count):
        """``count`` ids of wallet movements, taken from their sequence, for the
        usage ledger lines of an ingest call: its charges are stored linked to
        them first (billing_charge has no foreign key to billing_wallet_move),
        then ``_close_usage_movements`` records them with their amounts."""
        if not count:
            return []
        self.env.cr.execute(
            SQL(
                "SELECT nextval(pg_get_serial_sequence('billing_wallet_move', 'id'))"
                " FROM generate_series(1, %s)",
                count,
            )
        )
        return [row[0] for row in self.env.cr.fetchall()]

    @api.model
    def _close_usage_movements(self, debits):
        """Debit the usage of an ingest call from wallets locked by
        ``_lock_usage_wallets``, as the real-time path does: in one statement
        for all, each wallet's balance and consumption not yet posted updated
        and its ledger line recorded under the id ``_reserve_usage_movements``
        gave it, with the amounts per service the consumption posting books
        (``_post_consumption``); no journal entry. Only the wallets this debit
        may alert are checked after the commit (``_alert_due_sql``).

        :param dict debits: {wallet id: {"move_id", "name", "idempotency_key",
            "origin", "usage_amounts" ({product id: positive Decimal at usage
            precision})}}, of the wallets that paid a charge at least (the
            others get no ledger line)
        """
        cr = self.env.cr
        if not debits:
            return
        wallet_ids = list(debits)
        cr.execute(
            SQL(
                """
                WITH debit AS (
                    SELECT * FROM unnest(%(ids)s::int4[], %(moves)s::int4[],
                                         %(amounts)s::numeric[], %(names)s::varchar[],
                                         %(origins)s::varchar[], %(keys)s::varchar[],
                                         %(usage)s::jsonb[])
                        AS v(wallet_id, move_id, amount, name, origin,
                             idempotency_key, usage_amounts)
                ), wallet AS (
                    UPDATE billing_wallet w
                       SET balance = ROUND(w.balance - debit.amount, %(digits)s),
                           unposted_consumption = ROUND(
                               w.unposted_consumption + debit.amount, %(digits)s
                           ),
                           write_uid = %(uid)s,
                           write_date = NOW() AT TIME ZONE 'UTC'
                      FROM debit, res_company c
                     WHERE w.id = debit.wallet_id AND c.id = w.company_id
                       AND w.balance - debit.amount >= 0
                 RETURNING w.id, w.partner_id, w.company_id, w.balance,
                           %(alert)s AS alert
                ), moved AS (
                    INSERT INTO billing_wallet_move
                        (id, wallet_id, partner_id, company_id, date, kind, name,
                         origin, amount, balance_after, idempotency_key,
                         usage_amounts, user_id, create_uid, write_uid,
                         create_date, write_date)
                    SELECT debit.move_id, wallet.id, wallet.partner_id,
                           wallet.company_id, NOW() AT TIME ZONE 'UTC', 'usage',
                           debit.name, debit.origin, -debit.amount, wallet.balance,
                           debit.idempotency_key, debit.usage_amounts, %(uid)s,
                           %(uid)s, %(uid)s, NOW() AT TIME ZONE 'UTC',
                           NOW() AT TIME ZONE 'UTC'
                      FROM debit JOIN wallet ON wallet.id = debit.wallet_id
                 RETURNING id
                )
                SELECT wallet.id, wallet.alert, (SELECT COUNT(*) FROM moved)
                  FROM wallet
                """,
                digits=USAGE_DIGITS,
                uid=self.env.uid,
                alert=self._alert_due_sql(),
                ids=wallet_ids,
                moves=[debits[wallet_id]["move_id"] for wallet_id in wallet_ids],
                amounts=[
                    sum(debits[wallet_id]["usage_amounts"].values())
                    for wallet_id in wallet_ids
                ],
                names=[debits[wallet_id]["name"] for wallet_id in wallet_ids],
                origins=[debits[wallet_id]["origin"] for wallet_id in wallet_ids],
                keys=[debits[wallet_id]["idempotency_key"] for wallet_id in wallet_ids],
                usage=[
                    json.dumps(
                        {
                            str(product_id): f"{amount:f}"
                            for product_id, amount in debits[wallet_id][
                                "usage_amounts"
                            ].items()
                        }
                    )
                    for wallet_id in wallet_ids
                ],
            )
        )
        rows = cr.fetchall()
        if len(rows) != len(debits) or rows[0][2] != len(debits):
            # The callers check the balances under the lock: this is a bug, and
            # the transaction must not go on.
            raise UserError(
                self.env._("A wallet balance does not cover the usage debited.")
            )
        self.invalidate_model(["balance", "unposted_consumption"])
        self.env["billing.wallet.move"].invalidate_model()
        self.env["res.partner"].invalidate_model(["billing_balance"])
        # Once this transaction commits.
        self.browse(
            [wallet_id for wallet_id, alert, _count in rows if alert]
        )._alert_after_debit()

    @api.model
    def _debit_renewals(self, debits):
        """Debit renewals of services from wallets locked by
        ``_lock_usage_wallets`` whose balances the caller checked: one ledger
        line of kind renewal per renewal, all with one INSERT, and the
        balances and consumption not yet posted updated with one UPDATE; no
        journal entry (the consumption posting books them with the usage).

        :param list debits: dicts with ``wallet_id``, ``amount`` (a positive
            Decimal of the usage precision), ``balance_after`` (the wallet's
            balance after it, in the order of the list), ``name``, ``origin``,
            ``idempotency_key`` and ``product_id`` (the service's product)
        :return: {idempotency key: movement id}
        """
        if not debits:
            return {}
        cr = self.env.cr
        cr.execute(
            SQL(
                """
                INSERT INTO billing_wallet_move
                    (wallet_id, partner_id, company_id, date, kind, name, origin,
                     amount, balance_after, idempotency_key, usage_amounts,
                     user_id, create_uid, write_uid, create_date, write_date)
                SELECT w.id, w.partner_id, w.company_id, NOW() AT TIME ZONE 'UTC',
                       'renewal', v.name, v.origin, -v.amount, v.balance_after,
                       v.idempotency_key,
                       jsonb_build_object(v.product_id::text, v.amount::text),
                       %(uid)s, %(uid)s, %(uid)s,
                       NOW() AT TIME ZONE 'UTC', NOW() AT TIME ZONE 'UTC'
                  FROM unnest(%(ids)s::int4[], %(names)s::varchar[],
                              %(origins)s::varchar[], %(amounts)s::numeric[],
                              %(after)s::numeric[], %(keys)s::varchar[],
                              %(products)s::int4[])
                       AS v(id, name, origin, amount, balance_after,
                            idempotency_key, product_id)
                  JOIN billing_wallet w ON w.id = v.id
             RETURNING idempotency_key, id
                """,
                uid=self.env.uid,
                products=[debit["product_id"] for debit in debits],
                ids=[debit["wallet_id"] for debit in debits],
                names=[debit["name"] for debit in debits],
                origins=[debit["origin"] for debit in debits],
                amounts=[debit["amount"] for debit in debits],
                after=[debit["balance_after"] for debit in debits],
                keys=[debit["idempotency_key"] for debit in debits],
            )
        )
        moves = dict(cr.fetchall())
        totals = defaultdict(Decimal)
        for debit in debits:
            totals[debit["wallet_id"]] += debit["amount"]
        cr.execute(
            SQL(
                """
                UPDATE billing_wallet w
                   SET balance = ROUND(w.balance - v.amount, %(digits)s),
                       unposted_consumption = ROUND(
                           w.unposted_consumption + v.amount, %(digits)s
                       ),
                       write_uid = %(uid)s, write_date = NOW() AT TIME ZONE 'UTC'
                  FROM unnest(%(ids)s::int4[], %(amounts)s::numeric[])
                       AS v(id, amount)
                 WHERE w.id = v.id AND w.balance - v.amount >= 0
                """,
                digits=USAGE_DIGITS,
                uid=self.env.uid,
                ids=list(totals),
                amounts=list(totals.values()),
            )
        )
        if cr.rowcount != len(totals):
            # The caller checks the balances under the lock: this is a bug, and
            # the transaction must not go on.
            raise UserError(
                self.env._("A wallet balance does not cover the renewals debited.")
            )
        self.invalidate_model(["balance", "unposted_consumption"])
        self.env["billing.wallet.move"].invalidate_model()
        self.env["res.partner"].invalidate_model(["billing_balance"])
        self.browse(list(totals))._alert_after_debit()  # once this transaction commits
        return moves

    def _post_consumption(self):
        """Book the prepaid usage debited from these wallets and not yet posted:
        one journal entry per wallet, from the wallet account to the services'
        income accounts, of the consumption not yet posted rounded to the
        currency; the remainder is carried to the next posting. A wallet whose
        rounded consumption is zero waits for more. The entries of all these
        wallets are created and posted together, their wallets locked meanwhile;
        a wallet another transaction holds (an ingest call) is left for the next
        posting. Returns the wallets posted."""
        cr = self.env.cr
        posted = self.browse()
        if not self:
            return posted
        cr.execute(
            SQL(
                "SELECT id, unposted_consumption FROM billing_wallet"
                " WHERE id = ANY(%s) ORDER BY id FOR UPDATE SKIP LOCKED",
                self.ids,
            )
        )
        unposted = dict(cr.fetchall())
        if not unposted:
            return posted
        cr.execute(
            SQL(
                """
                SELECT m.wallet_id, u.key::int4, SUM(u.value::numeric),
                       ARRAY_AGG(DISTINCT m.id)
                  FROM billing_wallet_move m
                 CROSS JOIN LATERAL jsonb_each_text(m.usage_amounts) AS u
                 WHERE m.wallet_id = ANY(%s) AND m.kind IN ('usage', 'renewal')
                   AND m.account_move_id IS NULL
              GROUP BY m.wallet_id, u.key
                """,
                list(unposted),
            )
        )
        amounts, movements = defaultdict(dict), defaultdict(set)
        for wallet_id, product_id, amount, move_ids in cr.fetchall():
            amounts[wallet_id][product_id] = amount
            movements[wallet_id].update(move_ids)
        postings = []  # (wallet, booked, entry values)
        for wallet in self.browse(sorted(amounts)):
            currency = wallet.currency_id
            booked = currency.round(unposted[wallet.id])
            if currency.compare_amounts(booked, 0) <= 0:
                continue
            label = self.env._(
                "Usage of %(partner)s", partner=wallet.partner_id.display_name
            )
            lines = wallet._consumption_lines(amounts[wallet.id], booked)
            postings.append(
                (
                    wallet,
                    booked,
                    wallet._prepare_entry_vals(
                        label,
                        [(account, -amount, label) for account, amount in lines]
                        + [
                            (wallet.company_id.billing_wallet_account_id, booked, label)
                        ],
                    ),
                )
            )
        for company in {wallet.company_id for wallet, _booked, _vals in postings}:
            company_postings = [p for p in postings if p[0].company_id == company]
            company_entries = (
                self.env["account.move"]
                .with_company(company)
                .create([vals for _wallet, _booked, vals in company_postings])
            )
            company_entries.action_post()
            # The ledger is append-only for users; the posting only records which
            # journal entry booked these movements.
            move_ids, entry_ids = [], []
            for (wallet, _booked, _vals), entry in zip(
                company_postings, company_entries, strict=True
            ):
                move_ids.extend(movements[wallet.id])
                entry_ids.extend([entry.id] * len(movements[wallet.id]))
            cr.execute(
                SQL(
                    """
                    UPDATE billing_wallet_move m SET account_move_id = v.entry_id
                      FROM unnest(%(moves)s::int4[], %(entries)s::int4[])
                           AS v(move_id, entry_id)
                     WHERE m.id = v.move_id AND m.account_move_id IS NULL
                    """,
                    moves=move_ids,
                    entries=entry_ids,
                )
            )
            cr.execute(
                SQL(
                    """
                    UPDATE billing_wallet w
                       SET unposted_consumption =
                           ROUND(w.unposted_consumption - v.booked, %(digits)s)
                      FROM unnest(%(ids)s::int4[], %(booked)s::numeric[])
                           AS v(id, booked)
                     WHERE w.id = v.id
                    """,
                    digits=USAGE_DIGITS,
                    ids=[wallet.id for wallet, _booked, _vals in company_postings],
                    booked=[booked for _wallet, booked, _vals in company_postings],
                )
            )
            for wallet, _booked, _vals in company_postings:
                posted |= wallet
        self.invalidate_model(["unposted_consumption"])
        self.env["billing.wallet.move"].invalidate_model(["account_move_id"])
        return posted

    def _consumption_lines(self, amounts, booked):
        """The income lines of a consumption posting of ``booked``: ``amounts``
        ({product id: exact amount}) summed per income account, each rounded to
        the currency, the rounding difference (and the remainder carried from
        earlier postings) on the largest line. Returns [(account, amount)]."""
        self.ensure_one()
        company = self.company_id
        currency = self.currency_id
        products = self.env["product.product"].with_company(company).browse(amounts)
        exact = defaultdict(float)
        for product in products:
            account = product._get_product_accounts()["income"]
            if not account:
                raise UserError(
                    self.env._(
                        "Consumption of %(partner)s cannot be posted: service "
                        "%(product)s has no income account.",
                        partner=self.partner_id.display_name,
                        product=product.display_name,
                    )
                )
            exact[account] += amounts[product.id]
        lines = [[account, currency.round(amount)] for account, amount in exact.items()]
        lines.sort(key=lambda line: -abs(line[1]))
        lines[0][1] = currency.round(lines[0][1] + booked - sum(a for _a, a in lines))
        return [tuple(line) for line in lines if not currency.is_zero(line[1])]

    def _covers(self, amount):
        """Whether this wallet's exact balance covers ``amount`` (no wallet:
        a balance of 0)."""
        return float_compare(self.balance, amount, precision_digits=USAGE_DIGITS) >= 0

    @api.model
    def _portal_wallet_for_invoice(self, invoice, partner):
        """The wallet of ``partner``'s customer when it covers all that
        ``invoice`` still owes and the invoice is that customer's and can be
        paid from the wallet; else an empty recordset (the portal's *Pay from
        Wallet* is then not offered)."""
        wallet = self._get_wallet(invoice.partner_id, invoice.company_id, create=False)
        if (
            not wallet
            or invoice.partner_id.commercial_partner_id != partner.commercial_partner_id
        ):
            return self.browse()
        try:
            invoice._billing_check_wallet_payable()
        except UserError:
            return self.browse()
        if (
            invoice.currency_id.compare_amounts(
                wallet._spendable(), invoice.amount_residual
            )
            < 0
        ):
            return self.browse()
        return wallet

    @api.model
    def _portal_pay_invoice(self, invoice, partner):
        """Pay all that ``invoice`` still owes from the wallet, for ``partner``
        in the portal: only the invoice's own customer, only when the balance
        covers it (a part payment is the billing staff's, in the backend)."""
        if invoice.partner_id.commercial_partner_id != partner.commercial_partner_id:
            raise AccessError(
                self.env._(
                    "Invoice %(invoice)s is not yours to pay from your wallet.",
                    invoice=invoice.display_name,
                )
            )
        invoice._billing_check_wallet_payable()
        if not self._portal_wallet_for_invoice(invoice, partner):
            wallet = self._get_wallet(
                invoice.partner_id, invoice.company_id, create=False
            )
            raise UserError(
                self.env._(
                    "Invoice %(invoice)s cannot be paid from your wallet: it holds "
                    "%(balance)s and %(due)s is due.",
                    invoice=invoice.display_name,
                    balance=self._format_amount_exact(
                        wallet.balance if wallet else 0.0,
                        invoice.company_id.currency_id,
                    ),
                    due=self._format_amount_exact(
                        invoice.amount_residual, invoice.company_id.currency_id
                    ),
                )
            )
        invoice._billing_pay_from_wallet(invoice.amount_residual)

    def _spendable(self):
        """What this wallet can pay in its currency: the balance rounded down to
        the cent, so that a payment never takes more than the exact balance."""
        self.ensure_one()
        return float_round(
            self.balance,
            precision_rounding=self.currency_id.rounding,
            rounding_method="DOWN",
        )

    def _format_exact(self, amount):
        """``amount`` with the wallet's currency symbol (see
        ``_format_amount_exact``)."""
        currency = self.currency_id or self.env.company.currency_id
        return self._format_amount_exact(amount, currency)

    @api.model
    def _format_amount_exact(self, amount, currency, finer_digits=None):
        """``amount`` with ``currency``'s symbol and decimals or, where the exact
        amount has more, ``finer_digits`` decimals (default: as many as it has, up
        to the usage precision): 10 is shown 10.00, 7.495 as 7.495, or 7.4950
        with 4 ``finer_digits``."""
        exact = float_round(amount, USAGE_DIGITS)
        decimals = len(f"{exact:.{USAGE_DIGITS}f}".rstrip("0").partition(".")[2])
        digits = currency.decimal_places
        if decimals > digits:
            digits = finer_digits or decimals
        number = formatLang(self.env, exact, digits=digits)
        if currency.position == "before":
            return f"{currency.symbol}\N{NO-BREAK SPACE}{number}"
        return f"{number}\N{NO-BREAK SPACE}{currency.symbol}"

    @api.model
    def _portal_topup_refusal(self, partner, company):
        """Why the customer ``partner`` may not buy credit on the portal in
        ``company`` now: ``(code, message)``, or None when it may. Credit is for
        prepaid customers, with at most PORTAL_OPEN_TOPUPS_LIMIT unpaid top-up
        invoices open at once."""
        customer = partner.commercial_partner_id
        # A reseller holds credit to recharge its customers, whatever its mode.
        if customer.billing_mode != "prepaid" and not customer.is_billing_reseller:
            return "postpaid", self.env._(
                "%(partner)s is billed postpaid: credit packages are for prepaid "
                "customers.",
                partner=customer.display_name,
            )
        # sudo: portal users count their own open top-ups, not others'.
        open_topups = (
            self.env["account.move"]
            .sudo()
            .search_count(
                [
                    ("commercial_partner_id", "=", customer.id),
                    ("company_id", "=", company.id),
                    ("billing_is_topup", "=", True),
                    "|",
                    ("state", "=", "draft"),
                    "&",
                    ("state", "=", "posted"),
                    ("payment_state", "in", OPEN_STATES),
                ],
                limit=PORTAL_OPEN_TOPUPS_LIMIT,
            )
        )
        if open_topups >= PORTAL_OPEN_TOPUPS_LIMIT:
            return "open_topups", self.env._(
                "%(partner)s has %(count)s unpaid top-up invoices open: pay or "
                "cancel one of them before buying more credit.",
                partner=customer.display_name,
                count=open_topups,
            )
        return None

    @api.model
    def _reseller_recharge_refusal(self, reseller, customer, amount, company):
        """Why ``reseller`` may not recharge ``customer`` with ``amount`` in
        ``company``: a message naming the field, or None when it may (the
        balance is checked with the wallet locked, by ``_reseller_recharge``)."""
        reseller = reseller.commercial_partner_id
        customer = customer.commercial_partner_id
        currency = company.currency_id
        if not reseller.is_billing_reseller:
            return self.env._(
                "Recharge: %(partner)s is not a reseller.",
                partner=reseller.display_name,
            )
        if customer.billing_reseller_id != reseller:
            return self.env._(
                "Recharge: %(customer)s is not a customer of %(reseller)s.",
                customer=customer.display_name,
                reseller=reseller.display_name,
            )
        if customer.billing_mode != "prepaid":
            return self.env._(
                "Recharge: %(customer)s is billed postpaid; only prepaid customers "
                "hold credit.",
                customer=customer.display_name,
            )
        if currency.compare_amounts(amount, 0) <= 0 or float_compare(
            amount, currency.round(amount), precision_digits=USAGE_DIGITS
        ):
            return self.env._(
                "Amount of the recharge of %(customer)s: %(amount)s must be positive, "
                "in %(currency)s to the %(rounding)s.",
                customer=customer.display_name,
                amount=amount,
                currency=currency.name,
                rounding=currency.rounding,
            )
        return None

    @api.model
    def _reseller_recharge(self, reseller, customer, amount, key, company):
        """Move ``amount`` of credit from the wallet of ``reseller`` to that of its
        prepaid ``customer`` in ``company``, once per ``key`` (the key the
        recharge form was sent with: a form sent twice recharges once).

        Both wallets are locked in id order, then the reseller's balance is
        checked; one journal entry of the wallet journal moves the amount
        between the two partners' balances of the wallet account, and each
        wallet gets a ``recharge`` movement booked by it. The total of the
        wallets is unchanged. Raises a ``UserError`` with the reason, writing
        nothing, when the recharge is refused. Returns ``(entry, replayed)``:
        the journal entry, and whether ``key`` had been recharged already."""
        reseller = reseller.commercial_partner_id
        customer = customer.commercial_partner_id
        if not key or not RECHARGE_KEY_PATTERN.fullmatch(str(key)):
            raise UserError(
                self.env._(
                    "Recharge of %(customer)s: the form key %(key)r is not valid; "
                    "reload the page and send the form again.",
                    customer=customer.display_name,
                    key=key,
                )
            )
        refusal = self._reseller_recharge_refusal(reseller, customer, amount, company)
        if refusal:
            raise UserError(refusal)
        keys = [f"reseller_recharge:{reseller.id}:{key}:{side}" for side in "dc"]
        with self.env.cr.savepoint():
            wallets = self._get_wallets(reseller | customer, company)
            source, target = wallets[reseller.id], wallets[customer.id]
            (source | target)._lock()
            Move = self.env["billing.wallet.move"]
            done = Move.search([("idempotency_key", "in", keys)])
            if done:
                if len(done) != 2 or done.wallet_id != source | target:
                    raise UserError(
                        self.env._(
                            "Recharge of %(customer)s: the form key %(key)s was "
                            "used for another recharge already; reload the page "
                            "and send the form again.",
                            customer=customer.display_name,
                            key=key,
                        )
                    )
                return done.account_move_id, True
            source.invalidate_recordset(["balance"])
            if not source._covers(amount):
                raise UserError(
                    self.env._(
                        "Recharge of %(customer)s: the wallet balance of "
                        "%(reseller)s, %(balance)s, does not cover %(amount)s.",
                        customer=customer.display_name,
                        reseller=reseller.display_name,
                        balance=source._format_exact(source.balance),
                        amount=source._format_exact(amount),
                    )
                )
            debit_label = self.env._(
                "Recharge of %(customer)s", customer=customer.display_name
            )
            credit_label = self.env._(
                "Recharge by %(reseller)s", reseller=reseller.display_name
            )
            account = company.billing_wallet_account_id
            entry = source._post_entry(
                debit_label,
                [
                    (account, amount, debit_label, reseller),
                    (account, -amount, credit_label, customer),
                ],
            )
            for wallet, sign, label, movement_key in (
                (source, -1, debit_label, keys[0]),
                (target, 1, credit_label, keys[1]),
            ):
                wallet._apply_movements(
                    [
                        {
                            "kind": "recharge",
                            "name": label,
                            "amount": sign * amount,
                            "origin": entry.name,
                            "idempotency_key": movement_key,
                            "account_move_id": entry.id,
                        }
                    ]
                )
        return entry, False

    def _post_entry(self, ref, lines, date=None):
        """Post a journal entry of the wallet journal with ``lines``: a list of
        ``(account, balance, label)``, or ``(account, balance, label, partner)``;
        the lines carry the customer as partner unless they name another.
        Returns the posted ``account.move``."""
        self.ensure_one()
        move = (
            self.env["account.move"]
            .with_company(self.company_id)
            .create(self._prepare_entry_vals(ref, lines, date=date))
        )
        move.action_post()
        return move

    def _prepare_entry_vals(self, ref, lines, date=None):
        """Values of a journal entry of the wallet journal (see ``_post_entry``)."""
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
        return {
            "move_type": "entry",
            "journal_id": journal.id,
            "date": date or fields.Date.context_today(self),
            "ref": ref,
            "line_ids": [
                fields.Command.create(
                    {
                        "account_id": account.id,
                        "partner_id": (partner[0] if partner else self.partner_id).id,
                        "name": label,
                        "balance": balance,
                    }
                )
                for account, balance, label, *partner in lines
                if not self.currency_id.is_zero(balance)
            ],
        }

    @api.model
    def _start_read_committed(self):
        """Start this transaction again at READ COMMITTED when it has written
        nothing yet (an RPC call's or a button's, before its first write), as
        ingest does (``billing.charge._ingest_read_committed``); returns whether
        it did. Under Odoo's REPEATABLE READ, a movement that waits for the lock
        of a wallet row a concurrent call (an ingest of the customer's usage)
        holds fails with a serialization error once the other commits, and
        Odoo retries the whole call, at most 5 times: under load the wallet's
        debits failed. At READ COMMITTED the lock wait reads the committed
        balance and goes on; the balance check of ``_apply_movements`` is one
        UPDATE on the locked row all the same. Not in tests, which share one
        transaction."""
        if self.env.registry.in_test_mode():
            return False
        self.env.flush_all()
        self.env.cr.execute(SQL("SELECT txid_current_if_assigned() IS NULL"))
        if not self.env.cr.fetchone()[0]:
            return False
        # Nothing was written: ending the transaction loses nothing, and its
        # isolation can only be chosen before its first query.
        self.env.cr.rollback()
        self.env.cr.execute(SQL("SET TRANSACTION ISOLATION LEVEL READ COMMITTED"))
        return True

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

    @api.model
    def _topup_refunds(self, refunds):
        """What the customer credit notes ``refunds`` take back from wallets: for each
        credit note of a top-up invoice whose credit was granted, the credit of
        the part refunded, its bonus in proportion. Raises a ``UserError`` naming
        the customer and what can still be refunded when the wallet balance no
        longer covers it. Returns {credit note: values}; a credit note of an
        unpaid top-up, or of anything else, takes nothing."""
        plan = {}
        # sudo: the wallet of the credit note's own customer, read to check and
        # take back the credit that its invoice granted.
        Wallet = self.sudo()
        for refund in refunds:
            origin = refund.reversed_entry_id
            if refund.move_type != "out_refund" or not origin.billing_is_topup:
                continue
            if Wallet._topup_refund_taken(refund):
                continue  # already taken back
            paid, credit, granted = Wallet._topup_grant(origin)
            refunded = sum(line.balance for line in refund._billing_topup_lines())
            currency = refund.company_currency_id
            if currency.compare_amounts(paid, 0) <= 0 or (
                currency.compare_amounts(refunded, 0) <= 0
            ):
                continue  # the top-up grants nothing: nothing to take back
            earlier = -Wallet._topup_refunded_since(origin, granted)
            take = min(currency.round(refunded * credit / paid), credit - earlier)
            if currency.compare_amounts(take, 0) <= 0:
                continue
            wallet = Wallet._get_wallet(refund.partner_id, refund.company_id)
            wallet._lock()
            if not wallet._covers(take):
                refundable = float_round(
                    wallet.balance * paid / credit,
                    precision_rounding=currency.rounding,
                    rounding_method="DOWN",
                )
                raise UserError(
                    self.env._(
                        "Credit note %(refund)s cannot be posted: it refunds "
                        "%(refunded)s of top-up %(invoice)s, whose credit of "
                        "%(take)s %(partner)s has spent in part. The wallet "
                        "balance of %(balance)s covers a refund of at most "
                        "%(refundable)s.",
                        refund=refund.display_name,
                        refunded=currency.format(refunded),
                        invoice=origin.display_name,
                        take=currency.format(take),
                        partner=refund.commercial_partner_id.display_name,
                        balance=Wallet._format_amount_exact(wallet.balance, currency),
                        refundable=currency.format(refundable),
                    )
                )
            plan[refund] = {
                "wallet": wallet,
                "origin": origin,
                "take": take,
                "refunded": refunded,
            }
        return plan

    @api.model
    def _take_back_topup_refunds(self, refunds):
        """Take back from the wallets, still locked, the credit the posted credit
        notes refund: ``refunds`` as ``_topup_refunds`` gave them before they were
        posted. One ``refund`` movement and one journal entry per credit note,
        the reverse of the top-up's."""
        for refund, vals in refunds.items():
            company = refund.company_id
            wallet, take, refunded = vals["wallet"], vals["take"], vals["refunded"]
            # A credit note reset to draft and posted again takes back again.
            takes = (
                self.env["billing.wallet.move"]
                .sudo()
                .search_count(
                    [
                        ("invoice_id", "=", refund.id),
                        ("idempotency_key", "=like", f"refund:{refund.id}%"),
                    ]
                )
            )
            suffix = f":{takes + 1}" if takes else ""
            label = self.env._(
                "Refund %(refund)s of top-up %(invoice)s",
                refund=refund.name,
                invoice=vals["origin"].name,
            )
            entry = wallet._post_entry(
                label,
                [
                    (company.billing_wallet_topup_account_id, -refunded, label),
                    (company.billing_wallet_bonus_account_id, refunded - take, label),
                    (company.billing_wallet_account_id, take, label),
                ],
            )
            wallet._apply_movements(
                [
                    {
                        "kind": "refund",
                        "name": label,
                        "amount": -take,
                        "origin": refund.name,
                        "idempotency_key": f"refund:{refund.id}{suffix}",
                        "account_move_id": entry.id,
                        "invoice_id": refund.id,
                    }
                ]
            )
            refund.message_post(
                body=self.env._(
                    "%(amount)s of wallet credit taken back from %(partner)s for "
                    "this refund of top-up %(invoice)s.",
                    amount=company.currency_id.format(take),
                    partner=refund.commercial_partner_id.display_name,
                    invoice=vals["origin"].display_name,
                )
            )

    @api.model
    def _topup_refund_movements(self, refund):
        """The ``refund`` movements by which credit note ``refund`` took back top-up
        credit (keys ``refund:<id>``, ``refund:<id>:<n>``) and gave it back when
        it was reset to draft or cancelled (``unrefund:<id>:<n>``), oldest
        first."""
        return (
            self.env["billing.wallet.move"]
            .sudo()
            .search(
                [
                    ("invoice_id", "=", refund.id),
                    ("kind", "=", "refund"),
                    "|",
                    ("idempotency_key", "=like", f"refund:{refund.id}%"),
                    ("idempotency_key", "=like", f"unrefund:{refund.id}:%"),
                ],
                order="id",
            )
        )

    @api.model
    def _topup_refund_taken(self, refund):
        """The movement by which credit note ``refund`` holds top-up credit taken
        back now (its last one, when a take and not a give-back), or nothing."""
        last = self._topup_refund_movements(refund)[-1:]
        if last and last.idempotency_key.startswith("refund:"):
            return last
        return last.browse()

    @api.model
    def _restore_topup_refunds(self, refunds):
        """Give back the top-up credit that these credit notes, reset to draft or
        cancelled, had taken back: the reverse of their last take, as a
        ``refund`` movement of the credit note (key ``unrefund:<id>:<n>``) with
        the journal entry reversing the take's. Only while the top-up they
        refund is still paid; posted again, a credit note takes back again."""
        for refund in refunds:
            origin = refund.reversed_entry_id
            if (
                refund.move_type != "out_refund"
                or refund.state == "posted"
                or not origin.billing_is_topup
            ):
                continue
            taken = self._topup_refund_taken(refund)
            if not taken:
                continue
            if not (origin.state == "posted" and origin.payment_state in PAID_STATES):
                continue  # the top-up itself is no longer paid: nothing to give
            wallet = taken.wallet_id
            wallet._lock()
            company = wallet.company_id
            label = self.env._(
                "Refund %(refund)s of top-up %(invoice)s undone",
                refund=refund.name,
                invoice=origin.name,
            )
            entry = wallet._post_entry(
                label,
                [
                    (line.account_id, -line.balance, label)
                    for line in taken.account_move_id.line_ids
                ],
            )
            gives = len(
                self._topup_refund_movements(refund).filtered(
                    lambda m: m.idempotency_key.startswith("unrefund:")
                )
            )
            wallet._apply_movements(
                [
                    {
                        "kind": "refund",
                        "name": label,
                        "amount": -taken.amount,
                        "origin": refund.name,
                        "idempotency_key": f"unrefund:{refund.id}:{gives + 1}",
                        "account_move_id": entry.id,
                        "invoice_id": refund.id,
                    }
                ]
            )
            refund.message_post(
                body=self.env._(
                    "%(amount)s of wallet credit given back to %(partner)s: this "
                    "refund of top-up %(invoice)s was reset to draft or cancelled.",
                    amount=company.currency_id.format(-taken.amount),
                    partner=refund.commercial_partner_id.display_name,
                    invoice=origin.display_name,
                )
            )

    # -------------------------------------------------------------------------
    # TOP-UP CREDIT, AND THE UNDO OF PAYMENTS
    # -------------------------------------------------------------------------

    @api.model
    def _topup_grant(self, invoice):
        """The credit top-up ``invoice`` grants now: ``(paid, credit, movements)``
        of its last crediting (the price paid, the credit with its bonus, and
        their ``topup`` and ``bonus`` movements), or nothing when it was never
        credited or its payment was undone since (``_take_back_unpaid_topups``
        records that as a ``refund`` movement of the invoice)."""
        Move = self.env["billing.wallet.move"].sudo()
        current = Move
        for movement in Move.search(
            [
                ("invoice_id", "=", invoice.id),
                ("kind", "in", ("topup", "bonus", "refund")),
            ],
            order="id",
        ):
            current = Move if movement.kind == "refund" else current | movement
        paid = sum(current.filtered(lambda m: m.kind == "topup").mapped("amount"))
        return paid, sum(current.mapped("amount")), current

    @api.model
    def _topup_refunded_since(self, invoice, granted):
        """What (negative) the credit notes of top-up ``invoice`` took back of its
        crediting ``granted``."""
        if not granted:
            return 0.0
        return sum(
            self.env["billing.wallet.move"]
            .sudo()
            .search(
                [
                    ("kind", "=", "refund"),
                    ("invoice_id", "in", invoice.reversal_move_ids.ids),
                    ("id", ">", min(granted.ids)),
                ]
            )
            .mapped("amount")
        )

    @api.model
    def _topup_money_received(self, invoice):
        """What of ``invoice``'s total was settled by money, and that total
        (company currency): payments and bank statement lines reconciled with
        it, payments without a journal entry matched with it; not credit notes,
        nor other invoices or entries."""
        received = 0.0
        receivable = invoice.line_ids.filtered(
            lambda line: line.account_id.account_type == "asset_receivable"
        )
        for partial in receivable.matched_credit_ids:
            counterpart = partial.credit_move_id.move_id
            if counterpart.origin_payment_id or counterpart.statement_line_id:
                received += partial.amount
        received += sum(
            abs(payment.amount_company_currency_signed)
            for payment in invoice.matched_payment_ids
            if not payment.move_id and payment.state in ("in_process", "paid")
        )
        return received, abs(invoice.amount_total_signed)

    @api.model
    def _credit_topups(self, invoices):
        """Credit the wallets of these paid top-up invoices: the credit of their
        packages in proportion to the money received (a package paid 10 of 100,
        the rest closed by a credit note, credits 15 of 150), its bonus above
        the price paid booked to *Wallet Bonus Credit*. Once a payment: an
        invoice credited, and not undone since, is not credited again; credited
        again after its payment was undone and it is paid again, with new keys.
        Returns the invoices credited."""
        credited = invoices.browse()
        for move in invoices:
            if not (
                move.billing_is_topup
                and move.state == "posted"
                and move.payment_state in PAID_STATES
            ):
                continue
            company = move.company_id
            currency = company.currency_id
            wallet = self._get_wallet(move.partner_id, company)
            wallet._lock()
            _paid, _credit, granted = self._topup_grant(move)
            if granted:
                continue  # credited already
            full_credit = full_paid = 0.0
            for line in move._billing_topup_lines():
                line_credit, line_paid = line._billing_topup_credit()
                full_credit += line_credit
                full_paid += line_paid
            received, total = self._topup_money_received(move)
            if currency.compare_amounts(received, total) >= 0:
                credit, paid = full_credit, full_paid  # all paid with money
            else:
                credit = currency.round(full_credit * received / total)
                paid = currency.round(full_paid * received / total)
            if currency.compare_amounts(credit, 0) <= 0:
                continue  # settled without money: nothing to credit
            bonus = credit - paid
            rounds = self.env["billing.wallet.move"].search_count(
                [("invoice_id", "=", move.id), ("kind", "=", "topup")]
            )
            suffix = f":{rounds + 1}" if rounds else ""
            label = self.env._("Top-up %(invoice)s", invoice=move.name)
            entry = wallet._post_entry(
                label,
                [
                    (company.billing_wallet_topup_account_id, paid, label),
                    (company.billing_wallet_bonus_account_id, bonus, label),
                    (company.billing_wallet_account_id, -credit, label),
                ],
            )
            movements = [
                {
                    "kind": "topup",
                    "name": label,
                    "amount": paid,
                    "origin": move.name,
                    "idempotency_key": f"topup:{move.id}{suffix}",
                    "account_move_id": entry.id,
                    "invoice_id": move.id,
                }
            ]
            if not currency.is_zero(bonus):
                movements.append(
                    {
                        "kind": "bonus",
                        "name": self.env._("Bonus on %(invoice)s", invoice=move.name),
                        "amount": bonus,
                        "origin": move.name,
                        "idempotency_key": f"bonus:{move.id}{suffix}",
                        "account_move_id": entry.id,
                        "invoice_id": move.id,
                    }
                )
            wallet._apply_movements(movements)
            move.billing_topup_expires_at = False
            credited |= move
        return credited

    @api.model
    def _take_back_unpaid_topups(self, invoices):
        """Take back the credit of these credited top-up invoices that are no
        longer paid (a payment reset to draft, cancelled or unreconciled, the
        invoice reset to draft or cancelled): what it still grants, less what
        its credit notes took back, as one ``refund`` movement of the invoice
        with the journal entry reversing its crediting. Refused with the balance
        when the customer has spent that credit. The invoice, unpaid again, gets
        a new payment window."""
        Move = self.env["billing.wallet.move"].sudo()
        for move in invoices:
            if not move.billing_is_topup or (
                move.state == "posted" and move.payment_state in PAID_STATES
            ):
                continue
            company = move.company_id
            currency = company.currency_id
            wallet = self._get_wallet(move.partner_id, company, create=False)
            if not wallet:
                continue
            wallet._lock()
            paid, credit, granted = self._topup_grant(move)
            if not granted:
                continue
            take = currency.round(credit + self._topup_refunded_since(move, granted))
            if currency.compare_amounts(take, 0) <= 0:
                continue  # its credit notes took it all back already
            partner = move.commercial_partner_id
            if not wallet._covers(take):
                raise UserError(
                    self.env._(
                        "The payment of top-up %(invoice)s cannot be undone: the "
                        "%(take)s of credit it granted has been spent in part by "
                        "%(partner)s, whose wallet balance of %(balance)s cannot "
                        "give it back.",
                        invoice=move.display_name,
                        take=currency.format(take),
                        partner=partner.display_name,
                        balance=self._format_amount_exact(wallet.balance, currency),
                    )
                )
            paid_part = currency.round(take * paid / credit) if credit else 0.0
            label = self.env._(
                "Payment of top-up %(invoice)s undone", invoice=move.name
            )
            entry = wallet._post_entry(
                label,
                [
                    (company.billing_wallet_topup_account_id, -paid_part, label),
                    (company.billing_wallet_bonus_account_id, paid_part - take, label),
                    (company.billing_wallet_account_id, take, label),
                ],
            )
            undone = Move.search_count(
                [("invoice_id", "=", move.id), ("kind", "=", "refund")]
            )
            wallet._apply_movements(
                [
                    {
                        "kind": "refund",
                        "name": label,
                        "amount": -take,
                        "origin": move.name,
                        "idempotency_key": f"untopup:{move.id}:{undone + 1}",
                        "account_move_id": entry.id,
                        "invoice_id": move.id,
                    }
                ]
            )
            hours = company.billing_topup_expiry_hours
            if move.state == "posted" and hours:
                move.billing_topup_expires_at = fields.Datetime.now() + timedelta(
                    hours=hours
                )
            move.message_post(
                body=self.env._(
                    "%(amount)s of wallet credit taken back from %(partner)s: the "
                    "payment of this top-up was undone.",
                    amount=currency.format(take),
                    partner=partner.display_name,
                )
            )

    @api.model
    def _is_wallet_payment_entry(self, move):
        """Whether ``move`` is the journal entry of a payment of the wallet
        journal."""
        return bool(move.origin_payment_id) and (
            move.journal_id == move.company_id.billing_wallet_journal_id
        )

    @api.model
    def _entry_movements(self, moves):
        """{journal entry id: the wallet movements it books} of ``moves``."""
        if not moves.ids:
            return {}
        movements = (
            self.env["billing.wallet.move"]
            .sudo()
            .search([("account_move_id", "in", moves.ids)], order="id")
        )
        return {
            entry.id: booked
            for entry, booked in movements.grouped("account_move_id").items()
        }

    @api.model
    def _give_back_entries(self, moves):
        """The journal entries among ``moves`` that gave money back to a wallet
        from the receivable (``_give_back``): refund entries of the wallet
        journal, not payments."""
        booked = self._entry_movements(moves)
        return moves.filtered(
            lambda move: (
                move.id in booked
                and not self._is_wallet_payment_entry(move)
                and "refund" in booked[move.id].mapped("kind")
                and any(
                    line.account_id.account_type == "asset_receivable"
                    for line in move.line_ids
                )
            )
        )

    @api.model
    def _check_entries_undoable(self, moves, delete=False):
        """Refuse to reset to draft or cancel (with ``delete``: to delete) the
        journal entries among ``moves`` that book wallet movements, as the
        wallet and the books would then disagree; but the entries of wallet
        payments may be reset to draft and cancelled (the amount goes back to
        the wallet, see ``_refund_drafted_payments``), unless their amount was
        given back already."""
        booked = self._entry_movements(moves)
        if delete and moves.ids:
            linked = (
                self.env["billing.wallet.move"]
                .sudo()
                .search([("invoice_id", "in", moves.ids)], limit=1)
            )
            if linked:
                raise UserError(
                    self.env._(
                        "%(invoice)s has movements of the wallet of %(partner)s: "
                        "it cannot be deleted; cancel it instead.",
                        invoice=linked.invoice_id.display_name,
                        partner=linked.wallet_id.partner_id.display_name,
                    )
                )
        for move in moves:
            movements = booked.get(move.id)
            if not movements:
                continue
            partner = movements.wallet_id[:1].partner_id.display_name
            if self._is_wallet_payment_entry(move):
                if delete:
                    raise UserError(
                        self.env._(
                            "Payment %(payment)s debited the wallet of %(partner)s: "
                            "it cannot be deleted; cancel it instead.",
                            payment=move.origin_payment_id.display_name,
                            partner=partner,
                        )
                    )
                receivable = move.line_ids.filtered(
                    lambda line: line.account_id.account_type == "asset_receivable"
                )
                given_back = self._give_back_entries(
                    receivable.matched_debit_ids.debit_move_id.move_id
                )
                if given_back:
                    raise UserError(
                        self.env._(
                            "Payment %(payment)s cannot be reset to draft or "
                            "cancelled: it was unreconciled from its invoice and "
                            "entry %(entry)s gave its amount back to the wallet of "
                            "%(partner)s.",
                            payment=move.origin_payment_id.display_name,
                            entry=given_back[0].display_name,
                            partner=partner,
                        )
                    )
                continue
            kinds = set(movements.mapped("kind"))
            labels = dict(movements._fields["kind"]._description_selection(self.env))
            if kinds & {"topup", "bonus"}:
                path = self.env._(
                    "To take the credit back, undo the payment of top-up "
                    "%(invoice)s or refund it with a credit note.",
                    invoice=movements.invoice_id[:1].display_name,
                )
            else:
                path = self.env._(
                    "To correct the wallet, credit or debit it with Billing > "
                    "Wallets > Credit or Debit a Wallet."
                )
            raise UserError(
                self.env._(
                    "Journal entry %(entry)s books movements of the wallet of "
                    "%(partner)s (%(kinds)s): it cannot be reset to draft, "
                    "cancelled or deleted, or the wallet and the books would "
                    "disagree. %(path)s",
                    entry=move.display_name,
                    partner=partner,
                    kinds=", ".join(sorted(labels[kind] for kind in kinds)),
                    path=path,
                )
            )

    @api.model
    def _wallet_payments_to_refund(self, moves):
        """{entry: its wallet} of the posted wallet payment entries among
        ``moves``, about to be reset to draft."""
        booked = self._entry_movements(moves)
        return {
            move: booked[move.id].wallet_id[:1]
            for move in moves
            if move.id in booked
            and move.state == "posted"
            and self._is_wallet_payment_entry(move)
        }

    @api.model
    def _refund_drafted_payments(self, drafted):
        """Give back to the wallets what these wallet payment entries, reset to
        draft, debited and did not give back yet (``drafted`` as
        ``_wallet_payments_to_refund`` gave them): one ``refund`` movement each,
        key ``unpay:payment:<payment id>:<n>`` (a payment may be reset, posted
        and reset again). Their entry no longer posted, the books have given
        the amount back already: the movement records it with that entry."""
        Move = self.env["billing.wallet.move"]
        for move, wallet in drafted.items():
            wallet._lock()
            movements = Move.search([("account_move_id", "=", move.id)], order="id")
            amount = -sum(movements.mapped("amount"))
            currency = wallet.currency_id
            if currency.compare_amounts(amount, 0) <= 0:
                continue
            payment = move.origin_payment_id
            invoice = movements.filtered(lambda m: m.kind == "invoice_payment")[
                -1:
            ].invoice_id
            undone = len(movements.filtered(lambda m: m.kind == "refund"))
            label = self.env._(
                "Payment %(payment)s undone: back to the wallet", payment=payment.name
            )
            wallet._apply_movements(
                [
                    {
                        "kind": "refund",
                        "name": label,
                        "amount": amount,
                        "origin": payment.name,
                        "idempotency_key": f"unpay:payment:{payment.id}:{undone + 1}",
                        "account_move_id": move.id,
                        "invoice_id": invoice.id,
                    }
                ]
            )
            if invoice:
                invoice.message_post(
                    body=self.env._(
                        "%(amount)s given back to the wallet of %(partner)s: wallet "
                        "payment %(payment)s was reset to draft or cancelled.",
                        amount=currency.format(amount),
                        partner=wallet.partner_id.display_name,
                        payment=payment.name,
                    )
                )

    @api.model
    def _wallet_payments_to_repost(self, payments):
        """{payment: (wallet, invoice)} of the payments among ``payments`` paid
        from the wallet once, reset to draft and now posted again; refused with
        the reason when the payment cannot debit the wallet again (the balance
        short, the invoice no longer due that much)."""
        payments = payments.filtered(
            lambda p: (
                p.state == "draft"
                and p.move_id
                and p.journal_id == p.company_id.billing_wallet_journal_id
            )
        )
        booked = self._entry_movements(payments.move_id)
        plan = {}
        for payment in payments:
            if payment.move_id.id not in booked:
                continue
            wallet = booked[payment.move_id.id].wallet_id[:1]
            invoice = payment.invoice_ids
            currency = payment.company_currency_id
            problem = None
            if (
                len(invoice) != 1
                or invoice.move_type != "out_invoice"
                or invoice.state != "posted"
            ):
                problem = self.env._("it pays no posted customer invoice")
            elif (
                invoice.commercial_partner_id != wallet.partner_id
                or payment.partner_id.commercial_partner_id != wallet.partner_id
            ):
                problem = self.env._(
                    "it must pay an invoice of %(partner)s",
                    partner=wallet.partner_id.display_name,
                )
            elif payment.currency_id != currency:
                problem = self.env._(
                    "the wallet is kept in %(currency)s", currency=currency.name
                )
            elif currency.compare_amounts(payment.amount, invoice.amount_residual) > 0:
                problem = self.env._(
                    "its %(amount)s is more than the %(residual)s due on %(invoice)s",
                    amount=currency.format(payment.amount),
                    residual=currency.format(invoice.amount_residual),
                    invoice=invoice.display_name,
                )
            else:
                wallet._lock()
                if not wallet._covers(payment.amount):
                    problem = self.env._(
                        "the wallet balance of %(balance)s does not cover %(amount)s",
                        balance=wallet._format_exact(wallet.balance),
                        amount=currency.format(payment.amount),
                    )
            if problem:
                raise UserError(
                    self.env._(
                        "Payment %(payment)s cannot be posted again from the wallet "
                        "of %(partner)s: %(problem)s.",
                        payment=payment.display_name,
                        partner=wallet.partner_id.display_name,
                        problem=problem,
                    )
                )
            plan[payment] = (wallet, invoice)
        return plan

    @api.model
    def _debit_reposted_payments(self, plan):
        """Reconcile the wallet payments posted again with their invoice and debit
        the wallet again (``plan`` as ``_wallet_payments_to_repost`` gave it):
        key ``invoice_payment:<payment id>:<n>``."""
        Move = self.env["billing.wallet.move"]
        for payment, (wallet, invoice) in plan.items():
            move = payment.move_id
            (move.line_ids + invoice.line_ids).filtered(
                lambda line: (
                    line.account_id.account_type == "asset_receivable"
                    and not line.reconciled
                )
            ).reconcile()
            debits = Move.search_count(
                [("account_move_id", "=", move.id), ("kind", "=", "invoice_payment")]
            )
            wallet._apply_movements(
                [
                    {
                        "kind": "invoice_payment",
                        "name": self.env._(
                            "Payment of %(invoice)s", invoice=invoice.name
                        ),
                        "amount": -payment.amount,
                        "origin": invoice.name,
                        "idempotency_key": f"invoice_payment:{payment.id}:{debits + 1}",
                        "account_move_id": move.id,
                        "invoice_id": invoice.id,
                    }
                ]
            )

    @api.model
    def _wallet_payment_drafts(self, payments):
        """The payments among ``payments`` whose draft entry books wallet
        movements: cancelled with their entry, which is kept, not deleted."""
        drafts = payments.filtered(lambda p: p.move_id.state == "draft")
        booked = self._entry_movements(drafts.move_id)
        return drafts.filtered(lambda p: p.move_id.id in booked)

    @api.model
    def _unreconcile_plan(self, partials):
        """Before ``partials`` are removed: refused for those of an entry that
        gave money back to a wallet; returns the partials of posted wallet
        payments (not being reset to draft) whose amount goes back to the
        wallet, and the entries whose top-up credit may have to be taken back
        (see ``_after_unreconcile``)."""
        lines = partials.debit_move_id | partials.credit_move_id
        moves = lines.move_id
        given_back = self._give_back_entries(moves)
        booked = self._entry_movements(moves)
        drafting = set(self.env.context.get("billing_wallet_drafting", ()))
        refunds = []
        for partial in partials:
            debit = partial.debit_move_id
            credit = partial.credit_move_id
            entry = (debit.move_id | credit.move_id) & given_back
            if entry:
                other = (debit.move_id | credit.move_id) - entry
                raise UserError(
                    self.env._(
                        "Entry %(entry)s gave %(amount)s back to the wallet of "
                        "%(partner)s: its reconciliation with %(other)s cannot be "
                        "removed.",
                        entry=entry[0].display_name,
                        amount=entry[0].company_currency_id.format(partial.amount),
                        partner=entry[0].commercial_partner_id.display_name,
                        other=other[:1].display_name,
                    )
                )
            payment_entry = credit.move_id
            if (
                payment_entry.id in booked
                and payment_entry.id not in drafting
                and payment_entry.state == "posted"
                and credit.account_id.account_type == "asset_receivable"
                and self._is_wallet_payment_entry(payment_entry)
            ):
                refunds.append(
                    {
                        "key": f"unpay:{partial.id}",
                        "line": credit,
                        "amount": partial.amount,
                        "counterpart": debit.move_id,
                        "wallet": booked[payment_entry.id].wallet_id[:1],
                    }
                )
        return refunds, moves

    @api.model
    def _after_unreconcile(self, plan):
        """After partials are removed (``plan`` as ``_unreconcile_plan`` gave it):
        the amount of the wallet payments unreconciled goes back to the wallet,
        and the top-ups no longer paid give their credit back."""
        refunds, moves = plan
        for refund in refunds:
            counterpart = refund["counterpart"]
            payment = refund["line"].move_id.origin_payment_id
            label = self.env._(
                "Payment %(payment)s unreconciled from %(entry)s: back to the wallet",
                payment=payment.name,
                entry=counterpart.name,
            )
            refund["wallet"]._give_back(
                refund["line"],
                refund["amount"],
                refund["key"],
                label,
                origin=payment.name,
                invoice=counterpart if counterpart.is_invoice() else None,
            )
            if counterpart.is_invoice():
                counterpart.message_post(
                    body=self.env._(
                        "%(amount)s given back to the wallet of %(partner)s: wallet "
                        "payment %(payment)s was unreconciled from this invoice.",
                        amount=counterpart.company_currency_id.format(refund["amount"]),
                        partner=refund["wallet"].partner_id.display_name,
                        payment=payment.name,
                    )
                )
        self._take_back_unpaid_topups(moves.exists())

    def _give_back(self, line, amount, key, label, origin, invoice=None):
        """Move ``amount`` of the customer's credit left open on the receivable
        ``line`` (a wallet payment unreconciled, a credit note) into this
        wallet: a journal entry from the receivable to the wallet account,
        reconciled with ``line``, and a ``refund`` movement of ``key``."""
        self.ensure_one()
        self._lock()
        currency = self.currency_id
        if self._has_movement(key) or currency.compare_amounts(amount, 0) <= 0:
            return
        entry = self._post_entry(
            label,
            [
                (line.account_id, amount, label),
                (self.company_id.billing_wallet_account_id, -amount, label),
            ],
        )
        counterpart = entry.line_ids.filtered(
            lambda entry_line: entry_line.account_id == line.account_id
        )
        (counterpart + line).reconcile()
        self._apply_movements(
            [
                {
                    "kind": "refund",
                    "name": label,
                    "amount": amount,
                    "origin": origin,
                    "idempotency_key": key,
                    "account_move_id": entry.id,
                    "invoice_id": invoice.id if invoice else False,
                }
            ]
        )

    @api.model
    def _wallet_paid(self, invoice):
        """What ``invoice`` has been paid from the wallet and not given back."""
        Move = self.env["billing.wallet.move"].sudo()
        own = Move.search(
            [
                ("invoice_id", "=", invoice.id),
                ("kind", "in", ("invoice_payment", "refund")),
            ]
        )
        returned = Move.search(
            [
                ("invoice_id", "in", invoice.reversal_move_ids.ids),
                ("idempotency_key", "=like", "credit_note:%"),
            ]
        )
        return -sum(own.mapped("amount")) - sum(returned.mapped("amount"))

    @api.model
    def _give_back_credit_notes(self, refunds):
        """Credit the wallet with what the posted credit notes ``refunds`` of
        invoices paid from the wallet leave open on the receivable (a credit
        note of an invoice already paid), up to what the wallet paid of the
        invoice: a prepaid customer's money goes back where it came from. Key
        ``credit_note:<credit note id>``."""
        for refund in refunds:
            origin = refund.reversed_entry_id
            if (
                refund.move_type != "out_refund"
                or not origin
                or origin.billing_is_topup
                or refund.currency_id != refund.company_currency_id
            ):
                continue
            wallet = self._get_wallet(
                origin.partner_id, origin.company_id, create=False
            )
            if not wallet:
                continue
            wallet._lock()
            lines = refund.line_ids.filtered(
                lambda line: (
                    line.account_id.account_type == "asset_receivable"
                    and not line.reconciled
                )
            )
            amount = min(
                -sum(lines.mapped("amount_residual")), self._wallet_paid(origin)
            )
            if not lines or refund.currency_id.compare_amounts(amount, 0) <= 0:
                continue
            wallet._give_back(
                lines[0],
                refund.currency_id.round(amount),
                f"credit_note:{refund.id}",
                self.env._(
                    "Credit note %(refund)s of %(invoice)s: back to the wallet",
                    refund=refund.name,
                    invoice=origin.name,
                ),
                origin=refund.name,
                invoice=refund,
            )
            refund.message_post(
                body=self.env._(
                    "%(amount)s given back to the wallet of %(partner)s, which paid "
                    "invoice %(invoice)s.",
                    amount=refund.currency_id.format(amount),
                    partner=wallet.partner_id.display_name,
                    invoice=origin.display_name,
                )
            )

    # -------------------------------------------------------------------------
    # CRON METHODS
    # -------------------------------------------------------------------------

    @api.model
    def _cron_post_consumption(self, batch_size=20):
        """Scheduled action: book the prepaid usage not yet posted (see
        ``_post_consumption_run``), each batch of wallets committed on its own
        (with OCA queue_job installed: in queue jobs, see billing_queue.py)."""
        Run = self.env["billing.run"]
        if Run._billing_queue_active():
            return Run._billing_queue_start("consumption", batch_size)
        return self._post_consumption_run(batch_size=batch_size, auto_commit=True)

    @api.model
    def _count_unposted(self, seen):
        """Wallets with usage not yet posted, but for ``seen``."""
        self.env.cr.execute(
            SQL(
                """
                SELECT COUNT(DISTINCT wallet_id) FROM billing_wallet_move
                 WHERE kind IN ('usage', 'renewal') AND account_move_id IS NULL
                   AND wallet_id != ALL(%s)
                """,
                seen,
            )
        )
        return self.env.cr.fetchone()[0]

    def _post_consumption_batch(self):
        """Post the consumption of these wallets together or, when that fails,
        one wallet at a time, each in a savepoint, so that one failing wallet
        does not hold the others up. Returns the wallets posted."""
        try:
            with self.env.cr.savepoint():
                return self._post_consumption()
        except (UserError, errors.SerializationFailure) as error:
            _logger.info("Consumption batch not posted (%s); one by one", error)
        posted = self.browse()
        for wallet in self:
            try:
                with self.env.cr.savepoint():
                    if wallet._post_consumption():
                        posted |= wallet
            except UserError as error:
                _logger.warning(
                    "Consumption of wallet %s not posted: %s", wallet.id, error
                )
            except errors.SerializationFailure:
                continue  # changed since this transaction began: next run
        return posted

    @api.model
    def _post_consumption_run(self, batch_size=20, auto_commit=False):
        """Book the prepaid usage not yet posted of every wallet, one journal
        entry per wallet, in batches; the wallets a running ingest holds are
        left for the next run, and each wallet is taken once a run, however much
        usage arrives meanwhile. Returns how many wallets were posted."""
        done, seen = 0, []
        while True:
            self.env.cr.execute(
                SQL(
                    """
                    SELECT DISTINCT wallet_id FROM billing_wallet_move
                     WHERE kind IN ('usage', 'renewal') AND account_move_id IS NULL
                       AND wallet_id != ALL(%(seen)s)
                  ORDER BY wallet_id
                     LIMIT %(limit)s
                    """,
                    seen=seen,
                    limit=batch_size,
                )
            )
            wallets = self.browse(row[0] for row in self.env.cr.fetchall())
            if not wallets:
                break
            posted = wallets._post_consumption_batch()
            done += len(posted)
            seen.extend(wallets.ids)  # the others: busy, too small yet, or failing
            if auto_commit:
                # A small batch a transaction: its wallets are locked for their
                # own posting only, and the next batch starts from a fresh
                # snapshot, so that real-time usage is not held up long.
                self.env.cr.commit()  # pylint: disable=invalid-commit
            self.env["ir.cron"]._notify_progress(
                done=len(seen), remaining=self._count_unposted(seen)
            )
            if auto_commit:
                self.env.invalidate_all()  # memory stays that of one batch
        return done
