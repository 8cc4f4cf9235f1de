from . import billing_wallet_adjust
from . import billing_invoice_register
