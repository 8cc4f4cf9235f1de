import {registry} from "@web/core/registry";

function setValue(value) {
    return function () {
        this.anchor.value = value;
        this.anchor.dispatchEvent(new Event("change", {bubbles: true}));
    };
}

registry.category("web_tour.tours").add("prepaid_postpaid_billing_portal_self_service_tour", {
    url: "/my/home",
    steps: () => [
        {
            content: "The portal home has a Usage entry",
            trigger: "a[href='/my/usage']",
            run: "click",
        },
        {
            content: "All the customer's usage is listed",
            trigger: ".o_billing_usage_table .o_billing_usage_row:contains(Tour Voice)",
        },
        {
            content: "Filter from November 1st",
            trigger: ".o_billing_usage_filter input[name='date_from']",
            run: setValue("2026-11-01"),
        },
        {
            content: "to November 30th",
            trigger: ".o_billing_usage_filter input[name='date_to']",
            run: setValue("2026-11-30"),
        },
        {
            content: "Apply the filter",
            trigger: ".o_billing_usage_filter .o_billing_usage_filter_apply",
            run: "click",
        },
        {
            content: "October's usage is filtered out, November's is listed",
            trigger:
                ".o_billing_usage_table:not(:has(.o_billing_usage_row:contains(Tour Voice))) .o_billing_usage_row:contains(Tour SMS)",
        },
        {
            content: "The totals are those of the filter",
            trigger: ".o_billing_usage_totals:contains(Tour SMS):not(:contains(Tour Voice))",
        },
        {
            content: "Export the filter as CSV: November's two records",
            trigger: "a.o_billing_usage_export_csv",
            run: async function () {
                const response = await fetch(this.anchor.href);
                const text = await response.text();
                const rows = text.trim().split(/\r?\n/);
                if (response.status !== 200 || rows.length !== 3) {
                    throw new Error(`unexpected CSV export (${response.status}): ${text}`);
                }
                if (text.includes("Tour Voice") || !text.includes("Tour SMS")) {
                    throw new Error(`the CSV export ignores the filter: ${text}`);
                }
            },
        },
        {
            content: "Export the filter as Excel",
            trigger: "a.o_billing_usage_export_xlsx",
            run: async function () {
                const response = await fetch(this.anchor.href);
                const bytes = new Uint8Array(await response.arrayBuffer());
                // An xlsx file is a zip archive: it starts with "PK".
                if (response.status !== 200 || bytes[0] !== 0x50 || bytes[1] !== 0x4b) {
                    throw new Error(`unexpected Excel export (${response.status})`);
                }
            },
        },
        {
            content: "Open the invoices",
            trigger: "body",
            run: "goToUrl /my/invoices",
        },
        {
            content: "Open the invoice waiting for payment",
            trigger: "tr:has([name='invoice_status_waiting_for_payment']) a[href^='/my/invoices/']",
            run: "click",
        },
        {
            content: "Pay it from the wallet",
            trigger: ".o_billing_pay_from_wallet",
            run: "click",
        },
        {
            content: "Confirm",
            trigger: ".modal.show .o_billing_pay_from_wallet_confirm",
            run: "click",
        },
        {
            content: "The invoice is paid from the wallet",
            trigger: ".o_billing_wallet_paid",
        },
        {
            content: "The invoice shows it is paid",
            trigger: ".o_portal_sidebar .badge.text-bg-success:contains(Paid)",
        },
        {
            content: "Nothing is left to pay from the wallet",
            trigger: "body:not(:has(.o_billing_pay_from_wallet))",
        },
        {
            content: "Open the wallet",
            trigger: "body",
            run: "goToUrl /my/wallet",
        },
        {
            content: "The wallet balance shown went down by the invoice's 40.00",
            trigger: ".o_billing_wallet_balance:contains(60.00)",
        },
        {
            content: "Open the preferred invoice day",
            trigger: "body",
            run: "goToUrl /my/billing/invoice_day",
        },
        {
            content: "Choose the 15th",
            trigger: "form.o_billing_invoice_day_form input[name='invoice_day']",
            run: "edit 15",
        },
        {
            content: "Save",
            trigger: "form.o_billing_invoice_day_form .o_billing_invoice_day_save",
            run: "click",
        },
        {
            content: "The new day is saved",
            trigger: ".o_billing_invoice_day_saved .o_billing_invoice_day_saved_day:contains(/^15$/)",
        },
        {
            content: "The page shows day 15 as the customer's invoice day",
            trigger: ".o_billing_invoice_day_current:contains(/^15$/)",
        },
    ],
});
