import {registry} from "@web/core/registry";

registry.category("web_tour.tours").add("prepaid_postpaid_billing_wallet_portal_tour", {
    url: "/my/wallet",
    steps: () => [
        {
            content: "The wallet is empty",
            trigger: ".o_billing_wallet_balance:contains(0.00)",
        },
        {
            content: "Buy the credit package",
            trigger: ".o_billing_wallet_package:contains(Portal Package 100) .o_billing_wallet_buy",
            run: "click",
        },
        {
            content: "The invoice's payment dialog opens: enter the demo card",
            trigger: "#pay_with #customer_input",
            run: "edit 4242424242424242",
        },
        {
            content: "Pay",
            trigger: "#pay_with button[name='o_payment_submit_button']:not(:disabled)",
            run: "click",
        },
        {
            content: "Back on the invoice, the payment is confirmed",
            trigger:
                ".o_account_payment_tx_status [name='o_payment_status_alert'].alert-success:contains(Thank you!)",
        },
        {
            content: "The invoice shows it is paid",
            trigger: ".o_portal_sidebar .badge.text-bg-success:contains(Paid)",
        },
        {
            content: "It has nothing left to pay",
            trigger: ".o_portal_sidebar:not(:has(a[data-bs-target='#pay_with']))",
        },
        {
            content: "Back to the wallet",
            trigger: "body",
            run: "goToUrl /my/wallet",
        },
        {
            content: "The wallet holds the package's credit",
            trigger: ".o_billing_wallet_balance:contains(150.00)",
        },
        {
            content: "The history shows the top-up and the bonus",
            trigger: ".o_billing_wallet_move:contains(Bonus on)",
        },
    ],
});
