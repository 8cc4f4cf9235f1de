import base64
import io
import re
from datetime import date
from urllib.parse import urlsplit

import qrcode
from lxml import html
from PIL import Image

from odoo import Command
from odoo.exceptions import AccessError
from odoo.tests import HttpCase, new_test_user, tagged
from odoo.tools.pdf import PdfFileReader

from ..models.account_move import PAYMENT_QR_BORDER, PAYMENT_QR_ERROR_CORRECTION
from .recurring_common import BillingRecurringCommon

INVOICE_REPORT = "account.account_invoices"
PNG_DATA_URI = "data:image/png;base64,"


class BillingInvoiceReportCommon(BillingRecurringCommon):
    """A posted recurring invoice of usage priced finer than a cent, and helpers
    to render the invoice report and read it."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["ir.config_parameter"].set_param(
            "account_payment.enable_portal_payment", True
        )

    def _recurring_invoice(self, post=True):
        """The recurring invoice of October 2026: a fixed plan line and usage of
        two services at unit prices finer than a cent, so that each usage line
        rounds the total of its charges to the currency."""
        schedule = self._schedule(
            line_ids=[
                Command.create(
                    {"product_id": self.plan.id, "quantity": 1, "price_unit": 20.0}
                )
            ]
        )
        # SMS at 0.0033: 7 x 0.0033 = 0.0231, billed 0.02.
        self._usage(
            self.postpaid, self.sms, "2026-10-03 08:00:00", price_unit=0.0033, count=7
        )
        # SMS at 0.0047: 3 x 0.0047 = 0.0141, billed 0.01.
        self._usage(
            self.postpaid, self.sms, "2026-10-12 09:30:00", price_unit=0.0047, count=3
        )
        # Minutes at 0.0125: 3 x 1.5 x 0.0125 = 0.05625, billed 0.06.
        self._usage(
            self.postpaid,
            self.minutes,
            "2026-10-20 17:45:00",
            quantity=1.5,
            price_unit=0.0125,
            count=3,
        )
        self._run()
        invoice = self.env["account.move"].search(
            [("billing_recurring_id", "=", schedule.id)]
        )
        self.assertEqual(len(invoice), 1)
        if post:
            invoice.action_post()
        return invoice

    def _render(self, invoice, user=None):
        """The invoice report of ``invoice`` as an lxml document."""
        Report = self.env["ir.actions.report"]
        if user:
            Report = Report.with_user(user)
        content, report_type = Report._render_qweb_html(INVOICE_REPORT, invoice.ids)
        self.assertEqual(report_type, "html")
        return html.document_fromstring(content)

    def _qr_images(self, document):
        return document.xpath("//img[@data-billing-payment-url]")

    @staticmethod
    def _number(node):
        """The number a cell shows (en_US formatting, currency symbol aside)."""
        return float(re.sub(r"[^\d.\-]", "", node.text_content()))

    def _amount(self, row, kind="billing_amount"):
        """The number of the ``kind`` cell of an appendix row."""
        cells = row.xpath(f".//*[contains(concat(' ', @class, ' '), ' {kind} ')]")
        self.assertEqual(len(cells), 1, kind)
        return self._number(cells[0])

    def _qr_matrix(self, url):
        """The modules (True = dark), quiet zone included, of the payment QR code
        of ``url``."""
        code = qrcode.QRCode(
            error_correction=PAYMENT_QR_ERROR_CORRECTION, border=PAYMENT_QR_BORDER
        )
        code.add_data(url)
        code.make(fit=True)
        return code.get_matrix()

    def _image_matrix(self, data_uri, size):
        """Read a PNG data URI as a QR code of ``size`` x ``size`` modules: the
        colour at the centre of each module."""
        self.assertTrue(data_uri.startswith(PNG_DATA_URI), data_uri[:40])
        image = Image.open(io.BytesIO(base64.b64decode(data_uri[len(PNG_DATA_URI) :])))
        self.assertEqual(image.format, "PNG")
        image = image.convert("L")
        self.assertEqual(image.width, image.height)
        self.assertEqual(image.width % size, 0, "whole pixels per module")
        box = image.width // size
        return [
            [
                image.getpixel((col * box + box // 2, row * box + box // 2)) < 128
                for col in range(size)
            ]
            for row in range(size)
        ]

    def _appendix(self, document):
        """Per service (product id): its charge ids in order, the subtotal row
        and the invoiced row; and the grand total row."""
        appendix = document.xpath("//div[@id='billing_charge_history']")
        self.assertEqual(len(appendix), 1)
        self.assertIn("page-break-before: always", appendix[0].get("style"))
        services, total = {}, None
        current = None
        for row in appendix[0].xpath(".//tbody/tr"):
            kind = row.get("class").split()[-1]
            if kind == "billing_service":
                current = int(row.get("data-billing-product-id"))
                self.assertNotIn(current, services, "one group per service")
                services[current] = {"charges": [], "rows": []}
            elif kind == "billing_charge":
                services[current]["charges"].append(
                    int(row.get("data-billing-charge-id"))
                )
                services[current]["rows"].append(row)
            elif kind == "billing_service_subtotal":
                services[current]["subtotal"] = row
            elif kind == "billing_service_invoiced":
                services[current]["invoiced"] = row
            elif kind == "billing_total":
                total = row
            else:
                self.fail(f"unexpected row {kind}")
        return services, total

    def assertQrEncodes(self, data_uri, url):
        """The QR code image ``data_uri`` holds, module by module, the QR code of
        ``url``."""
        expected = self._qr_matrix(url)
        self.assertEqual(self._image_matrix(data_uri, len(expected)), expected)


@tagged("post_install", "-at_install")
class TestBillingInvoiceReport(BillingInvoiceReportCommon):
    # -------------------------------------------------------------------------
    # Payment QR code
    # -------------------------------------------------------------------------

    def test_qr_code_opens_payment_page_of_unpaid_invoice(self):
        invoice = self._recurring_invoice()
        document = self._render(invoice)
        images = self._qr_images(document)
        self.assertEqual(len(images), 1)
        url = images[0].get("data-billing-payment-url")
        self.assertEqual(url, invoice._billing_payment_url())
        # The invoice's portal page, with its own access token, payment open.
        self.assertEqual(
            url,
            f"{invoice.get_base_url()}/my/invoices/{invoice.id}"
            f"?access_token={invoice.access_token}&payment=True#portal_pay",
        )
        self.assertTrue(invoice.access_token)
        self.assertQrEncodes(images[0].get("src"), url)
        # The comparison tells codes apart: another invoice's token is not this
        # image, though its code has the same size.
        other = url.replace(invoice.access_token, invoice.access_token[::-1])
        other_matrix = self._qr_matrix(other)
        self.assertNotEqual(
            self._image_matrix(images[0].get("src"), len(other_matrix)), other_matrix
        )
        caption = document.xpath("//div[@id='billing_payment_qrcode']")[0]
        self.assertIn("Scan to pay online", caption.text_content())
        self.assertIn(url, caption.text_content())

    def test_qr_code_only_while_payable_online(self):
        invoice = self._recurring_invoice(post=False)
        self.assertEqual(invoice.state, "draft")
        self.assertFalse(self._qr_images(self._render(invoice)), "draft")
        invoice.action_post()
        self._pay(invoice, amount=5.0)
        self.assertEqual(invoice.payment_state, "partial")
        self.assertEqual(len(self._qr_images(self._render(invoice))), 1, "partial")
        self.env["ir.config_parameter"].set_param(
            "account_payment.enable_portal_payment", False
        )
        self.assertFalse(
            self._qr_images(self._render(invoice)), "online payment disabled"
        )
        self.env["ir.config_parameter"].set_param(
            "account_payment.enable_portal_payment", True
        )
        self._pay(invoice)
        self.assertTrue(invoice.currency_id.is_zero(invoice.amount_residual))
        self.assertFalse(self._qr_images(self._render(invoice)), "paid")

        cancelled = self._invoice([(self.service, 1, 30.0)], partner=self.postpaid)
        cancelled.button_draft()
        cancelled.button_cancel()
        self.assertFalse(self._qr_images(self._render(cancelled)), "cancelled")

        bill = self.env["account.move"].create(
            {
                "move_type": "in_invoice",
                "partner_id": self.postpaid.id,
                "invoice_date": "2026-11-01",
                "invoice_line_ids": [
                    Command.create(
                        {
                            "product_id": self.service.id,
                            "price_unit": 30.0,
                            "tax_ids": [Command.clear()],
                        }
                    )
                ],
            }
        )
        bill.action_post()
        self.assertFalse(self._qr_images(self._render(bill)), "vendor bill")

    # -------------------------------------------------------------------------
    # Terms and conditions, customer notes
    # -------------------------------------------------------------------------

    def test_terms_then_customer_notes(self):
        invoice = self._invoice([(self.service, 1, 30.0)], partner=self.postpaid)
        invoice.write(
            {
                "narration": "<p>Terms T-42: payable within 30 days.</p>",
                "billing_customer_notes": "<p>Note N-7: thank you for your trust.</p>",
            }
        )
        document = self._render(invoice)
        terms = document.xpath("//div[@name='comment']")
        notes = document.xpath("//div[@name='billing_customer_notes']")
        self.assertEqual(len(terms), 1)
        self.assertEqual(len(notes), 1)
        self.assertIn("Terms T-42: payable within 30 days.", terms[0].text_content())
        self.assertIn("Note N-7: thank you for your trust.", notes[0].text_content())
        self.assertNotIn("N-7", terms[0].text_content())
        self.assertIn(notes[0], list(terms[0].itersiblings()), "notes after terms")

        invoice.billing_customer_notes = "<p><br></p>"
        document = self._render(invoice)
        self.assertFalse(document.xpath("//div[@name='billing_customer_notes']"))
        self.assertEqual(len(document.xpath("//div[@name='comment']")), 1)

    # -------------------------------------------------------------------------
    # Charge history appendix
    # -------------------------------------------------------------------------

    def test_appendix_lists_every_charge_per_service_with_totals(self):
        invoice = self._recurring_invoice()
        self.assertChargesMatchUsageLines(invoice)
        usage_lines = invoice.invoice_line_ids.filtered("billing_charge_ids")
        self.assertEqual(sum(usage_lines.mapped("price_subtotal")), 0.09)
        self.assertEqual(invoice.amount_untaxed, 20.09)
        charges = self.env["billing.charge"].search(
            [("invoice_line_id", "in", invoice.invoice_line_ids.ids)]
        )
        self.assertEqual(len(charges), 13)

        services, total = self._appendix(self._render(invoice))
        self.assertEqual(set(services), {self.sms.id, self.minutes.id})
        listed = [cid for service in services.values() for cid in service["charges"]]
        self.assertEqual(len(listed), len(set(listed)), "each charge once")
        self.assertEqual(set(listed), set(charges.ids), "every charge")
        for product_id, service in services.items():
            service_charges = charges.browse(service["charges"])
            self.assertEqual(service_charges.product_id.id, product_id)
            self.assertEqual(
                service_charges.mapped("date"), sorted(service_charges.mapped("date"))
            )
            self.assertAlmostEqual(
                self._amount(service["subtotal"], "billing_quantity"),
                sum(service_charges.mapped("quantity")),
                places=6,
            )
            self.assertAlmostEqual(
                self._amount(service["subtotal"]),
                sum(service_charges.mapped("amount")),
                places=6,
            )
            lines = usage_lines.filtered(
                lambda line, p=product_id: line.product_id.id == p
            )
            self.assertAlmostEqual(
                self._amount(service["invoiced"]),
                sum(lines.mapped("price_subtotal")),
                places=2,
            )
        sms, minutes = services[self.sms.id], services[self.minutes.id]
        # Charges shown at usage precision; each usage line rounds its own sum.
        self.assertAlmostEqual(self._amount(sms["subtotal"]), 0.0372, places=6)
        self.assertAlmostEqual(self._amount(sms["invoiced"]), 0.03, places=2)
        self.assertAlmostEqual(self._amount(minutes["subtotal"]), 0.05625, places=6)
        self.assertAlmostEqual(self._amount(minutes["invoiced"]), 0.06, places=2)
        self.assertAlmostEqual(self._amount(total), 0.09, places=2)
        first = charges.browse(minutes["charges"][0])
        cells = [cell.text_content().strip() for cell in minutes["rows"][0].xpath("td")]
        self.assertEqual(cells[2], first.external_ref)
        self.assertEqual(cells[3:], ["1.500000", "0.012500", "0.018750"])
        self.assertIn("2026", cells[0])

    def test_no_appendix_without_charges(self):
        invoice = self._invoice([(self.service, 1, 30.0)], partner=self.postpaid)
        document = self._render(invoice)
        self.assertFalse(document.xpath("//div[@id='billing_charge_history']"))
        self.assertEqual(len(self._qr_images(document)), 1)

    def test_invoicing_user_prints_invoice_with_charges(self):
        clerk = new_test_user(
            self.env,
            login="invoice_clerk",
            groups="account.group_account_invoice",
            company_id=self.company.id,
            company_ids=[Command.set(self.company.ids)],
        )
        invoice = self._recurring_invoice()
        with self.assertRaises(AccessError):
            self.env["billing.charge"].with_user(clerk).search([])
        services, total = self._appendix(self._render(invoice, user=clerk))
        self.assertEqual(sum(len(s["charges"]) for s in services.values()), 13)
        self.assertAlmostEqual(self._amount(total), 0.09, places=2)
        self.assertEqual(len(self._qr_images(self._render(invoice, user=clerk))), 1)


@tagged("post_install", "-at_install")
class TestBillingInvoiceReportPortal(BillingInvoiceReportCommon, HttpCase):
    """What goes through the HTTP server: the portal pages and wkhtmltopdf."""

    def test_portal_invoice_page_shows_report(self):
        invoice = self._recurring_invoice()
        self.assertEqual(invoice.invoice_date, date(2026, 11, 1))
        page = self.url_open(invoice.get_portal_url())
        self.assertEqual(page.status_code, 200)
        self.assertIn(invoice.name, page.text)
        preview = self.url_open(invoice.get_portal_url(report_type="html"))
        self.assertEqual(preview.status_code, 200)
        document = html.document_fromstring(preview.content)
        images = self._qr_images(document)
        self.assertEqual(len(images), 1)
        url = images[0].get("data-billing-payment-url")
        self.assertEqual(url, invoice._billing_payment_url())
        self.assertQrEncodes(images[0].get("src"), url)
        services, total = self._appendix(document)
        self.assertEqual(sum(len(s["charges"]) for s in services.values()), 13)
        self.assertAlmostEqual(self._amount(total), 0.09, places=2)
        # The payment page the code opens answers (on the test server's address).
        target = urlsplit(url)
        payment_page = self.url_open(f"{target.path}?{target.query}")
        self.assertEqual(payment_page.status_code, 200)
        self.assertIn('id="portal_pay"', payment_page.text)

    def test_customer_sees_qr_code_and_charge_history_on_portal(self):
        """The customer, logged in on the portal: the invoice page links to the
        charge history, which downloads as Excel, and its preview shows the
        payment QR code of the PDF; another customer gets neither."""
        invoice = self._recurring_invoice()
        new_test_user(
            self.env,
            login="report_customer",
            groups="base.group_portal",
            partner_id=self.postpaid.id,
        )
        self.authenticate("report_customer", "report_customer")
        page = self.url_open(f"/my/invoices/{invoice.id}")
        self.assertEqual(page.status_code, 200)
        document = html.document_fromstring(page.content)
        links = document.xpath("//a[hasclass('o_billing_charge_history_btn')]")
        self.assertEqual(
            [link.get("href") for link in links],
            [f"/billing/charge_history/{invoice.id}"],
        )
        iframe = document.xpath("//iframe[@id='invoice_html']")[0]
        preview = self.url_open(iframe.get("src"))
        self.assertEqual(preview.status_code, 200)
        images = self._qr_images(html.document_fromstring(preview.content))
        self.assertEqual(len(images), 1)
        self.assertQrEncodes(images[0].get("src"), invoice._billing_payment_url())
        history = self.url_open(links[0].get("href"))
        self.assertEqual(history.status_code, 200)
        self.assertIn("spreadsheetml", history.headers["Content-Type"])
        self.assertTrue(history.content.startswith(b"PK"))
        # Another customer: no page, no history.
        other = self.env["res.partner"].create({"name": "Other Report Customer"})
        new_test_user(
            self.env,
            login="report_other",
            groups="base.group_portal",
            partner_id=other.id,
        )
        self.authenticate("report_other", "report_other")
        response = self.url_open(f"/my/invoices/{invoice.id}", allow_redirects=False)
        self.assertNotEqual(response.status_code, 200)
        self.assertEqual(self.url_open(links[0].get("href")).status_code, 404)

    def test_pdf_has_appendix_page(self):
        # In an HttpCase: wkhtmltopdf fetches the report's stylesheets from the
        # test server, which must see this test's transaction.
        invoice = self._recurring_invoice()
        pdf, report_type = (
            self.env["ir.actions.report"]
            .with_context(force_report_rendering=True)
            ._render_qweb_pdf(INVOICE_REPORT, invoice.ids)
        )
        self.assertEqual(report_type, "pdf")
        self.assertTrue(pdf.startswith(b"%PDF"), pdf[:20])
        self.assertGreaterEqual(
            len(PdfFileReader(io.BytesIO(pdf)).pages), 2, "appendix on its own page"
        )
