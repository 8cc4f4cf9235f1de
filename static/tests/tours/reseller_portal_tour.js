import {registry} from "@web/core/registry";

registry.category("web_tour.tours").add("prepaid_postpaid_billing_reseller_portal_tour", {
    url: "/my",
    steps: () => [
        {
            content: "The portal home lists the reseller's customers",
            trigger: "a[href='/my/customers']:contains(Customers)",
            run: "click",
        },
        {
            content: "Open the prepaid customer",
            trigger: ".o_billing_reseller_customer a:contains(Tour Kiosk)",
            run: "click",
        },
        {
            content: "The customer's wallet is empty, the reseller's holds 80.00",
            trigger: ".o_billing_recharge_balance:contains(80.00)",
        },
        {
            content: "Enter the amount to recharge",
            trigger: "#billing_recharge_amount",
            run: "edit 30",
        },
        {
            content: "Recharge",
            trigger: ".o_billing_recharge_submit",
            run: "click",
        },
        {
            content: "The recharge is confirmed",
            trigger: ".o_billing_recharge_result.alert-success:contains(recharged to Tour Kiosk)",
        },
        {
            content: "The customer's balance is 30.00, the reseller's 50.00",
            trigger:
                ".o_billing_reseller_customer_page .o_billing_reseller_balance:contains(30.00)",
        },
        {
            content: "The customer's history lists the recharge",
            trigger: ".o_billing_reseller_wallet_move:contains(Recharge by Tour Reseller)",
        },
        {
            content: "The reseller's balance went down",
            trigger: ".o_billing_recharge_balance:contains(50.00)",
        },
        {
            content: "Open the customers' invoices",
            trigger: "body",
            run: "goToUrl /my/customers/invoices",
        },
        {
            content: "Open the due filter",
            trigger: "#o_billing_reseller_due",
            run: "click",
        },
        {
            content: "Filter the overdue invoices",
            trigger: ".dropdown-menu a.dropdown-item:contains(Overdue)",
            run: "click",
        },
        {
            content: "The list is filtered on the overdue invoices",
            trigger: "#o_billing_reseller_due:contains(Overdue)",
        },
        {
            content: "Select it",
            trigger: ".o_billing_reseller_invoice:contains(Tour Bakery) input[name='invoice_ids']",
            run: "check",
        },
        {
            content: "Send the payment reminder",
            trigger: ".o_billing_reseller_remind",
            run: "click",
        },
        {
            content: "One reminder was queued",
            trigger: ".o_billing_reseller_reminder_result:contains(1 queued)",
        },
    ],
});
