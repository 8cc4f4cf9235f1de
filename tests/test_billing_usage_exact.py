from datetime import date
from io import BytesIO

from freezegun import freeze_time
from lxml import html
from openpyxl import load_workbook

from odoo import Command
from odoo.tests import tagged

from .recurring_common import BillingRecurringCommon

INVOICE_REPORT = "account.account_invoices"


class BillingUsageExactCommon(BillingRecurringCommon):
    """Services used in fractions of their unit (data in GB) and priced in
    fractions of a cent, some at prices that include their tax."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        category = cls.env["uom.category"].create({"name": "Data Volume"})
        cls.gb = cls.env["uom.uom"].create(
            {
                "name": "GB",
                "category_id": category.id,
                "uom_type": "reference",
                "rounding": 0.000001,
            }
        )
        cls.data = cls.env["product.product"].create(
            {
                "name": "Mobile Data",
                "type": "service",
                "list_price": 10.0,
                "uom_id": cls.gb.id,
                "uom_po_id": cls.gb.id,
                "taxes_id": [Command.clear()],
            }
        )
        cls.vat_included = cls.env["account.tax"].create(
            {
                "name": "VAT 15% included",
                "amount": 15.0,
                "amount_type": "percent",
                "type_tax_use": "sale",
                "price_include_override": "tax_included",
                "company_id": cls.company.id,
            }
        )
        cls.data_taxed = cls.env["product.product"].create(
            {
                "name": "Roaming Data",
                "type": "service",
                "list_price": 10.0,
                "uom_id": cls.gb.id,
                "uom_po_id": cls.gb.id,
                "taxes_id": [Command.set(cls.vat_included.ids)],
            }
        )
        cls.sms_taxed = cls.env["product.product"].create(
            {
                "name": "Premium SMS",
                "type": "service",
                "list_price": 0.04,
                "taxes_id": [Command.set(cls.vat_included.ids)],
            }
        )

    # -------------------------------------------------------------------------
    # Helpers
    # -------------------------------------------------------------------------

    def _price_digits(self, digits):
        """Set Odoo's Product Price precision (Billing's Price Decimals)."""
        self.env.ref("product.decimal_price").digits = digits

    def assertAmount(self, amount, expected, message=None):
        self.assertEqual(
            self.currency.compare_amounts(amount, expected),
            0,
            message or f"{amount} != {expected}",
        )

    def assertUsageLinesBillCharges(self, invoice):
        """Invariant 4, like for like: every usage line bills the sum of its
        charges rounded once to the currency, on the basis of its unit price
        (taxes included where the price includes them), and its own quantity
        times unit price says so."""
        currency = invoice.currency_id
        usage_lines = invoice.invoice_line_ids.filtered("billing_charge_ids")
        self.assertTrue(usage_lines, "the invoice has usage lines")
        for line in usage_lines:
            charges = line.billing_charge_ids
            self.assertEqual(set(charges.mapped("state")), {"invoiced"})
            expected = currency.round(sum(charges.mapped("amount")))
            included = line.tax_ids and all(line.tax_ids.mapped("price_include"))
            billed = line.price_total if included else line.price_subtotal
            self.assertAmount(billed, expected, f"{line.name}: {billed} != {expected}")
            self.assertAmount(
                line.quantity * line.price_unit,
                expected,
                f"{line.name}: {line.quantity} x {line.price_unit} != {expected}",
            )

    def _line(self, invoice, product, included=False):
        """The usage line (or, ``included``, the allowance line) of ``product``."""
        lines = invoice.invoice_line_ids.filtered(
            lambda line: line.product_id == product and (line.quantity < 0) == included
        )
        self.assertEqual(len(lines), 1, lines.mapped("name"))
        return lines

    def _fractional_data_usage(self, partner, product=None):
        """0.125 + 0.333 + 1.0044 GB at 10.00: 1.4624 GB, 14.624."""
        for quantity in (0.125, 0.333, 1.0044):
            self._usage(
                partner,
                product or self.data,
                "2026-10-12 10:00:00",
                quantity=quantity,
                price_unit=10.0,
            )


@tagged("post_install", "-at_install")
class TestBillingUsageExactRecurring(BillingUsageExactCommon):
    """Recurring invoices bill each group of charges exactly, whatever the
    decimals of its quantity and price, and credit allowances at the exact
    price of what they include."""

    def test_quantity_finer_than_line_precision_is_billed(self):
        schedule = self._schedule()
        self._usage(
            self.postpaid, self.data, "2026-10-03", quantity=0.004, price_unit=1000.0
        )
        self._run()
        invoice = self._invoices(schedule)
        self.assertAmount(invoice.amount_total, 4.0, "0.004 GB at 1,000.00")
        line = self._line(invoice, self.data)
        self.assertEqual(line.billing_charge_ids.state, "invoiced")
        self.assertIn("0.004 GB", line.name)
        self.assertIn("1,000.00", line.name)
        self.assertUsageLinesBillCharges(invoice)

    def test_fractional_quantities_sum_exactly(self):
        schedule = self._schedule()
        self._fractional_data_usage(self.postpaid)
        self._run()
        invoice = self._invoices(schedule)
        self.assertAmount(invoice.amount_total, 14.62, "1.4624 GB at 10.00")
        line = self._line(invoice, self.data)
        self.assertEqual(len(line.billing_charge_ids), 3)
        self.assertIn("1.4624 GB", line.name)
        self.assertIn("10.00", line.name)
        self.assertUsageLinesBillCharges(invoice)

    def test_quantity_and_price_shown_when_the_line_can_show_them(self):
        schedule = self._schedule()
        self._usage(
            self.postpaid, self.data, "2026-10-03", quantity=2.5, price_unit=10.0
        )
        self._usage(self.postpaid, self.sms, "2026-10-03", price_unit=0.0075, count=200)
        self._run()
        invoice = self._invoices(schedule)
        data = self._line(invoice, self.data)
        self.assertEqual((data.quantity, data.price_unit), (2.5, 10.0))
        sms = self._line(invoice, self.sms)
        self.assertEqual((sms.quantity, sms.price_unit), (200, 0.0075))
        self.assertAmount(invoice.amount_total, 25.0 + 1.5)
        self.assertUsageLinesBillCharges(invoice)

    def test_allowance_fully_used_credits_the_usage_exactly(self):
        """Prices kept at 2 decimals: usage at 0.045 and 0.0333 is billed at its
        exact total, and an allowance using it all credits that same total."""
        self._price_digits(2)
        for price, usage in ((0.045, 45.0), (0.0333, 33.3), (0.0075, 7.5)):
            with self.subTest(price=price):
                partner = self._postpaid_customer(f"Allowance {price}")
                schedule = self._schedule(
                    partner,
                    allowance_ids=[
                        Command.create({"product_id": self.sms.id, "quantity": 1000})
                    ],
                )
                self._usage(
                    partner, self.sms, "2026-10-03", price_unit=price, count=1000
                )
                self._run()
                invoice = self._invoices(schedule)
                self.assertAmount(self._line(invoice, self.sms).price_subtotal, usage)
                included = self._line(invoice, self.sms, included=True)
                self.assertAmount(included.price_subtotal, -usage)
                self.assertIn("1,000", included.name)
                self.assertAmount(invoice.amount_total, 0.0, "all of it included")
                self.assertUsageLinesBillCharges(invoice)

    def test_allowance_partly_used_credits_what_it_includes_exactly(self):
        self._price_digits(2)
        cases = (
            # SMS: 1,500 used, 1,000 included.
            (self.sms, 0.0333, 1500, 1.0, 1000, 49.95, 33.3),
            (self.sms, 0.0075, 1500, 1.0, 1000, 11.25, 7.5),
            (self.sms, 0.045, 1500, 1.0, 1000, 67.5, 45.0),
            # Data: 1.4624 GB used, 0.333 GB or 0.5 GB included.
            (self.data, 10.0, 1, None, 0.333, 14.62, 3.33),
            (self.data, 10.0, 1, None, 0.5, 14.62, 5.0),
        )
        for product, price, count, quantity, allowance, usage, credit in cases:
            with self.subTest(product=product.name, price=price, allowance=allowance):
                partner = self._postpaid_customer(f"Partly {price} {allowance}")
                schedule = self._schedule(
                    partner,
                    allowance_ids=[
                        Command.create(
                            {"product_id": product.id, "quantity": allowance}
                        )
                    ],
                )
                if quantity is None:
                    self._fractional_data_usage(partner)
                else:
                    self._usage(
                        partner,
                        product,
                        "2026-10-03",
                        quantity=quantity,
                        price_unit=price,
                        count=count,
                    )
                self._run()
                invoice = self._invoices(schedule)
                self.assertAmount(self._line(invoice, product).price_subtotal, usage)
                included = self._line(invoice, product, included=True)
                self.assertAmount(included.price_subtotal, -credit)
                self.assertAmount(included.quantity * included.price_unit, -credit)
                self.assertAmount(invoice.amount_total, usage - credit)
                self.assertUsageLinesBillCharges(invoice)

    def test_confirm_mode_posts_fully_included_usage(self):
        self._price_digits(2)
        schedule = self._schedule(
            generation_mode="confirm",
            allowance_ids=[
                Command.create({"product_id": self.sms.id, "quantity": 1000})
            ],
        )
        self._usage(self.postpaid, self.sms, "2026-10-03", price_unit=0.045, count=1000)
        run = self._run()
        self.assertEqual(run.state, "done", run.failure_ids.mapped("error"))
        invoice = self._invoices(schedule)
        self.assertEqual(invoice.state, "posted")
        self.assertAmount(invoice.amount_total, 0.0)
        self.assertEqual(schedule.next_date, date(2026, 12, 1))
        self.assertUsageLinesBillCharges(invoice)

    def test_confirm_mode_posts_partly_included_usage(self):
        self._price_digits(2)
        schedule = self._schedule(
            generation_mode="confirm",
            allowance_ids=[
                Command.create({"product_id": self.sms.id, "quantity": 1000})
            ],
        )
        self._usage(
            self.postpaid, self.sms, "2026-10-03", price_unit=0.0333, count=1500
        )
        run = self._run()
        self.assertEqual(run.state, "done", run.failure_ids.mapped("error"))
        invoice = self._invoices(schedule)
        self.assertEqual(invoice.state, "posted")
        self.assertAmount(invoice.amount_total, 49.95 - 33.3)
        self.assertUsageLinesBillCharges(invoice)

    def test_tax_included_prices_bill_the_charges_tax_included(self):
        schedule = self._schedule()
        self._usage(
            self.postpaid, self.sms_taxed, "2026-10-03", price_unit=0.04, count=100
        )
        self._usage(
            self.postpaid,
            self.data_taxed,
            "2026-10-03",
            quantity=0.004,
            price_unit=1000.0,
        )
        self._fractional_data_usage(self.postpaid, self.data_taxed)
        self._run()
        invoice = self._invoices(schedule)
        sms = self._line(invoice, self.sms_taxed)
        self.assertAmount(sms.price_total, 4.0)
        self.assertAmount(sms.price_subtotal, 3.48)
        data = invoice.invoice_line_ids.filtered(
            lambda line: line.product_id == self.data_taxed
        )
        self.assertEqual(
            sorted(data.mapped("price_total")), [4.0, 14.62], "tax included"
        )
        self.assertAmount(invoice.amount_total, 4.0 + 4.0 + 14.62)
        self.assertUsageLinesBillCharges(invoice)

    def test_tax_included_allowance_credits_tax_included(self):
        self._price_digits(2)
        schedule = self._schedule(
            allowance_ids=[
                Command.create({"product_id": self.sms_taxed.id, "quantity": 1000})
            ],
        )
        self._usage(
            self.postpaid, self.sms_taxed, "2026-10-03", price_unit=0.0333, count=1000
        )
        self._run()
        invoice = self._invoices(schedule)
        self.assertAmount(self._line(invoice, self.sms_taxed).price_total, 33.3)
        included = self._line(invoice, self.sms_taxed, included=True)
        self.assertAmount(included.price_total, -33.3)
        self.assertAmount(invoice.amount_total, 0.0)
        self.assertUsageLinesBillCharges(invoice)


@tagged("post_install", "-at_install")
@freeze_time("2026-11-10")
class TestBillingUsageExactInvoiceCreate(BillingUsageExactCommon):
    """Create Invoice bills the listed usage exactly, and shows as its Usage
    Total what the usage lines bill."""

    def _create(self, wizard):
        action = wizard.action_create_invoice()
        self.assertEqual(action["res_model"], "account.move")
        return self.env["account.move"].browse(action["res_id"])

    def test_fractional_quantities_sum_exactly(self):
        self._fractional_data_usage(self.postpaid)
        wizard = self._postpaid_wizard()
        self.assertAmount(wizard.charge_amount, 14.62)
        self.assertAmount(wizard.amount_total, 14.62, "beside a Usage Total of 14.62")
        self.assertAmount(wizard.service_ids.amount, 14.62)
        invoice = self._create(wizard)
        self.assertEqual(invoice.state, "posted")
        self.assertAmount(invoice.amount_total, 14.62)
        self.assertIn("1.4624 GB", self._line(invoice, self.data).name)
        self.assertUsageLinesBillCharges(invoice)

    def test_quantity_finer_than_line_precision_is_billed(self):
        self._usage(
            self.postpaid,
            self.data,
            "2026-10-03 09:00:00",
            quantity=0.004,
            price_unit=1000.0,
        )
        wizard = self._postpaid_wizard()
        self.assertAmount(wizard.charge_amount, 4.0)
        self.assertAmount(wizard.amount_total, 4.0)
        invoice = self._create(wizard)
        self.assertAmount(invoice.amount_total, 4.0)
        self.assertUsageLinesBillCharges(invoice)

    def test_tax_included_prices(self):
        self._usage(
            self.postpaid,
            self.data_taxed,
            "2026-10-03 09:00:00",
            quantity=0.004,
            price_unit=1000.0,
        )
        self._usage(
            self.postpaid,
            self.sms_taxed,
            "2026-10-04 09:00:00",
            price_unit=0.04,
            count=100,
        )
        wizard = self._postpaid_wizard()
        self.assertAmount(wizard.charge_amount, 8.0)
        self.assertAmount(wizard.amount_total, 8.0, "the prices include the tax")
        invoice = self._create(wizard)
        self.assertAmount(invoice.amount_total, 8.0)
        self.assertAmount(invoice.amount_untaxed, 3.48 + 3.48)
        self.assertUsageLinesBillCharges(invoice)

    def test_usage_total_is_what_the_usage_lines_bill(self):
        """Each usage line (a service at one unit price) rounds its own sum
        once: the Usage Total adds up those lines, not the raw sum."""
        for price in (0.004, 0.0041, 0.0042):
            self._usage(
                self.postpaid, self.sms, "2026-10-05 09:00:00", price_unit=price
            )
        wizard = self._postpaid_wizard()
        invoice_total = wizard.amount_total
        invoice = self._create(wizard)
        self.assertAmount(invoice.amount_total, invoice_total)
        self.assertAmount(wizard.charge_amount, invoice.amount_untaxed)
        self.assertAmount(wizard.service_ids.amount, invoice.amount_untaxed)
        self.assertUsageLinesBillCharges(invoice)


@tagged("post_install", "-at_install")
class TestBillingUsageExactHistory(BillingUsageExactCommon):
    """The charge history compares the charges with what the usage lines bill
    on the same basis, and says which."""

    def _history_invoice(self):
        schedule = self._schedule()
        self._usage(
            self.postpaid, self.sms_taxed, "2026-10-03", price_unit=0.04, count=100
        )
        self._usage(self.postpaid, self.sms, "2026-10-03", count=20)
        self._run()
        invoice = self._invoices(schedule)
        invoice.action_post()
        return invoice

    def test_history_invoiced_like_the_charges(self):
        invoice = self._history_invoice()
        history = {
            block["product"]: block for block in invoice._billing_charge_history()
        }
        taxed, plain = history[self.sms_taxed], history[self.sms]
        self.assertAlmostEqual(taxed["amount"], 4.0, places=6)
        self.assertAmount(taxed["invoiced"], 4.0, "charges 4.00, invoiced 4.00")
        self.assertTrue(taxed["taxes_included"])
        self.assertAlmostEqual(plain["amount"], 1.0, places=6)
        self.assertAmount(plain["invoiced"], 1.0)
        self.assertFalse(plain["taxes_included"])

    def test_history_report_labels_the_basis(self):
        invoice = self._history_invoice()
        content, _report_type = self.env["ir.actions.report"]._render_qweb_html(
            INVOICE_REPORT, invoice.ids
        )
        document = html.document_fromstring(content)
        rows = {
            int(row.get("data-billing-product-id")): row
            for row in document.xpath("//tr[@data-billing-product-id]")
        }
        self.assertEqual(set(rows), {self.sms.id, self.sms_taxed.id})
        invoiced = {
            " ".join(row.text_content().split())
            for row in document.xpath(
                "//tr[contains(@class, 'billing_service_invoiced')]"
            )
        }
        self.assertIn("Invoiced for Premium SMS (taxes included) $ 4.00", invoiced)
        self.assertIn("Invoiced for SMS (before taxes) $ 1.00", invoiced)
        total = document.xpath("//tr[contains(@class, 'billing_total')]")
        self.assertEqual(
            " ".join(total[0].text_content().split()),
            "Total of the usage lines (taxes included where the prices include "
            "them) $ 5.00",
        )

    def test_history_xlsx_labels_the_basis(self):
        invoice = self._history_invoice()
        sheet = load_workbook(
            BytesIO(invoice._billing_charge_history_xlsx()), data_only=True
        ).active
        rows = {
            row[0]: row[5]
            for row in sheet.iter_rows(values_only=True)
            if isinstance(row[0], str) and not row[2]
        }
        self.assertAmount(rows["Invoiced Premium SMS (usage lines, taxes included)"], 4)
        self.assertAmount(rows["Invoiced SMS (usage lines, before taxes)"], 1.0)
        self.assertAmount(
            rows[
                "Total invoiced (usage lines, taxes included where the prices "
                "include them)"
            ],
            5.0,
        )
