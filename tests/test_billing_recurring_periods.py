import calendar
import itertools
from datetime import date, timedelta

from dateutil.relativedelta import relativedelta

from odoo.tests import tagged

from .recurring_common import BillingRecurringCommon

CYCLES = [
    ("week", 1),
    ("week", 2),
    ("month", 1),
    ("month", 2),
    ("quarter", 1),
    ("year", 1),
]
MONTHS = {"month": 1, "quarter": 3, "year": 12}
# Anchors whose periods cross short Februaries, of a common and of a leap year.
ANCHORS = [date(2026, 1, 1), date(2027, 11, 1)]
MAX_MISSED = 13


def grid_date(kind, number, day, anchor, k):
    """The ``k``-th invoice date from ``anchor`` (negative: before it) of a cycle
    of ``number`` ``kind`` on the preferred ``day``, computed independently of
    the addon: the day clamped to the end of short months, never drifting."""
    if kind == "week":
        return anchor + timedelta(weeks=number * k)
    month = anchor + relativedelta(months=MONTHS[kind] * number * k)
    last = calendar.monthrange(month.year, month.month)[1]
    return month.replace(day=min(day, last))


@tagged("post_install", "-at_install")
class TestBillingRecurringPeriods(BillingRecurringCommon):
    """Periods of a recurring invoice tile exactly, however many are caught up."""

    def _invoices(self, schedule):
        return self.env["account.move"].search(
            [("billing_recurring_id", "=", schedule.id)], order="invoice_date"
        )

    def _check_tiling(self, periods, expected_dates, first_start, label):
        """Problems of ``periods`` (one run's or several runs' in a row) against
        the invoice dates ``expected_dates`` and the start of the first."""
        problems = []
        dates = [period["invoice_date"] for period in periods]
        if dates != expected_dates:
            problems.append(f"{label}: invoice dates {dates} != {expected_dates}")
            return problems
        if periods[0]["start"] != first_start:
            problems.append(
                f"{label}: first period starts {periods[0]['start']}, not {first_start}"
            )
        for period in periods:
            if period["end"] != period["invoice_date"] - timedelta(days=1):
                problems.append(f"{label}: period {period} does not end the day before")
            if period["start"] > period["end"]:
                problems.append(f"{label}: period {period} is empty")
        for previous, following in itertools.pairwise(periods):
            if following["start"] != previous["end"] + timedelta(days=1):
                problems.append(
                    f"{label}: period from {following['start']} does not follow the "
                    f"one ending {previous['end']}"
                )
        return problems

    def test_catch_up_periods_tile_for_every_day_and_cycle(self):
        """Days 1-31 x every cycle x 1 to 13 missed periods, caught up in one run
        or in two: each period starts the day after the previous one ended."""
        schedule = self._schedule().with_context(tracking_disable=True)
        problems = []
        for anchor in ANCHORS:
            for day in range(1, 32):
                for kind, number in CYCLES:
                    first = grid_date(kind, number, day, anchor, 0)
                    expected = [
                        grid_date(kind, number, day, first, k)
                        for k in range(MAX_MISSED + 1)
                    ]
                    previous = grid_date(kind, number, day, first, -1)
                    vals = {
                        "interval_type": kind,
                        "interval_number": number,
                        "invoice_day": day,
                        "next_date": first,
                        "period_start": False,
                    }
                    schedule.write(vals)
                    for missed in range(1, MAX_MISSED + 1):
                        label = f"day {day}, every {number} {kind}, {missed} missed"
                        periods, next_dates = schedule._billing_due_periods(
                            expected[missed - 1]
                        )
                        problems += self._check_tiling(
                            periods, expected[:missed], previous, label
                        )
                        if next_dates[schedule.id] != expected[missed]:
                            problems.append(
                                f"{label}: next date {next_dates[schedule.id]}"
                            )
                    # The same periods caught up by two runs, as the run leaves
                    # the schedule after the first.
                    for split in (1, 5, 12):
                        label = f"day {day}, every {number} {kind}, split at {split}"
                        schedule.write(vals)
                        periods, next_dates = schedule._billing_due_periods(
                            expected[split - 1]
                        )
                        schedule.write(
                            {
                                "next_date": next_dates[schedule.id],
                                "period_start": periods[-1]["invoice_date"],
                            }
                        )
                        more, _next = schedule._billing_due_periods(
                            expected[MAX_MISSED - 1]
                        )
                        problems += self._check_tiling(
                            periods + more, expected[:MAX_MISSED], previous, label
                        )
        if problems:
            self.fail(f"{len(problems)} problems:\n" + "\n".join(problems[:20]))

    def test_catch_up_preferred_day_31_bills_each_charge_once(self):
        """Five months missed with a preferred day of 31: five invoices, each
        charge on the invoice of the period of its date, the next date moved."""
        schedule = self._schedule(next_date=date(2026, 1, 31), invoice_day=31)
        # The days where periods computed one cycle back from a clamped date
        # overlapped (January 28-30, February 28), and both ends of each period.
        days = [
            "2025-12-31",
            "2026-01-28",
            "2026-01-29",
            "2026-01-30",
            "2026-01-31",
            "2026-02-27",
            "2026-02-28",
            "2026-03-30",
            "2026-03-31",
            "2026-04-29",
            "2026-04-30",
            "2026-05-30",
        ]
        for day in days:
            self._usage(self.postpaid, self.sms, f"{day} 12:00:00")
        self._usage(self.postpaid, self.sms, "2026-05-31 00:00:00")  # next period
        run = self._run(today=date(2026, 5, 31))
        self.assertEqual(run.state, "done", run.failure_ids.mapped("error"))
        invoices = self._invoices(schedule)
        self.assertEqual(
            [(inv.billing_period_start, inv.billing_period_end) for inv in invoices],
            [
                (date(2025, 12, 31), date(2026, 1, 30)),
                (date(2026, 1, 31), date(2026, 2, 27)),
                (date(2026, 2, 28), date(2026, 3, 30)),
                (date(2026, 3, 31), date(2026, 4, 29)),
                (date(2026, 4, 30), date(2026, 5, 30)),
            ],
        )
        self.assertEqual(
            [sum(inv.invoice_line_ids.mapped("quantity")) for inv in invoices],
            [4, 2, 2, 2, 2],
        )
        for invoice in invoices:
            self.assertChargesMatchUsageLines(invoice)
            for charge in invoice.invoice_line_ids.billing_charge_ids:
                self.assertLessEqual(
                    charge.date.date(), invoice.billing_period_end, charge.name
                )
        self.assertEqual(run.invoice_count, 5)
        self.assertEqual(run.charge_count, 12)
        self.assertEqual(schedule.next_date, date(2026, 6, 30))
        self.assertEqual(schedule.period_start, date(2026, 5, 31))
        # The next run starts where this one ended.
        self._run(today=date(2026, 6, 30))
        june = self._invoices(schedule)[-1:]
        self.assertEqual(june.billing_period_start, date(2026, 5, 31))
        self.assertEqual(june.billing_period_end, date(2026, 6, 29))
        self.assertChargesMatchUsageLines(june)
        pending = self.env["billing.charge"].search(
            [("partner_id", "=", self.postpaid.id), ("state", "!=", "invoiced")]
        )
        self.assertFalse(pending)

    def test_period_after_a_date_off_the_preferred_day_starts_on_it(self):
        """A first invoice on the 15th with a preferred day of 31: the next
        period, invoiced by another run, starts on the 15th."""
        schedule = self._schedule(next_date=date(2026, 1, 15), invoice_day=31)
        self._usage(self.postpaid, self.sms, "2026-01-10 12:00:00")
        self._usage(self.postpaid, self.sms, "2026-01-20 12:00:00")
        self._run(today=date(2026, 1, 15))
        self._run(today=date(2026, 2, 28))
        january, february = self._invoices(schedule)
        self.assertEqual(january.billing_period_start, date(2025, 12, 15))
        self.assertEqual(january.billing_period_end, date(2026, 1, 14))
        self.assertEqual(february.billing_period_start, date(2026, 1, 15))
        self.assertEqual(february.billing_period_end, date(2026, 2, 27))
        self.assertEqual(schedule.next_date, date(2026, 3, 31))
