from . import billing_wizard_mixin
from . import billing_reminder_send
from . import billing_wallet_adjust
from . import billing_invoice_create
from . import billing_invoice_create_service
from . import billing_invoice_register
from . import base_partner_merge
