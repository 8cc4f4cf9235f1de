from unittest import SkipTest
from unittest.mock import patch
from urllib.parse import parse_qs, urlparse

from odoo import Command, http
from odoo.tests import HttpCase, tagged

# What payment_paypal's tests patch: the calls to PayPal's API (creating the
# order when the transaction starts) and the check of a webhook's signature.
PAYPAL_REQUEST = (
    "odoo.addons.payment_paypal.models.payment_provider.PaymentProvider"
    "._paypal_make_request"
)
PAYPAL_ORIGIN_CHECK = (
    "odoo.addons.payment_paypal.controllers.main.PaypalController"
    "._verify_notification_origin"
)
WEBHOOK_URL = "/payment/paypal/webhook/"


@tagged("post_install", "-at_install")
class TestBillingPaypal(HttpCase):
    """Top-ups and invoices paid in the portal through Odoo's PayPal provider
    (module payment_paypal, which scripts/test installs), its webhook
    notifications fed as PayPal sends them, each delivered twice as PayPal does
    when it does not get the acknowledgement in time: one payment, one credit,
    one email."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if cls.env["ir.module.module"]._get("payment_paypal").state != "installed":
            raise SkipTest("payment_paypal is not installed")
        cls.company = cls.env.company
        # As payment_paypal's tests prepare it (PaymentCommon._prepare_provider).
        cls.paypal = cls.env["payment.provider"].search(
            [("code", "=", "paypal"), ("company_id", "=", cls.company.id)], limit=1
        )
        cls.paypal.write(
            {
                "state": "test",
                "paypal_email_account": "dummy@test.mail.com",
                "paypal_client_id": "dummy_client_id",
                "paypal_client_secret": "dummy_secret",
            }
        )
        cls.paypal_method = cls.env.ref("payment.payment_method_paypal")
        cls.package = cls.env["product.product"].create(
            {
                "name": "PayPal Package 100",
                "type": "service",
                "list_price": 100.0,
                "billing_topup_credit": 150.0,
                "taxes_id": [Command.clear()],
            }
        )
        cls.service = cls.env["product.product"].create(
            {
                "name": "PayPal Hosted Service",
                "type": "service",
                "list_price": 40.0,
                "taxes_id": [Command.clear()],
            }
        )
        cls.prepaid = cls._customer("PayPal Prepaid Co", "prepaid", "paypal_prepaid")
        cls.postpaid = cls._customer(
            "PayPal Postpaid Co", "postpaid", "paypal_postpaid"
        )

    @classmethod
    def _customer(cls, name, mode, login):
        customer = cls.env["res.partner"].create(
            {
                "name": name,
                "is_company": True,
                "email": f"{login}@example.com",
                "billing_mode": mode,
            }
        )
        cls.env["res.users"].create(
            {
                "name": f"{name} Buyer",
                "login": login,
                "password": login,
                "email": f"{login}.buyer@example.com",
                "partner_id": cls.env["res.partner"]
                .create({"name": f"{name} Buyer", "parent_id": customer.id})
                .id,
                "groups_id": [Command.set([cls.env.ref("base.group_portal").id])],
            }
        )
        return customer

    # -------------------------------------------------------------------------
    # Helpers
    # -------------------------------------------------------------------------

    def _pay_with_paypal(self, invoice_id, access_token):
        """What the invoice's portal page does when the customer picks PayPal:
        a transaction of the invoice, PayPal's order made for it (the API call
        mocked, as payment_paypal's tests do). Returns the transaction."""
        order_id = f"5O190127TN{invoice_id:07d}"
        invoice = self.env["account.move"].browse(invoice_id)
        with patch(PAYPAL_REQUEST, return_value={"id": order_id}) as paypal_api:
            processing_values = self.make_jsonrpc_request(
                f"/invoice/transaction/{invoice_id}",
                {
                    "access_token": access_token,
                    "provider_id": self.paypal.id,
                    "payment_method_id": self.paypal_method.id,
                    "token_id": None,
                    "amount": invoice.amount_residual,
                    "flow": "direct",
                    "tokenization_requested": False,
                    "landing_route": invoice.get_portal_url(),
                },
            )
        self.assertEqual(paypal_api.call_count, 1)
        self.assertEqual(processing_values["order_id"], order_id)
        tx = self.env["payment.transaction"].search(
            [("invoice_ids", "in", invoice.ids)]
        )
        self.assertEqual(len(tx), 1)
        self.assertEqual(tx.provider_id, self.paypal)
        self.assertEqual(tx.state, "draft")
        return tx, order_id

    def _paypal_notification(self, tx, order_id):
        """The webhook event PayPal posts when the customer completed the
        payment of ``order_id``, in PayPal's format (see payment_paypal's
        tests and https://developer.paypal.com/api/rest/webhooks/)."""
        return {
            "id": f"WH-{order_id}",
            "event_version": "1.0",
            "create_time": "2026-11-02T09:00:00.000Z",
            "resource_type": "checkout-order",
            "resource_version": "2.0",
            "event_type": "CHECKOUT.ORDER.COMPLETED",
            "summary": "Checkout Order Completed",
            "resource": {
                "id": order_id,
                "intent": "CAPTURE",
                "status": "COMPLETED",
                "payment_source": {"paypal": {"account_id": "59XDVNACRAZZJ"}},
                "purchase_units": [
                    {
                        "reference_id": tx.reference,
                        "amount": {
                            "currency_code": tx.currency_id.name,
                            "value": f"{tx.amount:.2f}",
                        },
                    }
                ],
            },
        }

    def _deliver(self, notification):
        """Post ``notification`` to PayPal's webhook route, its signature check
        mocked as payment_paypal's tests do; PayPal gets an empty 200."""
        with patch(PAYPAL_ORIGIN_CHECK) as origin_check:
            response = self.opener.post(
                self.base_url() + WEBHOOK_URL, json=notification, timeout=60
            )
        self.assertEqual(response.status_code, 200)
        self.assertEqual(origin_check.call_count, 1, "the signature is checked")

    def _poll(self):
        """The customer's payment status page: it post-processes the
        transaction (creates and reconciles its payment)."""
        return self.make_jsonrpc_request("/payment/status/poll", {})

    def _payments(self, tx):
        return self.env["account.payment"].search(
            [("payment_transaction_id", "=", tx.id)]
        )

    def _credited_mails(self, invoice):
        """The "wallet credited" emails of ``invoice``: the messages posted
        from the template, and the mails queued for them."""
        template = self.env.ref(
            "prepaid_postpaid_billing.mail_template_wallet_credited"
        )
        subject = template._render_field("subject", invoice.ids)[invoice.id]
        self.env.invalidate_all()
        messages = self.env["mail.message"].search(
            [
                ("model", "=", "account.move"),
                ("res_id", "=", invoice.id),
                ("subject", "=", subject),
            ]
        )
        mails = self.env["mail.mail"].search(
            [
                ("model", "=", "account.move"),
                ("res_id", "=", invoice.id),
                ("subject", "=", subject),
            ]
        )
        return messages, mails

    def assertReconciled(self, invoice, payment):
        receivable = invoice.line_ids.filtered(
            lambda line: line.account_id.account_type == "asset_receivable"
        )
        paid = payment.move_id.line_ids.filtered(
            lambda line: line.account_id == receivable.account_id
        )
        self.assertEqual(len(paid), 1)
        self.assertTrue(receivable.reconciled)
        self.assertTrue(paid.reconciled)
        self.assertEqual(receivable.matched_credit_ids.credit_move_id, paid)
        self.assertTrue(invoice.currency_id.is_zero(invoice.amount_residual))

    # -------------------------------------------------------------------------
    # Tests
    # -------------------------------------------------------------------------

    def test_topup_paid_by_paypal_credits_once_on_a_replayed_notification(self):
        self.authenticate("paypal_prepaid", "paypal_prepaid")
        response = self.url_open(
            "/my/wallet/buy",
            data={
                "product_id": self.package.id,
                "quantity": "1",
                "csrf_token": http.Request.csrf_token(self),
            },
            allow_redirects=False,
        )
        location = urlparse(response.headers["Location"])
        self.assertRegex(location.path, r"^/my/invoices/\d+$")
        invoice = self.env["account.move"].browse(int(location.path.split("/")[-1]))
        self.assertEqual(invoice.partner_id, self.prepaid)
        self.assertTrue(invoice.billing_is_topup)
        tx, order_id = self._pay_with_paypal(
            invoice.id, parse_qs(location.query)["access_token"][0]
        )
        notification = self._paypal_notification(tx, order_id)

        self._deliver(notification)
        self.assertEqual(tx.state, "done")
        self.assertEqual(tx.provider_reference, order_id)
        self.assertEqual(self._poll()["state"], "done")
        self.assertTrue(tx.is_post_processed)
        # PayPal did not get the acknowledgement: the same event again, the
        # status page polled again.
        self._deliver(notification)
        self.assertEqual(self._poll()["state"], "done")
        # And the post-processing once more, as the cron racing that page would.
        tx._post_process()
        self.env.invalidate_all()

        self.assertEqual(tx.state, "done")
        self.assertEqual(len(self._payments(tx)), 1)
        self.assertEqual(self._payments(tx), tx.payment_id)
        self.assertEqual(invoice.payment_state, "paid")
        self.assertReconciled(invoice, tx.payment_id)
        self.assertEqual(self.prepaid.billing_balance, 150.0)
        wallet = self.env["billing.wallet"]._get_wallet(
            self.prepaid, self.company, create=False
        )
        self.assertEqual(wallet.balance, 150.0)
        self.assertEqual(wallet.move_ids.mapped("kind"), ["bonus", "topup"])
        self.assertEqual(sorted(wallet.move_ids.mapped("amount")), [50.0, 100.0])
        self.assertEqual(set(wallet.move_ids.invoice_id.ids), set(invoice.ids))
        messages, mails = self._credited_mails(invoice)
        self.assertEqual(len(messages), 1, "one 'wallet credited' message")
        self.assertEqual(len(mails), 1, "one 'wallet credited' email")
        self.assertEqual(mails.mail_message_id, messages)
        self.assertIn(self.prepaid, messages.partner_ids)

    def test_postpaid_invoice_paid_by_paypal_once_on_a_replayed_notification(self):
        invoice = self.env["account.move"].create(
            {
                "move_type": "out_invoice",
                "partner_id": self.postpaid.id,
                "invoice_line_ids": [
                    Command.create({"product_id": self.service.id, "price_unit": 40.0})
                ],
            }
        )
        invoice.action_post()
        self.assertEqual(invoice.payment_state, "not_paid")
        self.authenticate("paypal_postpaid", "paypal_postpaid")
        tx, order_id = self._pay_with_paypal(invoice.id, invoice._portal_ensure_token())
        self.assertEqual(tx.amount, 40.0)
        notification = self._paypal_notification(tx, order_id)

        # Delivered twice before the status page post-processes it; then the
        # post-processing runs once more, as the cron racing that page would.
        self._deliver(notification)
        self._deliver(notification)
        self.assertEqual(tx.state, "done")
        self.assertEqual(self._poll()["state"], "done")
        tx._post_process()
        self.env.invalidate_all()

        payments = self._payments(tx)
        self.assertEqual(len(payments), 1)
        self.assertEqual(payments, tx.payment_id)
        self.assertEqual(payments.amount, 40.0)
        self.assertEqual(payments.partner_id, self.postpaid)
        self.assertEqual(
            self.env["account.payment"].search_count(
                [("partner_id", "=", self.postpaid.id)]
            ),
            1,
        )
        self.assertEqual(invoice.payment_state, "paid")
        self.assertReconciled(invoice, payments)
        self.assertFalse(
            self.env["billing.wallet"]._get_wallet(
                self.postpaid, self.company, create=False
            ),
            "paying an invoice credits no wallet",
        )
