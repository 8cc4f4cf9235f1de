import threading
import time
from datetime import date
from unittest.mock import patch

from psycopg2 import errors as pg_errors

from odoo import SUPERUSER_ID, Command, api
from odoo.tests import TransactionCase, tagged

from .test_billing_reseller_concurrency import run_at_once

# The day the runs invoice for: the schedules of the fixtures are due then,
# those of the demo data (dated from today) are not.
TODAY = date(2000, 2, 1)
CUSTOMERS = 6
# How long each batch holds its locks before it commits, in the tests where
# a run must not wait for the other: far more than the lock timeout.
BATCH_HOLD = 0.4
LOCK_TIMEOUT = "100ms"


@tagged("post_install", "-at_install")
class TestBillingRecurringConcurrency(TransactionCase):
    """Recurring runs on real, committed transactions, each on its own cursor:
    two scheduled runs at once share the due customers through ``FOR UPDATE
    SKIP LOCKED`` (neither waits for the other's, each customer is invoiced
    once); a run whose process dies inside a batch keeps the batches it
    committed, and the next run invoices the rest, once.

    The fixtures are committed on a cursor of their own, and what the runs
    commit is removed again after the test, in SQL (invoices with charges
    cannot be deleted through the ORM), as in ``TestBillingServiceConcurrency``.
    The kill -9 of a real process at random moments is proven by
    ``scripts/chaos crash``; here the process's death inside a batch is a
    ``RuntimeError`` raised after the batch made its invoices, before its
    commit: its transaction is rolled back as a dead connection's is."""

    def setUp(self):
        super().setUp()
        if not self.env.company.chart_template:
            self.skipTest(f"company {self.env.company.name} has no chart of accounts")
        self.data = {"partner_ids": [], "schedule_ids": [], "product_ids": []}
        self.addCleanup(self._clean_up)
        with self.registry.cursor() as fixture_cr:
            env = api.Environment(fixture_cr, SUPERUSER_ID, {})
            fixture_cr.execute("SELECT COALESCE(MAX(id), 0) FROM billing_run")
            self.data["run_floor"] = fixture_cr.fetchone()[0]
            product = env["product.product"].create(
                {
                    "name": "Concurrently Invoiced SMS",
                    "type": "service",
                    "list_price": 0.05,
                    "taxes_id": [Command.clear()],
                }
            )
            self.data["product_ids"].append(product.id)
            for index in range(CUSTOMERS):
                partner = env["res.partner"].create(
                    {
                        "name": f"Concurrent Postpaid {index}",
                        "is_company": True,
                        "billing_mode": "postpaid",
                    }
                )
                self.data["partner_ids"].append(partner.id)
                schedule = env["billing.recurring"].create(
                    {
                        "partner_id": partner.id,
                        "interval_type": "month",
                        "interval_number": 1,
                        "next_date": TODAY,
                        "generation_mode": "draft",
                        "send_email": False,
                    }
                )
                self.data["schedule_ids"].append(schedule.id)
                result = env["billing.charge"].ingest(
                    [
                        {
                            "partner_id": partner.id,
                            "product_id": product.id,
                            "date": f"2000-01-{10 + n:02d} 10:00:00",
                            "quantity": 1 + n,
                            "external_ref": f"concurrent-recurring-{partner.id}-{n}",
                        }
                        for n in range(2)
                    ]
                )
                self.assertFalse(result["rejected"], result["rejected"])
            fixture_cr.commit()

    def _clean_up(self):
        """Remove what the test committed, and what the runs committed."""
        data = self.data
        with self.registry.cursor() as cleanup_cr:
            cleanup_cr.execute(
                "SELECT ARRAY_AGG(id) FROM account_move"
                " WHERE billing_recurring_id = ANY(%s)",
                [data["schedule_ids"]],
            )
            moves = cleanup_cr.fetchone()[0] or []
            for model, ids in (
                ("account.move", moves),
                ("billing.recurring", data["schedule_ids"]),
            ):
                cleanup_cr.execute(
                    "DELETE FROM mail_message WHERE model = %s AND res_id = ANY(%s)",
                    [model, ids],
                )
                cleanup_cr.execute(
                    "DELETE FROM mail_followers"
                    " WHERE res_model = %s AND res_id = ANY(%s)",
                    [model, ids],
                )
            cleanup_cr.execute(
                "DELETE FROM billing_charge WHERE partner_id = ANY(%s)",
                [data["partner_ids"]],
            )
            cleanup_cr.execute(
                "DELETE FROM account_move_line WHERE move_id = ANY(%s)", [moves]
            )
            cleanup_cr.execute("DELETE FROM account_move WHERE id = ANY(%s)", [moves])
            cleanup_cr.execute(
                "DELETE FROM billing_run WHERE id > %s", [data.get("run_floor", 0)]
            )
            cleanup_cr.execute(
                "DELETE FROM billing_recurring WHERE id = ANY(%s)",
                [data["schedule_ids"]],
            )
            env = api.Environment(cleanup_cr, SUPERUSER_ID, {})
            env["res.partner"].browse(data["partner_ids"]).unlink()
            env["product.product"].browse(data["product_ids"]).unlink()
            cleanup_cr.commit()

    def _committed(self):
        """What is committed, read on a fresh cursor: {schedule id: (invoices
        for the period of January, next date)}, {charge state: count}, charges
        on a line of no invoice of their own customer, the runs since the
        fixtures (state, invoices, charges)."""
        with self.registry.cursor() as cr:
            cr.execute(
                """
                SELECT r.id, COUNT(m.id), r.next_date
                  FROM billing_recurring r
             LEFT JOIN account_move m
                    ON m.billing_recurring_id = r.id AND m.state != 'cancel'
                   AND m.billing_period_start = '2000-01-01'
                 WHERE r.id = ANY(%s)
              GROUP BY r.id
                """,
                [self.data["schedule_ids"]],
            )
            schedules = {row[0]: row[1:] for row in cr.fetchall()}
            cr.execute(
                """
                SELECT c.state, COUNT(*),
                       COUNT(*) FILTER (WHERE c.state = 'invoiced'
                                          AND m.partner_id IS DISTINCT FROM
                                              c.partner_id)
                  FROM billing_charge c
             LEFT JOIN account_move_line l ON l.id = c.invoice_line_id
             LEFT JOIN account_move m ON m.id = l.move_id
                 WHERE c.partner_id = ANY(%s)
              GROUP BY c.state
                """,
                [self.data["partner_ids"]],
            )
            rows = cr.fetchall()
            charges = {state: count for state, count, _wrong in rows}
            misbilled = sum(wrong for _state, _count, wrong in rows)
            cr.execute(
                "SELECT id, state, invoice_count, charge_count FROM billing_run"
                " WHERE id > %s AND kind = 'recurring' ORDER BY id",
                [self.data["run_floor"]],
            )
            runs = cr.fetchall()
        return schedules, charges, misbilled, runs

    def assertInvoicedOnce(self, schedules, charges, misbilled):
        """Each customer invoiced exactly once for January, its schedule moved
        to March; each charge invoiced, on its own customer's invoice."""
        self.assertEqual(
            schedules,
            {
                schedule_id: (1, date(2000, 3, 1))
                for schedule_id in self.data["schedule_ids"]
            },
        )
        self.assertEqual(charges, {"invoiced": 2 * CUSTOMERS})
        self.assertEqual(misbilled, 0)

    def _run_job(self, timings, **kwargs):
        """A scheduled run (a commit per batch) whose lock waits fail at once
        (lock_timeout); its start and end recorded in ``timings``."""

        def read(env):
            return env["billing.recurring"].search_count(
                [("id", "in", self.data["schedule_ids"])]
            )

        def act(env):
            env.cr.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
            try:
                started = time.monotonic()
                runs = env["billing.recurring"]._billing_run(
                    trigger="cron", auto_commit=True, today=TODAY, **kwargs
                )
                timings.append((started, time.monotonic()))
                return runs.ids
            finally:
                env.cr.rollback()
                env.cr.execute("RESET lock_timeout")

        return read, act

    def test_two_cron_runs_share_the_customers_without_waiting(self):
        """Two scheduled runs at the same moment, a customer a batch, each
        batch holding its locks for a while before its commit: with lock
        waits failing after 100 ms, neither fails nor is retried (neither
        waited for the other), both invoice some of the customers, together
        each exactly once."""
        Recurring = type(self.env["billing.recurring"])
        original = Recurring._billing_process_batch

        def slow_batch(batch, today):
            result = original(batch, today)
            time.sleep(BATCH_HOLD)  # its schedules, invoices, charges locked
            return result

        timings, retried = [], []
        with patch.object(Recurring, "_billing_process_batch", slow_batch):
            outcomes = run_at_once(
                self,
                {
                    "first": self._run_job(timings, batch_size=1),
                    "second": self._run_job(timings, batch_size=1),
                },
                retried,
            )
        self.assertTrue(all(ok for ok, _result in outcomes.values()), outcomes)
        self.assertFalse(retried, "a run waited for a lock or met a conflict")
        schedules, charges, misbilled, runs = self._committed()
        self.assertInvoicedOnce(schedules, charges, misbilled)
        self.assertEqual(len(runs), 2, runs)
        self.assertEqual({run[1] for run in runs}, {"done"})
        self.assertEqual(sum(run[2] for run in runs), CUSTOMERS)
        self.assertEqual(sum(run[3] for run in runs), 2 * CUSTOMERS)
        # Shared: each invoiced some; at once: each alone would take
        # CUSTOMERS batches, together about half as long.
        self.assertTrue(all(run[2] for run in runs), runs)
        overlap = min(end for _start, end in timings) - max(
            start for start, _end in timings
        )
        self.assertGreater(overlap, BATCH_HOLD, timings)

    def test_a_run_killed_inside_a_batch_keeps_what_it_committed(self):
        """Batches of 2 customers, each committed: the process dies inside the
        second batch, once its invoices are made and before its commit. On a
        fresh cursor: the first batch's invoices are there, the second's not,
        the run still running; the next run closes it as interrupted (with the
        figures it committed) and invoices the rest, each customer once."""
        Recurring = type(self.env["billing.recurring"])
        original = Recurring._billing_invoice_due
        calls = []

        def killed_in_second_batch(records, today):
            calls.append(records.ids)
            result = original(records, today)
            if len(calls) == 2:
                # Its invoices made, in its transaction: then the process dies.
                records.env.flush_all()
                records.env.cr.execute(
                    "SELECT COUNT(*) FROM account_move"
                    " WHERE billing_recurring_id = ANY(%s)",
                    [records.ids],
                )
                self.assertEqual(records.env.cr.fetchone()[0], 2)
                raise RuntimeError("worker killed")
            return result

        with (
            patch.object(Recurring, "_billing_invoice_due", killed_in_second_batch),
            self.registry.cursor() as cr,
        ):
            env = api.Environment(cr, SUPERUSER_ID, {})
            try:
                env["billing.recurring"]._billing_run(
                    trigger="cron", auto_commit=True, today=TODAY, batch_size=2
                )
            except RuntimeError as error:
                self.assertEqual(str(error), "worker killed")
            else:
                self.fail("the run was not killed")
            cr.rollback()  # what the dead process had not committed is lost
        self.assertEqual(len(calls), 2)
        first, second = calls
        schedules, charges, _misbilled, runs = self._committed()
        self.assertEqual({schedules[s][0] for s in first}, {1}, "committed")
        self.assertEqual({schedules[s][0] for s in second}, {0}, "rolled back")
        self.assertEqual(charges, {"invoiced": 4, "pending": 2 * CUSTOMERS - 4})
        self.assertEqual(runs, [(runs[0][0], "running", 2, 4)])
        killed = runs[0][0]

        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            env["billing.recurring"]._billing_run(
                trigger="cron", auto_commit=True, today=TODAY, batch_size=2
            )
        schedules, charges, misbilled, runs = self._committed()
        self.assertInvoicedOnce(schedules, charges, misbilled)
        self.assertEqual(runs[0], (killed, "interrupted", 2, 4))
        with self.registry.cursor() as cr:
            cr.execute("SELECT date_end FROM billing_run WHERE id = %s", [killed])
            self.assertTrue(cr.fetchone()[0], "its end: its last committed progress")
        self.assertEqual(runs[1][1:], ("done", CUSTOMERS - 2, 2 * CUSTOMERS - 4))
        self.assertEqual(len(runs), 2)

    def test_a_live_run_between_its_batches_is_not_closed(self):
        """Between the commit of a batch and the lock of its row again, a run
        holds its session lock: another run starting then does not close it
        as interrupted; once its connection lets go of it, it does."""
        ready, resume = threading.Event(), threading.Event()
        Recurring = type(self.env["billing.recurring"])
        original = Recurring._billing_process_batch

        def pausing_batch(batch, today):
            result = original(batch, today)
            batch.env.cr.commit()  # as the run's commit of the batch does
            ready.set()
            resume.wait(30)
            return result

        outcome = {}

        def work():
            try:
                with self.registry.cursor() as cr:
                    cr.transaction = api.Transaction(self.registry)
                    env = api.Environment(cr, SUPERUSER_ID, {})
                    outcome["runs"] = (
                        env["billing.recurring"]
                        ._billing_run(trigger="cron", auto_commit=True, today=TODAY)
                        .ids
                    )
            except Exception as error:  # noqa: BLE001 (reported to the test)
                outcome["error"] = error
            finally:
                ready.set()

        thread = threading.Thread(target=work)
        thread.dbname = self.env.cr.dbname
        thread.testing = True
        with patch.object(Recurring, "_billing_process_batch", pausing_batch):
            thread.start()
            try:
                self.assertTrue(ready.wait(30))
                self.assertNotIn("error", outcome, outcome)
                with self.registry.cursor() as cr:
                    Run = api.Environment(cr, SUPERUSER_ID, {})["billing.run"]
                    # Its row is not locked now (its batch committed): only
                    # its session lock tells it alive.
                    cr.execute(
                        "SELECT id FROM billing_run WHERE id > %s AND state ="
                        " 'running' FOR UPDATE SKIP LOCKED",
                        [self.data["run_floor"]],
                    )
                    self.assertEqual(len(cr.fetchall()), 1, "its row is free")
                    cr.rollback()
                    self.assertFalse(Run._close_interrupted())
                    cr.rollback()
            finally:
                resume.set()
                thread.join(60)
        self.assertFalse(thread.is_alive())
        self.assertNotIn("error", outcome, outcome)
        schedules, charges, misbilled, runs = self._committed()
        self.assertInvoicedOnce(schedules, charges, misbilled)
        self.assertEqual([run[1] for run in runs], ["done"])

    def test_a_run_failing_in_sql_lets_go_of_its_session_lock(self):
        """A run whose transaction fails in SQL (its error on its way to the
        caller): once rolled back, its connection, back in its pool, no longer
        holds the run's session lock, so that the next run closes it as
        interrupted rather than taking it for alive."""
        Recurring = type(self.env["billing.recurring"])

        def failing_batch(batch, today):
            batch.env.cr.execute("SELECT 1 / 0", log_exceptions=False)

        with (
            patch.object(Recurring, "_billing_process_batch", failing_batch),
            self.registry.cursor() as cr,
        ):
            env = api.Environment(cr, SUPERUSER_ID, {})
            with self.assertRaises(pg_errors.DivisionByZero):
                env["billing.recurring"]._billing_run(
                    trigger="cron", auto_commit=True, today=TODAY
                )
            cr.rollback()
            cr.execute(
                "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory'"
                " AND pid = pg_backend_pid()"
            )
            self.assertEqual(cr.fetchone()[0], 0, "the session lock is released")
        _schedules, _charges, _misbilled, runs = self._committed()
        self.assertEqual([run[1] for run in runs], ["running"])
        with self.registry.cursor() as cr:
            Run = api.Environment(cr, SUPERUSER_ID, {})["billing.run"]
            self.assertEqual(Run._close_interrupted().ids, [runs[0][0]])

    def test_a_run_whose_snapshot_is_stale_goes_on(self):
        """Between two batches of a run, another run commits a batch of the
        schedules this run's transaction still sees due: locking them fails
        (a serialization failure). The run takes a new snapshot and goes on
        with the rest, rather than dying; the other's customers are not
        invoiced again."""
        ids = self.data["schedule_ids"]
        with self.registry.cursor() as run_cr:
            env = api.Environment(run_cr, SUPERUSER_ID, {})
            run = env["billing.run"].create({"trigger": "cron"})
            run_cr.commit()
            run._lock()  # this transaction's snapshot, as after a batch's commit
            with self.registry.cursor() as other_cr:
                # The other run's batch: the first two schedules invoiced (here
                # only moved on) and committed.
                other_cr.execute(
                    "UPDATE billing_recurring SET next_date = '2000-03-01'"
                    " WHERE id = ANY(%s)",
                    [ids[:2]],
                )
                other_cr.commit()
            Recurring = env["billing.recurring"].with_company(env.company)
            Recurring._billing_run_company(run, TODAY, 2, True)
            run.write({"state": "done"})
            run_cr.commit()
        schedules, charges, misbilled, runs = self._committed()
        self.assertEqual(
            schedules,
            {
                schedule_id: (0 if schedule_id in ids[:2] else 1, date(2000, 3, 1))
                for schedule_id in ids
            },
        )
        self.assertEqual(charges, {"invoiced": 8, "pending": 4})
        self.assertEqual(misbilled, 0)
        self.assertEqual([run[1:] for run in runs], [("done", CUSTOMERS - 2, 8)])
