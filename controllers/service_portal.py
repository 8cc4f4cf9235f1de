from odoo import http
from odoo.exceptions import AccessError, UserError
from odoo.http import request
from odoo.osv import expression

from odoo.addons.portal.controllers.portal import CustomerPortal
from odoo.addons.portal.controllers.portal import pager as portal_pager

from .portal import billing_portal_customer, format_portal_amount, is_record_id

# Session key of the result of the last change of a service, shown once.
SERVICE_RESULT_KEY = "billing_service_portal_result"
# States of the services the portal lists: a new service is not started yet.
PORTAL_SERVICE_STATES = ("active", "suspended", "closed")


class BillingServicePortal(CustomerPortal):
    """My Services: the portal user's renewable services, read with the
    user's rights (a customer's own; a reseller's also its customers'), with
    auto-renew and closing for the user's own services."""

    def _prepare_home_portal_values(self, counters):
        values = super()._prepare_home_portal_values(counters)
        if "billing_service_count" in counters:
            Service = request.env["billing.service"]
            values["billing_service_count"] = (
                Service.search_count(self._billing_services_domain())
                if billing_portal_customer() and Service.has_access("read")
                else 0
            )
        return values

    # -------------------------------------------------------------------------
    # Helpers
    # -------------------------------------------------------------------------

    def _billing_services_domain(self):
        """The services the portal lists; the record rules restrict them to
        those the user may read."""
        return [("state", "in", PORTAL_SERVICE_STATES)]

    def _billing_service_filters(self):
        return {
            "all": {"label": request.env._("All"), "domain": []},
            "running": {
                "label": request.env._("Running"),
                "domain": [("state", "in", ("active", "suspended"))],
            },
            "suspended": {
                "label": request.env._("Suspended"),
                "domain": [("state", "=", "suspended")],
            },
            "closed": {
                "label": request.env._("Closed"),
                "domain": [("state", "=", "closed")],
            },
        }

    def _billing_service_sortings(self):
        return {
            "next_date": {
                "label": request.env._("Next Renewal"),
                "order": "next_date, id",
            },
            "name": {"label": request.env._("Description"), "order": "name, id"},
            "state": {"label": request.env._("Status"), "order": "state, id"},
        }

    def _billing_service_period_label(self, service):
        """How often ``service`` renews, in words: "Every month", "Every 3
        months"."""
        number = service.interval_number
        if number == 1:
            labels = {
                "day": request.env._("Every day"),
                "week": request.env._("Every week"),
                "month": request.env._("Every month"),
                "year": request.env._("Every year"),
            }
        else:
            labels = {
                "day": request.env._("Every %(count)s days", count=number),
                "week": request.env._("Every %(count)s weeks", count=number),
                "month": request.env._("Every %(count)s months", count=number),
                "year": request.env._("Every %(count)s years", count=number),
            }
        return labels[service.interval_type]

    def _billing_service_rows(self, services):
        """What the list shows of each of ``services``: whether the user may
        change it (its own running services) and, for a running prepaid
        service that renews, whether the wallet balance covers the next
        renewal."""
        customer = request.env.user.partner_id.commercial_partner_id
        rows = []
        for service in services:
            running = service.state in ("active", "suspended")
            covers = None
            if (
                service.state == "active"
                and service.auto_renew
                and service.billing_mode == "prepaid"
            ):
                covers = service._balance_covers_renewal()
            rows.append(
                {
                    "service": service,
                    "own": service.partner_id == customer,
                    "changeable": running and service.partner_id == customer,
                    "period": self._billing_service_period_label(service),
                    "amount": format_portal_amount(service.renewal_amount),
                    "covers": covers,
                }
            )
        return rows

    def _billing_service_or_404(self, service_id):
        """The service ``service_id`` the portal lists, read with the user's
        rights: one the user may not read is not found."""
        Service = request.env["billing.service"]
        if not Service.has_access("read") or not is_record_id(service_id):
            raise request.not_found()
        service = Service.search(
            [("id", "=", service_id), *self._billing_services_domain()], limit=1
        )
        if not service:
            raise request.not_found()
        return service

    def _billing_service_change(self, service, change, success):
        """Run ``change`` on ``service`` (a portal helper that checks the user
        is the service's own customer) and keep its result, shown once on the
        list: ``success`` or the reason of the refusal."""
        try:
            with request.env.cr.savepoint():
                change()
        except (AccessError, UserError) as error:
            result = {"ok": False, "message": str(error)}
        else:
            result = {"ok": True, "message": success}
        result["service_id"] = service.id
        request.session[SERVICE_RESULT_KEY] = result
        return request.redirect("/my/services")

    # -------------------------------------------------------------------------
    # Routes
    # -------------------------------------------------------------------------

    @http.route(
        ["/my/services", "/my/services/page/<int:page>"],
        type="http",
        auth="user",
        website=True,
    )
    def portal_my_services(self, page=1, sortby=None, filterby=None, **kw):
        Service = request.env["billing.service"]
        readable = Service.has_access("read")
        filters = self._billing_service_filters()
        sortings = self._billing_service_sortings()
        filterby = filterby if filterby in filters else "all"
        sortby = sortby if sortby in sortings else "next_date"
        domain = expression.AND(
            [self._billing_services_domain(), filters[filterby]["domain"]]
        )
        total = Service.search_count(domain) if readable else 0
        pager = portal_pager(
            url="/my/services",
            url_args={"sortby": sortby, "filterby": filterby},
            total=total,
            page=page,
            step=self._items_per_page,
        )
        services = (
            Service.search(
                domain,
                order=sortings[sortby]["order"],
                limit=self._items_per_page,
                offset=pager["offset"],
            )
            if readable
            else Service
        )
        customer = request.env.user.partner_id.commercial_partner_id
        # The customer column is shown when the user reads services of other
        # customers than its own: a reseller's customers'.
        show_customer = readable and bool(
            Service.search_count(
                [*self._billing_services_domain(), ("partner_id", "!=", customer.id)],
                limit=1,
            )
        )
        values = self._prepare_portal_layout_values()
        values.update(
            {
                "page_name": "billing_services",
                "default_url": "/my/services",
                "pager": pager,
                "service_rows": self._billing_service_rows(services),
                "show_customer": show_customer,
                "searchbar_sortings": sortings,
                "sortby": sortby,
                "searchbar_filters": filters,
                "filterby": filterby,
                "service_result": request.session.pop(SERVICE_RESULT_KEY, None),
            }
        )
        return request.render("prepaid_postpaid_billing.portal_my_services", values)

    @http.route(
        ["/my/services/<int:service_id>/auto_renew"],
        type="http",
        auth="user",
        methods=["POST"],
        website=True,
    )
    def portal_my_service_auto_renew(self, service_id, value=None, **kw):
        """Turn auto-renew of the user's own service on (``value`` "on") or
        off ("off": it closes at the end of its paid period)."""
        service = self._billing_service_or_404(service_id)
        if value not in ("on", "off"):
            request.session[SERVICE_RESULT_KEY] = {
                "ok": False,
                "service_id": service.id,
                "message": request.env._(
                    "Auto-renew of %(service)s: choose on or off.",
                    service=service.name,
                ),
            }
            return request.redirect("/my/services")
        auto_renew = value == "on"
        success = (
            request.env._(
                "%(service)s renews itself at the end of each period again.",
                service=service.name,
            )
            if auto_renew
            else request.env._(
                "Auto-renew of %(service)s is off: it closes at the end of its "
                "paid period.",
                service=service.name,
            )
        )
        return self._billing_service_change(
            service, lambda: service._portal_set_auto_renew(auto_renew), success
        )

    @http.route(
        ["/my/services/<int:service_id>/close"],
        type="http",
        auth="user",
        methods=["POST"],
        website=True,
    )
    def portal_my_service_close(self, service_id, **kw):
        """Close the user's own service at the end of its paid period (a
        suspended one, whose period is unpaid, at once)."""
        service = self._billing_service_or_404(service_id)
        success = (
            request.env._("%(service)s is closed.", service=service.name)
            if service.state == "suspended"
            else request.env._(
                "%(service)s closes at the end of its paid period.",
                service=service.name,
            )
        )
        return self._billing_service_change(service, service._portal_close, success)
