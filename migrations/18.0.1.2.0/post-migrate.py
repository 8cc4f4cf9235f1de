from odoo import SUPERUSER_ID, api

from odoo.addons.prepaid_postpaid_billing.hooks import raise_price_precision


def migrate(cr, version):
    """Prices at the usage precision, as a new install has them."""
    raise_price_precision(api.Environment(cr, SUPERUSER_ID, {}))
