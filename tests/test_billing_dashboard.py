from datetime import date
from unittest.mock import patch

from freezegun import freeze_time

from odoo import Command
from odoo.exceptions import AccessError, UserError
from odoo.tests import new_test_user, tagged

from .wallet_common import BillingWalletCommon

TODAY = date(2026, 11, 20)
RECURRING_LOGGER = "odoo.addons.prepaid_postpaid_billing.models.billing_recurring"


@tagged("post_install", "-at_install")
class TestBillingDashboard(BillingWalletCommon):
    """The figures of the Billing dashboard against hand-made invoices and
    payments, the lists its tiles open, its filters and its cost."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._setup_test_provider()
        cls.Dashboard = cls.env["billing.dashboard"]
        cls.postpaid = cls.env["res.partner"].create(
            {
                "name": "Postpaid Customer",
                "is_company": True,
                "billing_mode": "postpaid",
            }
        )
        cls.reseller = cls.env["res.partner"].create(
            {
                "name": "Dashboard Reseller",
                "is_company": True,
                "is_billing_reseller": True,
            }
        )
        cls.reseller_customer = cls.env["res.partner"].create(
            {
                "name": "Reseller's Customer",
                "is_company": True,
                "billing_mode": "postpaid",
                "billing_reseller_id": cls.reseller.id,
            }
        )
        cls.internal_user = new_test_user(
            cls.env,
            login="dashboard_internal",
            groups="base.group_user",
            company_id=cls.company.id,
            company_ids=[Command.set(cls.company.ids)],
        )

    # -------------------------------------------------------------------------
    # Helpers
    # -------------------------------------------------------------------------

    def _sale(self, amount, day=TODAY, partner=None, post=True, due=None):
        """An invoice of ``amount`` (no tax) dated ``day``, due on ``due`` (by
        default 30 days later, as the immediate term of no payment term)."""
        invoice = self.env["account.move"].create(
            {
                "move_type": "out_invoice",
                "partner_id": (partner or self.postpaid).id,
                "invoice_date": day,
                "invoice_date_due": due or day,
                "invoice_line_ids": [
                    Command.create(
                        {
                            "product_id": self.service.id,
                            "quantity": 1,
                            "price_unit": amount,
                            "tax_ids": [Command.clear()],
                        }
                    )
                ],
            }
        )
        if due:
            invoice.invoice_date_due = due
        if post:
            invoice.action_post()
        return invoice

    def _data(self, user=None, **filters):
        dashboard = self.Dashboard.with_user(user) if user else self.Dashboard
        with freeze_time(TODAY):
            return dashboard.get_dashboard_data(filters)

    def _figures(self, data):
        """{key: (count, amount)} of every tile and sub-figure of ``data``."""
        figures = {}
        for tile in data["tiles"]:
            for figure in (tile, *tile["subs"]):
                figures[figure["key"]] = (figure["count"], figure["amount"])
        for figure in data["invoices"]["due"]:
            figures[figure["key"]] = (figure["count"], figure["amount"])
        return figures

    def _book(self):
        """Invoices and payments of November 2026 (today is the 20th), and some
        that the dashboard must not count."""
        self.partial = self._sale(100.0, due=date(2026, 12, 20))
        self._pay(self.partial, amount=40.0)
        self.unpaid = self._sale(50.0, due=date(2026, 12, 20))
        self.due_today = self._sale(15.0, day=date(2026, 11, 5), due=TODAY)
        self.overdue = self._sale(25.0, day=date(2026, 11, 1), due=date(2026, 11, 10))
        self.paid = self._sale(30.0, day=date(2026, 11, 3))
        self._pay(self.paid)
        self.draft = self._sale(20.0, post=False)
        cancelled = self._sale(10.0)
        cancelled.button_cancel()
        # October: another period.
        with freeze_time(date(2026, 10, 15)):
            self.october = self._sale(70.0, day=date(2026, 10, 15))
            self._pay(self.october)
        # A top-up of 150 credit paid 100 by bank: money received, credit held
        # by the customer, no revenue; 35 of the credit pays an invoice.
        self.topup = self._invoice([(self.package, 1, 100.0)], post=False)
        self.topup.invoice_date = TODAY
        self.topup.action_post()
        self._pay(self.topup)
        self.from_wallet = self._sale(35.0, partner=self.customer)
        self.from_wallet.action_billing_pay_from_wallet()
        # 12 paid online through the payment provider.
        self.online = self._sale(12.0, day=date(2026, 11, 18))
        self._transaction(self.online, "done")

    # -------------------------------------------------------------------------
    # Tests
    # -------------------------------------------------------------------------

    def test_figures_of_hand_made_invoices(self):
        """100 with 40 paid adds 60 to unsettled; drafts are not approved; a
        wallet top-up is not an invoice of revenue but its money is a payment and
        its credit is held."""
        with freeze_time(TODAY):
            self._book()
        self.assertEqual(self.partial.payment_state, "partial")
        self.assertIn(self.paid.payment_state, ("paid", "in_payment"))
        self.assertIn(self.from_wallet.payment_state, ("paid", "in_payment"))
        self.assertIn(self.online.payment_state, ("paid", "in_payment"))
        figures = self._figures(self._data())
        expected = {
            # partial 100, unpaid 50, due today 15, overdue 25, paid 30,
            # from wallet 35, online 12, draft 20.
            "total": (8, 287.0),
            "posted": (7, 267.0),
            "draft": (1, 20.0),
            "paid": (3, 77.0),
            # Still due: 60 of the partial, 50, 15 and 25.
            "unsettled": (4, 150.0),
            "unpaid": (3, 90.0),
            "partial": (1, 60.0),
            "not_due": (2, 110.0),
            "due_today": (1, 15.0),
            "overdue": (1, 25.0),
            # 150 of credit, 35 spent.
            "wallet": (None, 115.0),
            # Bank 40 + 30 + 100 (the top-up), wallet 35, online 12.
            "payments": (5, 217.0),
            "payments_bank": (3, 170.0),
            "payments_online": (1, 12.0),
            "payments_wallet": (1, 35.0),
        }
        for key, (count, amount) in expected.items():
            self.assertEqual(figures[key][0], count, f"count of {key}")
            self.assertEqual(
                self.currency.compare_amounts(figures[key][1], amount),
                0,
                f"amount of {key}: {figures[key][1]} instead of {amount}",
            )
        self.assertBooksMatchWallet()

    def test_topup_is_not_revenue(self):
        """Selling and paying a credit package changes no invoice figure: only
        the payments received and the credit held."""
        with freeze_time(TODAY):
            self._sale(80.0)
        before = self._figures(self._data())
        with freeze_time(TODAY):
            topup = self._invoice([(self.package, 1, 100.0)], post=False)
            topup.invoice_date = TODAY
            topup.action_post()
            self._pay(topup)
        after = self._figures(self._data())
        for key in ("total", "posted", "draft", "paid", "unsettled", "overdue"):
            self.assertEqual(after[key], before[key], key)
        self.assertEqual(after["payments"][0], before["payments"][0] + 1)
        self.assertAlmostEqual(after["payments"][1], before["payments"][1] + 100.0, 2)
        self.assertAlmostEqual(after["wallet"][1], before["wallet"][1] + 150.0, 2)

    def test_each_figure_opens_exactly_its_records(self):
        with freeze_time(TODAY):
            self._book()
        data = self._data()
        figures = self._figures(data)
        amount_fields = {
            "account.move": "amount_total_signed",
            "account.payment": "amount_company_currency_signed",
        }
        open_keys = (
            "unsettled",
            "unpaid",
            "partial",
            "not_due",
            "due_today",
            "overdue",
        )
        for key, (count, amount) in figures.items():
            with freeze_time(TODAY):
                action = self.Dashboard.action_open(key, data["filters"])
                model = self.env[action["res_model"]]
                records = model.search(action["domain"])
            if key == "wallet":
                self.assertEqual(model._name, "account.move.line")
                listed = -sum(records.mapped("balance"))
            else:
                self.assertEqual(len(records), count, f"records of {key}")
                field = (
                    "amount_residual_signed"
                    if key in open_keys
                    else amount_fields[model._name]
                )
                listed = sum(records.mapped(field))
            self.assertEqual(
                self.currency.compare_amounts(listed, amount),
                0,
                f"{key}: the list sums {listed}, the tile says {amount}",
            )
            self.assertTrue(action["name"])
        self.assertEqual(
            self.Dashboard.action_open("overdue", data["filters"])["res_model"],
            "account.move",
        )
        with freeze_time(TODAY):
            overdue = self.env["account.move"].search(
                self.Dashboard.action_open("overdue", data["filters"])["domain"]
            )
        self.assertEqual(overdue, self.overdue)
        with freeze_time(TODAY):
            draft = self.env["account.move"].search(
                self.Dashboard.action_open("draft", data["filters"])["domain"]
            )
        self.assertEqual(draft, self.draft)
        for page, model in (
            ("page_invoices", "account.move"),
            ("page_recurring", "billing.recurring"),
            ("page_payments", "account.payment"),
            ("last_run", "billing.run"),
        ):
            self.assertEqual(self.Dashboard.action_open(page)["res_model"], model)
        with self.assertRaisesRegex(UserError, "no figure 'revenue'"):
            self.Dashboard.action_open("revenue")
        with self.assertRaisesRegex(UserError, r"no figure \['total'\]"):
            self.Dashboard.action_open(["total"])

    def test_periods(self):
        with freeze_time(TODAY):
            self._book()
        figures = self._figures(self._data(period="last_month"))
        self.assertEqual(figures["total"], (1, 70.0))
        self.assertEqual(figures["paid"], (1, 70.0))
        self.assertEqual(figures["payments"], (1, 70.0))
        self.assertEqual(figures["unsettled"], (0, 0.0))
        # The credit held at the end of October: none yet.
        self.assertEqual(figures["wallet"], (None, 0.0))
        figures = self._figures(self._data(period="this_year"))
        self.assertEqual(figures["total"], (9, 357.0))
        data = self._data(period="custom", date_from="2026-11-01", date_to="2026-11-05")
        self.assertEqual(data["filters"]["date_from"], "2026-11-01")
        figures = self._figures(data)
        # The overdue invoice of the 1st, the paid one of the 3rd and the one
        # due today of the 5th.
        self.assertEqual(figures["total"], (3, 70.0))
        self.assertEqual(
            self._figures(self._data())["total"],
            self._figures(
                self._data(
                    period="custom", date_from="2026-11-01", date_to="2026-11-30"
                )
            )["total"],
        )
        with self.assertRaisesRegex(UserError, "custom period needs a From date"):
            self._data(period="custom", date_to="2026-11-30")
        with self.assertRaisesRegex(UserError, "custom period needs a To date"):
            self._data(period="custom", date_from="2026-11-01", date_to="30/11/2026")
        with self.assertRaisesRegex(UserError, "after its end"):
            self._data(period="custom", date_from="2026-11-30", date_to="2026-11-01")
        with self.assertRaisesRegex(UserError, "no period 'forever'"):
            self._data(period="forever")
        with self.assertRaisesRegex(UserError, "must be a dictionary"):
            self.Dashboard.get_dashboard_data(["this_month"])

    def test_reseller_filter(self):
        with freeze_time(TODAY):
            self._book()
            mine = self._sale(44.0, partner=self.reseller_customer)
            self._pay(mine, amount=4.0)
        data = self._data(reseller_id=self.reseller.id)
        figures = self._figures(data)
        self.assertEqual(figures["total"], (1, 44.0))
        self.assertEqual(figures["partial"], (1, 40.0))
        self.assertEqual(figures["payments"], (1, 4.0))
        self.assertEqual(figures["wallet"], (None, 0.0))
        self.assertEqual([row["id"] for row in data["invoices"]["latest"]], mine.ids)
        self.assertEqual(data["filters"]["reseller_id"], self.reseller.id)
        self.assertIn(
            [self.reseller.id, self.reseller.display_name], data["options"]["resellers"]
        )
        with freeze_time(TODAY):
            action = self.Dashboard.action_open("partial", data["filters"])
        self.assertEqual(self.env["account.move"].search(action["domain"]), mine)
        # Without the filter, the reseller's invoice is one among the others.
        self.assertEqual(self._figures(self._data())["total"], (9, 331.0))
        with self.assertRaisesRegex(UserError, "is not a reseller"):
            self._data(reseller_id=self.postpaid.id)
        with self.assertRaisesRegex(UserError, "is not a reseller"):
            self._data(reseller_id="1")

    def test_company_filter_and_access(self):
        other = self.setup_other_company(name="Dashboard Other Company")["company"]
        with freeze_time(TODAY):
            self._sale(100.0)
            elsewhere = (
                self.env["account.move"]
                .with_company(other)
                .create(
                    {
                        "move_type": "out_invoice",
                        "partner_id": self.postpaid.id,
                        "company_id": other.id,
                        "invoice_date": TODAY,
                        "invoice_line_ids": [
                            Command.create(
                                {"name": "Elsewhere", "quantity": 1, "price_unit": 7.0}
                            )
                        ],
                    }
                )
            )
            elsewhere.action_post()
        self.assertEqual(self._figures(self._data())["total"][0], 1)
        # An accountant working in both companies sees each one's own figures.
        both = self.Dashboard.with_context(
            allowed_company_ids=[self.company.id, other.id]
        )
        with freeze_time(TODAY):
            data = both.get_dashboard_data({"company_id": other.id})
        self.assertEqual(self._figures(data)["total"][0], 1)
        self.assertEqual(data["currency_id"], other.currency_id.id)
        self.assertEqual(
            {company_id for company_id, _name in data["options"]["companies"]},
            {self.company.id, other.id},
        )
        with freeze_time(TODAY):
            action = both.action_open("unpaid", data["filters"])
        self.assertEqual(self.env["account.move"].search(action["domain"]), elsewhere)
        # A Billing User of the first company only: its own figures, never the
        # other company's.
        data = self._data(user=self.billing_user)
        self.assertEqual(self._figures(data)["total"][0], 1)
        self.assertEqual(
            data["options"]["companies"], [[self.company.id, self.company.name]]
        )
        self.assertFalse(data["is_manager"])
        with self.assertRaisesRegex(AccessError, "companies you work in"):
            self._data(user=self.billing_user, company_id=other.id)
        with self.assertRaisesRegex(AccessError, "Only Billing Users"):
            self._data(user=self.internal_user)
        with self.assertRaisesRegex(AccessError, "Only Billing Users"):
            self.Dashboard.with_user(self.internal_user).action_open("total")
        self.assertTrue(self._data(user=self.billing_manager)["is_manager"])

    def test_summaries(self):
        with freeze_time(TODAY):
            self._book()
            running = self.env["billing.recurring"].create(
                {
                    "partner_id": self.postpaid.id,
                    "next_date": date(2026, 12, 1),
                    "line_ids": [
                        Command.create(
                            {
                                "product_id": self.service.id,
                                "name": "Plan",
                                "quantity": 1,
                                "price_unit": 30.0,
                            }
                        )
                    ],
                }
            )
            stopped = self.env["billing.recurring"].create(
                {
                    "partner_id": self.reseller_customer.id,
                    "next_date": date(2026, 11, 25),
                    "state": "stopped",
                }
            )
        data = self._data()
        latest = data["invoices"]["latest"]
        self.assertEqual(len(latest), 5)
        # Newest first: the invoices of today (the draft, the ones paid from the
        # wallet and the partial), then the online payment of the 18th.
        self.assertEqual(latest[0]["id"], self.from_wallet.id)
        self.assertIn(self.draft.id, [row["id"] for row in latest])
        self.assertEqual(
            [row["due_status"] for row in latest if row["id"] == self.unpaid.id],
            ["not_due"],
        )
        recurring = data["recurring"]
        self.assertEqual((recurring["running"], recurring["stopped"]), (1, 1))
        self.assertEqual(recurring["next_date"], "2026-12-01")
        self.assertEqual(
            [row["id"] for row in recurring["schedules"]], [running.id, stopped.id]
        )
        self.assertFalse(recurring["last_run"])
        payments = data["payments"]
        self.assertEqual(len(payments["latest"]), 5)
        self.assertEqual(
            {row["method"] for row in payments["latest"]}, {"bank", "wallet", "online"}
        )
        self.assertEqual(
            [row["key"] for row in payments["by_method"]],
            ["payments_bank", "payments_online", "payments_wallet"],
        )

        # A run whose customer failed: the last run, its failure shown.
        def fail(records, period, groups, defaults=None):
            raise UserError(self.env._("No income account for the plan"))

        with (
            freeze_time(date(2026, 12, 1)),
            patch.object(
                type(self.env["billing.recurring"]),
                "_billing_prepare_invoice_vals",
                fail,
            ),
            self.assertLogs(RECURRING_LOGGER, level="WARNING"),
        ):
            self.env["billing.recurring"]._billing_run(
                today=date(2026, 12, 1), companies=self.company
            )
        last_run = self._data()["recurring"]["last_run"]
        self.assertEqual(last_run["failure_count"], 1)
        self.assertEqual(last_run["failures"][0]["partner"], self.postpaid.display_name)
        self.assertIn("No income account", last_run["failures"][0]["error"])
        action = self.Dashboard.action_open("last_run")
        self.assertEqual(action["res_id"], last_run["id"])

    def test_query_count_does_not_grow(self):
        """The dashboard costs the same queries with 10 or 60 invoices (and as
        many payments)."""

        def book(count):
            with freeze_time(TODAY):
                for index in range(count):
                    invoice = self._sale(10.0 + index)
                    if index % 3 == 0:
                        self._pay(invoice, amount=5.0)
                    elif index % 3 == 1:
                        self._pay(invoice)

        def count_queries():
            self.env.flush_all()
            self.env.invalidate_all()
            before = self.env.cr.sql_log_count
            self._data(user=self.billing_user)
            return self.env.cr.sql_log_count - before

        book(10)
        count_queries()  # warm the caches of the registry (views, translations)
        small = count_queries()
        book(50)
        large = count_queries()
        self.assertEqual(small, large)
        with self.assertQueryCount(small):
            self.env.invalidate_all()
            self._data(user=self.billing_user)
