"""The preferred invoice day (issue 15, item 4): the customer sets it on the
portal (or a Billing Administrator on the customer), and the recurring invoice
follows it from its next period on: the current period ends as planned,
nothing is invoiced twice and no day is left out. The change is logged in the
chatter of the recurring invoice and of the customer."""

import itertools
import re
from datetime import date, timedelta

from freezegun import freeze_time

from odoo import Command
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tests import HttpCase, new_test_user, tagged
from odoo.tools import format_date

from .recurring_common import BillingRecurringCommon
from .test_billing_access_sweep import BillingAccessSweepCommon
from .test_billing_reseller_portal import ResellerPortalMixin

INVOICE_DAY_URL = "/my/billing/invoice_day"
CHANGED = "Preferred invoice day changed from"


class InvoiceDayMixin:
    def _day_messages(self, record):
        """Bodies of the messages of ``record`` about a change of its
        preferred invoice day, oldest first."""
        self.env.invalidate_all()
        return [
            body
            for body in record.message_ids.sorted("id").mapped("body")
            if CHANGED in body
        ]

    def _state(self, *records):
        """The preferred day, next date and period start of schedules, the
        preferred day of partners, and their messages: what a change would
        change."""
        self.env.invalidate_all()
        state = []
        for record in records:
            if record._name == "billing.recurring":
                state.append(
                    (
                        record.invoice_day,
                        record.next_date,
                        record.period_start,
                        len(record.message_ids),
                    )
                )
            else:
                state.append((record.billing_invoice_day, len(record.message_ids)))
        return state


@tagged("post_install", "-at_install")
class TestBillingInvoiceDay(InvoiceDayMixin, BillingRecurringCommon):
    """The recurring invoice across a change of its preferred day."""

    def _run_on(self, day):
        """The recurring run of ``day`` (a date), as the scheduler runs it that
        day."""
        with freeze_time(f"{day.isoformat()} 12:00:00"):
            run = self.env["billing.recurring"]._billing_run()
        self.assertEqual(run.state, "done", run.failure_ids.mapped("error"))
        return run

    def _periods(self, schedule):
        """(invoice date, period start, period end, untaxed amount) of the
        invoices of ``schedule``, oldest first."""
        return [
            (
                invoice.invoice_date,
                invoice.billing_period_start,
                invoice.billing_period_end,
                self.currency.round(invoice.amount_untaxed),
            )
            for invoice in self._invoices(schedule)
        ]

    def _usage_at(self, partner, *moments):
        for moment in moments:
            self._usage(partner, self.sms, moment)

    def assertTiled(self, schedule):
        """Each period of ``schedule``'s invoices starts the day after the
        previous one ended, and each of its customer's charges is on exactly
        one of them, the one of the period of its date; those of the period
        not invoiced yet wait for it."""
        invoices = self._invoices(schedule)
        for previous, following in itertools.pairwise(invoices):
            self.assertEqual(
                following.billing_period_start,
                previous.billing_period_end + timedelta(days=1),
                f"{following.billing_period_start} follows "
                f"{previous.billing_period_end}",
            )
        charges = self.env["billing.charge"].search(
            [("partner_id", "=", schedule.partner_id.id)]
        )
        self.assertTrue(charges)
        for charge in charges:
            if charge.date.date() >= schedule.period_start:
                self.assertEqual(charge.state, "pending", charge.date)
                continue
            self.assertEqual(charge.state, "invoiced", charge.date)
            invoice = charge.invoice_line_id.move_id
            self.assertIn(invoice, invoices)
            if invoice != invoices[:1]:  # the first also takes earlier charges
                self.assertGreaterEqual(
                    charge.date.date(), invoice.billing_period_start, charge.date
                )
            self.assertLessEqual(
                charge.date.date(), invoice.billing_period_end, charge.date
            )
        for invoice in invoices:
            self.assertChargesMatchUsageLines(invoice)

    # -------------------------------------------------------------------------
    # Periods across a change
    # -------------------------------------------------------------------------

    def test_change_applies_from_the_next_period(self):
        """Day 1 changed to 15 on January 20: the invoice of February 1 still
        bills January 1 to 31, the next one is on March 15 and bills February 1
        to March 14; no invoice on March 1, no charge invoiced twice."""
        schedule = self._schedule(
            next_date=date(2026, 1, 1),
            line_ids=[
                Command.create(
                    {"product_id": self.plan.id, "quantity": 1, "price_unit": 20.0}
                )
            ],
        )
        self.assertEqual(schedule.invoice_day, 1)
        self._usage_at(self.postpaid, "2025-12-10 12:00:00")
        self._run_on(date(2026, 1, 1))
        self._usage_at(
            self.postpaid,
            "2026-01-10 12:00:00",
            "2026-01-31 23:59:59",
            "2026-02-01 00:00:00",
            "2026-02-14 12:00:00",
            "2026-03-01 00:00:00",
            "2026-03-14 23:59:59",
            "2026-03-15 00:00:00",
        )
        with freeze_time("2026-01-20 10:00:00"):
            self.postpaid.with_user(self.billing_manager).write(
                {"billing_invoice_day": 15}
            )
        self.assertEqual(schedule.invoice_day, 15)
        self.assertEqual(schedule.next_date, date(2026, 2, 1), "kept as planned")
        self._run_on(date(2026, 2, 1))
        self.assertEqual(schedule.next_date, date(2026, 3, 15))
        self.assertEqual(schedule.period_start, date(2026, 2, 1))
        for day in (date(2026, 2, 15), date(2026, 3, 1), date(2026, 3, 14)):
            self.assertEqual(self._run_on(day).invoice_count, 0, day)
        self._run_on(date(2026, 3, 15))
        self._run_on(date(2026, 4, 15))
        self.assertEqual(
            self._periods(schedule),
            [
                (date(2026, 1, 1), date(2025, 12, 1), date(2025, 12, 31), 20.05),
                (date(2026, 2, 1), date(2026, 1, 1), date(2026, 1, 31), 20.10),
                (date(2026, 3, 15), date(2026, 2, 1), date(2026, 3, 14), 20.20),
                (date(2026, 4, 15), date(2026, 3, 15), date(2026, 4, 14), 20.05),
            ],
        )
        self.assertEqual(schedule.next_date, date(2026, 5, 15))
        self.assertTiled(schedule)

    def test_day_31_in_february_and_in_a_30_day_month(self):
        """Day 15 changed to 31: invoiced on February 28, March 31 and April
        30, each period starting the day after the previous one ended; in a
        leap year on February 29."""
        partner = self._postpaid_customer("Month End Co")
        schedule = self._schedule(partner, next_date=date(2026, 1, 15), invoice_day=15)
        self._usage_at(
            partner,
            "2026-01-14 23:00:00",
            "2026-01-15 00:00:00",
            "2026-02-27 23:00:00",
            "2026-02-28 00:00:00",
            "2026-03-30 23:00:00",
            "2026-03-31 00:00:00",
            "2026-04-29 23:00:00",
        )
        with freeze_time("2026-01-05 10:00:00"):
            schedule._billing_set_invoice_day(31)
        self.assertEqual(schedule.next_date, date(2026, 1, 15))
        for day in (
            date(2026, 1, 15),
            date(2026, 2, 28),
            date(2026, 3, 31),
            date(2026, 4, 30),
        ):
            self._run_on(day)
        self.assertEqual(
            self._periods(schedule),
            [
                (date(2026, 1, 15), date(2025, 12, 15), date(2026, 1, 14), 0.05),
                (date(2026, 2, 28), date(2026, 1, 15), date(2026, 2, 27), 0.10),
                (date(2026, 3, 31), date(2026, 2, 28), date(2026, 3, 30), 0.10),
                (date(2026, 4, 30), date(2026, 3, 31), date(2026, 4, 29), 0.10),
            ],
        )
        self.assertEqual(schedule.next_date, date(2026, 5, 31))
        self.assertTiled(schedule)
        # A leap year: February 29.
        leap = self._schedule(
            self._postpaid_customer("Leap Co"),
            next_date=date(2028, 1, 15),
            invoice_day=15,
        )
        leap._billing_set_invoice_day(31)
        periods, next_dates = leap._billing_due_periods(date(2028, 4, 30))
        self.assertEqual(
            [(p["invoice_date"], p["start"], p["end"]) for p in periods],
            [
                (date(2028, 1, 15), date(2027, 12, 15), date(2028, 1, 14)),
                (date(2028, 2, 29), date(2028, 1, 15), date(2028, 2, 28)),
                (date(2028, 3, 31), date(2028, 2, 29), date(2028, 3, 30)),
                (date(2028, 4, 30), date(2028, 3, 31), date(2028, 4, 29)),
            ],
        )
        self.assertEqual(next_dates[leap.id], date(2028, 5, 31))

    def test_change_before_the_first_invoice_keeps_its_period(self):
        """Day 31 changed to 15 before the first invoice of February 28: it
        still bills January 31 to February 27, as planned, and the next one
        February 28 to March 14."""
        partner = self._postpaid_customer("First Period Co")
        schedule = self._schedule(partner, next_date=date(2026, 2, 28), invoice_day=31)
        self._usage_at(partner, "2026-02-10 12:00:00", "2026-03-14 12:00:00")
        schedule._billing_set_invoice_day(15)
        self.assertEqual(schedule.next_date, date(2026, 2, 28))
        self._run_on(date(2026, 2, 28))
        self._run_on(date(2026, 3, 15))
        self.assertEqual(
            self._periods(schedule),
            [
                (date(2026, 2, 28), date(2026, 1, 31), date(2026, 2, 27), 0.05),
                (date(2026, 3, 15), date(2026, 2, 28), date(2026, 3, 14), 0.05),
            ],
        )
        self.assertTiled(schedule)

    def test_change_twice_in_one_period(self):
        """1 to 15 on January 20, then 15 to 20 on January 25: the invoice of
        February 1 as planned, the next one on March 20 (none on March 15), two
        messages."""
        schedule = self._schedule(next_date=date(2026, 2, 1))
        self._usage_at(
            self.postpaid,
            "2026-01-10 12:00:00",
            "2026-03-15 12:00:00",
            "2026-03-19 23:59:59",
            "2026-03-20 00:00:00",
        )
        with freeze_time("2026-01-20 10:00:00"):
            self.postpaid.write({"billing_invoice_day": 15})
        with freeze_time("2026-01-25 10:00:00"):
            self.postpaid.write({"billing_invoice_day": 20})
        self.assertEqual(schedule.invoice_day, 20)
        self.assertEqual(schedule.next_date, date(2026, 2, 1))
        messages = self._day_messages(schedule)
        self.assertEqual(len(messages), 2)
        self.assertIn(f"{CHANGED} 1 to 15", messages[0])
        self.assertIn(f"{CHANGED} 15 to 20", messages[1])
        self._run_on(date(2026, 2, 1))
        self.assertEqual(self._run_on(date(2026, 3, 15)).invoice_count, 0)
        self._run_on(date(2026, 3, 20))
        self.assertEqual(
            self._periods(schedule),
            [
                (date(2026, 2, 1), date(2026, 1, 1), date(2026, 1, 31), 0.05),
                (date(2026, 3, 20), date(2026, 2, 1), date(2026, 3, 19), 0.10),
            ],
        )
        self.assertEqual(schedule.next_date, date(2026, 4, 20))
        self.assertTiled(schedule)

    # -------------------------------------------------------------------------
    # Chatter, backend changes, refusals
    # -------------------------------------------------------------------------

    def test_change_is_logged_on_the_schedule_and_the_customer(self):
        schedule = self._schedule(next_date=date(2026, 2, 1))
        with freeze_time("2026-01-20 10:00:00"):
            self.postpaid.with_user(self.billing_manager).write(
                {"billing_invoice_day": 15}
            )
        self.env.invalidate_all()
        expected = f"{CHANGED} 1 to 15 by {self.billing_manager.name}"
        (message,) = self._day_messages(schedule)
        self.assertIn(expected, message)
        self.assertIn(format_date(self.env, date(2026, 2, 1)), message)
        self.assertIn(format_date(self.env, date(2026, 3, 15)), message)
        (on_partner,) = self._day_messages(self.postpaid)
        self.assertIn(expected, on_partner)
        self.assertIn(schedule.name, on_partner)
        authors = (schedule.message_ids | self.postpaid.message_ids).filtered(
            lambda m: CHANGED in m.body
        )
        self.assertEqual(authors.author_id, self.billing_manager.partner_id)
        # The same day again: nothing changes, nothing is logged.
        before = self._state(schedule, self.postpaid)
        self.postpaid.with_user(self.billing_manager).write({"billing_invoice_day": 15})
        self.assertEqual(self._state(schedule, self.postpaid), before)

    def test_backend_change_reaches_every_schedule_of_the_customer(self):
        """A Billing Administrator changes the customer's day (or a contact's
        company's): its schedules of every company follow, stopped ones too;
        another customer's stay as they are."""
        other_company = self.setup_other_company(name="Invoice Day Two")["company"]
        schedule = self._schedule(next_date=date(2026, 2, 1))
        abroad = self._schedule(next_date=date(2026, 2, 1), company=other_company)
        abroad.with_company(other_company).action_stop()
        other = self._postpaid_customer("Other Day Co")
        other_schedule = self._schedule(other, next_date=date(2026, 2, 1))
        before = self._state(other_schedule, other)
        self.postpaid.with_user(self.billing_manager).write({"billing_invoice_day": 28})
        self.assertEqual((schedule.invoice_day, abroad.invoice_day), (28, 28))
        self.assertEqual(abroad.state, "stopped")
        self.assertEqual(len(self._day_messages(abroad)), 1)
        self.assertEqual(len(self._day_messages(self.postpaid)), 2)
        self.assertEqual(self._state(other_schedule, other), before)
        # A contact follows its company.
        self.env["res.partner"].create(
            {"name": "Postpaid One Accounting", "parent_id": self.postpaid.id}
        )
        self.postpaid.with_user(self.billing_manager).write({"billing_invoice_day": 5})
        self.assertEqual(schedule.invoice_day, 5)
        self.assertEqual(self.postpaid.child_ids.mapped("billing_invoice_day"), [5])

    def test_bad_days_are_refused_and_nothing_is_written(self):
        schedule = self._schedule(next_date=date(2026, 2, 1))
        before = self._state(schedule, self.postpaid)
        for bad in (0, 32, -1, "abc", "15", None, 15.5, True):
            with self.assertRefusedWritingNothing(UserError) as caught:
                schedule._billing_set_invoice_day(bad)
            self.assertIn("Preferred Day", str(caught.exception))
            self.assertIn(schedule.name, str(caught.exception))
        # Refused before anything was written (no savepoint rolled them back).
        self.assertEqual(self._state(schedule, self.postpaid), before)
        # The customer's own field is refused by its constraint, checked once
        # written: nothing is kept because the request is rolled back
        # (TestBillingRefusedRequests proves it over JSON-RPC; the portal form
        # refuses these days before writing, TestBillingInvoiceDayPortal).
        for bad in (0, 32):
            with self.assertRaises(ValidationError) as caught:
                self.postpaid.write({"billing_invoice_day": bad})
            self.assertIn("Preferred Invoice Day", str(caught.exception))
            self.assertIn(self.postpaid.name, str(caught.exception))

    def test_only_billing_administrators_change_the_day(self):
        schedule = self._schedule(next_date=date(2026, 2, 1))
        before = self._state(schedule, self.postpaid)
        with self.assertRefusedWritingNothing(AccessError):
            schedule.with_user(self.billing_user)._billing_set_invoice_day(15)
        with self.assertRefusedWritingNothing(AccessError):
            self.postpaid.with_user(self.billing_user).write(
                {"billing_invoice_day": 15}
            )
        self.assertEqual(self._state(schedule, self.postpaid), before)
        schedule.with_user(self.billing_manager)._billing_set_invoice_day(15)
        self.assertEqual(schedule.invoice_day, 15)


class InvoiceDayPortalMixin(InvoiceDayMixin, ResellerPortalMixin):
    def _login(self, user):
        self.authenticate(user.login, user.login)

    def _save(self, data=None, token=True):
        """POST the form with ``data`` (and the CSRF token); the page it
        leads to."""
        data = dict(data or {})
        if token:
            data["csrf_token"] = self.csrf_token()
        return self.url_open(INVOICE_DAY_URL, data=data)

    def assertOnPage(self, needle, page):
        if needle not in page:
            self.fail(f"{needle!r} is not on the page")

    def _alert(self, page):
        """(kind, text) of the result alert shown once on the page, or None."""
        match = re.search(
            r'class="alert alert-\w+ (o_billing_invoice_day_\w+)"[^>]*>(.*?)</div>',
            page,
            re.DOTALL,
        )
        return match and (
            match.group(1),
            re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", match.group(2))).strip(),
        )


@tagged("post_install", "-at_install")
class TestBillingInvoiceDayPortal(
    InvoiceDayPortalMixin, BillingRecurringCommon, HttpCase
):
    """A postpaid customer sets its day on the portal; others cannot set it."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.schedule = cls._schedule_of(cls.postpaid, date(2027, 2, 1))
        cls.rival = cls._postpaid_customer("Rival Postpaid Co")
        cls.rival_schedule = cls._schedule_of(cls.rival, date(2027, 2, 1))
        cls.owner = cls._portal_user("day_owner", cls.postpaid)
        cls.rival_user = cls._portal_user("day_rival", cls.rival)
        cls.prepaid_user = cls._portal_user("day_prepaid", cls.customer)
        cls.employee = new_test_user(
            cls.env,
            login="day_employee",
            groups="base.group_user,prepaid_postpaid_billing.group_billing_manager",
            company_id=cls.company.id,
            company_ids=[Command.set(cls.company.ids)],
        )

    @classmethod
    def _schedule_of(cls, partner, next_date):
        return cls.env["billing.recurring"].create(
            {
                "partner_id": partner.id,
                "interval_type": "month",
                "interval_number": 1,
                "next_date": next_date,
                "generation_mode": "draft",
                "send_email": False,
            }
        )

    def _everything(self):
        return self._state(
            self.schedule, self.postpaid, self.rival_schedule, self.rival
        )

    def test_page_shows_the_form_the_day_and_the_next_dates(self):
        self._login(self.owner)
        response = self.url_open(INVOICE_DAY_URL)
        self.assertEqual(response.status_code, 200)
        page = response.text
        self.assertOnPage('class="o_billing_invoice_day_form" method="post"', page)
        input_tag = re.search(r'<input[^>]*name="invoice_day"[^>]*>', page).group(0)
        for attribute in ('type="number"', 'min="1"', 'max="31"', 'value="1"'):
            self.assertIn(attribute, input_tag)
        self.assertOnPage(
            'class="btn btn-primary o_billing_invoice_day_save" type="submit"', page
        )
        self.assertOnPage(
            "A day past the end of a shorter month means its last day", page
        )
        self.assertOnPage(format_date(self.env, date(2027, 2, 1)), page)
        self.assertOnPage(format_date(self.env, date(2027, 3, 1)), page)
        self.assertFalse("Rival" in page, "the page names another customer")
        self.assertIsNone(self._alert(page))

    def test_customer_changes_its_own_day(self):
        rival_before = self._state(self.rival_schedule, self.rival)
        self._login(self.owner)
        page = self._save({"invoice_day": "15"}).text
        self.assertEqual(self._alert(page)[0], "o_billing_invoice_day_saved")
        self.assertIn("day 15", self._alert(page)[1])
        self.assertEqual(self.postpaid.billing_invoice_day, 15)
        self.assertEqual(self.schedule.invoice_day, 15)
        self.assertEqual(self.schedule.next_date, date(2027, 2, 1))
        # The page now shows the new day and the date after the next one on it.
        self.assertOnPage(format_date(self.env, date(2027, 3, 15)), page)
        (message,) = self._day_messages(self.schedule)
        self.assertIn(f"{CHANGED} 1 to 15 by {self.owner.name}", message)
        self.assertEqual(len(self._day_messages(self.postpaid)), 1)
        self.assertEqual(self._state(self.rival_schedule, self.rival), rival_before)
        # Shown once: the page opened again has no alert.
        self.assertIsNone(self._alert(self.url_open(INVOICE_DAY_URL).text))

    def test_bad_values_are_refused_with_a_message(self):
        self._login(self.owner)
        before = self._everything()
        for data in (
            {"invoice_day": "0"},
            {"invoice_day": "32"},
            {"invoice_day": "abc"},
            {"invoice_day": ""},
            {"invoice_day": "15.5"},
            {"invoice_day": "-1"},
            {"invoice_day": "1 5"},
            {},
        ):
            page = self._save(data).text
            alert = self._alert(page)
            self.assertEqual(
                alert and alert[0], "o_billing_invoice_day_error", f"{data}: {alert}"
            )
            self.assertIn("from 1 to 31", alert[1])
            self.assertIn("Nothing was changed", alert[1])
            self.assertEqual(self._everything(), before, data)

    def test_nobody_changes_another_customers_day(self):
        """The route acts on the logged-in customer's own partner only: the
        ids of another customer or schedule sent along are ignored."""
        before = self._state(self.schedule, self.postpaid)
        self._login(self.rival_user)
        page = self._save(
            {
                "invoice_day": "20",
                "partner_id": str(self.postpaid.id),
                "customer_id": str(self.postpaid.id),
                "recurring_id": str(self.schedule.id),
            }
        ).text
        self.assertEqual(self._alert(page)[0], "o_billing_invoice_day_saved")
        self.assertEqual(self.rival.billing_invoice_day, 20)
        self.assertEqual(self.rival_schedule.invoice_day, 20)
        self.assertEqual(self._state(self.schedule, self.postpaid), before)
        self.assertFalse(self.postpaid.name in page, "the page names another customer")

    def test_employee_gets_404_and_csrf_is_required(self):
        before = self._everything()
        self._login(self.employee)
        self.assertEqual(self.url_open(INVOICE_DAY_URL).status_code, 404)
        self.assertEqual(self._save({"invoice_day": "9"}).status_code, 404)
        self._login(self.owner)
        response = self._save({"invoice_day": "9"}, token=False)
        self.assertEqual(response.status_code, 400)
        self.assertEqual(self._everything(), before)

    def test_public_user_is_sent_to_login(self):
        before = self._everything()
        response = self.url_open(INVOICE_DAY_URL, allow_redirects=False)
        self.assertIn(response.status_code, (302, 303))
        self.assertIn("/web/login", response.headers["Location"])
        response = self.url_open(
            INVOICE_DAY_URL, data={"invoice_day": "9"}, allow_redirects=False
        )
        self.assertNotEqual(response.status_code, 200)
        if response.status_code in (302, 303):
            self.assertIn("/web/login", response.headers["Location"])
        self.assertEqual(self._everything(), before)

    def _counters(self, user):
        self._login(user)
        return self.make_jsonrpc_request(
            "/my/counters", {"counters": ["billing_invoice_day_count"]}
        )["billing_invoice_day_count"]

    def test_home_entry_for_customers_with_a_recurring_invoice(self):
        self.postpaid.billing_invoice_day = 12
        self.assertEqual(self._counters(self.owner), 12)
        page = self.url_open("/my/home").text
        self.assertOnPage(f'href="{INVOICE_DAY_URL}" title="Invoice day"', page)
        # No recurring invoice, an employee: 0, which hides the entry.
        self.assertEqual(self._counters(self.prepaid_user), 0)
        self.assertEqual(self._counters(self.employee), 0)
        # Without a recurring invoice the page still works and says so.
        self._login(self.prepaid_user)
        page = self.url_open(INVOICE_DAY_URL).text
        self.assertOnPage("You have no recurring invoice yet", page)


@tagged("post_install", "-at_install")
class TestBillingInvoiceDaySweep(
    InvoiceDayPortalMixin, BillingAccessSweepCommon, HttpCase
):
    """The invoice day route in the access sweep's world: each portal user
    changes its own customer's day only (a reseller not its customers'),
    staff get 404, and no page shows another party's data."""

    def _all_days(self):
        self.env.invalidate_all()
        schedules = self.env["billing.recurring"].search([])
        return {
            **{label: p.billing_invoice_day for label, p in self.parties.items()},
            **{f"schedule {s.id}": (s.invoice_day, s.next_date) for s in schedules},
        }

    def test_each_user_changes_its_own_day_only(self):
        problems = []
        for day, (who, (user, labels)) in enumerate(self.sweep_users.items(), start=2):
            own = user.partner_id.commercial_partner_id
            before = self._all_days()
            self._login(user)
            for url in (INVOICE_DAY_URL,):
                response = self.url_open(url)
                leaks = self._marker_leaks(response.text, labels)
                if leaks:
                    problems.append(f"{who}: GET {url} shows data of {leaks}")
            response = self._save(
                {
                    "invoice_day": str(day),
                    **{
                        field: str(self.parties["C"].id)
                        for field in ("partner_id", "customer_id")
                    },
                }
            )
            leaks = self._marker_leaks(response.text, labels)
            if leaks:
                problems.append(f"{who}: POST {INVOICE_DAY_URL} shows data of {leaks}")
            after = self._all_days()
            changed = {key for key in before if before[key] != after[key]}
            own_label = next(
                (label for label, p in self.parties.items() if p == own), None
            )
            allowed = {own_label} if user.share else set()
            if user.share:
                allowed |= {
                    f"schedule {s.id}"
                    for s in self.env["billing.recurring"].search(
                        [("partner_id", "=", own.id)]
                    )
                }
            if changed - allowed:
                problems.append(
                    f"{who}: POST {INVOICE_DAY_URL} changed {sorted(changed - allowed)}"
                )
            if user.share and after[own_label] != day:
                problems.append(f"{who}: its own day was not changed to {day}")
            if not user.share and response.status_code != 404:
                problems.append(
                    f"{who}: POST {INVOICE_DAY_URL}: {response.status_code}, not 404"
                )
        self.assertEqual(self.schedule_b.invoice_day, 3, "B's schedule follows B")
        self._report(problems)
