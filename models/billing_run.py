from odoo import api, fields, models


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
        ],
        default="running",
        required=True,
        readonly=True,
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
    failure_ids = fields.One2many(
        comodel_name="billing.run.failure",
        inverse_name="run_id",
        string="Failures",
        readonly=True,
    )
    failure_count = fields.Integer(
        string="Customers Failed", compute="_compute_failure_count", store=True
    )

    @api.depends("date_start", "trigger")
    def _compute_name(self):
        for run in self:
            run.name = self.env._(
                "%(trigger)s run of %(date)s",
                trigger=dict(self._fields["trigger"].selection)[run.trigger],
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
        """Run the recurring invoicing now, as the scheduler would."""
        return self.env["billing.recurring"].action_run_now()
