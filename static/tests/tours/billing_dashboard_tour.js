import {registry} from "@web/core/registry";

const DASHBOARD = ".o_billing_dashboard .o_billing_dashboard_content";

/** An amount shown with its currency symbol, whichever side it is on. */
function money(amount) {
    return `/^\\D*${amount.replace(".", "\\.")}\\D*$/`;
}

/** A date input takes no typing: set its value as the date picker does. */
function setDate(input, value) {
    input.value = value;
    input.dispatchEvent(new Event("change", {bubbles: true}));
}

function checkTile(key, count, amount) {
    const tile = `${DASHBOARD} .o_billing_tile[data-key='${key}'] .o_billing_tile_main`;
    const steps = [];
    if (count !== null) {
        steps.push({
            content: `Tile ${key}: ${count} records`,
            trigger: `${tile} .o_billing_tile_count:contains(/^${count}$/)`,
        });
    }
    steps.push({
        content: `Tile ${key}: ${amount}`,
        trigger: `${tile} .o_billing_tile_amount:contains(${money(amount)})`,
    });
    return steps;
}

function checkFigure(key, count, amount) {
    const figure = `${DASHBOARD} .o_billing_sub[data-key='${key}']`;
    return [
        {
            content: `Figure ${key}: ${count} records`,
            trigger: `${figure} .o_billing_sub_count:contains(/^${count}$/)`,
        },
        {
            content: `Figure ${key}: ${amount}`,
            trigger: `${figure} .o_billing_sub_amount:contains(${money(amount)})`,
        },
    ];
}

/** Open ``selector``, find the list ``title`` of ``rows`` records, come back. */
function followTo(selector, title, rows) {
    return [
        {
            content: `Open ${title}`,
            trigger: `${DASHBOARD} ${selector}`,
            run: "click",
        },
        {
            content: `${title} is open`,
            trigger: `.o_last_breadcrumb_item:contains(/^\\s*${title}\\s*$/)`,
        },
        {
            content: `${title} lists ${rows} records`,
            trigger: ".o_list_view .o_list_table",
            run() {
                // An empty list shows sample records behind its help.
                const sample = document.querySelector(".o_list_view .o_view_sample_data");
                const found = sample
                    ? 0
                    : document.querySelectorAll(".o_list_view .o_data_row").length;
                if (found !== rows) {
                    throw new Error(`${title}: ${rows} rows expected, ${found} found`);
                }
            },
        },
        {
            content: "Back to the dashboard",
            trigger: ".o_breadcrumb .breadcrumb-item a:contains(Billing Dashboard)",
            run: "click",
        },
        {
            content: "The dashboard is back",
            trigger: `${DASHBOARD} .o_billing_tile[data-key='total']`,
        },
    ];
}

function followTile(key, title, rows) {
    return followTo(`.o_billing_tile[data-key='${key}'] .o_billing_tile_main`, title, rows);
}

function followFigure(key, title, rows) {
    return followTo(`.o_billing_sub[data-key='${key}']`, title, rows);
}

registry.category("web_tour.tours").add("prepaid_postpaid_billing_dashboard_tour", {
    url: "/odoo/billing-dashboard",
    steps: () => [
        {
            content: "The dashboard is open, for this month",
            trigger: ".o_billing_filter_period:value(this_month)",
        },
        {
            content: "One company: no company filter",
            trigger: ".o_billing_filters:not(:has(.o_billing_filter_company))",
        },
        ...checkTile("total", 6, "330.00"),
        ...checkFigure("posted", 5, "280.00"),
        ...checkFigure("draft", 1, "50.00"),
        ...checkTile("paid", 2, "130.00"),
        ...checkTile("unsettled", 3, "110.00"),
        ...checkFigure("unpaid", 2, "50.00"),
        ...checkFigure("partial", 1, "60.00"),
        ...checkTile("overdue", 1, "30.00"),
        ...checkTile("wallet", null, "150.00"),
        ...checkTile("payments", 4, "370.00"),
        ...checkFigure("payments_bank", 3, "320.00"),
        ...checkFigure("payments_online", 0, "0.00"),
        ...checkFigure("payments_wallet", 1, "50.00"),
        ...checkFigure("not_due", 2, "80.00"),
        ...checkFigure("due_today", 0, "0.00"),
        {
            content: "The latest invoices are listed",
            trigger: `${DASHBOARD} .o_billing_latest_invoices .o_billing_invoice_row:contains(Dash Reseller Customer)`,
        },
        {
            content: "The last run failed for one customer",
            trigger: `${DASHBOARD} .o_billing_last_run:contains(Dash Stopped Co):contains(No price for the product SMS.)`,
        },
        {
            content: "Its invoices",
            trigger: `${DASHBOARD} .o_billing_last_run_invoices:contains(/^2$/)`,
        },
        {
            content: "One schedule running",
            trigger: `${DASHBOARD} .o_billing_recurring_running:contains(/^1$/)`,
        },
        {
            content: "One stopped",
            trigger: `${DASHBOARD} .o_billing_recurring_stopped:contains(/^1$/)`,
        },
        // Every tile and figure opens the records it counts.
        ...followTile("total", "Invoices", 6),
        ...followFigure("posted", "Approved Invoices", 5),
        ...followFigure("draft", "Invoices Not Approved", 1),
        ...followTile("paid", "Paid Invoices", 2),
        ...followTile("unsettled", "Unsettled Invoices", 3),
        ...followFigure("unpaid", "Unpaid Invoices", 2),
        ...followFigure("partial", "Partially Paid Invoices", 1),
        ...followTile("overdue", "Invoices Overdue", 1),
        ...followFigure("not_due", "Invoices Not Due", 2),
        ...followFigure("due_today", "Invoices Due Today", 0),
        ...followTile("payments", "Payments Received", 4),
        ...followFigure("payments_bank", "Payments Received: Bank or Cash", 3),
        ...followFigure("payments_wallet", "Payments Received: Wallet", 1),
        // The pages: every invoice (the top-up too), payment and schedule.
        ...followTo(".o_billing_goto[data-key='page_invoices']", "Manage Invoices", 7),
        ...followTo(".o_billing_goto[data-key='page_payments']", "Payments Received", 4),
        ...followTo(".o_billing_goto[data-key='page_recurring']", "Recurring Invoices", 2),
        // A latest invoice opens its form.
        {
            content: "Open the reseller customer's invoice",
            trigger: `${DASHBOARD} .o_billing_invoice_row:contains(Dash Reseller Customer)`,
            run: "click",
        },
        {
            content: "Its form is open",
            trigger: ".o_form_view .o_field_widget[name='partner_id']:contains(Dash Reseller Customer)",
        },
        {
            content: "Back to the dashboard",
            trigger: ".o_breadcrumb .breadcrumb-item a:contains(Billing Dashboard)",
            run: "click",
        },
        // The last run opens its form.
        {
            content: "Open the last run",
            trigger: `${DASHBOARD} .o_billing_last_run`,
            run: "click",
        },
        {
            content: "The run's form is open",
            trigger: ".o_form_view .o_field_widget[name='failure_ids'] .o_data_row:contains(Dash Stopped Co)",
        },
        {
            content: "Back to the dashboard",
            trigger: ".o_breadcrumb .breadcrumb-item a:contains(Billing Dashboard)",
            run: "click",
        },
        // Stop and start a schedule from the dashboard.
        {
            content: "Stop the running schedule",
            trigger: `${DASHBOARD} .o_billing_schedule_row:contains(Dash Running Co) .o_billing_schedule_stop`,
            run: "click",
        },
        {
            content: "No schedule running",
            trigger: `${DASHBOARD} .o_billing_recurring_running:contains(/^0$/)`,
        },
        {
            content: "Two stopped",
            trigger: `${DASHBOARD} .o_billing_recurring_stopped:contains(/^2$/)`,
        },
        {
            content: "Start it again",
            trigger: `${DASHBOARD} .o_billing_schedule_row:contains(Dash Running Co) .o_billing_schedule_start`,
            run: "click",
        },
        {
            content: "One schedule running again",
            trigger: `${DASHBOARD} .o_billing_recurring_running:contains(/^1$/)`,
        },
        // The reseller filter narrows the figures to the reseller's customers.
        {
            content: "Filter on the reseller",
            trigger: ".o_billing_filter_reseller",
            run: "selectByLabel Dash Reseller",
        },
        ...checkTile("total", 1, "20.00"),
        ...checkTile("unsettled", 1, "20.00"),
        ...checkTile("paid", 0, "0.00"),
        ...checkTile("payments", 0, "0.00"),
        ...followTile("total", "Invoices", 1),
        {
            content: "The filter is kept on the way back",
            trigger: ".o_billing_filter_reseller:has(option:selected:contains(Dash Reseller))",
        },
        ...checkTile("total", 1, "20.00"),
        {
            content: "All resellers again",
            trigger: ".o_billing_filter_reseller",
            run: "selectByLabel All resellers",
        },
        ...checkTile("total", 6, "330.00"),
        // A custom period without these invoices shows nothing.
        {
            content: "A custom period",
            trigger: ".o_billing_filter_period",
            run: "selectByLabel Custom",
        },
        {
            content: "Starting in 2000",
            trigger: ".o_billing_filter_date_from",
            run() {
                setDate(this.anchor, "2000-01-01");
            },
        },
        {
            content: "Ending in 2000",
            trigger: ".o_billing_filter_date_to",
            run() {
                setDate(this.anchor, "2000-12-31");
            },
        },
        ...checkTile("total", 0, "0.00"),
        {
            content: "This month again",
            trigger: ".o_billing_filter_period",
            run: "selectByLabel This Month",
        },
        ...checkTile("total", 6, "330.00"),
        // Run Now opens the run it made.
        {
            content: "Run the recurring invoices now",
            trigger: `${DASHBOARD} .o_billing_run_now`,
            run: "click",
        },
        {
            content: "The run is open",
            trigger: ".o_form_view .o_field_widget[name='invoice_count']:contains(/^0$/)",
        },
    ],
});
