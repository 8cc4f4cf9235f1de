from datetime import date
from unittest.mock import patch

from odoo.exceptions import AccessError
from odoo.tests import tagged

from .service_common import BillingServiceCommon

START = date(2026, 11, 1)
DUE = date(2026, 12, 1)


@tagged("post_install", "-at_install")
class TestBillingServiceQueries(BillingServiceCommon):
    """The queries of renewing a batch of services do not grow with the number
    of services in it."""

    def _due_services(self, count, tag):
        """``count`` monthly services at 10 started on 1 November 2026 (the
        first period charged then) and due on 1 December, each of its own
        customer: prepaid, whose wallet a paid recharge of 20 funded (two
        periods), and postpaid alternating."""
        services = self.env["billing.service"]
        for index in range(count):
            name = f"{tag} {index}"
            if index % 2:
                partner = self._postpaid_customer(f"{name} postpaid")
            else:
                partner = self.env["res.partner"].create(
                    {
                        "name": f"{name} prepaid",
                        "is_company": True,
                        "email": f"{tag.lower()}.{index}@example.com",
                        "billing_mode": "prepaid",
                    }
                )
                self._fund(20.0, partner)
            services |= self._service(partner, start=START)
        self.assertEqual(set(services.mapped("next_date")), {DUE})
        self.env.flush_all()
        self.env.cr.flush()  # the tracking of the activations
        self.env.invalidate_all()
        return services

    def _count_queries(self, call):
        """(queries, result) of ``call()`` on an empty cache, counted as
        ``assertQueryCount`` counts them: flushed before and after, tracking
        included."""
        with patch("random.random", lambda: 1):
            self.env.flush_all()
            self.env.cr.flush()
            self.env.invalidate_all()
            before = self.env.cr.sql_log_count
            result = call()
            self.env.flush_all()
            self.env.cr.flush()
        return self.env.cr.sql_log_count - before, result

    def _queries_of_run(self):
        """(queries, run) of a renewal run on the due date, all taken in one
        batch."""
        return self._count_queries(lambda: self._renew(DUE))

    def assertRenewedOnce(self, services, run):
        """Each of ``services`` charged once more, for December, at 10: the
        prepaid ones from their wallet (down to 0, one renewal ledger line),
        the postpaid ones pending; all active, next renewal on 1 January."""
        self.env.invalidate_all()
        self.assertEqual(run.state, "done")
        self.assertEqual(run.service_count, len(services))
        self.assertEqual(run.charge_count, len(services))
        self.assertEqual(run.suspended_count, 0)
        for service in services:
            self.assertEqual(self._periods(service), [START, DUE])
            charge = service.charge_ids.filtered(
                lambda charge: charge.service_period_start == DUE
            )
            self.assertEqual(charge.amount, 10.0)
            self.assertEqual(service.state, "active")
            self.assertEqual(service.next_date, date(2027, 1, 1))
            if service.partner_id.billing_mode == "prepaid":
                wallet = self._wallet(service.partner_id)
                self.assertEqual(charge.state, "debited")
                self.assertEqual(charge.wallet_move_id.amount, -10.0)
                self.assertEqual(wallet.balance, 0.0)
                self.assertEqual(
                    wallet.move_ids.filtered(lambda m: m.kind == "renewal").mapped(
                        "amount"
                    ),
                    [-10.0, -10.0],
                )
                self.assertBooksMatchWallet(service.partner_id)
            else:
                self.assertEqual(charge.state, "pending")
                self.assertFalse(charge.wallet_move_id)

    def test_queries_of_a_batch_do_not_grow_with_services(self):
        self._due_services(3, "Warm")
        self._queries_of_run()  # caches of the first run (templates, rights)
        small_services = self._due_services(5, "Small")
        small, small_runs = self._queries_of_run()
        self.assertRenewedOnce(small_services, small_runs)
        large_services = self._due_services(25, "Large")
        self.env.invalidate_all()
        # As many queries for 25 services as for 5 (measured: the same).
        with self.assertQueryCount(small):
            large_runs = self._renew(DUE)
        self.assertRenewedOnce(large_services, large_runs)
        # The same day again: nothing is due, nothing is charged.
        again, again_runs = self._queries_of_run()
        self.assertEqual(again_runs.charge_count, 0)
        self.assertLess(again, small)
        self.assertEqual(
            [len(self._periods(service)) for service in large_services], [2] * 25
        )

    def test_queries_of_the_manager_run_do_not_grow_and_others_are_refused(self):
        """The button of Billing Administrators renews as the scheduler does,
        with as many queries for 25 services as for 5; a Billing User may not
        start it and nothing is renewed."""
        Service = self.env["billing.service"]
        self._due_services(3, "Warm")
        Service.with_user(self.billing_manager).action_run_now()
        small_services = self._due_services(5, "Small")
        with self.assertRaises(AccessError):
            Service.with_user(self.billing_user).action_run_now()
        self.assertEqual(
            [len(self._periods(service)) for service in small_services], [1] * 5
        )
        small, _action = self._count_queries(
            Service.with_user(self.billing_manager).action_run_now
        )
        run = self.env["billing.run"].search(
            [("kind", "=", "renewal")], order="id desc", limit=1
        )
        self.assertRenewedOnce(small_services, run)
        large_services = self._due_services(25, "Large")
        self.env.invalidate_all()
        with self.assertQueryCount(small):
            Service.with_user(self.billing_manager).action_run_now()
        run = self.env["billing.run"].search(
            [("kind", "=", "renewal")], order="id desc", limit=1
        )
        self.assertRenewedOnce(large_services, run)
