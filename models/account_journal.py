import re

from odoo import fields, models


class AccountJournal(models.Model):
    _inherit = "account.journal"

    billing_reseller_id = fields.Many2one(
        comodel_name="res.partner",
        string="Reseller",
        readonly=True,
        index="btree_not_null",
        ondelete="restrict",
        help="The reseller whose customers' invoices are numbered in this journal, "
        "with the reseller's invoice prefix.",
    )

    def _billing_invoice_prefix(self):
        """How the numbers of this reseller journal begin: its reseller's
        invoice prefix, else the journal's code; False for other journals."""
        self.ensure_one()
        # sudo: the prefix is printed on every invoice of the journal.
        reseller = self.sudo().billing_reseller_id
        if not reseller:
            return False
        return reseller.billing_invoice_prefix or self.code

    def _billing_sequence_start(self, starting_sequence):
        """``starting_sequence`` (Odoo's ``CODE/2026/00000``, ``RCODE/...`` for
        credit notes) with the reseller's prefix in place of the code, and the
        regular expression the names of that prefix match; (None, None) for a
        journal without a reseller prefix."""
        prefix = self._billing_invoice_prefix()
        if not prefix or f"{self.code}/" not in starting_sequence:
            return None, None
        head, rest = starting_sequence.split(f"{self.code}/", 1)
        start = f"{head}{prefix}/{rest}"
        fixed = start.rsplit("/", 2)[0]
        return start, f"^{re.escape(fixed)}/"
