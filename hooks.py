def post_init_hook(env):
    """Give the companies that already have a chart of accounts their wallet
    accounts and journal; companies get theirs when their chart is loaded."""
    env["res.company"].search([("chart_template", "!=", False)])._billing_setup_wallet()
