"""The reseller portal (issue 12, items 4 and 5): a reseller's customers, their
wallets, usage and invoices, read through the Reseller group's record rules,
and what a reseller may not change."""

import re
from datetime import timedelta
from io import BytesIO

from openpyxl import load_workbook

from odoo import Command, fields, http
from odoo.exceptions import AccessError
from odoo.tests import HttpCase, new_test_user, tagged

from .recurring_common import BillingRecurringCommon
from .test_billing_access_sweep import MARKER, BillingAccessSweepCommon

RESELLER_GROUP = "prepaid_postpaid_billing.group_billing_reseller"
# Every route of the reseller portal, GET, with {customer} and {page} to fill.
RESELLER_GET_ROUTES = (
    "/my/customers",
    "/my/customers/page/{page}",
    "/my/customers/{customer}",
    "/my/customers/invoices",
    "/my/customers/invoices/page/{page}",
    "/my/customers/invoices/xlsx",
)
REMIND_URL = "/my/customers/invoices/remind"


def _xlsx_text(content):
    """Every cell of the first sheet of an Excel file, as one text."""
    sheet = load_workbook(BytesIO(content), data_only=True).active
    return "\n".join(
        str(cell) for row in sheet.iter_rows(values_only=True) for cell in row if cell
    )


class ResellerPortalMixin:
    @classmethod
    def _portal_user(cls, login, partner, groups="base.group_portal"):
        """A portal user (password: its login) of a new contact of ``partner``
        in the test company."""
        contact = cls.env["res.partner"].create(
            {"name": f"{partner.name} Agent", "parent_id": partner.id}
        )
        return new_test_user(
            cls.env,
            login=login,
            partner_id=contact.id,
            groups=groups,
            company_id=cls.company.id,
            company_ids=[Command.set(cls.company.ids)],
        )

    def _ids(self, page, attribute):
        return {int(i) for i in re.findall(rf'{attribute}="(\d+)"', page)}

    def _invoice_ids(self, url):
        response = self.url_open(url)
        self.assertEqual(response.status_code, 200, url)
        return self._ids(response.text, "data-invoice-id")

    def csrf_token(self):
        return http.Request.csrf_token(self)

    def _remind(self, invoices):
        return self.url_open(
            REMIND_URL,
            data={
                "csrf_token": self.csrf_token(),
                "invoice_ids": [str(invoice_id) for invoice_id in invoices.ids],
            },
        )

    def _mails(self, invoices):
        self.env.invalidate_all()
        return self.env["mail.mail"].search(
            [("model", "=", "account.move"), ("res_id", "in", invoices.ids)]
        )


@tagged("post_install", "-at_install")
class TestBillingResellerPortal(ResellerPortalMixin, BillingRecurringCommon, HttpCase):
    """Reseller Alpha has a prepaid and a postpaid customer; reseller Beta one
    customer; the company one customer of its own."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        Partner = cls.env["res.partner"]
        cls.today = fields.Date.context_today(cls.env.user)
        cls.alpha = cls._reseller("Alpha Reseller", "ALPHA")
        cls.beta = cls._reseller("Beta Reseller", "BETA")
        cls.prepaid_c = cls._customer("Prepaid Kiosk", "prepaid", cls.alpha)
        cls.postpaid_c = cls._customer("Postpaid Bakery", "postpaid", cls.alpha)
        cls.beta_c = cls._customer("Zeta Foreign Shop", "postpaid", cls.beta)
        cls.own_c = cls._customer("Omega Direct Client", "postpaid", Partner)
        cls.alpha_user = cls._portal_user("alpha_agent", cls.alpha, RESELLER_GROUP)
        cls.beta_user = cls._portal_user("beta_agent", cls.beta, RESELLER_GROUP)
        cls.customer_user = cls._portal_user("kiosk_owner", cls.prepaid_c)

        # Prepaid: 25.50 of credit, then usage of 0.15.
        cls.topup = cls._fund_partner(cls.prepaid_c, 25.5)
        cls._usage(cls.prepaid_c, "Kiosk SMS burst")
        # Postpaid: overdue, partly paid (overdue), not due yet, paid.
        cls.overdue = cls._issue(cls.postpaid_c, 40.0, due_days=-10)
        cls.partial = cls._issue(cls.postpaid_c, 30.0, due_days=-5)
        cls._pay_invoice(cls.partial, 10.0)
        cls.not_due = cls._issue(cls.postpaid_c, 20.0, due_days=30)
        cls.paid = cls._issue(cls.postpaid_c, 15.0, due_days=-3)
        cls._pay_invoice(cls.paid)
        cls.draft = cls._issue(cls.postpaid_c, 11.0, due_days=5, post=False)
        cls.credit_note = cls._issue(
            cls.postpaid_c, 5.0, due_days=0, move_type="out_refund"
        )
        # Others'.
        cls.beta_invoice = cls._issue(cls.beta_c, 70.0, due_days=-10)
        cls._usage(cls.beta_c, "Zeta usage")
        cls.own_invoice = cls._issue(cls.own_c, 80.0, due_days=-10)
        cls.alpha_invoice = cls._issue(cls.alpha, 90.0, due_days=-10)
        cls.alpha_customer_invoices = (
            cls.topup | cls.overdue | cls.partial | cls.not_due | cls.paid
        ) | cls.credit_note

    @classmethod
    def _reseller(cls, name, prefix):
        return cls.env["res.partner"].create(
            {
                "name": name,
                "is_company": True,
                "email": f"{prefix.lower()}@example.com",
                "billing_mode": "postpaid",
                "is_billing_reseller": True,
                "billing_invoice_prefix": prefix,
            }
        )

    @classmethod
    def _customer(cls, name, mode, reseller):
        return cls.env["res.partner"].create(
            {
                "name": name,
                "is_company": True,
                "email": f"{name.split()[0].lower()}@example.com",
                "billing_mode": mode,
                "billing_reseller_id": reseller.id,
            }
        )

    @classmethod
    def _issue(cls, partner, amount, due_days, post=True, move_type="out_invoice"):
        invoice = cls.env["account.move"].create(
            {
                "move_type": move_type,
                "partner_id": partner.id,
                "invoice_date": cls.today - timedelta(days=40),
                "invoice_date_due": cls.today + timedelta(days=due_days),
                "invoice_line_ids": [
                    Command.create(
                        {
                            "product_id": cls.service.id,
                            "quantity": 1,
                            "price_unit": amount,
                            "tax_ids": [Command.clear()],
                        }
                    )
                ],
            }
        )
        # Without payment terms the due date is the one given.
        invoice.invoice_date_due = cls.today + timedelta(days=due_days)
        if post:
            invoice.action_post()
        return invoice

    @classmethod
    def _pay_invoice(cls, invoice, amount=None):
        vals = {"journal_id": cls.bank_journal.id}
        if amount is not None:
            vals["amount"] = amount
        return (
            cls.env["account.payment.register"]
            .with_context(active_model="account.move", active_ids=invoice.ids)
            .create(vals)
            ._create_payments()
        )

    @classmethod
    def _fund_partner(cls, partner, amount):
        invoice = cls._issue(partner, 0.0, due_days=0, post=False)
        invoice.invoice_line_ids = [
            Command.clear(),
            Command.create(
                {
                    "product_id": cls.recharge.id,
                    "price_unit": amount,
                    "tax_ids": [Command.clear()],
                }
            ),
        ]
        invoice.action_post()
        cls._pay_invoice(invoice)
        return invoice

    @classmethod
    def _usage(cls, partner, name):
        result = cls.env["billing.charge"].ingest(
            [
                {
                    "partner_id": partner.id,
                    "product_id": cls.sms.id,
                    "date": fields.Datetime.now(),
                    "quantity": 3.0,
                    "price_unit": 0.05,
                    "name": name,
                    "external_ref": f"portal-{partner.id}-{name}",
                }
            ]
        )
        assert not result["rejected"], result["rejected"]

    def _login(self, user):
        self.authenticate(user.login, user.login)

    # -------------------------------------------------------------------------
    # Fixtures
    # -------------------------------------------------------------------------

    def test_fixtures(self):
        self.assertTrue(self.alpha_user.has_group(RESELLER_GROUP))
        self.assertFalse(self.customer_user.has_group(RESELLER_GROUP))
        self.assertEqual(
            self.env["billing.wallet"]._format_amount_exact(
                self.prepaid_c.billing_balance, self.currency
            ),
            self.env["billing.wallet"]._format_amount_exact(25.35, self.currency),
        )
        self.assertEqual(
            (self.overdue | self.partial | self.not_due | self.paid).mapped(
                "billing_due_status"
            ),
            ["overdue", "overdue", "not_due", False],
        )
        self.assertEqual(
            (self.overdue | self.partial | self.paid).mapped("payment_state"),
            ["not_paid", "partial", self.paid.payment_state],
        )
        self.assertIn(self.paid.payment_state, ("paid", "in_payment"))
        self.assertEqual(self.overdue.journal_id.billing_reseller_id, self.alpha)

    # -------------------------------------------------------------------------
    # Record rules (over RPC)
    # -------------------------------------------------------------------------

    def test_reseller_reads_its_customers_invoices_lines_payments_only(self):
        env = self.env(user=self.alpha_user)
        Move = env["account.move"]
        customers_moves = Move.search(
            [("commercial_partner_id.billing_reseller_id", "=", self.alpha.id)]
        )
        self.assertEqual(customers_moves, self.alpha_customer_invoices.with_env(env))
        # Its own invoices as before; never Beta's customer's, the company's own
        # customer's or a draft.
        everything = Move.search([])
        self.assertIn(self.alpha_invoice.id, everything.ids)
        for foreign in (self.beta_invoice, self.own_invoice, self.draft):
            self.assertNotIn(foreign.id, everything.ids)
            with self.assertRaises(AccessError):
                foreign.with_env(env).read(["name"])
        lines = env["account.move.line"].search([])
        self.assertTrue(self.overdue.line_ids.ids)
        self.assertLessEqual(set(self.overdue.line_ids.ids), set(lines.ids))
        self.assertFalse(set(self.beta_invoice.line_ids.ids) & set(lines.ids))
        self.assertFalse(set(self.own_invoice.line_ids.ids) & set(lines.ids))
        payments = env["account.payment"].search([])
        alpha_payments = self.env["account.payment"].search(
            [("partner_id", "in", (self.prepaid_c | self.postpaid_c).ids)]
        )
        self.assertEqual(len(alpha_payments), 3)
        self.assertEqual(payments, alpha_payments.with_env(env))
        # Beta's reseller user reads none of Alpha's customers'.
        beta_env = self.env(user=self.beta_user)
        self.assertEqual(
            beta_env["account.move"].search([]),
            self.beta_invoice.with_env(beta_env),
        )
        self.assertFalse(beta_env["account.payment"].search([]))
        # A portal customer who is no reseller reads no payment at all.
        with self.assertRaises(AccessError):
            self.env(user=self.customer_user)["account.payment"].search([])

    def test_reseller_cannot_change_customers_billing_wallet_or_prices(self):
        env = self.env(user=self.alpha_user)
        customer = self.postpaid_c.with_env(env)
        self.assertEqual(customer.billing_mode, "postpaid", "it reads its customer")
        for vals in (
            {"billing_mode": "prepaid"},
            {"billing_invoice_enabled": False},
            {"billing_reseller_id": self.beta.id},
            {"name": "Renamed"},
        ):
            with self.assertRaises(AccessError, msg=str(vals)):
                customer.write(vals)
        wallet = env["billing.wallet"].search([("partner_id", "=", self.prepaid_c.id)])
        self.assertEqual(len(wallet), 1, "it reads its customer's wallet")
        with self.assertRefusedWritingNothing(AccessError):
            wallet.write({"balance": 1000.0})
        with self.assertRefusedWritingNothing(AccessError):
            wallet.unlink()
        with self.assertRefusedWritingNothing(AccessError):
            env["billing.wallet.move"].create(
                {"wallet_id": wallet.id, "amount": 1000.0, "name": "Free credit"}
            )
        with self.assertRefusedWritingNothing(AccessError):
            env["billing.wallet.adjust"].create(
                {"partner_id": self.prepaid_c.id, "amount": 5.0, "reason": "Gift"}
            )
        charge = env["billing.charge"].search([("partner_id", "=", self.prepaid_c.id)])
        self.assertEqual(len(charge), 1, "it reads its customer's usage")
        with self.assertRefusedWritingNothing(AccessError):
            charge.write({"price_unit": 0.0})
        with self.assertRefusedWritingNothing(AccessError):
            charge.unlink()
        with self.assertRaises(AccessError):
            env["billing.recurring"].search([])
        with self.assertRefusedWritingNothing(AccessError):
            self.service.with_env(env).write({"list_price": 0.0})
        invoice = self.overdue.with_env(env)
        self.assertTrue(invoice.name, "it reads its customer's invoice")
        with self.assertRefusedWritingNothing(AccessError):
            invoice.write({"ref": "changed"})
        with self.assertRefusedWritingNothing(AccessError):
            env["account.payment"].search([], limit=1).write({"amount": 1.0})
        self.env.invalidate_all()
        self.assertEqual(self.postpaid_c.billing_mode, "postpaid")
        self.assertEqual(self.overdue.state, "posted")

    # -------------------------------------------------------------------------
    # Pages
    # -------------------------------------------------------------------------

    def test_customers_list_shows_own_customers_and_balances(self):
        self._login(self.alpha_user)
        response = self.url_open("/my/customers")
        self.assertEqual(response.status_code, 200)
        page = response.text
        self.assertEqual(
            self._ids(page, "data-partner-id"),
            {self.prepaid_c.id, self.postpaid_c.id},
        )
        for name in (self.beta_c.name, self.own_c.name, self.beta.name):
            self.assertNotIn(name, page)
        self.assertIn(
            self.env["billing.wallet"]._format_amount_exact(25.35, self.currency),
            page,
        )
        # Open: 40 + 20 left of 30 + 20 - 5 of the credit note = 75.
        self.assertIn("75.00", page)
        # Search by name and by email.
        page = self.url_open("/my/customers?search=bakery").text
        self.assertEqual(self._ids(page, "data-partner-id"), {self.postpaid_c.id})
        page = self.url_open("/my/customers?search=prepaid@").text
        self.assertEqual(self._ids(page, "data-partner-id"), {self.prepaid_c.id})
        # Sorted by balance or open amount, largest first.
        for sortby, first in (("balance", self.prepaid_c), ("open", self.postpaid_c)):
            page = self.url_open(f"/my/customers?sortby={sortby}").text
            ids = [int(i) for i in re.findall(r'data-partner-id="(\d+)"', page)]
            self.assertEqual(ids[0], first.id, sortby)

    def test_customer_page_and_others_customers_not_found(self):
        self._login(self.alpha_user)
        response = self.url_open(f"/my/customers/{self.prepaid_c.id}")
        self.assertEqual(response.status_code, 200)
        page = response.text
        self.assertIn("Kiosk SMS burst", page)
        self.assertIn(self.topup.name, page)
        self.assertIn('id="billing_reseller_recharge"', page)
        self.assertEqual(self._ids(page, "data-invoice-id"), set(self.topup.ids))
        page = self.url_open(f"/my/customers/{self.postpaid_c.id}").text
        self.assertEqual(
            self._ids(page, "data-invoice-id"),
            set((self.alpha_customer_invoices - self.topup).ids),
        )
        for partner in (self.beta_c, self.own_c, self.alpha, self.beta):
            response = self.url_open(f"/my/customers/{partner.id}")
            self.assertEqual(response.status_code, 404, partner.name)
            self.assertNotIn("Zeta usage", response.text)
        # The customer's invoice opens on Odoo's invoice page, by the rules.
        response = self.url_open(self.overdue.access_url)
        self.assertEqual(response.status_code, 200)
        self.assertIn(self.overdue.name, response.text)
        response = self.url_open(f"{self.overdue.access_url}?report_type=html")
        self.assertEqual(response.status_code, 200)
        self.assertIn(self.overdue.name, response.text)
        response = self.url_open(self.beta_invoice.access_url, allow_redirects=False)
        self.assertNotEqual(response.status_code, 200)
        self.assertNotIn(self.beta_invoice.name, response.text)

    def test_my_invoices_stays_the_resellers_own(self):
        self._login(self.alpha_user)
        page = self.url_open("/my/invoices").text
        self.assertIn(self.alpha_invoice.name, page)
        self.assertNotIn(self.overdue.name, page)

    def test_invoice_filters(self):
        self._login(self.alpha_user)
        base = "/my/customers/invoices"
        issued = self.alpha_customer_invoices
        cases = {
            "": issued,
            "?filterby=paid": self.paid | self.topup,
            "?filterby=not_paid": self.overdue | self.not_due | self.credit_note,
            "?filterby=partial": self.partial,
            "?due=overdue": self.overdue | self.partial,
            # Due today (the credit note) is not overdue.
            "?due=not_due": self.not_due | self.credit_note,
            "?filterby=not_paid&due=overdue": self.overdue,
            "?search=bakery": issued - self.topup,
            f"?search={self.overdue.name}": self.overdue,
        }
        for query, expected in cases.items():
            with self.subTest(query=query):
                self.assertEqual(self._invoice_ids(base + query), set(expected.ids))
        for sortby in ("date", "duedate", "name", "customer", "residual", "bogus"):
            self.assertEqual(
                self._invoice_ids(f"{base}?sortby={sortby}"), set(issued.ids), sortby
            )

    def test_excel_register_holds_the_filters_invoices_only(self):
        self._login(self.alpha_user)
        response = self.url_open("/my/customers/invoices/xlsx?due=overdue")
        self.assertEqual(response.status_code, 200)
        self.assertIn("spreadsheetml", response.headers["Content-Type"])
        text = _xlsx_text(response.content)
        for invoice in self.overdue | self.partial:
            self.assertIn(invoice.name, text)
        for invoice in (self.not_due, self.paid, self.beta_invoice, self.own_invoice):
            self.assertNotIn(invoice.name, text)
        self.assertNotIn(self.beta_c.name, text)
        text = _xlsx_text(self.url_open("/my/customers/invoices/xlsx").content)
        for invoice in self.alpha_customer_invoices:
            self.assertIn(invoice.name, text)
        self.assertNotIn(self.beta_invoice.name, text)

    def test_reminders_once_a_day_and_refused_for_others_invoices(self):
        self._login(self.alpha_user)
        selected = self.overdue | self.partial | self.paid
        response = self._remind(selected)
        self.assertEqual(response.status_code, 200)
        self.assertIn("2 queued, 1 skipped", response.text)
        self.assertIn("paid, in payment or reversed", response.text)
        mails = self._mails(selected)
        self.assertEqual(
            sorted(mails.mapped("res_id")), sorted((self.overdue | self.partial).ids)
        )
        self.assertEqual(self.overdue.billing_reminder_count, 1)
        self.assertEqual(mails.author_id, self.alpha_user.partner_id)
        # Once a day: the same selection again sends nothing.
        response = self._remind(selected)
        self.assertIn("0 queued, 3 skipped", response.text)
        self.assertIn("already reminded today", response.text)
        self.assertEqual(len(self._mails(selected)), 2)
        self.assertEqual(self.overdue.billing_reminder_count, 1)
        # Another reseller's customer's invoice, the company's own customer's,
        # or a draft: the whole request is refused.
        for foreign in (self.beta_invoice, self.own_invoice, self.draft):
            response = self._remind(self.not_due | foreign)
            self.assertEqual(response.status_code, 200)
            self.assertIn("No reminder was sent", response.text)
            self.assertFalse(self._mails(self.not_due | foreign))
        self.assertEqual(self.beta_invoice.billing_reminder_count, 0)
        # Without the form's CSRF token: refused.
        with self.assertLogs("odoo.http", "WARNING"):
            response = self.url_open(
                REMIND_URL, data={"invoice_ids": [str(self.not_due.id)]}
            )
        self.assertEqual(response.status_code, 400)
        self.assertFalse(self._mails(self.not_due))

    def test_non_resellers_get_404(self):
        for user in (self.customer_user, self.billing_user):
            self._login(user)
            for route in RESELLER_GET_ROUTES:
                url = route.format(customer=self.prepaid_c.id, page=1)
                response = self.url_open(url)
                self.assertEqual(response.status_code, 404, f"{user.login} {url}")
            response = self._remind(self.overdue)
            self.assertEqual(response.status_code, 404)
        self.assertFalse(self._mails(self.overdue))

    def test_home_entries_only_for_resellers(self):
        self._login(self.alpha_user)
        page = self.url_open("/my").text
        self.assertIn('href="/my/customers"', page)
        self.assertIn('href="/my/customers/invoices"', page)
        counters = self.make_jsonrpc_request(
            "/my/counters",
            {
                "counters": [
                    "billing_customer_count",
                    "billing_customer_invoice_count",
                ]
            },
        )
        self.assertEqual(counters["billing_customer_count"], 2)
        self.assertEqual(
            counters["billing_customer_invoice_count"],
            len(self.alpha_customer_invoices),
        )
        self._login(self.customer_user)
        page = self.url_open("/my").text
        self.assertNotIn('href="/my/customers"', page)
        self.assertNotIn('href="/my/customers/invoices"', page)
        counters = self.make_jsonrpc_request(
            "/my/counters", {"counters": ["billing_customer_count"]}
        )
        self.assertEqual(counters["billing_customer_count"], 0)


@tagged("post_install", "-at_install")
class TestBillingResellerPortalSweep(
    ResellerPortalMixin, BillingAccessSweepCommon, HttpCase
):
    """The reseller portal's routes in the access sweep's world: reseller R
    (customer C) never sees reseller R2's customer E, nor any other party; the
    customers and billing staff get 404."""

    def _login(self, user):
        self.authenticate(user.login, user.login)

    def _leaks(self, who, url, text, labels, problems):
        leaks = self._marker_leaks(text, labels)
        if leaks:
            problems.append(f"{who}: GET {url} shows data of {leaks}")

    def test_reseller_never_sees_another_resellers_customers(self):
        user, labels = self.sweep_users["reseller R"]
        self._login(user)
        problems = []
        urls = [
            "/my/customers",
            "/my/customers?sortby=balance",
            "/my/customers?sortby=open",
            f"/my/customers?search={MARKER}",
            f"/my/customers/{self.parties['C'].id}",
            "/my/customers/invoices",
            f"/my/customers/invoices?search={MARKER}",
            *(
                f"/my/customers/invoices?filterby={payment}&due={due}"
                for payment in ("all", "paid", "not_paid", "partial")
                for due in ("all", "overdue", "not_due")
            ),
            "/my/customers/page/2",
            "/my/customers/invoices/page/2",
        ]
        for url in urls:
            response = self.url_open(url)
            if response.status_code != 200:
                problems.append(f"reseller R: GET {url}: {response.status_code}")
            self._leaks("reseller R", url, response.text, labels, problems)
        xlsx = self.url_open("/my/customers/invoices/xlsx")
        self._leaks(
            "reseller R",
            "/my/customers/invoices/xlsx",
            _xlsx_text(xlsx.content),
            labels,
            problems,
        )
        for label, partner in self.parties.items():
            if label == "C":
                continue
            url = f"/my/customers/{partner.id}"
            response = self.url_open(url)
            if response.status_code != 404:
                problems.append(
                    f"reseller R: GET {url} (partner {label}): "
                    f"{response.status_code}, not 404"
                )
        # The positive side: R sees C.
        page = self.url_open("/my/customers").text
        self.assertIn(f"{MARKER}C Ltd", page)
        invoices_c = self.env["account.move"].search(
            [
                ("commercial_partner_id", "=", self.parties["C"].id),
                ("state", "=", "posted"),
                ("move_type", "in", ("out_invoice", "out_refund")),
            ]
        )
        self.assertTrue(invoices_c)
        self.assertEqual(
            self._invoice_ids("/my/customers/invoices"), set(invoices_c.ids)
        )
        # Reminders for E's invoice are refused.
        invoice_e = self._sweep_last_invoice(self.parties["E"])
        response = self._remind(invoice_e)
        if "No reminder was sent" not in response.text or self._mails(invoice_e):
            problems.append(f"reseller R: POST {REMIND_URL} reminded E's invoice")
        self._report(problems)

    def test_customers_and_staff_get_404(self):
        problems = []
        customer = self.parties["C"]
        for who, (user, _labels) in self.sweep_users.items():
            if who == "reseller R":
                continue
            self._login(user)
            for route in RESELLER_GET_ROUTES:
                url = route.format(customer=customer.id, page=1)
                response = self.url_open(url)
                if response.status_code != 404:
                    problems.append(f"{who}: GET {url}: {response.status_code}")
            invoice_c = self._sweep_last_invoice(customer)
            response = self._remind(invoice_c)
            if response.status_code != 404 or self._mails(invoice_c):
                problems.append(f"{who}: POST {REMIND_URL}: {response.status_code}")
        self._report(problems)

    def test_anonymous_is_sent_to_login(self):
        problems = []
        customer = self.parties["C"]
        for route in RESELLER_GET_ROUTES:
            url = route.format(customer=customer.id, page=1)
            response = self.url_open(url, allow_redirects=False)
            location = response.headers.get("Location", "")
            if response.status_code not in (302, 303) or "/web/login" not in location:
                problems.append(
                    f"anonymous: GET {url}: {response.status_code} {location!r}, "
                    "not a redirection to the login"
                )
        invoice_c = self._sweep_last_invoice(customer)
        response = self.url_open(
            REMIND_URL,
            data={"invoice_ids": [str(invoice_c.id)]},
            allow_redirects=False,
        )
        if response.status_code == 200 or self._mails(invoice_c):
            problems.append(f"anonymous: POST {REMIND_URL}: {response.status_code}")
        self._report(problems)
