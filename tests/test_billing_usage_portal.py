"""My Usage on the portal (issue 15, point 1): a portal customer's usage
records, filtered, sorted and paged, with the totals of each service and CSV
and Excel exports of the whole filter; a reseller's view of each of its
customers' usage."""

import csv
import io
import os
import re
import tempfile
from datetime import date
from html import unescape
from unittest.mock import patch

from openpyxl import load_workbook
from werkzeug.urls import url_encode

from odoo import Command
from odoo.tests import HttpCase, new_test_user, tagged
from odoo.tools import float_round

from odoo.addons.prepaid_postpaid_billing.controllers import usage_portal

from .recurring_common import BillingRecurringCommon
from .test_billing_reseller_portal import RESELLER_GROUP, ResellerPortalMixin

USAGE_URL = "/my/usage"
CSV_HEADER = [
    "Date",
    "Service",
    "Product",
    "Description",
    "Quantity",
    "Unit Price",
    "Amount",
    "Currency",
    "Status",
    "Invoice",
]


@tagged("post_install", "-at_install")
class TestBillingUsagePortal(ResellerPortalMixin, BillingRecurringCommon, HttpCase):
    """Customer Kiosk (of reseller Alpha) has usage of SMS and minutes in
    October (invoiced) and November (pending), and usage at fractions of a
    cent; customer Zeta (of reseller Beta) has usage of a service of its own."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.alpha = cls._usage_partner("Alpha Reseller", is_billing_reseller=True)
        cls.beta = cls._usage_partner("Beta Reseller", is_billing_reseller=True)
        cls.kiosk = cls._usage_partner("Kiosk", billing_reseller_id=cls.alpha.id)
        cls.zeta = cls._usage_partner("Zeta", billing_reseller_id=cls.beta.id)
        cls.alpha_user = cls._portal_user("usage_alpha", cls.alpha, RESELLER_GROUP)
        cls.beta_user = cls._portal_user("usage_beta", cls.beta, RESELLER_GROUP)
        cls.kiosk_user = cls._portal_user("usage_kiosk", cls.kiosk)
        cls.zeta_user = cls._portal_user("usage_zeta", cls.zeta)
        cls.employee = new_test_user(
            cls.env,
            login="usage_employee",
            groups="base.group_user",
            company_id=cls.company.id,
            company_ids=[Command.set(cls.company.ids)],
        )
        cls.data = cls.env["product.product"].create(
            {
                "name": "Data GB",
                "type": "service",
                "list_price": 0.0075,
                "taxes_id": [Command.clear()],
            }
        )
        cls.zeta_only = cls.env["product.product"].create(
            {
                "name": "Zeta Fax",
                "type": "service",
                "list_price": 1.0,
                "taxes_id": [Command.clear()],
            }
        )
        cls.october = cls._send(
            cls.kiosk,
            [
                (cls.sms, "2026-10-03 12:00:00", 10, 0.05, "Kiosk SMS October"),
                (cls.sms, "2026-10-20 12:00:00", 4, 0.05, "Kiosk SMS late October"),
                (cls.minutes, "2026-10-10 12:00:00", 3, 0.1, "Kiosk call October"),
            ],
        )
        cls.invoice = cls._invoice_october(cls.kiosk)
        cls.november = cls._send(
            cls.kiosk,
            [
                (cls.sms, "2026-11-02 12:00:00", 7, 0.05, "Kiosk SMS November"),
                (cls.minutes, "2026-11-05 12:00:00", 2.5, 0.1, "Kiosk call November"),
            ],
        )
        # Usage at fractions of a cent: 0.004 GB at 0.0075 costs 0.00003.
        cls.fractions = cls._send(
            cls.kiosk,
            [
                (cls.data, f"2026-11-{day:02d} 12:00:00", 0.004, 0.0075, "Kiosk data")
                for day in (6, 7, 8)
            ],
        )
        cls.zeta_charges = cls._send(
            cls.zeta,
            [(cls.zeta_only, "2026-11-03 12:00:00", 1, 2.0, "ZETA-SECRET fax")],
        )
        cls.kiosk_charges = cls.october | cls.november | cls.fractions

    # -------------------------------------------------------------------------
    # Fixtures and helpers
    # -------------------------------------------------------------------------

    @classmethod
    def _usage_partner(cls, name, **vals):
        return cls.env["res.partner"].create(
            {
                "name": name,
                "is_company": True,
                "email": f"{name.split()[0].lower()}@example.com",
                "billing_mode": "postpaid",
                **vals,
            }
        )

    @classmethod
    def _send(cls, partner, records):
        """Ingest ``records`` of ``partner`` (product, date, quantity, price,
        description); returns the charges created."""
        vals = []
        for product, when, quantity, price, name in records:
            cls.ref_counter += 1
            vals.append(
                {
                    "partner_id": partner.id,
                    "product_id": product.id,
                    "date": when,
                    "quantity": quantity,
                    "price_unit": price,
                    "name": name,
                    "external_ref": f"usage-portal-{cls.ref_counter}",
                }
            )
        result = cls.env["billing.charge"].ingest(vals)
        assert not result["rejected"], result["rejected"]
        return cls.env["billing.charge"].search(
            [("external_ref", "in", [v["external_ref"] for v in vals])]
        )

    @classmethod
    def _invoice_october(cls, partner):
        Wizard = cls.env["billing.invoice.create"]
        wizard = Wizard.create(
            {
                "customer_type": "postpaid",
                "partner_id": partner.id,
                "date_from": date(2026, 10, 1),
                "date_to": date(2026, 10, 31),
            }
        )
        wizard.action_fetch_charges()
        wizard.action_create_invoice()
        invoice = cls.env["account.move"].search(
            [("partner_id", "=", partner.id), ("move_type", "=", "out_invoice")],
            order="id desc",
            limit=1,
        )
        assert invoice.state == "posted", invoice.state
        return invoice

    def _login(self, user):
        self.authenticate(user.login, user.login)

    def _get(self, url, status=200, **params):
        if params:
            url = f"{url}?{url_encode(params)}"
        response = self.url_open(url)
        self.assertEqual(response.status_code, status, response.url)
        return response

    def _rows(self, page):
        """Ids of the usage records the page lists, in order."""
        return [int(i) for i in re.findall(r'data-charge-id="(\d+)"', page)]

    def _errors(self, page):
        match = re.search(
            r'o_billing_usage_error"[^>]*>(.*?)</div>\s*</div>', page, re.DOTALL
        )
        return unescape(re.sub(r"<[^>]+>", " ", match.group(1))) if match else ""

    def _totals(self, page):
        """{service: (records, quantity, amount)} of the totals table."""
        table = re.search(
            r'<table class="[^"]*o_billing_usage_totals[^"]*">(.*?)</table>',
            page,
            re.DOTALL,
        ).group(1)
        totals = {}
        for row in re.findall(
            r'<tr class="o_billing_usage_total">(.*?)</tr>', table, re.DOTALL
        ):
            cells = [
                unescape(cell).strip()
                for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.DOTALL)
            ]
            totals[cells[0]] = tuple(cells[1:])
        return totals

    def _amount(self, amount):
        return self.env["billing.wallet"]._format_amount_exact(amount, self.currency)

    def _quantity(self, quantity):
        return self.env["billing.charge"]._format_usage_quantity(quantity)

    def _csv(self, url, **params):
        response = self._get(url, **params)
        self.assertTrue(response.headers["Content-Type"].startswith("text/csv"))
        return list(csv.reader(io.StringIO(response.content.decode())))

    # -------------------------------------------------------------------------
    # The customer's page
    # -------------------------------------------------------------------------

    def test_page_lists_own_usage_only_newest_first(self):
        self._login(self.kiosk_user)
        page = self._get(USAGE_URL).text
        expected = self.kiosk_charges.sorted(lambda c: (c.date, c.id), reverse=True)
        self.assertEqual(self._rows(page), expected.ids)
        self.assertNotIn("ZETA-SECRET", page)
        self.assertNotIn("Zeta Fax", page, "another's service is not offered")
        for form_hook in (
            '<form class="o_billing_usage_filter',
            'name="date_from"',
            'name="date_to"',
            '<select id="billing_usage_service" class="form-select" name="service_id"',
            '<select id="billing_usage_state" class="form-select" name="state"',
            'class="btn btn-primary o_billing_usage_filter_apply"',
        ):
            self.assertIn(form_hook, page)
        self._login(self.zeta_user)
        page = self._get(USAGE_URL).text
        self.assertEqual(self._rows(page), self.zeta_charges.ids)
        self.assertNotIn("Kiosk", page)

    def test_filters_by_dates_service_and_state(self):
        self._login(self.kiosk_user)

        def listed(**params):
            page = self._get(USAGE_URL, **params).text
            self.assertFalse(self._errors(page), params)
            return set(self._rows(page))

        october = listed(date_from="2026-10-01", date_to="2026-10-31")
        self.assertEqual(october, set(self.october.ids))
        self.assertEqual(
            listed(date_from="2026-10-10", date_to="2026-10-10"),
            set(self.october.filtered(lambda c: c.product_id == self.minutes).ids),
            "one day: both ends included",
        )
        self.assertEqual(
            listed(date_from="2026-11-06"), set(self.fractions.ids), "from a date"
        )
        self.assertEqual(
            listed(service_id=str(self.sms.id)),
            set(self.kiosk_charges.filtered(lambda c: c.product_id == self.sms).ids),
        )
        self.assertEqual(listed(state="invoiced"), set(self.october.ids))
        self.assertEqual(
            listed(state="pending"), set((self.november | self.fractions).ids)
        )
        self.assertEqual(
            listed(state="pending", service_id=str(self.minutes.id)),
            set(self.november.filtered(lambda c: c.product_id == self.minutes).ids),
        )
        self.assertEqual(listed(state="debited"), set())

    def test_wrong_filters_are_said_and_not_applied(self):
        self._login(self.kiosk_user)
        everything = set(self.kiosk_charges.ids)
        for params, message in (
            ({"date_from": "2026-13-45"}, "is not a date"),
            ({"date_to": "yesterday"}, "is not a date"),
            ({"date_from": "2026-11-30", "date_to": "2026-11-01"}, "wrong order"),
            ({"service_id": str(self.zeta_only.id)}, "no usage of this service"),
            ({"service_id": "abc"}, "no usage of this service"),
            ({"state": "stolen"}, "does not exist"),
        ):
            page = self._get(USAGE_URL, **params).text
            self.assertIn(message, self._errors(page), params)
            self.assertEqual(set(self._rows(page)), everything, params)
            self.assertNotIn("ZETA-SECRET", page)
        # An export of a wrong filter goes back to the page, which says why.
        response = self._get(f"{USAGE_URL}/export/csv", date_from="nope")
        self.assertIn("is not a date", self._errors(response.text))

    def test_sortings(self):
        self._login(self.kiosk_user)
        charges = self.kiosk_charges
        cases = {
            "date_asc": charges.sorted(lambda c: (c.date, c.id)),
            "date_desc": charges.sorted(lambda c: (c.date, c.id), reverse=True),
            "amount": charges.sorted(lambda c: (-c.amount, -c.date.timestamp(), -c.id)),
        }
        for sortby, expected in cases.items():
            page = self._get(USAGE_URL, sortby=sortby).text
            self.assertEqual(self._rows(page), expected.ids, sortby)
        page = self._get(USAGE_URL, sortby="service").text
        services = [
            self.env["billing.charge"].browse(i).product_id for i in self._rows(page)
        ]
        # Grouped by service: each service's records together.
        seen = []
        for service in services:
            if not seen or seen[-1] != service:
                self.assertNotIn(service, seen, "a service's records are together")
                seen.append(service)
        self.assertEqual(len(seen), 3)

    def test_pager_of_80(self):
        many = self._send(
            self.kiosk,
            [
                (self.sms, "2026-12-01 12:00:00", 1, 0.05, f"Kiosk bulk {index}")
                for index in range(80)
            ],
        )
        everything = self.kiosk_charges | many
        self._login(self.kiosk_user)
        first = self._rows(self._get(USAGE_URL, sortby="date_asc").text)
        self.assertTrue(first)
        second_page = self._get(f"{USAGE_URL}/page/2", sortby="date_asc").text
        second = self._rows(second_page)
        self.assertEqual(len(first), 80)
        self.assertEqual(len(second), len(everything) - 80)
        self.assertEqual(
            first + second, everything.sorted(lambda c: (c.date, c.id)).ids
        )
        self.assertIn('href="/my/usage?sortby=date_asc"', second_page, "page 1")
        first_page = self._get(USAGE_URL, sortby="date_asc").text
        self.assertIn('href="/my/usage/page/2?sortby=date_asc"', first_page)
        # The filter follows the pager.
        page = self._get(f"{USAGE_URL}/page/2", date_from="2026-11-01").text
        self.assertIn(
            'href="/my/usage?date_from=2026-11-01&amp;sortby=date_desc"', page
        )
        november = self.november | self.fractions
        self.assertEqual(len(self._rows(page)), len(november), "85 from November")

    def test_totals_per_service_are_the_sums_of_the_whole_filter(self):
        many = self._send(
            self.kiosk,
            [
                (self.sms, "2026-11-20 12:00:00", 3, 0.0125, f"Kiosk bulk {index}")
                for index in range(85)
            ],
        )
        self._login(self.kiosk_user)
        for params in ({}, {"state": "pending"}, {"date_from": "2026-11-01"}):
            page = self._get(USAGE_URL, **params).text
            self.assertEqual(len(self._rows(page)), 80, "the page shows 80 only")
            charges = self.env["billing.charge"].search(
                [("partner_id", "=", self.kiosk.id)]
            )
            if params.get("state"):
                charges = charges.filtered(lambda c: c.state == "pending")
            if params.get("date_from"):
                charges = charges.filtered(lambda c: c.date.month == 11)
            self.assertTrue(many <= charges)
            expected = {}
            for product in charges.product_id:
                mine = charges.filtered(lambda c, p=product: c.product_id == p)
                expected[product.display_name] = (
                    str(len(mine)),
                    self._quantity(sum(mine.mapped("quantity"))),
                    self._amount(float_round(sum(mine.mapped("amount")), 6)),
                )
            self.assertEqual(self._totals(page), expected, params)
            grand = re.search(
                r'o_billing_usage_grand_total_amount">([^<]*)<', page
            ).group(1)
            self.assertEqual(
                unescape(grand),
                self._amount(float_round(sum(charges.mapped("amount")), 6)),
            )

    def test_totals_at_one_read_group(self):
        self._login(self.kiosk_user)
        Charge = type(self.env["billing.charge"])
        original = Charge._read_group
        calls = []

        def counting(records, domain, groupby=(), aggregates=(), *args, **kwargs):
            calls.append(tuple(aggregates))
            return original(records, domain, groupby, aggregates, *args, **kwargs)

        with patch.object(Charge, "_read_group", counting):
            self._get(USAGE_URL)
        totals = [call for call in calls if "amount:sum" in call]
        self.assertEqual(len(totals), 1, calls)

    def test_exact_amounts_at_fractions_of_a_cent(self):
        self._login(self.kiosk_user)
        page = self._get(USAGE_URL, service_id=str(self.data.id)).text
        self.assertEqual(set(self._rows(page)), set(self.fractions.ids))
        for charge in self.fractions:
            self.assertEqual(float_round(charge.amount, 6), 0.00003)
        amounts = re.findall(r'o_billing_usage_amount">([^<]*)<', page)
        self.assertEqual([unescape(a) for a in amounts], [self._amount(0.00003)] * 3)
        self.assertIn("0.00003", amounts[0])
        quantities = re.findall(r'o_billing_usage_quantity">([^<]*)<', page)
        self.assertEqual(quantities, ["0.004"] * 3)
        prices = re.findall(r'o_billing_usage_price">([^<]*)<', page)
        self.assertIn("0.0075", unescape(prices[0]))
        totals = self._totals(page)
        self.assertEqual(
            totals, {"Data GB": ("3", "0.012", self._amount(0.00009))}, totals
        )
        self.assertIn("0.00009", totals["Data GB"][2])
        rows = self._csv(f"{USAGE_URL}/export/csv", service_id=str(self.data.id))
        self.assertEqual(
            [row[4:7] for row in rows[1:]], [["0.004", "0.0075", "0.00003"]] * 3
        )

    def test_invoiced_records_link_to_their_invoice(self):
        self._login(self.kiosk_user)
        page = self._get(USAGE_URL).text
        links = re.findall(
            r'<a class="o_billing_usage_invoice" href="([^"]+)">([^<]*)</a>', page
        )
        self.assertEqual(len(links), len(self.october))
        self.assertEqual(
            set(links), {(f"/my/invoices/{self.invoice.id}", self.invoice.name)}
        )
        self.assertEqual(self.october.invoice_id, self.invoice)
        self._get(f"/my/invoices/{self.invoice.id}")

    # -------------------------------------------------------------------------
    # Exports
    # -------------------------------------------------------------------------

    def test_csv_export_of_the_whole_filter(self):
        many = self._send(
            self.kiosk,
            [
                (self.sms, "2026-11-21 12:00:00", 1, 0.05, f"Kiosk bulk {index}")
                for index in range(90)
            ],
        )
        self._login(self.kiosk_user)
        page = self._get(USAGE_URL, state="pending").text
        link = unescape(
            re.search(
                r'class="[^"]*o_billing_usage_export_csv" href="([^"]+)"', page
            ).group(1)
        )
        self.assertEqual(link, "/my/usage/export/csv?state=pending")
        xlsx_link = unescape(
            re.search(
                r'class="[^"]*o_billing_usage_export_xlsx" href="([^"]+)"', page
            ).group(1)
        )
        self.assertEqual(xlsx_link, "/my/usage/export/xlsx?state=pending")
        # Read in batches of 7: every record once, whatever the batches.
        with patch.object(usage_portal, "USAGE_EXPORT_BATCH", 7):
            response = self._get(link)
        self.assertNotIn("Content-Length", response.headers, "streamed")
        rows = list(csv.reader(io.StringIO(response.content.decode())))
        pending = self.november | self.fractions | many
        self.assertEqual(rows[0], CSV_HEADER)
        self.assertEqual(len(rows) - 1, len(pending))
        self.assertEqual(
            sorted(row[3] for row in rows[1:]), sorted(pending.mapped("name"))
        )
        self.assertNotIn("ZETA-SECRET", response.text)
        # Invoiced October, with its invoice and the exact figures.
        rows = self._csv(f"{USAGE_URL}/export/csv", date_to="2026-10-31")
        self.assertEqual(len(rows) - 1, len(self.october))
        first = self.october.sorted("id")[0]
        self.assertEqual(
            rows[1],
            [
                "2026-10-03 12:00:00",
                "SMS",
                "",
                "Kiosk SMS October",
                "10",
                "0.05",
                "0.5",
                self.currency.name,
                "Invoiced",
                self.invoice.name,
            ],
        )
        self.assertEqual(first.name, "Kiosk SMS October")

    def test_xlsx_export_opens_with_every_record(self):
        self._login(self.kiosk_user)
        files = []
        mkstemp = tempfile.mkstemp

        def recording_mkstemp(*args, **kwargs):
            handle, path = mkstemp(*args, **kwargs)
            if kwargs.get("prefix") == "billing_usage_":
                files.append(path)  # not xlsxwriter's own
            return handle, path

        with (
            patch.object(usage_portal, "USAGE_EXPORT_BATCH", 4),
            patch.object(usage_portal.tempfile, "mkstemp", recording_mkstemp),
        ):
            response = self._get(
                f"{USAGE_URL}/export/xlsx", date_from="2026-10-01", date_to="2026-11-30"
            )
        self.assertEqual(response.content[:2], b"PK")
        workbook = load_workbook(io.BytesIO(response.content), read_only=True)
        sheet = workbook.worksheets[0]
        rows = list(sheet.iter_rows(values_only=True))
        self.assertEqual(list(rows[0]), CSV_HEADER)
        self.assertEqual(len(rows) - 1, len(self.kiosk_charges))
        data_rows = [row for row in rows[1:] if row[1] == "Data GB"]
        self.assertEqual(len(data_rows), 3)
        self.assertEqual(
            [row[4:7] for row in data_rows], [(0.004, 0.0075, 0.00003)] * 3
        )
        self.assertNotIn("ZETA-SECRET", repr(rows))
        # The temporary file it was written to is gone.
        self.assertEqual(len(files), 1)
        self.assertFalse(os.path.exists(files[0]))

    # -------------------------------------------------------------------------
    # Resellers, others, the portal home
    # -------------------------------------------------------------------------

    def test_reseller_sees_its_customers_usage_only(self):
        base = f"/my/customers/{self.kiosk.id}/usage"
        self._login(self.alpha_user)
        page = self._get(base).text
        self.assertEqual(set(self._rows(page)), set(self.kiosk_charges.ids))
        self.assertIn(f'href="{base}/export/csv?"', page)
        page = self._get(base, state="invoiced").text
        self.assertEqual(set(self._rows(page)), set(self.october.ids))
        page = self._get(f"{base}/page/1", state="invoiced").text
        self.assertEqual(set(self._rows(page)), set(self.october.ids))
        rows = self._csv(f"{base}/export/csv", state="invoiced")
        self.assertEqual(len(rows) - 1, len(self.october))
        response = self._get(f"{base}/export/xlsx")
        self.assertEqual(response.content[:2], b"PK")
        customer_page = self._get(f"/my/customers/{self.kiosk.id}").text
        self.assertIn(f'href="{base}"', customer_page)
        # Another reseller's customer, the reseller's own usage page of it.
        zeta = f"/my/customers/{self.zeta.id}/usage"
        for url in (
            zeta,
            f"{zeta}/page/2",
            f"{zeta}/export/csv",
            f"{zeta}/export/xlsx",
        ):
            response = self._get(url, status=404)
            self.assertNotIn("ZETA-SECRET", response.text)
        self._login(self.beta_user)
        for url in (base, f"{base}/export/csv", f"{base}/export/xlsx"):
            self._get(url, status=404)
        # A customer is not a reseller.
        self._login(self.kiosk_user)
        for url in (base, f"{base}/export/csv"):
            self._get(url, status=404)

    def test_home_counter_and_entry_for_billing_customers_only(self):
        def counters(user):
            self._login(user)
            return self.make_jsonrpc_request(
                "/my/counters", {"counters": ["billing_usage_count"]}
            )["billing_usage_count"]

        self.assertEqual(counters(self.kiosk_user), len(self.kiosk_charges))
        self.assertEqual(counters(self.zeta_user), 1)
        self.assertEqual(counters(self.alpha_user), 0, "the reseller's own usage")
        self.assertEqual(counters(self.employee), 0)
        self._login(self.employee)
        for url in (USAGE_URL, f"{USAGE_URL}/export/csv", f"{USAGE_URL}/export/xlsx"):
            self._get(url, status=404)
        self._login(self.kiosk_user)
        home = self._get("/my").text
        self.assertIn('data-placeholder_count="billing_usage_count"', home)
