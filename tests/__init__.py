from . import test_billing_settings
from . import test_billing_profile
from . import test_billing_access
from . import test_billing_tour
