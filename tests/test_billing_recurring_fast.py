import copy
from datetime import date
from unittest.mock import patch

from odoo import Command, fields
from odoo.exceptions import UserError
from odoo.tests import tagged
from odoo.tools import SQL

from .recurring_common import BillingRecurringCommon

RECURRING_LOGGER = "odoo.addons.prepaid_postpaid_billing.models.billing_recurring"

# Fields that tell records apart rather than describe them: ids, audit fields,
# the link to the schedule (the ordinary copy has none, as a schedule has one
# invoice per period) and, once posted, the numbers the sequence gives.
IDENTITY_FIELDS = {
    "id",
    "create_uid",
    "create_date",
    "write_uid",
    "write_date",
    "move_id",
    "billing_recurring_id",
    "billing_period_start",
    "billing_period_end",
    "billing_reseller_id",
}
NUMBER_FIELDS = {
    "name",
    "move_name",
    "sequence_prefix",
    "sequence_number",
    "payment_reference",
    "made_sequence_gap",
    "secure_sequence_number",
    "inalterable_hash",
    "access_token",
}


@tagged("post_install", "-at_install")
class TestBillingRecurringFast(BillingRecurringCommon):
    """The recurring run's precomputed invoices equal what Odoo's ordinary
    ``account.move.create`` makes of the same lines, field by field."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        Tax = cls.env["account.tax"]
        cls.tax_15 = cls.company_data["default_tax_sale"]
        cls.tax_included = Tax.create(
            {
                "name": "Included 21%",
                "amount_type": "percent",
                "amount": 21.0,
                "price_include_override": "tax_included",
            }
        )
        cls.tax_5 = Tax.create(
            {"name": "Second 5%", "amount_type": "percent", "amount": 5.0}
        )
        cls.tax_fixed = Tax.create(
            {"name": "Fixed 0.50", "amount_type": "fixed", "amount": 0.5}
        )
        cls.tax_export = Tax.create(
            {"name": "Export 0%", "amount_type": "percent", "amount": 0.0}
        )

        def product(name, price, taxes):
            return cls.env["product.product"].create(
                {
                    "name": name,
                    "type": "service",
                    "list_price": price,
                    "taxes_id": [Command.set(taxes.ids)],
                }
            )

        cls.p_excluded = product("Excluded SMS", 0.0137, cls.tax_15)
        cls.p_included = product("Included Minutes", 0.121, cls.tax_included)
        cls.p_two = product("Two Taxes", 0.333, cls.tax_15 | cls.tax_5)
        cls.p_fixed = product("Fixed Tax", 7.0, cls.tax_fixed)
        cls.p_untaxed = product("Untaxed", 3.0, Tax)
        cls.income_export = cls.copy_account(
            cls.company_data["default_account_revenue"]
        )
        cls.fiscal_position = cls.env["account.fiscal.position"].create(
            {
                "name": "Export",
                "tax_ids": [
                    Command.create(
                        {
                            "tax_src_id": cls.tax_15.id,
                            "tax_dest_id": cls.tax_export.id,
                        }
                    )
                ],
                "account_ids": [
                    Command.create(
                        {
                            "account_src_id": cls.company_data[
                                "default_account_revenue"
                            ].id,
                            "account_dest_id": cls.income_export.id,
                        }
                    )
                ],
            }
        )
        Term = cls.env["account.payment.term"]
        cls.term_two = cls.pay_terms_b  # 30% now, 70% end of the next month
        cls.term_early = Term.create(
            {
                "name": "2% 10 days, net 30",
                "early_discount": True,
                "discount_percentage": 2.0,
                "discount_days": 10,
                "early_pay_discount_computation": "included",
                "line_ids": [
                    Command.create(
                        {"value": "percent", "value_amount": 100.0, "nb_days": 30}
                    )
                ],
            }
        )
        cls.term_early_excluded = cls.term_early.copy(
            {"early_pay_discount_computation": "excluded"}
        )
        cls.term_early_mixed = cls.term_early.copy(
            {"early_pay_discount_computation": "mixed"}
        )
        cls.rounding_line = cls.env["account.cash.rounding"].create(
            {
                "name": "Round to 0.05",
                "rounding": 0.05,
                "strategy": "add_invoice_line",
                "profit_account_id": cls.company_data["default_account_revenue"].id,
                "loss_account_id": cls.company_data["default_account_expense"].id,
                "rounding_method": "HALF-UP",
            }
        )
        cls.rounding_tax = cls.env["account.cash.rounding"].create(
            {
                "name": "Round to 0.05 in the tax",
                "rounding": 0.05,
                "strategy": "biggest_tax",
                "rounding_method": "UP",
            }
        )
        cls.other_currency = cls.setup_other_currency("EUR")

    # -------------------------------------------------------------------------
    # HELPERS
    # -------------------------------------------------------------------------

    def _customer(self, name, **vals):
        return self._postpaid_customer(name, **vals)

    def _vals(self, partner, lines, **vals):
        """Invoice values as the recurring run gives them: product lines of a
        product, name, quantity and price, no analytic distribution."""
        journal = self.company_data["default_journal_sale"]
        return {
            "journal_id": journal.id,
            "name": "/",
            "move_type": "out_invoice",
            "partner_id": partner.id,
            "company_id": self.company.id,
            "invoice_date": date(2026, 11, 1),
            "invoice_origin": "Equality test",
            "invoice_line_ids": [
                Command.create(
                    {
                        "product_id": product.id,
                        "name": f"{product.name} line {position}",
                        "quantity": quantity,
                        "price_unit": price,
                        "sequence": 10 + position,
                        "analytic_distribution": False,
                    }
                )
                for position, (product, quantity, price) in enumerate(lines)
            ],
            **vals,
        }

    def _ordinary(self, vals):
        return (
            self.env["account.move"]
            .with_context(default_move_type="out_invoice", tracking_disable=True)
            .create(copy.deepcopy(vals))
        )

    def _stored_values(self, record, skip):
        values = {}
        for name, field in record._fields.items():
            if not field.store or name in skip or field.type == "one2many":
                continue
            value = record[name]
            if field.type in ("many2one", "many2many"):
                value = value.ids
            values[name] = value
        return values

    def assertSameInvoice(self, fast, ordinary, posted=False):
        """Every stored field of the invoices and of each of their lines (in
        the order they were created), their tax totals, payment term lines and
        due dates, are the same."""
        skip = IDENTITY_FIELDS | (NUMBER_FIELDS if posted else set())
        self.assertEqual(
            self._stored_values(fast, skip), self._stored_values(ordinary, skip)
        )
        self.assertEqual(fast.tax_totals, ordinary.tax_totals)
        fast_lines = fast.line_ids.sorted("id")
        ordinary_lines = ordinary.line_ids.sorted("id")
        self.assertEqual(len(fast_lines), len(ordinary_lines))
        for fast_line, ordinary_line in zip(fast_lines, ordinary_lines, strict=True):
            self.assertEqual(
                self._stored_values(fast_line, skip),
                self._stored_values(ordinary_line, skip),
                f"line {ordinary_line.display_type} {ordinary_line.name}",
            )

    def assertSameAsOrdinary(self, vals, fast_path=True):
        """The invoice ``vals`` made by ``_billing_create_invoices`` (through
        the precomputed path when ``fast_path``, else the ordinary one) is the
        one Odoo's ordinary create makes, as a draft and once posted."""
        Recurring = self.env["billing.recurring"]
        self.assertEqual(
            Recurring._billing_precompute_invoice(copy.deepcopy(vals), {}) is not None,
            fast_path,
        )
        fast = Recurring._billing_create_invoices([copy.deepcopy(vals)])
        ordinary = self._ordinary(vals)
        self.assertSameInvoice(fast, ordinary)
        (fast | ordinary).action_post()
        self.assertSameInvoice(fast, ordinary, posted=True)
        return fast

    # -------------------------------------------------------------------------
    # TESTS
    # -------------------------------------------------------------------------

    def test_taxes_excluded_and_included(self):
        partner = self._customer("Taxes Customer")
        invoice = self.assertSameAsOrdinary(
            self._vals(
                partner,
                [
                    (self.p_excluded, 1234.0, 0.0137),
                    (self.p_excluded, -100.0, 0.0137),  # an allowance's credit
                    (self.p_included, 77.0, 0.121),
                    (self.p_untaxed, 1.0, 3.0),
                ],
            )
        )
        self.assertTrue(invoice.line_ids.filtered("tax_line_id"))
        self.assertTrue(invoice.amount_tax)

    def test_two_taxes_and_fixed_tax(self):
        partner = self._customer("Two Taxes Customer")
        invoice = self.assertSameAsOrdinary(
            self._vals(
                partner,
                [(self.p_two, 1001.0, 0.333), (self.p_fixed, 3.0, 7.0)],
            )
        )
        self.assertEqual(
            set(invoice.line_ids.tax_line_id.ids),
            {self.tax_15.id, self.tax_5.id, self.tax_fixed.id},
        )

    def test_payment_term_two_instalments(self):
        partner = self._customer(
            "Instalments Customer", property_payment_term_id=self.term_two.id
        )
        invoice = self.assertSameAsOrdinary(
            self._vals(partner, [(self.p_excluded, 999.0, 0.0137), (self.plan, 1, 20)])
        )
        terms = invoice.line_ids.filtered(
            lambda line: line.display_type == "payment_term"
        )
        self.assertEqual(len(terms), 2)
        self.assertEqual(invoice.invoice_date_due, max(terms.mapped("date_maturity")))

    def test_early_payment_discount(self):
        for term in (self.term_early, self.term_early_excluded):
            partner = self._customer(
                f"Early Customer {term.id}", property_payment_term_id=term.id
            )
            invoice = self.assertSameAsOrdinary(
                self._vals(partner, [(self.p_two, 500.0, 0.333)])
            )
            terms = invoice.line_ids.filtered(
                lambda line: line.display_type == "payment_term"
            )
            self.assertTrue(terms.discount_date)
            self.assertTrue(terms.discount_amount_currency)
        # A mixed early payment discount adds lines of its own: the ordinary way.
        partner = self._customer(
            "Mixed Early Customer", property_payment_term_id=self.term_early_mixed.id
        )
        self.assertSameAsOrdinary(
            self._vals(partner, [(self.p_two, 500.0, 0.333)]), fast_path=False
        )

    def test_cash_rounding(self):
        partner = self._customer("Rounding Customer")
        for rounding in (self.rounding_line, self.rounding_tax):
            invoice = self.assertSameAsOrdinary(
                self._vals(
                    partner,
                    [(self.p_excluded, 1234.0, 0.0137)],
                    invoice_cash_rounding_id=rounding.id,
                ),
                fast_path=False,
            )
            self.assertTrue(
                invoice.currency_id.is_zero(
                    invoice.amount_total - rounding.round(invoice.amount_total)
                )
            )

    def test_fiscal_position(self):
        partner = self._customer(
            "Export Customer", property_account_position_id=self.fiscal_position.id
        )
        invoice = self.assertSameAsOrdinary(
            self._vals(
                partner, [(self.p_excluded, 1234.0, 0.0137), (self.p_two, 10.0, 0.333)]
            )
        )
        self.assertEqual(invoice.fiscal_position_id, self.fiscal_position)
        self.assertIn(self.income_export, invoice.invoice_line_ids.account_id)
        self.assertIn(self.tax_export, invoice.invoice_line_ids.tax_ids)

    def test_receivable_accounts(self):
        """The payment term lines' receivable account, given by the fast path:
        the customer's own, one its fiscal position maps to another, and (of
        payment terms of several lines) with instalment names, which the ORM
        gives."""
        receivable = self.company_data["default_account_receivable"]
        own = receivable.copy({"code": "121997"})
        mapped = receivable.copy({"code": "121998"})
        fiscal_position = self.env["account.fiscal.position"].create(
            {
                "name": "Receivable mapped",
                "account_ids": [
                    Command.create(
                        {"account_src_id": own.id, "account_dest_id": mapped.id}
                    )
                ],
            }
        )
        lines = [(self.p_excluded, 999.0, 0.0137), (self.plan, 1, 20)]
        for expected, vals in (
            (own, {"property_account_receivable_id": own.id}),
            (
                mapped,
                {
                    "property_account_receivable_id": own.id,
                    "property_account_position_id": fiscal_position.id,
                },
            ),
            (
                mapped,
                {
                    "property_account_receivable_id": own.id,
                    "property_account_position_id": fiscal_position.id,
                    "property_payment_term_id": self.term_two.id,
                },
            ),
        ):
            partner = self._customer(f"Receivable Customer {len(vals)}", **vals)
            invoice = self.assertSameAsOrdinary(self._vals(partner, lines))
            terms = invoice.line_ids.filtered(
                lambda line: line.display_type == "payment_term"
            )
            self.assertEqual(terms.account_id, expected)

    def test_lines_inserted_set_based_or_by_the_orm(self):
        """The lines of a precomputed invoice are inserted set-based, unless
        another module takes part in creating lines (then the ORM creates
        them) or a line has a field the ORM must compute (the names of the
        lines of payment terms of several lines); the invoices are the same."""
        Recurring = type(self.env["billing.recurring"])
        insert = Recurring._billing_insert_lines
        inserted = []

        def count_inserts(records, moves, *args, **kwargs):
            inserted.append(len(moves))
            return insert(records, moves, *args, **kwargs)

        lines = [(self.p_excluded, 1234.0, 0.0137), (self.p_two, 10.0, 0.333)]
        with patch.object(Recurring, "_billing_insert_lines", count_inserts):
            self.assertSameAsOrdinary(self._vals(self._customer("Set Customer"), lines))
            self.assertEqual(inserted, [1])
            partner = self._customer(
                "Instalments Set Customer", property_payment_term_id=self.term_two.id
            )
            self.assertSameAsOrdinary(self._vals(partner, lines))
            self.assertEqual(inserted, [1], "instalment names: the ORM's create")
            with patch.object(
                Recurring, "_billing_insert_supported", lambda records: False
            ):
                self.assertSameAsOrdinary(
                    self._vals(self._customer("ORM Customer"), lines)
                )
            self.assertEqual(inserted, [1], "another module's create: the ORM's")
        self.assertTrue(self.env["billing.recurring"]._billing_insert_supported())

    def test_company_of_set_based_lines_checked_as_odoo_checks_it(self):
        """The companies of the set-based lines' values are checked value by
        value: a line naming another company's account is refused with Odoo's
        own error, as Odoo's check refuses it; lines of consistent values
        pass."""
        Recurring = self.env["billing.recurring"]
        move = self.env["account.move"].create(
            self._vals(
                self._customer("Company Check Customer"),
                [(self.p_excluded, 2.0, 10.0), (self.p_two, 1.0, 5.0)],
            )
        )
        Recurring._billing_check_company(move.line_ids)
        move.line_ids._check_company()
        other = self.setup_other_company(name="Fast Check Company")
        line = move.invoice_line_ids[:1]
        self.env.cr.execute(
            SQL(
                "UPDATE account_move_line SET account_id = %s WHERE id = %s",
                other["default_account_revenue"].id,
                line.id,
            )
        )
        move.line_ids.invalidate_recordset(["account_id"])
        with self.assertRaisesRegex(UserError, "Incompatible companies"):
            move.line_ids._check_company()
        with self.assertRaisesRegex(UserError, "Incompatible companies"):
            Recurring._billing_check_company(move.line_ids)
        # The other lines alone pass.
        Recurring._billing_check_company(move.line_ids - line)

    def test_storno_accounting(self):
        """With storno accounting, debit and credit are left to the ORM."""
        self.company.account_storno = True
        partner = self._customer("Storno Customer")
        invoice = self.assertSameAsOrdinary(
            self._vals(
                partner,
                [(self.p_excluded, 1234.0, 0.0137), (self.p_excluded, -100.0, 0.0137)],
            )
        )
        self.assertTrue(invoice.line_ids.filtered("credit"))

    def test_foreign_currency(self):
        """An invoice in another currency is made the ordinary way; the
        recurring run, which bills usage in the company currency, refuses the
        customer whose invoices would be in another currency, and invoices
        the others."""
        journal = self.company_data["default_journal_sale"].copy(
            {"name": "Sales EUR", "code": "SEUR", "currency_id": self.other_currency.id}
        )
        partner = self._customer("Foreign Customer")
        vals = self._vals(
            partner, [(self.p_excluded, 1234.0, 0.0137)], journal_id=journal.id
        )
        invoice = self.assertSameAsOrdinary(vals, fast_path=False)
        self.assertEqual(invoice.currency_id, self.other_currency)

        good = self._schedule(self._customer("Good Customer"))
        self._usage(good.partner_id, self.sms, "2026-10-03", count=2)
        foreign = self._schedule(partner)
        self._usage(partner, self.sms, "2026-10-03", count=2)
        # The journal the run invoices in is the company's first sales journal.
        sales = self.env["account.journal"].search(
            [
                *self.env["account.journal"]._check_company_domain(self.company),
                ("type", "=", "sale"),
                ("billing_reseller_id", "=", False),
            ],
            limit=1,
        )
        sales.currency_id = self.other_currency
        with self.assertLogs(RECURRING_LOGGER, level="WARNING") as logs:
            run = self._run()
        self.assertEqual(len(logs.records), 2)
        self.assertEqual(run.invoice_count, 0)
        self.assertEqual(
            sorted(run.failure_ids.partner_id.ids),
            sorted((good | foreign).partner_id.ids),
        )
        self.assertIn("company currency", run.failure_ids[0].error)
        self.assertIn(sales.display_name, run.failure_ids[0].error)
        self.assertEqual(
            set(self.env["billing.charge"].search([]).mapped("state")), {"pending"}
        )
        sales.currency_id = False
        run = self._run()
        self.assertEqual(run.invoice_count, 2)
        self.assertFalse(run.failure_ids)

    def test_run_equals_ordinary_create(self):
        """The recurring run's invoice (usage with a fiscal position, two
        taxes, a tax included in the price, an allowance and a fixed line,
        payment terms in two instalments) equals an ordinary create of its
        lines, and its charges are linked to their lines."""
        partner = self._customer(
            "Run Customer",
            property_payment_term_id=self.term_two.id,
            property_account_position_id=self.fiscal_position.id,
        )
        schedule = self._schedule(
            partner,
            generation_mode="confirm",
            line_ids=[
                Command.create(
                    {
                        "product_id": self.p_included.id,
                        "quantity": 1,
                        "price_unit": 19.9,
                    }
                )
            ],
            allowance_ids=[
                Command.create({"product_id": self.p_two.id, "quantity": 3.0})
            ],
        )
        self._usage(partner, self.p_two, "2026-10-03", quantity=2.5, count=7)
        self._usage(partner, self.p_excluded, "2026-10-04", quantity=3.0, count=5)
        self._usage(
            partner, self.p_excluded, "2026-10-05", quantity=1.0, price_unit=0.02
        )
        self._run()
        invoice = self._invoices(schedule)
        self.assertEqual(invoice.state, "posted")
        self.assertChargesMatchUsageLines(invoice)
        self.assertEqual(len(invoice.invoice_line_ids.billing_charge_ids), 13)
        vals = {
            "journal_id": invoice.journal_id.id,
            "name": "/",
            "move_type": "out_invoice",
            "partner_id": partner.id,
            "company_id": self.company.id,
            "invoice_date": invoice.invoice_date,
            "invoice_origin": invoice.invoice_origin,
            "narration": invoice.narration,
            "billing_customer_notes": invoice.billing_customer_notes,
            "invoice_line_ids": [
                Command.create(
                    {
                        "product_id": line.product_id.id,
                        "name": line.name,
                        "quantity": line.quantity,
                        "price_unit": line.price_unit,
                        "sequence": line.sequence,
                        "analytic_distribution": False,
                    }
                )
                for line in invoice.invoice_line_ids.sorted("id")
            ],
        }
        ordinary = self._ordinary(vals)
        ordinary.action_post()
        self.assertSameInvoice(invoice, ordinary, posted=True)
        self.assertEqual(
            invoice.invoice_date_due,
            fields.Date.end_of(date(2026, 12, 1), "month"),
        )

    def test_unbalanced_precomputed_invoice_is_refused(self):
        """The precomputed invoices are checked balanced once created: a payment
        term line one cent off is refused, not saved. The check runs after the
        create, so what proves "not saved" is a run, which catches the refusal
        and goes on (the batch again one customer at a time, each in its
        savepoint): the customer is recorded as failed, without an invoice, its
        usage still pending, and the other customer is invoiced."""
        Recurring = type(self.env["billing.recurring"])
        original = Recurring._billing_term_line_vals
        precompute = Recurring._billing_precompute_invoice
        partner = self._customer("Unbalanced Customer")
        invoicing = {}

        def remember_customer(records, vals, cache):
            invoicing["partner_id"] = vals.get("partner_id")
            return precompute(records, vals, cache)

        def one_cent_off(records, *args, **kwargs):
            lines = original(records, *args, **kwargs)
            if lines and invoicing.get("partner_id") == partner.id:
                lines[0]["balance"] += 0.01
                lines[0]["amount_currency"] += 0.01
            return lines

        vals = self._vals(partner, [(self.p_excluded, 1234.0, 0.0137)])
        with (
            patch.object(Recurring, "_billing_precompute_invoice", remember_customer),
            patch.object(Recurring, "_billing_term_line_vals", one_cent_off),
        ):
            with self.assertRaisesRegex(UserError, "not balanced"):
                self.env["billing.recurring"]._billing_create_invoices([vals])
            unbalanced = self._schedule(partner)
            self._usage(partner, self.sms, "2026-10-03", count=2)
            good = self._schedule(self._customer("Balanced Customer"))
            self._usage(good.partner_id, self.sms, "2026-10-03", count=2)
            with self.assertLogs(RECURRING_LOGGER, level="WARNING") as logs:
                run = self._run()
        self.assertEqual(len(logs.records), 1)
        self.env.invalidate_all()
        Charge = self.env["billing.charge"]
        self.assertEqual(run.failure_ids.partner_id, partner)
        self.assertIn("not balanced", run.failure_ids.error)
        self.assertEqual(run.invoice_count, 1)
        self.assertFalse(
            self.env["account.move"].search([("partner_id", "=", partner.id)]),
            "nothing of the refused invoice is left",
        )
        self.assertEqual(unbalanced.next_date, date(2026, 11, 1))
        charges = Charge.search([("partner_id", "=", partner.id)])
        self.assertEqual(len(charges), 2)
        self.assertEqual(set(charges.mapped("state")), {"pending"}, "still to bill")
        self.assertFalse(charges.invoice_line_id)
        self.assertEqual(len(self._invoices(good)), 1)
        self.assertEqual(
            set(
                Charge.search([("partner_id", "=", good.partner_id.id)]).mapped("state")
            ),
            {"invoiced"},
        )
