import {registry} from "@web/core/registry";

registry.category("web_tour.tours").add("prepaid_postpaid_billing_invoice_tour", {
    url: "/odoo",
    steps: () => [
        {
            content: "Open the apps menu",
            trigger: ".o_navbar_apps_menu button:enabled",
            run: "click",
        },
        {
            content: "Open the Billing app",
            trigger: '.o_app[data-menu-xmlid="prepaid_postpaid_billing.billing_menu_root"]',
            run: "click",
        },
        {
            content: "The Billing dashboard opens first",
            trigger: ".o_billing_dashboard .o_billing_goto[data-key='page_invoices']",
            run: "click",
        },
        {
            content: "Its Go to Page opens Manage Invoices",
            trigger: ".o_breadcrumb:contains(Manage Invoices)",
        },
        {
            content: "Create an invoice",
            trigger: ".o_control_panel button:contains(Create Invoice)",
            run: "click",
        },
        {
            content: "For a postpaid customer",
            trigger:
                ".modal .o_field_widget[name='customer_type'] input[data-value='postpaid']",
            run: "click",
        },
        {
            content: "Pick the customer",
            trigger: ".modal .o_field_widget[name='partner_id'] input",
            run: "edit Tour Postpaid",
        },
        {
            content: "Choose it in the list",
            trigger: ".o-autocomplete--dropdown-item:contains(Tour Postpaid Co)",
            run: "click",
        },
        {
            content: "Period start",
            trigger: ".modal .o_field_widget[name='date_from'] input",
            run: "edit 10/01/2026",
        },
        {
            content: "Period end",
            trigger: ".modal .o_field_widget[name='date_to'] input",
            run: "edit 10/31/2026",
        },
        {
            content: "Fetch the usage records of October",
            trigger: ".modal button[name='action_fetch_charges']",
            run: "click",
        },
        {
            content: "Three records are listed",
            trigger: ".modal .o_field_widget[name='charge_count']:contains(3)",
        },
        {
            content: "Their service is summed",
            trigger:
                ".modal .o_field_widget[name='service_ids'] .o_data_row:contains(Tour SMS)",
        },
        {
            content: "Create and claim: the payment was received",
            trigger: ".modal button[name='action_claim']",
            run: "click",
        },
        {
            content: "The amount received defaults to the invoice total",
            trigger: ".modal .o_field_widget[name='payment_amount'] input:value(3.00)",
        },
        {
            content: "Payment reference",
            trigger: ".modal .o_field_widget[name='payment_reference'] input",
            run: "edit TOUR-TRANSFER-1",
        },
        {
            content: "Create the invoice and register the payment",
            trigger: ".modal button[name='action_create_and_claim']",
            run: "click",
        },
        {
            content: "The customer's invoice is open",
            trigger:
                ".o_form_view .o_field_widget[name='partner_id']:contains(Tour Postpaid Co)",
        },
        {
            content: "It is posted",
            trigger: ".o_form_view .o_statusbar_status .o_arrow_button_current:contains(Posted)",
        },
        {
            content: "The invoice is paid: its form shows the Paid ribbon",
            trigger: ".o_form_view .ribbon:contains(/^\\s*(Paid|In Payment)\\s*$/)",
        },
        {
            content: "Back to Manage Invoices",
            trigger: ".o_breadcrumb li.breadcrumb-item a:contains(Manage Invoices)",
            run: "click",
        },
        {
            content: "The claimed invoice is listed as paid",
            trigger:
                ".o_data_row:contains(Tour Postpaid Co) td[name='payment_state']:contains(/^(Paid|In Payment)$/)",
        },
        {
            content: "Select the claimed invoice",
            trigger:
                ".o_data_row:contains(Tour Postpaid Co) td.o_list_record_selector input[type='checkbox']",
            run: "click",
        },
        {
            content: "and the overdue invoice of another customer",
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
            content: "One invoice to remind",
            trigger: ".modal .o_field_widget[name='send_count']:contains(1)",
        },
        {
            content: "The paid one is skipped",
            trigger: ".modal .o_field_widget[name='skip_count']:contains(1)",
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
