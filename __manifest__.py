# Copyright 2026 Prepaid Postpaid Billing contributors
# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
{
    "name": "Prepaid and Postpaid Billing",
    "summary": "Prepaid credit wallets, postpaid recurring invoices and "
    "reseller billing on top of Odoo Invoicing",
    "version": "18.0.1.1.0",
    "category": "Accounting/Accounting",
    "website": "https://github.com/prepaid-postpaid-billing/prepaid_postpaid_billing",
    "author": "Prepaid Postpaid Billing contributors",
    "license": "LGPL-3",
    "application": True,
    "installable": True,
    "depends": ["account", "account_payment", "portal", "mail", "product"],
    "data": [
        "security/billing_security.xml",
        "security/ir.model.access.csv",
        "security/res_partner_security.xml",
        "security/billing_wallet_security.xml",
        "security/billing_charge_security.xml",
        "data/decimal_precision_data.xml",
        "data/ir_cron_data.xml",
        "data/mail_template_data.xml",
        "data/product_data.xml",
        "wizards/billing_reminder_send_views.xml",
        "wizards/billing_wallet_adjust_views.xml",
        "views/account_move_views.xml",
        "views/account_payment_views.xml",
        "views/billing_wallet_views.xml",
        "views/billing_charge_views.xml",
        "views/billing_recurring_views.xml",
        "views/product_template_views.xml",
        "views/portal_templates.xml",
        "views/res_config_settings_views.xml",
        "views/res_partner_views.xml",
        "views/billing_menus.xml",
    ],
    "assets": {
        "web.assets_tests": [
            "prepaid_postpaid_billing/static/tests/tours/*.js",
        ],
    },
    "demo": [
        "demo/res_partner_demo.xml",
        "demo/product_demo.xml",
        "demo/billing_recurring_demo.xml",
    ],
    "post_init_hook": "post_init_hook",
}
