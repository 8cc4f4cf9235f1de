import {Component, onWillStart, useState} from "@odoo/owl";
import {formatCurrency} from "@web/core/currency";
import {
    deserializeDate,
    deserializeDateTime,
    formatDate,
    formatDateTime,
} from "@web/core/l10n/dates";
import {_t} from "@web/core/l10n/translation";
import {registry} from "@web/core/registry";
import {KeepLast} from "@web/core/utils/concurrency";
import {useService} from "@web/core/utils/hooks";
import {useSetupAction} from "@web/search/action_hook";
import {Layout} from "@web/search/layout";
import {standardActionServiceProps} from "@web/webclient/actions/action_service";

const BADGE_CLASSES = {
    draft: "text-bg-secondary",
    posted: "text-bg-info",
    cancel: "text-bg-light",
    paid: "text-bg-success",
    in_payment: "text-bg-success",
    partial: "text-bg-warning",
    not_paid: "text-bg-info",
    not_due: "text-bg-info",
    due_today: "text-bg-warning",
    overdue: "text-bg-danger",
    running: "text-bg-success",
    stopped: "text-bg-secondary",
    done: "text-bg-success",
    failed: "text-bg-danger",
    interrupted: "text-bg-warning",
    queued: "text-bg-info",
};

const TILE_CLASSES = {
    paid: "text-success",
    unsettled: "text-warning",
    overdue: "text-danger",
    wallet: "text-info",
};

/**
 * The Billing dashboard: the figures of billing.dashboard.get_dashboard_data
 * as tiles and three summary cards; every figure opens the records it counts
 * through billing.dashboard.action_open.
 */
export class BillingDashboard extends Component {
    static template = "prepaid_postpaid_billing.BillingDashboard";
    static components = {Layout};
    static props = {...standardActionServiceProps};

    setup() {
        this.orm = useService("orm");
        this.action = useService("action");
        this.keepLast = new KeepLast();
        // The filters come back with the dashboard when a breadcrumb leads to it.
        this.state = useState({data: null, filters: {...(this.props.state?.filters || {})}});
        useSetupAction({getLocalState: () => ({filters: {...this.state.filters}})});
        onWillStart(() => this.load());
    }

    get data() {
        return this.state.data;
    }

    get filters() {
        return this.state.filters;
    }

    async load() {
        const data = await this.keepLast.add(
            this.orm.call("billing.dashboard", "get_dashboard_data", [this.state.filters])
        );
        this.state.filters = {...data.filters};
        this.state.data = data;
    }

    // -------------------------------------------------------------------------
    // Filters
    // -------------------------------------------------------------------------

    onFilterChange(name, value) {
        this.state.filters[name] = value;
        if (name === "period" && value !== "custom") {
            delete this.state.filters.date_from;
            delete this.state.filters.date_to;
        }
        const {period, date_from, date_to} = this.state.filters;
        if (period === "custom" && !(date_from && date_to)) {
            return;
        }
        return this.load();
    }

    onPeriodChange(ev) {
        return this.onFilterChange("period", ev.target.value);
    }

    onDateChange(name, ev) {
        return this.onFilterChange(name, ev.target.value || false);
    }

    onCompanyChange(ev) {
        // The resellers offered depend on the company.
        this.state.filters.reseller_id = false;
        return this.onFilterChange("company_id", parseInt(ev.target.value, 10));
    }

    onResellerChange(ev) {
        return this.onFilterChange("reseller_id", parseInt(ev.target.value, 10) || false);
    }

    // -------------------------------------------------------------------------
    // Actions
    // -------------------------------------------------------------------------

    async openKey(key) {
        const action = await this.orm.call("billing.dashboard", "action_open", [
            key,
            this.state.filters,
        ]);
        return this.action.doAction(action);
    }

    openRecord(resModel, resId) {
        return this.action.doAction({
            type: "ir.actions.act_window",
            res_model: resModel,
            res_id: resId,
            views: [[false, "form"]],
        });
    }

    async toggleSchedule(schedule) {
        const method = schedule.state === "running" ? "action_stop" : "action_start";
        await this.orm.call("billing.recurring", method, [[schedule.id]]);
        return this.load();
    }

    async runNow() {
        const action = await this.orm.call("billing.recurring", "action_run_now", []);
        return this.action.doAction(action);
    }

    // -------------------------------------------------------------------------
    // Formatting
    // -------------------------------------------------------------------------

    formatAmount(amount) {
        return formatCurrency(amount || 0, this.state.data.currency_id);
    }

    formatDate(value) {
        return value ? formatDate(deserializeDate(value)) : "";
    }

    formatDateTime(value) {
        return value ? formatDateTime(deserializeDateTime(value)) : "";
    }

    tileClass(tile) {
        return (tile.amount && TILE_CLASSES[tile.key]) || "";
    }

    badgeClass(key) {
        return BADGE_CLASSES[key] || "text-bg-light";
    }

    get allResellersLabel() {
        return _t("All resellers");
    }
}

registry.category("actions").add("prepaid_postpaid_billing.billing_dashboard", BillingDashboard);
