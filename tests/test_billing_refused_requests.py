import json

from odoo.tests import HttpCase, tagged
from odoo.tools import mute_logger

from .recurring_common import BillingRecurringCommon


@tagged("post_install", "-at_install")
class TestBillingRefusedRequests(BillingRecurringCommon, HttpCase):
    """Refusals raised once Odoo has written part of the call: a constraint,
    checked after the values are written; the reset of a top-up's payment, whose
    spent credit is found once Odoo has started undoing it. Nothing of the call
    is kept because the request that made it is rolled back whole. Their tests
    elsewhere use ``assertRaises``, whose savepoint rolls back the same way, so a
    "nothing was written" check after it proves nothing. Here the calls go over
    JSON-RPC as the web client sends them, the server rolls the failed request
    back itself, and the checks read what the database kept."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # The accountant of the tests, who administers billing, also changes the
        # company's settings here.
        cls.env.user.groups_id += cls.env.ref("base.group_system")

    def setUp(self):
        super().setUp()
        self.assertEqual(self.env.user.login, "accountman")
        self.authenticate("accountman", "accountman")

    def _refused(self, model, method, records, *args):
        """Call ``method`` of ``records`` over JSON-RPC, as the web client does;
        returns the message of the error the server answered with, failing when
        it answered without one."""
        payload = {
            "jsonrpc": "2.0",
            "method": "call",
            "id": 1,
            "params": {
                "model": model,
                "method": method,
                "args": [records.ids, *args],
                "kwargs": {"context": {"allowed_company_ids": self.company.ids}},
            },
        }
        with mute_logger("odoo.http"):
            response = self.url_open(
                f"/web/dataset/call_kw/{model}/{method}",
                data=json.dumps(payload),
                headers={"Content-Type": "application/json"},
            )
        response.raise_for_status()
        body = response.json()
        self.assertIn("error", body, f"{model}.{method} was not refused: {body}")
        self.env.invalidate_all()  # what the database kept, not this cache
        return body["error"]["data"]["message"]

    def test_profile_change_with_a_bad_value_is_refused_whole(self):
        """The billing mode and a bad invoice day written together: neither is
        kept, nor logged in the chatter (TestBillingProfile)."""
        partner = self.env["res.partner"].create(
            {"name": "Unchanged", "billing_mode": "prepaid", "billing_invoice_day": 5}
        )
        self.env.flush_all()
        self.env.cr.flush()  # the tracking of the creation, written
        messages = len(partner.message_ids)
        for day in (40, 0):
            message = self._refused(
                "res.partner",
                "write",
                partner,
                {"billing_mode": "postpaid", "billing_invoice_day": day},
            )
            self.assertIn("Preferred Invoice Day of Unchanged", message)
            self.assertEqual(partner.billing_mode, "prepaid")
            self.assertEqual(partner.billing_invoice_day, 5)
            self.assertEqual(len(partner.message_ids), messages)

    def test_company_settings_without_a_mode_are_refused_whole(self):
        """A company offering no mode, or a default mode it does not offer, is
        refused and keeps what it offered (TestBillingSettings)."""
        self.company.write(
            {
                "billing_offer_prepaid": True,
                "billing_offer_postpaid": True,
                "billing_default_mode": "prepaid",
            }
        )
        message = self._refused(
            "res.company",
            "write",
            self.company,
            {"billing_offer_prepaid": False, "billing_offer_postpaid": False},
        )
        self.assertIn("at least one billing mode", message)
        self.assertTrue(self.company.billing_offer_prepaid)
        self.assertTrue(self.company.billing_offer_postpaid)
        message = self._refused(
            "res.company",
            "write",
            self.company,
            {"billing_offer_postpaid": False, "billing_default_mode": "postpaid"},
        )
        self.assertIn("Default Billing Mode of company", message)
        self.assertTrue(self.company.billing_offer_postpaid)
        self.assertEqual(self.company.billing_default_mode, "prepaid")

    def test_schedule_of_a_prepaid_customer_is_not_started(self):
        """Start, on a schedule whose customer is now prepaid, is refused and
        the schedule stays stopped (TestBillingModeChange)."""
        customer = self._postpaid_customer("Now Prepaid")
        schedule = self._schedule(customer)
        customer.with_user(self.billing_manager).billing_mode = "prepaid"
        self.assertEqual(schedule.state, "stopped")
        message = self._refused("billing.recurring", "action_start", schedule)
        self.assertIn("is not billed postpaid", message)
        self.assertEqual(schedule.state, "stopped")
        other = self._schedule(self._postpaid_customer("Still Postpaid"))
        message = self._refused(
            "billing.recurring", "write", other, {"stop_when_invoiced": True}
        )
        self.assertIn("Still Postpaid is billed postpaid", message)
        self.assertFalse(other.stop_when_invoiced)
        self.assertEqual(other.state, "running")

    def test_payment_of_a_spent_topup_is_not_undone(self):
        """Resetting the payment of a top-up whose credit was spent, or the
        top-up itself, is refused: the payment, the invoice, the wallet and the
        books stay as they were (TestBillingWalletUndo)."""
        invoice = self._invoice([(self.package, 1, 100.0)])
        payment = self._pay(invoice)
        self._invoice([(self.service, 1, 100.0)]).action_billing_pay_from_wallet()
        self.assertAlmostEqual(self._wallet().balance, 50.0, places=6)
        self.assertBooksMatchWallet()
        state = (payment.state, invoice.state, invoice.payment_state)
        message = self._refused("account.payment", "action_draft", payment)
        self.assertRegex(message, "cannot be undone: the .*150\\.00 of credit")
        self.assertEqual((payment.state, invoice.state, invoice.payment_state), state)
        self.assertAlmostEqual(self._wallet().balance, 50.0, places=6)
        self.assertBooksMatchWallet()
        message = self._refused("account.move", "button_draft", invoice)
        self.assertIn("cannot be undone", message)
        self.assertEqual((payment.state, invoice.state, invoice.payment_state), state)
        self.assertAlmostEqual(self._wallet().balance, 50.0, places=6)
        self.assertBooksMatchWallet()
