from odoo import api, fields, models
from odoo.exceptions import ValidationError
from odoo.tools import is_html_empty

from .billing_wallet import WALLET_AMOUNT_LIMIT

BILLING_MODES = [("prepaid", "Prepaid"), ("postpaid", "Postpaid")]
LIABILITY_DOMAIN = [
    ("account_type", "in", ("liability_current", "liability_non_current"))
]


class ResCompany(models.Model):
    _inherit = "res.company"

    billing_offer_prepaid = fields.Boolean(
        string="Offer Prepaid Billing",
        default=True,
        help="Customers of this company may be billed in advance from a credit wallet.",
    )
    billing_offer_postpaid = fields.Boolean(
        string="Offer Postpaid Billing",
        default=True,
        help="Customers of this company may be billed after use by recurring invoices.",
    )
    billing_default_mode = fields.Selection(
        selection=BILLING_MODES,
        string="Default Billing Mode",
        default="prepaid",
        required=True,
        help="Billing mode given to new customers unless another one is chosen.",
    )
    billing_invoice_terms = fields.Html(
        string="Billing Terms and Conditions",
        translate=True,
        help="Terms and conditions proposed on invoices created from the Billing app.",
    )
    billing_customer_notes = fields.Html(
        translate=True,
        help="Notes to the customer proposed on invoices created from the Billing app.",
    )
    billing_generation_mode = fields.Selection(
        selection=[("draft", "Drafts to approve"), ("confirm", "Confirmed")],
        string="Recurring Invoices",
        default="draft",
        required=True,
        help="Whether new recurring invoices create drafts to approve or confirmed "
        "invoices.",
    )
    billing_wallet_account_id = fields.Many2one(
        comodel_name="account.account",
        string="Customer Wallet Account",
        check_company=True,
        domain=LIABILITY_DOMAIN,
        help="Liability account holding the credit customers have paid for and not "
        "used yet.",
    )
    billing_wallet_journal_id = fields.Many2one(
        comodel_name="account.journal",
        string="Customer Wallet Journal",
        check_company=True,
        domain="[('type', '=', 'cash')]",
        help="Journal of the wallet credits, debits and payments from the wallet.",
    )
    billing_wallet_topup_account_id = fields.Many2one(
        comodel_name="account.account",
        string="Pending Top-ups Account",
        check_company=True,
        domain=LIABILITY_DOMAIN,
        help="Account of credit package and recharge invoice lines, until the invoice "
        "is paid and its credit moves to the wallet.",
    )
    billing_wallet_bonus_account_id = fields.Many2one(
        comodel_name="account.account",
        string="Wallet Bonus Account",
        check_company=True,
        help="Account of credit granted above the price paid (package bonus) and of "
        "manual credits and debits.",
    )
    billing_wallet_allow_payments = fields.Boolean(
        string="Allow Payments from Wallet",
        help="Pay every customer invoice from the customer's wallet when it is "
        "posted, if the balance covers it. When off, only invoices with a product "
        "set to be paid from the wallet are.",
    )
    billing_topup_expiry_hours = fields.Integer(
        string="Unpaid Top-up Window (hours)",
        default=48,
        help="Credit package and recharge invoices still unpaid this many hours "
        "after they were posted are cancelled. 0 keeps them open.",
    )
    billing_service_reminder_days = fields.Integer(
        string="Renewal Reminder (days before)",
        default=7,
        help="Customers are emailed this many days before each renewal of a "
        "service. 0 sends no reminder.",
    )
    billing_service_grace_days = fields.Integer(
        string="Grace Days Before Suspension",
        default=0,
        help="A prepaid service whose renewal the wallet does not cover stays "
        "active this many days after its renewal date, renewed as soon as credit "
        "arrives, before it is suspended. 0 suspends it at once.",
    )

    billing_low_balance_threshold = fields.Monetary(
        string="Low Balance Alert",
        currency_field="currency_id",
        default=0.0,
        help="Prepaid customers are emailed once when a debit leaves their wallet "
        "balance below this amount, again after a credit brought it back to it "
        "or above. A wallet may have its own threshold. 0: no alert.",
    )
    billing_zero_balance_alert = fields.Boolean(
        string="Zero Balance Alert",
        help="Prepaid customers are also emailed once when a debit leaves their "
        "wallet at zero (their services are suspended), again after a credit "
        "brought it above zero.",
    )
    billing_alert_notify_reseller = fields.Boolean(
        string="Notify Resellers of Alerts",
        help="A reseller's customers' low and zero balance alerts are also "
        "emailed to the reseller.",
    )

    # -------------------------------------------------------------------------
    # CONSTRAINT METHODS
    # -------------------------------------------------------------------------

    @api.constrains(
        "billing_offer_prepaid", "billing_offer_postpaid", "billing_default_mode"
    )
    def _check_billing_modes(self):
        labels = dict(BILLING_MODES)
        for company in self:
            if not (company.billing_offer_prepaid or company.billing_offer_postpaid):
                raise ValidationError(
                    self.env._(
                        "Company %(company)s must offer at least one billing mode "
                        "(Offer Prepaid Billing or Offer Postpaid Billing).",
                        company=company.name,
                    )
                )
            if not company._billing_mode_offered(company.billing_default_mode):
                raise ValidationError(
                    self.env._(
                        "Default Billing Mode of company %(company)s is %(mode)s, "
                        "which the company does not offer.",
                        company=company.name,
                        mode=labels[company.billing_default_mode],
                    )
                )

    @api.constrains("billing_topup_expiry_hours")
    def _check_billing_topup_expiry_hours(self):
        for company in self:
            if company.billing_topup_expiry_hours < 0:
                raise ValidationError(
                    self.env._(
                        "Unpaid Top-up Window of company %(company)s cannot be "
                        "negative (%(hours)s hours).",
                        company=company.name,
                        hours=company.billing_topup_expiry_hours,
                    )
                )

    @api.constrains("billing_low_balance_threshold")
    def _check_billing_low_balance_threshold(self):
        for company in self:
            amount = company.billing_low_balance_threshold
            if amount < 0 or amount >= WALLET_AMOUNT_LIMIT:
                raise ValidationError(
                    self.env._(
                        "Low Balance Alert of company %(company)s must be from 0 "
                        "to below %(limit)s (%(amount)s).",
                        company=company.name,
                        limit=company.currency_id.format(WALLET_AMOUNT_LIMIT),
                        amount=company.currency_id.format(amount),
                    )
                )

    @api.constrains("billing_service_reminder_days", "billing_service_grace_days")
    def _check_billing_service_days(self):
        for company in self:
            for field in (
                "billing_service_reminder_days",
                "billing_service_grace_days",
            ):
                if company[field] < 0:
                    raise ValidationError(
                        self.env._(
                            "%(field)s of company %(company)s cannot be negative "
                            "(%(days)s days).",
                            field=self._fields[field].get_description(self.env)[
                                "string"
                            ],
                            company=company.name,
                            days=company[field],
                        )
                    )

    # -------------------------------------------------------------------------
    # BUSINESS METHODS
    # -------------------------------------------------------------------------

    def _billing_mode_offered(self, mode):
        """Tell whether this company offers the billing mode ``mode``."""
        self.ensure_one()
        return bool(self[f"billing_offer_{mode}"])

    def _billing_setup_wallet(self):
        """Create the wallet accounts and journal of companies that have a chart of
        accounts and miss them. Safe to call again."""
        for company in self.filtered("chart_template"):
            company = company.with_company(company)
            vals = {}
            if not company.billing_wallet_account_id:
                vals["billing_wallet_account_id"] = company._billing_create_account(
                    self.env._("Customer Wallet"), "liability_current", "2"
                ).id
            if not company.billing_wallet_topup_account_id:
                vals["billing_wallet_topup_account_id"] = (
                    company._billing_create_account(
                        self.env._("Pending Wallet Top-ups"), "liability_current", "2"
                    ).id
                )
            if not company.billing_wallet_bonus_account_id:
                vals["billing_wallet_bonus_account_id"] = (
                    company._billing_create_account(
                        self.env._("Wallet Bonus Credit"), "expense", "6"
                    ).id
                )
            if vals:
                company.write(vals)
            if not company.billing_wallet_journal_id:
                company.billing_wallet_journal_id = company._billing_create_journal()

    def _billing_invoice_text_vals(self):
        """Terms and conditions and customer notes that the Billing settings give
        the invoices of this company, when set."""
        self.ensure_one()
        vals = {}
        if not is_html_empty(self.billing_invoice_terms):
            vals["narration"] = self.billing_invoice_terms
        if not is_html_empty(self.billing_customer_notes):
            vals["billing_customer_notes"] = self.billing_customer_notes
        return vals

    def _billing_create_account(self, name, account_type, prefix):
        """A new account of ``account_type`` with a free code, as long as the
        company's other codes, starting with ``prefix``."""
        self.ensure_one()
        Account = self.env["account.account"].with_company(self)
        sample = Account.search(
            [*Account._check_company_domain(self), ("account_type", "=", account_type)],
            limit=1,
        )
        digits = len(sample.code) if sample.code and sample.code.isdigit() else 6
        start_code = prefix.ljust(digits, "0")
        return Account.create(
            {
                "name": name,
                "code": Account._search_new_account_code(start_code),
                "account_type": account_type,
                "reconcile": False,
            }
        )

    def _billing_create_journal(self):
        """The wallet journal: a cash-type journal whose liquidity account is the
        wallet account, so that payments from the wallet debit the customer's
        credit and settle the invoice at once."""
        self.ensure_one()
        Journal = self.env["account.journal"].with_company(self)
        code = "WLT"
        suffix = 1
        while Journal.search_count(
            [*Journal._check_company_domain(self), ("code", "=", code)], limit=1
        ):
            suffix += 1
            code = f"WLT{suffix}"
        journal = Journal.create(
            {
                "name": self.env._("Customer Wallet"),
                "code": code,
                "type": "cash",
                "company_id": self.id,
                "default_account_id": self.billing_wallet_account_id.id,
                "suspense_account_id": self.account_journal_suspense_account_id.id,
            }
        )
        journal.inbound_payment_method_line_ids.payment_account_id = (
            self.billing_wallet_account_id
        )
        journal.outbound_payment_method_line_ids.payment_account_id = (
            self.billing_wallet_account_id
        )
        return journal

    @api.ondelete(at_uninstall=False)
    def _unlink_except_billing_charges(self):
        # Usage records have no foreign key on their company (UsageMany2one).
        self.env["billing.charge"]._check_unreferenced(self, "company_id")
