import re
from datetime import timedelta

from odoo import fields
from odoo.exceptions import UserError
from odoo.tests import HttpCase, tagged

from .test_billing_access_sweep import BillingAccessSweepCommon
from .test_billing_reseller_portal import ResellerPortalMixin
from .wallet_common import BillingWalletCommon

KEY = "form-key-0001"
RESELLER_GROUP = "prepaid_postpaid_billing.group_billing_reseller"


class ResellerRechargeCommon(BillingWalletCommon):
    """A reseller with a prepaid and a postpaid customer; another reseller with
    a prepaid customer."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        Partner = cls.env["res.partner"]
        cls.reseller = Partner.create(
            {
                "name": "Recharging Reseller",
                "is_company": True,
                "is_billing_reseller": True,
                "billing_mode": "postpaid",
            }
        )
        cls.reseller_customer = Partner.create(
            {
                "name": "Recharged Customer",
                "is_company": True,
                "billing_mode": "prepaid",
                "billing_reseller_id": cls.reseller.id,
            }
        )
        cls.postpaid_customer = Partner.create(
            {
                "name": "Postpaid Customer of the Reseller",
                "is_company": True,
                "billing_mode": "postpaid",
                "billing_reseller_id": cls.reseller.id,
            }
        )
        cls.other_reseller = Partner.create(
            {"name": "Other Reseller", "is_company": True, "is_billing_reseller": True}
        )
        cls.other_reseller_customer = Partner.create(
            {
                "name": "Customer of the Other Reseller",
                "is_company": True,
                "billing_mode": "prepaid",
                "billing_reseller_id": cls.other_reseller.id,
            }
        )
        cls.Wallet = cls.env["billing.wallet"].sudo()


@tagged("post_install", "-at_install")
class TestBillingResellerRecharge(ResellerRechargeCommon):
    """A reseller recharges its prepaid customers from its own wallet: one
    journal entry between the two balances of the wallet account, once per
    form key, refused with the reason."""

    def setUp(self):
        super().setUp()
        self._fund(100.0, partner=self.reseller)

    def _recharge(self, amount, customer=None, key=KEY, reseller=None):
        return self.Wallet._reseller_recharge(
            reseller or self.reseller,
            customer or self.reseller_customer,
            amount,
            key,
            self.company,
        )

    def _recharge_error(self, amount, customer=None, key=KEY, reseller=None):
        """The message of the refusal of a recharge, called outside any
        savepoint of the test, as the portal calls it (its UserError shown, the
        request committed): the refusal has written nothing before it raised,
        but the empty wallets it locks, created when missing, before it checks
        the form's key under that lock."""
        with self.assertRefusedWritingNothing(
            UserError,
            allowed_sql=r"^INSERT INTO billing_wallet \(partner_id, company_id, "
            r"balance, unposted_consumption,.* SELECT partner_id, %s, 0, 0, ",
        ) as caught:
            self._recharge(amount, customer=customer, key=key, reseller=reseller)
        return str(caught.exception)

    def _balance(self, partner):
        wallet = self._wallet(partner)
        wallet.invalidate_recordset()
        return wallet.balance

    def _recharge_movements(self):
        return self.env["billing.wallet.move"].search(
            [
                ("kind", "=", "recharge"),
                (
                    "partner_id",
                    "in",
                    (self.reseller | self.reseller_customer).ids,
                ),
            ]
        )

    def _total_of_wallets(self):
        self.env.flush_all()
        self.env.cr.execute(
            "SELECT COALESCE(SUM(balance), 0)::text FROM billing_wallet"
            " WHERE company_id = %s",
            [self.company.id],
        )
        return self.env.cr.fetchone()[0]

    def test_recharge_moves_credit_in_one_entry(self):
        total = self._total_of_wallets()
        entry, replayed = self._recharge(30.25)
        self.assertFalse(replayed)
        self.assertEqual(self._balance(self.reseller), 69.75)
        self.assertEqual(self._balance(self.reseller_customer), 30.25)
        self.assertEqual(self._total_of_wallets(), total)
        # One posted entry of the wallet journal, between the two partners'
        # balances of the wallet account.
        self.assertEqual(entry.state, "posted")
        self.assertEqual(entry.journal_id, self.company.billing_wallet_journal_id)
        account = self.company.billing_wallet_account_id
        self.assertEqual(entry.line_ids.account_id, account)
        by_partner = {line.partner_id: line.balance for line in entry.line_ids}
        self.assertEqual(
            by_partner, {self.reseller: 30.25, self.reseller_customer: -30.25}
        )
        # Listed in both ledgers, booked by the entry.
        movements = self._recharge_movements()
        self.assertEqual(len(movements), 2)
        self.assertEqual(movements.account_move_id, entry)
        debit = movements.filtered(lambda m: m.partner_id == self.reseller)
        credit = movements - debit
        self.assertEqual((debit.amount, debit.balance_after), (-30.25, 69.75))
        self.assertEqual((credit.amount, credit.balance_after), (30.25, 30.25))
        self.assertEqual(debit.name, "Recharge of Recharged Customer")
        self.assertEqual(credit.name, "Recharge by Recharging Reseller")
        self.assertIn(debit, self._wallet(self.reseller).move_ids)
        self.assertIn(credit, self._wallet(self.reseller_customer).move_ids)
        self.assertBooksMatchWallet(self.reseller)
        self.assertBooksMatchWallet(self.reseller_customer)

    def test_recharge_of_the_whole_balance(self):
        self._recharge(100.0)
        self.assertEqual(self._balance(self.reseller), 0.0)
        self.assertEqual(self._balance(self.reseller_customer), 100.0)
        self.assertBooksMatchWallet(self.reseller)
        self.assertBooksMatchWallet(self.reseller_customer)

    def test_recharge_beyond_the_balance_is_refused_and_writes_nothing(self):
        self._recharge(60.0, key="form-key-first")
        entries = self.env["account.move"].search_count([])
        message = self._recharge_error(40.01)
        self.assertIn("Recharging Reseller", message)
        self.assertIn("does not cover", message)
        self.assertIn("40.01", message)
        self.assertEqual(self._balance(self.reseller), 40.0)
        self.assertEqual(self._balance(self.reseller_customer), 60.0)
        self.assertEqual(len(self._recharge_movements()), 2)
        self.assertEqual(self.env["account.move"].search_count([]), entries)
        self.assertBooksMatchWallet(self.reseller)
        self.assertBooksMatchWallet(self.reseller_customer)

    def test_double_submitted_form_recharges_once(self):
        entry, replayed = self._recharge(25.0)
        again, replayed_again = self._recharge(25.0)
        self.assertFalse(replayed)
        self.assertTrue(replayed_again)
        self.assertEqual(again, entry)
        self.assertEqual(self._balance(self.reseller), 75.0)
        self.assertEqual(self._balance(self.reseller_customer), 25.0)
        self.assertEqual(len(self._recharge_movements()), 2)
        # A new form (a new key) recharges again.
        self._recharge(25.0, key="form-key-0002")
        self.assertEqual(self._balance(self.reseller), 50.0)
        self.assertEqual(self._balance(self.reseller_customer), 50.0)
        self.assertBooksMatchWallet(self.reseller)
        self.assertBooksMatchWallet(self.reseller_customer)

    def test_a_key_used_for_another_customer_is_refused(self):
        other = self.env["res.partner"].create(
            {
                "name": "Second Customer",
                "is_company": True,
                "billing_mode": "prepaid",
                "billing_reseller_id": self.reseller.id,
            }
        )
        self._recharge(10.0)
        message = self._recharge_error(10.0, customer=other)
        self.assertIn("was used for another recharge", message)
        self.assertEqual(self._balance(self.reseller), 90.0)
        self.assertFalse(self._wallet(other).balance)

    def test_keys_of_two_resellers_do_not_collide(self):
        self._fund(20.0, partner=self.other_reseller)
        self._recharge(10.0)
        self._recharge(
            5.0,
            customer=self.other_reseller_customer,
            reseller=self.other_reseller,
        )
        self.assertEqual(self._balance(self.other_reseller_customer), 5.0)
        self.assertEqual(self._balance(self.other_reseller), 15.0)

    def test_refusals_name_the_reason(self):
        cases = [
            (self.other_reseller_customer, 10.0, KEY, "is not a customer of"),
            (self.postpaid_customer, 10.0, KEY, "billed postpaid"),
            (self.reseller_customer, 0.0, KEY, "must be positive"),
            (self.reseller_customer, -5.0, KEY, "must be positive"),
            (self.reseller_customer, 0.004, KEY, "must be positive"),
            (self.reseller_customer, 10.005, KEY, "to the 0.01"),
            (self.reseller_customer, 10.0, "", "form key"),
            (self.reseller_customer, 10.0, "short", "form key"),
            (self.reseller_customer, 10.0, "bad key with spaces", "form key"),
        ]
        for customer, amount, key, reason in cases:
            with self.subTest(customer=customer.name, amount=amount, key=key):
                self.assertIn(reason, self._recharge_error(amount, customer, key))
        message = self._recharge_error(
            1.0, customer=self.reseller_customer, reseller=self.reseller_customer
        )
        self.assertIn("is not a reseller", message)
        self.assertFalse(self._recharge_movements())
        self.assertEqual(self._balance(self.reseller), 100.0)

    def test_the_recharge_entry_cannot_be_undone(self):
        entry, _replayed = self._recharge(30.0)
        for undo in (entry.button_draft, entry.button_cancel):
            with (
                self.subTest(undo=undo.__name__),
                self.assertRefusedWritingNothing(UserError, "cannot be reset to draft"),
            ):
                undo()
        self.assertEqual(entry.state, "posted")

    def test_the_recharged_credit_pays_the_customers_invoice(self):
        self.company.billing_wallet_allow_payments = True
        self._recharge(40.0)
        invoice = self._invoice(
            [(self.service, 1, 30.0)], partner=self.reseller_customer
        )
        self.assertEqual(invoice.payment_state, "paid")
        self.assertEqual(self._balance(self.reseller_customer), 10.0)
        self.assertBooksMatchWallet(self.reseller_customer)

    def test_a_postpaid_reseller_buys_credit_on_the_portal(self):
        refusal = self.Wallet._portal_topup_refusal(self.reseller, self.company)
        self.assertIsNone(refusal)
        self.assertEqual(
            self.Wallet._portal_topup_refusal(self.postpaid_customer, self.company)[0],
            "postpaid",
        )


@tagged("post_install", "-at_install")
class TestBillingResellerRechargePortal(
    ResellerPortalMixin, ResellerRechargeCommon, HttpCase
):
    """The recharge form of a customer's page in the reseller portal."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.reseller_user = cls._portal_user("recharger", cls.reseller, RESELLER_GROUP)
        cls.rival_user = cls._portal_user("rival", cls.other_reseller, RESELLER_GROUP)
        cls.customer_user = cls._portal_user("recharged", cls.reseller_customer)

    def setUp(self):
        super().setUp()
        self._fund(50.0, partner=self.reseller)
        self.authenticate(self.reseller_user.login, self.reseller_user.login)

    def _page(self, customer=None):
        response = self.url_open(
            f"/my/customers/{(customer or self.reseller_customer).id}"
        )
        self.assertEqual(response.status_code, 200)
        return response.text

    def _form_key(self, page):
        return re.search(r'name="key" value="([^"]+)"', page).group(1)

    def _post(self, amount, key=None, customer=None):
        customer = customer or self.reseller_customer
        if key is None:
            key = self._form_key(self._page(customer))
        return self.url_open(
            f"/my/customers/{customer.id}/recharge",
            data={"csrf_token": self.csrf_token(), "amount": amount, "key": key},
        )

    def _balance(self, partner):
        self.env.invalidate_all()
        return self._wallet(partner).balance

    def test_recharge_from_the_customer_page(self):
        page = self._page()
        self.assertIn("o_billing_reseller_recharge", page)
        self.assertIn("50.00", re.search(r"o_billing_recharge_balance[^<]*<", page)[0])
        response = self._post("12.50")
        self.assertEqual(response.status_code, 200)
        self.assertTrue(
            response.url.endswith(f"/my/customers/{self.reseller_customer.id}")
            or f"/my/customers/{self.reseller_customer.id}#" in response.url,
            response.url,
        )
        self.assertIn("recharged to Recharged Customer", response.text)
        self.assertEqual(self._balance(self.reseller), 37.5)
        self.assertEqual(self._balance(self.reseller_customer), 12.5)
        # Listed in the customer's history on the page, done by the reseller.
        self.assertIn("Recharge by Recharging Reseller", response.text)
        movement = self._wallet(self.reseller_customer).move_ids[:1]
        self.assertEqual(movement.kind, "recharge")
        self.assertEqual(movement.user_id, self.reseller_user)
        # The result is shown once.
        self.assertNotIn("recharged to", self._page())
        self.assertBooksMatchWallet(self.reseller)
        self.assertBooksMatchWallet(self.reseller_customer)

    def test_a_form_sent_twice_recharges_once(self):
        key = self._form_key(self._page())
        self._post("10", key=key)
        response = self._post("10", key=key)
        self.assertIn("was recorded already", response.text)
        self.assertEqual(self._balance(self.reseller), 40.0)
        self.assertEqual(self._balance(self.reseller_customer), 10.0)

    def test_refusals_are_shown_and_change_nothing(self):
        for amount, reason in (
            ("50.01", "does not cover"),
            ("abc", "is not an amount"),
            ("nan", "is not an amount"),
            ("0", "must be positive"),
            ("1.005", "must be positive, in"),
        ):
            with self.subTest(amount=amount):
                response = self._post(amount)
                self.assertEqual(response.status_code, 200)
                self.assertIn(reason, response.text)
                self.assertIn("alert-danger", response.text)
        response = self._post("5", key=KEY, customer=self.postpaid_customer)
        self.assertIn("billed postpaid", response.text)
        self.assertEqual(self._balance(self.reseller), 50.0)
        self.assertFalse(self._wallet(self.reseller_customer))
        self.assertFalse(
            self.env["billing.wallet.move"].search_count([("kind", "=", "recharge")])
        )

    def test_others_customers_and_non_resellers_get_404(self):
        response = self._post("5", key=KEY, customer=self.other_reseller_customer)
        self.assertEqual(response.status_code, 404)
        self.assertEqual(
            self._post("5", key=KEY, customer=self.reseller).status_code, 404
        )
        # Ids beyond PostgreSQL's integers too (scripts/chaos fuzz: a 500).
        for partner_id in (2**31, 10**30):
            beyond = self.env["res.partner"].browse(partner_id)
            self.assertEqual(self._post("5", key=KEY, customer=beyond).status_code, 404)
            self.assertEqual(
                self.url_open(f"/my/customers/{partner_id}").status_code, 404
            )
        for user in (self.rival_user, self.customer_user):
            with self.subTest(user=user.login):
                self.authenticate(user.login, user.login)
                response = self._post("5", key=KEY)
                self.assertEqual(response.status_code, 404)
        self.assertEqual(self._balance(self.reseller), 50.0)
        self.assertFalse(self._wallet(self.reseller_customer))
        self.assertFalse(self._wallet(self.other_reseller_customer))


@tagged("post_install", "-at_install")
class TestBillingResellerRechargeSweep(
    ResellerPortalMixin, BillingAccessSweepCommon, HttpCase
):
    """The recharge route in the access sweep's world: reseller R recharges
    no one but its customers, every other party is refused it."""

    def _recharge_movements(self):
        self.env.invalidate_all()
        return self.env["billing.wallet.move"].search_count([("kind", "=", "recharge")])

    def test_recharge_only_of_own_customers(self):
        problems = []
        for who, (user, labels) in self.sweep_users.items():
            self.authenticate(user.login, user.login)
            for label, partner in self.parties.items():
                response = self.url_open(
                    f"/my/customers/{partner.id}/recharge",
                    data={"csrf_token": self.csrf_token(), "amount": "1", "key": KEY},
                )
                own = who == "reseller R" and label == "C"
                expected = 200 if own else 404
                if response.status_code != expected:
                    problems.append(
                        f"{who}: POST recharge of {label}: {response.status_code}, "
                        f"not {expected}"
                    )
                if not own:
                    self._leaks_of(who, label, response.text, labels, problems)
        # C is postpaid: even its reseller's recharge is refused.
        self.assertFalse(self._recharge_movements())
        self._report(problems)

    def _leaks_of(self, who, label, text, labels, problems):
        leaks = self._marker_leaks(text, labels)
        if leaks:
            problems.append(f"{who}: POST recharge of {label} shows data of {leaks}")


@tagged("post_install", "-at_install")
class TestBillingResellerPortalTour(ResellerPortalMixin, BillingWalletCommon, HttpCase):
    """A reseller, in the browser: opens a customer, recharges it, opens the
    invoices, filters the overdue ones and sends a reminder."""

    def test_reseller_portal_tour(self):
        today = fields.Date.context_today(self.env.user)
        Partner = self.env["res.partner"]
        reseller = Partner.create(
            {
                "name": "Tour Reseller",
                "is_company": True,
                "is_billing_reseller": True,
                "email": "tour.reseller@example.com",
            }
        )
        kiosk = Partner.create(
            {
                "name": "Tour Kiosk",
                "is_company": True,
                "billing_mode": "prepaid",
                "billing_reseller_id": reseller.id,
            }
        )
        bakery = Partner.create(
            {
                "name": "Tour Bakery",
                "is_company": True,
                "email": "bakery@example.com",
                "billing_mode": "postpaid",
                "billing_reseller_id": reseller.id,
            }
        )
        user = self._portal_user("tour_reseller", reseller, RESELLER_GROUP)
        self._fund(80.0, partner=reseller)
        invoices = {}
        for name, due in (("overdue", -10), ("not_due", 20)):
            invoice = self._invoice(
                [(self.service, 1, 30.0)], partner=bakery, post=False
            )
            invoice.invoice_date = today - timedelta(days=30)
            invoice.invoice_date_due = today + timedelta(days=due)
            invoice.action_post()
            invoice.invoice_date_due = today + timedelta(days=due)
            invoices[name] = invoice
        self.assertEqual(invoices["overdue"].billing_due_status, "overdue")

        self.start_tour(
            "/my", "prepaid_postpaid_billing_reseller_portal_tour", login=user.login
        )

        self.env.invalidate_all()
        self.assertEqual(self._wallet(kiosk).balance, 30.0)
        self.assertEqual(self._wallet(reseller).balance, 50.0)
        self.assertBooksMatchWallet(kiosk)
        self.assertBooksMatchWallet(reseller)
        reminders = self.env["mail.mail"].search(
            [
                ("model", "=", "account.move"),
                ("res_id", "in", [i.id for i in invoices.values()]),
            ]
        )
        self.assertEqual(reminders.mapped("res_id"), invoices["overdue"].ids)
