import logging
from datetime import date
from unittest.mock import patch

from odoo import Command
from odoo.tests import tagged

from .recurring_common import BillingRecurringCommon

_logger = logging.getLogger(__name__)

TODAY = date(2026, 11, 5)
# Queries a batch takes beyond its fixed part, per invoice it makes: none for
# drafts; for confirmed invoices, those of Odoo's numbering of each posted
# invoice (account.move's _compute_name: its last number looked up, the number
# checked unique, written and the move checked balanced again), measured 10.
PER_INVOICE = {"draft": 0, "confirm": 10}
# The fixed part of a batch (measured 72 for drafts, 83 for confirmed
# invoices), with a little room: what other tests leave in the caches.
PER_BATCH = {"draft": 80, "confirm": 95}


@tagged("post_install", "-at_install")
class TestBillingRecurringQueries(BillingRecurringCommon):
    """The queries of invoicing one batch of customers are a fixed part and,
    per invoice, a constant: nothing for drafts, the numbering of each
    confirmed invoice; no read is made per customer."""

    def _customers(self, count, tag, mode):
        """``count`` postpaid customers, each with a monthly schedule in
        ``mode`` (draft or confirm) of a fixed line and, in October, 3 SMS and
        2 minutes of usage; their schedules."""
        schedules = self.env["billing.recurring"]
        for index in range(count):
            partner = self._postpaid_customer(f"{tag} {mode} {index}")
            schedules |= self._schedule(
                partner,
                generation_mode=mode,
                line_ids=[
                    Command.create(
                        {"product_id": self.plan.id, "quantity": 1, "price_unit": 20.0}
                    )
                ],
            )
            self._usage(partner, self.sms, "2026-10-03", count=3)
            self._usage(partner, self.minutes, "2026-10-04", count=2)
        self.env.flush_all()
        self.env.cr.flush()
        self.env.invalidate_all()
        return schedules

    def _queries_of_run(self):
        """(queries, run) of one recurring run, all its schedules in one batch,
        counted as ``assertQueryCount`` counts them: on an empty cache, flushed
        before and after."""
        with patch("random.random", lambda: 1):
            self.env.flush_all()
            self.env.cr.flush()
            self.env.invalidate_all()
            before = self.env.cr.sql_log_count
            run = self._run(today=TODAY)
            self.env.flush_all()
            self.env.cr.flush()
        return self.env.cr.sql_log_count - before, run

    def assertInvoiced(self, schedules, run, mode):
        """Each of ``schedules`` invoiced once, by ``run``, for October: its
        fixed line of 20, its 3 SMS at 0.05 and 2 minutes at 0.10, its charges
        invoiced; posted in confirm mode, a draft otherwise."""
        self.env.invalidate_all()
        self.assertEqual(run.state, "done")
        self.assertEqual(run.invoice_count, len(schedules))
        self.assertEqual(run.charge_count, 5 * len(schedules))
        for schedule in schedules:
            invoice = self._invoices(schedule)
            self.assertEqual(len(invoice), 1)
            self.assertEqual(invoice.state, "posted" if mode == "confirm" else "draft")
            self.assertEqual(invoice.amount_untaxed, 20.35)
            self.assertEqual(len(invoice.invoice_line_ids), 3)
            self.assertChargesMatchUsageLines(invoice)
            self.assertEqual(schedule.next_date, date(2026, 12, 1))

    def _assert_batch_queries_constant(self, mode):
        self._customers(3, "Warm", mode)
        self._queries_of_run()  # caches of a first run (templates, rights)
        small_schedules = self._customers(5, "Small", mode)
        small, small_run = self._queries_of_run()
        self.assertInvoiced(small_schedules, small_run, mode)
        large_schedules = self._customers(20, "Large", mode)
        large, large_run = self._queries_of_run()
        self.assertInvoiced(large_schedules, large_run, mode)
        # queries = fixed + per_invoice x invoices, from the two sizes.
        per_invoice = (large - small) / 15
        fixed = small - 5 * per_invoice
        _logger.info(
            "Recurring batch (%s): %s queries for 5 customers, %s for 20: "
            "%s per invoice, %s fixed",
            mode,
            small,
            large,
            per_invoice,
            fixed,
        )
        self.assertLessEqual(
            per_invoice,
            PER_INVOICE[mode],
            f"{mode}: {small} queries for 5 customers, {large} for 20",
        )
        self.assertLessEqual(fixed, PER_BATCH[mode])
        # A third batch of 20 others takes what the two sizes predict.
        again_schedules = self._customers(20, "Again", mode)
        self.env.invalidate_all()
        with self.assertQueryCount(round(fixed + 20 * per_invoice)):
            again_run = self._run(today=TODAY)
        self.assertInvoiced(again_schedules, again_run, mode)

    def test_queries_of_a_batch_of_drafts_do_not_grow_with_customers(self):
        self._assert_batch_queries_constant("draft")

    def test_queries_of_a_batch_of_confirmed_invoices_do_not_grow(self):
        """Confirmed invoices are posted together, in one ``action_post`` per
        batch, their customers subscribed to them beforehand in one go (not
        emailed here: the PDF of each is rendered on its own)."""
        self._assert_batch_queries_constant("confirm")
