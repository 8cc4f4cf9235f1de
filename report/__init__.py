from . import billing_xlsx_report
from . import billing_invoice_register_xlsx
from . import billing_charge_history_xlsx
