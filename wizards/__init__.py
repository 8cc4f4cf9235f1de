from . import billing_reminder_send
from . import billing_wallet_adjust
