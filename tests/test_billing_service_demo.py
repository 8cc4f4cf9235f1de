from datetime import timedelta

from dateutil.relativedelta import relativedelta

from odoo import fields
from odoo.tests import TransactionCase, tagged


@tagged("post_install", "-at_install")
class TestBillingServiceDemo(TransactionCase):
    """The demo data shows services in every state: active prepaid ones paid
    from a funded wallet, an active postpaid one, one whose auto-renew is off,
    one suspended for want of credit, one closed, one new; some renew within
    the reminder days. Renewal runs on it charge each period once.

    Runs on a database with the demo data only, skipped elsewhere (see
    ``TestBillingResellerDemo``)."""

    SERVICES = {
        # xml id: (state, auto-renew, periods charged at installation)
        "billing_service_demo_nimbus_numbers": ("active", True, 1),
        "billing_service_demo_nimbus_short_code": ("active", False, 1),
        "billing_service_demo_orbital_numbers": ("active", True, 2),
        "billing_service_demo_tomasz_number": ("suspended", True, 0),
        "billing_service_demo_tomasz_short_code": ("closed", True, 0),
        "billing_service_demo_harbor_short_code": ("draft", True, 0),
        "billing_service_demo_kiez_number": ("active", True, 1),
        "billing_service_demo_spree_short_code": ("active", True, 1),
    }
    DUE_SOON = (
        "billing_service_demo_nimbus_numbers",
        "billing_service_demo_orbital_numbers",
        "billing_service_demo_kiez_number",
    )

    def setUp(self):
        super().setUp()
        if not self.env.ref(
            "prepaid_postpaid_billing.billing_service_demo_nimbus_numbers",
            raise_if_not_found=False,
        ):
            self.skipTest("the demo data of prepaid_postpaid_billing is not installed")
        self.services = {
            xmlid: self.env.ref(f"prepaid_postpaid_billing.{xmlid}")
            for xmlid in self.SERVICES
        }
        self.today = fields.Date.context_today(self.env["billing.service"])

    def _periods(self, service):
        service.invalidate_recordset(["charge_ids"])
        return sorted(service.charge_ids.mapped("service_period_start"))

    def _expected_periods(self, service, count):
        return [service._period_start_at(index) for index in range(count)]

    def test_demo_services(self):
        Service = self.env["billing.service"]
        self.assertEqual(
            set(Service.search([]).mapped("state")),
            {"draft", "active", "suspended", "closed"},
        )
        for xmlid, (state, auto_renew, count) in self.SERVICES.items():
            service = self.services[xmlid]
            with self.subTest(service=xmlid):
                self.assertEqual(
                    (service.state, service.auto_renew), (state, auto_renew)
                )
                # Consecutive periods from its start, each charged once.
                self.assertEqual(
                    self._periods(service), self._expected_periods(service, count)
                )
                charges = service.charge_ids
                if service.billing_mode == "prepaid":
                    self.assertEqual(
                        set(charges.mapped("state")),
                        set() if not count else {"debited"},
                    )
                    self.assertEqual(len(charges.wallet_move_id), count)
                else:
                    self.assertEqual(
                        set(charges.mapped("state")),
                        set() if not count else {"pending"},
                    )
                if state == "active":
                    self.assertEqual(service.next_date, service._period_start_at(count))
                    self.assertGreater(service.next_date, self.today)
        services = self.services
        # Prepaid and funded: the balance covers the next renewal; Tomasz
        # Kowalski's empty wallet does not, his service is suspended.
        self.assertTrue(
            services["billing_service_demo_nimbus_numbers"]._balance_covers_renewal()
        )
        self.assertTrue(
            services["billing_service_demo_kiez_number"]._balance_covers_renewal()
        )
        suspended = services["billing_service_demo_tomasz_number"]
        self.assertFalse(suspended._balance_covers_renewal())
        self.assertEqual(suspended.suspended_date, self.today)
        self.assertEqual(
            services["billing_service_demo_tomasz_short_code"].closed_date, self.today
        )
        # Nimbus paid its two services from the package it bought today.
        nimbus = services["billing_service_demo_nimbus_numbers"].partner_id
        self.assertEqual(nimbus.billing_balance, 150.0 - 10.0 - 25.0)
        # Within the reminder days: the renewal reminder goes out for these.
        days = self.env.company.billing_service_reminder_days
        self.assertGreater(days, 0)
        soon = Service.search(
            [
                ("state", "=", "active"),
                ("auto_renew", "=", True),
                ("next_date", ">", self.today),
                ("next_date", "<=", self.today + timedelta(days=days)),
            ]
        )
        self.assertEqual(
            soon, Service.browse(services[xmlid].id for xmlid in self.DUE_SOON)
        )

    def test_demo_services_of_the_reseller(self):
        """The reseller Relay sees its customers' services, no other."""
        user = self.env["res.users"].search([("login", "=", "reseller")])
        seen = self.env["billing.service"].with_user(user).search([])
        self.assertEqual(
            seen,
            self.services["billing_service_demo_kiez_number"]
            | self.services["billing_service_demo_spree_short_code"],
        )
        other = self.env["res.users"].search([("login", "=", "reseller2")])
        self.assertFalse(self.env["billing.service"].with_user(other).search([]))

    def test_renewal_runs_on_the_demo_data(self):
        """Runs on the demo data charge each period once: nothing is due
        today; a week later the services due soon renew once, again nothing
        twice; a month later the one whose auto-renew is off closes."""
        Service = self.env["billing.service"]
        charges = self.env["billing.charge"].search_count([("service_id", "!=", False)])
        Service._renewal_run(today=self.today)
        self.assertEqual(
            self.env["billing.charge"].search_count([("service_id", "!=", False)]),
            charges,
        )
        week = self.today + timedelta(days=8)
        balances = {
            partner: partner.billing_balance
            for partner in Service.search([]).partner_id
        }
        Service._renewal_run(today=week)
        Service._renewal_run(today=week)
        renewed = {xmlid: 1 for xmlid in self.DUE_SOON}
        for xmlid, (_state, _auto, count) in self.SERVICES.items():
            service = self.services[xmlid]
            with self.subTest(service=xmlid):
                self.assertEqual(
                    self._periods(service),
                    self._expected_periods(service, count + renewed.get(xmlid, 0)),
                )
        for xmlid in (
            "billing_service_demo_nimbus_numbers",
            "billing_service_demo_kiez_number",
        ):
            service = self.services[xmlid]
            partner = service.partner_id
            partner.invalidate_recordset(["billing_balance"])
            self.assertAlmostEqual(
                partner.billing_balance,
                balances[partner] - service.renewal_amount,
                places=6,
            )
        month = self.today + relativedelta(months=1, days=8)
        Service._renewal_run(today=month)
        short_code = self.services["billing_service_demo_nimbus_short_code"]
        self.assertEqual(short_code.state, "closed")
        self.assertEqual(
            self._periods(short_code), self._expected_periods(short_code, 1)
        )
        self.assertEqual(short_code.closed_date, short_code._period_start_at(1))
        self.assertEqual(
            self.services["billing_service_demo_tomasz_number"].state, "suspended"
        )
        self.assertFalse(
            self.services["billing_service_demo_harbor_short_code"].charge_ids
        )
