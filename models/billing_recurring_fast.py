from collections import defaultdict
from datetime import datetime, time

from odoo import Command, api, fields, models
from odoo.exceptions import UserError
from odoo.models import LOG_ACCESS_COLUMNS, SQL_DEFAULT
from odoo.tools import SQL, clean_context, float_repr, float_round, frozendict

from .billing_precomputed import COMPUTED_KEY, DYNAMIC_LINE_SEQUENCES, PRECOMPUTED_KEY

# Keys of the product line values the precomputed create takes as they are.
FAST_LINE_KEYS = {
    "product_id",
    "name",
    "quantity",
    "price_unit",
    "discount",
    "sequence",
    "analytic_distribution",
}
# Keys of the invoice values the precomputed create takes as they are.
FAST_MOVE_KEYS = {
    "move_type",
    "journal_id",
    "name",
    "partner_id",
    "company_id",
    "invoice_date",
    "invoice_origin",
    "narration",
    "billing_recurring_id",
    "billing_period_start",
    "billing_period_end",
    "billing_customer_notes",
    "invoice_line_ids",
}
# The modules whose overrides of account.move.line's creation the set-based
# insert of the precomputed lines does what they do (None: odoo.models). With
# another module's override, the lines are created by the ORM.
KNOWN_CREATE_MODULES = {None, "account", "analytic", "prepaid_postpaid_billing"}
CREATE_METHODS = (
    "create",
    "_create",
    "_prepare_create_values",
    "_add_missing_default_values",
    "_add_precomputed_values",
    "_sanitize_vals",
    "_sanitize_values",
)
LINES_PER_INSERT = 1000


class BillingRecurring(models.Model):
    _inherit = "billing.recurring"

    # -------------------------------------------------------------------------
    # PRECOMPUTED INVOICES
    # -------------------------------------------------------------------------

    @api.model
    def _billing_create_invoices(self, vals_list):
        """Create the customer invoices ``vals_list`` (values of
        ``account.move.create`` whose ``invoice_line_ids`` create product
        lines), the same as Odoo's ordinary ``create`` makes them: their tax,
        payment term lines and due dates computed per batch with Odoo's tax
        helpers, as ``_sync_tax_lines`` and ``_compute_needed_terms`` compute
        them, then created with Odoo's synchronisation of those lines skipped
        and checked balanced. An invoice that cannot be precomputed exactly
        (see ``_billing_precompute_invoice``) is created the ordinary way.
        Returns the invoices, in the order of ``vals_list``."""
        Move = self.env["account.move"].with_context(
            default_move_type="out_invoice", tracking_disable=True
        )
        # The customers, their delivery addresses and the products of the
        # batch, read together.
        partners = self.env["res.partner"].browse(
            {vals.get("partner_id") for vals in vals_list} - {None, False}
        )
        delivery_ids = {
            partner.id: partner.address_get(["delivery"])["delivery"]
            for partner in partners
        }
        deliveries = {
            delivery.id: delivery
            for delivery in self.env["res.partner"].browse(set(delivery_ids.values()))
        }
        cache = {
            "partners": {partner.id: partner for partner in partners},
            "deliveries": {
                partner_id: deliveries[delivery_id]
                for partner_id, delivery_id in delivery_ids.items()
            },
            "products": {
                product.id: product
                for product in self.env["product.product"].browse(
                    {
                        command[2].get("product_id")
                        for vals in vals_list
                        for command in vals.get("invoice_line_ids", [])
                        if command[0] == Command.CREATE
                    }
                    - {None, False}
                )
            },
        }
        fast, slow = [], []
        for index, vals in enumerate(vals_list):
            precomputed = self._billing_precompute_invoice(vals, cache)
            if precomputed is None:
                slow.append((index, vals))
            else:
                fast.append((index, precomputed))
        ids = [None] * len(vals_list)
        if fast:
            created = self._billing_create_precomputed(
                Move, [vals for _index, vals in fast]
            )
            # The balance check the synchronisation skipped, on the created moves.
            with Move._check_balanced({"records": Move.browse(created.ids)}):
                pass
            for (index, _vals), move in zip(fast, created, strict=True):
                ids[index] = move.id
        if slow:
            created = Move.create([vals for _index, vals in slow])
            for (index, _vals), move in zip(slow, created, strict=True):
                ids[index] = move.id
        return Move.browse(ids)

    @api.model
    def _billing_create_precomputed(self, Move, vals_list):
        """Create the precomputed invoices ``vals_list`` with Odoo's
        synchronisation of their lines skipped: the invoices by the ORM and
        their lines set-based (see ``_billing_insert_lines``), or all by the
        ORM when another module takes part in creating lines or a line has a
        field to compute first."""
        Move = Move.with_context(
            skip_invoice_sync=True,
            skip_invoice_line_sync=True,
            check_move_validity=False,
        )
        rows_list = (
            self._billing_prepare_line_rows(vals_list)
            if self._billing_insert_supported()
            else None
        )
        if rows_list is None:
            return Move.create(vals_list)
        moves = Move.create(
            [
                {
                    key: value
                    for key, value in vals.items()
                    if key not in ("invoice_line_ids", "line_ids")
                }
                for vals in vals_list
            ]
        )
        self._billing_insert_lines(moves, rows_list, vals_list)
        return moves

    @api.model
    def _billing_precompute_invoice(self, vals, cache):
        """Values of ``account.move.create`` for the invoice ``vals`` with all
        its lines: the product lines with their accounts, taxes, tags and
        amounts, the tax lines and the payment term lines; its fiscal position,
        payment terms and due date. ``None`` when it cannot be precomputed
        exactly: not a customer invoice of product lines in the company
        currency, cash rounding, a mixed early payment discount (which adds
        lines of its own), analytic distributions to compute, cash basis
        taxes, a product without an income account."""
        if set(vals) - FAST_MOVE_KEYS or vals.get("move_type") != "out_invoice":
            return None
        company = self.env["res.company"].browse(vals["company_id"])
        if company != self.env.company:
            return None
        currency = company.currency_id
        journal = self.env["account.journal"].browse(vals["journal_id"])
        if journal.currency_id and journal.currency_id != currency:
            return None
        partner = cache.get("partners", {}).get(vals["partner_id"]) or self.env[
            "res.partner"
        ].browse(vals["partner_id"])
        fiscal_position, term, delivery = self._billing_partner_accounting(
            partner, cache
        )
        if term.early_discount and term.early_pay_discount_computation == "mixed":
            return None
        AccountTax = self.env["account.tax"]
        commercial = partner.commercial_partner_id
        sign = -1  # account.move.direction_sign of a customer invoice
        line_vals, base_lines = [], []
        for command in vals["invoice_line_ids"]:
            if command[0] != Command.CREATE:
                return None
            line = command[2]
            if (
                set(line) - FAST_LINE_KEYS
                or line.get("analytic_distribution", True) is not False
                or not line.get("product_id")
            ):
                return None
            product = cache.get("products", {}).get(line["product_id"]) or self.env[
                "product.product"
            ].browse(line["product_id"])
            accounting = self._billing_product_accounting(
                product, fiscal_position, company, cache
            )
            if accounting is None:
                return None
            account, taxes = accounting
            line_vals.append(
                {
                    **line,
                    "display_type": "product",
                    "account_id": account.id,
                    "tax_ids": [Command.set(taxes.ids)],
                    "product_uom_id": product.uom_id.id,
                    "tax_tag_invert": bool(taxes),
                }
            )
            base_lines.append(
                AccountTax._prepare_base_line_for_taxes_computation(
                    None,
                    product_id=product,
                    tax_ids=taxes,
                    price_unit=line.get("price_unit", 0.0),
                    quantity=line.get("quantity", 1.0),
                    discount=line.get("discount", 0.0),
                    currency_id=currency,
                    rate=1.0,
                    sign=sign,
                    is_refund=False,
                    # account.move.line.tax_tag_invert of a customer invoice line
                    tax_tag_invert=bool(taxes),
                    partner_id=commercial,
                    account_id=account,
                    analytic_distribution=False,
                )
            )
        if not line_vals:
            return None
        AccountTax._add_tax_details_in_base_lines(base_lines, company)
        AccountTax._round_base_lines_tax_details(base_lines, company)
        # account.move.always_tax_exigible is False on invoices.
        AccountTax._add_accounting_data_in_base_lines_tax_details(
            base_lines, company, include_caba_tags=False
        )
        tax_results = AccountTax._prepare_tax_lines(base_lines, company)
        untaxed = tax = 0.0
        for (base_line, to_update), line in zip(
            tax_results["base_lines_to_update"], line_vals, strict=True
        ):
            line.update(to_update)
            untaxed += to_update["amount_currency"]
            # account.move.line's _compute_totals (the line's own tax details).
            tax_details = base_line["tax_details"]
            line[COMPUTED_KEY] = {
                "price_subtotal": tax_details["raw_total_excluded_currency"],
                "price_total": tax_details["raw_total_included_currency"],
            }
        tax_line_vals = []
        for tax_line in tax_results["tax_lines_to_add"]:
            tax_line_id = self._billing_repartition_tax(
                tax_line["tax_repartition_line_id"], cache
            )
            tax_line_vals.append(
                {
                    **tax_line,
                    "display_type": "tax",
                    "tax_line_id": tax_line_id.id,
                    "tax_group_id": tax_line_id.tax_group_id.id,
                    "tax_tag_invert": True,
                }
            )
            tax += tax_line["amount_currency"]
        # As account.move's amount_untaxed and amount_tax hold them, rounded.
        untaxed = currency.round(sign * untaxed)
        tax = currency.round(sign * tax)
        invoice_date = vals["invoice_date"]
        term_vals = self._billing_term_line_vals(
            term, currency, company, fields.Date.to_date(invoice_date), untaxed, tax
        )
        if term_vals is None:
            return None
        self._billing_complete_lines(
            (*line_vals, *tax_line_vals, *term_vals),
            vals["journal_id"],
            commercial,
            fiscal_position,
            term,
            cache,
        )
        return {
            **vals,
            # What account.move's precomputed fields would be.
            PRECOMPUTED_KEY: {
                "date": fields.Date.to_date(invoice_date),
                "partner_shipping_id": delivery.id,
                "fiscal_position_id": fiscal_position.id,
                "invoice_payment_term_id": term.id,
                "currency_id": currency.id,
                "invoice_currency_rate": 1.0,  # the company currency's
            },
            "invoice_date_due": max(line["date_maturity"] for line in term_vals),
            "invoice_line_ids": [],
            "line_ids": [
                Command.create(line)
                for line in (*line_vals, *tax_line_vals, *term_vals)
            ],
        }

    @api.model
    def _billing_complete_lines(
        self, lines, journal_id, commercial, fiscal_position, term, cache
    ):
        """Complete the values ``lines`` of an invoice's lines (of the current
        company, in its currency) with what account.move.line's computes and
        related fields would give them, so that they are not computed again
        (the equality test compares every stored field); its precomputed
        fields under ``PRECOMPUTED_KEY`` (see ``billing_add_precomputed``)."""
        company = self.env.company
        currency = company.currency_id
        common = {"currency_id": currency.id, "partner_id": commercial.id}
        related = {
            "company_id": company.id,
            "company_currency_id": currency.id,
            "journal_id": journal_id,
            "tax_line_id": False,
            "tax_group_id": False,
        }
        # account.move.line's _compute_sequence, _compute_quantity,
        # _compute_product_uom_id and _compute_price_unit of a line of no product.
        dynamic = {"product_uom_id": False, "quantity": 0.0, "price_unit": 0.0}
        receivable = self._billing_receivable_account(
            commercial, fiscal_position, company, cache
        )
        for line in lines:
            line.update(common)
            line.setdefault("tax_tag_invert", False)
            precomputed = line[PRECOMPUTED_KEY] = {
                **related,
                **{
                    key: line.pop(key)
                    for key in ("tax_line_id", "tax_group_id")
                    if key in line
                },
            }
            if not company.account_storno:
                # account.move.line's _sanitize_vals drops them from values
                # with a balance: precomputed.
                precomputed["debit"] = max(0.0, line["balance"])
                precomputed["credit"] = max(0.0, -line["balance"])
            if line["display_type"] != "product":
                precomputed.update(dynamic)
                line[COMPUTED_KEY] = {"price_subtotal": 0.0, "price_total": 0.0}
                precomputed["sequence"] = DYNAMIC_LINE_SEQUENCES[line["display_type"]]
            if (
                line["display_type"] == "payment_term"
                and receivable
                and len(term.line_ids) <= 1
            ):
                # _compute_name of the line of a payment term of one line (the
                # invoice has no reference yet), _compute_account_id and
                # _compute_tax_ids of a payment term line; the names of the
                # lines of several are numbered: the ORM computes them.
                precomputed.update(
                    {
                        "name": "",
                        "account_id": receivable.id,
                        "tax_ids": [Command.set([])],
                    }
                )

    @api.model
    def _billing_term_line_vals(
        self, term, currency, company, invoice_date, untaxed, tax
    ):
        """Payment term lines of an invoice of ``untaxed`` and ``tax`` (in
        ``currency``, the company's) dated ``invoice_date``, as
        ``account.move._compute_needed_terms`` and ``_sync_dynamic_line`` make
        them: without payment terms, one line due the day the invoice is
        created on (``invoice_date_due``'s default). ``None`` when a line would
        be of nothing, which the ordinary create handles."""
        if not term:
            total = currency.round(untaxed + tax)
            return [
                {
                    "display_type": "payment_term",
                    "date_maturity": fields.Date.context_today(self),
                    "discount_date": False,
                    "discount_balance": 0.0,
                    "discount_amount_currency": 0.0,
                    "balance": total,
                    "amount_currency": total,
                }
            ]
        terms = term._compute_terms(
            date_ref=invoice_date,
            currency=currency,
            tax_amount_currency=tax,
            tax_amount=tax,
            untaxed_amount_currency=untaxed,
            untaxed_amount=untaxed,
            company=company,
            cash_rounding=self.env["account.cash.rounding"],
            sign=1,
        )
        needed = {}
        for term_line in terms["line_ids"]:
            key = frozendict(
                {
                    "date_maturity": fields.Date.to_date(term_line.get("date")),
                    "discount_date": terms.get("discount_date"),
                }
            )
            values = {
                "balance": term_line["company_amount"],
                "amount_currency": term_line["foreign_amount"],
                "discount_date": terms.get("discount_date"),
                "discount_balance": terms.get("discount_balance") or 0.0,
                "discount_amount_currency": terms.get("discount_amount_currency")
                or 0.0,
            }
            if key not in needed:
                needed[key] = values
            else:
                needed[key]["balance"] += values["balance"]
                needed[key]["amount_currency"] += values["amount_currency"]
        lines = []
        for key, values in needed.items():
            if currency.is_zero(values["balance"]) and currency.is_zero(
                values["amount_currency"]
            ):
                # _sync_dynamic_line_needed_values drops lines of nothing only
                # when they sum to nothing; keep it simple: ordinary create.
                return None
            lines.append(
                {
                    **key,
                    **values,
                    "balance": currency.round(values["balance"]),
                    "amount_currency": currency.round(values["amount_currency"]),
                    "display_type": "payment_term",
                }
            )
        return lines

    @api.model
    def _billing_receivable_account(self, commercial, fiscal_position, company, cache):
        """The receivable account of the payment term lines of a new invoice of
        the commercial partner ``commercial`` with ``fiscal_position``
        (account.move.line's ``_compute_account_id``, which looks first for
        the invoice's earlier payment term lines: a new invoice has none);
        empty when neither the partner nor the company has one (the ORM then
        computes it)."""
        key = ("receivable", commercial.id, fiscal_position.id)
        if key not in cache:
            account = (
                commercial.with_company(company).property_account_receivable_id
                or company.partner_id.with_company(
                    company
                ).property_account_receivable_id
            )
            if account and fiscal_position:
                account = fiscal_position.map_account(account)
            cache[key] = account
        return cache[key]

    @api.model
    def _billing_repartition_tax(self, repartition_line_id, cache):
        """The tax of the tax repartition line ``repartition_line_id``."""
        key = ("repartition", repartition_line_id)
        if key not in cache:
            cache[key] = (
                self.env["account.tax.repartition.line"]
                .browse(repartition_line_id)
                .tax_id
            )
        return cache[key]

    @api.model
    def _billing_partner_accounting(self, partner, cache):
        """The fiscal position, payment terms and delivery address the ordinary
        create gives an invoice of ``partner`` in the current company
        (account.move's ``_compute_fiscal_position_id``,
        ``_compute_invoice_payment_term_id`` and ``_compute_partner_shipping_id``)."""
        key = ("partner", partner.id)
        if key not in cache:
            company = self.env.company
            delivery = cache.get("deliveries", {}).get(partner.id) or self.env[
                "res.partner"
            ].browse(partner.address_get(["delivery"])["delivery"])
            fiscal_position = (
                self.env["account.fiscal.position"]
                .with_company(company)
                ._get_fiscal_position(partner, delivery=delivery)
            )
            cache[key] = (fiscal_position, partner.property_payment_term_id, delivery)
        return cache[key]

    @api.model
    def _billing_product_accounting(self, product, fiscal_position, company, cache):
        """The income account and taxes of an invoice line of ``product`` with
        ``fiscal_position`` (account.move.line's ``_compute_account_id`` and
        ``_get_computed_taxes``); ``None`` when the product has no income
        account, or has cash basis taxes."""
        key = ("product", product.id, fiscal_position.id)
        if key not in cache:
            accounts = product.with_company(
                company
            ).product_tmpl_id.get_product_accounts(fiscal_pos=fiscal_position)
            account = accounts["income"]
            if not account:
                cache[key] = None
                return None
            Tax = self.env["account.tax"]
            taxes = product.taxes_id.filtered_domain(
                Tax._check_company_domain(company)
            ) or account.tax_ids.filtered(lambda tax: tax.type_tax_use == "sale")
            if taxes:
                taxes = taxes._filter_taxes_by_company(company)
            if taxes and fiscal_position:
                taxes = fiscal_position.map_tax(taxes)
            if any(
                tax.tax_exigibility == "on_payment"
                for tax in taxes.flatten_taxes_hierarchy()
            ):
                cache[key] = None
            else:
                cache[key] = (account, taxes)
        return cache[key]

    # -------------------------------------------------------------------------
    # POSTING
    # -------------------------------------------------------------------------

    @api.model
    def _billing_post_invoices(self, invoices):
        """Post the draft ``invoices`` together, as ``action_post`` does, with
        what ``account.move._post`` looks up one invoice at a time done for the
        batch first: the customer of each invoice made a follower of it (as
        ``_post``'s ``message_subscribe`` does: active customers only, with the
        default subtypes of invoices, the external ones for customers without
        an internal user), and the tags of the lines read together. So the
        queries of a batch grow with its invoices only by those of their
        numbers."""
        if not invoices:
            return invoices
        invoices.check_access("write")
        customers = invoices.partner_id.filtered("active")
        if customers:
            default, _internal, external = self.env[
                "mail.message.subtype"
            ].default_subtypes("account.move")
            shared = set(customers.filtered("partner_share").ids)
            following = {
                (follower.res_id, follower.partner_id.id)
                for follower in invoices.sudo().message_follower_ids
            }
            vals_list = [
                {
                    "res_model": "account.move",
                    "res_id": invoice.id,
                    "partner_id": invoice.partner_id.id,
                    "subtype_ids": [
                        Command.set(
                            (
                                external if invoice.partner_id.id in shared else default
                            ).ids
                        )
                    ],
                }
                for invoice in invoices
                if invoice.partner_id in customers
                and (invoice.id, invoice.partner_id.id) not in following
            ]
            # sudo: followers are written by the mail thread in sudo too; the
            # user was checked above to be allowed to write the invoices.
            self.env["mail.followers"].sudo().create(vals_list)
        invoices.line_ids.mapped("tax_tag_ids")
        invoices.action_post()
        return invoices

    # -------------------------------------------------------------------------
    # CHARGES OF THE LINES
    # -------------------------------------------------------------------------

    @api.model
    def _billing_link_charges(self, links):
        """Mark invoiced, with one set-based UPDATE, the pending charges the
        usage lines ``links`` bill: ``(line id, period, group)``, the group as
        ``_billing_charge_groups`` gives it (product, unit price, quantity,
        amount, (count, service, service period start)). Raise when the
        charges updated are not exactly those the lines were made of (a charge
        that changed or arrived meanwhile), so that the caller's transaction
        is rolled back. Returns the number of charges."""
        if not links:
            return 0
        columns = defaultdict(list)
        expected = {}
        for line_id, period, group in links:
            product_id, price, quantity, amount, (count, service_id, start) = group[:5]
            columns["lines"].append(line_id)
            columns["partners"].append(
                period["recurring"].partner_id.commercial_partner_id.id
            )
            columns["starts"].append(
                None if period["first"] else datetime.combine(period["start"], time.min)
            )
            columns["ends"].append(datetime.combine(period["invoice_date"], time.min))
            columns["products"].append(product_id)
            columns["prices"].append(price)
            columns["services"].append(service_id)
            columns["service_starts"].append(start)
            expected[line_id] = (count, quantity, amount)
        self.env["billing.charge"].flush_model()
        self.env.cr.execute(
            SQL(
                """
                WITH v AS (
                    SELECT * FROM unnest(
                        %(lines)s::int4[], %(partners)s::int4[],
                        %(starts)s::timestamp[], %(ends)s::timestamp[],
                        %(products)s::int4[], %(prices)s::numeric[],
                        %(services)s::int4[], %(service_starts)s::date[]
                    ) AS v(line_id, partner_id, date_start, date_end, product_id,
                           price_unit, service_id, service_period_start)
                ), updated AS (
                    UPDATE billing_charge c
                       SET state = 'invoiced', invoice_line_id = v.line_id,
                           write_uid = %(uid)s,
                           write_date = NOW() AT TIME ZONE 'UTC'
                      FROM v
                     WHERE c.partner_id = v.partner_id
                       AND c.state = 'pending'
                       AND c.company_id = %(company)s
                       AND c.date < v.date_end
                       AND (v.date_start IS NULL OR c.date >= v.date_start)
                       AND c.product_id = v.product_id
                       AND c.price_unit = v.price_unit
                       AND c.service_id IS NOT DISTINCT FROM v.service_id
                       AND c.service_period_start
                           IS NOT DISTINCT FROM v.service_period_start
                 RETURNING c.invoice_line_id, c.quantity, c.amount
                )
                SELECT invoice_line_id, COUNT(*), SUM(quantity), SUM(amount)
                  FROM updated
              GROUP BY invoice_line_id
                """,
                uid=self.env.uid,
                company=self.env.company.id,
                **columns,
            )
        )
        updated = {
            line_id: (count, quantity, amount)
            for line_id, count, quantity, amount in self.env.cr.fetchall()
        }
        if updated != expected:
            raise UserError(
                self.env._(
                    "Usage records changed while they were being invoiced; nothing "
                    "was invoiced, try again."
                )
            )
        self.env["billing.charge"].invalidate_model(["state", "invoice_line_id"])
        self.env["account.move.line"].invalidate_model(["billing_charge_ids"])
        return sum(count for count, _quantity, _amount in expected.values())

    # -------------------------------------------------------------------------
    # SET-BASED LINES
    # -------------------------------------------------------------------------

    @api.model
    def _billing_insert_supported(self):
        """Whether account.move.line's creation is only what the known modules
        make of it (see ``_billing_insert_lines``)."""
        cls = type(self.env["account.move.line"])
        return all(
            getattr(klass, "_module", None) in KNOWN_CREATE_MODULES
            for name in CREATE_METHODS
            for klass in cls.__mro__
            if name in vars(klass) and klass is not object
        )

    @api.model
    def _billing_prepare_line_rows(self, vals_list):
        """The values of the new lines of the precomputed invoices
        ``vals_list`` as account.move.line's ``create`` completes them before
        it inserts them (sanitized, their precomputed fields given, defaults):
        one list per invoice, ``None`` when a line lacks a precomputed field
        (the ORM computes it) or has other commands than a plain set."""
        Line = self.env["account.move.line"].with_context(
            clean_context(self.env.context)
        )
        precision = self.env["decimal.precision"].precision_get("Percentage Analytic")
        precomputed = [name for name, field in Line._fields.items() if field.precompute]
        rows_list = []
        missing = set()
        for vals in vals_list:
            rows = []
            for command in vals["line_ids"]:
                row = Line._sanitize_values(
                    Line._sanitize_vals(dict(command[2])), precision
                )
                row.update(row.pop(PRECOMPUTED_KEY, {}))
                row.update(row.pop(COMPUTED_KEY, {}))
                if any(name not in row for name in precomputed):
                    return None
                for name, value in row.items():
                    field = Line._fields[name]
                    if field.type == "one2many" or (
                        field.type == "many2many"
                        and not all(c[0] == Command.SET for c in value)
                    ):
                        return None
                missing.update(name for name in Line._fields if name not in row)
                rows.append(row)
            rows_list.append(rows)
        bad_names = {"id", "parent_path", *LOG_ACCESS_COLUMNS}
        defaults = Line.default_get(sorted(missing - bad_names))
        if any(
            Line._fields[name].type in ("one2many", "many2many", "properties")
            for name in defaults
        ):
            return None
        for rows in rows_list:
            for row in rows:
                for name, value in defaults.items():
                    row.setdefault(name, value)
                if any(
                    not (field := Line._fields[name]).store and field.inverse
                    for name in row
                ):
                    return None  # an inverse to call: the ORM's create
        return rows_list

    @api.model
    def _billing_cache_lines(self, lines, rows, many2many):
        """Put the new ``lines`` in the cache as BaseModel._create does: the
        values ``rows`` of their stored fields (of many2many fields in the
        order given), nothing in their one2many fields nor in the stored
        fields not given and not computed, and themselves in the one2many
        fields of their many2one fields' values (their invoices' lines). Field
        by field, the values converted as ``_billing_converter`` does."""
        cache = self.env.cache
        line_ids = lines.ids
        inverses = defaultdict(list)
        for field in lines._fields.values():
            if field.type in ("one2many", "many2many"):
                cache.update(lines, field, [()] * len(line_ids))
                continue
            given = field.store and any(field.name in row for row in rows)
            empty = None
            if (field.related and not field.column_type) or (
                field.store and not field.compute
            ):
                empty = field.convert_to_cache(None, lines[:1])
            if not given and empty is None:
                continue
            convert = given and self._billing_converter(field, lines, "cache")
            ids, values = [], []
            for line_id, row in zip(line_ids, rows, strict=True):
                if given and field.name in row:
                    ids.append(line_id)
                    values.append(convert(row[field.name], row))
                elif empty is not None and (not field.store or field.name not in row):
                    ids.append(line_id)
                    values.append(empty)
            cache.update(lines.browse(ids), field, values)
            if given and field.type == "many2one" and self.pool.field_inverses[field]:
                for line_id, value in zip(ids, values, strict=True):
                    inverses[(field, value)].append(line_id)
        for field in many2many:
            cache.update(
                lines,
                field,
                [
                    tuple(
                        dict.fromkeys(
                            value_id
                            for command in row.get(field.name) or ()
                            for value_id in command[2]
                        )
                    )
                    for row in rows
                ],
            )
        # Once the lines are in the cache (the domains of one2many fields, such
        # as invoice_line_ids', read them).
        for (field, value), value_line_ids in inverses.items():
            field._update_inverses(lines.browse(value_line_ids), value)

    @api.model
    def _billing_converter(self, field, records, target):
        """``convert(value, row)``: ``field.convert_to_column_insert`` (target
        "column") or ``field.convert_to_cache`` (target "cache") of a line's
        value, as the ORM converts it, with the decimal precision of floats and
        the currencies of amounts looked up once (the ORM looks them up value
        by value, making a new record of each amount's currency)."""
        record = records[:1]
        if field.company_dependent or field.type not in ("float", "monetary"):
            if target == "column":
                return lambda value, row: field.convert_to_column_insert(
                    value, record, row
                )
            return lambda value, row: field.convert_to_cache(value, record)
        if field.type == "float":
            digits = field.get_digits(self.env)
            scale = digits[1] if digits else None

            def convert_float(value, row):
                value = float(value or 0.0)
                if scale is None:
                    return value
                value = float_round(value, precision_digits=scale)
                return float_repr(value, scale) if target == "column" else value

            return convert_float
        currency_field = field.get_currency_field(records)
        currencies = {}

        def convert_monetary(value, row):
            if currency_field not in row:
                if target == "column":
                    return field.convert_to_column_insert(value, record, row)
                return field.convert_to_cache(value, record)
            currency_id = row[currency_field]
            if currency_id not in currencies:
                currencies[currency_id] = self.env["res.currency"].browse(currency_id)
            currency = currencies[currency_id]
            value = float(value or 0.0)
            if not currency or (target == "cache" and not value):
                return value
            value = currency.round(value)
            return (
                float_repr(value, currency.decimal_places)
                if target == "column"
                else value
            )

        return convert_monetary

    @api.model
    def _billing_residual_values(self, row):
        """account.move.line's _compute_amount_residual of a new line (of no
        partial reconciliation) of the values ``row``."""
        account = self.env["account.account"].browse(row["account_id"])
        if not (
            account.reconcile
            or account.account_type in ("asset_cash", "liability_credit_card")
        ):
            return {
                "amount_residual": 0.0,
                "amount_residual_currency": 0.0,
                "reconciled": False,
            }
        company_currency = (
            self.env["res.currency"].browse(row["company_currency_id"])
            or self.env.company.currency_id
        )
        currency = (
            self.env["res.currency"].browse(row["currency_id"]) or company_currency
        )
        residual = company_currency.round(row["balance"])
        residual_currency = currency.round(row["amount_currency"])
        return {
            "amount_residual": residual,
            "amount_residual_currency": residual_currency,
            "reconciled": company_currency.is_zero(residual)
            and currency.is_zero(residual_currency),
        }

    @api.model
    def _billing_insert_lines(self, moves, rows_list, move_vals_list):
        """Insert the lines ``rows_list`` (``_billing_prepare_line_rows``) of
        the new invoices ``moves`` as account.move.line's ``create`` does it,
        set-based: one INSERT of the rows and one of each many2many's, then
        what ``create`` does of the new lines (the computed fields that depend
        on them marked to compute, the given ones protected; constraints,
        companies, lock dates, accounts and journals checked); the inverses of
        the given fields, no-ops on new draft invoice lines whose values agree,
        are not called. Returns the lines."""
        Line = self.env["account.move.line"].with_context(
            clean_context(self.env.context)
        )
        Line.check_access("create")
        now = self.env.cr.now()
        # The stored fields related to the invoice (date, state, number...),
        # and the residual amounts of new lines, as their computes give them.
        related = [
            (name, field.related.split(".")[1:])
            for name, field in Line._fields.items()
            if field.store and field.related and field.related.startswith("move_id.")
        ]
        computed = {
            *(name for name, _path in related),
            *(
                field.name
                for fname in ("amount_residual", "price_subtotal")
                for field in self.pool.field_computed[Line._fields[fname]]
            ),
        }
        rows = []
        for move, move_rows in zip(moves, rows_list, strict=True):
            move_values = {}
            for name, path in related:
                value = move
                for step in path:
                    value = value[step]
                move_values[name] = Line._fields[name].convert_to_write(value, Line)
            for row in move_rows:
                rows.append(
                    {
                        **move_values,
                        **row,
                        **self._billing_residual_values(row),
                        "move_id": move.id,
                        "create_uid": self.env.uid,
                        "create_date": now,
                        "write_uid": self.env.uid,
                        "write_date": now,
                    }
                )
        names = sorted({name for row in rows for name in row})
        columns = [
            name
            for name in names
            if Line._fields[name].store and Line._fields[name].column_type
        ]
        many2many = [
            Line._fields[name]
            for name in names
            if Line._fields[name].type == "many2many"
        ]
        converters = {
            name: self._billing_converter(Line._fields[name], Line, "column")
            for name in columns
        }
        ids = []
        for start in range(0, len(rows), LINES_PER_INSERT):
            chunk = rows[start : start + LINES_PER_INSERT]
            values = [
                tuple(
                    converters[name](row[name], row) if name in row else SQL_DEFAULT
                    for name in columns
                )
                for row in chunk
            ]
            self.env.cr.execute(
                SQL(
                    'INSERT INTO "account_move_line" (%s) VALUES %s RETURNING "id"',
                    SQL(", ").join(map(SQL.identifier, columns)),
                    SQL(", ").join(values),
                )
            )
            ids.extend(id_ for (id_,) in self.env.cr.fetchall())
        for field in many2many:
            pairs = [
                (line_id, value_id)
                for line_id, row in zip(ids, rows, strict=True)
                for command in row.get(field.name) or ()
                for value_id in command[2]
            ]
            if pairs:
                self.env.cr.execute(
                    SQL(
                        "INSERT INTO %s (%s, %s) SELECT * FROM unnest(%s::int4[],"
                        " %s::int4[]) ON CONFLICT DO NOTHING",
                        SQL.identifier(field.relation),
                        SQL.identifier(field.column1),
                        SQL.identifier(field.column2),
                        [pair[0] for pair in pairs],
                        [pair[1] for pair in pairs],
                    )
                )
        lines = Line.browse(ids)
        self._billing_cache_lines(lines, rows, many2many)
        # As BaseModel.create protects the fields given (editable computed and
        # precomputed fields) and _create marks what depends on the new records.
        protected = {}
        for line, row in zip(lines, rows, strict=True):
            fields_ = frozenset(
                computed_field
                for name in row
                if (field := Line._fields[name]).compute
                and (not field.readonly or field.precompute or name in computed)
                for computed_field in self.pool.field_computed.get(field, [field])
            )
            protected.setdefault(fields_, []).append(line.id)
        # The lines are created inside their invoices' create in the ORM: what
        # it protects of the invoices (their editable computed and precomputed
        # fields given or defaulted) is protected too.
        protected_moves = {}
        for move, vals in zip(moves, move_vals_list, strict=True):
            names = frozenset(
                {*vals, *vals.get(PRECOMPUTED_KEY, {})}
                - {PRECOMPUTED_KEY, "line_ids", "invoice_line_ids"}
            )
            protected_moves.setdefault(names, []).append(move.id)
        protecting = [
            (fields_, Line.browse(line_ids)) for fields_, line_ids in protected.items()
        ]
        for names, move_ids in protected_moves.items():
            defaults = moves.default_get(
                [name for name in moves._fields if name not in names]
            )
            protecting.append(
                (
                    frozenset(
                        computed_field
                        for name in {*names, *defaults}
                        if (field := moves._fields[name]).compute
                        and (not field.readonly or field.precompute)
                        for computed_field in self.pool.field_computed.get(
                            field, [field]
                        )
                    ),
                    moves.browse(move_ids),
                )
            )
        with self.env.protecting(protecting):
            lines.modified(Line._fields, create=True)
        lines._validate_fields(names)
        lines.check_access("create")  # the record rules, as _create checks them
        self._billing_check_company(lines)
        lines._check_tax_lock_date()
        lines._check_constrains_account_id_journal_id()
        return lines

    @api.model
    def _billing_check_company(self, lines):
        """``lines._check_company()``, value by value instead of line by line:
        the records the lines of a company name in a field checked once each
        against it; when one does not belong, Odoo's own check runs, and says
        which (of a many2many, Odoo refuses a line only when none of its values
        belongs: that check decides)."""
        names = [
            name
            for name, field in lines._fields.items()
            if field.relational and field.check_company
        ]
        if any(lines._fields[name].company_dependent for name in names):
            lines._check_company()
            return
        for company, company_lines in lines.sudo().grouped("company_id").items():
            for name in names:
                records = company_lines.mapped(name)
                if not records:
                    continue
                domain = records._check_company_domain(company)
                if domain and records.with_context(active_test=False).filtered_domain(
                    domain
                ) != records.with_context(active_test=False):
                    lines._check_company()
                    return
