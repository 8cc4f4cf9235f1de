from unittest.mock import patch

from odoo import Command
from odoo.tests import new_test_user

from odoo.addons.account.tests.common import AccountTestInvoicingCommon

from .common import RollbackAssertMixin


class BillingWalletCommon(RollbackAssertMixin, AccountTestInvoicingCommon):
    """A company with its chart of accounts (hence its wallet accounts), a prepaid
    customer, a credit package (price 100, credit 150) and a plain service."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.company = cls.company_data["company"]
        # The accountant running these tests administers billing too.
        cls.env.user.groups_id += cls.env.ref(
            "prepaid_postpaid_billing.group_billing_manager"
        )
        cls.currency = cls.company.currency_id
        cls.bank_journal = cls.company_data["default_journal_bank"]
        cls.customer = cls.env["res.partner"].create(
            {
                "name": "Prepaid Customer",
                "is_company": True,
                "email": "prepaid@example.com",
                "billing_mode": "prepaid",
            }
        )
        cls.other_customer = cls.env["res.partner"].create(
            {"name": "Other Customer", "is_company": True, "billing_mode": "prepaid"}
        )
        cls.package = cls.env["product.product"].create(
            {
                "name": "Credit Package 100",
                "type": "service",
                "list_price": 100.0,
                "billing_topup_credit": 150.0,
                "taxes_id": [Command.clear()],
            }
        )
        cls.recharge = cls.env.ref(
            "prepaid_postpaid_billing.product_product_wallet_recharge"
        )
        cls.service = cls.env["product.product"].create(
            {
                "name": "Messaging Service",
                "type": "service",
                "list_price": 30.0,
                "taxes_id": [Command.clear()],
            }
        )
        cls.billing_manager = new_test_user(
            cls.env,
            login="wallet_manager",
            groups="prepaid_postpaid_billing.group_billing_manager",
            company_id=cls.company.id,
            company_ids=[Command.set(cls.company.ids)],
        )
        cls.billing_user = new_test_user(
            cls.env,
            login="wallet_user",
            groups="prepaid_postpaid_billing.group_billing_user",
            company_id=cls.company.id,
            company_ids=[Command.set(cls.company.ids)],
        )

    @classmethod
    def _setup_test_provider(cls):
        """A test payment provider of the company, paying into its bank journal,
        to make real online payments with (``_transaction``)."""
        PaymentMethod = cls.env["account.payment.method"]
        method_information = PaymentMethod._get_payment_method_information()
        method_information["none"] = {"mode": "electronic", "type": ("bank",)}
        # The payment method of the test provider, as Odoo's account_payment
        # tests declare it.
        cls.payment_method = cls.env.ref("payment.payment_method_unknown")
        with patch.object(
            type(PaymentMethod),
            "_get_payment_method_information",
            lambda self: method_information,
        ):
            PaymentMethod.sudo().create(
                {"name": "Test provider", "code": "none", "payment_type": "inbound"}
            )
            cls.provider = cls.env["payment.provider"].create(
                {
                    "name": "Test Provider",
                    "code": "none",
                    "state": "test",
                    "company_id": cls.company.id,
                    "payment_method_ids": [Command.set(cls.payment_method.ids)],
                }
            )
            cls.provider.journal_id = cls.bank_journal
        cls.payment_method.active = True
        cls.tx_count = 0

    # -------------------------------------------------------------------------
    # Helpers
    # -------------------------------------------------------------------------

    def _invoice(self, lines, partner=None, post=True):
        """A customer invoice; ``lines`` are (product, quantity, price_unit)."""
        invoice = self.env["account.move"].create(
            {
                "move_type": "out_invoice",
                "partner_id": (partner or self.customer).id,
                "invoice_date": "2026-11-01",
                "invoice_line_ids": [
                    Command.create(
                        {
                            "product_id": product.id,
                            "quantity": quantity,
                            "price_unit": price,
                            "tax_ids": [Command.clear()],
                        }
                    )
                    for product, quantity, price in lines
                ],
            }
        )
        if post:
            invoice.action_post()
        return invoice

    def _pay(self, invoice, amount=None, journal=None):
        """Register a payment of ``invoice`` as an accountant would."""
        vals = {"journal_id": (journal or self.bank_journal).id}
        if amount is not None:
            vals["amount"] = amount
        wizard = (
            self.env["account.payment.register"]
            .with_context(active_model="account.move", active_ids=invoice.ids)
            .create(vals)
        )
        return wizard._create_payments()

    def _transaction(self, invoice, state=None):
        """An online payment of ``invoice``, brought to ``state`` as the
        provider's notifications do."""
        self.tx_count += 1
        tx = (
            self.env["payment.transaction"]
            .sudo()
            .create(
                {
                    "provider_id": self.provider.id,
                    "payment_method_id": self.payment_method.id,
                    "amount": invoice.amount_residual,
                    "currency_id": invoice.currency_id.id,
                    "partner_id": invoice.partner_id.id,
                    "reference": f"{invoice.name}-TEST-{self.tx_count}",
                    "operation": "online_redirect",
                    "invoice_ids": [Command.set(invoice.ids)],
                }
            )
        )
        if state:
            self._set_state(tx, state)
        return tx

    def _set_state(self, tx, state):
        {
            "pending": tx._set_pending,
            "authorized": tx._set_authorized,
            "done": tx._set_done,
            "cancel": tx._set_canceled,
            "error": lambda: tx._set_error("Declined by the test provider."),
        }[state]()
        # What the provider's notification or the post-processing cron runs next.
        tx._post_process()

    def _wallet(self, partner=None):
        return (
            self.env["billing.wallet"]
            .sudo()
            ._get_wallet(partner or self.customer, self.company, create=False)
        )

    def _fund(self, amount, partner=None):
        """Give ``partner`` ``amount`` of credit by a paid recharge."""
        invoice = self._invoice([(self.recharge, 1, amount)], partner=partner)
        self._pay(invoice)
        return invoice

    def _account_balance(self, account, partner=None):
        """Balance of the posted lines of ``account`` (for ``partner``)."""
        domain = [("account_id", "=", account.id), ("parent_state", "=", "posted")]
        if partner:
            domain.append(("partner_id", "=", partner.id))
        lines = self.env["account.move.line"].search(domain)
        return sum(lines.mapped("balance"))

    def _post_consumption(self):
        """Book the prepaid consumption not yet posted, as the scheduled action
        does; returns how many wallets were posted."""
        return self.env["billing.wallet"]._post_consumption_run()

    def assertBooksMatchWallet(self, partner=None):
        """Invariant 1: the customer's credit on the wallet account equals its
        wallet balance plus its consumption not yet posted, to the cent."""
        partner = partner or self.customer
        self.env.flush_all()
        credit = -self._account_balance(self.company.billing_wallet_account_id, partner)
        wallet = self._wallet(partner)
        wallet.invalidate_recordset()
        expected = wallet.balance + wallet.unposted_consumption if wallet else 0.0
        self.assertEqual(
            self.currency.compare_amounts(credit, expected),
            0,
            f"wallet account: {credit}, wallet balance {wallet.balance} + not yet "
            f"posted {wallet.unposted_consumption}",
        )
