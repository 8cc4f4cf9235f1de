import io
import math
import re
import uuid
from bisect import bisect_right
from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal
from itertools import islice

import psycopg2.errors
import psycopg2.extensions

from odoo import api, fields, models
from odoo.exceptions import AccessError, UserError
from odoo.osv import expression
from odoo.tools import SQL, float_compare, float_round
from odoo.tools.misc import formatLang

CHARGE_STATES = [
    ("pending", "Pending"),
    ("invoiced", "Invoiced"),
    ("debited", "Debited"),
    ("cancelled", "Cancelled"),
]
INGEST_REQUIRED = ("partner_id", "product_id", "date", "quantity", "external_ref")
INGEST_FIELDS = (*INGEST_REQUIRED, "price_unit", "name")
INGEST_FIELDS_SET = frozenset(INGEST_FIELDS)
USAGE_DIGITS = 6
MICRO = 10**USAGE_DIGITS
# Prepaid records accepted by one ingest call from which their consumption is
# booked right after the call, instead of at the next scheduled posting.
CONSUMPTION_POSTING_BATCH = 1000
# The external reference of a service's renewal charge starts with this,
# followed by the service id and the start of its period.
SERVICE_REF_PREFIX = "billing.service:"


# The columns of billing_charge without a database foreign key (see
# UsageMany2one): all of its links. Even empty, a foreign key costs every record
# inserted a trigger event.
UNCONSTRAINED_COLUMNS = (
    "partner_id",
    "product_id",
    "company_id",
    "wallet_move_id",
    "create_uid",
    "write_uid",
    "invoice_line_id",
    "cancelled_line_id",
    "service_id",
)
# The staging table of ingest calls: a temporary table of the connection, its
# rows deleted at commit; the name carries its version, as a connection of the
# pool outlives a module update.
STAGING_TABLE = "billing_charge_ingest_stage_v1"
# Characters that text in COPY escapes with a backslash.
COPY_SPECIAL = re.compile(r"[\\\t\n\r]")
COPY_NULL, COPY_TRUE, COPY_FALSE = "\\N", "t", "f"
INFINITY = float("inf")
# A usage record's amount (quantity x unit price) stays below this, the bound of
# wallet amounts (billing_wallet.WALLET_AMOUNT_LIMIT): beyond it a float is no
# longer exact to the usage precision, and a product of huge numbers overflows.
USAGE_AMOUNT_LIMIT = 100_000_000
# Numbers the inline checks of ingest accept; larger ones (an integer beyond
# what a float holds) are checked by _ingest_check_record.
INLINE_NUMBER_LIMIT = 1e15


class UsageMany2one(fields.Many2one):
    """A Many2one of ``billing.charge`` without a database foreign key: the
    checks of foreign keys cost more than the insert of a usage record itself
    (see "Usage ingestion at volume" in DESIGN.md). Odoo would add the key again
    at every module update (``update_db_foreign_key``, run after ``init``): this
    field does not ask for it. The integrity is kept in Python instead: the
    records charges point to cannot be deleted while they do
    (``billing.charge._check_unreferenced``), but invoice lines, whose deletion
    empties the charges' links to them (``_forget_lines``), as ``ondelete="set
    null"`` did; ingest only stores ids it has read."""

    def update_db_foreign_key(self, model, column):
        return


def _copy_text(text):
    """``text`` as a column of COPY's text format."""
    if not COPY_SPECIAL.search(text):
        return text
    return (
        text.replace("\\", "\\\\")
        .replace("\t", "\\t")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
    )


class IngestRetry(Exception):
    """Raised by the COPY of ``billing.charge._ingest_copy`` for what it does
    not handle: the call is stored through the staging table instead."""


class CopyLines:
    """A file for ``COPY ... FROM STDIN`` that formats its lines as COPY reads
    them, a chunk at a time: the database stores the rows of a chunk while the
    next is formatted.

    :param lines: an iterable of lines in COPY's text format, each ending with
        a line end
    """

    CHUNK = 500  # lines a read returns

    def __init__(self, lines):
        self._lines = iter(lines)
        self.count = 0  # lines read

        self.error = None  # what a read raised: psycopg2 raises QueryCanceled

    def _read(self, size=-1):
        # COPY asks for ``size`` characters; any length is taken, "" ends it.
        try:
            chunk = list(islice(self._lines, self.CHUNK))
        except Exception as error:
            self.error = error
            raise
        self.count += len(chunk)
        return "".join(chunk)

    read = _read  # the file's method COPY calls (not a model's read)


def _storable_text(text):
    """Whether PostgreSQL can store ``text``: no NUL character, and valid
    Unicode (no unpaired surrogate, which JSON's escapes can carry)."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _micro(amount):
    """``amount`` in millionths, as an integer: exact sums of usage amounts."""
    return round(amount * MICRO)


def _available(wallets):
    """{partner id: balance in millionths} of the locked ``wallets`` ({partner
    id: (wallet id, balance)}): what their usage may spend, exactly."""
    return {
        partner_id: _micro(balance) for partner_id, (_id, balance) in wallets.items()
    }


def _exact_product(quantity, price):
    """``quantity`` times ``price``, both at usage precision, computed exactly
    (in decimal) and returned as a float, for one rounding to the currency."""
    return float(
        Decimal(repr(float_round(quantity, USAGE_DIGITS)))
        * Decimal(repr(float_round(price, USAGE_DIGITS)))
    )


class BillingCharge(models.Model):
    _name = "billing.charge"
    _description = "Usage Record or Charge"
    _order = "date desc, id desc"
    _check_company_auto = True

    # Indexed with the state and the date (init): one index for the searches
    # by customer and the recurring run's pending charges of a customer.
    partner_id = UsageMany2one(
        comodel_name="res.partner",
        string="Customer",
        required=True,
        readonly=True,
        ondelete="restrict",
    )
    # Indexed with the service (init): one index for the lists' default order,
    # the Date filter and the Service search (see scripts/bench charge_indexes).
    date = fields.Datetime(required=True, readonly=True)
    product_id = UsageMany2one(
        comodel_name="product.product",
        string="Service",
        required=True,
        readonly=True,
        ondelete="restrict",
    )
    quantity = fields.Float(required=True, readonly=True, digits="Billing Usage")
    price_unit = fields.Float(
        string="Unit Price", required=True, readonly=True, digits="Billing Usage"
    )
    amount = fields.Float(
        required=True,
        readonly=True,
        digits="Billing Usage",
        help="Quantity times unit price, kept at usage precision; invoices round "
        "the sum of a line's charges to the currency.",
    )
    name = fields.Char(string="Description", readonly=True)
    external_ref = fields.Char(
        string="External Reference",
        required=True,
        readonly=True,
        help="The integration's reference of the usage record: sent twice, stored "
        "once.",
    )
    company_id = UsageMany2one(
        comodel_name="res.company",
        required=True,
        readonly=True,
        default=lambda self: self.env.company,
    )
    currency_id = fields.Many2one(related="company_id.currency_id")
    state = fields.Selection(
        selection=CHARGE_STATES, required=True, default="pending", readonly=True
    )
    invoice_line_id = UsageMany2one(
        comodel_name="account.move.line",
        readonly=True,
        index="btree_not_null",
        ondelete="set null",
    )
    invoice_id = fields.Many2one(
        comodel_name="account.move",
        compute="_compute_invoice_id",
        compute_sudo=True,
        search="_search_invoice_id",
    )
    cancelled_line_id = UsageMany2one(
        comodel_name="account.move.line",
        string="Cancelled Invoice Line",
        readonly=True,
        index="btree_not_null",
        ondelete="set null",
        help="The line of a cancelled invoice that billed this record, which went "
        "back to pending when the invoice was cancelled: resetting that invoice to "
        "draft bills it there again.",
    )
    # Not indexed: the consumption posting books a movement by its own
    # usage_amounts, and an index would cost every prepaid record ingested.
    wallet_move_id = UsageMany2one(
        comodel_name="billing.wallet.move",
        string="Wallet Movement",
        readonly=True,
        ondelete="restrict",
    )
    service_id = UsageMany2one(
        comodel_name="billing.service",
        string="Renewed Service",
        readonly=True,
        index="btree_not_null",
        ondelete="restrict",
        help="The service this charge renews, for the period starting on its "
        "Service Period Start.",
    )
    service_period_start = fields.Date(readonly=True)
    # Odoo's log fields, without their foreign keys (see UsageMany2one): a user
    # deleted leaves them empty, as the keys did (``_forget_users``).
    create_uid = UsageMany2one(
        comodel_name="res.users", string="Created by", automatic=True, readonly=True
    )
    write_uid = UsageMany2one(
        comodel_name="res.users",
        string="Last Updated by",
        automatic=True,
        readonly=True,
    )

    _sql_constraints = [
        (
            "external_ref_company_uniq",
            "unique(company_id, external_ref)",
            "A usage record with this external reference already exists.",
        ),
        ("quantity_positive", "CHECK(quantity > 0)", "Quantity must be positive."),
        # A partial unique index (init): a full one would hold an entry for
        # every usage record, whose service is empty.
        (
            "service_period_uniq",
            "",
            "This period of the service is charged already.",
        ),
        (
            "service_period_required",
            "CHECK(service_id IS NULL OR service_period_start IS NOT NULL)",
            "A service renewal charge needs the start of its period.",
        ),
    ]

    def init(self):
        # Each index costs every record ingested and every charge invoiced (see
        # "Usage ingestion at volume" in DESIGN.md), so each serves several
        # searches. The searches by customer, and the recurring run's pending
        # charges of a customer up to a date: it replaces the customer's own
        # index and a partial one of the pending charges. The lists' order by
        # date, the Date filter and the Service search, whose condition on the
        # service is checked in the index: it replaces an index of the date and
        # one of the service.
        self.env.cr.execute(
            SQL(
                """
                CREATE INDEX IF NOT EXISTS billing_charge_partner_state_date_idx
                    ON billing_charge (partner_id, state, date);
                CREATE INDEX IF NOT EXISTS billing_charge_date_product_idx
                    ON billing_charge (date, product_id)
                """
            )
        )
        for name in (
            "billing_charge__partner_id_index",
            "billing_charge_pending_partner_date_idx",
            "billing_charge__wallet_move_id_index",
            "billing_charge__date_index",
            "billing_charge__product_id_index",
        ):
            self.env.cr.execute(SQL("DROP INDEX IF EXISTS %s", SQL.identifier(name)))
        # The ingest's COPY leaves the dates of creation and change to the
        # database, the time of the transaction as Odoo's own: COPY parses a
        # timestamp sent for every record at a sixth of its time.
        self.env.cr.execute(
            SQL(
                """
                ALTER TABLE billing_charge
                    ALTER COLUMN create_date SET DEFAULT (now() AT TIME ZONE 'UTC'),
                    ALTER COLUMN write_date SET DEFAULT (now() AT TIME ZONE 'UTC')
                """
            )
        )
        self.env.cr.execute(
            SQL(
                """
                CREATE UNIQUE INDEX IF NOT EXISTS billing_charge_service_period_uniq
                    ON billing_charge (service_id, service_period_start)
                 WHERE service_id IS NOT NULL
                """
            )
        )
        self._drop_foreign_keys()

    def _drop_foreign_keys(self):
        """Drop the foreign keys of the UNCONSTRAINED_COLUMNS that a database
        installed with an earlier version has (see UsageMany2one), and their
        reflection."""
        cr = self.env.cr
        cr.execute(
            SQL(
                """
                SELECT c.conname
                  FROM pg_constraint c
                  JOIN pg_attribute a
                    ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey)
                 WHERE c.contype = 'f' AND c.conrelid = 'billing_charge'::regclass
                   AND a.attname = ANY(%s)
                """,
                list(UNCONSTRAINED_COLUMNS),
            )
        )
        names = [row[0] for row in cr.fetchall()]
        for name in names:
            cr.execute(
                SQL(
                    "ALTER TABLE billing_charge DROP CONSTRAINT %s",
                    SQL.identifier(name),
                )
            )
        if names:
            cr.execute(
                SQL(
                    "DELETE FROM ir_model_constraint "
                    "WHERE type = 'f' AND name = ANY(%s)",
                    names,
                )
            )

    @api.model
    def _check_unreferenced(self, records, column):
        """Refuse the deletion of ``records`` while usage records point to them by
        ``column``, one of the UNCONSTRAINED_COLUMNS, as its foreign key did.
        Whoever may delete them is told, whether or not they may read the
        usage records."""
        if not records:
            return
        assert column in UNCONSTRAINED_COLUMNS, column
        self.flush_model([column])
        self.env.cr.execute(
            SQL(
                "SELECT %(column)s FROM billing_charge WHERE %(column)s = ANY(%(ids)s) "
                "LIMIT 1",
                column=SQL.identifier(column),
                ids=records.ids,
            )
        )
        row = self.env.cr.fetchone()
        if row:
            raise UserError(
                self.env._(
                    "%(record)s cannot be deleted: usage records refer to it. "
                    "Archive it instead.",
                    record=records.browse(row[0]).display_name,
                )
            )

    @api.model
    def _forget_users(self, users):
        """Empty the log columns of usage records that name ``users``, being
        deleted, as their foreign keys did (ON DELETE SET NULL)."""
        if not users:
            return
        self.flush_model(["create_uid", "write_uid"])
        self.env.cr.execute(
            SQL(
                """
                UPDATE billing_charge
                   SET create_uid = CASE WHEN create_uid = ANY(%(ids)s)
                                         THEN NULL ELSE create_uid END,
                       write_uid = CASE WHEN write_uid = ANY(%(ids)s)
                                        THEN NULL ELSE write_uid END
                 WHERE create_uid = ANY(%(ids)s) OR write_uid = ANY(%(ids)s)
                """,
                ids=users.ids,
            )
        )
        self.invalidate_model(["create_uid", "write_uid"])

    # -------------------------------------------------------------------------
    # COMPUTE AND SEARCH METHODS
    # -------------------------------------------------------------------------

    @api.depends("invoice_line_id.move_id")
    def _compute_invoice_id(self):
        for charge in self:
            charge.invoice_id = charge.invoice_line_id.move_id

    def _search_invoice_id(self, operator, value):
        """Search on the invoice as its related field would (with sudo, as
        ``invoice_line_id.move_id``; no invoice when there is no line), but text
        typed in the Invoice search (Odoo's name search of invoices: number,
        reference or customer name) is looked up among the invoices first: as
        one query, PostgreSQL cannot estimate how few charges match and walks
        the date index of the whole table (scripts/bench charge_indexes)."""
        Move = self.env["account.move"].sudo().with_context(active_test=False)
        if operator in ("ilike", "like", "=ilike", "=like") and isinstance(value, str):
            operator, value = "in", Move.search([("display_name", operator, value)]).ids
        if isinstance(value, list | tuple):
            value_is_null = any(item is False or item is None for item in value)
        else:
            value_is_null = value is False or value is None
        negative = operator in expression.NEGATIVE_TERM_OPERATORS
        lines = (
            self.env["account.move.line"]
            .sudo()
            .with_context(active_test=False)
            ._search([("move_id", operator, value)])
        )
        domain = [("invoice_line_id", "in", lines)]
        if negative != value_is_null:
            # (invoice, '=', False), (invoice, 'not in', [ids]): no line too.
            domain = expression.OR([domain, [("invoice_line_id", "=", False)]])
        return domain

    # -------------------------------------------------------------------------
    # BUSINESS METHODS
    # -------------------------------------------------------------------------

    @api.model
    def _prepare_usage_line_vals(self, groups, currency, period_label, allowances=None):
        """Invoice line values billing ``groups`` of pending charges, each a tuple
        ``(product_id, price_unit, quantity, amount, charge ids)``, or with a
        sixth item, the label of the renewal of a service and period its line
        bills (see ``_service_groups``): one usage line per group, followed by
        a negative line for what ``allowances`` ({product_id: quantity},
        consumed as it goes) include; renewals are not usage, and use no
        allowance. Returns the line
        values and, per usage line position, the ids of the charges it bills.

        A usage line bills exactly the sum of its charges rounded once to
        ``currency``; an allowance line credits exactly what it includes at the
        group's unit price, rounded once (all of the usage line when it
        includes all of it). Both are on the basis of the unit price, taxes
        included where the price includes them. See ``_prepare_amount_line_vals``
        for quantities and prices finer than invoice lines keep."""
        allowances = allowances if allowances is not None else {}
        products = self.env["product.product"].browse({g[0] for g in groups})
        lines, line_charges = [], []
        for product_id, price, quantity, amount, ids, *renewal in groups:
            product = products.browse(product_id)
            label = (
                renewal[0] if renewal else f"{product.display_name} ({period_label})"
            )
            billed = currency.round(amount)
            line_charges.append((len(lines), ids))
            lines.append(
                {
                    "product_id": product_id,
                    **self._prepare_amount_line_vals(
                        label, product, quantity, price, billed, currency
                    ),
                }
            )
            included = 0 if renewal else min(allowances.get(product_id, 0.0), quantity)
            if included > 0:
                allowances[product_id] -= included
                if float_compare(included, quantity, precision_digits=USAGE_DIGITS):
                    credit = currency.round(_exact_product(included, price))
                else:
                    credit = billed  # all of it is included
                lines.append(
                    {
                        "product_id": product_id,
                        **self._prepare_amount_line_vals(
                            self.env._("Included in your plan: %(label)s", label=label),
                            product,
                            -included,
                            price,
                            -credit,
                            currency,
                        ),
                    }
                )
        return lines, line_charges

    @api.model
    def _service_groups(self, rows):
        """Groups of charges for ``_prepare_usage_line_vals`` from ``rows`` of
        ``(product_id, price_unit, quantity, amount, charge ids, service_id,
        service_period_start)`` (after what else the caller puts first): the
        charges of a service's renewal (grouped by
        service and period) get the label of that service and period."""
        services = {
            service.id: service
            for service in self.env["billing.service"].browse(
                {row[-2] for row in rows if row[-2]}
            )
        }
        groups = []
        for *group, service_id, start in rows:
            if service_id:
                service = services[service_id]
                group.append(
                    self.env._(
                        "%(service)s (%(period)s)",
                        service=service.name,
                        period=service._period_label(start),
                    )
                )
            groups.append(tuple(group))
        return groups

    @api.model
    def _prepare_amount_line_vals(
        self, name, product, quantity, price, total, currency
    ):
        """``name``, ``quantity`` and ``price_unit`` of an invoice line billing
        ``total`` (rounded to ``currency``) for ``quantity`` of ``product`` at
        ``price``. The line shows that quantity and price when it keeps them
        as they are (*Product Unit of Measure* and *Product Price* precisions)
        and their product is ``total``; otherwise it bills ``total`` as one
        unit (minus one for a credit) and its name says what it is, quantity
        and price at usage precision."""
        Precision = self.env["decimal.precision"]
        quantity_digits = Precision.precision_get("Product Unit of Measure")
        price_digits = Precision.precision_get("Product Price")
        if (
            not float_compare(
                float_round(quantity, quantity_digits),
                quantity,
                precision_digits=USAGE_DIGITS,
            )
            and not float_compare(
                float_round(price, price_digits), price, precision_digits=USAGE_DIGITS
            )
            and not currency.compare_amounts(quantity * price, total)
        ):
            return {"name": name, "quantity": quantity, "price_unit": price}
        return {
            "name": self.env._(
                "%(label)s: %(quantity)s %(uom)s at %(price)s",
                label=name,
                quantity=self._format_usage_quantity(abs(quantity)),
                uom=product.uom_id.name,
                price=self.env["billing.wallet"]._format_amount_exact(price, currency),
            ),
            "quantity": -1.0 if quantity < 0 else 1.0,
            "price_unit": abs(total),
        }

    @api.model
    def _format_usage_quantity(self, quantity):
        """``quantity`` with the decimals it has, up to the usage precision, in
        the user's language: 1000 as 1,000, 1.4624 as 1.4624."""
        exact = float_round(quantity, USAGE_DIGITS)
        decimals = len(f"{exact:.{USAGE_DIGITS}f}".rstrip("0").partition(".")[2])
        return formatLang(self.env, exact, digits=decimals)

    @api.model
    def _usage_lines_invoiced(self, lines):
        """What the usage ``lines`` bill on the basis their charges are priced
        on, their unit price: ``(amount, taxes_included)``. A line whose price
        includes its taxes counts taxes included (and ``taxes_included`` is
        then True), the others before taxes."""
        amount, taxes_included = 0.0, False
        for line in lines:
            taxes = line.tax_ids.flatten_taxes_hierarchy()
            included = taxes.filtered("price_include")
            if not included:
                amount += line.price_subtotal
            elif included == taxes:
                amount += line.price_total
            else:
                # Some taxes in the price, others added to it: the price's own.
                amount += line.currency_id.round(
                    line.quantity * line.price_unit * (1 - line.discount / 100.0)
                )
            taxes_included = taxes_included or bool(included)
        return amount, taxes_included

    def _link_invoice_lines(self, charge_ids, line_ids):
        """Mark the pending charges ``charge_ids`` invoiced by the invoice lines
        ``line_ids`` (same order) with one UPDATE; raise when one of them is no
        longer pending, so that the caller's transaction is rolled back."""
        if not charge_ids:
            return
        self.env.cr.execute(
            SQL(
                """
                UPDATE billing_charge c
                   SET state = 'invoiced', invoice_line_id = v.line_id,
                       write_uid = %(uid)s, write_date = NOW() AT TIME ZONE 'UTC'
                  FROM unnest(%(charges)s::int4[], %(lines)s::int4[])
                       AS v(charge_id, line_id)
                 WHERE c.id = v.charge_id AND c.state = 'pending'
                """,
                uid=self.env.uid,
                charges=charge_ids,
                lines=line_ids,
            )
        )
        if self.env.cr.rowcount != len(charge_ids):
            raise UserError(
                self.env._(
                    "Usage records changed while they were being invoiced; nothing "
                    "was invoiced, try again."
                )
            )
        self.invalidate_model(["state", "invoice_line_id"])

    @api.model
    def _forget_lines(self, lines):
        """Empty the links of charges to the journal items ``lines``, being
        deleted, as the foreign keys' ``ON DELETE SET NULL`` did (see
        UsageMany2one): charges they bill are released first
        (``_release_invoice_lines``)."""
        if not lines:
            return
        lines.check_access("unlink")
        self.flush_model(["invoice_line_id", "cancelled_line_id"])
        for column in ("invoice_line_id", "cancelled_line_id"):
            self.env.cr.execute(
                SQL(
                    "UPDATE billing_charge SET %(column)s = NULL "
                    "WHERE %(column)s = ANY(%(ids)s)",
                    column=SQL.identifier(column),
                    ids=lines.ids,
                )
            )
            if self.env.cr.rowcount:
                self.invalidate_model([column])
                self.env["account.move.line"].invalidate_model(["billing_charge_ids"])

    @api.model
    def _release_invoice_lines(self, lines):
        """Put the charges billed by the invoice lines ``lines``, being deleted,
        back to pending, to be billed again: on the next invoice of the
        customer's recurring invoice (late usage goes on the first invoice of a
        run) or with Create Invoice. Returns the number of charges."""
        lines = lines.filtered(lambda line: line.display_type == "product")
        if not lines:
            return 0
        lines.check_access("unlink")
        return len(self._release_lines(lines))

    @api.model
    def _release_cancelled_invoices(self, moves):
        """Put the charges billed by the cancelled invoices ``moves`` back to
        pending; each charge remembers the line that billed it, each line how
        many charges it billed (see ``_rebill_cancelled_invoices``). Say so on
        each invoice."""
        cancelled = moves.filtered(lambda move: move.state == "cancel")
        if not cancelled:
            return 0
        cancelled.check_access("write")
        released = self._release_lines(cancelled.invoice_line_ids, cancelled=True)
        counts = defaultdict(int)
        for _charge_id, line_id in released:
            counts[line_id] += 1
        if counts:
            self.env.cr.execute(
                SQL(
                    """
                    UPDATE account_move_line l
                       SET billing_released_count = v.count
                      FROM unnest(%(lines)s::int4[], %(counts)s::int4[])
                           AS v(line_id, count)
                     WHERE l.id = v.line_id
                    """,
                    lines=list(counts),
                    counts=list(counts.values()),
                )
            )
            self.env["account.move.line"].invalidate_model(["billing_released_count"])
        for move in cancelled:
            count = sum(counts[line.id] for line in move.invoice_line_ids)
            if count:
                move.message_post(
                    body=self.env._(
                        "%(count)s usage records billed by this invoice are pending "
                        "again: the next invoice of the customer's recurring invoice, "
                        "or Create Invoice, bills them. Resetting this invoice to "
                        "draft bills them here again.",
                        count=count,
                    )
                )
        return len(released)

    def _release_lines(self, lines, cancelled=False):
        """Charges billed by ``lines`` back to pending with one UPDATE, linked to
        no line; with ``cancelled``, remembering it (else keeping the line of a
        cancelled invoice they remember); [(charge id, line id)]."""
        if not lines:
            return []
        self.flush_model(["state", "invoice_line_id", "cancelled_line_id"])
        self.env.cr.execute(
            SQL(
                """
                UPDATE billing_charge
                   SET state = 'pending', invoice_line_id = NULL,
                       cancelled_line_id = CASE WHEN %(cancelled)s
                           THEN invoice_line_id ELSE cancelled_line_id END,
                       write_uid = %(uid)s, write_date = NOW() AT TIME ZONE 'UTC'
                 WHERE invoice_line_id = ANY(%(lines)s) AND state = 'invoiced'
             RETURNING id, cancelled_line_id
                """,
                cancelled=cancelled,
                uid=self.env.uid,
                lines=lines.ids,
            )
        )
        released = self.env.cr.fetchall()
        if released:
            self.invalidate_model(["state", "invoice_line_id", "cancelled_line_id"])
            self.env["account.move.line"].invalidate_model(["billing_charge_ids"])
        return released

    @api.model
    def _rebill_cancelled_invoices(self, moves):
        """Before the cancelled invoices among ``moves`` are reset to draft: link
        the charges their lines billed before they were cancelled to those lines
        again. Refused when some of them were billed since by another invoice
        (or went with another invoice cancelled since), as the reset invoice
        would bill them twice."""
        cancelled = moves.filtered(lambda move: move.state == "cancel")
        if not cancelled:
            return 0
        cancelled.check_access("write")
        lines = cancelled.invoice_line_ids.filtered("billing_released_count")
        if not lines:
            return 0
        self.flush_model(["state", "invoice_line_id", "cancelled_line_id"])
        # Held against a run or a Create Invoice billing them at the same time.
        self.env.cr.execute(
            SQL(
                """
                SELECT id, cancelled_line_id, state, invoice_line_id
                  FROM billing_charge
                 WHERE cancelled_line_id = ANY(%(lines)s)
              ORDER BY id
                   FOR NO KEY UPDATE
                """,
                lines=lines.ids,
            )
        )
        rows, billed_by = [], set()
        back = defaultdict(int)
        for charge_id, line_id, state, invoice_line_id in self.env.cr.fetchall():
            if state == "pending":
                rows.append((charge_id, line_id))
                back[line_id] += 1
            elif invoice_line_id:
                billed_by.add(invoice_line_id)
        for line in lines:
            missing = line.billing_released_count - back[line.id]
            if missing > 0:
                # sudo: only the names of the invoices that billed them are read.
                others = self.env["account.move.line"].sudo().browse(billed_by).move_id
                raise UserError(
                    self.env._(
                        "Invoice %(invoice)s cannot be reset to draft: %(count)s of "
                        "the usage records its line %(line)s billed were billed "
                        "since it was cancelled%(others)s. Keep it cancelled: they "
                        "are billed once already.",
                        invoice=line.move_id.display_name,
                        count=missing,
                        line=line.name,
                        others=self.env._(
                            " (%(invoices)s)",
                            invoices=", ".join(others.mapped("display_name")),
                        )
                        if others
                        else "",
                    )
                )
        self.env.cr.execute(
            SQL(
                """
                UPDATE billing_charge
                   SET state = 'invoiced', invoice_line_id = cancelled_line_id,
                       cancelled_line_id = NULL, write_uid = %(uid)s,
                       write_date = NOW() AT TIME ZONE 'UTC'
                 WHERE id = ANY(%(ids)s)
                """,
                uid=self.env.uid,
                ids=[row[0] for row in rows],
            )
        )
        self.env.cr.execute(
            SQL(
                "UPDATE account_move_line SET billing_released_count = 0 "
                "WHERE id = ANY(%s)",
                lines.ids,
            )
        )
        self.invalidate_model(["state", "invoice_line_id", "cancelled_line_id"])
        self.env["account.move.line"].invalidate_model(
            ["billing_charge_ids", "billing_released_count"]
        )
        return len(rows)

    @api.model
    def _credit_note_line_vals(self, lines, vals_list):
        """Name what the credit note lines copied from ``lines`` (``vals_list``,
        same order) credit when they reverse an invoice of usage or of a
        recurring invoice: the invoice and its line. The charges stay billed by
        the reversed invoice: the usage was invoiced, the credit note corrects
        the accounts."""
        invoices = lines.move_id.filtered(
            lambda move: move.move_type == "out_invoice" and move.state == "posted"
        )
        if not invoices:
            return vals_list
        # sudo: only whether the invoice bills charges is read.
        billed = {
            line.move_id.id
            for line, _count in self.sudo()._read_group(
                [("invoice_line_id", "in", invoices.invoice_line_ids.ids)],
                ["invoice_line_id"],
                ["__count"],
            )
        }
        for line, vals in zip(lines, vals_list, strict=True):
            move = line.move_id
            if line.display_type != "product" or not (
                move.id in billed or move.billing_recurring_id
            ):
                continue
            vals["name"] = self.env._(
                "Credit of %(invoice)s: %(line)s",
                invoice=move.name,
                line=vals.get("name") or line.name or "",
            )
        return vals_list

    @api.model
    def ingest(self, records):
        """Store usage records in bulk; the entry point of integrations over
        JSON-RPC and XML-RPC.

        :param list records: dicts with ``partner_id``, ``product_id``, ``date``
            (``YYYY-MM-DD`` or ``YYYY-MM-DD HH:MM:SS``, UTC), ``quantity`` and
            ``external_ref``, optionally ``price_unit`` (else the customer's
            pricelist price) and ``name``.
        :return: ``{"created": int, "duplicates": int, "rejected": [{"external_ref":
            ..., "reason": ...}]}``. A record whose reference is already stored is
            a duplicate and is not stored again. A record whose amount (quantity
            x unit price) is 100,000,000 or more (USAGE_AMOUNT_LIMIT), or whose
            text PostgreSQL cannot store (a NUL character, an unpaired
            surrogate), is rejected. Charges of prepaid customers are
            paid from their wallet at once, exactly to the usage precision; one
            the exact balance cannot cover is rejected. Their consumption is
            booked later, in aggregates (``billing.wallet._post_consumption``).
        """
        if not self.env.user.has_group("prepaid_postpaid_billing.group_billing_user"):
            raise AccessError(
                self.env._("Only Billing Users can send usage records (ingest).")
            )
        if not isinstance(records, list | tuple):
            records = [records]
        if self._ingest_can_read_committed():
            return self._ingest_read_committed(records)
        return self._ingest(records)

    def _ingest_can_read_committed(self):
        """Whether this transaction has written nothing yet, as an integration's
        call over RPC: then it can start again at READ COMMITTED (see
        ``_ingest_read_committed``) without undoing any work of the caller."""
        self.env.flush_all()
        self.env.cr.execute(SQL("SELECT txid_current_if_assigned() IS NULL"))
        return self.env.cr.fetchone()[0]

    def _ingest_read_committed(self, records):
        """``_ingest`` in a new transaction at READ COMMITTED, for a caller whose
        transaction has written nothing.

        Prepaid usage updates one row per wallet, and an integration sends its
        calls for one customer from several connections at once. Under Odoo's
        REPEATABLE READ, a call that waits for another's wallet row fails with a
        serialization error once the other commits, and Odoo retries the whole
        call after a random pause of up to seconds. At READ COMMITTED the lock
        wait simply reads the committed balance and goes on; the wallet row lock
        keeps the balance from going below zero all the same, and the unique
        reference keeps each record stored once."""
        if not self.env.registry.in_test_mode():  # tests share one transaction
            # Nothing was written: ending the transaction loses nothing, and
            # its isolation can only be chosen before its first query.
            self.env.cr.rollback()
            self.env.cr.execute(SQL("SET TRANSACTION ISOLATION LEVEL READ COMMITTED"))
        return self._ingest(records)

    def _ingest(self, records):
        """Validate, price and store ``records`` (see ``ingest``) in this
        transaction: streamed into the table with one COPY (``_ingest_copy``);
        when one of their references is stored already, or is being stored by
        a concurrent call, that is undone and they are stored through a staging
        table instead, a reference already stored skipped (``_ingest_staged``;
        see "Usage ingestion at volume" in DESIGN.md)."""
        # Not Odoo's flushing savepoint, whose rollback also drops the
        # transaction's pre-commit hooks (a caller's tracking): flushed around.
        self.env.flush_all()
        try:
            with self.env.cr.savepoint(flush=False):
                result = self._ingest_copy(records)
                self.env.flush_all()
                return result
        except (
            psycopg2.errors.UniqueViolation,
            psycopg2.errors.DeadlockDetected,
            IngestRetry,
        ):
            # The savepoint undid all of it, the wallets' locks and movements
            # too: so is the ORM's state of it.
            self.env.transaction.clear()
        return self._ingest_staged(records)

    def _ingest_staged(self, records):
        """``_ingest`` through the staging table: the valid records are copied to
        it, then stored from it with one INSERT per billing mode, a reference
        already stored skipped (a duplicate)."""
        rejected = []
        valid = self._ingest_validate(records, rejected)
        self._ingest_price(valid)
        valid = self._ingest_check_amounts(valid, rejected)
        created = duplicates = 0
        if valid:
            self._ingest_stage(valid)
            postpaid = sum(1 for vals in valid if not vals["_prepaid"])
            if postpaid:
                created = len(self._ingest_store(prepaid=False))
                duplicates = postpaid - created
            if postpaid < len(valid):
                prepaid_created, prepaid_duplicates = self._ingest_prepaid(
                    [vals for vals in valid if vals["_prepaid"]], rejected
                )
                created += prepaid_created
                duplicates += prepaid_duplicates
        return {
            "created": created,
            "duplicates": duplicates,
            "rejected": self._ingest_reasons(rejected),
        }

    def _ingest_copy(self, records):
        """``_ingest`` with one COPY into the table, the records validated,
        priced, paid and formatted as COPY reads them, while the database
        stores those before (``CopyLines``): Python and the database work at
        once. A reference stored already raises UniqueViolation.

        Prices are computed first, one per pricelist, service and number of
        rule minimum quantities reached, as ``_ingest_price`` does; the wallets
        of the prepaid customers named are locked and their ledger lines of the
        call reserved first, and the records paid in the order sent, as
        ``_ingest_pay`` pays them."""
        company = self.env.company
        unpriced = set()
        partners, products = self._ingest_lookup(records, unpriced)
        prices = self._ingest_prices(unpriced, partners, products)
        prepaid = {
            partner["commercial_id"]
            for partner in partners.values()
            if partner["prepaid"]
        }
        wallets, movements = {}, {}
        if prepaid:
            wallets, movements = self._ingest_open_wallets(sorted(prepaid))
        # The dates of creation and change are the columns' defaults (init).
        tail = f"\t{company.id}\t%s\t{self.env.uid}\t{self.env.uid}\n"
        tails = {None: tail % f"pending\t{COPY_NULL}"}
        for partner_id, move_id in movements.items():
            tails[partner_id] = tail % f"debited\t{move_id}"
        rejected, refused = [], []
        paid = self._ingest_paid(wallets)
        available = _available(wallets)
        lines = self._ingest_lines(
            records,
            partners,
            products,
            prices,
            rejected,
            refused,
            available,
            paid,
            tails,
        )
        data = CopyLines(lines)
        self._ingest_copy_from(
            "COPY billing_charge (partner_id, product_id, date, quantity, "
            "price_unit, amount, name, external_ref, company_id, state, "
            "wallet_move_id, create_uid, write_uid) "
            "FROM STDIN",
            data,
        )
        self.env["billing.charge"].invalidate_model()
        if wallets:
            self._ingest_close_wallets(wallets, movements, paid)
        self._ingest_trigger_posting(sum(counts[0] for counts in paid.values()))
        duplicates = self._ingest_refused_duplicates(refused, rejected)
        return {
            "created": data.count,
            "duplicates": duplicates,
            "rejected": self._ingest_reasons(rejected),
        }

    def _ingest_refused_duplicates(self, refused, rejected):
        """Of the prepaid records ``refused`` (entries of ``rejected``) for a
        balance that does not cover them, never stored, those whose reference
        is stored already are duplicates, not refused, as when they are stored
        first (``_ingest_prepaid``): they are taken out of ``rejected``, and
        counted. A refused record spent no balance: the others are paid the
        same either way."""
        if not refused:
            return 0
        self.env.cr.execute(
            SQL(
                "SELECT external_ref FROM billing_charge "
                "WHERE company_id = %s AND external_ref = ANY(%s)",
                self.env.company.id,
                [entry["external_ref"] for entry in refused],
            )
        )
        stored = {row[0] for row in self.env.cr.fetchall()}
        duplicates = {id(entry) for entry in refused if entry["external_ref"] in stored}
        if duplicates:
            rejected[:] = [entry for entry in rejected if id(entry) not in duplicates]
        return len(duplicates)

    @api.model
    def _ingest_reasons(self, rejected):
        """``rejected`` with the text of each reason: those given while COPY reads
        the records are functions, as no query may run then."""
        for entry in rejected:
            if callable(entry["reason"]):
                entry["reason"] = entry["reason"]()
        return rejected

    def _ingest_lines(
        self,
        records,
        partners,
        products,
        prices,
        rejected,
        refused,
        available,
        paid,
        tails,
    ):
        """The lines of COPY's text format of the valid ``records``, as a
        generator: the others go to ``rejected``, with their reason, as
        ``_ingest_validate``, ``_ingest_check_amounts`` and ``_ingest_pay``
        reject them, their reasons functions (no query may run while COPY
        reads). ``available`` ({partner id: balance in millionths}) is spent by
        the prepaid records, ``paid`` ({partner id: [count, {product id:
        millionths}]}) counts them, ``refused`` gets the entries
        of ``rejected`` of those the balance did not cover; ``tails``
        ({partner id or None: the line's end}) ends each line by the billing
        mode of its customer."""
        thresholds, prices = prices
        amounts, micros, reasons = {}, {}, {}
        postpaid_tail = tails[None]
        for vals in self._ingest_clean(records, partners, products, rejected):
            quantity, price = vals["quantity"], vals["price_unit"]
            if price is None:
                price = prices.get(
                    self._ingest_price_key(
                        thresholds, vals["_pricelist_id"], vals["product_id"], quantity
                    )
                )
                if price is None:  # not priced by _ingest_prices: never so
                    raise IngestRetry(vals["external_ref"])
            amount = amounts.get((quantity, price))
            if amount is None:
                amount = amounts[quantity, price] = self._ingest_amount(quantity, price)
            price, value = amount
            if value is None:
                vals["price_unit"], vals["amount"] = price, value
                self._ingest_check_amounts([vals], rejected)
                continue
            partner_id = vals["partner_id"]
            if vals["_prepaid"]:
                vals["amount"] = value
                micro = micros.get(value)
                if micro is None:
                    micro = micros[value] = _micro(value)
                if not self._ingest_pay(
                    vals, micro, available, paid, rejected, reasons
                ):
                    refused.append(rejected[-1])
                    continue
                tail = tails[partner_id]
            else:
                tail = postpaid_tail
            name = vals["name"]
            yield (
                f"{partner_id}\t{vals['product_id']}\t{vals['date']}\t"
                f"{quantity!r}\t{price!r}\t{value!r}\t"
                f"{COPY_NULL if name is None else _copy_text(name)}\t"
                f"{_copy_text(vals['external_ref'])}{tail}"
            )

    def _ingest_close_wallets(self, wallets, movements, paid):
        """Debit the locked ``wallets`` of what ``paid`` ({partner id: [count,
        {product id: millionths}]}) counts, as ``_ingest_pay`` counts it, each
        with its ledger line ``movements`` ({partner id: reserved movement
        id})."""
        partners = self.env["res.partner"].browse(
            [partner_id for partner_id in wallets if paid[partner_id][0]]
        )
        # Translated once for all the wallets.
        usage_of = self.env._("Usage of %(partner)s")
        records = self.env._("%(count)s usage records")
        batch = uuid.uuid4().hex
        debits = {}
        for partner in partners:
            count, products = paid[partner.id]
            debits[wallets[partner.id][0]] = {
                "move_id": movements[partner.id],
                # The stored complete name, read with the customers
                # (_ingest_partners): the display name of a customer without
                # its per-record computation.
                "name": usage_of
                % {"partner": partner.complete_name or partner.display_name},
                "idempotency_key": f"usage:{batch}:{partner.id}",
                "origin": records % {"count": count},
                "usage_amounts": {
                    product_id: Decimal(micro).scaleb(-USAGE_DIGITS)
                    for product_id, micro in products.items()
                },
            }
        # sudo: as _ingest_open_wallets.
        self.env["billing.wallet"].sudo()._close_usage_movements(debits)

    def _ingest_copy_from(self, statement, data):
        """Run the ``COPY ... FROM STDIN`` ``statement`` with the file ``data``."""
        # As Odoo's own COPY (models.py): no wait callback during a COPY.
        callback = psycopg2.extensions.get_wait_callback()
        psycopg2.extensions.set_wait_callback(None)
        try:
            self.env.cr.copy_expert(statement, data)
        except psycopg2.errors.QueryCanceled:
            # A read of a CopyLines that raised: COPY was cancelled for it.
            if getattr(data, "error", None) is not None:
                raise data.error from None
            raise
        finally:
            psycopg2.extensions.set_wait_callback(callback)

    def _ingest_trigger_posting(self, created):
        """A large batch: book its consumption now, in the cron's worker, not in
        the integration's call."""
        if created < CONSUMPTION_POSTING_BATCH:
            return
        cron = self.env.ref("prepaid_postpaid_billing.ir_cron_billing_post_consumption")
        # A trigger already due (an earlier batch's) wakes the worker for this
        # one too, and it was notified: one trigger for a stream of batches.
        self.env.cr.execute(
            SQL(
                "SELECT 1 FROM ir_cron_trigger WHERE cron_id = %s"
                " AND call_at <= %s LIMIT 1",
                cron.id,
                fields.Datetime.now(),
            )
        )
        if not self.env.cr.fetchone():
            cron.sudo()._trigger()

    def _ingest_validate(self, records, rejected):
        """The valid records as clean values; the others go to ``rejected`` with a
        reason naming the field.

        A record of the usual types (ids and numbers as int or float, date as
        text without offset) is checked inline; any other goes through
        ``_ingest_check_record``, which gives the reason of a refusal, and
        accepts exactly what the inline checks accept."""
        partners, products = self._ingest_lookup(records)
        return list(self._ingest_clean(records, partners, products, rejected))

    def _ingest_lookup(self, records, unpriced=None):
        """The customers and services ``records`` name that the user may use in
        the company (``_ingest_partners``, ``_ingest_products``). ``unpriced``,
        a set, gets the (customer id, service id, quantity) of the records
        without a unit price, read in the same pass (``_ingest_prices``)."""
        company = self.env.company
        partner_ids, product_ids = set(), set()
        for record in records:
            if type(record) is not dict and not isinstance(record, dict):
                continue
            partner_id, product_id = record.get("partner_id"), record.get("product_id")
            # The usual types: the ids are int, and a price is looked up.
            usual = type(partner_id) is int and type(product_id) is int
            if usual:
                partner_ids.add(partner_id)
                product_ids.add(product_id)
            else:
                if self._ingest_is_id(partner_id):
                    partner_ids.add(partner_id)
                if self._ingest_is_id(product_id):
                    product_ids.add(product_id)
            if (
                unpriced is None
                or not usual
                or type(record) is not dict
                or record.get("price_unit") is not None
            ):
                continue
            quantity = record.get("quantity")
            if type(quantity) is not float and type(quantity) is not int:
                quantity = self._ingest_number(quantity)  # hashable, or None
                if quantity is None:
                    continue
            unpriced.add((partner_id, product_id, quantity))
        return (
            self._ingest_partners(partner_ids, company),
            self._ingest_products(product_ids, company),
        )

    def _ingest_clean(self, records, partners, products, rejected):
        """The clean values of the valid ``records``, in the order sent, as a
        generator (see ``_ingest_validate``)."""
        seen = set()
        fields_set, prefix, parse_date = (
            INGEST_FIELDS_SET,
            SERVICE_REF_PREFIX,
            datetime.fromisoformat,
        )
        for index, record in enumerate(records):
            clean = None
            if type(record) is dict and record.keys() <= fields_set:
                get = record.get
                ref, partner_id, product_id = (
                    get("external_ref"),
                    get("partner_id"),
                    get("product_id"),
                )
                quantity, price, when = get("quantity"), get("price_unit"), get("date")
                name = get("name")
                if (
                    type(ref) is str
                    and 0 < len(ref) <= 255
                    and _storable_text(ref)
                    and (type(name) is not str or _storable_text(name))
                    and type(partner_id) is int
                    and partner_id in partners
                    and type(product_id) is int
                    and product_id in products
                    and type(quantity) in (float, int)
                    and 0 < quantity < INLINE_NUMBER_LIMIT
                    and (
                        price is None
                        or (
                            type(price) in (float, int)
                            and 0 <= price < INLINE_NUMBER_LIMIT
                        )
                    )
                    and type(when) is str
                    and 10 <= len(when) <= 32
                    and ref not in seen
                    and not ref.startswith(prefix)
                ):
                    try:
                        when = parse_date(when)
                    except ValueError:
                        when = None
                    if when is not None and when.tzinfo is None:
                        partner = partners[partner_id]
                        clean = {
                            "partner_id": partner["commercial_id"],
                            "product_id": product_id,
                            "date": when,
                            "quantity": float(quantity),
                            "price_unit": None if price is None else float(price),
                            "name": str(name)[:1024] if name else None,
                            "external_ref": ref,
                            "_prepaid": partner["prepaid"],
                            "_pricelist_id": partner["pricelist_id"],
                        }
            if clean is None:
                reason, clean = self._ingest_check_record(
                    index, record, partners, products, seen
                )
                if reason:
                    ref = (
                        record.get("external_ref") if isinstance(record, dict) else None
                    )
                    rejected.append({"external_ref": ref, "reason": reason})
                    continue
            seen.add(clean["external_ref"])
            yield clean

    def _ingest_check_record(self, index, record, partners, products, seen):
        """``(reason, None)`` when ``record`` cannot be stored, the reason naming
        the field; else ``(None, clean values)``. The reason is a function that
        gives its text (see ``_ingest_reasons``): no query is run while COPY
        reads the records."""
        _ = self.env._
        if not isinstance(record, dict):
            return lambda: _("record %(index)s is not a dict", index=index), None
        if missing := [f for f in INGEST_REQUIRED if record.get(f) in (None, "")]:
            return lambda: _("missing %(fields)s", fields=", ".join(missing)), None
        if unknown := record.keys() - INGEST_FIELDS_SET:
            return lambda: _(
                "unknown field %(fields)s", fields=", ".join(sorted(unknown))
            ), None
        ref = record["external_ref"]
        if not isinstance(ref, str) or len(ref) > 255:
            return lambda: _(
                "external_ref must be a text of at most 255 characters"
            ), None
        if not _storable_text(ref):
            return lambda: _(
                "external_ref must be a text without NUL characters or unpaired "
                "surrogates, not %(value)r",
                value=ref,
            ), None
        if ref.startswith(SERVICE_REF_PREFIX):
            return lambda: _(
                "external_ref %(ref)s: references starting with %(prefix)s are those "
                "of service renewals",
                ref=ref,
                prefix=SERVICE_REF_PREFIX,
            ), None
        partner_id, product_id = record["partner_id"], record["product_id"]
        partner = partners.get(partner_id) if self._ingest_is_id(partner_id) else None
        if partner is None:
            return lambda: _(
                "unknown customer partner_id %(id)s in %(company)s",
                id=partner_id,
                company=self.env.company.name,
            ), None
        if not (self._ingest_is_id(product_id) and product_id in products):
            return lambda: _(
                "unknown service product_id %(id)s in %(company)s",
                id=product_id,
                company=self.env.company.name,
            ), None
        quantity = self._ingest_number(record["quantity"])
        if quantity is None or quantity <= 0:
            return lambda: _(
                "quantity must be a positive number, not %(value)r",
                value=record["quantity"],
            ), None
        price = record.get("price_unit")
        if price is not None:
            price = self._ingest_number(price)
            if price is None or price < 0:
                return lambda: _(
                    "price_unit must be a number of at least 0, not %(value)r",
                    value=record["price_unit"],
                ), None
        when = self._ingest_date(record["date"])
        if when is None:
            return lambda: _(
                "date must be YYYY-MM-DD or YYYY-MM-DD HH:MM:SS, not %(value)r",
                value=record["date"],
            ), None
        if ref in seen:
            return lambda: _(
                "external_ref %(ref)s is twice in the batch", ref=ref
            ), None
        name = record.get("name")
        if isinstance(name, str) and not _storable_text(name):
            return lambda: _(
                "name must be a text without NUL characters or unpaired "
                "surrogates, not %(value)r",
                value=name[:50],
            ), None
        return None, {
            "partner_id": partner["commercial_id"],
            "product_id": product_id,
            "date": when,
            "quantity": quantity,
            "price_unit": price,
            "name": str(name)[:1024] if name else None,
            "external_ref": ref,
            "_prepaid": partner["prepaid"],
            "_pricelist_id": partner["pricelist_id"],
        }

    def _ingest_partners(self, partner_ids, company):
        """Customers the records may name, those the user may read that are of
        ``company`` or of no company: id -> commercial partner, mode and
        pricelist (one query each)."""
        # Only the fields read here, and those the pricelist of a customer is
        # computed from (product's _get_partner_pricelist_multi), are fetched.
        partners = (
            self.env["res.partner"]
            .with_company(company)
            .search_fetch(
                [
                    ("id", "in", list(partner_ids)),
                    ("company_id", "in", (False, company.id)),
                    ("commercial_partner_id.company_id", "in", (False, company.id)),
                ],
                ["commercial_partner_id"],
            )
        )
        commercial = partners.commercial_partner_id
        # The complete name: the ledger line of a prepaid customer's wallet
        # (_ingest_close_wallets), read with the rest.
        commercial.fetch(
            [
                "billing_mode",
                "specific_property_product_pricelist",
                "country_id",
                "complete_name",
            ]
        )
        pricelists = {
            p.id: p.property_product_pricelist.id
            for p in commercial.with_company(company)
        }
        return {
            p.id: {
                "commercial_id": p.commercial_partner_id.id,
                "prepaid": p.commercial_partner_id.billing_mode == "prepaid",
                "pricelist_id": pricelists.get(p.commercial_partner_id.id),
            }
            for p in partners
        }

    def _ingest_products(self, product_ids, company):
        products = self.env["product.product"].search(
            [("id", "in", list(product_ids)), ("company_id", "in", (False, company.id))]
        )
        return {product.id: product for product in products}

    @api.model
    def _ingest_is_id(self, value):
        return isinstance(value, int) and not isinstance(value, bool)

    @api.model
    def _ingest_number(self, value):
        if isinstance(value, bool):
            return None
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):  # an integer beyond floats
            return None
        return number if math.isfinite(number) else None

    @api.model
    def _ingest_date(self, value):
        """A naive UTC datetime from ``YYYY-MM-DD[ HH:MM[:SS[.ffffff]]]`` (or ISO
        8601 with ``T`` and a UTC ``Z``); None when it is none of those."""
        if isinstance(value, datetime):
            return value.replace(tzinfo=None)
        if isinstance(value, date):
            return datetime.combine(value, datetime.min.time())
        if not isinstance(value, str) or not 10 <= len(value) <= 32:
            return None
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            return None
        if when.tzinfo is not None:
            if when.utcoffset():
                return None  # only UTC is accepted
            when = when.replace(tzinfo=None)
        return when

    def _ingest_price(self, valid):
        """Unit price from the customer's pricelist (or the product's sale price)
        where the record has none, then the amount.

        A pricelist's price of a product (at the date of the call, in the
        company's currency) depends on the quantity only through the rules it
        applies, those whose minimum quantity the quantity reaches: prices are
        computed once per pricelist, product and number of minimum quantities
        reached (see ``_ingest_price_key``), amounts once per quantity and
        price."""
        thresholds = self._ingest_price_thresholds(
            {
                vals["_pricelist_id"]
                for vals in valid
                if vals["price_unit"] is None and vals["_pricelist_id"]
            }
        )
        keys, quantities = [], {}  # key: the first quantity of the key
        for vals in valid:
            key = None
            if vals["price_unit"] is None:
                key = self._ingest_price_key(
                    thresholds,
                    vals["_pricelist_id"],
                    vals["product_id"],
                    vals["quantity"],
                )
                quantities.setdefault(key, vals["quantity"])
            keys.append(key)
        prices = self._ingest_pricelist_prices(quantities)
        amounts = {}
        for vals, key in zip(valid, keys, strict=True):
            quantity = vals["quantity"]
            price = vals["price_unit"] if key is None else prices[key]
            amount = amounts.get((quantity, price))
            if amount is None:
                amount = amounts[quantity, price] = self._ingest_amount(quantity, price)
            vals["price_unit"], vals["amount"] = amount

    @api.model
    def _ingest_price_key(self, thresholds, pricelist_id, product_id, quantity):
        """What the price of a record depends on: (pricelist id, product id,
        number of the minimum quantities of the pricelist's rules its quantity
        reaches, from ``thresholds``, see ``_ingest_price_thresholds``)."""
        steps = thresholds.get(pricelist_id)
        return (pricelist_id, product_id, bisect_right(steps, quantity) if steps else 0)

    def _ingest_pricelist_prices(self, quantities):
        """{key: price} of ``quantities`` ({``_ingest_price_key``: a quantity of
        it}): the pricelist's price of the product at that quantity, in the
        company's currency, or the product's sale price without a pricelist."""
        company = self.env.company
        Pricelist = self.env["product.pricelist"].with_company(company)
        Product = self.env["product.product"].with_company(company)
        prices = {}
        for key, quantity in quantities.items():
            pricelist_id, product_id, _step = key
            product = Product.browse(product_id)
            pricelist = Pricelist.browse(pricelist_id)
            prices[key] = (
                pricelist._get_product_price(
                    product, quantity, currency=company.currency_id
                )
                if pricelist
                else product.lst_price
            )
        return prices

    @api.model
    def _ingest_amount(self, quantity, price):
        """(unit price, amount) at the usage precision of a record of
        ``quantity`` at ``price``; the amount None when it is beyond what a
        record holds (see ``_ingest_check_amounts``)."""
        rounded = round(price, USAGE_DIGITS)
        product = quantity * rounded
        return (
            rounded,
            float_round(product, USAGE_DIGITS)
            if abs(product) < USAGE_AMOUNT_LIMIT
            else None,
        )

    def _ingest_prices(self, unpriced, partners, products):
        """The prices of the records without a unit price, ``unpriced`` ({(customer
        id, service id, quantity)}, see ``_ingest_lookup``), as ``_ingest_price``
        computes them, before they are validated: (thresholds, {(pricelist id,
        product id, number of rule minimum quantities reached): price}); see
        ``_ingest_price_key``."""
        thresholds = self._ingest_price_thresholds(
            {partner["pricelist_id"] for partner in partners.values()} - {None, False}
        )
        quantities = {}  # key: a quantity of the key, as _ingest_price
        for partner_id, product_id, quantity in unpriced:
            partner = partners.get(partner_id)
            if partner is None or product_id not in products:
                continue
            if not (
                type(quantity) in (float, int) and 0 < quantity < INLINE_NUMBER_LIMIT
            ):
                quantity = self._ingest_number(quantity)
                if quantity is None or quantity <= 0:
                    continue
            key = self._ingest_price_key(
                thresholds, partner["pricelist_id"], product_id, quantity
            )
            if key not in quantities:
                quantities[key] = float(quantity)
        prices = self._ingest_pricelist_prices(quantities)
        return thresholds, prices

    def _ingest_check_amounts(self, valid, rejected):
        """``valid`` without the records whose amount (quantity x unit price) is
        at or beyond USAGE_AMOUNT_LIMIT, which go to ``rejected`` with the
        reason."""
        if all(vals["amount"] is not None for vals in valid):
            return valid
        kept = []
        for vals in valid:
            if vals["amount"] is not None:
                kept.append(vals)
                continue
            quantity, price = vals["quantity"], vals["price_unit"]
            rejected.append(
                {
                    "external_ref": vals["external_ref"],
                    "reason": lambda quantity=quantity, price=price: self.env._(
                        "quantity x price_unit (%(quantity)r x %(price)r) must be "
                        "below %(limit)s, the most a usage record holds exactly",
                        quantity=quantity,
                        price=price,
                        limit=f"{USAGE_AMOUNT_LIMIT:,}",
                    ),
                }
            )
        return kept

    @api.model
    def _ingest_price_thresholds(self, pricelist_ids):
        """{pricelist id: the sorted minimum quantities of the rules of the
        pricelist and of the pricelists its rules are based on}: a rule applies
        to a quantity from its minimum quantity on (``_is_applicable_for``), so
        two quantities that reach the same number of them get the same rules,
        and the same price. A pricelist without such rules is left out (its
        price does not depend on the quantity)."""
        if not pricelist_ids:
            return {}
        # sudo: only the minimum quantities and bases of the rules are read.
        Item = self.env["product.pricelist.item"].sudo().with_context(active_test=False)
        rules = defaultdict(list)  # pricelist id: [(min quantity, base pricelist)]
        todo, searched = set(pricelist_ids), set()
        while todo:
            for item in Item.search_fetch(
                [("pricelist_id", "in", list(todo))],
                ["pricelist_id", "min_quantity", "base", "base_pricelist_id"],
            ):
                rules[item.pricelist_id.id].append(
                    (
                        item.min_quantity,
                        item.base_pricelist_id.id if item.base == "pricelist" else None,
                    )
                )
            searched |= todo
            todo = {
                base for items in rules.values() for _min, base in items if base
            } - searched

        def closure(pricelist_id, seen):
            seen.add(pricelist_id)
            steps = set()
            for minimum, base in rules.get(pricelist_id, ()):
                if minimum > 0:
                    steps.add(minimum)
                if base and base not in seen:
                    steps |= closure(base, seen)
            return steps

        thresholds = {}
        for pricelist_id in pricelist_ids:
            steps = closure(pricelist_id, set())
            if steps:
                thresholds[pricelist_id] = sorted(steps)
        return thresholds

    def _ingest_stage(self, valid):
        """Copy the clean values ``valid`` to the staging table of the connection
        (created at its first call, its rows deleted at commit) with one COPY."""
        cr = self.env.cr
        table = SQL.identifier(STAGING_TABLE)
        cr.execute(SQL("SELECT to_regclass(%s)", f"pg_temp.{STAGING_TABLE}"))
        if cr.fetchone()[0] is None:
            cr.execute(
                SQL(
                    """
                    CREATE TEMPORARY TABLE %s (
                        partner_id int4, product_id int4, date timestamp,
                        quantity numeric, price_unit numeric, amount numeric,
                        name varchar, external_ref varchar, prepaid bool
                    ) ON COMMIT DELETE ROWS
                    """,
                    table,
                )
            )
        else:  # the rows of an earlier call in this transaction
            cr.execute(SQL("DELETE FROM %s", table))
        lines = []
        for vals in valid:
            name = vals["name"]
            lines.append(
                f"{vals['partner_id']}\t{vals['product_id']}\t{vals['date']}\t"
                f"{vals['quantity']!r}\t{vals['price_unit']!r}\t{vals['amount']!r}\t"
                f"{COPY_NULL if name is None else _copy_text(name)}\t"
                f"{_copy_text(vals['external_ref'])}\t"
                f"{COPY_TRUE if vals['_prepaid'] else COPY_FALSE}\n"
            )
        self._ingest_copy_from(
            f'COPY "{STAGING_TABLE}" FROM STDIN', io.StringIO("".join(lines))
        )

    def _ingest_store(self, prepaid, wallet_moves=None):
        """Store the staged records of one billing mode with one INSERT, in the
        order of their references (so that concurrent calls sharing references
        cannot deadlock); a reference already stored is skipped. Postpaid ones
        are pending; prepaid ones are debited, linked to the ledger line of
        their customer in ``wallet_moves`` ({partner id: wallet movement id}).
        Returns {external_ref: charge id} of the charges created (prepaid), or
        their ids (postpaid)."""
        wallet_moves = wallet_moves or {}
        self.env.cr.execute(
            SQL(
                """
                INSERT INTO billing_charge
                    (partner_id, product_id, date, quantity, price_unit, amount, name,
                     external_ref, wallet_move_id, company_id, state,
                     create_uid, write_uid, create_date, write_date)
                SELECT s.partner_id, s.product_id, s.date, s.quantity, s.price_unit,
                       s.amount, s.name, s.external_ref, m.move_id, %(company)s,
                       %(state)s, %(uid)s, %(uid)s, NOW() AT TIME ZONE 'UTC',
                       NOW() AT TIME ZONE 'UTC'
                  FROM %(stage)s s
             LEFT JOIN unnest(%(partners)s::int4[], %(moves)s::int4[])
                       AS m(partner_id, move_id) ON m.partner_id = s.partner_id
                 WHERE s.prepaid = %(prepaid)s
              ORDER BY s.external_ref COLLATE "C"
                ON CONFLICT (company_id, external_ref) DO NOTHING
             RETURNING %(returning)s
                """,
                stage=SQL.identifier(STAGING_TABLE),
                company=self.env.company.id,
                state="debited" if prepaid else "pending",
                uid=self.env.uid,
                partners=list(wallet_moves),
                moves=list(wallet_moves.values()),
                prepaid=prepaid,
                returning=SQL("external_ref, id") if prepaid else SQL("id"),
            )
        )
        rows = self.env.cr.fetchall()
        self.env["billing.charge"].invalidate_model()
        return dict(rows) if prepaid else [row[0] for row in rows]

    def _ingest_insert(self, vals_list, state="pending", wallet_moves=None):
        """Insert charges with one statement, in the order of their references (so
        that concurrent batches sharing references cannot deadlock); a reference
        already stored is skipped. With ``wallet_moves`` ({partner id: wallet
        movement id}), or a ``wallet_move_id`` of their own, the charges are
        linked to the movement that pays them; renewals of services carry their
        ``service_id`` and ``service_period_start``. Returns {external_ref:
        charge id} of the charges created."""
        if not vals_list:
            return {}
        company = self.env.company
        wallet_moves = wallet_moves or {}
        columns = {
            "partner_id": "int4",
            "product_id": "int4",
            "date": "timestamp",
            "quantity": "numeric",
            "price_unit": "numeric",
            "amount": "numeric",
            "name": "varchar",
            "external_ref": "varchar",
        }
        arrays = {column: [] for column in columns}
        arrays.update(wallet_move_id=[], service_id=[], service_period_start=[])
        for vals in sorted(vals_list, key=lambda vals: vals["external_ref"]):
            for column in columns:
                arrays[column].append(vals[column])
            arrays["wallet_move_id"].append(
                vals.get("wallet_move_id") or wallet_moves.get(vals["partner_id"])
            )
            arrays["service_id"].append(vals.get("service_id"))
            arrays["service_period_start"].append(vals.get("service_period_start"))
        self.env.cr.execute(
            SQL(
                """
                INSERT INTO billing_charge
                    (partner_id, product_id, date, quantity, price_unit, amount, name,
                     external_ref, wallet_move_id, service_id, service_period_start,
                     company_id, state, create_uid, write_uid, create_date, write_date)
                SELECT partner_id, product_id, date, quantity, price_unit, amount, name,
                       external_ref, wallet_move_id, service_id, service_period_start,
                       %(company)s, %(state)s,
                       %(uid)s, %(uid)s, NOW() AT TIME ZONE 'UTC',
                       NOW() AT TIME ZONE 'UTC'
                  FROM unnest(%(partner_id)s::int4[], %(product_id)s::int4[],
                              %(date)s::timestamp[], %(quantity)s::numeric[],
                              %(price_unit)s::numeric[], %(amount)s::numeric[],
                              %(name)s::varchar[], %(external_ref)s::varchar[],
                              %(wallet_move_id)s::int4[], %(service_id)s::int4[],
                              %(service_period_start)s::date[])
                    AS t(partner_id, product_id, date, quantity, price_unit, amount,
                         name, external_ref, wallet_move_id, service_id,
                         service_period_start)
                ON CONFLICT (company_id, external_ref) DO NOTHING
             RETURNING external_ref, id
                """,
                company=company.id,
                state=state,
                uid=self.env.uid,
                **arrays,
            )
        )
        created = dict(self.env.cr.fetchall())
        self.env["billing.charge"].invalidate_model()
        return created

    def _ingest_prepaid(self, vals_list, rejected):
        """Store prepaid customers' new charges and pay them from their wallets at
        once, exactly to the usage precision, in the order sent; a charge the
        exact balance cannot cover is rejected. Per customer and call: one
        wallet balance update and one ledger line, no journal entry (the
        consumption posting books the usage later). Returns (created,
        duplicates).

        The wallets are locked first, in id order, and each customer's ledger
        line of the call is reserved; the charges are inserted linked to it: a
        reference already stored, or being stored by a concurrent call, is a
        duplicate and debits nothing. Each new charge is then checked against
        the exact balance; the refused ones are deleted again, and the ledger
        lines and balances get the total of the others."""
        by_partner = defaultdict(list)
        for vals in vals_list:
            by_partner[vals["partner_id"]].append(vals)
        wallets, movements = self._ingest_open_wallets(by_partner)
        created = self._ingest_store(prepaid=True, wallet_moves=movements)
        available = _available(wallets)
        paid, refused, reasons = self._ingest_paid(wallets), [], {}
        for vals in vals_list:
            charge_id = created.get(vals["external_ref"])
            if not charge_id:
                continue  # a duplicate
            if not self._ingest_pay(
                vals, _micro(vals["amount"]), available, paid, rejected, reasons
            ):
                refused.append(charge_id)
        if refused:
            self.env.cr.execute(
                SQL("DELETE FROM billing_charge WHERE id = ANY(%s)", refused)
            )
        self._ingest_close_wallets(wallets, movements, paid)
        accepted = len(created) - len(refused)
        self._ingest_trigger_posting(accepted)
        return accepted, len(vals_list) - len(created)

    def _ingest_open_wallets(self, partner_ids):
        """Lock the wallets of the prepaid customers ``partner_ids``, in id order,
        and reserve each one's ledger line of the call (``_ingest_close_wallets``
        records it): ({partner id: (wallet id, balance)}, {partner id: wallet
        movement id})."""
        # sudo: the caller is a Billing User (checked in ingest); wallets are only
        # debited for the charges being stored, of the customers they name.
        Wallet = self.env["billing.wallet"].sudo()
        wallets = Wallet._lock_usage_wallets(list(partner_ids), self.env.company)
        return wallets, dict(
            zip(wallets, Wallet._reserve_usage_movements(len(wallets)), strict=True)
        )

    @api.model
    def _ingest_paid(self, wallets):
        """What ``_ingest_pay`` counts of the locked ``wallets``, nothing yet:
        {partner id: [count, {product id: millionths}]}."""
        return {partner_id: [0, {}] for partner_id in wallets}

    def _ingest_pay(self, vals, micro, available, paid, rejected, reasons):
        """Pay the new charge ``vals`` of a prepaid customer, of ``micro``
        millionths (its amount), from ``available`` ({partner id: balance of its
        locked wallet, in millionths}), exactly to the usage precision, counted
        in ``paid`` (see ``_ingest_paid``); whether it was paid. A charge the
        balance cannot cover goes to ``rejected``, its reason (cached in
        ``reasons``, a function, see ``_ingest_reasons``) naming the balance."""
        partner_id = vals["partner_id"]
        balance = available[partner_id]
        if micro > balance:
            amount = vals["amount"]
            key = (balance, amount)
            if key not in reasons:  # a wallet used up refuses the rest
                reasons[key] = lambda balance=balance, amount=amount: self.env._(
                    "the wallet balance of %(balance)s does not cover %(amount)s",
                    # sudo: as _ingest_open_wallets.
                    balance=self.env["billing.wallet"]
                    .sudo()
                    ._format_amount_exact(
                        balance / MICRO, self.env.company.currency_id
                    ),
                    amount=self.env["billing.wallet"]
                    .sudo()
                    ._format_amount_exact(amount, self.env.company.currency_id),
                )
            rejected.append(
                {"external_ref": vals["external_ref"], "reason": reasons[key]}
            )
            return False
        available[partner_id] = balance - micro
        counts = paid[partner_id]
        counts[0] += 1
        products = counts[1]
        product_id = vals["product_id"]
        products[product_id] = products.get(product_id, 0) + micro
        return True
