from datetime import date

from odoo import Command
from odoo.tests import HttpCase, tagged

from .recurring_common import BillingRecurringCommon
from .test_billing_reseller_portal import ResellerPortalMixin


@tagged("post_install", "-at_install")
class TestBillingPortalSelfServiceTour(
    ResellerPortalMixin, BillingRecurringCommon, HttpCase
):
    """A postpaid customer with credit in its wallet serves itself in the portal:
    filters its usage and exports it, pays an open invoice from the wallet and
    moves its preferred invoice day."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.customer = cls._postpaid_customer(
            "Tour Self Service Co", billing_invoice_day=1
        )
        cls.user = cls._portal_user("tour_self_service", cls.customer)
        products = cls.env["product.product"].create(
            [
                {
                    "name": name,
                    "type": "service",
                    "list_price": price,
                    "taxes_id": [Command.clear()],
                }
                for name, price in (("Tour SMS", 0.0075), ("Tour Voice", 0.10))
            ]
        )
        cls.tour_sms, cls.tour_voice = products
        result = cls.env["billing.charge"].ingest(
            [
                {
                    "partner_id": cls.customer.id,
                    "product_id": product.id,
                    "date": when,
                    "quantity": quantity,
                    "external_ref": f"tour-self-{index}",
                }
                for index, (product, when, quantity) in enumerate(
                    [
                        (cls.tour_voice, "2026-10-15 09:00:00", 3.0),
                        (cls.tour_sms, "2026-11-02 10:00:00", 0.004),
                        (cls.tour_sms, "2026-11-30 23:00:00", 1000.0),
                    ]
                )
            ]
        )
        assert not result["rejected"], result["rejected"]
        cls.schedule = cls.env["billing.recurring"].create(
            {
                "partner_id": cls.customer.id,
                "interval_type": "month",
                "interval_number": 1,
                "next_date": date(2027, 1, 1),
                "generation_mode": "draft",
                "send_email": False,
            }
        )

    def test_customer_serves_itself_in_the_portal(self):
        self._fund(100.0, partner=self.customer)
        invoice = self._invoice([(self.service, 1, 40.0)], partner=self.customer)
        self.assertEqual(self._wallet(self.customer).balance, 100.0)
        self.start_tour(
            "/my/home",
            "prepaid_postpaid_billing_portal_self_service_tour",
            login="tour_self_service",
        )
        self.env.invalidate_all()
        self.assertIn(invoice.payment_state, ("paid", "in_payment"))
        self.assertEqual(
            invoice._get_reconciled_payments().billing_payment_method, "wallet"
        )
        self.assertAlmostEqual(self._wallet(self.customer).balance, 60.0, places=6)
        self.assertBooksMatchWallet(self.customer)
        self.assertEqual(self.customer.billing_invoice_day, 15)
        self.assertEqual(self.schedule.invoice_day, 15)
        # The current period ends as planned.
        self.assertEqual(self.schedule.next_date, date(2027, 1, 1))
        self.assertIn(
            "15", self.schedule.message_ids[:1].body, "the change is in the chatter"
        )
