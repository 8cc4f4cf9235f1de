"""The data of the load and fuzz checks of scripts/chaos, run inside ``odoo-bin
shell`` (which provides ``env``) on the check's throwaway database; the clients
(scripts/chaos_load.py, scripts/chaos_fuzz.py) then talk to a real server.

Written as JSON to CHAOS_SETUP (mode 0600: it has passwords): a Billing User who
sends usage (ingest), a Billing Administrator who debits wallets (*Credit or
Debit a Wallet*), a service product, CHAOS_CUSTOMERS prepaid customers (half
with a wallet of 100,000, half of 20, to be emptied under load) and as many
postpaid ones, each with a portal user and two posted invoices, and two
prepaid customers for the load check's bursts (wallets of 100 and 0.07). For the fuzz
check also: a credit package on sale, a monthly service of a prepaid customer,
a reseller with a funded wallet and a prepaid customer of it, each with a
portal user, and a customer of another company.

The helpers of scripts/bench (bench_figures.py) make the users, customers and
wallet credits, as its realtime figure does.
"""

import json
import os
import secrets
import sys
from datetime import date, timedelta

from odoo import Command

sys.path.insert(0, os.environ["CHAOS_SCRIPTS"])
os.environ["BENCH_FIGURES"] = ""  # import the helpers only, run no figure
import bench_figures

SETUP = os.environ["CHAOS_SETUP"]
MODE = os.environ.get("CHAOS_SETUP_MODE", "load")
CUSTOMERS = int(os.environ.get("CHAOS_CUSTOMERS", "10"))
RICH, POOR = 100000.0, 20.0  # wallet funding of the prepaid customers


def portal_user(env, partner, login, groups=()):
    """A portal user of ``partner``, with a password: (login, password)."""
    password = secrets.token_urlsafe(12)
    login = f"{login}_{secrets.token_hex(3)}"
    env["res.users"].with_context(no_reset_password=True).create(
        {
            "name": partner.name,
            "login": login,
            "password": password,
            "partner_id": partner.id,
            "email": f"{login}@example.com",
            "groups_id": [
                Command.set([env.ref("base.group_portal").id, *groups]),
            ],
        }
    )
    return {"partner_id": partner.id, "login": login, "password": password}


def office_user(env, login, manager=False):
    """A Billing User (a Billing Administrator with ``manager``): (login,
    password)."""
    password = secrets.token_urlsafe(16)
    user = bench_figures._bench_billing_user(env, login, password)
    user.email = f"{user.login}@example.com"  # the chatter notes they post
    if manager:
        user.groups_id = [
            Command.link(env.ref("prepaid_postpaid_billing.group_billing_manager").id)
        ]
    return {"uid": user.id, "login": user.login, "password": password}


def invoices(env, partners, product, per_partner=2):
    moves = env["account.move"].create(
        [
            {
                "move_type": "out_invoice",
                "partner_id": partner.id,
                "invoice_date": date.today() - timedelta(days=10),
                "invoice_line_ids": [
                    Command.create(
                        {"product_id": product.id, "quantity": 1, "price_unit": 10.0}
                    )
                ],
            }
            for partner in partners
            for _ in range(per_partner)
        ]
    )
    moves.action_post()
    return moves


def setup(env):
    company = env.company
    product = env["product.product"].create(
        {
            "name": "Chaos SMS",
            "type": "service",
            "list_price": bench_figures.USAGE_PRICE,
            "taxes_id": [Command.clear()],
        }
    )
    half = CUSTOMERS // 2
    rich = bench_figures._bench_customers(
        env, "Chaos rich", CUSTOMERS - half, "prepaid"
    )
    poor = bench_figures._bench_customers(env, "Chaos poor", half, "prepaid")
    postpaid = bench_figures._bench_customers(
        env, "Chaos postpaid", CUSTOMERS, "postpaid"
    )
    bench_figures._bench_fund(env, rich, RICH, "chaos:rich")
    bench_figures._bench_fund(env, poor, POOR, "chaos:poor")
    invoices(env, postpaid | rich, product)
    # The bursts of the load check (as scripts/bench's wallet figures): 50
    # concurrent debits of 10 on 100, 50 concurrent records of 0.007 on 0.07.
    burst = bench_figures._bench_customers(env, "Chaos burst", 2, "prepaid")
    bench_figures._bench_fund(env, burst[0], 100.0, "chaos:burst")
    bench_figures._bench_fund(env, burst[1], 0.07, "chaos:burst")
    data = {
        "db": env.cr.dbname,
        "company_id": company.id,
        "product_id": product.id,
        "price_unit": bench_figures.USAGE_PRICE,
        "ingest": office_user(env, "chaos_ingest"),
        "admin": office_user(env, "chaos_admin", manager=True),
        "prepaid": [
            portal_user(env, partner, f"chaos_prepaid_{partner.id}")
            for partner in rich | poor
        ],
        "postpaid": [
            portal_user(env, partner, f"chaos_postpaid_{partner.id}")
            for partner in postpaid
        ],
        "burst_debit_id": burst[0].id,
        "burst_exact_id": burst[1].id,
    }
    if MODE == "fuzz":
        data.update(fuzz_setup(env, product))
    env.cr.commit()
    fd = os.open(SETUP, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out)


def fuzz_setup(env, product):
    """What the portal forms act on, and a customer of another company."""
    Partner = env["res.partner"]
    package = env["product.product"].create(
        {
            "name": "Chaos Credit 100",
            "type": "service",
            "list_price": 100.0,
            "billing_topup_credit": 150.0,
            "sale_ok": True,
            "taxes_id": [Command.clear()],
        }
    )
    customer = bench_figures._bench_customers(env, "Chaos form customer", 1, "prepaid")
    bench_figures._bench_fund(env, customer, 1000.0, "chaos:form")
    number = env["product.product"].create(
        {
            "name": "Chaos Number",
            "type": "service",
            "list_price": 1.0,
            "taxes_id": [Command.clear()],
        }
    )
    service = env["billing.service"].create(
        {
            "partner_id": customer.id,
            "product_id": number.id,
            "interval_type": "month",
            "interval_number": 1,
            "date_start": date.today(),
        }
    )
    service.action_activate()
    [invoice] = invoices(env, customer, product, per_partner=1)
    reseller = Partner.create(
        {
            "name": "Chaos Reseller",
            "is_company": True,
            "is_billing_reseller": True,
            "billing_mode": "prepaid",
        }
    )
    bench_figures._bench_fund(env, reseller, 1000.0, "chaos:reseller")
    reseller_customer = Partner.create(
        {
            "name": "Chaos Reseller Customer",
            "is_company": True,
            "billing_mode": "prepaid",
            "billing_reseller_id": reseller.id,
        }
    )
    reseller_invoices = invoices(env, reseller_customer, product)
    other_company = env["res.company"].create({"name": "Chaos Other Company"})
    foreign = Partner.create(
        {
            "name": "Chaos Foreign Customer",
            "is_company": True,
            "company_id": other_company.id,
            "billing_mode": "postpaid",
        }
    )
    foreign_product = env["product.product"].create(
        {"name": "Chaos Foreign SMS", "type": "service", "company_id": other_company.id}
    )
    reseller_group = env.ref("prepaid_postpaid_billing.group_billing_reseller").id
    return {
        "package_id": package.id,
        "service_id": service.id,
        "invoice_id": invoice.id,
        "form_customer": portal_user(env, customer, "chaos_form"),
        "reseller": portal_user(env, reseller, "chaos_reseller", [reseller_group]),
        "reseller_customer_id": reseller_customer.id,
        "reseller_invoice_ids": reseller_invoices.ids,
        "foreign_partner_id": foreign.id,
        "foreign_product_id": foreign_product.id,
    }


setup(env)  # noqa: F821 - env comes from odoo-bin shell
