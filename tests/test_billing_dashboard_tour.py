from datetime import timedelta

from odoo import Command, fields
from odoo.tests import HttpCase, tagged

from .recurring_common import BillingRecurringCommon


@tagged("post_install", "-at_install")
class TestBillingDashboardTour(BillingRecurringCommon, HttpCase):
    """The Billing dashboard in a company of its own (that of the accounting test
    fixtures, with its chart of accounts), opened by its Billing Administrator who
    works in that company only, so that every figure is known to the cent:

    ==========  ========================================  =====  =========
    invoice     status                                    total  still due
    ==========  ========================================  =====  =========
    Partial     posted, 40 paid by bank, due in 30 days     100         60
    Draft       not approved                                 50         50
    Paid        posted, paid by bank                         80          0
    Overdue     posted, due 10 days ago                      30         30
    Wallet      posted, paid from the wallet                 50          0
    Reseller    posted, of the reseller's customer           20         20
    Top-up      posted, paid by bank: credit 200, not an invoice of revenue
    ==========  ========================================  =====  =========

    plus a running and a stopped schedule and a billing run with a failure."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        today = fields.Date.context_today(cls.env.user)
        cls.today = today
        cls.reseller = cls.env["res.partner"].create(
            {"name": "Dash Reseller", "is_company": True, "is_billing_reseller": True}
        )
        cls.reseller_customer = cls._postpaid_customer(
            "Dash Reseller Customer", billing_reseller_id=cls.reseller.id
        )
        cls.partial = cls._dash_invoice(100.0, due=today + timedelta(days=30))
        cls._dash_pay(cls.partial, 40.0)
        cls.draft = cls._dash_invoice(50.0, post=False)
        cls.paid = cls._dash_invoice(80.0)
        cls._dash_pay(cls.paid)
        cls.overdue = cls._dash_invoice(30.0, due=today - timedelta(days=10))
        cls.topup = cls._dash_invoice(200.0, partner=cls.customer, product=cls.recharge)
        cls._dash_pay(cls.topup)
        cls.wallet_paid = cls._dash_invoice(50.0, partner=cls.customer)
        cls.wallet_paid.action_billing_pay_from_wallet()
        cls.reseller_invoice = cls._dash_invoice(
            20.0, partner=cls.reseller_customer, due=today + timedelta(days=30)
        )

        Recurring = cls.env["billing.recurring"]
        cls.running = Recurring.create(cls._dash_schedule_vals("Dash Running Co", 5))
        cls.stopped = Recurring.create(cls._dash_schedule_vals("Dash Stopped Co", 20))
        cls.stopped.action_stop()
        # sudo: runs and their failures are written by the runs only, as here.
        run = (
            cls.env["billing.run"]
            .sudo()
            .create(
                {
                    "company_id": cls.company.id,
                    "trigger": "cron",
                    "state": "failed",
                    "invoice_count": 2,
                    "date_end": fields.Datetime.now(),
                }
            )
        )
        cls.env["billing.run.failure"].sudo().create(
            {
                "run_id": run.id,
                "recurring_id": cls.stopped.id,
                "partner_id": cls.stopped.partner_id.id,
                "error": "No price for the product SMS.",
            }
        )

    @classmethod
    def _dash_invoice(cls, amount, partner=None, product=None, due=None, post=True):
        invoice = cls.env["account.move"].create(
            {
                "move_type": "out_invoice",
                "partner_id": (partner or cls.postpaid).id,
                "invoice_date": cls.today,
                "invoice_date_due": due or cls.today,
                "invoice_line_ids": [
                    Command.create(
                        {
                            "product_id": (product or cls.plan).id,
                            "quantity": 1,
                            "price_unit": amount,
                            "tax_ids": [Command.clear()],
                        }
                    )
                ],
            }
        )
        if post:
            invoice.action_post()
        return invoice

    @classmethod
    def _dash_pay(cls, invoice, amount=None):
        vals = {"journal_id": cls.bank_journal.id, "payment_date": cls.today}
        if amount is not None:
            vals["amount"] = amount
        cls.env["account.payment.register"].with_context(
            active_model="account.move", active_ids=invoice.ids
        ).create(vals)._create_payments()

    @classmethod
    def _dash_schedule_vals(cls, name, days):
        return {
            "partner_id": cls._postpaid_customer(name).id,
            "interval_type": "month",
            "interval_number": 1,
            "next_date": cls.today + timedelta(days=days),
            "generation_mode": "draft",
            "send_email": False,
        }

    def test_dashboard_tour(self):
        """The tiles show the figures of the table above; each tile, each of its
        figures and each Go to Page opens the list of exactly those records; a
        schedule is stopped and started again from the dashboard, the reseller
        filter narrows the figures to the reseller's customers and Run Now opens
        the run it made."""
        # The fixtures are what the docstring says: the tour checks the figures.
        self.assertEqual(self.partial.payment_state, "partial")
        self.assertEqual(self.partial.billing_due_status, "not_due")
        self.assertIn(self.paid.payment_state, ("paid", "in_payment"))
        self.assertEqual(self.overdue.billing_due_status, "overdue")
        self.assertEqual(self.wallet_paid.payment_state, "paid")
        self.assertTrue(self.topup.billing_is_topup)
        self.assertAlmostEqual(self._wallet().balance, 150.0, places=2)
        self.assertEqual(self.env.company, self.company)
        self.assertEqual(self.billing_manager.company_ids, self.company)

        self.start_tour(
            "/odoo/billing-dashboard",
            "prepaid_postpaid_billing_dashboard_tour",
            login=self.billing_manager.login,
        )
        self.assertEqual(self.running.state, "running")
        self.assertEqual(self.stopped.state, "stopped")
        manual_run = self.env["billing.run"].search(
            [("company_id", "=", self.company.id), ("trigger", "=", "manual")]
        )
        self.assertEqual(len(manual_run), 1, "Run Now made one run")
        self.assertEqual(manual_run.invoice_count, 0, "no schedule was due")
