from . import billing_demo
