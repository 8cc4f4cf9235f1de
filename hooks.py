import logging
import os

from odoo.tools import SQL, sql

from .models.billing_charge import USAGE_DIGITS

_logger = logging.getLogger(__name__)

# Set to 1, the pre-install hook does nothing and Odoo computes the columns below
# record by record (scripts/bench install measures both ways).
SKIP_PRE_INIT_ENV = "BILLING_SKIP_PRE_INIT"

# The stored computed fields this addon adds to core models, whose tables may
# hold millions of rows at install: (table, column, column type, label).  The
# types are those of the fields (Boolean, Many2one, Selection), so that Odoo
# finds the columns as it would make them, keeps them and computes nothing.
COMPUTED_COLUMNS = (
    ("account_move", "billing_is_topup", "boolean", "Wallet Top-up"),
    ("account_move", "billing_reseller_id", "int4", "Reseller"),
    ("account_payment", "billing_payment_method", "varchar", "Received By"),
)


def pre_init_hook(env):
    """Create the stored computed columns this addon adds to ``account_move`` and
    ``account_payment`` and fill them set-based, before Odoo makes the columns.
    Odoo computes a stored field on every existing row only when it creates its
    column (``BaseModel._auto_init``, ``Field.update_db``): on a database of
    1,000,000 invoices that loads every invoice and its lines, 425 s and 1.9 GB
    here, against about a second in SQL (scripts/bench install)."""
    if os.environ.get(SKIP_PRE_INIT_ENV) == "1":
        _logger.info("%s=1: the billing columns are left to Odoo", SKIP_PRE_INIT_ENV)
        return
    cr = env.cr
    for table, column, column_type, label in COMPUTED_COLUMNS:
        if not sql.column_exists(cr, table, column):
            # A boolean column is made with DEFAULT false: every existing row is
            # False at once, without writing them; the default is then dropped,
            # as Odoo makes its columns without one.
            sql.create_column(cr, table, column, column_type, label)
            if column_type == "boolean":
                cr.execute(
                    SQL(
                        "ALTER TABLE %s ALTER COLUMN %s DROP DEFAULT",
                        SQL.identifier(table),
                        SQL.identifier(column),
                    )
                )
    fill_computed_columns(cr)


def fill_computed_columns(cr, move_ids=None, payment_ids=None):
    """Set the billing columns of ``COMPUTED_COLUMNS`` as their computes would
    (``account.move._compute_billing_is_topup``, the related
    ``billing_reseller_id``, ``account.payment._compute_billing_payment_method``),
    for the moves and payments of the given ids, or all of them when ``None``.
    Before the addon is installed, the columns these depend on (the products'
    credit and recharge flags, the partners' reseller, the companies' wallet
    journal) do not exist yet: every value is then the one of their absence."""
    move_filter = (
        SQL("TRUE") if move_ids is None else SQL("move.id = ANY(%s)", list(move_ids))
    )
    payment_filter = (
        SQL("TRUE")
        if payment_ids is None
        else SQL("payment.id = ANY(%s)", list(payment_ids))
    )
    # A wallet top-up: a customer invoice with a product line of a credit
    # package (credit not zero in its currency) or of a wallet recharge.
    if sql.column_exists(cr, "product_template", "billing_topup_credit"):
        topup = SQL(
            """
            move.move_type = 'out_invoice' AND EXISTS (
                SELECT 1
                  FROM account_move_line line
                  JOIN product_product product ON product.id = line.product_id
                  JOIN product_template template
                    ON template.id = product.product_tmpl_id
                  LEFT JOIN res_company company ON company.id = template.company_id
                  JOIN res_currency currency
                    ON currency.id = COALESCE(company.currency_id, %(main_currency)s)
                 WHERE line.move_id = move.id
                   AND line.display_type = 'product'
                   AND (template.billing_is_recharge
                        OR ROUND(ABS(COALESCE(template.billing_topup_credit, 0))
                                 / currency.rounding) > 0)
            )
            """,
            main_currency=_main_currency(cr),
        )
    else:
        topup = SQL("FALSE")
    cr.execute(
        SQL(
            """
            UPDATE account_move move
               SET billing_is_topup = %(topup)s
             WHERE %(filter)s
               AND billing_is_topup IS DISTINCT FROM (%(topup)s)
            """,
            topup=topup,
            filter=move_filter,
        )
    )
    _logger.info("billing_is_topup set on %s invoices", cr.rowcount)
    # The reseller of the invoice's commercial partner (a related field).
    if sql.column_exists(cr, "res_partner", "billing_reseller_id"):
        reseller = SQL(
            "(SELECT partner.billing_reseller_id FROM res_partner partner"
            " WHERE partner.id = move.commercial_partner_id)"
        )
    else:
        reseller = SQL("NULL::int4")
    cr.execute(
        SQL(
            """
            UPDATE account_move move
               SET billing_reseller_id = %(reseller)s
             WHERE %(filter)s
               AND billing_reseller_id IS DISTINCT FROM %(reseller)s
            """,
            reseller=reseller,
            filter=move_filter,
        )
    )
    _logger.info("billing_reseller_id set on %s invoices", cr.rowcount)
    # Received by: the wallet journal of the payment's company, online with a
    # payment transaction, otherwise by bank or cash (a payment's journal and
    # company are required).
    if sql.column_exists(cr, "res_company", "billing_wallet_journal_id"):
        wallet_journal = SQL("company.billing_wallet_journal_id")
    else:
        wallet_journal = SQL("NULL::int4")
    cr.execute(
        SQL(
            """
            UPDATE account_payment payment
               SET billing_payment_method = CASE
                       WHEN payment.journal_id = %(wallet_journal)s THEN 'wallet'
                       WHEN payment.payment_transaction_id IS NOT NULL THEN 'online'
                       ELSE 'bank'
                   END
              FROM res_company company
             WHERE company.id = payment.company_id
               AND %(filter)s
            """,
            wallet_journal=wallet_journal,
            filter=payment_filter,
        )
    )
    _logger.info("billing_payment_method set on %s payments", cr.rowcount)


def _main_currency(cr):
    """The currency of Odoo's main company (``res.company._get_main_company``),
    that of products without a company."""
    cr.execute(
        """
        SELECT company.currency_id
          FROM res_company company
          LEFT JOIN ir_model_data data
            ON data.model = 'res.company' AND data.res_id = company.id
           AND data.module = 'base' AND data.name = 'main_company'
         ORDER BY data.id IS NULL, company.id
         LIMIT 1
        """
    )
    row = cr.fetchone()
    return row[0] if row else None


def post_init_hook(env):
    """Give the companies that already have a chart of accounts their wallet
    accounts and journal; companies get theirs when their chart is loaded. Keep
    prices at the usage precision, so that a service priced at 0.004 is not
    stored as 0.00 (see ``raise_price_precision``)."""
    env["res.company"].search([("chart_template", "!=", False)])._billing_setup_wallet()
    raise_price_precision(env)


def raise_price_precision(env):
    """Raise Odoo's *Product Price* precision (sale prices, pricelist prices,
    invoice line unit prices) to the usage precision when it is lower; Billing
    settings can set it again afterwards."""
    precision = env.ref("product.decimal_price", raise_if_not_found=False)
    if precision and precision.digits < USAGE_DIGITS:
        precision.digits = USAGE_DIGITS
