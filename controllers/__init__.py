from . import portal
from . import report
from . import reseller_portal
from . import service_portal
from . import invoice_day_portal
from . import usage_portal
