from unittest.mock import patch

from odoo import Command, http
from odoo.exceptions import UserError
from odoo.tests import HttpCase, new_test_user, tagged


@tagged("post_install", "-at_install")
class TestBillingWalletPortal(HttpCase):
    """A customer buys a credit package in the portal and pays it with the demo
    payment provider (module payment_demo, which scripts/test installs)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.company = cls.env.company
        cls.provider = cls.env.ref("payment.payment_provider_demo")
        cls.provider.write({"state": "test", "is_published": True})
        cls.provider.company_id = cls.company
        cls.package = cls.env["product.product"].create(
            {
                "name": "Portal Package 100",
                "type": "service",
                "list_price": 100.0,
                "billing_topup_credit": 150.0,
                "taxes_id": [Command.clear()],
            }
        )
        cls.customer = cls.env["res.partner"].create(
            {
                "name": "Portal Wallet Co",
                "is_company": True,
                "email": "wallet.co@example.com",
                "billing_mode": "prepaid",
            }
        )
        cls.user = cls.env["res.users"].create(
            {
                "name": "Wallet Buyer",
                "login": "wallet_buyer",
                "password": "wallet_buyer",
                "email": "buyer@example.com",
                "partner_id": cls.env["res.partner"]
                .create({"name": "Wallet Buyer", "parent_id": cls.customer.id})
                .id,
                "groups_id": [Command.set([cls.env.ref("base.group_portal").id])],
            }
        )

    def test_buy_package_in_portal_with_demo_provider(self):
        self.assertTrue(
            self.company.billing_wallet_journal_id, "the company has a chart"
        )
        self.start_tour(
            "/my/wallet",
            "prepaid_postpaid_billing_wallet_portal_tour",
            login="wallet_buyer",
        )
        invoice = self.env["account.move"].search(
            [("partner_id", "=", self.customer.id), ("billing_is_topup", "=", True)]
        )
        self.assertEqual(len(invoice), 1)
        self.assertEqual(invoice.payment_state, "paid")
        # The demo payment the tour saw confirmed: done and processed, once.
        transaction = invoice.transaction_ids
        self.assertEqual(transaction.mapped("state"), ["done"])
        self.assertTrue(transaction.is_post_processed)
        self.assertEqual(transaction.payment_id.state, "paid")
        self.assertEqual(transaction.payment_id.amount, 100.0)
        self.assertEqual(self.customer.billing_balance, 150.0)
        wallet = self.env["billing.wallet"]._get_wallet(
            self.customer, self.company, create=False
        )
        self.assertEqual(wallet.move_ids.mapped("kind"), ["bonus", "topup"])

    def _counters(self, login):
        self.authenticate(login, login)
        return self.make_jsonrpc_request(
            "/my/counters",
            {"counters": ["billing_wallet_count", "billing_service_count"]},
        )

    def test_home_entries_for_billing_customers_only(self):
        """The portal home's Wallet entry shows the balance to a prepaid
        customer (even before a first top-up: it is where credit is bought) and
        to any customer holding a wallet; a postpaid customer without one and
        an employee get 0, which hides the entries."""
        Wallet = self.env["billing.wallet"]
        counters = self._counters("wallet_buyer")
        self.assertEqual(
            counters["billing_wallet_count"],
            Wallet._format_amount_exact(0.0, self.company.currency_id),
        )
        self.assertEqual(counters["billing_service_count"], 0)
        wallet = Wallet._get_wallet(self.customer, self.company)
        wallet._apply_movements(
            [
                {
                    "amount": 12.5,
                    "kind": "topup",
                    "name": "Counter top-up",
                    "idempotency_key": "home-counter-topup",
                }
            ]
        )
        self.assertEqual(
            self._counters("wallet_buyer")["billing_wallet_count"],
            Wallet._format_amount_exact(12.5, self.company.currency_id),
        )
        postpaid = self.env["res.partner"].create(
            {"name": "Postpaid Portal Co", "billing_mode": "postpaid"}
        )
        new_test_user(
            self.env,
            login="postpaid_home",
            groups="base.group_portal",
            partner_id=postpaid.id,
        )
        self.assertEqual(self._counters("postpaid_home")["billing_wallet_count"], 0)
        new_test_user(
            self.env,
            login="billing_employee",
            groups="base.group_user,prepaid_postpaid_billing.group_billing_manager",
        )
        self.assertEqual(
            self._counters("billing_employee"),
            {"billing_wallet_count": 0, "billing_service_count": 0},
        )
        # A customer who signs up on their own is prepaid: the entry shows.
        self.env["ir.config_parameter"].sudo().set_param(
            "auth_signup.invitation_scope", "b2c"
        )
        self.env["res.users"].sudo().signup(
            {
                "login": "home.signup@example.com",
                "name": "Home Signup",
                "password": "home.signup@example.com",
            }
        )
        self.assertEqual(
            self._counters("home.signup@example.com")["billing_wallet_count"],
            Wallet._format_amount_exact(0.0, self.company.currency_id),
        )

    def test_portal_wallet_page_shows_only_own_wallet(self):
        other = self.env["res.partner"].create({"name": "Someone Else Ltd"})
        recharge = self.env.ref(
            "prepaid_postpaid_billing.product_product_wallet_recharge"
        )
        for partner, amount in ((self.customer, 12.0), (other, 999.0)):
            invoice = self.env["account.move"].create(
                {
                    "move_type": "out_invoice",
                    "partner_id": partner.id,
                    "invoice_line_ids": [
                        Command.create(
                            {"product_id": recharge.id, "price_unit": amount}
                        )
                    ],
                }
            )
            invoice.action_post()
            self.env["account.payment.register"].with_context(
                active_model="account.move", active_ids=invoice.ids
            ).create({})._create_payments()
        self.authenticate("wallet_buyer", "wallet_buyer")
        page = self.url_open("/my/wallet").text
        self.assertIn("12.00", page)
        self.assertNotIn("999.00", page)
        self.assertIn("Portal Package 100", page)

    def test_portal_buy_rejects_other_products_and_bad_quantities(self):
        self.authenticate("wallet_buyer", "wallet_buyer")
        service = self.env["product.product"].create({"name": "Not A Package"})
        for product, quantity in (
            (service, "1"),
            (self.package, "0"),
            (self.package, "x"),
        ):
            response = self.url_open(
                "/my/wallet/buy",
                data={
                    "product_id": product.id,
                    "quantity": quantity,
                    "csrf_token": http.Request.csrf_token(self),
                },
                allow_redirects=False,
            )
            self.assertIn("/my/wallet?error=package", response.headers["Location"])
        self.assertFalse(
            self.env["account.move"].search([("partner_id", "=", self.customer.id)])
        )

    def test_portal_buy_refused_posting_leaves_no_draft(self):
        """When Odoo refuses to post the package's invoice, the customer is sent
        back to the wallet with the error and no draft invoice stays behind."""
        self.authenticate("wallet_buyer", "wallet_buyer")

        def refuse(moves, *args, **kwargs):
            raise UserError(moves.env._("posting refused"))

        with patch.object(type(self.env["account.move"]), "_post", refuse):
            response = self.url_open(
                "/my/wallet/buy",
                data={
                    "product_id": self.package.id,
                    "quantity": "1",
                    "csrf_token": http.Request.csrf_token(self),
                },
                allow_redirects=False,
            )
        self.assertIn("/my/wallet?error=invoice", response.headers["Location"])
        self.assertFalse(
            self.env["account.move"].search([("partner_id", "=", self.customer.id)])
        )
        # Without the refusal the same request invoices the package.
        response = self._buy()
        self.assertIn("/my/invoices/", response.headers["Location"])
        self.assertEqual(
            self.env["account.move"]
            .search([("partner_id", "=", self.customer.id)])
            .mapped("state"),
            ["posted"],
        )

    def test_balance_shown_with_4_decimals_where_it_has_them(self):
        wallet = self.env["billing.wallet"]._get_wallet(self.customer, self.company)
        wallet._apply_movements(
            [
                {
                    "kind": "manual",
                    "name": "Welcome credit",
                    "amount": 10.0,
                    "idempotency_key": "test:portal:credit",
                },
                {
                    "kind": "usage",
                    "name": "SMS",
                    "amount": -0.0025,
                    "idempotency_key": "test:portal:usage",
                },
            ]
        )
        self.authenticate("wallet_buyer", "wallet_buyer")
        response = self.url_open("/my/wallet")
        self.assertEqual(response.status_code, 200)
        page = response.text
        # The balance and the usage movement with 4 decimals, the credit with the
        # currency's 2.
        self.assertRegex(page, r"o_billing_wallet_balance[^>]*>\s*[^<]*9\.9975")
        self.assertIn("-0.0025", page)
        self.assertRegex(page, r">\s*[^<]*10\.00\s*[^<]*<")

    # -------------------------------------------------------------------------
    # Who may buy credit, and how much unpaid at once
    # -------------------------------------------------------------------------

    def _buy(self, quantity="1"):
        return self.url_open(
            "/my/wallet/buy",
            data={
                "product_id": self.package.id,
                "quantity": quantity,
                "csrf_token": http.Request.csrf_token(self),
            },
            allow_redirects=False,
        )

    def _topups(self):
        return self.env["account.move"].search(
            [("partner_id", "=", self.customer.id), ("billing_is_topup", "=", True)]
        )

    def test_postpaid_customer_cannot_buy_credit(self):
        self.customer.billing_mode = "postpaid"
        self.authenticate("wallet_buyer", "wallet_buyer")
        page = self.url_open("/my/wallet").text
        self.assertIn("credit packages are for prepaid customers", page)
        self.assertNotIn('o_billing_wallet_buy"', page)
        response = self._buy()
        self.assertIn("/my/wallet?error=postpaid", response.headers["Location"])
        self.assertFalse(self._topups())

    def test_at_most_three_unpaid_topups_open_at_once(self):
        self.authenticate("wallet_buyer", "wallet_buyer")
        for _index in range(3):
            response = self._buy()
            self.assertIn("/my/invoices/", response.headers["Location"])
        topups = self._topups()
        self.assertEqual(len(topups), 3)
        self.assertEqual(set(topups.mapped("state")), {"posted"})
        response = self._buy()
        self.assertIn("/my/wallet?error=open_topups", response.headers["Location"])
        self.assertEqual(len(self._topups()), 3)
        page = self.url_open("/my/wallet?error=open_topups").text
        self.assertIn("has 3 unpaid top-up invoices open", page)
        self.assertNotIn('o_billing_wallet_buy"', page)
        # Paid, or cancelled: one more may be bought.
        self.env["account.payment.register"].with_context(
            active_model="account.move", active_ids=topups[0].ids
        ).create({})._create_payments()
        self.assertIn("/my/invoices/", self._buy().headers["Location"])
        self.assertEqual(len(self._topups()), 4)
        self.assertIn("error=open_topups", self._buy().headers["Location"])
        topups[1].button_cancel()
        self.assertIn("/my/invoices/", self._buy().headers["Location"])
        self.assertEqual(len(self._topups()), 5)

    def test_customer_of_a_reseller_buys_in_the_resellers_journal(self):
        reseller = self.env["res.partner"].create(
            {
                "name": "Portal Reseller",
                "is_company": True,
                "is_billing_reseller": True,
                "billing_invoice_prefix": "PRS",
            }
        )
        self.customer.billing_reseller_id = reseller
        self.authenticate("wallet_buyer", "wallet_buyer")
        self.assertIn("/my/invoices/", self._buy().headers["Location"])
        topup = self._topups()
        self.assertEqual(topup.journal_id, reseller.billing_journal_id)
        self.assertRegex(topup.name, r"^PRS/\d{4}/00001$")
