from odoo.tests import HttpCase, tagged

from .test_billing_reseller_portal import ResellerPortalMixin
from .wallet_common import BillingWalletCommon


@tagged("post_install", "-at_install")
class TestBillingWalletPortalPay(ResellerPortalMixin, BillingWalletCommon, HttpCase):
    """Pay from Wallet on the portal invoice page: offered to the invoice's own
    customer when the wallet covers all it owes, refused otherwise, and never on
    the invoice of another customer."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.other_customer.email = "other@example.com"
        cls.user = cls._portal_user("wallet_payer", cls.customer)
        cls.other_user = cls._portal_user("other_payer", cls.other_customer)

    def _pay_url(self, invoice):
        return f"/my/invoices/{invoice.id}/pay_from_wallet"

    def _post(self, invoice):
        return self.url_open(
            self._pay_url(invoice),
            data={"csrf_token": self.csrf_token()},
            allow_redirects=False,
        )

    def _page(self, invoice):
        response = self.url_open(invoice.get_portal_url())
        self.assertEqual(response.status_code, 200)
        return response.text

    def test_covered_invoice_is_paid_from_the_wallet(self):
        self._fund(100.0)
        invoice = self._invoice([(self.service, 1, 40.0)])
        self.authenticate("wallet_payer", "wallet_payer")
        page = self._page(invoice)
        self.assertIn("o_billing_pay_from_wallet", page)
        self.assertIn(self._pay_url(invoice), page)
        response = self._post(invoice)
        self.assertEqual(response.status_code, 303)
        self.assertIn("billing_wallet=paid", response.headers["Location"])
        self.env.invalidate_all()
        self.assertIn(invoice.payment_state, ("paid", "in_payment"))
        payment = invoice._get_reconciled_payments()
        self.assertEqual(payment.billing_payment_method, "wallet")
        self.assertAlmostEqual(self._wallet().balance, 60.0, places=6)
        self.assertBooksMatchWallet()
        self.assertIn(
            "o_billing_wallet_paid", self.url_open(response.headers["Location"]).text
        )
        # Paid: no more offered, and posting again pays nothing twice.
        self.assertNotIn("o_billing_pay_from_wallet", self._page(invoice))
        response = self._post(invoice)
        self.assertIn("billing_wallet=refused", response.headers["Location"])
        self.env.invalidate_all()
        self.assertEqual(len(invoice._get_reconciled_payments()), 1)
        self.assertAlmostEqual(self._wallet().balance, 60.0, places=6)

    def test_uncovered_invoice_is_not_paid(self):
        """A balance of 39.99 does not cover 40: not offered, and a forged
        request pays nothing."""
        self._fund(39.99)
        invoice = self._invoice([(self.service, 1, 40.0)])
        self.authenticate("wallet_payer", "wallet_payer")
        self.assertNotIn("o_billing_pay_from_wallet", self._page(invoice))
        response = self._post(invoice)
        self.assertEqual(response.status_code, 303)
        self.assertIn("billing_wallet=refused", response.headers["Location"])
        self.env.invalidate_all()
        self.assertEqual(invoice.payment_state, "not_paid")
        self.assertFalse(invoice._get_reconciled_payments())
        self.assertAlmostEqual(self._wallet().balance, 39.99, places=6)
        refused = self.url_open(response.headers["Location"]).text
        self.assertIn("o_billing_wallet_refused", refused)

    def test_invoice_of_another_customer_is_not_found(self):
        self._fund(100.0)
        self._fund(100.0, partner=self.other_customer)
        theirs = self._invoice([(self.service, 1, 40.0)], partner=self.other_customer)
        self.authenticate("wallet_payer", "wallet_payer")
        response = self._post(theirs)
        self.assertEqual(response.status_code, 404)
        # Ids beyond PostgreSQL's integers too (scripts/chaos fuzz: a 500).
        for invoice_id in (2**31, 10**30):
            beyond = self.env["account.move"].browse(invoice_id)
            self.assertEqual(self._post(beyond).status_code, 404)
        self.env.invalidate_all()
        self.assertEqual(theirs.payment_state, "not_paid")
        self.assertAlmostEqual(self._wallet(self.other_customer).balance, 100.0, 6)
        self.assertAlmostEqual(self._wallet().balance, 100.0, 6)
        # Even with the invoice's access token, the page offers nothing to pay
        # from another customer's wallet.
        self.assertNotIn("o_billing_pay_from_wallet", self._page(theirs))
        # Its own customer is offered it.
        self.authenticate("other_payer", "other_payer")
        self.assertIn("o_billing_pay_from_wallet", self._page(theirs))

    def test_anonymous_is_sent_to_login(self):
        self._fund(100.0)
        invoice = self._invoice([(self.service, 1, 40.0)])
        response = self.url_open(
            self._pay_url(invoice), data={"csrf_token": "x"}, allow_redirects=False
        )
        # Refused before anything runs: sent to the login, or the request
        # rejected outright.
        self.assertNotEqual(response.status_code, 200)
        if response.status_code in (302, 303):
            self.assertIn("/web/login", response.headers["Location"])
        self.env.invalidate_all()
        self.assertEqual(invoice.payment_state, "not_paid")
