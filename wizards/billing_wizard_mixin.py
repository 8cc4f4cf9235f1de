from odoo import api, models
from odoo.exceptions import AccessError


class BillingWizardMixin(models.AbstractModel):
    """What the billing wizards check of the records they are given: each
    record of the fields in ``_billing_checked_fields`` must be one the user
    may read, of one of the companies the user works in (``env.companies``,
    which Odoo keeps within the user's allowed companies), or of none. Checked
    at ``create``, at a ``write`` of those fields and before acting; a record
    rule keeps each wizard its creator's alone."""

    _name = "billing.wizard.mixin"
    _description = "Company and Access Checks of a Billing Wizard"

    # Fields holding the companies and records the wizard works on.
    _billing_checked_fields = ()

    @api.model_create_multi
    def create(self, vals_list):
        wizards = super().create(vals_list)
        if not self._check_company_auto:  # else checked by _check_company
            wizards._billing_check_access()
        return wizards

    def write(self, vals):
        res = super().write(vals)
        if set(vals) & set(self._billing_checked_fields):
            self._billing_check_access()
        return res

    def _check_company(self, fnames=None):
        # Before Odoo's own check, whose error names the records of another
        # company (as superuser) when the wizard's company differs from theirs.
        self._billing_check_access()
        return super()._check_company(fnames=fnames)

    def _billing_access_problem(self):
        """Why this wizard may not be used by the current user, naming the
        field, or None. The superuser may use any."""
        self.ensure_one()
        if self.env.su:
            return None
        allowed = self.env.companies
        for name in self._billing_checked_fields:
            # sudo: every record given, also those the user may not read (which
            # reading as the user would leave out), checked as the user below;
            # the real records of an onchange's new ones, whose access rules are
            # not checked.
            records = self.sudo()[name]._origin.with_env(self.env)
            if not records:
                continue
            label = self._fields[name]._description_string(self.env)
            if records._name == "res.company":
                if records - allowed:
                    return self.env._(
                        "%(field)s of %(wizard)s must be among the companies you "
                        "work in: %(allowed)s.",
                        field=label,
                        wizard=self._description,
                        allowed=", ".join(allowed.mapped("name")),
                    )
                continue
            unreadable = records - records._filtered_access("read")
            if unreadable:
                return self.env._(
                    "%(field)s of %(wizard)s: you may not read %(model)s %(ids)s.",
                    field=label,
                    wizard=self._description,
                    model=records._description,
                    ids=", ".join(str(record_id) for record_id in unreadable.ids),
                )
            if "company_id" in records._fields:
                # sudo: the records were just checked to be readable.
                foreign = records.sudo().filtered(
                    lambda record: record.company_id - allowed
                )
            else:
                continue
            if foreign:
                return self.env._(
                    "%(field)s of %(wizard)s: %(records)s is not of a company you "
                    "work in (%(allowed)s).",
                    field=label,
                    wizard=self._description,
                    records=", ".join(foreign.mapped("display_name")),
                    allowed=", ".join(allowed.mapped("name")),
                )
        return None

    def _billing_check_access(self):
        """Raise an AccessError unless these wizards are the current user's own
        (their record rule), naming the field of the first one the user may not
        use."""
        self.check_access("write")
        for wizard in self:
            problem = wizard._billing_access_problem()
            if problem:
                raise AccessError(problem)
