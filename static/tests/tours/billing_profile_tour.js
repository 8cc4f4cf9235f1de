import {registry} from "@web/core/registry";

registry.category("web_tour.tours").add("prepaid_postpaid_billing_profile_tour", {
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
            content: "Open the Customers menu",
            trigger:
                '.o_menu_sections button[data-menu-xmlid="prepaid_postpaid_billing.billing_menu_customers"]',
            run: "click",
        },
        {
            content: "Open the Customers list",
            trigger:
                '.dropdown-item[data-menu-xmlid="prepaid_postpaid_billing.res_partner_menu_billing_customer"]',
            run: "click",
        },
        {
            content: "The Customers list opens",
            trigger: ".o_breadcrumb:contains(Customers)",
        },
        {
            content: "Create a customer",
            trigger: ".o_list_button_add",
            run: "click",
        },
        {
            content: "Name it",
            trigger: ".o_field_widget[name='name'] :is(input, textarea)",
            run: "edit Tess Postpaid",
        },
        {
            content: "Open the Billing tab",
            trigger: ".o_notebook_headers a[name='billing']",
            run: "click",
        },
        {
            content: "Bill it postpaid",
            trigger: ".o_field_widget[name='billing_mode'] input[data-value='postpaid']",
            run: "click",
        },
        {
            content: "Invoice it on the 28th",
            trigger: ".o_field_widget[name='billing_invoice_day'] input",
            run: "edit 28",
        },
        {
            content: "Save",
            trigger: ".o_form_button_save",
            run: "click",
        },
        {
            content: "Saved",
            trigger: ".o_form_saved",
        },
        {
            content: "Back to the list",
            trigger: ".o_breadcrumb .o_back_button a, .o_breadcrumb li.breadcrumb-item a",
            run: "click",
        },
        {
            content: "Open the filters",
            trigger: ".o_searchview_dropdown_toggler",
            run: "click",
        },
        {
            content: "Filter postpaid customers",
            trigger: ".o_filter_menu .dropdown-item:contains(Postpaid)",
            run: "click",
        },
        {
            content: "The new customer is listed as postpaid",
            trigger: ".o_data_row:contains(Tess Postpaid) td[name='billing_mode']:contains(Postpaid)",
        },
    ],
});
