import base64
import importlib.util
import io

from lxml import html
from PIL import Image

from odoo.tests import Form, HttpCase, tagged
from odoo.tools.misc import file_path

from .wallet_common import BillingWalletCommon

INVOICE_REPORT = "account.report_invoice"
HEADER = "//div[contains(concat(' ', normalize-space(@class), ' '), ' header ')]"
FOOTER = "//div[contains(concat(' ', normalize-space(@class), ' '), ' footer ')]"


def _png(colour):
    """A small PNG of one colour, base64-encoded as an Image field stores it."""
    stream = io.BytesIO()
    Image.new("RGB", (40, 20), colour).save(stream, format="PNG")
    return base64.b64encode(stream.getvalue())


def _data_uri(image):
    return "data:image/png;base64," + image.decode()


class BillingResellerWhiteLabelCommon(BillingWalletCommon):
    """A company with its logo, tagline and legal details, and a reseller with
    its logo and invoice contact, and a customer of the reseller."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["ir.config_parameter"].set_param(
            "account_payment.enable_portal_payment", True
        )
        cls.company.write(
            {
                "name": "Mothership Billing Ltd",
                "logo": _png("red"),
                "vat": "BE0477472701",
                "company_registry": "REG-445566",
                "street": "1 Company Street",
                "city": "Companytown",
                "email": "info@mothership.example.com",
                "phone": "+32 2 000 00 00",
                "website": "https://mothership.example.com",
                "report_header": "Mothership tagline",
            }
        )
        cls.company.alias_domain_id = cls.env["mail.alias.domain"].create(
            {"name": "wl.example", "catchall_alias": "catchall"}
        )
        cls.reseller = cls.env["res.partner"].create(
            {
                "name": "Acme Telecom",
                "is_company": True,
                "is_billing_reseller": True,
                "billing_invoice_prefix": "ACME",
                "billing_invoice_logo": _png("blue"),
                "street": "7 Reseller Road",
                "city": "Reseller City",
                "email": "hello@acme.example.com",
                "phone": "+1 555 0100",
            }
        )
        cls.reseller_contact = cls.env["res.partner"].create(
            {
                "name": "Jane Billing",
                "parent_id": cls.reseller.id,
                "type": "invoice",
                "street": "9 Invoice Lane",
                "city": "Billville",
                "email": "billing@acme.example.com",
                "phone": "+1 555 0199",
            }
        )
        cls.reseller.billing_invoice_contact_id = cls.reseller_contact
        cls.resold = cls.env["res.partner"].create(
            {
                "name": "Resold Customer",
                "is_company": True,
                "email": "resold@example.com",
                "billing_mode": "postpaid",
                "billing_reseller_id": cls.reseller.id,
            }
        )

    # -------------------------------------------------------------------------
    # Helpers
    # -------------------------------------------------------------------------

    def _render(self, invoice):
        content, report_type = self.env["ir.actions.report"]._render_qweb_html(
            INVOICE_REPORT, invoice.ids
        )
        self.assertEqual(report_type, "html")
        return html.document_fromstring(content)

    def _one(self, document, xpath):
        nodes = document.xpath(xpath)
        self.assertEqual(len(nodes), 1, xpath)
        return nodes[0]

    @staticmethod
    def _text(node):
        return " ".join(node.text_content().split())

    def _assert_reseller_header(self, document):
        """The header names the reseller, its invoice contact, the contact's
        address, email and phone, shows the reseller's logo, and nothing of
        the company's brand; the footer names the company with its legal
        numbers."""
        header = self._one(document, HEADER)
        text = self._text(header)
        for expected in (
            "Acme Telecom",
            "Jane Billing",
            "9 Invoice Lane",
            "Billville",
            "billing@acme.example.com",
            "+1 555 0199",
        ):
            self.assertIn(expected, text)
        for company_brand in (
            "Mothership",
            "1 Company Street",
            "info@mothership.example.com",
            "7 Reseller Road",
        ):
            self.assertNotIn(company_brand, text)
        self.assertEqual(
            header.xpath(".//img/@src"),
            [_data_uri(self.reseller.billing_invoice_logo)],
        )
        self.assertNotIn(_data_uri(self.company.logo), html.tostring(document).decode())
        footer = self._text(self._one(document, FOOTER))
        for legal in (
            "Mothership Billing Ltd",
            "1 Company Street",
            "BE0477472701",
            "REG-445566",
        ):
            self.assertIn(legal, footer)
        self.assertNotIn("Mothership tagline", footer)

    def _assert_company_header(self, document):
        header = self._one(document, HEADER)
        text = self._text(header)
        self.assertIn("Mothership Billing Ltd", text)
        self.assertIn("1 Company Street", text)
        self.assertNotIn("Acme Telecom", text)
        self.assertEqual(header.xpath(".//img/@src"), [_data_uri(self.company.logo)])
        self.assertFalse(document.xpath("//*[hasclass('billing_legal_issuer')]"))
        self.assertNotIn("Acme", html.tostring(document).decode())

    def _mails(self, invoice):
        return self.env["mail.mail"].search(
            [("model", "=", "account.move"), ("res_id", "=", invoice.id)]
        )

    def _send_and_print(self, invoice):
        """Send ``invoice`` by email with Send & Print; the email is kept in
        the queue to be read."""
        wizard = (
            self.env["account.move.send.wizard"]
            .with_context(active_model="account.move", active_ids=invoice.ids)
            .create({"sending_methods": ["email"]})
        )
        template = wizard.mail_template_id
        wizard.with_context(mail_notify_force_send=False).action_send_and_print()
        mail = self._mails(invoice)
        self.assertEqual(len(mail), 1)
        return template, mail


@tagged("post_install", "-at_install")
class TestBillingResellerWhiteLabel(BillingResellerWhiteLabelCommon):
    """The invoices of a reseller's customers, in PDF and by email, show the
    reseller as the seller; the company, the legal issuer, stays in the PDF
    footer. The company's own customers' invoices are unchanged."""

    def test_seller_of_invoices(self):
        invoice = self._invoice([(self.service, 1, 30.0)], partner=self.resold)
        self.assertEqual(invoice._billing_seller(), self.reseller)
        values = invoice._billing_seller_values()
        self.assertEqual(values["name"], "Acme Telecom")
        self.assertEqual(values["contact"], self.reseller_contact)
        self.assertEqual(values["logo"], self.reseller.billing_invoice_logo)
        self.assertEqual(invoice._billing_seller_name(), "Acme Telecom")
        self.assertIn("billing@acme.example.com", invoice._billing_email_from())
        # A contact of the customer invoiced: the same seller.
        contact = self.env["res.partner"].create(
            {"name": "Resold Buyer", "parent_id": self.resold.id}
        )
        by_contact = self._invoice([(self.service, 1, 30.0)], partner=contact)
        self.assertEqual(by_contact._billing_seller(), self.reseller)
        # The company's own customers: no seller but the company.
        own = self._invoice([(self.service, 1, 30.0)])
        self.assertFalse(own._billing_seller())
        self.assertEqual(own._billing_seller_values(), {})
        self.assertEqual(own._billing_seller_name(), "Mothership Billing Ltd")
        # Without an invoice contact: the reseller itself.
        self.reseller.billing_invoice_contact_id = False
        values = invoice._billing_seller_values()
        self.assertEqual(values["contact"], self.reseller)
        self.assertEqual(values["email"], "hello@acme.example.com")

    def test_reseller_invoice_pdf_shows_the_reseller_as_seller(self):
        invoice = self._invoice([(self.service, 1, 30.0)], partner=self.resold)
        self.assertTrue(invoice.name.startswith("ACME/"), invoice.name)
        document = self._render(invoice)
        self._assert_reseller_header(document)
        # The invoice itself and the online payment QR code are still there.
        self.assertIn(invoice.name, self._text(document.body))
        self.assertTrue(document.xpath("//div[@id='billing_payment_qrcode']"))

    def test_reseller_credit_note_pdf_shows_the_reseller_as_seller(self):
        invoice = self._invoice([(self.service, 1, 30.0)], partner=self.resold)
        refund = invoice._reverse_moves()
        refund.action_post()
        self._assert_reseller_header(self._render(refund))

    def test_every_layout_shows_the_reseller_header(self):
        invoice = self._invoice([(self.service, 1, 30.0)], partner=self.resold)
        own = self._invoice([(self.service, 1, 30.0)])
        layouts = self.env["report.layout"].search([])
        self.assertGreaterEqual(len(layouts), 7)
        self.assertIn(
            self.env.ref("web.external_layout_boxed"), layouts.view_id, "boxed"
        )
        for layout in layouts:
            with self.subTest(layout=layout.view_id.key):
                self.company.external_report_layout_id = layout.view_id
                self._assert_reseller_header(self._render(invoice))
                self._assert_company_header(self._render(own))

    def test_reseller_without_logo_shows_no_logo(self):
        self.reseller.billing_invoice_logo = False
        invoice = self._invoice([(self.service, 1, 30.0)], partner=self.resold)
        document = self._render(invoice)
        header = self._one(document, HEADER)
        self.assertIn("Acme Telecom", self._text(header))
        self.assertFalse(header.xpath(".//img"))
        self.assertNotIn(_data_uri(self.company.logo), html.tostring(document).decode())

    def test_own_customer_invoice_keeps_the_company_header(self):
        own = self._invoice([(self.service, 1, 30.0)])
        document = self._render(own)
        self._assert_company_header(document)
        self.assertIn("Mothership tagline", self._text(self._one(document, HEADER)))

    def test_send_and_print_email_of_a_reseller_invoice(self):
        invoice = self._invoice([(self.service, 1, 30.0)], partner=self.resold)
        template, mail = self._send_and_print(invoice)
        self.assertEqual(
            template,
            self.env.ref("prepaid_postpaid_billing.mail_template_reseller_invoice"),
        )
        self.assertEqual(mail.subject, f"Acme Telecom Invoice (Ref {invoice.name})")
        self.assertIn("billing@acme.example.com", mail.email_from)
        self.assertIn("Jane Billing", mail.email_from)
        self.assertEqual(
            mail.reply_to,
            f'"Acme Telecom {invoice.name}" <catchall@wl.example>',
        )
        body = html.fromstring(mail.body_html)
        text = self._text(body)
        self.assertIn("from Acme Telecom.", text)
        self.assertIn("billing@acme.example.com", text)
        self.assertIn("+1 555 0199", text)
        footer = self._one(body, "//*[hasclass('billing_seller_footer')]")
        self.assertIn("billing@acme.example.com", self._text(footer))
        for company_brand in (
            "Mothership",
            "info@mothership.example.com",
            "+32 2 000 00 00",
            "mothership.example.com",
        ):
            self.assertNotIn(company_brand, mail.body_html)
        # The invoice's PDF (white-label, see the report tests) is attached.
        self.assertEqual(
            mail.attachment_ids.mapped("raw"), [invoice.invoice_pdf_report_id.raw]
        )

    def test_send_and_print_email_of_an_own_invoice_is_unchanged(self):
        own = self._invoice([(self.service, 1, 30.0)])
        template, mail = self._send_and_print(own)
        self.assertEqual(template, self.env.ref("account.email_template_edi_invoice"))
        self.assertEqual(
            mail.subject, f"Mothership Billing Ltd Invoice (Ref {own.name})"
        )
        self.assertIn(
            "from Mothership Billing Ltd.", self._text(html.fromstring(mail.body_html))
        )
        self.assertIn("info@mothership.example.com", mail.body_html)
        self.assertEqual(
            mail.reply_to,
            f'"Mothership Billing Ltd {own.name}" <catchall@wl.example>',
        )
        self.assertNotIn("billing_seller_footer", mail.body_html)
        self.assertNotIn("Acme", mail.body_html)

    def test_light_layout_names_the_reseller_without_the_company_logo(self):
        invoice = self._invoice([(self.service, 1, 30.0)], partner=self.resold)
        own = self._invoice([(self.service, 1, 30.0)])
        for move in (invoice, own):
            move.with_context(mail_notify_force_send=False).message_post(
                body="Your invoice",
                partner_ids=move.partner_id.ids,
                message_type="comment",
                subtype_xmlid="mail.mt_comment",
                email_layout_xmlid="mail.mail_notification_light",
            )
        seller_body = self._mails(invoice).body_html
        own_body = self._mails(own).body_html
        logo = f"/logo.png?company={self.company.id}"
        self.assertIn(logo, own_body)
        self.assertIn("Mothership Billing Ltd", own_body)
        self.assertNotIn(logo, seller_body)
        self.assertNotIn("Mothership", seller_body)
        self.assertIn("Acme Telecom", seller_body)
        self.assertIn("billing@acme.example.com", seller_body)

    def test_payment_reminder_of_a_reseller_invoice(self):
        invoice = self._invoice([(self.service, 1, 30.0)], partner=self.resold)
        own = self._invoice([(self.service, 1, 30.0)])
        wizard = Form(
            self.env["billing.reminder.send"].with_context(
                active_model="account.move", active_ids=(invoice + own).ids
            )
        ).save()
        wizard.action_send()
        mail = self._mails(invoice)
        self.assertEqual(len(mail), 1)
        self.assertEqual(
            mail.subject, f"Acme Telecom: payment reminder for invoice {invoice.name}"
        )
        self.assertIn("billing@acme.example.com", mail.email_from)
        self.assertEqual(
            mail.reply_to,
            f'"Acme Telecom {invoice.name}" <catchall@wl.example>',
        )
        self.assertIn("Acme Telecom", mail.body_html)
        self.assertNotIn("Mothership", mail.body_html)
        own_mail = self._mails(own)
        self.assertEqual(
            own_mail.subject,
            f"Mothership Billing Ltd: payment reminder for invoice {own.name}",
        )
        self.assertIn("Mothership Billing Ltd", own_mail.body_html)
        self.assertNotIn("Acme", own_mail.body_html)

    def test_wallet_credited_email_of_a_reseller_customer(self):
        self.resold.billing_mode = "prepaid"
        invoice = self._invoice([(self.package, 1, 100.0)], partner=self.resold)
        self._pay(invoice)
        mail = self._mails(invoice).filtered(
            lambda m: "wallet was credited" in (m.subject or "")
        )
        self.assertEqual(len(mail), 1)
        self.assertEqual(mail.subject, "Acme Telecom: your wallet was credited")
        self.assertIn("billing@acme.example.com", mail.email_from)
        self.assertNotIn("Mothership", mail.body_html)
        self.assertIn("Acme Telecom", mail.body_html)
        self.assertIn("billing_seller_footer", mail.body_html)

    def test_migration_names_the_seller_in_unchanged_templates_only(self):
        reminder = self.env.ref(
            "prepaid_postpaid_billing.mail_template_payment_reminder"
        )
        credited = self.env.ref(
            "prepaid_postpaid_billing.mail_template_wallet_credited"
        )
        path = file_path(
            "prepaid_postpaid_billing/migrations/18.0.1.5.0/post-migrate.py"
        )
        spec = importlib.util.spec_from_file_location("billing_migration", path)
        migration = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(migration)
        # As 18.0.1.4.0 loaded them; the wallet template edited since.
        old_body = str(reminder.body_html).replace(
            "object._billing_seller_name()", "object.company_id.name"
        )
        reminder.write(
            {
                "subject": migration.OLD_SUBJECTS["mail_template_payment_reminder"],
                "email_from": migration.OLD_SENDER,
                "body_html": old_body,
            }
        )
        self.env["res.lang"]._activate_lang("fr_FR")
        reminder.with_context(
            lang="fr_FR"
        ).subject = "{{ object.company_id.name }} : rappel de paiement"
        self.assertIn("object.company_id.name", str(reminder.body_html))
        edited_subject = "Our company: your wallet was credited"
        credited.write({"subject": edited_subject, "email_from": migration.OLD_SENDER})
        self.env.flush_all()
        migration.migrate(self.env.cr, "18.0.1.4.0")
        self.env.invalidate_all()
        self.assertEqual(
            reminder.subject,
            "{{ object._billing_seller_name() }}: payment reminder for invoice "
            "{{ object.name or '' }}",
        )
        self.assertEqual(
            reminder.with_context(lang="fr_FR").subject,
            "{{ object._billing_seller_name() }} : rappel de paiement",
        )
        self.assertEqual(reminder.email_from, migration.NEW_SENDER)
        self.assertNotIn("object.company_id.name", str(reminder.body_html))
        self.assertIn("object._billing_seller_name()", str(reminder.body_html))
        self.assertEqual(credited.subject, edited_subject)
        self.assertEqual(credited.email_from, migration.OLD_SENDER)
        # The reminder of a reseller's invoice then names the reseller.
        invoice = self._invoice([(self.service, 1, 30.0)], partner=self.resold)
        self.assertEqual(
            reminder._render_field("subject", invoice.ids)[invoice.id],
            f"Acme Telecom: payment reminder for invoice {invoice.name}",
        )


@tagged("post_install", "-at_install")
class TestBillingResellerWhiteLabelPortal(BillingResellerWhiteLabelCommon, HttpCase):
    """The customer opening its invoice on the portal, with its access link,
    sees the reseller as the seller too."""

    def test_portal_preview_shows_the_reseller_as_seller(self):
        invoice = self._invoice([(self.service, 1, 30.0)], partner=self.resold)
        preview = self.url_open(invoice.get_portal_url(report_type="html"))
        self.assertEqual(preview.status_code, 200)
        self._assert_reseller_header(html.document_fromstring(preview.content))
        own = self._invoice([(self.service, 1, 30.0)])
        preview = self.url_open(own.get_portal_url(report_type="html"))
        self.assertEqual(preview.status_code, 200)
        self._assert_company_header(html.document_fromstring(preview.content))
