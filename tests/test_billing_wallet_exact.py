from decimal import Decimal
from unittest.mock import patch

from odoo import Command
from odoo.exceptions import AccessError, UserError
from odoo.tests import Form, new_test_user, tagged

from .recurring_common import BillingRecurringCommon


@tagged("post_install", "-at_install")
class TestBillingWalletExact(BillingRecurringCommon):
    """Prepaid usage debited exactly to the usage precision, booked later in
    rounded aggregates whose remainder is carried to the next posting."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Voice minutes are earned on an income account of their own, so that a
        # consumption posting has one line per account.
        cls.voice_income = cls.env["account.account"].create(
            {
                "name": "Voice Income",
                "code": "700900",
                "account_type": "income",
            }
        )
        cls.minutes.property_account_income_id = cls.voice_income

    def _prepaid(self, ref, price_unit, quantity=1.0, product=None, partner=None):
        type(self).ref_counter += 1
        return {
            "partner_id": (partner or self.customer).id,
            "product_id": (product or self.sms).id,
            "date": "2026-11-20 10:00:00",
            "quantity": quantity,
            "price_unit": price_unit,
            "external_ref": f"{ref}-{self.ref_counter}",
        }

    def _ingest(self, records):
        result = self.env["billing.charge"].ingest(records)
        self.env.invalidate_all()
        return result

    def _income(self, account):
        return -self._account_balance(account, self.customer)

    # -------------------------------------------------------------------------
    # Debited exactly
    # -------------------------------------------------------------------------

    def test_800_charges_at_0_0125_debit_exactly_10(self):
        self._fund(20.0)
        result = self._ingest([self._prepaid("sms", 0.0125) for _i in range(800)])
        self.assertEqual(result["created"], 800)
        self.assertFalse(result["rejected"])
        wallet = self._wallet()
        self.assertAlmostEqual(wallet.balance, 10.0, places=6)
        self.assertAlmostEqual(wallet.unposted_consumption, 10.0, places=6)
        # Not booked yet: the books still hold the 20.00 funded, and follow the
        # wallet through the consumption not yet posted.
        self.assertEqual(self._income(self.company_data["default_account_revenue"]), 0)
        self.assertBooksMatchWallet()
        self.assertEqual(self._post_consumption(), 1)
        self.assertAlmostEqual(wallet.unposted_consumption, 0.0, places=6)
        self.assertAlmostEqual(
            self._income(self.company_data["default_account_revenue"]), 10.0
        )
        self.assertBooksMatchWallet()
        movement = wallet.move_ids.filtered(lambda m: m.kind == "usage")
        self.assertEqual(len(movement), 1)
        self.assertAlmostEqual(movement.amount, -10.0, places=6)
        self.assertTrue(movement.account_move_id)
        self.assertEqual(movement.account_move_id.state, "posted")
        # Posting again books nothing more.
        self.assertEqual(self._post_consumption(), 0)

    def test_posting_of_several_wallets_a_failing_one_left_for_later(self):
        customers = self.customer | self.other_customer
        for customer in customers:
            self._fund(5.0, partner=customer)
            self._ingest(
                [self._prepaid("multi", 0.0125, partner=customer) for _i in range(8)]
            )
        failing = self._wallet(self.other_customer)
        consumption_lines = type(failing)._consumption_lines

        def fail_for_other(wallet, amounts, booked):
            if wallet == failing:
                raise UserError(wallet.env._("no income account for this test"))
            return consumption_lines(wallet, amounts, booked)

        with (
            patch.object(type(failing), "_consumption_lines", fail_for_other),
            self.assertLogs(
                "odoo.addons.prepaid_postpaid_billing.models.billing_wallet",
                level="WARNING",
            ) as logs,
        ):
            self.assertEqual(self._post_consumption(), 1)
        self.assertIn("not posted: no income account", logs.output[0])
        self.env.invalidate_all()
        self.assertAlmostEqual(self._wallet().unposted_consumption, 0.0, places=6)
        self.assertAlmostEqual(failing.unposted_consumption, 0.1, places=6)
        for customer in customers:
            self.assertBooksMatchWallet(customer)
        # The next run books it.
        self.assertEqual(self._post_consumption(), 1)
        self.env.invalidate_all()
        self.assertAlmostEqual(failing.unposted_consumption, 0.0, places=6)
        self.assertBooksMatchWallet(self.other_customer)

    def test_1000_sms_at_0_0075_debit_7_50_not_10(self):
        self._fund(10.0)
        self._ingest([self._prepaid("sms", 0.0075) for _i in range(1000)])
        wallet = self._wallet()
        self.assertAlmostEqual(wallet.balance, 2.5, places=6)
        self._post_consumption()
        self.assertAlmostEqual(
            self._income(self.company_data["default_account_revenue"]), 7.5
        )
        self.assertBooksMatchWallet()

    def test_charge_under_half_a_cent_is_not_free(self):
        self._fund(1.0)
        self._ingest([self._prepaid("tiny", 0.004)])
        wallet = self._wallet()
        self.assertAlmostEqual(wallet.balance, 0.996, places=6)
        charge = self.env["billing.charge"].search(
            [("partner_id", "=", self.customer.id)]
        )
        self.assertAlmostEqual(charge.amount, 0.004, places=6)
        self.assertEqual(charge.state, "debited")
        # 0.004 rounds to nothing: it waits for more before it is booked.
        self.assertEqual(self._post_consumption(), 0)
        self.assertAlmostEqual(wallet.unposted_consumption, 0.004, places=6)
        self.assertFalse(charge.wallet_move_id.account_move_id)
        self.assertBooksMatchWallet()

    def test_333_single_calls_at_0_003_debit_0_999_and_carry_the_remainder(self):
        self._fund(5.0)
        for _i in range(333):
            result = self._ingest([self._prepaid("call", 0.003)])
            self.assertEqual(result["created"], 1, result)
        wallet = self._wallet()
        self.assertAlmostEqual(wallet.balance, 4.001, places=6)
        usage = wallet.move_ids.filtered(lambda m: m.kind == "usage")
        self.assertEqual(len(usage), 333)
        self.assertEqual(set(usage.mapped("amount")), {-0.003})
        # One posting of 1.00: 0.999 rounded; the 0.001 booked ahead is carried.
        self._post_consumption()
        revenue = self.company_data["default_account_revenue"]
        self.assertAlmostEqual(self._income(revenue), 1.0)
        self.assertAlmostEqual(wallet.unposted_consumption, -0.001, places=6)
        self.assertEqual(len(usage.account_move_id), 1)
        self.assertBooksMatchWallet()
        # The next 0.003 is booked with the carry: 0.002, rounded to 0.00, waits.
        self._ingest([self._prepaid("call", 0.003)])
        self.assertEqual(self._post_consumption(), 0)
        self.assertBooksMatchWallet()
        # Two more: 0.008 rounds to 0.01; the books have then 1.01 for 1.008.
        self._ingest([self._prepaid("call", 0.003) for _i in range(2)])
        self._post_consumption()
        self.assertAlmostEqual(self._income(revenue), 1.01)
        self.assertAlmostEqual(wallet.unposted_consumption, -0.002, places=6)
        self.assertAlmostEqual(wallet.balance, 3.992, places=6)
        self.assertBooksMatchWallet()

    def test_mix_of_prices_on_one_posting(self):
        self._fund(10.0)
        records = (
            [self._prepaid("sms", 0.0075) for _i in range(3)]  # 0.0225
            + [
                self._prepaid("min", 0.0125, quantity=1.5, product=self.minutes)
                for _i in range(3)
            ]  # 0.05625
            + [self._prepaid("sec", 0.0004, quantity=250, product=self.minutes)]  # 0.1
            + [self._prepaid("sms", 0.05) for _i in range(2)]  # 0.1
        )
        self._ingest(records)
        wallet = self._wallet()
        exact = 0.0225 + 0.05625 + 0.1 + 0.1
        self.assertAlmostEqual(wallet.balance, 10.0 - exact, places=6)
        self.assertBooksMatchWallet()
        # What the posting books, kept exactly on the ledger line of the call.
        movement = wallet.move_ids.filtered(lambda m: m.kind == "usage")
        self.assertEqual(
            {key: Decimal(value) for key, value in movement.usage_amounts.items()},
            {
                str(self.sms.id): Decimal("0.1225"),
                str(self.minutes.id): Decimal("0.15625"),
            },
        )
        entries = self.env["billing.wallet"]._post_consumption_run()
        self.assertEqual(entries, 1)
        entry = wallet.move_ids.filtered(lambda m: m.kind == "usage").account_move_id
        self.assertEqual(len(entry), 1)
        lines = entry.line_ids
        wallet_line = lines.filtered(
            lambda line: line.account_id == self.company.billing_wallet_account_id
        )
        # 0.27875 rounded once: 0.28, split 0.12 SMS and 0.16 voice (0.1225 and
        # 0.15625 rounded, the difference on the largest).
        self.assertAlmostEqual(wallet_line.debit, 0.28)
        self.assertAlmostEqual(
            self._income(self.company_data["default_account_revenue"]), 0.12
        )
        self.assertAlmostEqual(self._income(self.voice_income), 0.16)
        self.assertAlmostEqual(wallet.unposted_consumption, exact - 0.28, places=6)
        self.assertBooksMatchWallet()

    def test_debits_recorded_without_usage_amounts_are_given_them(self):
        """A ledger line of usage not yet posted that an earlier version
        recorded, without its amounts per service: the module update gives them
        from its charges, and the posting books them."""
        self._fund(10.0)
        self._ingest(
            [self._prepaid("old", 0.0075) for _i in range(4)]
            + [self._prepaid("old-min", 0.0125, product=self.minutes)]
        )
        movement = self._wallet().move_ids.filtered(lambda m: m.kind == "usage")
        self.env.cr.execute(
            "UPDATE billing_wallet_move SET usage_amounts = NULL WHERE id = %s",
            [movement.id],
        )
        movement.invalidate_recordset()
        self.env["billing.wallet.move"]._fill_usage_amounts()  # as init does
        movement.invalidate_recordset()
        self.assertEqual(
            {key: Decimal(value) for key, value in movement.usage_amounts.items()},
            {
                str(self.sms.id): Decimal("0.03"),
                str(self.minutes.id): Decimal("0.0125"),
            },
        )
        self.assertEqual(self._post_consumption(), 1)
        self.assertAlmostEqual(
            self._income(self.company_data["default_account_revenue"]), 0.03
        )
        self.assertAlmostEqual(self._income(self.voice_income), 0.01)
        self.assertBooksMatchWallet()

    def test_exact_balance_refuses_what_the_rounded_display_suggests(self):
        self._fund(10.0)
        self._ingest([self._prepaid("tiny", 0.004)])
        wallet = self._wallet()
        self.assertAlmostEqual(wallet.balance, 9.996, places=6)
        # Shown rounded the usual way: 10.00.
        self.assertEqual(self.customer.billing_balance, 10.0)
        result = self._ingest([self._prepaid("big", 9.999)])
        self.assertEqual(result["created"], 0)
        self.assertEqual(len(result["rejected"]), 1)
        reason = result["rejected"][0]["reason"]
        self.assertRegex(reason, r"balance of .*9\.996 does not cover .*9\.999")
        self.assertAlmostEqual(wallet.balance, 9.996, places=6)
        self.assertFalse(
            self.env["billing.charge"].search(
                [("external_ref", "=", result["rejected"][0]["external_ref"])]
            ),
            "a refused charge is not stored",
        )
        # Exactly the balance goes through, down to zero.
        result = self._ingest([self._prepaid("all", 9.996)])
        self.assertEqual(result["created"], 1)
        self.assertAlmostEqual(wallet.balance, 0.0, places=6)
        self._post_consumption()
        self.assertAlmostEqual(
            self._income(self.company_data["default_account_revenue"]), 10.0
        )
        self.assertBooksMatchWallet()

    def test_charges_in_the_order_sent_until_the_balance_is_used(self):
        self._fund(0.02)
        records = [self._prepaid("seq", 0.0075) for _i in range(3)]
        records.insert(2, self._prepaid("seq-big", 0.01))
        result = self._ingest(records)
        # 0.0075 + 0.0075 = 0.015; 0.01 does not fit in 0.005; 0.0075 neither.
        self.assertEqual(result["created"], 2)
        self.assertEqual(
            [r["external_ref"] for r in result["rejected"]],
            [records[2]["external_ref"], records[3]["external_ref"]],
        )
        self.assertAlmostEqual(self._wallet().balance, 0.005, places=6)
        self.assertBooksMatchWallet()

    # -------------------------------------------------------------------------
    # Real-time path
    # -------------------------------------------------------------------------

    def _queries_of_one_call(self, record):
        """Queries of one single-record ingest call, with the record cache cold
        as in a new request."""
        self.env.flush_all()
        self.env.invalidate_all()
        queries = self.env.cr.sql_log_count
        result = self.env["billing.charge"].ingest([record])
        self.env.flush_all()
        self.assertEqual(result["created"], 1, result)
        return self.env.cr.sql_log_count - queries

    def test_single_record_call_posts_no_journal_entry(self):
        self._fund(1.0)
        # Warm up both paths (the wallet exists, registry caches are filled).
        self._ingest([self._prepaid("warm", 0.01)])
        self._ingest([self._prepaid("pp-warm", 0.01, partner=self.postpaid)])
        wallet = self._wallet()
        moves_before = self.env["account.move"].search_count([])
        ledger_before = len(wallet.move_ids)
        prepaid_queries = self._queries_of_one_call(self._prepaid("rt", 0.0075))
        self.env.invalidate_all()
        self.assertEqual(self.env["account.move"].search_count([]), moves_before)
        self.assertEqual(len(wallet.move_ids), ledger_before + 1)
        self.assertAlmostEqual(wallet.balance, 0.9825, places=6)
        charge = self.env["billing.charge"].search(
            [("partner_id", "=", self.customer.id)], limit=1
        )
        self.assertEqual(charge.wallet_move_id, wallet.move_ids[:1])
        # The same call for a postpaid customer: the prepaid one costs only the
        # wallet lock, its update, the ledger line with the charge's link, and
        # the company's currency more.
        postpaid_queries = self._queries_of_one_call(
            self._prepaid("pp", 0.0075, partner=self.postpaid)
        )
        self.assertLessEqual(prepaid_queries - postpaid_queries, 4)

    def test_ledger_line_named_after_the_customer_of_the_contacts_sent(self):
        """The ledger line of a call is named after the customer whose wallet
        paid (its complete name, read with the customers before the COPY), for
        records sent for it and for its contacts alike."""
        self._fund(1.0)
        contact = self.env["res.partner"].create(
            {"name": "Usage Contact", "parent_id": self.customer.id}
        )
        self.assertEqual(contact.commercial_partner_id, self.customer)
        self.env.flush_all()
        self.env.invalidate_all()
        result = self._ingest(
            [
                self._prepaid("named", 0.0075, partner=contact),
                self._prepaid("named", 0.0025),
                self._prepaid("named", 0.001, partner=contact),
            ]
        )
        self.assertEqual(result["created"], 3, result)
        movement = self._wallet().move_ids[:1]
        self.assertEqual(movement.kind, "usage")
        self.assertEqual(movement.name, f"Usage of {self.customer.complete_name}")
        self.assertEqual(movement.origin, "3 usage records")
        self.assertAlmostEqual(movement.amount, -0.011, places=6)
        self.assertAlmostEqual(self._wallet().balance, 0.989, places=6)

    def test_large_batch_triggers_the_consumption_posting(self):
        self._fund(100.0)
        cron = self.env.ref("prepaid_postpaid_billing.ir_cron_billing_post_consumption")
        Trigger = self.env["ir.cron.trigger"].sudo()
        before = Trigger.search_count([("cron_id", "=", cron.id)])
        self._ingest([self._prepaid("small", 0.001) for _i in range(10)])
        self.assertEqual(Trigger.search_count([("cron_id", "=", cron.id)]), before)
        self._ingest([self._prepaid("large", 0.001) for _i in range(1000)])
        self.assertEqual(Trigger.search_count([("cron_id", "=", cron.id)]), before + 1)
        # The next large batch finds that trigger due: the worker books both.
        self._ingest([self._prepaid("larger", 0.00001) for _i in range(1000)])
        self.assertEqual(Trigger.search_count([("cron_id", "=", cron.id)]), before + 1)
        # What the triggered scheduled action runs (without its commits).
        self._post_consumption()
        self.env.invalidate_all()
        self.assertAlmostEqual(self._wallet().unposted_consumption, 0.0, places=6)
        self.assertAlmostEqual(
            self._income(self.company_data["default_account_revenue"]), 1.02
        )
        self.assertBooksMatchWallet()

    def test_resent_batch_debits_nothing(self):
        self._fund(1.0)
        records = [self._prepaid("again", 0.0075) for _i in range(4)]
        self.assertEqual(self._ingest(records)["created"], 4)
        again = self._ingest(records)
        self.assertEqual(again, {"created": 0, "duplicates": 4, "rejected": []})
        self.assertAlmostEqual(self._wallet().balance, 0.97, places=6)
        self.assertBooksMatchWallet()

    # -------------------------------------------------------------------------
    # Paying invoices with an exact balance
    # -------------------------------------------------------------------------

    def test_pay_from_wallet_takes_no_more_than_the_exact_balance(self):
        self._fund(10.0)
        self._ingest([self._prepaid("tiny", 0.004)])
        invoice = self._invoice([(self.service, 1, 10.0)])
        self.assertEqual(invoice.payment_state, "not_paid")
        invoice.action_billing_pay_from_wallet()
        # 9.996 can pay 9.99, not the 10.00 it is shown as.
        self.assertAlmostEqual(invoice.amount_residual, 0.01)
        wallet = self._wallet()
        self.assertAlmostEqual(wallet.balance, 0.006, places=6)
        self._post_consumption()
        self.assertBooksMatchWallet()

    def test_auto_pay_refused_when_exact_balance_is_short(self):
        self.company.billing_wallet_allow_payments = True
        self._fund(10.0)
        self._ingest([self._prepaid("tiny", 0.004)])
        invoice = self._invoice([(self.service, 1, 10.0)])
        self.assertEqual(invoice.payment_state, "not_paid")
        self.assertTrue(
            any(
                "does not cover" in message.body and "9.996" in message.body
                for message in invoice.message_ids
            ),
            invoice.message_ids.mapped("body"),
        )
        self.assertAlmostEqual(self._wallet().balance, 9.996, places=6)

    # -------------------------------------------------------------------------
    # Prices finer than a cent
    # -------------------------------------------------------------------------

    def test_service_and_pricelist_keep_prices_finer_than_a_cent(self):
        self.assertGreaterEqual(
            self.env["decimal.precision"].precision_get("Product Price"), 6
        )
        second = self.env["product.product"].create(
            {
                "name": "Call Second",
                "type": "service",
                "list_price": 0.0004,
                "taxes_id": [Command.clear()],
            }
        )
        self.assertAlmostEqual(second.list_price, 0.0004, places=6)
        self.assertAlmostEqual(second.lst_price, 0.0004, places=6)
        pricelist = self.env["product.pricelist"].create(
            {
                "name": "Messaging",
                "currency_id": self.currency.id,
                "item_ids": [
                    Command.create(
                        {
                            "applied_on": "0_product_variant",
                            "product_id": self.sms.id,
                            "compute_price": "fixed",
                            "fixed_price": 0.0075,
                        }
                    )
                ],
            }
        )
        self.customer.property_product_pricelist = pricelist
        self._fund(1.0)
        type(self).ref_counter += 1
        result = self._ingest(
            [
                {
                    "partner_id": self.customer.id,
                    "product_id": product.id,
                    "date": "2026-11-20",
                    "quantity": quantity,
                    "external_ref": f"list-{self.ref_counter}-{product.id}",
                }
                for product, quantity in ((second, 60), (self.sms, 1))
            ]
        )
        self.assertEqual(result["created"], 2)
        charges = self.env["billing.charge"].search(
            [("partner_id", "=", self.customer.id)]
        )
        by_product = {charge.product_id: charge for charge in charges}
        self.assertAlmostEqual(by_product[second].price_unit, 0.0004, places=6)
        self.assertAlmostEqual(by_product[second].amount, 0.024, places=6)
        self.assertAlmostEqual(by_product[self.sms].price_unit, 0.0075, places=6)
        self.assertAlmostEqual(self._wallet().balance, 1.0 - 0.0315, places=6)

    def test_price_decimals_setting(self):
        settings = Form(self.env["res.config.settings"])
        self.assertEqual(settings.billing_price_digits, 6)
        settings.billing_price_digits = 4
        settings.save().execute()
        self.assertEqual(
            self.env["decimal.precision"].precision_get("Product Price"), 4
        )
        settings = Form(self.env["res.config.settings"])
        settings.billing_price_digits = 9
        with self.assertRaisesRegex(Exception, "Price Decimals must be between 2"):
            settings.save().execute()
        # A settings administrator without the Billing Administrator role.
        admin = new_test_user(
            self.env,
            login="settings_admin",
            groups="base.group_system",
            company_id=self.company.id,
            company_ids=[Command.set(self.company.ids)],
        )
        settings = self.env["res.config.settings"].with_user(admin).create({})
        settings.billing_price_digits = 3
        with self.assertRaisesRegex(AccessError, "Only Billing Administrators"):
            settings.execute()

    def test_caller_that_wrote_keeps_its_transaction(self):
        """An integration's call, whose transaction has written nothing, is
        stored at READ COMMITTED in a new transaction; a caller that has written
        something (demo data, a module creating a customer and its usage
        together) keeps its own transaction and what it wrote."""
        self._fund(1.0)
        Charge = self.env["billing.charge"]
        self.assertFalse(Charge._ingest_can_read_committed())
        partner = self.env["res.partner"].create(
            {"name": "New Prepaid", "is_company": True, "billing_mode": "prepaid"}
        )
        result = Charge.ingest([self._prepaid("new", 0.0, partner=partner)])
        self.assertEqual(result, {"created": 1, "duplicates": 0, "rejected": []})
        self.assertTrue(partner.exists())
        self.assertTrue(self._wallet(partner))
