from odoo import Command, http
from odoo.exceptions import AccessError, MissingError, UserError
from odoo.http import request

from odoo.addons.portal.controllers.portal import CustomerPortal

MAX_PACKAGES_PER_ORDER = 100
# The largest id PostgreSQL's integer columns hold: a record id in a URL beyond
# it is no record (searching for it would fail in the database).
MAX_RECORD_ID = 2**31 - 1
# Decimals of wallet amounts finer than a cent on the portal.
PORTAL_DIGITS = 4


def portal_wallet():
    """The portal user's own wallet in the current company, read with the
    user's rights (portal users read their own)."""
    return request.env["billing.wallet"].search(
        [
            ("partner_id", "=", request.env.user.partner_id.commercial_partner_id.id),
            ("company_id", "=", request.env.company.id),
        ]
    )


def is_record_id(value):
    """Whether ``value`` (an id from a URL) can be a record's id."""
    return isinstance(value, int) and 0 < value <= MAX_RECORD_ID


def billing_portal_customer():
    """The billing customer the portal user acts for: their commercial partner,
    for portal users only (an employee is not a customer of the company; their
    /my pages show no billing entries). Empty otherwise."""
    user = request.env.user
    if not user._is_portal():
        return request.env["res.partner"]
    return user.partner_id.commercial_partner_id


def format_portal_amount(amount):
    """A wallet amount as the portal shows it: with the currency's decimals,
    or PORTAL_DIGITS where the exact amount has more (usage at fractions of a
    cent)."""
    return request.env["billing.wallet"]._format_amount_exact(
        amount, request.env.company.currency_id, finer_digits=PORTAL_DIGITS
    )


class BillingPortal(CustomerPortal):
    def _prepare_home_portal_values(self, counters):
        values = super()._prepare_home_portal_values(counters)
        if "billing_wallet_count" in counters:
            values["billing_wallet_count"] = self._billing_wallet_counter()
        return values

    def _billing_wallet_counter(self):
        """What the portal home shows on its Wallet entry: the balance of the
        billing customer's wallet, for a customer who has one or is prepaid (and
        can buy credit); 0, which hides the entry, for anyone else."""
        customer = billing_portal_customer()
        wallet = portal_wallet() if customer else None
        if not customer or not (wallet or customer.billing_mode == "prepaid"):
            return 0
        return format_portal_amount(wallet.balance)

    # -------------------------------------------------------------------------
    # Helpers
    # -------------------------------------------------------------------------

    def _billing_customer(self):
        return request.env.user.partner_id.commercial_partner_id

    def _billing_wallet_packages(self):
        """Credit packages on sale in the current company."""
        # sudo: the catalog of credit packages (name, price, credit) is public
        # information shown to every customer; nothing else is read.
        return (
            request.env["product.product"]
            .sudo()
            .search(
                [
                    ("billing_topup_credit", ">", 0),
                    ("sale_ok", "=", True),
                    ("company_id", "in", (False, request.env.company.id)),
                ],
                order="list_price, id",
            )
        )

    # -------------------------------------------------------------------------
    # Routes
    # -------------------------------------------------------------------------

    @http.route(["/my/wallet"], type="http", auth="user", website=True)
    def portal_my_wallet(self, error=None, **kw):
        wallet = portal_wallet()
        values = self._prepare_portal_layout_values()
        values.update(
            {
                "page_name": "billing_wallet",
                "customer": self._billing_customer(),
                "wallet": wallet,
                "balance": wallet.balance,
                "currency": request.env.company.currency_id,
                "billing_format_amount": format_portal_amount,
                "wallet_moves": wallet.move_ids[:100],
                "packages": self._billing_wallet_packages(),
                "topup_refusal": request.env["billing.wallet"]._portal_topup_refusal(
                    self._billing_customer(), request.env.company
                ),
                "error": error,
            }
        )
        return request.render("prepaid_postpaid_billing.portal_my_wallet", values)

    @http.route(
        ["/my/wallet/buy"], type="http", auth="user", methods=["POST"], website=True
    )
    def portal_my_wallet_buy(self, product_id=None, quantity="1", **kw):
        """Invoice a credit package to the portal user's own company and send the
        user to the invoice's payment page; the wallet is credited once the
        invoice is paid."""
        product = self._billing_wallet_packages().filtered(
            lambda p: str(p.id) == str(product_id)
        )
        try:
            quantity = int(quantity)
        except ValueError:
            quantity = 0
        if not product or not 1 <= quantity <= MAX_PACKAGES_PER_ORDER:
            return request.redirect("/my/wallet?error=package")
        customer = self._billing_customer()
        refusal = request.env["billing.wallet"]._portal_topup_refusal(
            customer, request.env.company
        )
        if refusal:
            return request.redirect(f"/my/wallet?error={refusal[0]}")
        # sudo: portal users cannot create invoices; this one is for the user's
        # own commercial partner, of a credit package checked just above, at the
        # product's own price.
        try:
            # A refused posting leaves no draft behind: the savepoint undoes it.
            with request.env.cr.savepoint():
                invoice = (
                    request.env["account.move"]
                    .sudo()
                    .with_company(request.env.company)
                    .create(
                        {
                            "move_type": "out_invoice",
                            "partner_id": customer.id,
                            "invoice_line_ids": [
                                Command.create(
                                    {"product_id": product.id, "quantity": quantity}
                                )
                            ],
                        }
                    )
                )
                invoice.action_post()
        except UserError:
            return request.redirect("/my/wallet?error=invoice")
        return request.redirect(
            invoice.get_portal_url(query_string="&payment=True", anchor="portal_pay")
        )

    @http.route(
        ["/my/invoices/<int:invoice_id>/pay_from_wallet"],
        type="http",
        auth="user",
        methods=["POST"],
        website=True,
    )
    def portal_my_invoice_pay_from_wallet(self, invoice_id, **kw):
        """Pay all that the portal user's own open invoice still owes from the
        wallet, as the backend's Pay from Wallet does, when the balance covers
        it; back to the invoice's page, which says what happened."""
        if not is_record_id(invoice_id):
            return request.not_found()
        try:
            invoice = self._document_check_access("account.move", invoice_id)
        except (AccessError, MissingError):
            return request.not_found()
        outcome = "paid"
        try:
            # sudo: the invoice was checked just above to be readable by the user,
            # and _portal_pay_invoice pays it only for its own customer, from that
            # customer's wallet, when the balance covers all it owes. A refusal
            # leaves nothing behind (the savepoint).
            with request.env.cr.savepoint():
                request.env["billing.wallet"].sudo()._portal_pay_invoice(
                    invoice, self._billing_customer()
                )
        except AccessError:
            return request.not_found()
        except UserError:
            outcome = "refused"
        return request.redirect(
            invoice.get_portal_url(query_string=f"&billing_wallet={outcome}")
        )
