from . import test_billing_settings
from . import test_billing_profile
from . import test_billing_access
from . import test_billing_tour
from . import test_billing_wallet
from . import test_billing_topup_expiry
from . import test_billing_wallet_portal
