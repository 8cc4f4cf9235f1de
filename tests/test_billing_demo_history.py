from dateutil.relativedelta import relativedelta

from odoo import fields
from odoo.tests import TransactionCase, tagged

MODULE = "prepaid_postpaid_billing"
RELAY = f"{MODULE}.res_partner_demo_reseller"
AURORA = f"{MODULE}.res_partner_demo_reseller2"


@tagged("post_install", "-at_install")
class TestBillingDemoHistory(TransactionCase):
    """The demo data holds six months of billing history made by the addon's
    own methods (demo/billing_demo.py): usage and invoices every month,
    invoices in every state, payments by bank, online and from the wallet,
    top-ups and wallet debits, a recurring run with a failed customer; for
    customers of both resellers and direct ones, prepaid and postpaid.

    Runs on a database with the demo data only, skipped elsewhere (see
    ``TestBillingResellerDemo``)."""

    def setUp(self):
        super().setUp()
        self.quayside = self.env.ref(
            f"{MODULE}.res_partner_demo_hist_quayside", raise_if_not_found=False
        )
        if not self.quayside:
            self.skipTest("the demo data of prepaid_postpaid_billing is not installed")
        self.today = fields.Date.context_today(self.env["account.move"])
        self.month_start = self.today.replace(day=1)
        self.Move = self.env["account.move"]

    def _recurring_invoices(self, domain=()):
        return self.Move.search(
            [
                ("move_type", "=", "out_invoice"),
                ("billing_recurring_id", "!=", False),
                *domain,
            ]
        )

    def test_every_month_has_usage_and_invoices(self):
        Charge = self.env["billing.charge"]
        for months_ago in range(6):
            start = self.month_start - relativedelta(months=months_ago)
            end = start + relativedelta(months=1)
            with self.subTest(month=start.strftime("%Y-%m")):
                charges = Charge.search([("date", ">=", start), ("date", "<", end)])
                self.assertTrue(charges.filtered(lambda c: c.state == "debited"))
                self.assertGreaterEqual(len(charges.partner_id), 8)
                invoices = self._recurring_invoices(
                    [("invoice_date", ">=", start), ("invoice_date", "<", end)]
                )
                # One invoice per postpaid customer a month, made by the run;
                # this month one customer failed.
                self.assertEqual(len(invoices), 7 if months_ago else 6)
                topups = self.Move.search(
                    [
                        ("billing_is_topup", "=", True),
                        ("invoice_date", ">=", start),
                        ("invoice_date", "<", end),
                    ]
                )
                self.assertTrue(topups)
        # A dozen customers send usage.
        self.assertGreaterEqual(len(Charge.search([]).partner_id), 12)
        # Invoiced usage: the usage lines of the invoices bill the charges.
        invoiced = Charge.search([("state", "=", "invoiced")])
        self.assertTrue(invoiced)
        self.assertTrue(all(invoiced.mapped("invoice_id.billing_recurring_id")))

    def test_invoices_in_every_state(self):
        invoices = self._recurring_invoices()
        posted = invoices.filtered(lambda m: m.state == "posted")
        this_month = invoices.filtered(lambda m: m.invoice_date >= self.month_start)
        for label, moves in (("all", invoices), ("this month", this_month)):
            with self.subTest(invoices=label):
                self.assertTrue(moves.filtered(lambda m: m.state == "draft"))
                self.assertTrue(
                    moves.filtered(
                        lambda m: m.state == "posted" and m.payment_state == "not_paid"
                    )
                )
                self.assertTrue(
                    moves.filtered(lambda m: m.payment_state in ("paid", "in_payment"))
                )
                self.assertTrue(moves.filtered(lambda m: m.payment_state == "partial"))
        overdue = posted.filtered(lambda m: m.billing_due_status == "overdue")
        self.assertTrue(overdue)
        self.assertTrue(all(move.invoice_date_due < self.today for move in overdue))
        self.assertTrue(all(move.amount_residual > 0 for move in overdue))
        # Invoices of past months were approved in their month: no old draft.
        self.assertFalse(
            invoices.filtered(
                lambda m: m.state == "draft" and m.invoice_date < self.month_start
            )
        )

    def test_payments_by_every_method(self):
        Payment = self.env["account.payment"]
        methods = ["bank", "wallet"]
        # Online payments go through Odoo's demo payment provider (payment_demo,
        # which scripts/demo and scripts/test install beside the addon).
        provider = self.env.ref("payment.payment_provider_demo")
        if provider.code == "demo":
            methods.append("online")
        for method in methods:
            with self.subTest(method=method):
                payments = Payment.search(
                    [
                        ("billing_payment_method", "=", method),
                        ("state", "in", ("in_process", "paid")),
                        ("partner_id", "in", self._history_partners().ids),
                    ]
                )
                self.assertTrue(payments)
                self.assertTrue(payments.reconciled_invoice_ids)
        online = Payment.search([("billing_payment_method", "=", "online")])
        self.assertTrue(all(online.mapped("payment_transaction_id")))
        self.assertEqual(set(online.payment_transaction_id.mapped("state")), {"done"})
        # Bank payments are dated the day they were received, in past months.
        bank = Payment.search(
            [
                ("billing_payment_method", "=", "bank"),
                ("partner_id", "in", self._history_partners().ids),
            ]
        )
        self.assertLess(min(bank.mapped("date")), self.month_start)
        self.assertTrue(all(date <= self.today for date in bank.mapped("date")))

    def _history_partners(self):
        return self.env["res.partner"].search(
            [("id", "in", self.env["billing.charge"].search([]).partner_id.ids)]
        )

    def test_topups_and_wallet_debits(self):
        WalletMove = self.env["billing.wallet.move"]
        partners = self._history_partners()
        topups = self.Move.search(
            [("billing_is_topup", "=", True), ("partner_id", "in", partners.ids)]
        )
        self.assertGreaterEqual(len(topups), 10)
        self.assertLessEqual(
            set(topups.mapped("payment_state")), {"paid", "in_payment"}
        )
        for kind in ("topup", "bonus", "usage", "invoice_payment"):
            with self.subTest(kind=kind):
                moves = WalletMove.search(
                    [("kind", "=", kind), ("partner_id", "in", partners.ids)]
                )
                self.assertTrue(moves)
                if kind in ("usage", "invoice_payment"):
                    self.assertTrue(
                        all(amount < 0 for amount in moves.mapped("amount"))
                    )
        # The prepaid usage is booked: no consumption waits for its posting.
        self.assertFalse(
            WalletMove.search([("kind", "=", "usage"), ("account_move_id", "=", False)])
        )
        for wallet in self.env["billing.wallet"].search(
            [("partner_id", "in", partners.ids)]
        ):
            self.assertGreaterEqual(wallet.balance, 0.0)

    def test_run_with_a_failed_customer(self):
        runs = self.env["billing.run"].search([("kind", "=", "recurring")])
        self.assertGreaterEqual(len(runs), 6)
        self.assertEqual(
            sum(runs.mapped("invoice_count")), len(self._recurring_invoices())
        )
        failed = runs.filtered(lambda run: run.state == "failed")
        self.assertEqual(len(failed), 1)
        self.assertEqual(failed, runs[:1], "the last run has the failure")
        self.assertEqual(failed.failure_ids.partner_id, self.quayside)
        self.assertIn("negative total amount", failed.failure_ids.error)
        schedule = failed.failure_ids.recurring_id
        self.assertLessEqual(schedule.next_date, self.today, "retried on the next run")
        self.assertEqual(failed.invoice_count, 6)
        self.assertEqual(
            set((runs - failed).mapped("state")), {"done"}, "the earlier runs"
        )
        # Running schedules, and a stopped one.
        Recurring = self.env["billing.recurring"]
        self.assertTrue(Recurring.search([("state", "=", "stopped")]))
        self.assertGreaterEqual(Recurring.search_count([("state", "=", "running")]), 7)
        self.assertEqual(set((runs - failed).mapped("trigger")), {"cron"})
        # The monthly runs, one a month.
        self.assertEqual(
            len(set((runs - failed).mapped(lambda run: run.date_start.date()))), 5
        )

    def test_resellers_direct_and_both_modes(self):
        invoices = self.Move.search(
            [
                ("move_type", "=", "out_invoice"),
                ("partner_id", "in", self._history_partners().ids),
            ]
        )
        resellers = invoices.partner_id.mapped(
            "commercial_partner_id.billing_reseller_id"
        )
        self.assertEqual(resellers, self.env.ref(RELAY) | self.env.ref(AURORA))
        self.assertTrue(
            invoices.filtered(lambda m: not m.partner_id.billing_reseller_id)
        )
        for reseller in (self.env.ref(RELAY), self.env.ref(AURORA)):
            with self.subTest(reseller=reseller.name):
                theirs = invoices.filtered(
                    lambda m, r=reseller: m.partner_id.billing_reseller_id == r
                )
                self.assertTrue(theirs.filtered("billing_recurring_id"))
                self.assertTrue(theirs.filtered("billing_is_topup"))
                self.assertEqual(theirs.journal_id, reseller.billing_journal_id)
        modes = {
            mode: invoices.filtered(
                lambda m, mode=mode: m.partner_id.billing_mode == mode
            )
            for mode in ("prepaid", "postpaid")
        }
        self.assertTrue(modes["prepaid"])
        self.assertTrue(modes["postpaid"].filtered("billing_recurring_id"))

    def test_dashboard_is_alive(self):
        """The dashboard of the demo, on its default period (this month), shows
        figures in every tile that the history makes this month, and this
        year's history has figures in all of them."""
        Dashboard = self.env["billing.dashboard"]
        month = Dashboard.get_dashboard_data({})
        figures = {
            figure["key"]: figure
            for tile in month["tiles"]
            for figure in (tile, *tile["subs"])
        }
        for key in ("total", "posted", "draft", "paid", "unsettled", "payments"):
            with self.subTest(period="this month", figure=key):
                self.assertGreater(figures[key]["count"], 0)
        self.assertGreater(figures["wallet"]["amount"], 0)
        self.assertGreater(month["recurring"]["running"], 0)
        self.assertEqual(month["recurring"]["last_run"]["failure_count"], 1)
        self.assertEqual(
            month["recurring"]["last_run"]["failures"][0]["partner"],
            self.quayside.display_name,
        )
        self.assertEqual(len(month["invoices"]["latest"]), 5)
        self.assertEqual(len(month["payments"]["latest"]), 5)
        year = Dashboard.get_dashboard_data(
            {
                "period": "custom",
                "date_from": fields.Date.to_string(
                    self.month_start - relativedelta(months=5)
                ),
                "date_to": fields.Date.to_string(self.today),
            }
        )
        figures = {
            figure["key"]: figure
            for tile in year["tiles"]
            for figure in (tile, *tile["subs"])
        }
        for key in (
            "posted",
            "paid",
            "unpaid",
            "partial",
            "overdue",
            "payments_bank",
            "payments_online",
            "payments_wallet",
        ):
            with self.subTest(period="six months", figure=key):
                self.assertGreater(figures[key]["count"], 0)
        for reseller in (self.env.ref(RELAY), self.env.ref(AURORA)):
            with self.subTest(reseller=reseller.name):
                theirs = Dashboard.get_dashboard_data(
                    {**year["filters"], "reseller_id": reseller.id}
                )
                self.assertGreater(theirs["tiles"][0]["count"], 0)
