"""Billing runs as OCA queue jobs, when ``queue_job`` is installed.

The addon does not depend on ``queue_job``: everything here finds out at run
time whether it is installed (``_billing_queue_installed``). When it is, and
the system parameter ``prepaid_postpaid_billing.queue_job`` is not ``0``, the
scheduled actions of the recurring invoices, the service renewals (and their
reminders) and the prepaid consumption posting do not work themselves: they
record a ``billing.run`` in state *Queued*, split what is due into batches
(``billing.run.batch``, one a job) and enqueue one job per batch on the
``root.billing`` channel, with ``with_delay()`` and an identity key per batch.
Each job takes its batch's records that are still due, locked with ``SKIP
LOCKED``, and processes them with the very methods of the in-process run
(``_billing_process_batch``, ``_renewal_process_batch``,
``_post_consumption_batch``, ``_send_renewal_reminder``): the same database
constraints and locks make a job run twice, or a job beside another run,
change nothing more. Its figures and failures are written on its own batch row
in its own transaction (no two jobs write the same row); once it has
committed, a check on a cursor of its own (READ COMMITTED, the run's row
locked) closes the run when all its batches have ended, with their figures
summed and their failures listed. Without ``queue_job`` nothing of this runs.
"""

import json
import logging

from psycopg2 import errors as pg_errors

from odoo import SUPERUSER_ID, api, fields, models
from odoo.tools import SQL

_logger = logging.getLogger(__name__)

QUEUE_MODULE = "queue_job"
# System parameter: "0" keeps the scheduled actions in process even with
# queue_job installed.
QUEUE_PARAM = "prepaid_postpaid_billing.queue_job"
CHANNEL_NAME = "billing"
CHANNEL_XMLID = "queue_job_channel_billing"
FUNCTION_XMLID = "queue_job_function_billing_batch_run"
JOB_METHOD = "_billing_batch_run"
# Retries of a job that met a concurrent transaction (queue_job retries
# serialization failures and deadlocks itself): seconds after the nth try.
RETRY_PATTERN = {1: 10, 5: 60, 10: 300}
# Runs a transaction's jobs changed, in its cursor's postcommit data.
REFRESH_PENDING_KEY = "prepaid_postpaid_billing.queue_runs"
# Figures of a batch, per kind, and the run fields they add up to.
BATCH_FIGURES = (
    "invoice_count",
    "charge_count",
    "skipped_count",
    "service_count",
    "suspended_count",
    "resumed_count",
    "closed_count",
    "wallet_count",
    "reminder_count",
)
ENDED = ("done", "failed", "cancelled")


def _refresh_after_commit(registry, run_ids):
    """Post-commit hook of a job's transaction: close its run if all its
    batches have ended, on a new cursor at READ COMMITTED, so that of jobs
    ending at once the last one to commit sees all the others' batches."""
    try:
        with registry.cursor() as cr:
            cr.transaction = api.Transaction(registry)
            cr.execute(SQL("SET TRANSACTION ISOLATION LEVEL READ COMMITTED"))
            env = api.Environment(cr, SUPERUSER_ID, {})
            runs = env["billing.run"].browse(sorted(run_ids)).exists()
            runs._billing_queue_refresh(wait=True, force=True)
    except Exception:
        # The job is committed: the next scheduled action closes the run.
        _logger.exception(
            "Billing runs %s not refreshed; the next scheduled run does it",
            sorted(run_ids),
        )


class BillingRun(models.Model):
    _inherit = "billing.run"

    state = fields.Selection(
        selection_add=[("queued", "Queued")],
        ondelete={"queued": "set default"},
        help="Queued: the run was split into queue jobs (queue_job); it ends when "
        "they all have.\nInterrupted: the process of the run stopped before its "
        "end (killed, restarted, crashed); the next run closed it with the "
        "figures it had committed and invoiced the rest.",
    )
    kind = fields.Selection(
        selection_add=[
            ("consumption", "Consumption Posting"),
            ("reminder", "Renewal Reminders"),
        ],
        ondelete={"consumption": "cascade", "reminder": "cascade"},
    )
    wallet_count = fields.Integer(string="Wallets Posted", readonly=True)
    reminder_count = fields.Integer(string="Reminders Sent", readonly=True)
    batch_ids = fields.One2many(
        comodel_name="billing.run.batch",
        inverse_name="run_id",
        string="Batches",
        readonly=True,
    )
    # Not stored: a job writes its batch only, never the run's row.
    job_count = fields.Integer(string="Jobs", compute="_compute_job_progress")
    job_done_count = fields.Integer(string="Jobs Done", compute="_compute_job_progress")
    job_failed_count = fields.Integer(
        string="Jobs Failed",
        compute="_compute_job_progress",
        help="Jobs that failed for good or were cancelled; requeued, a failed "
        "job runs again and the run is closed again when it ends.",
    )
    job_progress = fields.Float(string="Progress", compute="_compute_job_progress")

    @api.depends("batch_ids.state")
    def _compute_job_progress(self):
        for run in self:
            states = run.batch_ids.mapped("state")
            run.job_count = len(states)
            run.job_done_count = states.count("done")
            run.job_failed_count = states.count("failed") + states.count("cancelled")
            ended = run.job_done_count + run.job_failed_count
            run.job_progress = 100.0 * ended / len(states) if states else 0.0

    # -------------------------------------------------------------------------
    # Is queue_job there?
    # -------------------------------------------------------------------------

    @api.model
    def _billing_queue_installed(self):
        """Whether OCA ``queue_job`` is installed (its models loaded and the
        module installed)."""
        if "queue.job" not in self.env:
            return False
        return bool(
            self.env["ir.module.module"]
            .sudo()
            .search_count([("name", "=", QUEUE_MODULE), ("state", "=", "installed")])
        )

    @api.model
    def _billing_queue_active(self):
        """Whether the scheduled billing runs go through queue jobs."""
        if not self._billing_queue_installed():
            return False
        param = self.env["ir.config_parameter"].sudo().get_param(QUEUE_PARAM, "1")
        return param.strip() not in ("0", "false", "False", "")

    @api.model
    def _billing_queue_ensure_functions(self):
        """Create, once, the ``root.billing`` channel and the job function of
        the batches, with xml ids of this addon (noupdate, so that an update of
        the addon keeps them and an administrator's changes). A no-op without
        queue_job: called from the addon's data at install and update, and
        before each enqueuing, so that installing queue_job later works."""
        if not self._billing_queue_installed():
            return False
        IrModelData = self.env["ir.model.data"].sudo()
        module = "prepaid_postpaid_billing"
        channel = self.env.ref(f"{module}.{CHANNEL_XMLID}", raise_if_not_found=False)
        if not channel:
            root = self.env.ref("queue_job.channel_root")
            Channel = self.env["queue.job.channel"].sudo()
            channel = Channel.search(
                [("name", "=", CHANNEL_NAME), ("parent_id", "=", root.id)], limit=1
            ) or Channel.create({"name": CHANNEL_NAME, "parent_id": root.id})
            IrModelData.create(
                {
                    "module": module,
                    "name": CHANNEL_XMLID,
                    "model": "queue.job.channel",
                    "res_id": channel.id,
                    "noupdate": True,
                }
            )
        function = self.env.ref(f"{module}.{FUNCTION_XMLID}", raise_if_not_found=False)
        if not function:
            Function = self.env["queue.job.function"].sudo()
            name = Function.job_function_name("billing.run.batch", JOB_METHOD)
            function = Function.search([("name", "=", name)], limit=1)
            if not function:
                values = {
                    "model_id": self.env["ir.model"]._get_id("billing.run.batch"),
                    "method": JOB_METHOD,
                    "channel_id": channel.id,
                    "retry_pattern": RETRY_PATTERN,
                    "related_action": {"func_name": "_billing_batch_open_run"},
                    # queue_job 18.0.2 and later: called when a job failed for
                    # good (before, the run's refresh reads the job's state).
                    "on_fail_method": "_billing_batch_failed",
                }
                function = Function.create(
                    {
                        key: value
                        for key, value in values.items()
                        if key in Function._fields
                    }
                )
            IrModelData.create(
                {
                    "module": module,
                    "name": FUNCTION_XMLID,
                    "model": "queue.job.function",
                    "res_id": function.id,
                    "noupdate": True,
                }
            )
        return True

    # -------------------------------------------------------------------------
    # Dispatch: a run, its batches, one job each
    # -------------------------------------------------------------------------

    @api.model
    def _billing_queue_start(self, kind, batch_size, today=None):
        """Split the ``kind`` work due today into batches of ``batch_size``
        records, one queued run per company, one job per batch. A company whose
        run of this kind is still queued gets no new one (its jobs take what is
        due when they run). Returns the runs created."""
        today = today or fields.Date.context_today(self)
        batch_size = max(int(batch_size or 1), 1)
        self._billing_queue_ensure_functions()
        # sudo: the runs and their batches are the scheduler's log.
        Run = self.sudo()
        # Runs whose jobs ended, or were requeued, since they were last looked at
        # (the jobs' own refresh missed them: a crash after the commit).
        Run.search(
            [
                ("state", "in", ("queued", "failed")),
                ("batch_ids.state", "!=", "done"),
            ],
            limit=200,
        )._billing_queue_refresh()
        runs = Run.browse()
        for company_id, ids in self._billing_queue_due(kind, today).items():
            busy = Run.search_count(
                [
                    ("state", "=", "queued"),
                    ("kind", "=", kind),
                    ("company_id", "=", company_id),
                ]
            )
            if busy:
                _logger.info(
                    "Billing %s of company %s not queued: its last run is still queued",
                    kind,
                    company_id,
                )
                continue
            run = Run.create(
                {
                    "trigger": "cron",
                    "kind": kind,
                    "company_id": company_id,
                    "state": "queued",
                }
            )
            chunks = [ids[i : i + batch_size] for i in range(0, len(ids), batch_size)]
            batches = (
                self.env["billing.run.batch"]
                .sudo()
                .create(
                    [
                        {
                            "run_id": run.id,
                            "sequence": index,
                            "date": today,
                            "record_ids": chunk,
                        }
                        for index, chunk in enumerate(chunks, start=1)
                    ]
                )
            )
            for batch in batches:
                batch._billing_batch_enqueue()
            runs |= run
        return runs

    @api.model
    def _billing_queue_due(self, kind, today):
        """{company id: [record ids]} of the ``kind`` work due ``today``, in
        the order the in-process run takes them."""
        self.env.flush_all()
        cr = self.env.cr
        if kind == "recurring":
            cr.execute(
                SQL(
                    """
                    SELECT company_id, id FROM billing_recurring
                     WHERE state = 'running' AND next_date <= %s
                  ORDER BY company_id, next_date, id
                    """,
                    today,
                )
            )
        elif kind == "renewal":
            cr.execute(
                SQL(
                    """
                    SELECT s.company_id, s.id FROM billing_service s WHERE %s
                  ORDER BY s.company_id, s.next_date, s.id
                    """,
                    self.env["billing.service"]._renewal_due_condition(today),
                )
            )
        elif kind == "consumption":
            cr.execute(
                SQL(
                    """
                    SELECT w.company_id, w.id FROM billing_wallet w
                     WHERE EXISTS (
                           SELECT 1 FROM billing_wallet_move m
                            WHERE m.wallet_id = w.id
                              AND m.kind IN ('usage', 'renewal')
                              AND m.account_move_id IS NULL)
                  ORDER BY w.company_id, w.id
                    """
                )
            )
        elif kind == "reminder":
            cr.execute(
                SQL(
                    """
                    SELECT s.company_id, s.id FROM billing_service s
                      JOIN res_company c ON c.id = s.company_id
                     WHERE c.billing_service_reminder_days > 0
                       AND %s
                  ORDER BY s.company_id, s.id
                    """,
                    self.env["billing.run.batch"]._billing_reminder_condition(today),
                )
            )
        else:
            raise ValueError(f"unknown billing run kind: {kind}")
        due = {}
        for company_id, record_id in cr.fetchall():
            due.setdefault(company_id, []).append(record_id)
        return due

    # -------------------------------------------------------------------------
    # Closing: the figures of the batches, once they have all ended
    # -------------------------------------------------------------------------

    def _billing_queue_refresh(self, wait=False, force=False):
        """Bring these runs up to date with their batches: a batch whose job
        failed for good, was cancelled or deleted has ended too; when all have
        ended, the run gets their figures and failures and is done (or with
        failures); when a job was requeued, the run is queued again. Each run's
        row is locked first (``wait``: waiting for it, else skipping a run
        another transaction holds). A run closed already is written again only
        when one of its batches changed (``force``: a job of it just ended)."""
        for run in self.filtered("batch_ids"):
            try:
                with self.env.cr.savepoint():
                    self.env.cr.execute(
                        SQL(
                            "SELECT id FROM billing_run WHERE id = %s FOR UPDATE%s",
                            run.id,
                            SQL("") if wait else SQL(" SKIP LOCKED"),
                        ),
                        log_exceptions=False,
                    )
                    if not self.env.cr.fetchone():
                        continue
                    run.invalidate_recordset()
                    run.batch_ids.invalidate_recordset()
                    run._billing_queue_refresh_locked(force=force)
            except pg_errors.SerializationFailure:
                _logger.info("Billing run %s not refreshed: it is busy", run.id)

    def _billing_queue_refresh_locked(self, force=False):
        self.ensure_one()
        changed = self.batch_ids._billing_batch_sync_jobs()
        if self.state != "queued" and not (changed or force):
            return
        batches = self.batch_ids
        if any(batch.state not in ENDED for batch in batches):
            if self.state != "queued":
                self.write({"state": "queued", "date_end": False})
            return
        values = {
            field: sum(batches.mapped(field))
            for field in BATCH_FIGURES
            if self._fields[field].store
        }
        failures = []
        for batch in batches.sorted("sequence"):
            for failure in batch.failure_data or []:
                failures.append(
                    {
                        "recurring_id": failure.get("recurring_id"),
                        "service_id": failure.get("service_id"),
                        "partner_id": failure.get("partner_id"),
                        "error": failure["error"],
                    }
                )
        failed = failures or any(batch.state != "done" for batch in batches)
        ends = [batch.date_done for batch in batches if batch.date_done]
        values.update(
            {
                "state": "failed" if failed else "done",
                "date_end": max(ends) if ends else fields.Datetime.now(),
                "failure_ids": [fields.Command.clear()]
                + [fields.Command.create(vals) for vals in failures],
            }
        )
        self.write(values)

    def _billing_queue_refresh_after_commit(self):
        """Refresh these runs once the current transaction has committed (see
        ``_refresh_after_commit``)."""
        if not self:
            return
        postcommit = self.env.cr.postcommit
        pending = postcommit.data.get(REFRESH_PENDING_KEY)
        if pending is None:
            pending = postcommit.data[REFRESH_PENDING_KEY] = set()
            registry = self.env.registry
            postcommit.add(lambda: _refresh_after_commit(registry, pending))
        pending.update(self.ids)


class BillingRunBatch(models.Model):
    _name = "billing.run.batch"
    _description = "Billing Run Batch"
    _order = "run_id desc, sequence"

    run_id = fields.Many2one(
        comodel_name="billing.run",
        required=True,
        ondelete="cascade",
        index=True,
        readonly=True,
    )
    company_id = fields.Many2one(
        related="run_id.company_id", store=True, index=True, precompute=True
    )
    kind = fields.Selection(related="run_id.kind", store=True, precompute=True)
    sequence = fields.Integer(readonly=True)
    date = fields.Date(
        string="Billing Day",
        required=True,
        readonly=True,
        help="The day the batch bills for: the day of its run.",
    )
    record_ids = fields.Json(
        string="Record Ids",
        readonly=True,
        help="Ids of the schedules, services or wallets of the batch.",
    )
    record_count = fields.Integer(
        string="Records", compute="_compute_record_count", store=True
    )
    job_uuid = fields.Char(string="Job UUID", readonly=True, index=True, copy=False)
    state = fields.Selection(
        selection=[
            ("pending", "Pending"),
            ("done", "Done"),
            ("failed", "Failed"),
            ("cancelled", "Cancelled"),
        ],
        default="pending",
        required=True,
        readonly=True,
    )
    date_done = fields.Datetime(string="Finished", readonly=True)
    busy_count = fields.Integer(
        string="Taken by Another Run",
        readonly=True,
        help="Records another transaction held when the job ran, or no longer "
        "due: another run did them or does them.",
    )
    invoice_count = fields.Integer(string="Invoices Created", readonly=True)
    charge_count = fields.Integer(string="Charges Billed", readonly=True)
    skipped_count = fields.Integer(string="Periods Skipped", readonly=True)
    service_count = fields.Integer(string="Services Processed", readonly=True)
    suspended_count = fields.Integer(string="Services Suspended", readonly=True)
    resumed_count = fields.Integer(string="Services Resumed", readonly=True)
    closed_count = fields.Integer(string="Services Closed", readonly=True)
    wallet_count = fields.Integer(string="Wallets Posted", readonly=True)
    reminder_count = fields.Integer(string="Reminders Sent", readonly=True)
    failure_data = fields.Json(string="Customer Failures", readonly=True)
    failure_count = fields.Integer(
        string="Customers Failed", compute="_compute_failure_count", store=True
    )
    error = fields.Text(string="Job Error", readonly=True)

    @api.depends("record_ids")
    def _compute_record_count(self):
        for batch in self:
            batch.record_count = len(batch.record_ids or [])

    @api.depends("failure_data")
    def _compute_failure_count(self):
        for batch in self:
            batch.failure_count = len(batch.failure_data or [])

    # -------------------------------------------------------------------------
    # The job
    # -------------------------------------------------------------------------

    def _billing_batch_identity(self):
        self.ensure_one()
        return f"billing.run.batch:{self.run_id.id}:{self.id}"

    def _billing_batch_enqueue(self):
        """Enqueue this batch's job on the ``root.billing`` channel; its
        identity key (the run and the batch) keeps a second job of the batch
        from being enqueued while one waits."""
        self.ensure_one()
        run = self.run_id
        description = self.env._(
            "%(kind)s of %(date)s, batch %(sequence)s (%(count)s records)",
            kind=dict(run._fields["kind"].selection)[run.kind],
            date=fields.Date.to_string(self.date),
            sequence=self.sequence,
            count=self.record_count,
        )
        job = (
            self.with_company(self.company_id)
            .with_delay(
                channel=f"root.{CHANNEL_NAME}",
                identity_key=self._billing_batch_identity(),
                description=description,
            )
            ._billing_batch_run()
        )
        if job is not None:
            self.job_uuid = job.uuid
        return job

    def _billing_batch_run(self):
        """The job of a batch: process its records that are still due, locked
        (those another transaction holds are left to it), record the figures
        and failures on the batch, and refresh the run once committed. A batch
        done already changes nothing; its records re-checked, a batch whose
        work another run did meanwhile finds nothing to do."""
        self.ensure_one()
        # sudo: a job of the scheduler, run as the user who enqueued it.
        batch = self.sudo().with_company(self.company_id)
        if batch.state == "done":
            return f"batch {batch.id} done already"
        handler = getattr(batch, f"_billing_batch_run_{batch.kind}")
        figures, failures, taken = handler()
        batch.write(
            {
                **{field: figures.get(field, 0) for field in BATCH_FIGURES},
                "busy_count": len(batch.record_ids or []) - taken,
                "failure_data": failures,
                "state": "done",
                "date_done": fields.Datetime.now(),
                "error": False,
            }
        )
        batch.run_id._billing_queue_refresh_after_commit()
        return json.dumps({key: value for key, value in figures.items() if value})

    def _billing_batch_lock(self, table, condition, order="id", lock="FOR UPDATE"):
        """Ids of this batch's records of ``table`` (alias ``t``) that meet
        ``condition``, locked, those another transaction holds left out."""
        self.env.flush_all()
        self.env.cr.execute(
            SQL(
                """
                SELECT t.id FROM %(table)s t
                 WHERE t.id = ANY(%(ids)s) AND t.company_id = %(company)s
                   AND (%(condition)s)
              ORDER BY %(order)s
                       %(lock)s SKIP LOCKED
                """,
                table=SQL.identifier(table),
                ids=list(self.record_ids or []),
                company=self.company_id.id,
                condition=condition,
                order=SQL(order),
                lock=SQL(lock),
            )
        )
        return [row[0] for row in self.env.cr.fetchall()]

    def _billing_batch_run_recurring(self):
        ids = self._billing_batch_lock(
            "billing_recurring",
            SQL("t.state = 'running' AND t.next_date <= %s", self.date),
            order="t.next_date, t.id",
        )
        schedules = self.env["billing.recurring"].browse(ids)
        stats, failures = schedules._billing_process_batch(self.date)
        figures = {
            "invoice_count": stats["invoices"],
            "charge_count": stats["charges"],
            "skipped_count": stats["skipped"],
        }
        return (
            figures,
            [
                {
                    "recurring_id": recurring.id,
                    "partner_id": recurring.partner_id.id,
                    "error": error,
                }
                for recurring, error in failures
            ],
            len(ids),
        )

    def _billing_batch_run_renewal(self):
        Service = self.env["billing.service"]
        # The renewal condition names the services ``s``.
        self.env.flush_all()
        self.env.cr.execute(
            SQL(
                """
                SELECT s.id FROM billing_service s
                 WHERE s.id = ANY(%(ids)s) AND s.company_id = %(company)s
                   AND (%(due)s)
              ORDER BY s.next_date, s.id
                   FOR NO KEY UPDATE OF s SKIP LOCKED
                """,
                ids=list(self.record_ids or []),
                company=self.company_id.id,
                due=Service._renewal_due_condition(self.date),
            )
        )
        ids = [row[0] for row in self.env.cr.fetchall()]
        services = Service.browse(ids)
        services.invalidate_recordset()
        stats, failures = services._renewal_process_batch(self.date)
        figures = {
            "service_count": stats["services"],
            "charge_count": stats["charges"],
            "suspended_count": stats["suspended"],
            "resumed_count": stats["resumed"],
            "closed_count": stats["closed"],
        }
        return (
            figures,
            [
                {
                    "service_id": service.id,
                    "partner_id": service.partner_id.id,
                    "error": error,
                }
                for service, error in failures
            ],
            len(ids),
        )

    def _billing_batch_run_consumption(self):
        wallets = self.env["billing.wallet"].browse(self.record_ids or []).exists()
        wallets = wallets.filtered(lambda wallet: wallet.company_id == self.company_id)
        # _post_consumption locks the wallets (SKIP LOCKED) and books only the
        # movements no entry booked yet.
        posted = wallets._post_consumption_batch()
        return {"wallet_count": len(posted)}, [], len(wallets)

    @api.model
    def _billing_reminder_condition(self, today):
        """The services a reminder batch takes (alias ``s``, the company's
        reminder days from ``res_company c``): as ``_reminder_select``."""
        return SQL(
            """
            s.state = 'active' AND s.auto_renew AND s.next_date > %(today)s
            AND s.next_date <= %(today)s + c.billing_service_reminder_days
            AND s.reminder_date IS DISTINCT FROM s.next_date
            """,
            today=today,
        )

    def _billing_batch_run_reminder(self):
        self.env.flush_all()
        self.env.cr.execute(
            SQL(
                """
                SELECT s.id FROM billing_service s
                  JOIN res_company c ON c.id = s.company_id
                 WHERE s.id = ANY(%(ids)s) AND s.company_id = %(company)s
                   AND c.billing_service_reminder_days > 0 AND %(due)s
              ORDER BY s.id
                   FOR NO KEY UPDATE OF s SKIP LOCKED
                """,
                ids=list(self.record_ids or []),
                company=self.company_id.id,
                due=self._billing_reminder_condition(self.date),
            )
        )
        ids = [row[0] for row in self.env.cr.fetchall()]
        services = self.env["billing.service"].browse(ids)
        services.invalidate_recordset()
        sent = services._send_renewal_reminder()
        return {"reminder_count": sent}, [], len(ids)

    # -------------------------------------------------------------------------
    # The job's end, seen from queue_job
    # -------------------------------------------------------------------------

    def _billing_batch_failed(self, **values):
        """``on_fail_method`` of the job function: the job failed for good
        (queue_job calls it on a cursor it commits)."""
        batches = self.sudo().filtered(lambda batch: batch.state != "done")
        batches.write(
            {
                "state": "failed",
                "error": values.get("exc_message") or values.get("exc_name"),
            }
        )
        batches.run_id._billing_queue_refresh_after_commit()

    def _billing_batch_open_run(self):
        """Related action of the job: the run of the batch."""
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "res_model": "billing.run",
            "res_id": self.run_id.id,
            "view_mode": "form",
            "views": [(False, "form")],
        }

    def _billing_batch_sync_jobs(self):
        """The state of these batches from their jobs': a batch not done whose
        job failed has failed, one whose job was cancelled, set to done by hand
        or deleted was cancelled; one whose job waits or runs (requeued) is
        pending again. Returns whether one changed."""
        if "queue.job" not in self.env:
            return False
        open_batches = self.filtered(lambda batch: batch.state != "done")
        if not open_batches:
            return False
        jobs = (
            self.env["queue.job"]
            .sudo()
            .search([("uuid", "in", [b.job_uuid for b in open_batches if b.job_uuid])])
        )
        job_of = {job.uuid: job for job in jobs}
        changed = False
        for batch in open_batches:
            job = job_of.get(batch.job_uuid)
            if not job or job.state in ("cancelled", "done"):
                state, error = "cancelled", batch.error
            elif job.state == "failed":
                state, error = "failed", job.exc_message or batch.error
            else:
                state, error = "pending", batch.error
            if (state, error) != (batch.state, batch.error):
                batch.write({"state": state, "error": error})
                changed = True
        return changed
