from . import portal
from . import report
