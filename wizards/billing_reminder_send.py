import base64
import logging
import textwrap
import uuid
from collections import defaultdict

from markupsafe import Markup

from odoo import Command, api, fields, models
from odoo.exceptions import AccessError, UserError
from odoo.tools import SQL, format_amount, format_date, split_every
from odoo.tools.safe_eval import safe_eval, time

from ..models.account_move import OPEN_STATES

_logger = logging.getLogger(__name__)

# Skipped invoices, in the order the reasons are checked.
SKIP_REASONS = (
    "not_invoice",
    "not_posted",
    "paid",
    "nothing_due",
    "no_email",
    "reminded_today",
)
# Invoices named per reason in the summaries; the others are counted.
SUMMARY_NAMES = 10
# Characters of an invoice PDF error the summary shows; the chatter has it all.
PDF_ERROR_WIDTH = 160


class BillingReminderSend(models.TransientModel):
    _name = "billing.reminder.send"
    _inherit = ["billing.wizard.mixin"]
    _description = "Send Payment Reminders"
    _billing_checked_fields = ("invoice_ids", "template_id")

    scope = fields.Selection(
        selection=[
            ("selection", "Selected Invoices"),
            ("all", "All Open Invoices"),
        ],
        required=True,
        default="all",
        readonly=True,
        help="The invoices selected in a list, or every posted customer invoice not "
        "paid or partially paid of the allowed companies.",
    )
    invoice_ids = fields.Many2many(
        comodel_name="account.move",
        relation="billing_reminder_send_account_move_rel",
        column1="wizard_id",
        column2="move_id",
        string="Invoices",
        readonly=True,
    )
    template_id = fields.Many2one(
        comodel_name="mail.template",
        string="Email Template",
        required=True,
        domain="[('model', '=', 'account.move')]",
        default=lambda self: self._default_template_id(),
        help="The email sent for each invoice, with the invoice PDF attached when it "
        "can be generated; the email is queued.",
    )
    force = fields.Boolean(
        string="Send Again Today",
        help="Also remind the invoices already reminded today.",
    )
    state = fields.Selection(
        selection=[("draft", "To Send"), ("done", "Sent")],
        required=True,
        default="draft",
        readonly=True,
    )
    send_count = fields.Integer(string="Invoices to Remind", compute="_compute_preview")
    skip_count = fields.Integer(string="Invoices Skipped", compute="_compute_preview")
    skip_summary = fields.Html(
        string="Skipped Invoices", compute="_compute_preview", sanitize=False
    )
    sent_count = fields.Integer(string="Reminders Queued", readonly=True)
    result_skip_count = fields.Integer(string="Skipped", readonly=True)
    result_summary = fields.Html(string="Summary", readonly=True, sanitize=False)

    # -------------------------------------------------------------------------
    # DEFAULTS
    # -------------------------------------------------------------------------

    @api.model
    def default_get(self, fields_list):
        res = super().default_get(fields_list)
        context = self.env.context
        if context.get("active_model") == "account.move" and context.get("active_ids"):
            res["scope"] = "selection"
            res["invoice_ids"] = [Command.set(context["active_ids"])]
        return res

    @api.model
    def _default_template_id(self):
        return self.env.ref(
            "prepaid_postpaid_billing.mail_template_payment_reminder",
            raise_if_not_found=False,
        )

    # -------------------------------------------------------------------------
    # COMPUTE METHODS
    # -------------------------------------------------------------------------

    @api.depends("scope", "invoice_ids", "force")
    @api.depends_context("tz", "allowed_company_ids")
    def _compute_preview(self):
        for wizard in self:
            # Nothing of invoices the user may not use: an onchange is not
            # checked at create.
            if wizard._billing_access_problem():
                wizard.send_count = wizard.skip_count = 0
                wizard.skip_summary = False
                continue
            to_send, skipped = wizard._classify(wizard._get_candidates())
            wizard.send_count = len(to_send)
            wizard.skip_count = sum(len(moves) for moves in skipped.values())
            wizard.skip_summary = wizard._summary_html(skipped)

    # -------------------------------------------------------------------------
    # ACTION METHODS
    # -------------------------------------------------------------------------

    def action_send(self):
        """Email one payment reminder per eligible invoice (through the mail
        queue), count it on the invoice and show what was sent and skipped."""
        self.ensure_one()
        if not self.env.user.has_group("prepaid_postpaid_billing.group_billing_user"):
            raise AccessError(
                self.env._("Only Billing Users can send payment reminders.")
            )
        self._billing_check_access()
        self._send_reminders()
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Payment Reminders Sent"),
            "res_model": self._name,
            "res_id": self.id,
            "view_mode": "form",
            "target": "new",
        }

    # -------------------------------------------------------------------------
    # BUSINESS METHODS
    # -------------------------------------------------------------------------

    def _send_reminders(self):
        """Send the reminders of this wizard by its rules (``_skip_reason``) and
        its once-per-day guard (``_claim``) and record what was sent and
        skipped on it. The caller has checked who may send them: a Billing
        User (``action_send``), or a reseller for invoices of its own customers
        (the reseller portal)."""
        self.ensure_one()
        if self.state == "done":
            raise UserError(
                self.env._(
                    "These payment reminders were sent already; open Send Payment "
                    "Reminders again to send others."
                )
            )
        template = self.template_id
        if template.model != "account.move":
            raise UserError(
                self.env._(
                    "Email Template of the payment reminders must be an invoice "
                    "template; %(template)s is for %(model)s.",
                    template=template.display_name,
                    model=template.model or "-",
                )
            )
        to_send, skipped = self._classify(self._get_candidates())
        to_send.check_access("write")
        # An invoice whose PDF cannot be generated is reminded without it.
        pdf_errors = self._ensure_invoice_pdfs(to_send)
        claimed = self._claim(to_send)
        # Reminded in the meantime by someone else's run: not twice.
        if to_send - claimed:
            skipped["reminded_today"] |= to_send - claimed
        self._queue_reminders(claimed, template)
        claimed_ids = set(claimed.ids)
        self.write(
            {
                "state": "done",
                "sent_count": len(claimed),
                "result_skip_count": sum(len(moves) for moves in skipped.values()),
                "result_summary": self._summary_html(
                    skipped,
                    sent=claimed,
                    pdf_errors={
                        move: error
                        for move, error in pdf_errors.items()
                        if move.id in claimed_ids
                    },
                ),
            }
        )
        return claimed

    @api.model
    def _open_invoices_domain(self):
        """Every invoice a reminder may be sent for, in the allowed companies."""
        return [
            ("move_type", "=", "out_invoice"),
            ("state", "=", "posted"),
            ("payment_state", "in", OPEN_STATES),
            ("company_id", "in", self.env.companies.ids),
        ]

    def _get_candidates(self):
        self.ensure_one()
        if self.scope == "selection":
            return self.invoice_ids
        return self.env["account.move"].search(self._open_invoices_domain(), order="id")

    def _skip_reason(self, move, today):
        """Why ``move`` gets no reminder in this run (a key of SKIP_REASONS), or
        None when it gets one."""
        if move.move_type != "out_invoice":
            return "not_invoice"
        if move.state != "posted":
            return "not_posted"
        if move.payment_state not in OPEN_STATES:
            return "paid"
        if move.currency_id.is_zero(move.amount_residual):
            return "nothing_due"
        if not move.partner_id.email:
            return "no_email"
        if not self.force and move.billing_reminder_date == today:
            return "reminded_today"
        return None

    def _classify(self, moves):
        """The invoices to remind and the skipped ones per reason."""
        today = fields.Date.context_today(self)
        Move = self.env["account.move"]
        ids_by_reason = defaultdict(list)
        for move in moves:
            ids_by_reason[self._skip_reason(move, today)].append(move.id)
        to_send = moves.browse(ids_by_reason.pop(None, []))
        skipped = defaultdict(lambda: Move)
        skipped.update(
            (reason, moves.browse(ids)) for reason, ids in ids_by_reason.items()
        )
        return to_send, skipped

    def _skip_reason_labels(self):
        return {
            "not_invoice": self.env._("not a customer invoice"),
            "not_posted": self.env._("not posted"),
            "paid": self.env._("paid, in payment or reversed"),
            "nothing_due": self.env._("nothing left to pay"),
            "no_email": self.env._("no customer email"),
            "reminded_today": self.env._("already reminded today"),
        }

    def _summary_html(self, skipped, sent=None, pdf_errors=None):
        """What was (or will be) skipped and why, naming the first invoices of
        each reason; with ``sent``, the reminders queued first, then those
        sent without their PDF ({invoice: error} ``pdf_errors``) per reason."""
        labels = self._skip_reason_labels()
        items = []
        if sent:
            items.append(
                self.env._(
                    "Reminders queued: %(count)s (%(names)s).",
                    count=len(sent),
                    names=self._names(sent),
                )
            )
        elif sent is not None:
            items.append(self.env._("No reminder queued."))
        ids_by_error = defaultdict(list)
        for move, error in (pdf_errors or {}).items():
            ids_by_error[self._pdf_error_reason(error)].append(move.id)
        for reason, move_ids in ids_by_error.items():
            moves = self.env["account.move"].browse(move_ids)
            items.append(
                self.env._(
                    "Sent without the invoice PDF, which could not be generated "
                    "(%(reason)s): %(count)s (%(names)s).",
                    reason=reason,
                    count=len(moves),
                    names=self._names(moves),
                )
            )
        for reason in SKIP_REASONS:
            moves = skipped.get(reason)
            if moves:
                items.append(
                    self.env._(
                        "Skipped, %(reason)s: %(count)s (%(names)s).",
                        count=len(moves),
                        reason=labels[reason],
                        names=self._names(moves),
                    )
                )
        if not items:
            return False
        return Markup("<ul>%s</ul>") % Markup().join(
            Markup("<li>%s</li>") % item for item in items
        )

    def _names(self, moves):
        """The names of the first invoices, and how many more there are."""
        names = [move.display_name for move in moves[:SUMMARY_NAMES]]
        if len(moves) > SUMMARY_NAMES:
            names.append(
                self.env._("and %(count)s more", count=len(moves) - SUMMARY_NAMES)
            )
        return ", ".join(names)

    def _pdf_error_reason(self, error):
        """An error of the invoice documents' generation (a text, or Odoo's
        dict with ``error_title`` and ``errors``) on one short line."""
        text = self.env["account.move.send"]._format_error_text(error)
        return textwrap.shorten(
            str(text or ""), PDF_ERROR_WIDTH, placeholder="..."
        ) or self.env._("unknown error")

    def _ensure_invoice_pdfs(self, moves):
        """Give every invoice its official PDF: the one stored when it was sent,
        or rendered now and stored the way Send & Print does, the missing ones
        of a company in one call. When that call fails or leaves invoices
        without a PDF (a wkhtmltopdf built without its patched Qt, as Debian's,
        gives an empty file for several documents), they are rendered one
        invoice a call. Returns {invoice: error} of the invoices left without a
        PDF; the error is logged in their chatter."""
        errors = {}
        missing = moves.filtered(lambda move: not move.invoice_pdf_report_id)
        for company_moves in missing.grouped("company_id").values():
            company_errors, left = self._render_invoice_pdfs(company_moves)
            if left and len(company_moves) > 1:
                _logger.info(
                    "Rendering %s invoice PDFs in one call left %s without a PDF "
                    "(%s); rendering these one invoice a call.",
                    len(company_moves),
                    len(left),
                    self._pdf_error_reason(next(iter(left.values()))),
                )
                for move in left:
                    move_errors, move_left = self._render_invoice_pdfs(move)
                    company_errors.update(move_errors)
                    company_errors.update(move_left)
            else:
                company_errors.update(left)
            errors.update(company_errors)
        if errors:
            _logger.warning(
                "%s invoice PDFs could not be generated, their payment reminders "
                "go without them: %s",
                len(errors),
                "; ".join(
                    f"{move.display_name}: {self._pdf_error_reason(error)}"
                    for move, error in list(errors.items())[:SUMMARY_NAMES]
                ),
            )
            self.env["account.move.send"]._hook_if_errors(
                {move: {"error": error} for move, error in errors.items()},
                allow_raising=False,
            )
        return errors

    def _render_invoice_pdfs(self, moves):
        """Render and store the PDFs of these invoices of one company in one
        call of Send & Print's document generation, in a savepoint: a call that
        fails, or stores an empty PDF, leaves nothing written. Returns
        ({invoice: error} the generation reported for particular invoices, which
        another call would repeat, {invoice: error} of the others the call left
        without a PDF)."""
        Send = self.env["account.move.send"].with_company(moves.company_id)
        moves_data = {
            move: Send._get_default_sending_settings(move, sending_methods=[])
            for move in moves
        }
        try:
            with self.env.cr.savepoint():
                Send._generate_invoice_documents(moves_data)
                if not all(moves.invoice_pdf_report_id.mapped("file_size")):
                    raise UserError(
                        self.env._("The PDF engine returned an empty file.")
                    )
        # Whatever the PDF engine raises: the savepoint is rolled back and the
        # invoices are reminded without their PDF.
        except Exception as error:  # noqa: BLE001
            return {}, dict.fromkeys(moves, str(error) or type(error).__name__)
        errors = {
            move: move_data["error"]
            for move, move_data in moves_data.items()
            if move_data.get("error")
        }
        no_pdf = self.env._("No PDF was rendered.")
        left = {
            move: no_pdf
            for move in moves
            if move not in errors and not move.invoice_pdf_report_id
        }
        return errors, left

    def _claim(self, moves):
        """Count the reminder on these invoices and date it today, in one UPDATE
        that skips those another run reminded today in the meantime (unless
        forced). Returns the invoices claimed for this run."""
        if not moves:
            return moves
        Move = self.env["account.move"]
        counters = ["billing_reminder_count", "billing_reminder_date"]
        Move.flush_model(counters)
        today = fields.Date.context_today(self)
        not_today = (
            SQL("TRUE")
            if self.force
            else SQL(
                "(billing_reminder_date IS NULL OR billing_reminder_date != %s)", today
            )
        )
        rows = self.env.execute_query(
            SQL(
                """
                UPDATE account_move
                   SET billing_reminder_count = COALESCE(billing_reminder_count, 0) + 1,
                       billing_reminder_date = %(today)s,
                       write_uid = %(uid)s,
                       write_date = %(now)s
                 WHERE id IN %(ids)s
                   AND %(not_today)s
             RETURNING id
                """,
                today=today,
                uid=self.env.uid,
                now=fields.Datetime.now(),
                ids=tuple(moves.ids),
                not_today=not_today,
            )
        )
        Move.invalidate_model([*counters, "write_uid", "write_date"])
        claimed = {row[0] for row in rows}
        return moves.filtered(lambda move: move.id in claimed)

    def _ensure_access_tokens(self, moves):
        """Give the invoices without one the portal access token of their payment
        link in one UPDATE, instead of one invoice write per email rendered."""
        missing = moves.filtered(lambda move: not move.access_token)
        if not missing:
            return
        self.env["account.move"].flush_model(["access_token"])
        self.env.cr.execute(
            SQL(
                """
                UPDATE account_move AS move
                   SET access_token = token.value
                  FROM (VALUES %s) AS token (id, value)
                 WHERE move.id = token.id
                   AND move.access_token IS NULL
                """,
                SQL(", ").join(
                    SQL("(%s, %s)", move_id, str(uuid.uuid4()))
                    for move_id in missing.ids
                ),
            )
        )
        missing.invalidate_recordset(["access_token"])

    def _render_extra_reports(self, moves, template):
        """Attachments of the template's reports other than the invoice's own
        PDF (which is attached as stored), rendered for each invoice.
        Returns {invoice id: attachment ids}."""
        reports = template.report_template_ids.filtered(
            lambda report: not report.is_invoice_report
        )
        if not reports or not moves:
            return {}
        Report = self.env["ir.actions.report"]
        vals_list = []
        for move in moves:
            for report in reports:
                if report.report_type in ("qweb-html", "qweb-pdf"):
                    content, extension = Report._render_qweb_pdf(report, move.ids)
                else:
                    content, extension = Report._render(report, move.ids)
                name = (
                    safe_eval(report.print_report_name, {"object": move, "time": time})
                    if report.print_report_name
                    else report.name
                )
                if not name.endswith(f".{extension}"):
                    name += f".{extension}"
                vals_list.append(
                    {
                        "name": name,
                        "datas": base64.b64encode(content),
                        "res_model": move._name,
                        "res_id": move.id,
                    }
                )
        attachments = self.env["ir.attachment"].create(vals_list)
        by_move = defaultdict(list)
        for attachment in attachments:
            by_move[attachment.res_id].append(attachment.id)
        return by_move

    def _render_bodies(self, moves, template):
        """The template's body for each invoice, as ``_render_field`` renders it,
        but compiled once per language for the whole batch: QWeb compiles an
        inline template again on every call, which costs more than rendering
        it. The body is rendered in a loop over the invoices, each followed by
        a unique separator the output is split on. Returns {invoice id: body}."""
        separator = f"billing-reminder-{uuid.uuid4().hex}"
        bodies = {}
        for template_lang, lang_ids in template._classify_per_lang(moves.ids).values():
            source = Markup(
                '<t t-foreach="billing_reminder_records" t-as="object">%s'
                '<t t-out="billing_reminder_separator"/></t>'
            ) % Markup(template_lang.body_html or "")
            rendered = template_lang._render_template(
                source,
                template_lang.render_model,
                lang_ids[:1],
                engine="qweb",
                add_context={
                    "billing_reminder_records": moves.with_env(
                        template_lang.env
                    ).browse(lang_ids),
                    "billing_reminder_separator": separator,
                },
            )[lang_ids[0]]
            parts = str(rendered).split(separator)
            bodies.update(
                template_lang._render_template_postprocess(
                    template_lang.render_model,
                    {
                        move_id: Markup(part)
                        for move_id, part in zip(lang_ids, parts[:-1], strict=True)
                    },
                )
            )
        return bodies

    def _prepare_reminder_mail_values(self, moves, template):
        """Values of the reminder emails of these invoices, rendered in batch
        from ``template``: one mail.mail per invoice, logged in its chatter,
        with the invoice's stored PDF attached."""
        rendered = template._generate_template(
            moves.ids,
            (
                "attachment_ids",
                "auto_delete",
                "email_cc",
                "email_from",
                "email_to",
                "mail_server_id",
                "partner_to",
                "reply_to",
                "scheduled_date",
                "subject",
            ),
        )
        bodies = self._render_bodies(moves, template)
        extra_reports = self._render_extra_reports(moves, template)
        reply_to = moves._notify_get_reply_to(default=False)
        author = self.env.user.partner_id
        Partner = self.env["res.partner"]
        formats = {}
        values_list = []
        for move in moves:
            values = rendered[move.id]
            recipients = Partner.browse(values.get("partner_ids") or [])
            attachment_ids = (
                list(values.get("attachment_ids") or [])
                + move.invoice_pdf_report_id.ids
                + extra_reports.get(move.id, [])
            )
            mail_values = {
                "model": move._name,
                "res_id": move.id,
                "message_type": "email_outgoing",
                # The message stays in the invoice's chatter once the email is
                # sent and deleted from the queue.
                "is_notification": True,
                "author_id": author.id,
                "subject": values.get("subject"),
                # The chatter shows a line; the email is the rendered body. A
                # message body is sanitized three times on creation, which
                # would cost more than the rest of the email.
                "body": self._chatter_line(
                    move, recipients, values.get("email_to"), formats
                ),
                "body_html": bodies[move.id],
                "email_to": values.get("email_to"),
                "email_cc": values.get("email_cc"),
                "reply_to": values.get("reply_to") or reply_to.get(move.id),
                "recipient_ids": [
                    Command.link(partner_id)
                    for partner_id in values.get("partner_ids") or []
                ],
                "attachment_ids": [
                    Command.link(attachment_id) for attachment_id in attachment_ids
                ],
                "auto_delete": values.get("auto_delete"),
                "mail_server_id": values.get("mail_server_id"),
                "scheduled_date": values.get("scheduled_date"),
                "headers": repr(move._notify_by_email_get_headers()),
            }
            if values.get("email_from"):
                mail_values["email_from"] = values["email_from"]
            values_list.append(mail_values)
        return values_list

    def _chatter_line(self, move, recipients, email_to, formats):
        """What the invoice's chatter says of its reminder email; ``formats``
        keeps the amounts and dates already formatted in this batch."""
        amount_key = (move.currency_id, move.amount_residual)
        if amount_key not in formats:
            formats[amount_key] = format_amount(
                self.env, move.amount_residual, move.currency_id
            )
        if move.invoice_date_due not in formats:
            formats[move.invoice_date_due] = format_date(
                self.env, move.invoice_date_due
            )
        return Markup("<p>%s</p>") % self.env._(
            "Payment reminder emailed to %(recipients)s: %(amount)s left to pay, "
            "due %(due_date)s.",
            recipients=", ".join(
                [*recipients.mapped("email_formatted"), *filter(None, [email_to])]
            ),
            amount=formats[amount_key],
            due_date=formats[move.invoice_date_due],
        )

    def _queue_reminders(self, moves, template, batch_size=500):
        """Create the reminder emails of these invoices in the mail queue, in
        batches; they are sent by the mail queue's cron."""
        self._ensure_access_tokens(moves)
        # sudo: mail.mail is a technical model users do not create directly, as
        # with Odoo's mass mail composer; the user was checked to be a Billing
        # User who may write these invoices (or, on the reseller portal, a
        # reseller reminding its own customers' invoices), and each email goes
        # to the recipients of its invoice's template.
        MailSudo = self.env["mail.mail"].sudo()
        mails = MailSudo
        for batch_ids in split_every(batch_size, moves.ids):
            batch = moves.browse(batch_ids)
            mails |= MailSudo.create(
                self._prepare_reminder_mail_values(batch, template)
            )
        return mails
