from .models.billing_charge import USAGE_DIGITS


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
