import re

from odoo import http
from odoo.exceptions import UserError, ValidationError
from odoo.http import request

from odoo.addons.portal.controllers.portal import CustomerPortal

from .portal import billing_portal_customer

INVOICE_DAY_URL = "/my/billing/invoice_day"
# Session key of the result of the last change, shown once on the page.
INVOICE_DAY_RESULT_KEY = "billing_invoice_day_portal_result"
INVOICE_DAY_PATTERN = re.compile(r"\d{1,2}")
# Characters of a refused value the message repeats, at most.
MAX_SHOWN_VALUE = 20


class BillingInvoiceDayPortal(CustomerPortal):
    """The preferred invoice day of the portal user's own billing customer:
    shown with the recurring invoice's next dates, and changed from the next
    period on."""

    def _prepare_home_portal_values(self, counters):
        values = super()._prepare_home_portal_values(counters)
        if "billing_invoice_day_count" in counters:
            customer = billing_portal_customer()
            values["billing_invoice_day_count"] = (
                customer.billing_invoice_day
                if customer and self._billing_invoice_day_schedule(customer)
                else 0
            )
        return values

    # -------------------------------------------------------------------------
    # Helpers
    # -------------------------------------------------------------------------

    def _billing_invoice_day_schedule(self, customer):
        """The recurring invoice of ``customer`` in the current company."""
        # sudo: portal users do not read recurring invoices; this is the one of
        # the user's own commercial partner, whose dates the page shows.
        return (
            request.env["billing.recurring"]
            .sudo()
            .search(
                [
                    ("partner_id", "=", customer.id),
                    ("company_id", "=", request.env.company.id),
                ],
                limit=1,
            )
        )

    def _billing_parse_invoice_day(self, value):
        """``value`` sent by the form as a day from 1 to 31, or None."""
        value = (value or "").strip() if isinstance(value, str) else ""
        if not INVOICE_DAY_PATTERN.fullmatch(value):
            return None
        day = int(value)
        return day if 1 <= day <= 31 else None

    # -------------------------------------------------------------------------
    # Routes
    # -------------------------------------------------------------------------

    @http.route(
        [INVOICE_DAY_URL], type="http", auth="user", methods=["GET"], website=True
    )
    def portal_my_invoice_day(self, **kw):
        customer = billing_portal_customer()
        if not customer:
            raise request.not_found()
        schedule = self._billing_invoice_day_schedule(customer)
        following = False
        if schedule.state == "running":
            following = schedule._next_invoice_date(schedule.next_date)
        values = self._prepare_portal_layout_values()
        values.update(
            {
                "page_name": "billing_invoice_day",
                "customer": customer,
                "invoice_day": customer.billing_invoice_day,
                "schedule": schedule,
                "following_date": following,
                "invoice_day_result": request.session.pop(INVOICE_DAY_RESULT_KEY, None),
            }
        )
        return request.render("prepaid_postpaid_billing.portal_my_invoice_day", values)

    @http.route(
        [INVOICE_DAY_URL], type="http", auth="user", methods=["POST"], website=True
    )
    def portal_my_invoice_day_save(self, invoice_day=None, **kw):
        """Set the preferred invoice day of the user's own billing customer;
        its recurring invoices follow it from their next period on."""
        customer = billing_portal_customer()
        if not customer:
            raise request.not_found()
        day = self._billing_parse_invoice_day(invoice_day)
        if day is None:
            result = {
                "ok": False,
                "message": request.env._(
                    "Preferred invoice day: enter a whole number from 1 to 31 "
                    "(not %(value)r). Nothing was changed.",
                    value=(invoice_day if isinstance(invoice_day, str) else "")[
                        :MAX_SHOWN_VALUE
                    ],
                ),
            }
        else:
            try:
                with request.env.cr.savepoint():
                    # sudo: portal users cannot change billing profiles; this
                    # writes the preferred day only, checked just above, of the
                    # user's own commercial partner, and its write follows it
                    # on the partner's recurring invoices.
                    customer.sudo().write({"billing_invoice_day": day})
            except (UserError, ValidationError) as error:
                result = {"ok": False, "message": str(error)}
            else:
                result = {"ok": True, "day": day}
        request.session[INVOICE_DAY_RESULT_KEY] = result
        return request.redirect(INVOICE_DAY_URL)
