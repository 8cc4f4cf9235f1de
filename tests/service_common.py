from datetime import date

from freezegun import freeze_time

from odoo import Command

from .recurring_common import BillingRecurringCommon


class BillingServiceCommon(BillingRecurringCommon):
    """A prepaid and a postpaid customer, a renewable service product (a phone
    number at 10 a month) and helpers to create, activate and renew
    services."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.number = cls.env["product.product"].create(
            {
                "name": "Phone Number",
                "type": "service",
                "list_price": 10.0,
                "taxes_id": [Command.clear()],
            }
        )
        cls.company.billing_service_reminder_days = 7
        cls.company.billing_service_grace_days = 0

    def _service(self, partner=None, start=date(2026, 11, 1), activate=True, **vals):
        """A monthly service of ``partner`` (default the prepaid customer)
        starting on ``start``, activated (its first period charged) unless
        ``activate`` is False. Activation charges as of ``start``: the test
        runs on that day."""
        service = self.env["billing.service"].create(
            {
                "partner_id": (partner or self.customer).id,
                "product_id": self.number.id,
                "interval_type": "month",
                "interval_number": 1,
                "date_start": start,
                **vals,
            }
        )
        if activate:
            with freeze_time(start):
                service.action_activate()
        return service

    def _renew(self, today, **kwargs):
        """A renewal run as the scheduler's, on ``today``."""
        return self.env["billing.service"]._renewal_run(today=today, **kwargs)

    def _periods(self, service):
        """Starts of the periods charged for ``service``, oldest first."""
        service.invalidate_recordset(["charge_ids"])
        return sorted(service.charge_ids.mapped("service_period_start"))
