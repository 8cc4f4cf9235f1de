from datetime import date

from odoo import Command
from odoo.tests import Form

from .wallet_common import BillingWalletCommon


class BillingRecurringCommon(BillingWalletCommon):
    """Postpaid customers with a monthly recurring invoice, services to use and
    helpers to send usage."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.sms = cls.env["product.product"].create(
            {
                "name": "SMS",
                "type": "service",
                "list_price": 0.05,
                "taxes_id": [Command.clear()],
            }
        )
        cls.minutes = cls.env["product.product"].create(
            {
                "name": "Voice Minutes",
                "type": "service",
                "list_price": 0.10,
                "taxes_id": [Command.clear()],
            }
        )
        cls.plan = cls.env["product.product"].create(
            {
                "name": "Monthly Plan",
                "type": "service",
                "list_price": 20.0,
                "taxes_id": [Command.clear()],
            }
        )
        cls.postpaid = cls._postpaid_customer("Postpaid One")
        cls.ref_counter = 0

    @classmethod
    def _postpaid_customer(cls, name, **vals):
        return cls.env["res.partner"].create(
            {
                "name": name,
                "is_company": True,
                "email": f"{name.lower().replace(' ', '.')}@example.com",
                "billing_mode": "postpaid",
                **vals,
            }
        )

    def _schedule(
        self, partner=None, next_date=date(2026, 11, 1), company=None, **vals
    ):
        """A monthly draft schedule of ``partner`` (in ``company``, default the
        current one)."""
        Recurring = self.env["billing.recurring"]
        if company:
            Recurring = Recurring.with_company(company)
            vals["company_id"] = company.id
        return Recurring.create(
            {
                "partner_id": (partner or self.postpaid).id,
                "interval_type": "month",
                "interval_number": 1,
                "next_date": next_date,
                "generation_mode": "draft",
                "send_email": False,
                **vals,
            }
        )

    def _usage(self, partner, product, when, quantity=1.0, price_unit=None, count=1):
        """Ingest ``count`` usage records; returns the ingest result."""
        records = []
        for _index in range(count):
            type(self).ref_counter += 1
            record = {
                "partner_id": partner.id,
                "product_id": product.id,
                "date": when,
                "quantity": quantity,
                "external_ref": f"test-{self.ref_counter}",
            }
            if price_unit is not None:
                record["price_unit"] = price_unit
            records.append(record)
        result = self.env["billing.charge"].ingest(records)
        self.assertFalse(result["rejected"], result["rejected"])
        return result

    def _run(self, today=date(2026, 11, 5), **kwargs):
        return self.env["billing.recurring"]._billing_run(today=today, **kwargs)

    def _invoices(self, schedule):
        """The invoices of the recurring ``schedule``, oldest first."""
        return self.env["account.move"].search(
            [("billing_recurring_id", "=", schedule.id)], order="invoice_date"
        )

    def _postpaid_wizard(
        self, partner=None, date_from=date(2026, 10, 1), date_to=date(2026, 10, 31)
    ):
        """Create Invoice for the postpaid ``partner``'s usage of the period, the
        usage listed."""
        form = Form(self.env["billing.invoice.create"])
        form.customer_type = "postpaid"
        form.partner_id = partner or self.postpaid
        form.date_from = date_from
        form.date_to = date_to
        wizard = form.save()
        wizard.action_fetch_charges()
        return wizard

    def _batch_schedules(self, count=3):
        """``count`` postpaid customers, each with a monthly schedule and 2 usage
        records of October: their schedules."""
        schedules = self.env["billing.recurring"]
        for index in range(count):
            partner = self._postpaid_customer(f"Batch Customer {index}")
            schedules |= self._schedule(partner)
            self._usage(partner, self.sms, "2026-10-03", count=2)
        return schedules

    def assertChargesMatchUsageLines(self, invoice):
        """Invariant 4: each usage line bills exactly its charges."""
        usage_lines = invoice.invoice_line_ids.filtered("billing_charge_ids")
        self.assertTrue(usage_lines, "the invoice has usage lines")
        for line in usage_lines:
            charges = line.billing_charge_ids
            self.assertEqual(set(charges.mapped("state")), {"invoiced"})
            total = invoice.currency_id.round(sum(charges.mapped("amount")))
            self.assertEqual(
                invoice.currency_id.compare_amounts(total, line.price_subtotal),
                0,
                f"{line.name}: charges {total} != line {line.price_subtotal}",
            )
