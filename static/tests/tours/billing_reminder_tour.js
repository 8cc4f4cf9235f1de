import {registry} from "@web/core/registry";

registry.category("web_tour.tours").add("prepaid_postpaid_billing_reminder_tour", {
    url: "/odoo/billing-invoices",
    steps: () => [
        {
            content: "Select the unpaid invoice of the tour customer",
            trigger:
                ".o_data_row:contains(Tour Reminder Customer) td.o_list_record_selector input[type='checkbox']",
            run: "click",
        },
        {
            content: "Open the Actions menu",
            trigger: ".o_cp_action_menus button:has(i.fa-cog)",
            run: "click",
        },
        {
            content: "Send Payment Reminders",
            trigger: ".o-dropdown--menu .dropdown-item:contains(Send Payment Reminders)",
            run: "click",
        },
        {
            content: "The wizard counts one invoice to remind",
            trigger: ".modal .o_field_widget[name='send_count']:contains(1)",
        },
        {
            content: "The default template is proposed",
            trigger:
                ".modal .o_field_widget[name='template_id'] input:value(Billing: payment reminder)",
        },
        {
            content: "Send",
            trigger: ".modal button[name='action_send']",
            run: "click",
        },
        {
            content: "The summary says one reminder was queued",
            trigger: ".modal .o_field_widget[name='result_summary']:contains(Reminders queued: 1)",
        },
        {
            content: "Close",
            trigger: ".modal .modal-footer button:contains(Close)",
            run: "click",
        },
        {
            content: "Back to the invoices",
            trigger: "body:not(:has(.modal)) .o_data_row:contains(Tour Reminder Customer)",
        },
    ],
});
