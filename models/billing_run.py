import functools
import logging

from psycopg2 import errors as pg_errors

from odoo import api, fields, models
from odoo.tools import SQL

_logger = logging.getLogger(__name__)

# The first key of the session locks that running runs hold on themselves
# (``pg_advisory_lock(RUN_LOCK_SPACE, run id)``, see ``_hold``).
RUN_LOCK_SPACE = 1651076204
# Times a run with commits takes a new snapshot to select its next batch when
# another run's commit made the one it saw stale, before it leaves the rest to
# the other run or the next one.
SELECT_RETRIES = 20


def _unlock_after_rollback(cr, query):
    try:
        cr.execute(query, log_exceptions=False)
    except Exception as error:  # noqa: BLE001 - the connection may be gone
        # The lock goes with the connection.
        _logger.info("Billing run lock not released after rollback: %s", error)


class BillingRun(models.Model):
    _name = "billing.run"
    _description = "Billing Run"
    _order = "id desc"

    name = fields.Char(compute="_compute_name")
    trigger = fields.Selection(
        selection=[("cron", "Scheduled"), ("manual", "Manual")],
        required=True,
        default="manual",
        readonly=True,
    )
    kind = fields.Selection(
        selection=[
            ("recurring", "Recurring Invoices"),
            ("renewal", "Service Renewals"),
        ],
        required=True,
        default="recurring",
        readonly=True,
    )
    company_id = fields.Many2one(
        comodel_name="res.company",
        required=True,
        readonly=True,
        default=lambda self: self.env.company,
    )
    user_id = fields.Many2one(
        comodel_name="res.users",
        string="Started By",
        default=lambda self: self.env.user,
        readonly=True,
    )
    state = fields.Selection(
        selection=[
            ("running", "Running"),
            ("done", "Done"),
            ("failed", "With Failures"),
            ("interrupted", "Interrupted"),
        ],
        default="running",
        required=True,
        readonly=True,
        help="Interrupted: the process of the run stopped before its end (killed, "
        "restarted, crashed); the next run closed it with the figures it had "
        "committed and invoiced the rest.",
    )
    date_start = fields.Datetime(
        string="Started", default=fields.Datetime.now, required=True, readonly=True
    )
    date_end = fields.Datetime(string="Finished", readonly=True)
    duration = fields.Float(
        string="Duration (s)", compute="_compute_duration", store=True, digits=(16, 2)
    )
    invoice_count = fields.Integer(string="Invoices Created", readonly=True)
    charge_count = fields.Integer(string="Charges Billed", readonly=True)
    skipped_count = fields.Integer(
        string="Periods Skipped",
        readonly=True,
        help="Periods with nothing to invoice, or of customers whose invoicing is off.",
    )
    service_count = fields.Integer(string="Services Processed", readonly=True)
    suspended_count = fields.Integer(string="Services Suspended", readonly=True)
    resumed_count = fields.Integer(string="Services Resumed", readonly=True)
    closed_count = fields.Integer(string="Services Closed", readonly=True)
    failure_ids = fields.One2many(
        comodel_name="billing.run.failure",
        inverse_name="run_id",
        string="Failures",
        readonly=True,
    )
    failure_count = fields.Integer(
        string="Customers Failed", compute="_compute_failure_count", store=True
    )

    @api.depends("date_start", "trigger", "kind")
    def _compute_name(self):
        for run in self:
            run.name = self.env._(
                "%(trigger)s run of %(kind)s of %(date)s",
                trigger=dict(self._fields["trigger"].selection)[run.trigger],
                kind=dict(self._fields["kind"].selection)[run.kind].lower(),
                date=fields.Datetime.to_string(run.date_start),
            )

    @api.depends("date_start", "date_end")
    def _compute_duration(self):
        for run in self:
            run.duration = (
                (run.date_end - run.date_start).total_seconds() if run.date_end else 0.0
            )

    @api.depends("failure_ids")
    def _compute_failure_count(self):
        for run in self:
            run.failure_count = len(run.failure_ids)

    def action_run_now(self):
        """Run the recurring invoicing, or the service renewals, now, as the
        scheduler would."""
        if self[:1].kind == "renewal":
            return self.env["billing.service"].action_run_now()
        return self.env["billing.recurring"].action_run_now()

    def _lock(self):
        """Lock the rows of these running runs until the end of the transaction:
        a run holds its row while it works (again after each commit), so that the
        next run tells it from a run whose process is gone."""
        if self:
            self.env.cr.execute(
                SQL(
                    "SELECT id FROM billing_run WHERE id = ANY(%s) ORDER BY id "
                    "FOR UPDATE",
                    self.ids,
                )
            )

    def _hold(self):
        """Hold a session lock on each of these runs until ``_release``, taken
        before the run is first committed: unlike the row lock of ``_lock``,
        which each commit of the run releases until it locks its row again, it
        outlives the run's commits, so that another run starting meanwhile
        never sees it running and unheld. PostgreSQL releases it when the
        process's connection is gone (killed, crashed)."""
        for run in self:
            self.env.cr.execute(
                SQL("SELECT pg_advisory_lock(%s, %s)", RUN_LOCK_SPACE, run.id)
            )

    def _work(self, process, auto_commit):
        """Run ``process()`` as this run's work, then close the run (done, or
        failed when it recorded failures). The run holds its session lock from
        before its first commit (``_hold``) to its end, and its row lock
        (``_lock``); with ``auto_commit`` (the scheduler), the run is committed
        first, so that it is visible while it works, and at its end."""
        self.ensure_one()
        self._hold()  # alive from its first commit on, whatever its commits
        try:
            if auto_commit:
                self.env.cr.commit()  # pylint: disable=invalid-commit  # run visible while it works
            self._lock()
            process()
            self.write(
                {
                    "state": "failed" if self.failure_ids else "done",
                    "date_end": fields.Datetime.now(),
                }
            )
            if auto_commit:
                self.env.cr.commit()  # pylint: disable=invalid-commit  # end of the run
        finally:
            self._release()

    def _select_batch(self, select, auto_commit, stop_message):
        """The ids ``select()`` gives for this run's next batch, selected in a
        savepoint. When another run's commit made the batch this transaction
        sees stale (a serialization failure), a run that commits per batch
        (``auto_commit``: nothing is written since its last commit) commits and
        selects again from a new snapshot, up to SELECT_RETRIES times in a row;
        otherwise, or past them, ``None``: the run stops (logging
        ``stop_message``), the other run or the next one does the rest."""
        self.ensure_one()
        retries = 0
        while True:
            try:
                with self.env.cr.savepoint():
                    return select()
            except pg_errors.SerializationFailure:
                if not auto_commit or retries >= SELECT_RETRIES:
                    _logger.info(stop_message, self.id)
                    return None
                retries += 1
                self.env.cr.commit()  # pylint: disable=invalid-commit  # a new snapshot
                self.env.invalidate_all()
                self._lock()

    def _release(self):
        """Release the session locks of ``_hold``; when the run's transaction
        failed (its error on its way to the caller, who rolls it back), once it
        is rolled back, so that the connection, back in its pool, does not
        keep them."""
        cr = self.env.cr
        for run in self:
            query = SQL("SELECT pg_advisory_unlock(%s, %s)", RUN_LOCK_SPACE, run.id)
            try:
                cr.execute(query, log_exceptions=False)
            except pg_errors.InFailedSqlTransaction:
                cr.postrollback.add(
                    functools.partial(_unlock_after_rollback, cr, query)
                )

    @api.model
    def _close_interrupted(self):
        """Close as interrupted the runs still running whose process is gone:
        those whose row no run holds (see ``_lock``) and whose session lock no
        connection holds (see ``_hold``). They keep the figures they had
        committed; their end is their last committed progress. Returns
        them."""
        try:
            with self.env.cr.savepoint():
                self.flush_model()
                self.env.cr.execute(
                    SQL(
                        """
                        SELECT id FROM billing_run
                         WHERE state = 'running'
                           AND id NOT IN (
                               SELECT objid::bigint FROM pg_locks
                                WHERE locktype = 'advisory' AND granted
                                  AND classid = %s AND objsubid = 2)
                      ORDER BY id
                           FOR UPDATE SKIP LOCKED
                        """,
                        RUN_LOCK_SPACE,
                    ),
                    log_exceptions=False,
                )
                runs = self.browse(row[0] for row in self.env.cr.fetchall())
                for run in runs:
                    run.write(
                        {
                            "state": "interrupted",
                            "date_end": run.write_date or run.date_start,
                        }
                    )
                    run.flush_recordset()
        except pg_errors.SerializationFailure:
            # A run committed its progress meanwhile: it is alive; the next run
            # looks again.
            _logger.info("Billing runs not checked for interruption: one is busy")
            return self.browse()
        return runs
