from odoo import Command
from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged

from .recurring_common import BillingRecurringCommon


@tagged("post_install", "-at_install")
class TestBillingChargeIngest(BillingRecurringCommon):
    def _record(self, ref, **vals):
        return {
            "partner_id": self.postpaid.id,
            "product_id": self.sms.id,
            "date": "2026-10-15 10:00:00",
            "quantity": 1,
            "external_ref": ref,
            **vals,
        }

    def test_validation_reasons_and_good_records_kept(self):
        Charge = self.env["billing.charge"]
        records = [
            self._record("ok-1"),
            self._record("bad-partner", partner_id=999999999),
            self._record("bad-product", product_id=999999999),
            self._record("zero-qty", quantity=0),
            self._record("neg-qty", quantity=-3),
            self._record("text-qty", quantity="many"),
            self._record("bad-date", date="15/10/2026"),
            self._record("bad-price", price_unit=-1),
            self._record("extra", colour="blue"),
            {**self._record("x"), "external_ref": ""},
            {"partner_id": self.postpaid.id},
            "not a dict",
            self._record("ok-2", date="2026-10-16", name="Campaign"),
            self._record("ok-2"),
        ]
        result = Charge.ingest(records)
        self.assertEqual(result["created"], 2)
        self.assertEqual(result["duplicates"], 0)
        reasons = {r["external_ref"]: r["reason"] for r in result["rejected"]}
        self.assertIn("unknown customer partner_id 999999999", reasons["bad-partner"])
        self.assertIn("unknown service product_id 999999999", reasons["bad-product"])
        self.assertIn("quantity must be a positive number", reasons["zero-qty"])
        self.assertIn("quantity must be a positive number", reasons["neg-qty"])
        self.assertIn("quantity must be a positive number", reasons["text-qty"])
        self.assertIn("date must be YYYY-MM-DD", reasons["bad-date"])
        self.assertIn("price_unit must be a number", reasons["bad-price"])
        self.assertIn("unknown field colour", reasons["extra"])
        self.assertIn("missing external_ref", reasons[""])
        self.assertIn("twice in the batch", reasons["ok-2"])
        self.assertEqual(len(result["rejected"]), 12)
        charges = Charge.search([("partner_id", "=", self.postpaid.id)])
        self.assertEqual(sorted(charges.mapped("external_ref")), ["ok-1", "ok-2"])
        named = charges.filtered(lambda c: c.external_ref == "ok-2")
        self.assertEqual(named.name, "Campaign")
        self.assertEqual(str(named.date), "2026-10-16 00:00:00")
        self.assertEqual(set(charges.mapped("state")), {"pending"})

    def test_huge_numbers_and_unstorable_text_rejected(self):
        """Values found by scripts/chaos fuzz, which made the whole call fail
        (an overflow, a COPY refused by PostgreSQL): each record is rejected
        with a reason naming the field, and the good ones are stored."""
        Charge = self.env["billing.charge"]
        records = [
            self._record("overflow", quantity=1e308, price_unit=10),
            self._record("big-int", quantity=10**400),
            self._record("big-price", price_unit=10**400),
            self._record("big-amount", quantity=2, price_unit=50_000_000),
            self._record("nul-name", name="Campaign\x00"),
            self._record("surrogate-name", name="Campaign \ud800"),
            self._record("nul-ref\x00"),
            self._record("surrogate-ref\ud800"),
            self._record("ok-unicode \u202e\U0001f4a9", name="Caf\u00e9"),
            self._record("ok-below", quantity=1_999_999, price_unit=49.99),
        ]
        result = Charge.ingest(records)
        reasons = {r["external_ref"]: r["reason"] for r in result["rejected"]}
        self.assertEqual(result["created"], 2, reasons)
        self.assertIn("quantity x price_unit", reasons["overflow"])
        self.assertIn("below 100,000,000", reasons["overflow"])
        self.assertIn("quantity must be a positive number", reasons["big-int"])
        self.assertIn("price_unit must be a number", reasons["big-price"])
        self.assertIn("quantity x price_unit", reasons["big-amount"])
        self.assertIn("name must be a text without NUL", reasons["nul-name"])
        self.assertIn("name must be a text without NUL", reasons["surrogate-name"])
        self.assertIn("external_ref must be a text without NUL", reasons["nul-ref\x00"])
        self.assertIn(
            "external_ref must be a text without NUL", reasons["surrogate-ref\ud800"]
        )
        self.assertEqual(len(result["rejected"]), 8)
        charges = Charge.search([("partner_id", "=", self.postpaid.id)])
        self.assertEqual(
            sorted(charges.mapped("external_ref")),
            ["ok-below", "ok-unicode \u202e\U0001f4a9"],
        )
        self.assertEqual(
            charges.filtered(lambda c: c.external_ref.startswith("ok-u")).name,
            "Caf\u00e9",
        )

    def test_duplicates_counted_not_stored(self):
        Charge = self.env["billing.charge"]
        batch = [self._record(f"dup-{i}") for i in range(5)]
        self.assertEqual(Charge.ingest(batch)["created"], 5)
        again = Charge.ingest(batch + [self._record("dup-new")])
        self.assertEqual(again["created"], 1)
        self.assertEqual(again["duplicates"], 5)
        self.assertEqual(Charge.search_count([("external_ref", "like", "dup-")]), 6)

    def test_price_from_pricelist_or_product(self):
        Charge = self.env["billing.charge"]
        pricelist = self.env["product.pricelist"].create(
            {
                "name": "Wholesale",
                "currency_id": self.currency.id,
                "item_ids": [
                    Command.create(
                        {
                            "applied_on": "0_product_variant",
                            "product_id": self.sms.id,
                            "compute_price": "fixed",
                            "fixed_price": 0.03,
                        }
                    )
                ],
            }
        )
        wholesale = self._postpaid_customer("Wholesale Co")
        wholesale.property_product_pricelist = pricelist
        Charge.ingest(
            [
                self._record("pl-1", partner_id=wholesale.id, quantity=100),
                self._record("pl-2", partner_id=wholesale.id, price_unit=0.0125),
                self._record("pl-3", product_id=self.minutes.id, quantity=3),
            ]
        )
        by_ref = {
            c.external_ref: c
            for c in Charge.search([("external_ref", "in", ["pl-1", "pl-2", "pl-3"])])
        }
        self.assertAlmostEqual(by_ref["pl-1"].price_unit, 0.03, places=6)
        self.assertAlmostEqual(by_ref["pl-1"].amount, 3.0, places=6)
        self.assertAlmostEqual(by_ref["pl-2"].price_unit, 0.0125, places=6)
        self.assertAlmostEqual(by_ref["pl-2"].amount, 0.0125, places=6)
        expected = (
            self.postpaid.property_product_pricelist._get_product_price(self.minutes, 3)
            if self.postpaid.property_product_pricelist
            else self.minutes.lst_price
        )
        self.assertAlmostEqual(by_ref["pl-3"].price_unit, expected, places=6)

    def test_prepaid_charges_debit_wallet_or_are_refused(self):
        self._fund(10.0)
        Charge = self.env["billing.charge"]
        result = Charge.ingest(
            [
                self._record(f"pre-{i}", partner_id=self.customer.id, price_unit=4.0)
                for i in range(3)
            ]
        )
        self.assertEqual(result["created"], 2)
        self.assertEqual(len(result["rejected"]), 1)
        self.assertEqual(result["rejected"][0]["external_ref"], "pre-2")
        self.assertIn("does not cover", result["rejected"][0]["reason"])
        self.assertEqual(self.customer.billing_balance, 2.0)
        charges = Charge.search([("partner_id", "=", self.customer.id)])
        self.assertEqual(len(charges), 2)
        self.assertEqual(set(charges.mapped("state")), {"debited"})
        movement = charges.wallet_move_id
        self.assertEqual(len(movement), 1)
        self.assertEqual(movement.kind, "usage")
        self.assertEqual(movement.amount, -8.0)
        # Booked later, by the consumption posting.
        self.assertFalse(movement.account_move_id)
        self.assertBooksMatchWallet()
        self._post_consumption()
        self.assertTrue(movement.account_move_id)
        self.assertBooksMatchWallet()
        # Sent again: counted as duplicates, not debited twice.
        again = Charge.ingest(
            [
                self._record(f"pre-{i}", partner_id=self.customer.id, price_unit=4.0)
                for i in range(2)
            ]
        )
        self.assertEqual(again["duplicates"], 2)
        self.assertEqual(self.customer.billing_balance, 2.0)

    def test_only_billing_users_ingest(self):
        sales = new_test_user(
            self.env,
            login="ingest_sales",
            groups="base.group_user",
            company_id=self.company.id,
            company_ids=[Command.set(self.company.ids)],
        )
        with self.assertRaisesRegex(AccessError, "Only Billing Users"):
            self.env["billing.charge"].with_user(sales).ingest([self._record("nope")])
        result = (
            self.env["billing.charge"]
            .with_user(self.billing_user)
            .ingest([self._record("yes")])
        )
        self.assertEqual(result["created"], 1)
