from . import billing_wallet_adjust
