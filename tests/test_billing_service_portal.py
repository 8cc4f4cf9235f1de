"""My Services on the portal (issue 13, point 6): the portal user's renewable
services, read with the user's rights, and auto-renew and closing of the
user's own services only."""

import re
from unittest.mock import patch

from odoo import Command, fields
from odoo.tests import HttpCase, new_test_user, tagged
from odoo.tools import SQL, format_date

from odoo.addons.portal.controllers.portal import CustomerPortal

from .service_common import BillingServiceCommon
from .test_billing_access_sweep import BillingAccessSweepCommon
from .test_billing_reseller_portal import RESELLER_GROUP, ResellerPortalMixin

SERVICES_URL = "/my/services"


class ServicePortalMixin(ResellerPortalMixin):
    def _login(self, user):
        self.authenticate(user.login, user.login)

    def _page(self, url=SERVICES_URL):
        response = self.url_open(url)
        self.assertEqual(response.status_code, 200, url)
        return response.text

    def _listed(self, url=SERVICES_URL):
        """Ids of the services the page ``url`` lists."""
        return self._ids(self._page(url), "data-service-id")

    def _post(self, service, action, **data):
        """POST ``action`` (auto_renew, close) on ``service``, with the form's
        CSRF token; the response after the redirection, if any."""
        return self.url_open(
            f"/my/services/{service.id}/{action}",
            data={"csrf_token": self.csrf_token(), **data},
        )

    def _result(self, page):
        """(alert class, text) of the result shown once on the list, or None."""
        match = re.search(
            r'class="alert o_billing_service_result (alert-\w+)"[^>]*>([^<]*)<', page
        )
        return match and (match.group(1), match.group(2).strip())

    def _state(self, services):
        """What a change of ``services`` would change: auto-renew, state and
        closing date of each, and the messages of their chatters."""
        self.env.invalidate_all()
        return {
            service.id: (
                service.auto_renew,
                service.state,
                service.closed_date,
                len(service.message_ids),
            )
            for service in services
        }


@tagged("post_install", "-at_install")
class TestBillingServicePortal(ServicePortalMixin, BillingServiceCommon, HttpCase):
    """A prepaid customer with a funded service, a postpaid customer with one,
    a prepaid customer whose service is suspended (no credit), and a reseller
    whose customer has a service."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        Partner = cls.env["res.partner"]
        cls.reseller_partner = Partner.create(
            {
                "name": "Service Reseller",
                "is_company": True,
                "is_billing_reseller": True,
                "billing_mode": "postpaid",
            }
        )
        cls.reseller_client = Partner.create(
            {
                "name": "Reseller Client Shop",
                "is_company": True,
                "billing_mode": "postpaid",
                "billing_reseller_id": cls.reseller_partner.id,
            }
        )
        cls.broke = Partner.create(
            {"name": "Broke Prepaid Co", "is_company": True, "billing_mode": "prepaid"}
        )
        cls.customer_user = cls._portal_user("service_owner", cls.customer)
        cls.postpaid_user = cls._portal_user("service_postpaid", cls.postpaid)
        cls.broke_user = cls._portal_user("service_broke", cls.broke)
        cls.reseller_user = cls._portal_user(
            "service_reseller", cls.reseller_partner, RESELLER_GROUP
        )
        cls.client_user = cls._portal_user("service_client", cls.reseller_client)
        cls.internal_user = new_test_user(
            cls.env,
            login="service_internal",
            groups="base.group_user",
            company_id=cls.company.id,
            company_ids=[Command.set(cls.company.ids)],
        )

    def setUp(self):
        super().setUp()
        self.today = fields.Date.context_today(self.env.user)
        self._fund(25.0)
        self.own = self._service(start=self.today, name="Own Phone Number")
        self.postpaid_service = self._service(
            self.postpaid, start=self.today, name="Postpaid Line"
        )
        self.client_service = self._service(
            self.reseller_client, start=self.today, name="Client Line"
        )
        self.suspended = self._service(self.broke, start=self.today, name="Unpaid Line")
        self.draft = self._service(activate=False, start=self.today, name="Draft Line")
        self.all_services = (
            self.own
            | self.postpaid_service
            | self.client_service
            | self.suspended
            | self.draft
        )

    def test_fixtures(self):
        self.assertEqual(
            (self.own | self.postpaid_service | self.client_service).mapped("state"),
            ["active"] * 3,
        )
        self.assertEqual(self.suspended.state, "suspended")
        self.assertTrue(self.own._balance_covers_renewal())
        self.assertTrue(self.reseller_user.has_group(RESELLER_GROUP))
        self.assertFalse(self.customer_user.has_group(RESELLER_GROUP))

    # -------------------------------------------------------------------------
    # The list
    # -------------------------------------------------------------------------

    def test_customer_sees_only_its_own_services(self):
        self._login(self.customer_user)
        page = self._page()
        self.assertEqual(self._ids(page, "data-service-id"), set(self.own.ids))
        self.assertIn("Own Phone Number", page)
        for name in ("Postpaid Line", "Client Line", "Unpaid Line", "Draft Line"):
            self.assertNotIn(name, page)
        self.assertNotIn("o_billing_service_customer", page, "no customer column")
        amount = self.env["billing.wallet"]._format_amount_exact(10.0, self.currency)
        self.assertIn(amount, page)
        self.assertIn("Every month", page)
        self.assertIn("o_billing_service_covered", page)
        self.assertIn("o_billing_service_auto_renew_off", page)
        self.assertIn("Close at Period End", page)
        counters = self.make_jsonrpc_request(
            "/my/counters", {"counters": ["billing_service_count"]}
        )
        self.assertEqual(counters["billing_service_count"], 1)
        self.assertIn('href="/my/services"', self._page("/my"))

        self._login(self.postpaid_user)
        page = self._page()
        self.assertEqual(
            self._ids(page, "data-service-id"), set(self.postpaid_service.ids)
        )
        self.assertIn("On your next invoice", page)
        self.assertNotIn("o_billing_service_covered", page)

    def test_balance_that_does_not_cover_the_next_renewal(self):
        # 25 - 10 of the first period = 15: a second service of 10 a month
        # leaves 5, which covers neither.
        second = self._service(start=self.today, name="Second Number")
        self.assertFalse(second._balance_covers_renewal())
        self._login(self.customer_user)
        page = self._page()
        self.assertEqual(
            self._ids(page, "data-service-id"), set((self.own | second).ids)
        )
        self.assertIn("o_billing_service_not_covered", page)
        self.assertNotIn("o_billing_service_covered", page)
        self.assertIn('href="/my/wallet"', page)

    def test_reseller_sees_its_customers_services_with_their_customer(self):
        self._login(self.reseller_user)
        page = self._page()
        self.assertEqual(
            self._ids(page, "data-service-id"), set(self.client_service.ids)
        )
        self.assertIn("o_billing_service_customer", page)
        self.assertIn("Reseller Client Shop", page)
        self.assertNotIn("o_billing_service_auto_renew_off", page, "no toggle")
        self.assertNotIn("o_billing_service_close", page, "no close button")
        counters = self.make_jsonrpc_request(
            "/my/counters", {"counters": ["billing_service_count"]}
        )
        self.assertEqual(counters["billing_service_count"], 1)
        # The reseller's customer itself sees its service, without the column.
        self._login(self.client_user)
        page = self._page()
        self.assertEqual(
            self._ids(page, "data-service-id"), set(self.client_service.ids)
        )
        self.assertNotIn("o_billing_service_customer", page)
        self.assertIn("o_billing_service_auto_renew_off", page)

    def test_filters_and_pager(self):
        # Credit for the renewal of the own service on the day the second one
        # closes.
        self._fund(50.0)
        second = self._service(start=self.today, name="Second Number")
        second.action_close()
        self._renew(second.next_date)
        self.env.invalidate_all()
        self.assertEqual(second.state, "closed")
        self.assertEqual(self.own.state, "active")
        self._login(self.customer_user)
        both = set((self.own | second).ids)
        self.assertEqual(self._listed(), both)
        self.assertEqual(self._listed("/my/services?filterby=closed"), set(second.ids))
        self.assertEqual(
            self._listed("/my/services?filterby=running"), set(self.own.ids)
        )
        self.assertEqual(self._listed("/my/services?filterby=nonsense"), both)
        self.assertIn("Closed on", self._page("/my/services?filterby=closed"))
        with patch.object(CustomerPortal, "_items_per_page", 1):
            first_page = self._listed("/my/services?sortby=name")
            second_page = self._listed("/my/services/page/2?sortby=name")
            self.assertIn("/my/services/page/2", self._page())
        self.assertEqual(first_page, set(self.own.ids), "Own... before Second...")
        self.assertEqual(second_page, set(second.ids))

    def test_user_without_access_to_services_sees_none(self):
        """An internal user outside the billing groups may not read services:
        the list is empty and the POST routes answer 404."""
        self._login(self.internal_user)
        self.assertEqual(self._listed(), set())
        before = self._state(self.own)
        self.assertEqual(
            self._post(self.own, "auto_renew", value="off").status_code, 404
        )
        self.assertEqual(self._state(self.own), before)

    # -------------------------------------------------------------------------
    # Changes by the customer
    # -------------------------------------------------------------------------

    def test_auto_renew_off_then_on(self):
        self._login(self.customer_user)
        page = self._post(self.own, "auto_renew", value="off").text
        self.assertEqual(
            self._result(page),
            (
                "alert-success",
                (
                    "Auto-renew of Own Phone Number is off: it closes at the end of "
                    "its paid period."
                ),
            ),
        )
        self.env.invalidate_all()
        self.assertFalse(self.own.auto_renew)
        self.assertEqual(self.own.state, "active")
        self.assertIn("Closes at period end, on", page)
        self.assertIn("o_billing_service_auto_renew_on", page)
        self.assertNotIn("Close at Period End", page, "closes already")
        self.assertIsNone(self._result(self._page()), "the result is shown once")

        page = self._post(self.own, "auto_renew", value="on").text
        self.assertEqual(self._result(page)[0], "alert-success")
        self.env.invalidate_all()
        self.assertTrue(self.own.auto_renew)
        self.assertIn("o_billing_service_auto_renew_off", page)

    def test_bad_value_and_missing_csrf_change_nothing(self):
        self._login(self.customer_user)
        before = self._state(self.own)
        page = self._post(self.own, "auto_renew", value="maybe").text
        self.assertEqual(self._result(page)[0], "alert-danger")
        self.assertEqual(self._state(self.own), before)
        response = self.url_open(
            f"/my/services/{self.own.id}/auto_renew", data={"value": "off"}
        )
        self.assertEqual(response.status_code, 400)
        self.assertEqual(self._state(self.own), before)

    def test_close_at_period_end(self):
        next_date = self.own.next_date
        self._login(self.customer_user)
        page = self._post(self.own, "close").text
        self.assertEqual(
            self._result(page),
            ("alert-success", "Own Phone Number closes at the end of its paid period."),
        )
        self.env.invalidate_all()
        self.assertFalse(self.own.auto_renew)
        self.assertEqual(self.own.state, "active", "closes at the period end")
        self.assertIn("Closes at period end, on", page)
        self.assertIn(format_date(self.env, next_date), page)
        # The renewal run of the period end closes it, without charging.
        periods = self._periods(self.own)
        self._renew(next_date)
        self.env.invalidate_all()
        self.assertEqual(self.own.state, "closed")
        self.assertEqual(self._periods(self.own), periods)
        page = self._page()
        self.assertIn("Closed on", page)
        self.assertNotIn("o_billing_service_close", page)
        # A closed service cannot be closed again nor renewed again.
        page = self._post(self.own, "auto_renew", value="on").text
        self.assertEqual(self._result(page)[0], "alert-danger")
        self.env.invalidate_all()
        self.assertFalse(self.own.auto_renew)

    def test_suspended_service_closes_at_once(self):
        self._login(self.broke_user)
        page = self._page()
        self.assertIn("Close Now", page)
        self.assertNotIn("o_billing_service_auto_renew_off", page)
        self.assertIn("Unpaid since", page)
        # Auto-renew cannot be turned on again: the service is unpaid.
        before = self._state(self.suspended)
        page = self._post(self.suspended, "auto_renew", value="on").text
        self.assertEqual(self._result(page)[0], "alert-danger")
        self.assertIn("auto-renew cannot change", self._result(page)[1])
        self.assertEqual(self._state(self.suspended), before)

        page = self._post(self.suspended, "close").text
        self.assertEqual(
            self._result(page), ("alert-success", "Unpaid Line is closed.")
        )
        self.env.invalidate_all()
        self.assertEqual(self.suspended.state, "closed")
        self.assertEqual(self.suspended.closed_date, self.today)
        self.assertFalse(self._periods(self.suspended), "nothing was charged")

    # -------------------------------------------------------------------------
    # Changes by others
    # -------------------------------------------------------------------------

    def test_other_customer_gets_404_and_nothing_changes(self):
        before = self._state(self.all_services)
        for user in (self.postpaid_user, self.broke_user, self.client_user):
            self._login(user)
            for service in self.all_services - self._owned(user):
                for action, data in (
                    ("auto_renew", {"value": "off"}),
                    ("auto_renew", {"value": "on"}),
                    ("close", {}),
                ):
                    response = self._post(service, action, **data)
                    self.assertEqual(
                        response.status_code,
                        404,
                        f"{user.login} {action} {data} of {service.name}",
                    )
        # The draft is not listed: not found even by its own customer.
        self._login(self.customer_user)
        self.assertEqual(self._post(self.draft, "close").status_code, 404)
        # Ids beyond PostgreSQL's integers too (scripts/chaos fuzz: a 500).
        for service_id in (10**9, 2**31, 10**30):
            for action in ("close", "auto_renew"):
                service = self.env["billing.service"].browse(service_id)
                self.assertEqual(self._post(service, action).status_code, 404)
        self.assertEqual(self._state(self.all_services), before)

    def _owned(self, user):
        return self.all_services.filtered(
            lambda service: service.partner_id == user.commercial_partner_id
        )

    def test_reseller_cannot_change_its_customers_services(self):
        before = self._state(self.all_services)
        self._login(self.reseller_user)
        for action, data in (
            ("auto_renew", {"value": "off"}),
            ("auto_renew", {"value": "on"}),
            ("close", {}),
        ):
            response = self._post(self.client_service, action, **data)
            self.assertEqual(response.status_code, 200)
            self.assertEqual(
                self._result(response.text),
                ("alert-danger", "Service Client Line is not yours to change."),
            )
        for service in self.all_services - self.client_service:
            self.assertEqual(self._post(service, "close").status_code, 404)
        self.assertEqual(self._state(self.all_services), before)

    def test_anonymous_is_sent_to_login(self):
        before = self._state(self.all_services)
        response = self.url_open(SERVICES_URL, allow_redirects=False)
        self.assertIn(response.status_code, (302, 303))
        self.assertIn("/web/login", response.headers.get("Location", ""))
        for action in ("auto_renew", "close"):
            response = self.url_open(
                f"/my/services/{self.own.id}/{action}",
                data={"value": "off"},
                allow_redirects=False,
            )
            self.assertNotEqual(response.status_code, 200)
        self.assertEqual(self._state(self.all_services), before)


@tagged("post_install", "-at_install")
class TestBillingServicePortalSweep(
    ServicePortalMixin, BillingAccessSweepCommon, HttpCase
):
    """My Services in the access sweep's world: a service of every party;
    each user sees its own (a reseller also its customers'), and changes
    none but its own."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # The fixtures' new services of every party, started.
        for service in cls.services.values():
            service.with_company(service.company_id).action_activate()

    def _digest(self):
        """The services' rows and the messages of their chatters."""
        self.env.flush_all()
        self.env.cr.execute(
            SQL(
                """
                SELECT md5(string_agg(s::text, ',' ORDER BY s.id)),
                       (SELECT count(*) FROM mail_message
                         WHERE model = 'billing.service')
                  FROM billing_service s
                """
            )
        )
        return self.env.cr.fetchone()

    def test_fixtures(self):
        states = {label: service.state for label, service in self.services.items()}
        self.assertEqual(states["A"], "active")
        self.assertEqual(states["C"], "active")
        self.assertEqual(self.services["D2"].company_id, self.company_2)

    def test_every_user_sees_its_own_services_only(self):
        problems = []
        urls = [
            SERVICES_URL,
            f"{SERVICES_URL}/page/2",
            *(
                f"{SERVICES_URL}?filterby={name}&sortby={order}"
                for name in ("all", "running", "suspended", "closed")
                for order in ("next_date", "name", "state")
            ),
        ]
        for who, (user, labels) in self.sweep_users.items():
            self._login(user)
            for url in urls:
                response = self.url_open(url)
                if response.status_code != 200:
                    problems.append(f"{who}: GET {url}: {response.status_code}")
                    continue
                leaks = self._marker_leaks(response.text, labels)
                if leaks:
                    problems.append(f"{who}: GET {url} shows data of {leaks}")
        self._login(self.user_r)
        self.assertEqual(
            self._listed(),
            {self.services["R"].id, self.services["C"].id},
            "the reseller sees its own service and its customer's",
        )
        self._login(self.user_a)
        self.assertEqual(self._listed(), {self.services["A"].id})
        self._report(problems)

    def test_nobody_changes_anothers_service(self):
        problems = []
        actions = (
            ("auto_renew", {"value": "off"}),
            ("auto_renew", {"value": "on"}),
            ("close", {}),
        )
        before = self._digest()
        for who, (user, labels) in self.sweep_users.items():
            self._login(user)
            own = user.partner_id.commercial_partner_id
            for label, service in self.services.items():
                if service.partner_id == own:
                    continue
                for action, data in actions:
                    url = f"/my/services/{service.id}/{action}"
                    response = self._post(service, action, **data)
                    result = response.status_code == 200 and self._result(response.text)
                    if response.status_code != 404 and not (
                        result and result[0] == "alert-danger"
                    ):
                        problems.append(
                            f"{who}: POST {url} {data} (service of {label}): "
                            f"{response.status_code} {result}, neither 404 nor "
                            "refused"
                        )
                    if label not in labels and response.status_code != 404:
                        problems.append(
                            f"{who}: POST {url} (service of {label}, not readable): "
                            f"{response.status_code}, not 404"
                        )
                    leaks = self._marker_leaks(response.text, labels)
                    if leaks:
                        problems.append(f"{who}: POST {url} shows data of {leaks}")
            if self._digest() != before:
                problems.append(f"{who}: its POSTs changed another's service")
                before = self._digest()
        # The positive side: A turns its own off.
        self._login(self.user_a)
        page = self._post(self.services["A"], "auto_renew", value="off").text
        self.assertEqual(self._result(page)[0], "alert-success")
        self.env.invalidate_all()
        self.assertFalse(self.services["A"].auto_renew)
        self._report(problems)


@tagged("post_install", "-at_install")
class TestBillingServicePortalTour(ResellerPortalMixin, BillingServiceCommon, HttpCase):
    """A customer, in the browser, turns auto-renew of its service off from My
    Services; an administrator then finds it off in Billing > Services."""

    def test_service_portal_tour(self):
        today = fields.Date.context_today(self.env.user)
        customer = self.env["res.partner"].create(
            {
                "name": "Tour Phone Customer",
                "is_company": True,
                "billing_mode": "prepaid",
            }
        )
        user = self._portal_user("tour_service_owner", customer)
        self._fund(50.0, partner=customer)
        service = self._service(customer, start=today, name="Tour Phone Line")
        self.assertEqual(service.state, "active")
        self.assertTrue(service.auto_renew)

        self.start_tour(
            "/my", "prepaid_postpaid_billing_service_portal_tour", login=user.login
        )

        self.env.invalidate_all()
        self.assertFalse(service.auto_renew)
        self.assertEqual(service.state, "active", "closes at the end of its period")

        # The administrator works in the company of the service.
        self.env.ref("base.user_admin").write(
            {
                "company_ids": [Command.link(self.company.id)],
                "company_id": self.company.id,
            }
        )
        self.start_tour(
            "/odoo/billing-services",
            "prepaid_postpaid_billing_service_backend_tour",
            login="admin",
        )
        self.env.invalidate_all()
        self.assertFalse(service.auto_renew, "the administrator only looked")
