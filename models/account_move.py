import base64
import io
import logging
import re
from datetime import timedelta

import qrcode
from psycopg2 import errors
from qrcode.image.pil import PilImage

from odoo import Command, api, fields, models
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.osv import expression
from odoo.tools import SQL, email_split, formataddr

from odoo.addons.base.models.ir_model import MODULE_UNINSTALL_FLAG

from .billing_precomputed import billing_add_precomputed

_logger = logging.getLogger(__name__)

PAID_STATES = ("paid", "in_payment")
OPEN_STATES = ("not_paid", "partial")
# States of an online payment transaction the provider may still confirm.
IN_FLIGHT_TX_STATES = ("pending", "authorized")
# Online payments in flight: still to be confirmed, or confirmed and their
# payment still to be created by the post-processing.
IN_FLIGHT_TX_DOMAIN = [
    "|",
    ("state", "in", IN_FLIGHT_TX_STATES),
    "&",
    ("state", "=", "done"),
    ("is_post_processed", "=", False),
]
DUE_STATUSES = [
    ("not_due", "Not Due"),
    ("due_today", "Due Today"),
    ("overdue", "Overdue"),
]
# Payment QR code: medium error correction (15% of the code can be smudged), 8
# pixels per module, the standard 4-module quiet zone.
PAYMENT_QR_ERROR_CORRECTION = qrcode.constants.ERROR_CORRECT_M
PAYMENT_QR_BOX_SIZE = 8
PAYMENT_QR_BORDER = 4


class AccountMove(models.Model):
    _inherit = "account.move"

    billing_is_topup = fields.Boolean(
        string="Wallet Top-up",
        compute="_compute_billing_is_topup",
        store=True,
        help="A customer invoice of credit packages or recharges: paying it credits "
        "the customer's wallet.",
    )
    billing_topup_expires_at = fields.Datetime(
        string="Top-up Expires At",
        copy=False,
        readonly=True,
        index="btree_not_null",
        help="When this top-up invoice is cancelled if it is still unpaid.",
    )
    billing_topup_expired = fields.Boolean(
        string="Top-up Expired",
        copy=False,
        readonly=True,
        help="This top-up invoice was cancelled because it was still unpaid when its "
        "window closed; an online payment confirmed afterwards reopens it.",
    )
    billing_wallet_move_ids = fields.One2many(
        comodel_name="billing.wallet.move",
        inverse_name="invoice_id",
        string="Wallet Movements",
        readonly=True,
    )
    billing_recurring_id = fields.Many2one(
        comodel_name="billing.recurring",
        string="Recurring Invoice",
        readonly=True,
        copy=False,
        index="btree_not_null",
        ondelete="restrict",
    )
    billing_period_start = fields.Date(string="Period Start", readonly=True, copy=False)
    billing_period_end = fields.Date(string="Period End", readonly=True, copy=False)
    billing_topup_credited = fields.Monetary(
        string="Credited to Wallet",
        currency_field="company_currency_id",
        compute="_compute_billing_wallet_amounts",
    )
    billing_wallet_balance = fields.Monetary(
        string="Wallet Balance",
        currency_field="company_currency_id",
        compute="_compute_billing_wallet_amounts",
    )
    billing_customer_notes = fields.Html(
        string="Customer Notes",
        copy=False,
        help="Notes to the customer printed on the invoice, beside the terms and "
        "conditions.",
    )
    billing_reseller_id = fields.Many2one(
        related="commercial_partner_id.billing_reseller_id",
        string="Reseller",
        store=True,
        index="btree_not_null",
    )
    billing_due_status = fields.Selection(
        selection=DUE_STATUSES,
        string="Due Status",
        compute="_compute_billing_due_status",
        search="_search_billing_due_status",
        help="Whether the unpaid part of this posted invoice is not due yet, due "
        "today or overdue; empty once it is paid, in payment, a draft or cancelled.",
    )
    billing_days_overdue = fields.Integer(
        string="Days Late",
        compute="_compute_billing_due_status",
        help="Days since the due date of this overdue invoice.",
    )
    billing_reminder_count = fields.Integer(
        string="Reminders Sent",
        copy=False,
        readonly=True,
        help="Payment reminders emailed for this invoice.",
    )
    billing_reminder_date = fields.Date(
        string="Last Reminder",
        copy=False,
        readonly=True,
        help="Day the last payment reminder of this invoice was emailed.",
    )
    billing_charge_count = fields.Integer(
        string="Usage Records",
        compute="_compute_billing_charge_count",
        help="Usage records and charges this invoice bills.",
    )

    def init(self):
        res = super().init()
        # Exactly once: one invoice per recurring schedule and period.
        self.env.cr.execute(
            SQL(
                """
                CREATE UNIQUE INDEX IF NOT EXISTS account_move_billing_period_uniq
                    ON account_move (billing_recurring_id, billing_period_start)
                 WHERE billing_recurring_id IS NOT NULL
                """
            )
        )
        return res

    # -------------------------------------------------------------------------
    # COMPUTE METHODS
    # -------------------------------------------------------------------------

    # Fixed by the products the invoice was made with: turning a product into a
    # credit package later does not change the meaning of past invoices.
    @api.depends("move_type", "invoice_line_ids.product_id")
    def _compute_billing_is_topup(self):
        for move in self:
            move.billing_is_topup = move.move_type == "out_invoice" and bool(
                move._billing_topup_lines()
            )

    def _compute_billing_wallet_amounts(self):
        # sudo: the credit of the invoice's own customer, shown on the invoice.
        Wallet = self.env["billing.wallet"].sudo()
        wallets = {}
        for company, moves in self.grouped("company_id").items():
            for partner_id, wallet in Wallet._get_wallets(
                moves.partner_id, company, create=False
            ).items():
                wallets[company.id, partner_id] = wallet
        for move in self:
            credit, granted = 0.0, None
            if move.billing_is_topup and move.id:
                _paid, credit, granted = Wallet._topup_grant(move)
            move.billing_topup_credited = (
                credit + Wallet._topup_refunded_since(move, granted) if granted else 0.0
            )
            wallet = wallets.get(
                (move.company_id.id, move.partner_id.commercial_partner_id.id), Wallet
            )
            move.billing_wallet_balance = wallet.balance

    @api.depends("state", "payment_state", "invoice_date_due")
    @api.depends_context("tz")
    def _compute_billing_due_status(self):
        today = fields.Date.context_today(self)
        for move in self:
            status, late = False, 0
            if (
                move.is_invoice(include_receipts=True)
                and move.state == "posted"
                and move.payment_state in OPEN_STATES
                and move.invoice_date_due
            ):
                late = (today - move.invoice_date_due).days
                if late < 0:
                    status = "not_due"
                elif late == 0:
                    status = "due_today"
                else:
                    status = "overdue"
            move.billing_due_status = status
            move.billing_days_overdue = max(late, 0)

    def _compute_billing_charge_count(self):
        lines = self.invoice_line_ids._origin
        counts = {}
        if lines:
            # sudo: what an invoice bills is part of the invoice (see
            # _billing_charge_history); only the number of its charges is read.
            counts = {
                line.id: count
                for line, count in self.env["billing.charge"]
                .sudo()
                ._read_group(
                    [("invoice_line_id", "in", lines.ids)],
                    ["invoice_line_id"],
                    ["__count"],
                )
            }
        for move in self:
            move.billing_charge_count = sum(
                counts.get(line_id, 0) for line_id in move.invoice_line_ids._origin.ids
            )

    def _search_billing_due_status(self, operator, value):
        if operator not in ("=", "!=", "in", "not in"):
            raise UserError(
                self.env._(
                    "Due Status cannot be searched with operator %(operator)s.",
                    operator=operator,
                )
            )
        values = {value} if operator in ("=", "!=") else set(value or ())
        today = fields.Date.context_today(self)
        comparisons = {"not_due": ">", "due_today": "=", "overdue": "<"}
        branches = [
            [("invoice_date_due", comparisons[status], today)]
            for status in values
            if status in comparisons
        ]
        domain = (
            expression.AND(
                [
                    [("state", "=", "posted"), ("payment_state", "in", OPEN_STATES)],
                    expression.OR(branches),
                ]
            )
            if branches
            else expression.FALSE_DOMAIN
        )
        if False in values:
            domain = expression.OR(
                [
                    domain,
                    [
                        "|",
                        "|",
                        ("state", "!=", "posted"),
                        ("payment_state", "not in", OPEN_STATES),
                        ("invoice_date_due", "=", False),
                    ],
                ]
            )
        if operator in ("!=", "not in"):
            domain = ["!", *expression.normalize_domain(domain)]
        return domain

    # -------------------------------------------------------------------------
    # CRUD METHODS
    # -------------------------------------------------------------------------

    def _add_precomputed_values(self, vals_list):
        # The recurring run's precomputed invoices (billing_recurring_fast.py).
        return billing_add_precomputed(self, vals_list, super()._add_precomputed_values)

    def _post(self, soft=True):
        # Refused before anything is posted when the wallet no longer holds the
        # credit a refunded top-up granted.
        Wallet = self.env["billing.wallet"]
        refunds = Wallet._topup_refunds(
            self.filtered(lambda move: move.move_type == "out_refund")
        )
        posted = super()._post(soft=soft)
        Wallet._take_back_topup_refunds(
            {refund: vals for refund, vals in refunds.items() if refund in posted}
        )
        # sudo: the money the credit notes give back goes to their own customer's
        # wallet, whoever posts them.
        Wallet.sudo()._give_back_credit_notes(
            posted.filtered(lambda move: move.move_type == "out_refund")
        )
        topups = posted.filtered("billing_is_topup")
        now = fields.Datetime.now()
        for move in topups:
            hours = move.company_id.billing_topup_expiry_hours
            if hours:
                move.billing_topup_expires_at = now + timedelta(hours=hours)
        (posted - topups).filtered(
            lambda m: m.move_type == "out_invoice"
        )._billing_auto_pay_from_wallet()
        return posted

    def _search_default_journal(self):
        # A reseller's customer is invoiced in the reseller's journal; everyone
        # else in the company's own, never in a reseller's.
        if self.is_sale_document(include_receipts=True) and self.partner_id:
            company = self.company_id or self.env.company
            journal = self.partner_id._billing_invoice_journal(company)
            if journal:
                return journal
        journal = super()._search_default_journal()
        if journal.billing_reseller_id:
            Journal = self.env["account.journal"]
            journal = (
                Journal.search(
                    [
                        *Journal._check_company_domain(
                            self.company_id or self.env.company
                        ),
                        ("type", "=", journal.type),
                        ("billing_reseller_id", "=", False),
                    ],
                    limit=1,
                )
                or journal
            )
        return journal

    @api.onchange("partner_id")
    def _onchange_partner_id_billing_journal(self):
        """On a new invoice, the journal follows the customer: its reseller's,
        or the company's own."""
        if (
            self.state == "draft"
            and not self.posted_before
            and self.is_sale_document(include_receipts=True)
        ):
            journal = self._search_default_journal()
            if journal and journal != self.journal_id:
                self.journal_id = journal

    def _get_starting_sequence(self):
        starting = super()._get_starting_sequence()
        start, _regex = self.journal_id._billing_sequence_start(starting)
        return start or starting

    def _get_last_sequence_domain(self, relaxed=False):
        # A reseller's journal numbers with its current prefix: the last number
        # is searched among the names of that prefix, so a new prefix starts at
        # 1 while the invoices already numbered keep theirs.
        where_string, param = super()._get_last_sequence_domain(relaxed=relaxed)
        if self.journal_id and self.date:
            _start, regex = self.journal_id._billing_sequence_start(
                super()._get_starting_sequence()
            )
            if regex:
                where_string += " AND sequence_prefix ~ %(billing_prefix_regex)s "
                param["billing_prefix_regex"] = regex
        return where_string, param

    def _get_mail_template(self):
        # The invoices issued in a reseller's journal are sent with the
        # white-label template: the reseller, not the company, is the seller.
        if self and all(move._billing_seller() for move in self):
            template = self.env.ref(
                "prepaid_postpaid_billing.mail_template_reseller_invoice",
                raise_if_not_found=False,
            )
            if template:
                return template
        return super()._get_mail_template()

    def _notify_by_email_prepare_rendering_context(
        self,
        message,
        msg_vals=False,
        model_description=False,
        force_email_company=False,
        force_email_lang=False,
    ):
        render_context = super()._notify_by_email_prepare_rendering_context(
            message,
            msg_vals=msg_vals,
            model_description=model_description,
            force_email_company=force_email_company,
            force_email_lang=force_email_lang,
        )
        # The email layout shows the reseller in the company's place (see
        # mail_templates_email_layouts.xml).
        render_context["billing_seller"] = self._billing_seller_values() if self else {}
        return render_context

    def _notify_get_reply_to(self, default=None):
        reply_to = super()._notify_get_reply_to(default=default)
        # The replies to a reseller's invoice go where Odoo sends them (the
        # catchall), under the reseller's name instead of the company's.
        for move in self:
            formatted = reply_to.get(move.id)
            seller = move._billing_seller()
            if not seller or not formatted or formatted == default:
                continue
            emails = email_split(formatted)
            if emails:
                reply_to[move.id] = move._billing_reply_to_formatted(
                    emails[0], seller.name
                )
        return reply_to

    def unlink(self):
        # Entries of wallet movements, and draft wallet payments, cannot be
        # deleted: refused before Odoo deletes their lines, so that the refusal
        # writes nothing (as @api.ondelete(at_uninstall=False), not on uninstall).
        if not self.env.context.get(MODULE_UNINSTALL_FLAG):
            self.check_access("unlink")  # the user's rights first, as Odoo's
            self.env["billing.wallet"].sudo()._check_entries_undoable(self, delete=True)
        return super().unlink()

    def _invoice_paid_hook(self):
        res = super()._invoice_paid_hook()
        self._billing_credit_topups()
        return res

    # -------------------------------------------------------------------------
    # ACTION METHODS
    # -------------------------------------------------------------------------

    def button_cancel(self):
        res = super().button_cancel()
        self.env["billing.charge"]._release_cancelled_invoices(self)
        return res

    def button_draft(self):
        # Entries booking wallet movements are refused, but wallet payments:
        # their amount goes back to the wallet, and top-ups no longer paid give
        # their credit back. A cancelled invoice reset to draft bills its usage
        # again.
        # sudo: the wallets of these entries' customers, kept equal to the books
        # whoever resets them.
        Wallet = self.env["billing.wallet"].sudo()
        Wallet._check_entries_undoable(self)
        self.env["billing.charge"]._rebill_cancelled_invoices(self)
        drafted = Wallet._wallet_payments_to_refund(self)
        res = super(
            AccountMove, self.with_context(billing_wallet_drafting=self.ids)
        ).button_draft()
        Wallet._refund_drafted_payments(drafted)
        Wallet._take_back_unpaid_topups(self.sudo())
        Wallet._restore_topup_refunds(self.sudo())
        return res

    def action_billing_pay_from_wallet(self):
        """Pay the residual of these customer invoices from their customers'
        wallets, or as much of it as the balance allows: Billing Users only."""
        if not self.env.user.has_group("prepaid_postpaid_billing.group_billing_user"):
            raise AccessError(
                self.env._("Only Billing Users can pay invoices from the wallet.")
            )
        self.check_access("write")
        for move in self:
            move._billing_check_wallet_payable()
            wallet = (
                self.env["billing.wallet"]
                .sudo()
                ._get_wallet(move.partner_id, move.company_id, create=False)
            )
            amount = min(move.amount_residual, wallet._spendable() if wallet else 0.0)
            if move.currency_id.compare_amounts(amount, 0) <= 0:
                raise UserError(
                    self.env._(
                        "Invoice %(invoice)s cannot be paid from the wallet: "
                        "%(partner)s has no credit.",
                        invoice=move.display_name,
                        partner=move.partner_id.commercial_partner_id.display_name,
                    )
                )
            move._billing_pay_from_wallet(amount)
        return True

    def action_billing_approve_drafts(self):
        """Post the selected draft recurring invoices (emailed when their schedule
        says so). Returns a notification of what was approved and what was not."""
        if not self.env.user.has_group("prepaid_postpaid_billing.group_billing_user"):
            raise AccessError(
                self.env._("Only Billing Users can approve recurring invoices.")
            )
        self.check_access("write")
        drafts = self.filtered(
            lambda move: move.state == "draft" and move.billing_recurring_id
        )
        approved = self.browse()
        problems = []
        for move in drafts:
            try:
                with self.env.cr.savepoint():
                    move.action_post()
                approved |= move
            except (UserError, ValidationError) as error:
                problems.append(f"{move.display_name}: {error}")
        approved._billing_send_recurring_invoices()
        skipped = len(self) - len(drafts)
        message = self.env._("%(approved)s invoices approved.", approved=len(approved))
        if skipped:
            message += " " + self.env._(
                "%(count)s skipped: not draft recurring invoices.", count=skipped
            )
        if problems:
            message += " " + self.env._(
                "Not approved: %(problems)s", problems="; ".join(problems)
            )
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "title": self.env._("Approve Drafts"),
                "message": message,
                "type": "warning" if problems or skipped else "success",
                "sticky": bool(problems),
                "next": {"type": "ir.actions.act_window_close"},
            },
        }

    def action_billing_download_register(self):
        """Download the Excel invoice register of these invoices, or of every
        invoice of the list's filter when the user selected all its records
        (see ``_billing_register_selection``)."""
        domain, scope = self._billing_register_selection()
        register = self.env["billing.invoice.register"].create(
            {
                "domain": domain,
                "scope": scope,
                "company_ids": [Command.set(self.env.companies.ids)],
            }
        )
        return register.action_download()

    def action_billing_download_charge_history(self):
        """Download the Excel charge history of this invoice."""
        self.ensure_one()
        self.check_access("read")
        if not self.billing_charge_count:
            raise UserError(
                self.env._(
                    "Invoice %(invoice)s bills no usage records or charges: it has "
                    "no charge history.",
                    invoice=self.display_name,
                )
            )
        return {
            "type": "ir.actions.act_url",
            "url": f"/billing/charge_history/{self.id}",
            "target": "download",
        }

    # -------------------------------------------------------------------------
    # BUSINESS METHODS
    # -------------------------------------------------------------------------

    def _billing_register_selection(self):
        """The search domain of the invoices of a *Download Invoice Report* and
        its scope (``selection`` or ``filter``).

        When the user selects every record of a list's filter, the web client
        sends the first ``web.active_ids_limit`` ids of the filter only, with
        its domain in ``active_domain``: then the whole domain is exported.
        Otherwise the ids are the selection, and they are exported."""
        context = self.env.context
        domain = context.get("active_domain")
        if domain is not None and context.get("active_model") == self._name and self:
            # sudo: a setting of the web client, not a secret.
            limit = int(
                self.env["ir.config_parameter"]
                .sudo()
                .get_param("web.active_ids_limit", "20000")
            )
            if len(self) >= limit and set(
                self.search(domain, limit=len(self)).ids
            ) == set(self.ids):
                return domain, "filter"
        if not self:
            raise UserError(self.env._("Select the invoices of the report."))
        self.check_access("read")
        return [("id", "in", self.ids)], "selection"

    def _billing_charge_history_xlsx(self):
        """Content of the Excel charge history of this invoice (see
        ``_billing_charge_history``)."""
        self.ensure_one()
        return self.env["billing.charge.history.xlsx"]._generate_xlsx(self)

    def _billing_charge_history_filename(self):
        self.ensure_one()
        name = self.name if self.name and self.name != "/" else f"draft-{self.id}"
        return "charges-{}.xlsx".format(re.sub(r"[^\w.]+", "-", name).strip("-"))

    def _billing_seller(self):
        """The reseller shown as the seller of this customer invoice or credit
        note, in the company's place: the reseller whose journal issues it
        (every invoice of a reseller's customer is, see
        ``_search_default_journal``), so that the header and the number agree;
        an empty recordset for the company's own invoices."""
        self.ensure_one()
        # sudo: the seller of an invoice is shown to whoever may read the
        # invoice (its customer, in the portal and in emails), as Odoo shows
        # the company; the customer may not read the reseller's partner or
        # journal otherwise.
        move = self.sudo()
        if not move.is_sale_document(include_receipts=True):
            return self.env["res.partner"]
        return move.journal_id.billing_reseller_id

    def _billing_seller_values(self):
        """Name, logo and contact of the reseller shown as the seller of this
        invoice (see ``res.partner._billing_seller_values``), used by the
        invoice PDF and the emails; an empty dict for the company's own
        invoices, shown as Odoo shows them."""
        seller = self._billing_seller()
        return seller._billing_seller_values() if seller else {}

    def _billing_seller_name(self):
        """Name of the seller of this invoice: its reseller's, else the
        company's (for the email templates)."""
        return (self._billing_seller() or self.sudo().company_id).name

    def _billing_email_from(self):
        """Sender of this invoice's emails (for the email templates): the
        invoice contact of its reseller for a reseller's invoice (False when
        that contact has no email, the sending user's then), else as Odoo's
        invoice email: the salesperson, else the company."""
        self.ensure_one()
        if self._billing_seller():
            return self._billing_seller_values()["email_formatted"]
        move = self.sudo()
        return (
            move.invoice_user_id.email_formatted
            or move.company_id.email_formatted
            or False
        )

    def _billing_reply_to_formatted(self, email, seller_name):
        """``email`` named "Seller Invoice-number", else "Invoice-number", else
        bare, whichever fits the 68 characters Odoo keeps a Reply-To header to
        (see ``_notify_get_reply_to_formatted_email``)."""
        self.ensure_one()
        length_limit = 68
        for name in (f"{seller_name} {self.display_name}", self.display_name):
            formatted = formataddr((name, email))
            if len(formatted) <= length_limit:
                return formatted
        return email

    def _billing_payment_url(self):
        """Full URL of this invoice's online payment page: the portal invoice with
        its payment dialog open."""
        self.ensure_one()
        return self.get_base_url() + self.get_portal_url(
            anchor="portal_pay", query_string="&payment=True"
        )

    def _billing_payment_qr_url(self):
        """The URL this invoice's payment QR code opens: its online payment page,
        while the invoice can be paid online (a posted customer invoice with an
        amount due, online payment enabled, no payment under way), as Odoo's
        portal offers "Pay Now"; False otherwise."""
        self.ensure_one()
        if not self._has_to_be_paid():
            return False
        return self._billing_payment_url() or False

    def _billing_payment_qr_code(self, url=None):
        """PNG data URI of a QR code encoding ``url`` (default: this invoice's
        payment URL, see ``_billing_payment_qr_url``); False when there is
        nothing to encode."""
        self.ensure_one()
        url = url or self._billing_payment_qr_url()
        if not url:
            return False
        code = qrcode.QRCode(
            error_correction=PAYMENT_QR_ERROR_CORRECTION,
            box_size=PAYMENT_QR_BOX_SIZE,
            border=PAYMENT_QR_BORDER,
        )
        code.add_data(url)
        code.make(fit=True)
        stream = io.BytesIO()
        code.make_image(image_factory=PilImage).save(stream, format="PNG")
        return "data:image/png;base64," + base64.b64encode(stream.getvalue()).decode()

    def _billing_charge_history(self):
        """The usage records and charges this invoice bills, per service, oldest
        first: a list of dicts with ``product`` (product.product), ``charges``
        (billing.charge), ``quantity``, ``amount`` (sum of the charges at usage
        precision), ``invoiced`` (what the invoice's usage lines of that service
        bill, on the basis of their unit prices as the charges are: the
        charges' sum rounded to the currency) and ``taxes_included`` (whether
        those prices include taxes, see ``billing.charge._usage_lines_invoiced``)."""
        self.ensure_one()
        self.check_access("read")
        # sudo: what an invoice bills is part of the invoice; whoever may read the
        # invoice (an accountant without Billing access, the customer on the
        # portal) sees its charges, and only those linked to its own lines.
        charges = (
            self.env["billing.charge"]
            .sudo()
            .search(
                [("invoice_line_id", "in", self.invoice_line_ids.ids)],
                order="product_id, date, id",
            )
        )
        history = []
        for product, product_charges in charges.grouped("product_id").items():
            invoiced, taxes_included = charges._usage_lines_invoiced(
                product_charges.invoice_line_id
            )
            history.append(
                {
                    "product": product,
                    "charges": product_charges,
                    "quantity": sum(product_charges.mapped("quantity")),
                    "amount": sum(product_charges.mapped("amount")),
                    "invoiced": invoiced,
                    "taxes_included": taxes_included,
                }
            )
        return history

    def _billing_send_recurring_invoices(self):
        """Email the confirmed recurring invoices whose schedule asks for it; the
        mails go through the mail queue."""
        to_send = self.filtered(
            lambda move: (
                move.state == "posted"
                and move.billing_recurring_id.send_email
                and move.partner_id.email
            )
        )
        if to_send:
            self.env["account.move.send"]._generate_and_send_invoices(
                to_send, sending_methods=["email"], allow_raising=False
            )

    def _billing_topup_lines(self):
        self.ensure_one()
        return self.invoice_line_ids.filtered(
            lambda line: (
                line.display_type == "product"
                and line.product_id
                and line.product_id.product_tmpl_id._billing_is_topup()
            )
        )

    def _billing_credit_topups(self):
        """Credit the wallets of these paid top-up invoices, once a payment, in
        proportion to the money received (see ``billing.wallet._credit_topups``),
        and tell the customers."""
        # sudo: runs when an invoice becomes paid, whoever paid it (an accountant,
        # a payment provider's callback as the public user); the wallet credited is
        # the invoice customer's and the amounts come from the posted invoice.
        credited = self.env["billing.wallet"].sudo()._credit_topups(self.sudo())
        for move in credited:
            move._billing_notify_topup_credited()

    def _billing_notify_topup_credited(self):
        self.ensure_one()
        template = self.env.ref(
            "prepaid_postpaid_billing.mail_template_wallet_credited",
            raise_if_not_found=False,
        )
        if template:
            self.with_context(mail_notify_force_send=False).message_post_with_source(
                template, subtype_xmlid="mail.mt_comment"
            )

    def _billing_check_wallet_payable(self):
        """Raise a UserError saying why this invoice cannot be paid from the
        wallet."""
        self.ensure_one()
        problem = None
        if self.move_type != "out_invoice" or self.state != "posted":
            problem = self.env._("only posted customer invoices can be")
        elif self.billing_is_topup:
            problem = self.env._("a top-up invoice credits the wallet")
        elif self.payment_state in PAID_STATES or self.currency_id.is_zero(
            self.amount_residual
        ):
            problem = self.env._("it is already paid")
        elif self.currency_id != self.company_id.currency_id:
            problem = self.env._(
                "the wallet is kept in %(currency)s",
                currency=self.company_id.currency_id.name,
            )
        elif not self.company_id.billing_wallet_journal_id:
            problem = self.env._("the company has no Customer Wallet Journal")
        if problem:
            raise UserError(
                self.env._(
                    "Invoice %(invoice)s cannot be paid from the wallet: %(problem)s.",
                    invoice=self.display_name,
                    problem=problem,
                )
            )

    def _billing_pay_from_wallet(self, amount):
        """Pay ``amount`` of this invoice from the customer's wallet: a payment in
        the wallet journal, reconciled with the invoice, and a wallet debit."""
        self.ensure_one()
        self._billing_check_wallet_payable()
        company = self.company_id
        # sudo: the caller checked the user may write this invoice; the payment and
        # the debit only move the invoice customer's own credit to this invoice.
        wallet = self.env["billing.wallet"].sudo()._get_wallet(self.partner_id, company)
        wallet._lock()
        journal = company.billing_wallet_journal_id
        payment = (
            self.env["account.payment"]
            .sudo()
            .with_context(billing_wallet_payment=True)
            .create(
                {
                    "payment_type": "inbound",
                    "partner_type": "customer",
                    "partner_id": self.commercial_partner_id.id,
                    "amount": amount,
                    "currency_id": company.currency_id.id,
                    "journal_id": journal.id,
                    "payment_method_line_id": journal.inbound_payment_method_line_ids[
                        :1
                    ].id,
                    "date": fields.Date.context_today(self),
                    "memo": self.name,
                    "invoice_ids": [fields.Command.set(self.ids)],
                }
            )
        )
        payment.action_post()
        (payment.move_id.line_ids + self.line_ids).filtered(
            lambda line: (
                line.account_id.account_type == "asset_receivable"
                and not line.reconciled
            )
        ).reconcile()
        wallet._apply_movements(
            [
                {
                    "kind": "invoice_payment",
                    "name": self.env._("Payment of %(invoice)s", invoice=self.name),
                    "amount": -amount,
                    "origin": self.name,
                    "idempotency_key": f"invoice_payment:{payment.id}",
                    "account_move_id": payment.move_id.id,
                    "invoice_id": self.id,
                }
            ]
        )
        return payment

    def _billing_auto_pay_from_wallet(self):
        """Pay these just-posted customer invoices from the wallet when the company
        allows it or a product asks for it, and the balance covers them; say in
        the chatter why an invoice was not; never when the caller registers the
        payment received instead (``billing_skip_wallet_auto_pay`` in the
        context, Create & Claim)."""
        if self.env.context.get("billing_skip_wallet_auto_pay"):
            return
        Wallet = self.env["billing.wallet"].sudo()
        wallets = {
            company: Wallet._get_wallets(moves.partner_id, company, create=False)
            for company, moves in self.grouped("company_id").items()
        }
        for move in self:
            flagged = any(
                move.invoice_line_ids.product_id.mapped("billing_pay_from_wallet")
            )
            if not (move.company_id.billing_wallet_allow_payments or flagged):
                continue
            if move.currency_id.is_zero(move.amount_residual):
                continue
            customer = move.partner_id.commercial_partner_id
            wallet = wallets[move.company_id].get(customer.id, Wallet)
            if not (wallet or flagged or customer.billing_mode == "prepaid"):
                continue
            reason = None
            if move.currency_id != move.company_id.currency_id:
                reason = self.env._(
                    "the wallet is kept in %(currency)s",
                    currency=move.company_id.currency_id.name,
                )
            elif not wallet._covers(move.amount_residual):
                reason = self.env._(
                    "the wallet balance of %(balance)s does not cover %(amount)s",
                    balance=Wallet._format_amount_exact(
                        wallet.balance, move.company_currency_id
                    ),
                    amount=move.currency_id.format(move.amount_residual),
                )
            else:
                try:
                    with self.env.cr.savepoint():
                        move._billing_pay_from_wallet(move.amount_residual)
                except (UserError, ValidationError) as error:
                    reason = str(error)
            if reason:
                move.message_post(
                    body=self.env._(
                        "Not paid from the wallet: %(reason)s.", reason=reason
                    )
                )

    def _billing_topup_payment_in_flight(self):
        """Whether an online payment of this invoice is still being processed: a
        transaction the provider has pending or authorized, that can still be
        confirmed, or one confirmed whose payment is still to be created. A draft
        transaction (the customer was sent to the payment page) does not count: a
        confirmation of it after the expiry reopens the invoice (see
        ``_billing_reopen_expired_topups``)."""
        self.ensure_one()
        # sudo: the transactions of the invoice, whoever runs the expiry.
        transactions = self.sudo().transaction_ids
        if not transactions:
            return False
        # Wait for a provider notification updating them right now, and read
        # their committed state.
        self.env.cr.execute(
            SQL(
                "SELECT id FROM payment_transaction WHERE id = ANY(%s) "
                "ORDER BY id FOR UPDATE",
                transactions.ids,
            )
        )
        transactions.invalidate_recordset(["state", "is_post_processed"])
        return bool(transactions.filtered_domain(IN_FLIGHT_TX_DOMAIN))

    def _billing_expire_topup(self):
        """Cancel this unpaid top-up invoice and tell the customer; not while an
        online payment of it is in flight. Returns whether it was cancelled."""
        self.ensure_one()
        if self._billing_topup_payment_in_flight():
            return False
        self.button_draft()
        self.button_cancel()
        self.billing_topup_expires_at = False
        self.billing_topup_expired = True
        template = self.env.ref(
            "prepaid_postpaid_billing.mail_template_topup_expired",
            raise_if_not_found=False,
        )
        if template:
            self.message_post_with_source(template, subtype_xmlid="mail.mt_comment")
        return True

    def _billing_reopen_expired_topups(self):
        """Post again these top-up invoices cancelled by the expiry, an online
        payment of which was confirmed afterwards: the payment then reconciles
        with the invoice and credits the wallet, instead of failing on a
        cancelled invoice."""
        for move in self.filtered(
            lambda m: m.state == "cancel" and m.billing_topup_expired
        ):
            move.button_draft()
            move.action_post()
            move.billing_topup_expired = False
            move.message_post(
                body=self.env._(
                    "Reopened: an online payment of this expired top-up was "
                    "confirmed by the payment provider."
                )
            )

    @api.model
    def _cron_billing_expire_topups(self, batch_size=200):
        """Cancel the top-up invoices still unpaid when their window has passed."""
        # Not while an online payment is in flight: it is picked again once its
        # transaction is final (cancelled or failed; a confirmed one paid it once
        # post-processed).
        domain = [
            ("billing_topup_expires_at", "<=", fields.Datetime.now()),
            ("state", "=", "posted"),
            ("payment_state", "=", "not_paid"),
            ("transaction_ids", "not any", IN_FLIGHT_TX_DOMAIN),
        ]
        moves = self.search(domain, limit=batch_size, order="billing_topup_expires_at")
        done = 0
        for move in moves:
            try:
                with self.env.cr.savepoint():
                    expired = move._billing_expire_topup()
                done += 1 if expired else 0
            except (
                errors.SerializationFailure,
                errors.LockNotAvailable,
            ):
                # Its payment changed meanwhile: the next run sees it as it is.
                _logger.info("Unpaid top-up %s is being paid: skipped.", move.name)
            except (UserError, ValidationError) as error:
                _logger.warning(
                    "Unpaid top-up %s could not be cancelled: %s", move.name, error
                )
                # Keep it from blocking the next batches; it stays open.
                move.billing_topup_expires_at = False
        remaining = self.search_count(domain)
        self.env["ir.cron"]._notify_progress(done=done, remaining=remaining)
        return done
