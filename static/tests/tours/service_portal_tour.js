import {registry} from "@web/core/registry";

const row = ".o_billing_service:contains(Tour Phone Line)";

registry.category("web_tour.tours").add("prepaid_postpaid_billing_service_portal_tour", {
    url: "/my",
    steps: () => [
        {
            content: "The portal home lists the customer's services",
            trigger: "a[href='/my/services']:contains(Services)",
            run: "click",
        },
        {
            content: "The service renews itself, its balance covers the next renewal",
            trigger: `${row} .o_billing_service_auto_renew:contains(On)`,
        },
        {
            content: "The wallet balance covers the next renewal",
            trigger: `${row} .o_billing_service_covered`,
        },
        {
            content: "Turn auto-renew off",
            trigger: `${row} .o_billing_service_auto_renew_off`,
            run: "click",
        },
        {
            content: "The change is confirmed",
            trigger:
                ".o_billing_service_result.alert-success:contains(Auto-renew of Tour Phone Line is off)",
        },
        {
            content: "The service closes at the end of its paid period",
            trigger: `${row} .o_billing_service_closing:contains(Closes at period end)`,
        },
        {
            content: "Auto-renew is off and can be turned on again",
            trigger: `${row} .o_billing_service_auto_renew:contains(Off)`,
        },
        {
            content: "The button turns it on again",
            trigger: `${row} .o_billing_service_auto_renew_on`,
        },
    ],
});

registry.category("web_tour.tours").add("prepaid_postpaid_billing_service_backend_tour", {
    url: "/odoo/billing-services",
    steps: () => [
        {
            content: "Billing > Services lists the service, auto-renew off",
            trigger:
                ".o_list_view .o_data_row:contains(Tour Phone Line) .o_field_widget[name='auto_renew'] input:not(:checked)",
        },
        {
            content: "Open the service",
            trigger: ".o_list_view .o_data_row:contains(Tour Phone Line) td[name='name']",
            run: "click",
        },
        {
            content: "Its form shows auto-renew off",
            trigger: ".o_form_view .o_field_widget[name='auto_renew'] input:not(:checked)",
        },
        {
            content: "The service is still active",
            trigger: ".o_form_view .o_statusbar_status button.o_arrow_button_current:contains(Active)",
        },
    ],
});
