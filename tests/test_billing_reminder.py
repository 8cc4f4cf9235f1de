import base64
import io
import re
from contextlib import contextmanager
from datetime import date
from unittest.mock import patch

from freezegun import freeze_time
from markupsafe import escape
from reportlab.pdfgen import canvas

from odoo import Command
from odoo.exceptions import AccessError, UserError
from odoo.tests import Form, new_test_user, tagged
from odoo.tools import format_amount, format_date, html2plaintext
from odoo.tools.pdf import PdfFileReader

from .recurring_common import BillingRecurringCommon

TODAY = date(2026, 11, 20)
WIZARD_LOGGER = "odoo.addons.prepaid_postpaid_billing.wizards.billing_reminder_send"


@tagged("post_install", "-at_install")
class TestBillingReminder(BillingRecurringCommon):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.template = cls.env.ref(
            "prepaid_postpaid_billing.mail_template_payment_reminder"
        )
        cls.accountant = new_test_user(
            cls.env,
            login="reminder_accountant",
            groups="account.group_account_invoice",
            company_id=cls.company.id,
            company_ids=[Command.set(cls.company.ids)],
        )

    # -------------------------------------------------------------------------
    # Helpers
    # -------------------------------------------------------------------------

    def _open(
        self,
        amount=100.0,
        partner=None,
        post=True,
        move_type="out_invoice",
        company=None,
    ):
        """A customer invoice of ``amount`` dated and due 2026-11-01."""
        invoice = (
            self.env["account.move"]
            .with_company(company or self.company)
            .create(
                {
                    "move_type": move_type,
                    "partner_id": (partner or self.postpaid).id,
                    "invoice_date": "2026-11-01",
                    "invoice_date_due": "2026-11-01",
                    "invoice_line_ids": [
                        Command.create(
                            {
                                "product_id": self.plan.id,
                                "quantity": 1,
                                "price_unit": amount,
                                "tax_ids": [Command.clear()],
                            }
                        )
                    ],
                }
            )
        )
        if post:
            invoice.action_post()
        return invoice

    def _wizard(self, invoices=None, user=None, companies=None, **values):
        """The wizard as opened from a list's selection of ``invoices`` (a list
        of ids may repeat some) or, without, from the menu."""
        Wizard = self.env["billing.reminder.send"].with_user(user or self.billing_user)
        if companies:
            Wizard = Wizard.with_context(allowed_company_ids=companies.ids)
        if invoices is not None:
            ids = invoices if isinstance(invoices, list) else invoices.ids
            Wizard = Wizard.with_context(active_model="account.move", active_ids=ids)
        form = Form(Wizard)
        for name, value in values.items():
            setattr(form, name, value)
        return form.save()

    def _send(self, invoices=None, **values):
        wizard = self._wizard(invoices, **values)
        action = wizard.action_send()
        self.assertEqual(action["res_model"], "billing.reminder.send")
        self.assertEqual(action["res_id"], wizard.id)
        self.assertEqual(wizard.state, "done")
        return wizard

    def _store_pdf(self, invoices):
        """Store the invoices' PDF, as Send & Print leaves it."""
        pdfs = self.env["ir.attachment"].create(
            [
                {
                    "name": "stored.pdf",
                    "raw": b"%PDF-1.4 sent with the invoice",
                    "mimetype": "application/pdf",
                    "res_model": "account.move",
                    "res_id": invoice.id,
                    "res_field": "invoice_pdf_report_file",
                }
                for invoice in invoices
            ]
        )
        invoices.invalidate_recordset(["invoice_pdf_report_id"])
        return pdfs

    def _mails(self, invoices):
        """The reminder emails queued for ``invoices``."""
        return self.env["mail.mail"].search(
            [
                ("model", "=", "account.move"),
                ("res_id", "in", invoices.ids),
                ("subject", "ilike", "payment reminder"),
            ]
        )

    def _mail_counts(self, invoices):
        mails = self._mails(invoices)
        return [len(mails.filtered(lambda m, i=i: m.res_id == i.id)) for i in invoices]

    @contextmanager
    def _pdf_engine(self, empty_for=lambda bodies: False):
        """Render the invoice PDFs through Odoo's wkhtmltopdf path (tests render
        reports as HTML unless ``force_report_rendering`` is in the context)
        with a stand-in for wkhtmltopdf: one page per document, naming its
        record; an empty file when ``empty_for(bodies)``, as Debian's
        wkhtmltopdf (unpatched Qt) gives for more than one document. Yields the
        number of documents of each call."""
        calls = []

        def run_wkhtmltopdf(report, bodies, *args, **kwargs):
            calls.append(len(bodies))
            if empty_for(bodies):
                return b""
            stream = io.BytesIO()
            pdf = canvas.Canvas(stream, pagesize=(300, 100))
            for body in bodies:
                record_id = re.search(r'data-oe-id="(\d+)"', body).group(1)
                pdf.drawString(10, 50, f"account.move {record_id}")
                pdf.showPage()
            pdf.save()
            return stream.getvalue()

        Report = type(self.env["ir.actions.report"])
        with (
            patch.object(Report, "get_wkhtmltopdf_state", return_value="ok"),
            patch.object(Report, "_run_wkhtmltopdf", run_wkhtmltopdf),
        ):
            yield calls

    def _send_rendering_pdfs(self, invoices):
        """Send the reminders of ``invoices``, their missing PDFs rendered as
        PDF (see ``_pdf_engine``)."""
        wizard = self._wizard(invoices)
        wizard.with_context(force_report_rendering=True).action_send()
        self.assertEqual(wizard.state, "done")
        return wizard

    def _assert_own_pdf_attached(self, invoice):
        """The invoice's stored PDF is a real one-page PDF of this invoice, and
        its reminder carries it."""
        pdf = invoice.invoice_pdf_report_id
        self.assertEqual(len(pdf), 1)
        reader = PdfFileReader(io.BytesIO(pdf.raw))
        self.assertEqual(reader.numPages, 1)
        self.assertEqual(
            reader.getPage(0).extractText().strip(), f"account.move {invoice.id}"
        )
        mail = self._mails(invoice)
        self.assertEqual(len(mail), 1)
        self.assertEqual(mail.attachment_ids, pdf)
        self.assertIn("The invoice is attached.", str(mail.body_html))

    def _assert_reminded_without_pdf(self, invoice, wizard, reason):
        """The invoice is reminded without a PDF, with its payment link, no
        PDF (empty or not) is stored for it, and the summary says why."""
        mail = self._mails(invoice)
        self.assertEqual(len(mail), 1)
        self.assertEqual(mail.state, "outgoing")
        self.assertFalse(mail.attachment_ids)
        body = str(mail.body_html)
        self.assertIn(str(escape(invoice._billing_payment_url())), body)
        self.assertNotIn("The invoice is attached.", body)
        self.assertIn("You can see the invoice at the same link.", body)
        self.assertEqual(invoice.billing_reminder_count, 1)
        self.assertFalse(invoice.invoice_pdf_report_id)
        self.assertFalse(
            self.env["ir.attachment"].search(
                [
                    ("res_model", "=", "account.move"),
                    ("res_id", "=", invoice.id),
                    ("res_field", "in", [False, "invoice_pdf_report_file"]),
                ]
            )
        )
        self.assertIn(
            f"Sent without the invoice PDF, which could not be generated "
            f"({reason}): 1 ({invoice.name}).",
            str(wizard.result_summary),
        )
        # The error is in the invoice's chatter, as Send & Print leaves it.
        self.assertIn(reason, " ".join(map(str, invoice.message_ids.mapped("body"))))

    # -------------------------------------------------------------------------
    # Which invoices
    # -------------------------------------------------------------------------

    @freeze_time(TODAY)
    def test_only_posted_invoices_left_to_pay_are_reminded(self):
        not_paid = self._open()
        partial = self._open()
        self._pay(partial, amount=40.0)
        draft = self._open(post=False)
        cancelled = self._open(post=False)
        cancelled.button_cancel()
        paid = self._open()
        self._pay(paid)
        in_payment = self._open()
        # As with the Accounting app: paid, the payment not yet matched with
        # the bank statement.
        with patch.object(
            type(self.env["account.move"]),
            "_get_invoice_in_payment_state",
            return_value="in_payment",
        ):
            self._pay(in_payment)
            self.env.flush_all()
        reversed_ = self._open()
        reversed_._reverse_moves(cancel=True)
        zero = self._open(amount=0.0)
        self.assertEqual(partial.payment_state, "partial")
        self.assertEqual(in_payment.payment_state, "in_payment")
        self.assertEqual(reversed_.payment_state, "reversed")
        self.assertTrue(zero.currency_id.is_zero(zero.amount_residual))
        skipped = draft + cancelled + paid + in_payment + reversed_ + zero
        wizard = self._wizard(not_paid + partial + skipped)
        self.assertEqual((wizard.send_count, wizard.skip_count), (2, 6))

        wizard.action_send()

        self.assertEqual(self._mail_counts(not_paid + partial), [1, 1])
        self.assertFalse(self._mails(skipped))
        self.assertEqual((not_paid + partial).mapped("billing_reminder_count"), [1, 1])
        self.assertEqual(skipped.mapped("billing_reminder_count"), [0] * 6)
        self.assertFalse(any(skipped.mapped("billing_reminder_date")))
        self.assertEqual((wizard.sent_count, wizard.result_skip_count), (2, 6))
        summary = str(wizard.result_summary)
        self.assertIn("Skipped, not posted: 2 (", summary)
        self.assertIn("Skipped, paid, in payment or reversed: 4 (", summary)
        self.assertIn(partial.name, summary)
        self.assertIn(escape(paid.name), summary)

    @freeze_time(TODAY)
    def test_credit_note_in_selection_is_skipped(self):
        invoice = self._open()
        refund = self._open(amount=30.0, move_type="out_refund")
        self.assertEqual(refund.payment_state, "not_paid")
        wizard = self._send(invoice + refund)
        self.assertEqual(wizard.sent_count, 1)
        self.assertEqual(self._mail_counts(invoice), [1])
        self.assertFalse(self._mails(refund))
        self.assertIn("not a customer invoice", str(wizard.result_summary))

    @freeze_time(TODAY)
    def test_customer_without_email_is_skipped_with_reason(self):
        reachable = self._open()
        unreachable = self._open(partner=self.other_customer)
        wizard = self._wizard(reachable + unreachable)
        self.assertEqual((wizard.send_count, wizard.skip_count), (1, 1))
        self.assertIn("no customer email", str(wizard.skip_summary))
        self.assertIn(unreachable.name, str(wizard.skip_summary))

        wizard.action_send()

        self.assertEqual(self._mail_counts(reachable + unreachable), [1, 0])
        self.assertEqual(unreachable.billing_reminder_count, 0)
        self.assertIn(
            f"Skipped, no customer email: 1 ({unreachable.name}).",
            str(wizard.result_summary),
        )

    @freeze_time(TODAY)
    def test_menu_without_selection_reminds_every_open_invoice(self):
        open_invoices = self._open() + self._open(partner=self.customer)
        partial = self._open()
        self._pay(partial, amount=10.0)
        open_invoices |= partial
        draft = self._open(post=False)
        paid = self._open()
        self._pay(paid)
        unreachable = self._open(partner=self.other_customer)
        wizard = self._wizard()
        self.assertEqual(wizard.scope, "all")
        self.assertFalse(wizard.invoice_ids)

        wizard.action_send()

        self.assertEqual(self._mail_counts(open_invoices), [1, 1, 1])
        self.assertFalse(self._mails(draft + paid + unreachable))
        self.assertEqual(wizard.sent_count, 3)
        self.assertIn("no customer email", str(wizard.result_summary))

    @freeze_time(TODAY)
    def test_menu_takes_the_open_invoices_of_the_allowed_companies_only(self):
        other_company = self.setup_other_company()["company"]
        self.billing_user.company_ids |= other_company
        here = self._open()
        there = self._open(company=other_company)
        self._send(companies=self.company)
        self.assertEqual(self._mail_counts(here + there), [1, 0])
        wizard = self._send(companies=self.company + other_company)
        self.assertEqual(wizard.sent_count, 1)
        self.assertEqual(self._mail_counts(here + there), [1, 1])

    # -------------------------------------------------------------------------
    # Once per run, once a day
    # -------------------------------------------------------------------------

    @freeze_time(TODAY)
    def test_invoice_selected_twice_gets_one_mail(self):
        first, second = self._open(), self._open()
        wizard = self._send([first.id, first.id, second.id, first.id])
        self.assertEqual(wizard.sent_count, 2)
        self.assertEqual(self._mail_counts(first + second), [1, 1])
        self.assertEqual((first + second).mapped("billing_reminder_count"), [1, 1])

    @freeze_time(TODAY)
    def test_counter_and_date_and_no_second_mail_the_same_day(self):
        invoice = self._open()
        self._send(invoice)
        self.assertEqual(invoice.billing_reminder_count, 1)
        self.assertEqual(invoice.billing_reminder_date, TODAY)

        again = self._wizard(invoice)
        self.assertEqual((again.send_count, again.skip_count), (0, 1))
        again.action_send()
        self.assertEqual(again.sent_count, 0)
        self.assertIn("No reminder queued.", str(again.result_summary))
        self.assertIn(
            f"Skipped, already reminded today: 1 ({invoice.name}).",
            str(again.result_summary),
        )
        self.assertEqual(self._mail_counts(invoice), [1])
        self.assertEqual(invoice.billing_reminder_count, 1)

        # The menu's run over every open invoice does not send it again either.
        self._send()
        self.assertEqual(self._mail_counts(invoice), [1])

    @freeze_time(TODAY)
    def test_forced_resend_the_same_day(self):
        invoice = self._open()
        self._send(invoice)
        forced = self._wizard(invoice, force=True)
        self.assertEqual(forced.send_count, 1)
        forced.action_send()
        self.assertEqual(forced.sent_count, 1)
        self.assertEqual(self._mail_counts(invoice), [2])
        self.assertEqual(invoice.billing_reminder_count, 2)
        self.assertEqual(invoice.billing_reminder_date, TODAY)
        # The same run sent again (a second click, a replayed call): refused.
        with self.assertRefusedWritingNothing(UserError, "sent already"):
            forced.action_send()
        self.assertEqual(self._mail_counts(invoice), [2])
        self.assertEqual(invoice.billing_reminder_count, 2)

    def test_reminded_again_the_next_day(self):
        with freeze_time(TODAY):
            invoice = self._open()
            self._send(invoice)
        with freeze_time(date(2026, 11, 21)):
            wizard = self._send(invoice)
        self.assertEqual(wizard.sent_count, 1)
        self.assertEqual(self._mail_counts(invoice), [2])
        self.assertEqual(invoice.billing_reminder_count, 2)
        self.assertEqual(invoice.billing_reminder_date, date(2026, 11, 21))

    def test_run_that_lost_the_race_sends_nothing(self):
        """Two users remind the same invoice at once: the second run finds it
        reminded today when it counts it, and sends nothing."""
        with freeze_time(TODAY):
            invoice = self._open()
            late = self._wizard(invoice)
            self.assertEqual(late.send_count, 1)
            self._send(invoice)
            # The late run classified the invoice before the first run dated it.
            with patch.object(
                type(late), "_skip_reason", return_value=None, autospec=False
            ):
                late.action_send()
        self.assertEqual(late.sent_count, 0)
        self.assertIn("already reminded today", str(late.result_summary))
        self.assertEqual(self._mail_counts(invoice), [1])
        self.assertEqual(invoice.billing_reminder_count, 1)

    # -------------------------------------------------------------------------
    # The email
    # -------------------------------------------------------------------------

    @freeze_time(TODAY)
    def test_mail_content_and_pdf_attached_and_queued(self):
        invoice = self._open(amount=250.0)
        self._pay(invoice, amount=100.0)
        self.assertFalse(invoice.invoice_pdf_report_id)
        self._send(invoice)

        mail = self._mails(invoice)
        self.assertEqual(len(mail), 1)
        self.assertEqual(mail.state, "outgoing", "queued, not sent at once")
        self.assertEqual(mail.recipient_ids, self.postpaid)
        self.assertIn(invoice.name, mail.subject)
        body = str(mail.body_html)
        self.assertIn(format_amount(self.env, 150.0, invoice.currency_id), body)
        self.assertIn(format_date(self.env, invoice.invoice_date_due), body)
        self.assertIn("19</strong> days overdue", body)
        url = invoice._billing_payment_url()
        self.assertIn("access_token=", url)
        self.assertIn(str(escape(url)), body)
        # The invoice's official PDF, rendered once and kept on the invoice.
        pdf = invoice.invoice_pdf_report_id
        self.assertTrue(pdf)
        self.assertEqual(pdf.name, invoice._get_invoice_report_filename())
        self.assertEqual(mail.attachment_ids, pdf)

    @freeze_time(TODAY)
    def test_stored_pdf_is_attached_without_rendering(self):
        invoice = self._open()
        stored = self._store_pdf(invoice)
        self.assertEqual(invoice.invoice_pdf_report_id, stored)
        with patch.object(
            type(self.env["ir.actions.report"]),
            "_pre_render_qweb_pdf",
            side_effect=AssertionError("no PDF should be rendered"),
        ):
            self._send(invoice)
        mail = self._mails(invoice)
        self.assertEqual(mail.attachment_ids, stored)
        self.assertEqual(base64.b64decode(mail.attachment_ids.datas)[:8], b"%PDF-1.4")

    @freeze_time(TODAY)
    def test_reminder_logged_in_chatter_and_kept_once_sent(self):
        invoice = self._open()
        self._send(invoice)
        mail = self._mails(invoice)
        message = invoice.message_ids.filtered(lambda m: m == mail.mail_message_id)
        self.assertEqual(len(message), 1)
        self.assertIn("payment reminder", message.subject)
        self.assertEqual(message.author_id, self.billing_user.partner_id)
        self.assertEqual(
            html2plaintext(message.body),
            f"Payment reminder emailed to {self.postpaid.email_formatted}: "
            f"{format_amount(self.env, 100.0, invoice.currency_id)} left to pay, "
            f"due {format_date(self.env, invoice.invoice_date_due)}.",
        )
        self.assertEqual(message.attachment_ids, invoice.invoice_pdf_report_id)
        # The mail queue sends and deletes the email; the chatter keeps it.
        mail.send()
        self.assertFalse(mail.exists())
        self.assertTrue(message.exists())
        self.assertIn(message, invoice.message_ids)
        self.assertEqual(message.attachment_ids, invoice.invoice_pdf_report_id)

    @freeze_time(TODAY)
    def test_each_invoice_gets_its_own_email_in_its_customer_language(self):
        self.env["res.lang"]._activate_lang("fr_FR")
        french = self._postpaid_customer("Client Francais", lang="fr_FR")
        english = self._open(amount=111.0)
        other = self._open(amount=222.0, partner=self.customer)
        francais = self._open(amount=333.0, partner=french)
        self._send(english + other + francais)
        bodies = {
            mail.res_id: str(mail.body_html)
            for mail in self._mails(english + other + francais)
        }
        for invoice, amount in ((english, 111.0), (other, 222.0), (francais, 333.0)):
            body = bodies[invoice.id]
            self.assertIn(invoice.name, body)
            self.assertIn(invoice.partner_id.name, body)
            self.assertIn(
                format_amount(
                    self.env, amount, invoice.currency_id, invoice.partner_id.lang
                ),
                body,
            )
            self.assertEqual(body.count("days overdue"), 1)
            for another in (english + other + francais) - invoice:
                self.assertNotIn(another.name, body)
        self.assertIn("11/01/2026", bodies[english.id])
        self.assertIn("01/11/2026", bodies[francais.id])

    @freeze_time(TODAY)
    def test_invoice_whose_pdf_fails_is_reminded_without_it_and_says_why(self):
        invoice = self._open()
        other = self._open(partner=self.customer)

        def pdf_service_down(send, move, invoice_data):
            if move == invoice:
                invoice_data["error"] = "The PDF service is down"

        with (
            patch.object(
                type(self.env["account.move.send"]),
                "_hook_invoice_document_before_pdf_report_render",
                pdf_service_down,
            ),
            self.assertLogs(WIZARD_LOGGER, "WARNING") as logs,
        ):
            wizard = self._send(invoice + other)
        self.assertEqual((wizard.sent_count, wizard.result_skip_count), (2, 0))
        self._assert_reminded_without_pdf(invoice, wizard, "The PDF service is down")
        self.assertIn(f"{invoice.name}: The PDF service is down", logs.output[0])
        # The other invoice of the run keeps its PDF.
        self.assertTrue(other.invoice_pdf_report_id)
        self.assertEqual(self._mails(other).attachment_ids, other.invoice_pdf_report_id)
        self.assertNotIn(other.name, logs.output[0])

    @freeze_time(TODAY)
    def test_queries_do_not_grow_with_the_number_of_invoices(self):
        self._send(self._open() + self._open())  # warm the caches up

        def queries(count):
            invoices = self.env["account.move"]
            for index in range(count):
                invoices |= self._open(partner=self._postpaid_customer(f"Q{index}"))
            self._store_pdf(invoices)
            wizard = self._wizard(invoices)
            self.env.invalidate_all()
            before = self.env.cr.sql_log_count
            wizard.action_send()
            self.env.flush_all()
            self.assertEqual(wizard.sent_count, count)
            return self.env.cr.sql_log_count - before

        # Rendering a missing PDF costs queries per invoice (Odoo's Send &
        # Print); the stored ones are attached as they are.
        self.assertEqual(queries(3), queries(9))

    @freeze_time(TODAY)
    def test_another_invoice_template_attaches_the_stored_pdf_once(self):
        """Odoo's own invoice template lists the invoice report among its
        reports: the invoice's stored PDF is attached instead, not a second copy;
        the template's other reports are rendered and attached too."""
        invoice = self._open()
        extra_report = self.env["ir.actions.report"].create(
            {
                "name": "Statement",
                "model": "account.move",
                "report_type": "qweb-pdf",
                "report_name": "account.report_invoice",
                "print_report_name": "'Statement %s' % object.name.replace('/', '_')",
            }
        )
        template = self.env.ref("account.email_template_edi_invoice").copy(
            {
                "subject": "Payment reminder {{ object.name }}",
                "report_template_ids": [
                    Command.set(
                        (self.env.ref("account.account_invoices") + extra_report).ids
                    )
                ],
            }
        )
        wizard = self._send(invoice, template_id=template)
        self.assertEqual(wizard.sent_count, 1)
        mail = self._mails(invoice)
        self.assertEqual(mail.subject, f"Payment reminder {invoice.name}")
        self.assertEqual(
            sorted(mail.attachment_ids.mapped("name")),
            sorted(
                [
                    invoice._get_invoice_report_filename(),
                    f"Statement {invoice.name.replace('/', '_')}.html",
                ]
            ),
        )
        self.assertIn(invoice.invoice_pdf_report_id, mail.attachment_ids)

    @freeze_time(TODAY)
    def test_template_of_another_model_is_refused(self):
        invoice = self._open()
        wizard = self._wizard(invoice)
        partner_template = self.env["mail.template"].create(
            {
                "name": "Partner note",
                "model_id": self.env.ref("base.model_res_partner").id,
                "subject": "Hello",
            }
        )
        wizard.template_id = partner_template
        with self.assertRefusedWritingNothing(UserError, "Partner note"):
            wizard.action_send()
        self.assertFalse(self._mails(invoice))
        self.assertEqual(invoice.billing_reminder_count, 0)

    # -------------------------------------------------------------------------
    # The invoice PDF, whatever the PDF engine does
    # -------------------------------------------------------------------------

    @freeze_time(TODAY)
    def test_pdfs_rendered_in_one_call_when_the_engine_can(self):
        invoices = self._open() + self._open(partner=self.customer) + self._open()
        with self._pdf_engine() as calls:
            wizard = self._send_rendering_pdfs(invoices)
        self.assertEqual(calls, [3], "one wkhtmltopdf call for the three invoices")
        self.assertEqual(wizard.sent_count, 3)
        for invoice in invoices:
            self._assert_own_pdf_attached(invoice)
        self.assertNotIn("without the invoice PDF", str(wizard.result_summary))

    @freeze_time(TODAY)
    def test_engine_failing_on_several_invoices_renders_them_one_at_a_time(self):
        """Debian's wkhtmltopdf gives an empty file for several documents: the
        batch fails (Odoo cannot split an empty PDF), each invoice is rendered
        on its own and gets its own PDF and one email."""
        invoices = self._open() + self._open(partner=self.customer) + self._open()
        stored = self._open()
        self._store_pdf(stored)
        with self._pdf_engine(empty_for=lambda bodies: len(bodies) > 1) as calls:
            wizard = self._send_rendering_pdfs(invoices + stored)
        self.assertEqual(calls, [3, 1, 1, 1])
        self.assertEqual(wizard.sent_count, 4)
        self.assertEqual(self._mail_counts(invoices + stored), [1, 1, 1, 1])
        for invoice in invoices:
            self._assert_own_pdf_attached(invoice)
        self.assertEqual(
            self._mails(stored).attachment_ids, stored.invoice_pdf_report_id
        )
        self.assertNotIn("without the invoice PDF", str(wizard.result_summary))

    @freeze_time(TODAY)
    def test_invoice_whose_single_render_fails_too_is_reminded_without_pdf(self):
        """An invoice the engine cannot render even on its own (an empty file)
        is reminded without a PDF, listed in the summary with the reason; the
        empty PDF is not stored and the invoice not marked sent."""
        good = self._open() + self._open(partner=self.customer)
        bad = self._open()

        def empty_for(bodies):
            return len(bodies) > 1 or f'data-oe-id="{bad.id}"' in bodies[0]

        with (
            self._pdf_engine(empty_for=empty_for) as calls,
            self.assertLogs(WIZARD_LOGGER, "WARNING") as logs,
        ):
            wizard = self._send_rendering_pdfs(good + bad)
        self.assertEqual(calls, [3, 1, 1, 1])
        self.assertEqual((wizard.sent_count, wizard.result_skip_count), (3, 0))
        for invoice in good:
            self._assert_own_pdf_attached(invoice)
        self._assert_reminded_without_pdf(
            bad, wizard, "The PDF engine returned an empty file."
        )
        self.assertFalse(bad.is_move_sent)
        self.assertEqual(len(logs.output), 1)
        self.assertIn(bad.name, logs.output[0])

    @freeze_time(TODAY)
    def test_engine_failing_always_reminds_every_invoice_without_pdf(self):
        invoices = self._open() + self._open(partner=self.customer)
        with (
            self._pdf_engine(empty_for=lambda bodies: True) as calls,
            self.assertLogs(WIZARD_LOGGER, "WARNING"),
        ):
            wizard = self._send_rendering_pdfs(invoices)
        self.assertEqual(calls, [2, 1, 1])
        self.assertEqual(wizard.sent_count, 2)
        self.assertEqual(self._mail_counts(invoices), [1, 1])
        self.assertFalse(self._mails(invoices).attachment_ids)
        self.assertFalse(invoices.invoice_pdf_report_id)
        self.assertIn(
            "Sent without the invoice PDF, which could not be generated (The PDF "
            "engine returned an empty file.): 2 (",
            str(wizard.result_summary),
        )

    # -------------------------------------------------------------------------
    # Access
    # -------------------------------------------------------------------------

    @freeze_time(TODAY)
    def test_refused_without_billing_rights(self):
        invoice = self._open()
        with self.assertRefusedWritingNothing(AccessError):
            self._wizard(invoice, user=self.accountant)
        # Called over RPC on a wizard a Billing User prepared.
        wizard = self._wizard(invoice)
        with self.assertRefusedWritingNothing(AccessError, "Billing Users"):
            wizard.with_user(self.accountant).action_send()
        self.assertFalse(self._mails(invoice))
        self.assertEqual(invoice.billing_reminder_count, 0)
