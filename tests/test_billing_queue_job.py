"""Billing runs as OCA queue jobs (models/billing_queue.py), with ``queue_job``
installed beside the addon (``scripts/test`` installs it from its 18.0 wheel;
``scripts/test --without-queue-job`` does not, and these tests are skipped).

The jobs are performed here as queue_job's runner (``RunJobController``)
performs them: started, the job's method, then its done state, in the job's
transaction; on an error, that transaction rolled back (here: a savepoint) and
the failure recorded on a cursor of its own (here: the test cursor, outside
the savepoint), then its ``on_fail`` hook where queue_job has one."""

import traceback
import unittest
from datetime import date
from unittest.mock import patch

from freezegun import freeze_time

from odoo.modules.registry import Registry
from odoo.tests import tagged
from odoo.tests.common import get_db_name
from odoo.tools import mute_logger

from ..models.billing_queue import QUEUE_PARAM, REFRESH_PENDING_KEY
from .service_common import BillingServiceCommon

TODAY = date(2026, 11, 5)


@tagged("post_install", "-at_install")
class TestBillingQueueJob(BillingServiceCommon):
    @classmethod
    def setUpClass(cls):
        # The registry is loaded when the post-install tests run: whether
        # queue_job's models are in it says whether queue_job is installed.
        if "queue.job" not in Registry(get_db_name()):
            raise unittest.SkipTest(
                "OCA queue_job is not installed: the billing runs work in process "
                "(scripts/test installs queue_job unless --without-queue-job)"
            )
        super().setUpClass()
        # pylint: disable=import-outside-toplevel
        from odoo.addons.queue_job.job import Job
        from odoo.addons.queue_job.tests.common import trap_jobs

        cls.Job = Job
        cls.trap_jobs = staticmethod(trap_jobs)
        cls.env["ir.config_parameter"].sudo().set_param(QUEUE_PARAM, "1")
        cls.Run = cls.env["billing.run"].sudo()
        cls.Batch = cls.env["billing.run.batch"].sudo()

    # -------------------------------------------------------------------------
    # Helpers
    # -------------------------------------------------------------------------

    def _cron_recurring(self, batch_size):
        with freeze_time(TODAY):
            return self.env["billing.recurring"]._cron_billing_recurring(
                batch_size=batch_size
            )

    def _batches_of(self, runs, records):
        """The batches of ``runs`` holding some of ``records``."""
        return runs.batch_ids.filtered(
            lambda batch: set(batch.record_ids) & set(records.ids)
        ).sorted("sequence")

    def _job(self, batch):
        return self.Job.load(self.env, batch.job_uuid)

    def _run_job(self, batch):
        """Run the job of ``batch`` as queue_job's runner does; returns the
        error it failed of, if it did."""
        job = self._job(batch)
        job.set_started()
        job.store()
        error = None
        try:
            with self.env.cr.savepoint():  # the job's transaction
                job.perform()
                self.env.flush_all()
                job.set_done()
                job.store()
                self.env.flush_all()
        except Exception as exc:  # noqa: BLE001 - as the runner
            error = exc
        self.env.invalidate_all()
        if error is not None:
            values = {
                "exc_info": "".join(traceback.format_exception(error)),
                "exc_name": type(error).__name__,
                "exc_message": str(error),
            }
            job = self._job(batch)
            job.set_failed(**values)
            job.store()
            if hasattr(job, "on_fail"):
                job.on_fail(values)
            self.env.invalidate_all()
        return error

    def _queue_job(self, batch):
        return self.env["queue.job"].sudo().search([("uuid", "=", batch.job_uuid)])

    # -------------------------------------------------------------------------
    # Setup of queue_job's records
    # -------------------------------------------------------------------------

    def test_channel_and_job_function_are_made_once(self):
        channel = self.env.ref(
            "prepaid_postpaid_billing.queue_job_channel_billing"
        ).sudo()
        function = self.env.ref(
            "prepaid_postpaid_billing.queue_job_function_billing_batch_run"
        ).sudo()
        self.assertEqual(channel.complete_name, "root.billing")
        self.assertEqual(function.name, "<billing.run.batch>._billing_batch_run")
        self.assertEqual(function.channel, "root.billing")
        if "on_fail_method" in function._fields:  # queue_job 18.0.2 and later
            self.assertEqual(function.on_fail_method, "_billing_batch_failed")
        config = self.env["queue.job.function"].sudo().job_config(function.name)
        self.assertEqual(config.channel, "root.billing")
        self.assertEqual(config.job_function_id, function.id)
        self.assertTrue(config.retry_pattern)
        # Made again: nothing more.
        Channel = self.env["queue.job.channel"].sudo()
        Function = self.env["queue.job.function"].sudo()
        counts = (Channel.search_count([]), Function.search_count([]))
        self.Run._billing_queue_ensure_functions()
        self.assertEqual((Channel.search_count([]), Function.search_count([])), counts)
        # queue_job installed after the addon: made before the first enqueuing.
        function.unlink()
        channel.unlink()
        self.env["ir.model.data"].sudo().search(
            [
                ("module", "=", "prepaid_postpaid_billing"),
                ("model", "in", ("queue.job.channel", "queue.job.function")),
            ]
        ).unlink()
        self._batch_schedules(1)
        with self.trap_jobs():
            self._cron_recurring(batch_size=10)
        function = self.env.ref(
            "prepaid_postpaid_billing.queue_job_function_billing_batch_run"
        ).sudo()
        self.assertEqual(function.channel, "root.billing")
        self.assertEqual((Channel.search_count([]), Function.search_count([])), counts)

    # -------------------------------------------------------------------------
    # Recurring invoices: a job per batch
    # -------------------------------------------------------------------------

    def test_recurring_cron_enqueues_one_job_per_batch(self):
        schedules = self._batch_schedules(5)
        with self.trap_jobs() as trap:
            runs = self._cron_recurring(batch_size=2)
            run = runs.filtered(lambda r: r.company_id == self.company)
            self.assertEqual(len(run), 1)
            self.assertEqual(
                (run.kind, run.trigger, run.state), ("recurring", "cron", "queued")
            )
            batches = self._batches_of(run, schedules)
            # Due in the order the in-process run takes them: 2, 2 and 1.
            self.assertEqual(
                [batch.record_ids for batch in batches],
                [schedules.ids[0:2], schedules.ids[2:4], schedules.ids[4:]],
            )
            self.assertEqual(run.job_count, len(run.batch_ids))
            # The jobs of every company's run (this company's and the others').
            trap.assert_jobs_count(len(runs.batch_ids))
            for batch in batches:
                trap.assert_enqueued_job(
                    batch._billing_batch_run,
                    properties={
                        "channel": "root.billing",
                        "identity_key": f"billing.run.batch:{run.id}:{batch.id}",
                    },
                )
                self.assertTrue(batch.job_uuid)
            # Nothing invoiced until the jobs run.
            self.assertFalse(self._invoices(schedules[0]))
            self.assertEqual(run.job_done_count, 0)
            trap.perform_enqueued_jobs()
        self.env.invalidate_all()
        for schedule in schedules:
            self.assertEqual(len(self._invoices(schedule)), 1, schedule.partner_id.name)
            self.assertEqual(schedule.next_date, date(2026, 12, 1))
        self.assertEqual(set(batches.mapped("state")), {"done"})
        self.assertEqual(batches.mapped("invoice_count"), [2, 2, 1])
        self.assertEqual(sum(batches.mapped("charge_count")), 10)
        # Each job asked for its run to be refreshed once committed.
        self.assertIn(run.id, self.env.cr.postcommit.data[REFRESH_PENDING_KEY])
        self.assertEqual(run.state, "queued")  # not committed yet
        run._billing_queue_refresh(force=True)
        self.assertEqual(run.state, "done")
        self.assertEqual((run.job_done_count, run.job_failed_count), (3, 0))
        self.assertEqual(run.job_progress, 100.0)
        self.assertEqual((run.invoice_count, run.charge_count), (5, 10))
        self.assertTrue(run.date_end)
        self.assertFalse(run.failure_ids)

    def test_second_cron_while_run_queued_enqueues_nothing(self):
        self._batch_schedules(3)
        Job = self.env["queue.job"].sudo()
        jobs = Job.search_count([])
        first = self._cron_recurring(batch_size=2)
        self.assertEqual(Job.search_count([]), jobs + len(first.batch_ids))
        second = self._cron_recurring(batch_size=2)
        self.assertFalse(second)
        self.assertEqual(Job.search_count([]), jobs + len(first.batch_ids))
        self.assertEqual(first.mapped("state"), ["queued"] * len(first))

    def test_job_run_twice_changes_nothing(self):
        schedules = self._batch_schedules(3)
        run = self._cron_recurring(batch_size=2).filtered(
            lambda r: r.company_id == self.company
        )
        batches = self._batches_of(run, schedules)
        self.assertEqual(len(batches), 2)
        for batch in run.batch_ids:
            job = self._queue_job(batch)
            self.assertEqual((job.state, job.channel), ("pending", "root.billing"))
            self._run_job(batch)
            self.assertEqual(self._queue_job(batch).state, "done")
        run._billing_queue_refresh(force=True)
        invoices = self.env["account.move"].search(
            [("billing_recurring_id", "in", schedules.ids)]
        )
        self.assertEqual(len(invoices), 3)
        figures = (run.state, run.invoice_count, run.charge_count)
        self.assertEqual(figures, ("done", 3, 6))
        # A finished job requeued and run again: nothing more.
        first = batches[0]
        self._queue_job(first).requeue()
        self._run_job(first)
        run._billing_queue_refresh(force=True)
        self.assertEqual(
            self.env["account.move"].search_count(
                [("billing_recurring_id", "in", schedules.ids)]
            ),
            3,
        )
        self.assertEqual((run.state, run.invoice_count, run.charge_count), figures)
        self.assertEqual(first.invoice_count, 2)
        # Even without its done mark (a job whose work is committed, run again
        # as if it was not): its records are no longer due, nothing is made.
        first.write({"state": "pending"})
        self._queue_job(first).requeue()
        self._run_job(first)
        self.assertEqual(
            self.env["account.move"].search_count(
                [("billing_recurring_id", "in", schedules.ids)]
            ),
            3,
        )
        self.assertEqual((first.invoice_count, first.busy_count), (0, 2))

    def test_job_after_another_run_did_part_of_its_batch(self):
        schedules = self._batch_schedules(3)
        run = self._cron_recurring(batch_size=3).filtered(
            lambda r: r.company_id == self.company
        )
        batch = self._batches_of(run, schedules)
        self.assertEqual(len(batch), 1)
        # A manager's Run Now, or a run of another server, invoiced one of them.
        schedules[1]._billing_process_batch(TODAY)
        self.assertEqual(len(self._invoices(schedules[1])), 1)
        self._run_job(batch)
        for schedule in schedules:
            self.assertEqual(len(self._invoices(schedule)), 1, schedule.partner_id.name)
        self.assertEqual((batch.invoice_count, batch.busy_count), (2, 1))

    def test_failed_job_is_retried_and_invoices_once(self):
        schedules = self._batch_schedules(4)
        run = self._cron_recurring(batch_size=2).filtered(
            lambda r: r.company_id == self.company
        )
        first, second = self._batches_of(run, schedules)
        Recurring = type(self.env["billing.recurring"])
        original = Recurring._billing_process_batch
        calls = []

        def fail_after_invoicing_once(records, today):
            result = original(records, today)
            calls.append(records.ids)
            if len(calls) == 1:
                raise RuntimeError("database connection lost")
            return result

        with patch.object(
            Recurring, "_billing_process_batch", fail_after_invoicing_once
        ):
            failed = self._run_job(first)
            self.assertIsNone(self._run_job(second))
        self.assertEqual(str(failed), "database connection lost")
        self.env.invalidate_all()
        # The failed job's invoices were rolled back with it; the other job's
        # are there.
        for schedule in schedules:
            in_first = schedule.id in first.record_ids
            self.assertEqual(len(self._invoices(schedule)), 0 if in_first else 1)
        self.assertEqual(self._queue_job(first).state, "failed")
        # Its batch failed: from queue_job's on_fail hook, or from the job's
        # state when the run is refreshed.
        run._billing_queue_refresh(force=True)
        self.assertEqual(first.state, "failed")
        self.assertIn("database connection lost", first.error)
        self.assertEqual(run.state, "failed")
        self.assertEqual((run.job_done_count, run.job_failed_count), (1, 1))
        self.assertEqual(run.invoice_count, 2)
        # Requeued (queue_job's Requeue): the run is queued again, then done.
        self._queue_job(first).requeue()
        run._billing_queue_refresh()
        self.assertEqual(run.state, "queued")
        self.assertEqual(first.state, "pending")
        self._run_job(first)
        run._billing_queue_refresh(force=True)
        for schedule in schedules:
            self.assertEqual(len(self._invoices(schedule)), 1, schedule.partner_id.name)
        self.assertEqual(run.state, "done")
        self.assertEqual((run.job_done_count, run.job_failed_count), (2, 0))
        self.assertEqual((run.invoice_count, run.charge_count), (4, 8))

    def test_customer_failures_are_gathered_on_the_run(self):
        schedules = self._batch_schedules(2)
        Recurring = type(self.env["billing.recurring"])
        original = Recurring._billing_invoice_due
        refused = schedules[0]

        def refuse_one(records, today):
            if refused in records:
                raise ValueError("no invoice for this one")
            return original(records, today)

        run = self._cron_recurring(batch_size=2).filtered(
            lambda r: r.company_id == self.company
        )
        batch = self._batches_of(run, schedules)
        with (
            patch.object(Recurring, "_billing_invoice_due", refuse_one),
            mute_logger(
                "odoo.addons.prepaid_postpaid_billing.models.billing_recurring"
            ),
        ):
            self._run_job(batch)
        self.assertEqual(batch.failure_count, 1)
        run._billing_queue_refresh(force=True)
        self.assertEqual(run.state, "failed")
        self.assertEqual(run.failure_ids.recurring_id, refused)
        self.assertEqual(run.failure_ids.partner_id, refused.partner_id)
        self.assertIn("no invoice for this one", run.failure_ids.error)
        self.assertEqual(run.invoice_count, 1)
        self.assertEqual(run.job_done_count, 1)

    def test_cancelled_job_ends_its_batch(self):
        schedules = self._batch_schedules(2)
        run = self._cron_recurring(batch_size=1).filtered(
            lambda r: r.company_id == self.company
        )
        first, second = self._batches_of(run, schedules)
        self._run_job(first)
        self._queue_job(second).button_cancelled()
        run._billing_queue_refresh()
        self.assertEqual(second.state, "cancelled")
        self.assertEqual(run.state, "failed")
        self.assertEqual(run.invoice_count, 1)

    def test_parameter_off_keeps_the_cron_in_process(self):
        self.env["ir.config_parameter"].sudo().set_param(QUEUE_PARAM, "0")
        self.assertTrue(self.Run._billing_queue_installed())
        self.assertFalse(self.Run._billing_queue_active())
        Recurring = type(self.env["billing.recurring"])
        with (
            patch.object(Recurring, "_billing_run", autospec=True) as in_process,
            self.trap_jobs() as trap,
        ):
            self._cron_recurring(batch_size=7)
        trap.assert_jobs_count(0)
        in_process.assert_called_once()
        self.assertEqual(
            in_process.call_args.kwargs,
            {"trigger": "cron", "batch_size": 7, "auto_commit": True},
        )

    # -------------------------------------------------------------------------
    # Renewals, their reminders and the consumption posting
    # -------------------------------------------------------------------------

    def test_renewals_and_reminders_run_as_jobs(self):
        self._fund(100.0)
        renewed = self._service(start=date(2026, 10, 1))
        reminded = self._service(start=date(2026, 10, 10))
        self.assertEqual(self._periods(renewed), [date(2026, 10, 1)])
        with freeze_time(TODAY):
            renewal = self.env["billing.service"]._cron_renew(batch_size=1)
        runs = self.Run.search([("state", "=", "queued")])
        reminder = runs.filtered(lambda r: r.kind == "reminder")
        self.assertEqual(renewal.mapped("kind"), ["renewal"])
        self.assertIn(renewal, runs)
        self.assertEqual(len(reminder), 1)
        self.assertEqual(renewal.batch_ids.mapped("record_ids"), [[renewed.id]])
        # Renews on the 10th, within the company's 7 reminder days.
        self.assertEqual(reminder.batch_ids.mapped("record_ids"), [[reminded.id]])
        for batch in (renewal | reminder).batch_ids:
            self.assertEqual(self._queue_job(batch).channel, "root.billing")
            self.assertIsNone(self._run_job(batch))
        self.env.invalidate_all()
        self.assertEqual(self._periods(renewed), [date(2026, 10, 1), date(2026, 11, 1)])
        self.assertEqual(reminded.reminder_date, date(2026, 11, 10))
        (renewal | reminder)._billing_queue_refresh(force=True)
        self.assertEqual(renewal.state, "done")
        self.assertEqual((renewal.service_count, renewal.charge_count), (1, 1))
        self.assertEqual((reminder.state, reminder.reminder_count), ("done", 1))
        # Run again, the jobs change nothing.
        for batch in (renewal | reminder).batch_ids:
            batch.write({"state": "pending"})
            batch._billing_batch_run()
        self.assertEqual(self._periods(renewed), [date(2026, 10, 1), date(2026, 11, 1)])
        self.assertEqual(renewal.batch_ids.charge_count, 0)
        self.assertEqual(reminder.batch_ids.reminder_count, 0)

    def test_consumption_posting_runs_as_jobs(self):
        self._fund(100.0)
        wallet = self._wallet()
        records = []
        for index in range(4):
            type(self).ref_counter += 1
            records.append(
                {
                    "partner_id": self.customer.id,
                    "product_id": self.sms.id,
                    "date": "2026-11-03 10:00:00",
                    "quantity": 1.0,
                    "price_unit": 0.25,
                    "external_ref": f"queue-{index}-{self.ref_counter}",
                }
            )
        result = self.env["billing.charge"].ingest(records)
        self.assertEqual(result["created"], 4, result)
        self.env.invalidate_all()
        self.assertAlmostEqual(wallet.unposted_consumption, 1.0, places=6)
        with self.trap_jobs() as trap:
            self.env["billing.wallet"]._cron_post_consumption(batch_size=20)
            run = self.Run.search(
                [("state", "=", "queued"), ("kind", "=", "consumption")]
            )
            self.assertEqual(len(run), 1)
            self.assertIn(wallet.id, run.batch_ids.record_ids)
            trap.perform_enqueued_jobs()
        self.env.invalidate_all()
        self.assertAlmostEqual(wallet.unposted_consumption, 0.0, places=6)
        run._billing_queue_refresh(force=True)
        self.assertEqual(run.state, "done")
        self.assertEqual(run.wallet_count, 1)
        entries = self.env["account.move"].search_count(
            [("journal_id", "=", wallet.company_id.billing_wallet_journal_id.id)]
        )
        run.batch_ids.write({"state": "pending"})
        run.batch_ids._billing_batch_run()
        self.assertEqual(
            self.env["account.move"].search_count(
                [("journal_id", "=", wallet.company_id.billing_wallet_journal_id.id)]
            ),
            entries,
        )
