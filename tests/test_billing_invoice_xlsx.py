import re
from datetime import date, datetime
from io import BytesIO

from freezegun import freeze_time
from openpyxl import load_workbook

from odoo import Command, fields
from odoo.exceptions import UserError
from odoo.tests import HttpCase, new_test_user, tagged

from .recurring_common import BillingRecurringCommon

XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
REGISTER_HEADER = (
    "Number",
    "Customer",
    "Reseller",
    "Invoice Date",
    "Due Date",
    "Due Status",
    "Days Late",
    "Payment Status",
    "Currency",
    "Untaxed",
    "Tax",
    "Total",
    "Amount Due",
)
MONEY_COLUMNS = ("Untaxed", "Tax", "Total", "Amount Due")
# Row (0-based) of the register's column titles; invoices follow it.
REGISTER_HEADER_ROW = 3
# Row (0-based) of the charge history's column titles.
HISTORY_HEADER_ROW = 4
USD_FORMAT = '"$"#,##0.00'
EUR_FORMAT = '#,##0.00 "€"'


def open_sheet(content, formulas=False):
    """The first sheet of an xlsx file, as a reader sees it: the stored values
    of formulas, or the formulas themselves."""
    return load_workbook(BytesIO(content), data_only=not formulas).active


def sheet_rows(sheet):
    return list(sheet.iter_rows(values_only=True))


class BillingInvoiceXlsxCommon(BillingRecurringCommon):
    """Invoices of every kind for the Excel reports: taxed, partially paid,
    paid, a credit note, a recurring invoice of usage, a draft."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.vat = cls.env["account.tax"].create(
            {
                "name": "VAT 20%",
                "amount": 20.0,
                "amount_type": "percent",
                "type_tax_use": "sale",
                "company_id": cls.company.id,
            }
        )
        cls.consulting = cls.env["product.product"].create(
            {
                "name": "Consulting",
                "type": "service",
                "list_price": 100.0,
                "taxes_id": [Command.set(cls.vat.ids)],
            }
        )
        cls.reseller = cls.env["res.partner"].create(
            {
                "name": "Reseller Partner",
                "is_company": True,
                "is_billing_reseller": True,
            }
        )
        cls.resold = cls._postpaid_customer(
            "Resold Customer", billing_reseller_id=cls.reseller.id
        )
        cls.usage_customer = cls._postpaid_customer("Usage Customer")

    def _manual_invoice(
        self, partner, lines, due=None, move_type="out_invoice", company=None, **vals
    ):
        """A manual draft invoice; ``lines`` are (product, quantity, price,
        taxes)."""
        Move = self.env["account.move"]
        if company:
            Move = Move.with_company(company)
        return Move.create(
            {
                "move_type": move_type,
                "partner_id": partner.id,
                "invoice_date": "2026-11-01",
                "invoice_date_due": due or "2026-11-01",
                "invoice_line_ids": [
                    Command.create(
                        {
                            "product_id": product.id,
                            "quantity": quantity,
                            "price_unit": price,
                            "tax_ids": [Command.set(taxes.ids)],
                        }
                    )
                    for product, quantity, price, taxes in lines
                ],
                **vals,
            }
        )

    def _usage_invoice(self, partner=None, **schedule_vals):
        """The posted recurring invoice of October 2026 for ``partner``: SMS at
        two prices, voice minutes and a monthly plan of 20."""
        partner = partner or self.usage_customer
        schedule = self._schedule(
            partner=partner,
            line_ids=[
                Command.create(
                    {"product_id": self.plan.id, "quantity": 1, "price_unit": 20.0}
                )
            ],
            **schedule_vals,
        )
        self._usage(partner, self.sms, "2026-10-03 08:00:00", count=30)
        self._usage(partner, self.sms, "2026-10-20 09:30:00", price_unit=0.04, count=10)
        self._usage(partner, self.minutes, "2026-10-31 23:59:59", quantity=12.5)
        self._run()
        invoice = self.env["account.move"].search(
            [("billing_recurring_id", "=", schedule.id)]
        )
        invoice.action_post()
        return invoice

    def _register(self, invoices, user=None, **context):
        """Run *Download Invoice Report* as the list does (as ``user``), return
        the register it stored."""
        action = self.env.ref(
            "prepaid_postpaid_billing.account_move_action_billing_download_register"
        )
        if user:
            action = action.with_user(user)
        context = {
            "active_model": "account.move",
            "active_ids": invoices.ids,
            "active_id": invoices[:1].id,
            **context,
        }
        result = action.with_context(**context).run()
        self.assertEqual(result["type"], "ir.actions.act_url")
        match = re.fullmatch(r"/billing/invoice_register/(\d+)", result["url"])
        self.assertTrue(match, f"a short URL, not the ids: {result['url']}")
        return self.env["billing.invoice.register"].browse(int(match.group(1)))


@tagged("post_install", "-at_install")
class TestBillingInvoiceXlsx(BillingInvoiceXlsxCommon):
    # -------------------------------------------------------------------------
    # Invoice register
    # -------------------------------------------------------------------------

    def _register_invoices(self):
        taxed = self._manual_invoice(
            self.postpaid, [(self.consulting, 2, 100.0, self.vat)], due="2026-12-01"
        )
        partial = self._manual_invoice(
            self.resold, [(self.service, 1, 500.0, self.vat.browse())], due="2026-12-31"
        )
        paid = self._manual_invoice(
            self.postpaid, [(self.service, 1, 80.0, self.vat.browse())]
        )
        refund = self._manual_invoice(
            self.postpaid,
            [(self.consulting, 1, 50.0, self.vat)],
            move_type="out_refund",
        )
        (taxed | partial | paid | refund).action_post()
        self._pay(partial, amount=200.0)
        self._pay(paid)
        usage = self._usage_invoice()
        draft = self._manual_invoice(
            self.resold, [(self.service, 3, 10.0, self.vat.browse())]
        )
        return taxed, partial, paid, refund, usage, draft

    def test_register_rows_formats_and_totals(self):
        self.assertEqual(self.currency.name, "USD", "the formats checked are USD's")
        taxed, partial, paid, refund, usage, draft = self._register_invoices()
        invoices = taxed | partial | paid | refund | usage | draft
        self.assertEqual(usage.amount_untaxed, 1.5 + 0.4 + 1.25 + 20.0)
        with freeze_time("2026-12-11"):
            content = self.env["billing.invoice.register.xlsx"]._generate_xlsx(
                invoices, scope="Selected invoices"
            )
        sheet = open_sheet(content)
        rows = sheet_rows(sheet)
        self.assertIn(self.company.name, rows[0][0])
        self.assertIn("6 invoices", rows[1][0])
        self.assertIn("Selected invoices", rows[1][0])
        self.assertEqual(rows[REGISTER_HEADER_ROW], REGISTER_HEADER)
        self.assertEqual(sheet.freeze_panes, "B5")
        self.assertEqual(sheet.auto_filter.ref, f"A4:M{REGISTER_HEADER_ROW + 7}")
        first = REGISTER_HEADER_ROW + 1
        body = rows[first : first + 6]
        by_number = {row[0]: row for row in body}
        self.assertEqual(
            set(by_number), {*(invoices - draft).mapped("name"), "Draft Invoice"}
        )
        nov1 = datetime(2026, 11, 1)
        self.assertEqual(
            by_number[taxed.name],
            (
                taxed.name,
                "Postpaid One",
                None,
                nov1,
                datetime(2026, 12, 1),
                "Overdue",
                10,
                "Not Paid",
                "USD",
                200.0,
                40.0,
                240.0,
                240.0,
            ),
        )
        self.assertEqual(
            by_number[partial.name],
            (
                partial.name,
                "Resold Customer",
                "Reseller Partner",
                nov1,
                datetime(2026, 12, 31),
                "Not Due",
                None,
                "Partially Paid",
                "USD",
                500.0,
                0.0,
                500.0,
                300.0,
            ),
        )
        paid_row = by_number[paid.name]
        self.assertEqual(paid_row[5:7], (None, None), "a paid invoice is not due")
        self.assertIn(paid_row[7], ("Paid", "In Payment"))
        self.assertEqual(paid_row[9:], (80.0, 0.0, 80.0, 0.0))
        self.assertEqual(
            by_number[refund.name][9:], (-50.0, -10.0, -60.0, -60.0), "credit note"
        )
        self.assertEqual(by_number[usage.name][9:], (23.15, 0.0, 23.15, 23.15))
        self.assertEqual(
            by_number[usage.name][4:7],
            (
                datetime.combine(usage.invoice_date_due, datetime.min.time()),
                "Overdue",
                (date(2026, 12, 11) - usage.invoice_date_due).days,
            ),
        )
        draft_row = by_number["Draft Invoice"]
        self.assertEqual(draft_row[5:8], (None, None, "Draft"))
        self.assertEqual(draft_row[9:], (30.0, 0.0, 30.0, 30.0))
        # Money cells in the currency's format, dates as dates.
        money_cols = [REGISTER_HEADER.index(label) + 1 for label in MONEY_COLUMNS]
        for row in range(first + 1, first + 7):
            for col in money_cols:
                self.assertEqual(sheet.cell(row, col).number_format, USD_FORMAT)
            self.assertEqual(sheet.cell(row, 4).number_format, "yyyy-mm-dd")
        # The totals row: the sums of the rows, stored for readers that do not
        # compute formulas, and formulas for those that do.
        totals = rows[first + 6]
        self.assertEqual(totals[0], "Total")
        self.assertEqual(totals[8], "USD")
        expected = {
            "Untaxed": 200 + 500 + 80 - 50 + 23.15 + 30,
            "Tax": 40 - 10,
            "Total": 240 + 500 + 80 - 60 + 23.15 + 30,
            "Amount Due": 240 + 300 + 0 - 60 + 23.15 + 30,
        }
        for label in MONEY_COLUMNS:
            index = REGISTER_HEADER.index(label)
            self.assertAlmostEqual(totals[index], expected[label], places=2)
            self.assertAlmostEqual(
                totals[index], sum(row[index] for row in body), places=2
            )
            self.assertEqual(sheet.cell(first + 7, index + 1).number_format, USD_FORMAT)
        self.assertEqual(len(rows), first + 7, "nothing after the totals")
        formulas = open_sheet(content, formulas=True)
        self.assertEqual(formulas.cell(first + 7, 10).value, "=SUM(J5:J10)")
        self.assertEqual(formulas.cell(first + 7, 13).value, "=SUM(M5:M10)")

    def test_register_totals_per_currency(self):
        eur = self.setup_other_currency("EUR")
        usd_invoices = self._manual_invoice(
            self.postpaid, [(self.service, 1, 100.0, self.vat.browse())]
        ) | self._manual_invoice(
            self.resold, [(self.consulting, 1, 50.0, self.vat)], due="2026-12-31"
        )
        eur_invoice = self._manual_invoice(
            self.postpaid,
            [(self.service, 2, 1000.0, self.vat.browse())],
            currency_id=eur.id,
        )
        invoices = usd_invoices | eur_invoice
        invoices.action_post()
        content = self.env["billing.invoice.register.xlsx"]._generate_xlsx(invoices)
        sheet = open_sheet(content)
        rows = sheet_rows(sheet)
        first = REGISTER_HEADER_ROW + 1
        eur_row = next(
            index
            for index, row in enumerate(rows[first : first + 3], start=first)
            if row[0] == eur_invoice.name
        )
        self.assertEqual(rows[eur_row][8], "EUR")
        self.assertEqual(rows[eur_row][11], 2000.0, "in the invoice's currency")
        self.assertEqual(sheet.cell(eur_row + 1, 12).number_format, EUR_FORMAT)
        totals = {row[0]: row for row in rows[first + 3 :]}
        self.assertEqual(set(totals), {"Total EUR", "Total USD"})
        self.assertEqual(totals["Total EUR"][9:], (2000.0, 0.0, 2000.0, 2000.0))
        self.assertEqual(totals["Total USD"][9:], (150.0, 10.0, 160.0, 160.0))
        formulas = sheet_rows(open_sheet(content, formulas=True))
        eur_total = next(row for row in formulas if row[0] == "Total EUR")
        self.assertEqual(eur_total[11], '=SUMIF(I5:I7,"EUR",L5:L7)')
        eur_total_row = next(
            index for index, row in enumerate(rows, start=1) if row[0] == "Total EUR"
        )
        self.assertEqual(sheet.cell(eur_total_row, 12).number_format, EUR_FORMAT)

    def test_register_labels_in_user_language(self):
        self.env["res.lang"]._activate_lang("fr_FR")
        invoice = self._manual_invoice(
            self.postpaid, [(self.service, 1, 10.0, self.vat.browse())]
        )
        invoice.action_post()
        expected = dict(
            invoice._fields["status_in_payment"]._description_selection(
                self.env(context={"lang": "fr_FR"})
            )
        )["not_paid"]
        content = (
            self.env["billing.invoice.register.xlsx"]
            .with_context(lang="fr_FR")
            ._generate_xlsx(invoice)
        )
        rows = sheet_rows(open_sheet(content))
        self.assertEqual(rows[REGISTER_HEADER_ROW + 1][7], expected)

    # -------------------------------------------------------------------------
    # Download Invoice Report: selection or every invoice of the filter
    # -------------------------------------------------------------------------

    def test_selection_exports_the_selected_invoices(self):
        invoices = self.env["account.move"].concat(
            *(
                self._manual_invoice(
                    self.resold, [(self.service, 1, 10.0 * (i + 1), self.vat.browse())]
                )
                for i in range(5)
            )
        )
        domain = [("partner_id", "=", self.resold.id)]
        register = self._register(invoices[1:3], active_domain=domain)
        self.assertEqual(register.scope, "selection")
        self.assertEqual(register._get_invoices(), invoices[1:3])
        rows = sheet_rows(open_sheet(register._generate_xlsx()))
        self.assertIn("2 invoices", rows[1][0])
        self.assertEqual(rows[REGISTER_HEADER_ROW + 3][0], "Total")
        self.assertEqual(rows[REGISTER_HEADER_ROW + 3][11], 20.0 + 30.0)

    def test_select_all_exports_every_invoice_of_the_filter(self):
        """With *select all*, the web client sends the first
        ``web.active_ids_limit`` ids of the filter and its domain: every invoice
        of the domain is exported."""
        self.env["ir.config_parameter"].set_param("web.active_ids_limit", "3")
        invoices = self.env["account.move"].concat(
            *(
                self._manual_invoice(
                    self.resold, [(self.service, 1, 10.0 * (i + 1), self.vat.browse())]
                )
                for i in range(5)
            )
        )
        self._manual_invoice(
            self.postpaid, [(self.service, 1, 999.0, self.vat.browse())]
        )
        domain = [
            ("partner_id", "=", self.resold.id),
            ("move_type", "=", "out_invoice"),
        ]
        sent = self.env["account.move"].search(domain, limit=3)
        register = self._register(sent, active_domain=domain)
        self.assertEqual(register.scope, "filter")
        self.assertEqual(register._get_invoices(), invoices.sorted("id"))
        rows = sheet_rows(open_sheet(register._generate_xlsx()))
        first = REGISTER_HEADER_ROW + 1
        self.assertEqual(
            sorted(row[11] for row in rows[first : first + 5]),
            [10.0, 20.0, 30.0, 40.0, 50.0],
        )
        self.assertIn("5 invoices", rows[1][0])
        self.assertEqual(rows[first + 5][0], "Total")
        self.assertEqual(rows[first + 5][11], 10.0 + 20.0 + 30.0 + 40.0 + 50.0)
        # Three hand-picked invoices (as many as the limit) that are not the
        # first three of the filter stay a selection.
        picked = invoices[2:]
        self.assertNotEqual(set(picked.ids), set(sent.ids))
        register = self._register(picked, active_domain=domain)
        self.assertEqual(register.scope, "selection")
        self.assertEqual(register._get_invoices(), picked.sorted("id"))

    def test_register_action_refuses_empty_selection(self):
        with self.assertRaisesRegex(UserError, "Select the invoices"):
            self.env["account.move"].action_billing_download_register()

    # -------------------------------------------------------------------------
    # Charge history
    # -------------------------------------------------------------------------

    def test_charge_history_lists_every_charge_with_totals(self):
        invoice = self._usage_invoice(
            allowance_ids=[Command.create({"product_id": self.sms.id, "quantity": 5})]
        )
        usage_lines = invoice.invoice_line_ids.filtered("billing_charge_ids")
        charges = usage_lines.billing_charge_ids
        self.assertEqual(len(charges), 41)
        self.assertEqual(invoice.billing_charge_count, 41)
        usage_total = sum(usage_lines.mapped("price_subtotal"))
        self.assertAlmostEqual(usage_total, 1.5 + 0.4 + 1.25)
        self.assertAlmostEqual(
            invoice.amount_untaxed, usage_total - 0.25 + 20.0, msg="allowance, plan"
        )
        content = invoice._billing_charge_history_xlsx()
        sheet = open_sheet(content)
        rows = sheet_rows(sheet)
        self.assertIn(invoice.name, rows[0][0])
        self.assertIn("Usage Customer", rows[1][0])
        self.assertIn("Period:", rows[2][0])
        self.assertEqual(
            rows[HISTORY_HEADER_ROW],
            (
                "Date",
                "Description",
                "External Reference",
                "Quantity",
                "Unit Price",
                "Amount",
            ),
        )
        # Read the blocks back: a service, its charges, its subtotal and what
        # its usage lines invoice.
        blocks, block, grand = [], None, {}
        for index, row in enumerate(rows[HISTORY_HEADER_ROW + 1 :], start=1):
            label = row[0]
            if row[2]:
                block["charges"].append(row)
                block["charge_rows"].append(HISTORY_HEADER_ROW + index)
            elif isinstance(label, str) and label.startswith("Subtotal "):
                block["subtotal"] = row
            elif isinstance(label, str) and label.startswith("Invoiced "):
                block["invoiced"] = row[5]
            elif label in (
                "Total of the charges",
                "Total invoiced (usage lines, before taxes)",
            ):
                grand[label] = row[5]
            elif label:
                block = {"service": label, "charges": [], "charge_rows": []}
                blocks.append(block)
        self.assertEqual([b["service"] for b in blocks], ["SMS", "Voice Minutes"])
        refs = [row[2] for b in blocks for row in b["charges"]]
        self.assertEqual(len(refs), len(set(refs)), "every charge listed once")
        self.assertEqual(set(refs), set(charges.mapped("external_ref")))
        for block in blocks:
            service_charges = charges.filtered(
                lambda c, name=block["service"]: c.product_id.name == name
            )
            self.assertEqual(len(block["charges"]), len(service_charges))
            quantity = sum(row[3] for row in block["charges"])
            amount = sum(row[5] for row in block["charges"])
            self.assertAlmostEqual(block["subtotal"][3], quantity)
            self.assertAlmostEqual(block["subtotal"][5], amount, places=6)
            self.assertAlmostEqual(
                block["subtotal"][5], sum(service_charges.mapped("amount")), places=6
            )
            self.assertAlmostEqual(
                block["invoiced"],
                sum(
                    usage_lines.filtered(
                        lambda line, s=service_charges: line.product_id == s.product_id
                    ).mapped("price_subtotal")
                ),
                places=2,
            )
        sms = blocks[0]
        self.assertEqual(sms["subtotal"][3], 40)
        self.assertAlmostEqual(sms["subtotal"][5], 1.9, places=6)
        self.assertAlmostEqual(sms["invoiced"], 1.9, places=2)
        self.assertAlmostEqual(blocks[1]["subtotal"][3], 12.5)
        self.assertAlmostEqual(
            grand["Total invoiced (usage lines, before taxes)"], usage_total, 2
        )
        self.assertAlmostEqual(grand["Total of the charges"], usage_total, 6)
        # Charge rows: dates, and amounts in the currency at usage precision.
        first_sms = sms["charge_rows"][0] + 1
        self.assertEqual(sheet.cell(first_sms, 1).value, datetime(2026, 10, 3, 8))
        self.assertEqual(sheet.cell(first_sms, 5).number_format, '"$"#,##0.00####')
        self.assertEqual(sheet.cell(first_sms, 5).value, 0.05)
        formulas = open_sheet(content, formulas=True)
        subtotal_row = sms["charge_rows"][-1] + 2
        self.assertEqual(
            formulas.cell(subtotal_row, 6).value,
            f"=SUM(F{sms['charge_rows'][0] + 1}:F{sms['charge_rows'][-1] + 1})",
        )

    def test_charge_history_matches_the_history_helper(self):
        invoice = self._usage_invoice()
        history = invoice._billing_charge_history()
        rows = sheet_rows(open_sheet(invoice._billing_charge_history_xlsx()))
        subtotals = [row for row in rows if str(row[0]).startswith("Subtotal ")]
        self.assertEqual(
            [(row[3], round(row[5], 6)) for row in subtotals],
            [(block["quantity"], round(block["amount"], 6)) for block in history],
        )

    def test_query_count_does_not_grow_with_invoices_or_charges(self):
        def queries(generate):
            self.env.flush_all()
            self.env.invalidate_all()
            before = self.env.cr.sql_log_count
            generate()
            return self.env.cr.sql_log_count - before

        def posted_invoices(count, offset):
            moves = self.env["account.move"].concat(
                *(
                    self._manual_invoice(
                        self._postpaid_customer(
                            f"Volume {offset + index}",
                            billing_reseller_id=self.reseller.id
                            if index % 2
                            else False,
                        ),
                        [(self.consulting, 1, 10.0 + index, self.vat)],
                    )
                    for index in range(count)
                )
            )
            moves.action_post()
            return moves

        Register = self.env["billing.invoice.register.xlsx"]
        few, many = posted_invoices(3, 0), posted_invoices(15, 100)
        queries(lambda: Register._generate_xlsx(few))  # warm the caches
        small = queries(lambda: Register._generate_xlsx(few))
        large = queries(lambda: Register._generate_xlsx(many))
        self.assertLessEqual(large, small, f"{large} queries for 15, {small} for 3")

        def usage_invoice(name, count):
            partner = self._postpaid_customer(name)
            self._schedule(partner=partner)
            self._usage(partner, self.sms, "2026-10-03", count=count)
            self._usage(partner, self.minutes, "2026-10-04", count=count)
            self._run()
            return self.env["account.move"].search([("partner_id", "=", partner.id)])

        few, many = usage_invoice("Few Charges", 3), usage_invoice("Many Charges", 300)
        self.assertEqual(many.billing_charge_count, 600)
        queries(few._billing_charge_history_xlsx)  # warm the caches
        small = queries(few._billing_charge_history_xlsx)
        large = queries(many._billing_charge_history_xlsx)
        self.assertLessEqual(large, small, f"{large} queries for 600, {small} for 6")

    def test_charge_history_download_action(self):
        invoice = self._usage_invoice()
        action = invoice.with_user(
            self.billing_user
        ).action_billing_download_charge_history()
        self.assertEqual(
            action,
            {
                "type": "ir.actions.act_url",
                "url": f"/billing/charge_history/{invoice.id}",
                "target": "download",
            },
        )
        self.assertEqual(
            invoice._billing_charge_history_filename(),
            "charges-{}.xlsx".format(invoice.name.replace("/", "-")),
        )
        manual = self._manual_invoice(
            self.postpaid, [(self.service, 1, 10.0, self.vat.browse())]
        )
        self.assertEqual(manual.billing_charge_count, 0)
        with self.assertRaisesRegex(UserError, "bills no usage records"):
            manual.action_billing_download_charge_history()


@tagged("post_install", "-at_install")
class TestBillingInvoiceXlsxDownload(BillingInvoiceXlsxCommon, HttpCase):
    """The downloads over HTTP: as the user, with their access rights."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.internal_user = new_test_user(
            cls.env,
            login="xlsx_internal",
            groups="base.group_user",
            company_id=cls.company.id,
            company_ids=[Command.set(cls.company.ids)],
        )
        cls.usage_contact = cls.env["res.partner"].create(
            {"name": "Usage Contact", "parent_id": cls.usage_customer.id}
        )
        cls.usage_portal = new_test_user(
            cls.env,
            login="xlsx_portal",
            groups="base.group_portal",
            partner_id=cls.usage_contact.id,
            company_id=cls.company.id,
            company_ids=[Command.set(cls.company.ids)],
        )
        cls.other_portal = new_test_user(
            cls.env,
            login="xlsx_other_portal",
            groups="base.group_portal",
            partner_id=cls.env["res.partner"]
            .create({"name": "Other Contact", "parent_id": cls.resold.id})
            .id,
            company_id=cls.company.id,
            company_ids=[Command.set(cls.company.ids)],
        )

    def _get(self, url, login):
        self.authenticate(login, login)
        return self.url_open(url)

    def assertXlsx(self, response, filename):
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.headers["Content-Type"], XLSX_MIMETYPE)
        self.assertIn(filename, response.headers["Content-Disposition"])
        return sheet_rows(open_sheet(response.content))

    def assertNotFound(self, response):
        self.assertEqual(response.status_code, 404)
        self.assertNotEqual(response.headers.get("Content-Type"), XLSX_MIMETYPE)

    def test_register_download_only_for_its_user(self):
        invoices = self._manual_invoice(
            self.postpaid, [(self.service, 1, 10.0, self.vat.browse())]
        ) | self._manual_invoice(
            self.resold, [(self.service, 1, 32.5, self.vat.browse())]
        )
        invoices.action_post()
        register = self._register(invoices, user=self.billing_user)
        url = f"/billing/invoice_register/{register.id}"
        rows = self.assertXlsx(
            self._get(url, "wallet_user"),
            f"invoices-{fields.Date.context_today(register).isoformat()}.xlsx",
        )
        self.assertEqual(rows[REGISTER_HEADER_ROW], REGISTER_HEADER)
        first = REGISTER_HEADER_ROW + 1
        self.assertEqual(
            {row[0] for row in rows[first : first + 2]}, set(invoices.mapped("name"))
        )
        self.assertEqual(rows[first + 2][11], 42.5)
        # Another billing user, a user without invoices, nobody logged in.
        self.assertNotFound(self._get(url, "wallet_manager"))
        self.assertNotFound(self._get(url, "xlsx_internal"))
        self.assertNotFound(self._get(url, "xlsx_portal"))
        self.assertNotFound(
            self._get(f"/billing/invoice_register/{register.id + 1000}", "wallet_user")
        )
        self.logout()
        response = self.url_open(url, allow_redirects=False)
        self.assertIn(response.status_code, (302, 303))
        self.assertIn("/web/login", response.headers["Location"])

    def test_register_applies_record_rules(self):
        """The register is searched as its user: invoices of a company the
        user does not belong to are left out."""
        other_company = self.setup_other_company()["company"]
        foreign = self._manual_invoice(
            self.postpaid,
            [(self.service, 1, 500.0, self.vat.browse())],
            company=other_company,
        )
        own = self._manual_invoice(
            self.postpaid, [(self.service, 1, 10.0, self.vat.browse())]
        )
        register = (
            self.env["billing.invoice.register"]
            .with_user(self.billing_user)
            .create({"domain": [("id", "in", (own | foreign).ids)]})
        )
        rows = self.assertXlsx(
            self._get(f"/billing/invoice_register/{register.id}", "wallet_user"),
            "invoices-",
        )
        self.assertEqual(rows[REGISTER_HEADER_ROW + 1][0], own.display_name)
        self.assertEqual(rows[REGISTER_HEADER_ROW + 2][0], "Total")

    def test_charge_history_download(self):
        invoice = self._usage_invoice()
        url = f"/billing/charge_history/{invoice.id}"
        filename = "charges-{}.xlsx".format(invoice.name.replace("/", "-"))
        for login in ("wallet_user", "xlsx_portal"):
            rows = self.assertXlsx(self._get(url, login), filename)
            refs = {row[2] for row in rows[HISTORY_HEADER_ROW + 1 :] if row[2]}
            self.assertEqual(
                refs,
                set(invoice.invoice_line_ids.billing_charge_ids.mapped("external_ref")),
                login,
            )
            total = next(
                row
                for row in rows
                if row[0] == "Total invoiced (usage lines, before taxes)"
            )
            self.assertAlmostEqual(total[5], 1.5 + 0.4 + 1.25, places=2)
        self.assertNotFound(self._get(url, "xlsx_other_portal"))
        self.assertNotFound(self._get(url, "xlsx_internal"))
        manual = self._manual_invoice(
            self.usage_customer, [(self.service, 1, 10.0, self.vat.browse())]
        )
        manual.action_post()
        self.assertNotFound(
            self._get(f"/billing/charge_history/{manual.id}", "wallet_user")
        )
        self.assertNotFound(self._get("/billing/charge_history/999999", "wallet_user"))

    def test_portal_invoice_page_links_the_charge_history(self):
        invoice = self._usage_invoice()
        manual = self._manual_invoice(
            self.usage_customer, [(self.service, 1, 10.0, self.vat.browse())]
        )
        manual.action_post()
        link = f'href="/billing/charge_history/{invoice.id}"'
        page = self._get(f"/my/invoices/{invoice.id}", "xlsx_portal")
        self.assertEqual(page.status_code, 200)
        self.assertIn(link, page.text)
        page = self._get(f"/my/invoices/{manual.id}", "xlsx_portal")
        self.assertEqual(page.status_code, 200)
        self.assertNotIn("/billing/charge_history/", page.text)
        # Opened with its access token by someone not logged in: no link to a
        # download that needs a login.
        self.logout()
        page = self.url_open(invoice._get_share_url(redirect=False))
        self.assertEqual(page.status_code, 200)
        self.assertNotIn(link, page.text)
