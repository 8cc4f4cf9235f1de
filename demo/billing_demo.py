import logging
import random
import time as systime
from collections import defaultdict
from contextlib import contextmanager
from datetime import datetime, time, timedelta

from dateutil.relativedelta import relativedelta

from odoo import Command, api, fields, models
from odoo.exceptions import UserError

_logger = logging.getLogger(__name__)

RECURRING_LOGGER = "odoo.addons.prepaid_postpaid_billing.models.billing_recurring"
# Months of history before the current one (six months with it); the recurring
# invoices start on the 1st of the oldest and bill the month before it (a fixed
# fee only: no usage yet).
HISTORY_MONTHS = 5
XMLID = "prepaid_postpaid_billing.%s"

# The customers of the history: xml id (without module) -> what they do.
# ``schedule``: (generation mode, fixed lines [(product, label, price)]) of the
# recurring invoice of a postpaid customer; ``usage``: (SMS records, SMS per
# record range, voice records, minutes per record range) a month; ``usage_from``:
# the customers of resellers send usage in the current period only (what they
# used before is in their fixed fee).
CUSTOMERS = {
    "res_partner_demo_hist_lumen": {
        "schedule": (
            "confirm",
            [("product_product_demo_platform", "Messaging Platform", 49.0)],
        ),
        "allowance": ("product_product_demo_sms", 1000),
        "usage": (12, (130, 400), 6, (12, 40)),
    },
    "res_partner_demo_hist_verde": {
        "schedule": (
            "confirm",
            [("product_product_demo_platform", "Messaging Platform", 49.0)],
        ),
        "usage": (9, (100, 300), 6, (10, 30)),
    },
    "res_partner_demo_hist_polar": {
        "schedule": (
            "confirm",
            [("product_product_demo_platform", "Messaging Platform", 39.0)],
        ),
        "usage": (9, (50, 130), 3, (3, 12)),
    },
    "res_partner_demo_hist_quayside": {
        "schedule": (
            "confirm",
            [("product_product_demo_platform", "Messaging Platform", 49.0)],
        ),
        "usage": (6, (65, 170), 3, (6, 20)),
    },
    "res_partner_demo_hist_delta": {
        "schedule": (
            "draft",
            [
                ("product_product_demo_platform", "Messaging Platform", 49.0),
                ("product_product_demo_number", "Virtual number", 5.0),
            ],
        ),
        "usage": (12, (100, 330), 6, (6, 26)),
    },
    "res_partner_demo_hist_mitte": {
        "schedule": (
            "confirm",
            [("product_product_demo_platform", "Messaging Platform", 39.0)],
        ),
        "usage": (6, (33, 100), 3, (3, 10)),
        "usage_from": "current",
    },
    "res_partner_demo_hist_nordlys": {
        "schedule": (
            "draft",
            [
                ("product_product_demo_platform", "Messaging Platform", 45.0),
                ("product_product_demo_number", "Appointment line", 5.0),
            ],
        ),
        "usage": (6, (33, 100), 3, (3, 10)),
        "usage_from": "current",
    },
    "res_partner_demo_hist_brightwave": {"usage": (9, (50, 100), 6, (3, 10))},
    "res_partner_demo_hist_sable": {"usage": (9, (33, 65), 3, (6, 16))},
    "res_partner_demo_reseller_customer_prepaid": {"usage": (6, (20, 50), 3, (1, 6))},
    "res_partner_demo_reseller2_customer_prepaid": {"usage": (6, (20, 50), 3, (1, 6))},
}

# Credit packages bought: customer -> {months ago: (package, quantity, method)}.
TOPUPS = {
    "res_partner_demo_hist_brightwave": {
        5: ("product_product_demo_package_100", 1, "bank"),
        3: ("product_product_demo_package_100", 1, "online"),
        1: ("product_product_demo_package_100", 1, "bank"),
    },
    "res_partner_demo_hist_sable": {
        5: ("product_product_demo_package_100", 1, "online"),
        3: ("product_product_demo_package_100", 1, "bank"),
        1: ("product_product_demo_package_100", 1, "online"),
        0: ("product_product_demo_package_50", 1, "online"),
    },
    # A postpaid customer who keeps credit to pay its invoices from.
    "res_partner_demo_hist_polar": {
        3: ("product_product_demo_package_100", 2, "bank"),
    },
    "res_partner_demo_reseller_customer_prepaid": {
        4: ("product_product_demo_package_50", 1, "bank"),
        1: ("product_product_demo_package_50", 1, "bank"),
    },
    "res_partner_demo_reseller2_customer_prepaid": {
        5: ("product_product_demo_package_50", 1, "bank"),
        2: ("product_product_demo_package_50", 1, "bank"),
    },
}


def _invoice_payment_plan(key, months_ago):
    """How the recurring invoice of ``months_ago`` of customer ``key`` was
    paid: ``(method, days after the invoice date, share of it)``, or None
    (still open, or a draft not yet approved)."""
    if key == "res_partner_demo_hist_lumen":
        return ("bank", 10, 0.5) if months_ago == 1 else ("bank", 20, 1.0)
    if key == "res_partner_demo_hist_verde":
        # Immediate terms: this month's is overdue from the day after it.
        return ("online", 5, 1.0) if months_ago else None
    if key == "res_partner_demo_hist_polar":
        if months_ago >= 3:
            return ("bank", 10, 1.0)
        return ("wallet", 0, 1.0) if months_ago else None
    if key == "res_partner_demo_hist_quayside":
        return ("bank", 25, 1.0) if months_ago >= 2 else None
    if key == "res_partner_demo_hist_delta":
        if months_ago >= 3:
            return ("bank", 14, 1.0)
        return ("bank", 14, 0.4) if months_ago == 2 else None
    if key == "res_partner_demo_hist_mitte":
        return ("bank", 7, 1.0) if months_ago else ("bank", 0, 0.5)
    if key == "res_partner_demo_hist_nordlys":
        return ("bank", 20, 1.0) if months_ago >= 2 else None
    return None


class _ExpectedFailureFilter(logging.Filter):
    """Drops the warning of the recurring run about the demo's failing
    customer: its failure is shown on purpose, and is no problem of the
    installation."""

    def __init__(self, partner_name):
        super().__init__()
        self.partner_name = partner_name

    def filter(self, record):
        return not (
            record.levelno == logging.WARNING
            and len(record.args or ()) > 1
            and record.args[1] == self.partner_name
        )


class IrDemo(models.TransientModel):
    # The loader of the billing history, on Odoo's model of the demo data: a
    # model of its own would be one more model of the addon without records
    # (see the access sweep's NO_RECORDS); account.chart.template, where Odoo's
    # account demo has its loader, is extended in models/ already.
    _inherit = "ir.demo"

    @api.model
    def _billing_load_demo_history(self):
        """Make six months of billing history with the addon's business
        methods, month after month: top-ups bought and paid, usage sent
        (``billing.charge.ingest``), the monthly recurring run
        (``billing.recurring._billing_run``), drafts approved, payments by
        bank, online and from the wallet. One customer's run fails this month:
        a goodwill credit larger than its fee gives a negative invoice total,
        which Odoo refuses to post."""
        company = self.env.ref("base.main_company")
        if not company.billing_wallet_journal_id:
            _logger.info("Billing demo history skipped: the company has no wallet")
            return
        lumen = self.env.ref(XMLID % "res_partner_demo_hist_lumen")
        if self.env["billing.recurring"].search_count([("partner_id", "=", lumen.id)]):
            return  # made already
        self.with_company(company)._billing_demo_make_history(company)

    @api.model
    def _billing_demo_make_history(self, company):
        started = systime.monotonic()
        today = fields.Date.context_today(self)
        now = fields.Datetime.now()
        history = {
            "today": today,
            "now": now,
            "company": company,
            "rng": random.Random(20260601),
            "bank": self.env["account.journal"].search(
                [
                    *self.env["account.journal"]._check_company_domain(company),
                    ("type", "=", "bank"),
                ],
                limit=1,
            ),
            "provider": self._billing_demo_online_provider(),
        }
        schedules = self._billing_demo_create_schedules(history)
        for months_ago in range(HISTORY_MONTHS, -1, -1):
            self._billing_demo_month(history, schedules, months_ago)
        # The consumption of prepaid usage, booked as the scheduled action does.
        self.env["billing.wallet"]._post_consumption_run()
        _logger.info(
            "Billing demo history made in %.1f s", systime.monotonic() - started
        )

    # -------------------------------------------------------------------------
    # HELPERS
    # -------------------------------------------------------------------------

    @api.model
    def _billing_demo_online_provider(self):
        """The demo payment provider of Odoo's payment_demo, when it is
        installed and enabled: online payments go through it."""
        provider = self.env.ref(
            "payment.payment_provider_demo", raise_if_not_found=False
        )
        if provider and provider.code == "demo" and provider.state != "disabled":
            return provider
        _logger.info(
            "Billing demo history: payment_demo is not installed, online payments "
            "are made by bank instead"
        )
        return self.env["payment.provider"]

    @api.model
    def _billing_demo_month_start(self, history, months_ago):
        return history["today"].replace(day=1) - relativedelta(months=months_ago)

    @api.model
    def _billing_demo_create_schedules(self, history):
        """The recurring invoices of the postpaid customers, monthly on the 1st,
        the first one the oldest month of the history."""
        first = self._billing_demo_month_start(history, HISTORY_MONTHS)
        vals_list = []
        for key, plan in CUSTOMERS.items():
            if "schedule" not in plan:
                continue
            mode, lines = plan["schedule"]
            vals = {
                "partner_id": self.env.ref(XMLID % key).id,
                "company_id": history["company"].id,
                "interval_type": "month",
                "interval_number": 1,
                "invoice_day": 1,
                "next_date": first,
                "generation_mode": mode,
                "send_email": False,
                "line_ids": [
                    Command.create(
                        {
                            "product_id": self.env.ref(XMLID % product).id,
                            "name": label,
                            "quantity": 1,
                            "price_unit": price,
                        }
                    )
                    for product, label, price in lines
                ],
            }
            if plan.get("allowance"):
                product, quantity = plan["allowance"]
                vals["allowance_ids"] = [
                    Command.create(
                        {
                            "product_id": self.env.ref(XMLID % product).id,
                            "quantity": quantity,
                        }
                    )
                ]
            vals_list.append(vals)
        schedules = self.env["billing.recurring"].create(vals_list)
        # Harbor Logistics, whose invoicing is off, paused its contract: its
        # recurring invoice is stopped.
        self.env["billing.recurring"].create(
            {
                "partner_id": self.env.ref(
                    XMLID % "res_partner_demo_postpaid_paused"
                ).id,
                "company_id": history["company"].id,
                "next_date": history["today"].replace(day=1) + relativedelta(months=1),
                "generation_mode": "draft",
                "send_email": False,
                "state": "stopped",
                "line_ids": [
                    Command.create(
                        {
                            "product_id": self.env.ref(
                                XMLID % "product_product_demo_platform"
                            ).id,
                            "name": "Messaging Platform",
                            "quantity": 1,
                            "price_unit": 49.0,
                        }
                    )
                ],
            }
        )
        return {schedule.partner_id.id: schedule for schedule in schedules}

    @api.model
    def _billing_demo_month(self, history, schedules, months_ago):
        """One month of the history, in the order the days bring it."""
        start = self._billing_demo_month_start(history, months_ago)
        self._billing_demo_topups(history, months_ago, start)
        if not months_ago:
            self._billing_demo_wallet_invoice(history)
        self._billing_demo_usage(history, months_ago, start)
        if not months_ago:
            self._billing_demo_break_schedule(schedules)
        run_day = history["today"] if not months_ago else start
        # The past months' runs as the scheduler made them, that day; this
        # month's with Run Now, today.
        runs = self._billing_demo_run(
            history, run_day, "cron" if months_ago else "manual"
        )
        if months_ago:
            when = datetime.combine(run_day, time(2, 0))
            for run in runs:
                run.write(
                    {
                        "date_start": when,
                        "date_end": when + (run.date_end - run.date_start),
                    }
                )
        invoices = self.env["account.move"].search(
            [
                ("billing_recurring_id", "in", [s.id for s in schedules.values()]),
                ("invoice_date", "=", start),
            ]
        )
        if months_ago:
            # Drafts to approve are approved within their month; this month's
            # wait for a Billing User.
            invoices.filtered(lambda move: move.state == "draft").action_post()
        keys = {self.env.ref(XMLID % key).id: key for key in CUSTOMERS}
        to_pay = defaultdict(lambda: self.env["account.move"])
        for invoice in invoices.filtered(lambda move: move.state == "posted"):
            plan = _invoice_payment_plan(keys[invoice.partner_id.id], months_ago)
            if plan:
                method, days, share = plan
                pay_day = min(start + timedelta(days=days), history["today"])
                to_pay[method, pay_day, share] |= invoice
        for (method, pay_day, share), moves in sorted(to_pay.items()):
            self._billing_demo_pay(history, moves, method, pay_day, share)

    @api.model
    def _billing_demo_topups(self, history, months_ago, start):
        """The credit packages bought in the month, on its 1st, paid at once."""
        plans = [
            (key, plan[months_ago])
            for key, plan in TOPUPS.items()
            if months_ago in plan
        ]
        if not plans:
            return
        invoices = self.env["account.move"].create(
            [
                {
                    "move_type": "out_invoice",
                    "partner_id": self.env.ref(XMLID % key).id,
                    "invoice_date": start,
                    "invoice_payment_term_id": False,
                    "invoice_date_due": start,
                    "invoice_line_ids": [
                        Command.create(
                            {
                                "product_id": self.env.ref(XMLID % product).id,
                                "quantity": quantity,
                            }
                        )
                    ],
                }
                for key, (product, quantity, _method) in plans
            ]
        )
        invoices.action_post()
        by_method = defaultdict(lambda: self.env["account.move"])
        for invoice, (_key, (_product, _quantity, method)) in zip(
            invoices, plans, strict=True
        ):
            by_method[method] |= invoice
        for method, moves in sorted(by_method.items()):
            self._billing_demo_pay(history, moves, method, start)

    @api.model
    def _billing_demo_wallet_invoice(self, history):
        """Brightwave Media's Sender ID of this month: a product paid from the
        wallet, which pays the invoice when it is posted."""
        invoice = self.env["account.move"].create(
            {
                "move_type": "out_invoice",
                "partner_id": self.env.ref(
                    XMLID % "res_partner_demo_hist_brightwave"
                ).id,
                "invoice_date": history["today"],
                "invoice_line_ids": [
                    Command.create(
                        {
                            "product_id": self.env.ref(
                                XMLID % "product_product_demo_sms_bundle"
                            ).id,
                            "quantity": 1,
                        }
                    )
                ],
            }
        )
        invoice.action_post()

    @api.model
    def _billing_demo_usage(self, history, months_ago, start):
        """The usage records of the month, sent in one ingest call: spread
        over its days, up to now for the current month."""
        rng = history["rng"]
        end = min(
            datetime.combine(start + relativedelta(months=1), time.min),
            history["now"] - timedelta(minutes=5),
        )
        begin = datetime.combine(start, time(0, 0))
        # Prepaid usage after the top-ups of the 1st.
        first = begin + timedelta(days=1) if end - begin > timedelta(days=2) else begin
        span = max((end - first).total_seconds(), 60)
        sms = self.env.ref(XMLID % "product_product_demo_sms").id
        voice = self.env.ref(XMLID % "product_product_demo_voice").id
        records = []
        for key, plan in CUSTOMERS.items():
            if months_ago and plan.get("usage_from") == "current":
                continue
            partner_id = self.env.ref(XMLID % key).id
            sms_count, sms_range, voice_count, voice_range = plan["usage"]
            slug = key.removeprefix("res_partner_demo_")
            for product, count, (low, high), label in (
                (sms, sms_count, sms_range, "SMS campaign"),
                (voice, voice_count, voice_range, False),
            ):
                for index in range(count):
                    moment = first + timedelta(
                        seconds=int(span * (index + 0.5) / count)
                    )
                    record = {
                        "partner_id": partner_id,
                        "product_id": product,
                        "date": fields.Datetime.to_string(moment),
                        "quantity": rng.randint(low, high),
                        "external_ref": f"demo-history-{slug}-{start:%Y%m}-"
                        f"{product}-{index}",
                    }
                    if label:
                        record["name"] = label
                    records.append(record)
        result = self.env["billing.charge"].ingest(records)
        if result["rejected"]:
            raise UserError(
                self.env._(
                    "Billing demo history: usage refused: %(rejected)s",
                    rejected=result["rejected"],
                )
            )

    @api.model
    def _billing_demo_break_schedule(self, schedules):
        """A goodwill credit larger than the monthly fee, added to Quayside
        Motors' recurring invoice: its invoice total is negative, which Odoo
        refuses to post, so this month's run fails for this customer (a credit
        note was meant)."""
        partner = self.env.ref(XMLID % "res_partner_demo_hist_quayside")
        schedules[partner.id].write(
            {
                "line_ids": [
                    Command.create(
                        {
                            "product_id": self.env.ref(
                                XMLID % "product_product_demo_platform"
                            ).id,
                            "name": "Goodwill credit for the network outage",
                            "quantity": 1,
                            "price_unit": -250.0,
                        }
                    )
                ]
            }
        )

    @api.model
    def _billing_demo_run(self, history, run_day, trigger):
        """The recurring run of ``run_day``."""
        partner = self.env.ref(XMLID % "res_partner_demo_hist_quayside")
        with self._billing_demo_expected_failure(partner.display_name):
            return self.env["billing.recurring"]._billing_run(
                trigger=trigger, today=run_day, companies=history["company"]
            )

    @api.model
    @contextmanager
    def _billing_demo_expected_failure(self, partner_name):
        logger = logging.getLogger(RECURRING_LOGGER)
        log_filter = _ExpectedFailureFilter(partner_name)
        logger.addFilter(log_filter)
        try:
            yield
        finally:
            logger.removeFilter(log_filter)

    @api.model
    def _billing_demo_pay(self, history, invoices, method, pay_day, share=1.0):
        """Pay ``share`` of each of ``invoices`` on ``pay_day`` by ``method``."""
        if method == "online" and not history["provider"]:
            method = "bank"
        if method == "wallet":
            invoices.action_billing_pay_from_wallet()
            return
        for invoice in invoices if method == "online" or share != 1.0 else [invoices]:
            amounts = {}
            if share != 1.0:
                amounts["amount"] = invoice.currency_id.round(
                    invoice.amount_total * share
                )
            if method == "online":
                self._billing_demo_pay_online(
                    history,
                    invoice,
                    pay_day,
                    amounts.get("amount", invoice.amount_residual),
                )
                continue
            # Register Payment of the invoices, in the bank journal.
            self.env["account.payment.register"].with_context(
                active_model="account.move", active_ids=invoice.ids
            ).create(
                {"journal_id": history["bank"].id, "payment_date": pay_day, **amounts}
            ).action_create_payments()

    @api.model
    def _billing_demo_pay_online(self, history, invoice, pay_day, amount):
        """A payment of the demo provider, confirmed by its notification and
        post-processed as the provider's return does; its payment dated the
        day the customer paid."""
        provider = history["provider"]
        Transaction = self.env["payment.transaction"]
        tx = Transaction.create(
            {
                "provider_id": provider.id,
                "payment_method_id": provider.payment_method_ids[:1].id,
                "amount": amount,
                "currency_id": invoice.currency_id.id,
                "partner_id": invoice.partner_id.id,
                "reference": Transaction._compute_reference(
                    provider.code, invoice_ids=[Command.set(invoice.ids)]
                ),
                "operation": "online_redirect",
                "invoice_ids": [Command.set(invoice.ids)],
            }
        )
        tx._handle_notification_data(
            "demo", {"reference": tx.reference, "simulated_state": "done"}
        )
        tx.with_company(tx.company_id)._create_payment(date=pay_day)
        tx._post_process()
