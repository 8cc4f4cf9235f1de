from odoo.tests import tagged

from .recurring_common import BillingRecurringCommon


@tagged("post_install", "-at_install")
class TestBillingChargeInvoiceSearch(BillingRecurringCommon):
    """The Invoice column of the Usage Records and its search: text typed
    (number, reference or customer name of the invoice), an invoice picked, no
    invoice."""

    def test_search_usage_records_by_their_invoice(self):
        other = self._postpaid_customer("Other Postpaid")
        self._usage(self.postpaid, self.sms, "2026-10-05 10:00:00", count=2)
        self._usage(other, self.sms, "2026-10-06 10:00:00")
        self._usage(self.postpaid, self.minutes, "2026-11-02 10:00:00")
        wizard = self._postpaid_wizard()
        action = wizard.action_create_invoice()
        invoice = self.env["account.move"].browse(action["res_id"])
        invoice.ref = "PO-4711"
        billed = self.env["billing.charge"].search(
            [("invoice_line_id.move_id", "=", invoice.id)]
        )
        self.assertEqual(len(billed), 2)
        self.assertEqual(billed.invoice_id, invoice)
        Charge = self.env["billing.charge"]
        for text in (invoice.name, invoice.name.lower(), "PO-4711", "Postpaid One"):
            self.assertEqual(
                Charge.search([("invoice_id", "ilike", text)]), billed, text
            )
        self.assertFalse(Charge.search([("invoice_id", "ilike", "no such invoice")]))
        self.assertEqual(Charge.search([("invoice_id", "=", invoice.id)]), billed)
        not_billed = Charge.search(
            [
                ("partner_id", "in", (self.postpaid | other).ids),
                ("invoice_id", "=", False),
            ]
        )
        self.assertEqual(len(not_billed), 2)
        self.assertFalse(not_billed & billed)
        mine = [("partner_id", "in", (self.postpaid | other).ids)]
        self.assertEqual(Charge.search([*mine, ("invoice_id", "!=", False)]), billed)
        self.assertEqual(
            Charge.search([*mine, ("invoice_id", "not in", invoice.ids)]), not_billed
        )
        self.assertEqual(
            Charge.search([*mine, ("invoice_id", "not ilike", invoice.name)]),
            not_billed,
        )
