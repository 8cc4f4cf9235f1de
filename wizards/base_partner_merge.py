from odoo import models

from ..models.billing_charge import UsageMany2one


class BasePartnerMergeAutomaticWizard(models.TransientModel):
    _inherit = "base.partner.merge.automatic.wizard"

    def _get_fk_on(self, table):
        """Odoo's merge re-points the columns that have a foreign key on
        ``table``; the usage records' own have none (``UsageMany2one``): add
        them, so that merging contacts carries their usage records over."""
        relations = list(super()._get_fk_on(table))
        Charge = self.env["billing.charge"]
        relations += [
            (Charge._table, name)
            for name, field in Charge._fields.items()
            if isinstance(field, UsageMany2one)
            and field.store
            and self.env[field.comodel_name]._table == table
            and (Charge._table, name) not in relations
        ]
        return relations
