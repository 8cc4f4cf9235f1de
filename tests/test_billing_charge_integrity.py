from datetime import date
from unittest.mock import patch

from odoo import Command
from odoo.exceptions import UserError
from odoo.tests import new_test_user, tagged
from odoo.tools import SQL

from ..models.billing_charge import UNCONSTRAINED_COLUMNS, CopyLines, IngestRetry
from .recurring_common import BillingRecurringCommon
from .service_common import BillingServiceCommon


@tagged("post_install", "-at_install")
class TestBillingChargeIntegrity(BillingServiceCommon):
    """Usage records have no database foreign key: what they point to cannot be
    deleted while they do, but invoice lines, whose deletion empties the links
    to them."""

    def _ingest(self, ref, partner=None, product=None, env=None):
        Charge = (env or self.env)["billing.charge"]
        result = Charge.ingest(
            [
                {
                    "partner_id": (partner or self.postpaid).id,
                    "product_id": (product or self.sms).id,
                    "date": "2026-10-15 10:00:00",
                    "quantity": 2,
                    "external_ref": ref,
                }
            ]
        )
        self.assertEqual(result["created"], 1, result)
        return self.env["billing.charge"].search([("external_ref", "=", ref)])

    def _foreign_keys(self):
        self.env.cr.execute(
            SQL(
                """
                SELECT a.attname FROM pg_constraint c
                  JOIN pg_attribute a
                    ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey)
                 WHERE c.contype = 'f' AND c.conrelid = 'billing_charge'::regclass
                """
            )
        )
        return {row[0] for row in self.env.cr.fetchall()}

    def test_no_foreign_keys_on_the_ingested_columns_even_after_an_update(self):
        self.assertFalse(self._foreign_keys())
        self.assertLessEqual(
            {"invoice_line_id", "cancelled_line_id", "service_id"},
            set(UNCONSTRAINED_COLUMNS),
        )
        # A database of an earlier version had them: init drops them.
        self.env.cr.execute(
            SQL(
                "ALTER TABLE billing_charge ADD FOREIGN KEY (product_id) "
                "REFERENCES product_product(id) ON DELETE RESTRICT"
            )
        )
        self.env.cr.execute(
            SQL(
                "ALTER TABLE billing_charge ADD FOREIGN KEY (invoice_line_id) "
                "REFERENCES account_move_line(id) ON DELETE SET NULL"
            )
        )
        self.assertEqual(self._foreign_keys(), {"product_id", "invoice_line_id"})
        # A module update (as Odoo's loading runs it) does not add them back.
        self.registry.init_models(
            self.env.cr, ["billing.charge"], {"module": "prepaid_postpaid_billing"}
        )
        self.assertFalse(self._foreign_keys() & set(UNCONSTRAINED_COLUMNS))

    def _indexes(self):
        self.env.cr.execute(
            SQL(
                "SELECT indexname, indexdef FROM pg_indexes "
                "WHERE tablename = 'billing_charge'"
            )
        )
        return dict(self.env.cr.fetchall())

    def test_one_index_of_the_customer_state_and_date_after_an_update(self):
        """The searches by customer and the recurring run's pending records of a
        customer share one index, and the lists' order by date and the Service
        search another; a database of an earlier version had two of each, which
        the update drops, and one of the wallet movement, which the consumption
        posting no longer reads (usage_amounts)."""
        indexes = self._indexes()
        self.assertIn(
            "(partner_id, state, date)",
            indexes["billing_charge_partner_state_date_idx"],
        )
        self.assertIn("(date, product_id)", indexes["billing_charge_date_product_idx"])
        earlier = {
            "billing_charge__partner_id_index",
            "billing_charge_pending_partner_date_idx",
            "billing_charge__wallet_move_id_index",
            "billing_charge__date_index",
            "billing_charge__product_id_index",
        }
        self.assertFalse(earlier & set(indexes))
        self.env.cr.execute(
            SQL(
                "CREATE INDEX billing_charge__partner_id_index "
                "ON billing_charge (partner_id); "
                "CREATE INDEX billing_charge_pending_partner_date_idx "
                "ON billing_charge (partner_id, date) WHERE state = 'pending'; "
                "CREATE INDEX billing_charge__wallet_move_id_index "
                "ON billing_charge (wallet_move_id) WHERE wallet_move_id IS NOT NULL; "
                "CREATE INDEX billing_charge__date_index ON billing_charge (date); "
                "CREATE INDEX billing_charge__product_id_index "
                "ON billing_charge (product_id)"
            )
        )
        self.assertLessEqual(earlier, set(self._indexes()))
        self.registry.init_models(
            self.env.cr, ["billing.charge"], {"module": "prepaid_postpaid_billing"}
        )
        self.assertEqual(self._indexes(), indexes)

    def _date_defaults(self):
        self.env.cr.execute(
            SQL(
                """
                SELECT column_name, column_default FROM information_schema.columns
                 WHERE table_name = 'billing_charge'
                   AND column_name IN ('create_date', 'write_date')
                """
            )
        )
        return dict(self.env.cr.fetchall())

    def test_ingested_records_dated_by_their_transaction_even_after_an_update(self):
        """The COPY of the ingest sends no date of creation or change: the
        columns' defaults give the transaction's time, as the ORM gives it,
        and a module update gives them back to a table that lost them."""
        self.env.cr.execute(SQL("SELECT now() AT TIME ZONE 'UTC'"))
        now = self.env.cr.fetchone()[0]
        user = new_test_user(
            self.env,
            login="int-dates",
            groups="base.group_user,prepaid_postpaid_billing.group_billing_user",
        )
        Charge = type(self.env["billing.charge"])
        with patch.object(
            Charge, "_ingest_copy", autospec=True, side_effect=Charge._ingest_copy
        ) as streamed:
            charge = self._ingest("int-dates", env=self.env(user=user))
        self.assertEqual(streamed.call_count, 1)
        self.env.cr.execute(
            SQL(
                "SELECT create_date, write_date, create_uid, write_uid "
                "FROM billing_charge WHERE id = %s",
                charge.id,
            )
        )
        self.assertEqual(self.env.cr.fetchone(), (now, now, user.id, user.id))
        self.assertEqual(
            (charge.create_date, charge.write_date, charge.create_uid), (now, now, user)
        )
        defaults = self._date_defaults()
        self.assertEqual(set(defaults), {"create_date", "write_date"})
        self.assertTrue(all("now()" in default for default in defaults.values()))
        self.env.cr.execute(
            SQL(
                "ALTER TABLE billing_charge ALTER COLUMN create_date DROP DEFAULT, "
                "ALTER COLUMN write_date DROP DEFAULT"
            )
        )
        self.assertEqual(set(self._date_defaults().values()), {None})
        self.registry.init_models(
            self.env.cr, ["billing.charge"], {"module": "prepaid_postpaid_billing"}
        )
        self.assertEqual(self._date_defaults(), defaults)
        again = self._ingest("int-dates-again")
        self.assertEqual((again.create_date, again.write_date), (now, now))

    def test_customer_with_usage_cannot_be_deleted(self):
        charge = self._ingest("int-partner")
        with self.assertRefusedWritingNothing(UserError, "usage records refer to it"):
            self.postpaid.unlink()
        self.assertTrue(self.postpaid.exists())
        self.assertEqual(charge.partner_id, self.postpaid)
        # A contact of the customer is not what charges point to: it goes.
        contact = self.env["res.partner"].create(
            {"name": "Contact", "parent_id": self.postpaid.id}
        )
        self._ingest("int-contact", partner=contact)
        contact.unlink()
        self.assertFalse(contact.exists())
        unused = self._postpaid_customer("Never Used")
        unused.unlink()
        self.assertFalse(unused.exists())

    def test_service_with_usage_cannot_be_deleted(self):
        self._ingest("int-product")
        with self.assertRefusedWritingNothing(UserError, "usage records refer to it"):
            self.sms.unlink()
        # Deleting the template would delete the variant in the database.
        with self.assertRefusedWritingNothing(UserError, "usage records refer to it"):
            self.sms.product_tmpl_id.unlink()
        self.assertTrue(self.sms.exists())
        # Archived variants count as well.
        self.sms.active = False
        with self.assertRefusedWritingNothing(UserError, "usage records refer to it"):
            self.sms.product_tmpl_id.unlink()
        self.assertTrue(self.sms.exists())
        self.plan.product_tmpl_id.unlink()
        self.assertFalse(self.plan.exists())

    def test_company_with_usage_cannot_be_deleted(self):
        other = self.env["res.company"].create({"name": "Other Billing Co"})
        self.env.user.company_ids += other
        self._ingest(
            "int-company", env=self.env(context={"allowed_company_ids": [other.id]})
        )
        charge = self.env["billing.charge"].search(
            [("external_ref", "=", "int-company")]
        )
        self.assertEqual(charge.company_id, other)
        with self.assertRefusedWritingNothing(UserError, "usage records refer to it"):
            other.unlink()
        self.assertTrue(other.exists())

    def test_wallet_movement_of_usage_cannot_be_deleted(self):
        self._fund(10.0, self.customer)
        charge = self._ingest("int-wallet", partner=self.customer)
        self.assertEqual(charge.state, "debited")
        with self.assertRefusedWritingNothing(UserError):
            charge.wallet_move_id.unlink()
        self.assertTrue(charge.wallet_move_id.exists())

    def _links(self, column, lines):
        """Charges whose ``column`` holds one of the ids of ``lines``, in SQL."""
        self.env.flush_all()
        self.env.cr.execute(
            SQL(
                "SELECT count(*) FROM billing_charge WHERE %s = ANY(%s)",
                SQL.identifier(column),
                lines.ids,
            )
        )
        return self.env.cr.fetchone()[0]

    def test_deleted_invoice_lines_are_emptied_from_their_charges(self):
        """As ``ON DELETE SET NULL`` did: a deleted draft invoice's charges go
        back to pending, linked to no line; a deleted cancelled invoice's
        charges forget the line that billed them."""
        schedule = self._schedule()
        self._usage(self.postpaid, self.sms, "2026-10-03", count=2)
        self._run()
        invoice = self._invoices(schedule)
        lines = invoice.invoice_line_ids
        charges = self.env["billing.charge"].search(
            [("partner_id", "=", self.postpaid.id)]
        )
        self.assertEqual(charges.invoice_line_id, lines)
        invoice.button_cancel()
        self.assertEqual(set(charges.mapped("state")), {"pending"})
        self.assertEqual(charges.cancelled_line_id, lines)
        invoice.unlink()
        self.assertFalse(invoice.exists())
        self.assertEqual(self._links("cancelled_line_id", lines), 0)
        self.assertEqual(self._links("invoice_line_id", lines), 0)
        self.assertFalse(charges.cancelled_line_id)
        self.assertEqual(set(charges.mapped("state")), {"pending"})
        # Billed again, then the line deleted from the draft.
        self._run(today=date(2026, 12, 2))
        again = self._invoices(schedule)
        line = again.invoice_line_ids.filtered(lambda l: l.product_id == self.sms)
        self.assertEqual(charges.invoice_line_id, line)
        again.write({"invoice_line_ids": [Command.delete(line.id)]})
        self.assertEqual(self._links("invoice_line_id", line), 0)
        self.assertFalse(charges.invoice_line_id)
        self.assertEqual(set(charges.mapped("state")), {"pending"})
        # Every charge still names an invoice line that exists.
        self.env.flush_all()
        self.env.cr.execute(
            SQL(
                """
                SELECT c.id, c.state, c.invoice_line_id, c.cancelled_line_id,
                       c.external_ref
                  FROM billing_charge c
             LEFT JOIN account_move_line i ON i.id = c.invoice_line_id
             LEFT JOIN account_move_line x ON x.id = c.cancelled_line_id
                 WHERE (c.invoice_line_id IS NOT NULL AND i.id IS NULL)
                    OR (c.cancelled_line_id IS NOT NULL AND x.id IS NULL)
                """
            )
        )
        self.assertEqual(self.env.cr.fetchall(), [])

    def test_service_with_renewals_cannot_be_deleted(self):
        service = self._service(partner=self.postpaid)
        charge = service.charge_ids
        self.assertEqual(len(charge), 1)
        service.action_close()
        with self.assertRefusedWritingNothing(UserError, "cannot be deleted"):
            service.unlink()
        self.assertTrue(service.exists())
        self.assertEqual(charge.service_id, service)
        # The charges are counted in SQL as well, whoever may read them.
        with self.assertRefusedWritingNothing(UserError, "usage records refer to it"):
            self.env["billing.charge"]._check_unreferenced(service, "service_id")
        # A service never charged goes.
        unused = self._service(partner=self.postpaid, activate=False)
        unused.unlink()
        self.assertFalse(unused.exists())

    def test_deleted_user_is_forgotten_by_usage_records(self):
        user = new_test_user(
            self.env,
            login="usage_sender",
            groups="base.group_user,prepaid_postpaid_billing.group_billing_user",
        )
        charge = self._ingest("int-user", env=self.env(user=user))
        self.assertEqual(charge.create_uid, user)
        self.assertEqual(charge.write_uid, user)
        user.unlink()
        self.assertFalse(user.exists())
        self.assertFalse(charge.create_uid)
        self.assertFalse(charge.write_uid)
        self.env.cr.execute(
            SQL(
                "SELECT count(*) FROM billing_charge WHERE create_uid = %s "
                "OR write_uid = %s",
                user.id,
                user.id,
            )
        )
        self.assertEqual(self.env.cr.fetchone()[0], 0)

    def test_merging_contacts_carries_their_usage_records_over(self):
        """Odoo's contact merge re-points foreign keys it finds in the database:
        the usage records' customer has none, and is re-pointed all the same, so
        the merge is not refused and no record is left on the merged contact."""
        duplicate = self._postpaid_customer("Postpaid One Duplicate")
        charge = self._ingest("merge-1", partner=duplicate)
        kept = self._ingest("merge-2")
        self.env["base.partner.merge.automatic.wizard"]._merge(
            [self.postpaid.id, duplicate.id], self.postpaid, extra_checks=False
        )
        self.assertFalse(duplicate.exists())
        self.env.invalidate_all()
        self.assertEqual(charge.partner_id, self.postpaid)
        self.assertEqual(kept.partner_id, self.postpaid)
        self.assertEqual(
            self.env["billing.charge"].search_count(
                [("partner_id", "=", self.postpaid.id)]
            ),
            2,
        )


@tagged("post_install", "-at_install")
class TestBillingChargeIngestVolume(BillingRecurringCommon):
    """Ingest at volume: records copied to a staging table as text, prices
    computed once per pricelist, service and set of pricelist rules their
    quantity reaches."""

    def test_text_with_tabs_line_ends_and_backslashes_stored_as_sent(self):
        Charge = self.env["billing.charge"]
        refs = ["tab\there", "line\nend", "back\\slash\\N", "cr\rlf", "é€ ünï"]
        records = [
            {
                "partner_id": self.postpaid.id,
                "product_id": self.sms.id,
                "date": "2026-10-15 10:00:00.250000",
                "quantity": 1.5,
                "external_ref": ref,
                "name": f"name of {ref}\t\\",
            }
            for ref in refs
        ]
        self.assertEqual(Charge.ingest(records)["created"], len(refs))
        charges = Charge.search([("external_ref", "in", refs)])
        self.assertEqual(sorted(charges.mapped("external_ref")), sorted(refs))
        for charge in charges:
            self.assertEqual(charge.name, f"name of {charge.external_ref}\t\\")
            self.assertEqual(str(charge.date), "2026-10-15 10:00:00.250000")
            self.assertEqual(charge.quantity, 1.5)
        # Sent again in the same transaction: the staging table of the first
        # call holds nothing for the second.
        again = Charge.ingest(records + [{**records[0], "external_ref": "new"}])
        self.assertEqual((again["created"], again["duplicates"]), (1, len(refs)))
        # A call rolled back (its staging table with it), then another.
        with self.assertRaises(UserError), self.env.cr.savepoint():
            Charge.ingest([{**records[0], "external_ref": "rolled back"}])
            raise UserError(self.env._("roll back"))
        self.assertEqual(
            Charge.ingest([{**records[0], "external_ref": "after"}])["created"], 1
        )
        self.assertFalse(Charge.search([("external_ref", "=", "rolled back")]))

    def _stored(self):
        """The usage records and the wallet, as the database holds them."""
        self.env.flush_all()
        self.env.cr.execute(
            SQL(
                """
                SELECT external_ref, partner_id, state, quantity, price_unit, amount,
                       name, date, wallet_move_id IS NOT NULL
                  FROM billing_charge WHERE external_ref LIKE 'both-%%'
              ORDER BY external_ref
                """
            )
        )
        rows = self.env.cr.fetchall()
        self.env.cr.execute(
            SQL(
                "SELECT balance, unposted_consumption FROM billing_wallet "
                "WHERE id = %s",
                self._wallet().id,
            )
        )
        return rows, self.env.cr.fetchone()

    def test_streamed_and_staged_ways_store_and_reject_alike(self):
        """A batch of new records is streamed into the table (COPY); one that
        names a stored reference goes through the staging table: the same
        batch gives the same answer and the same rows either way."""
        self._fund(1.0)
        good = {"product_id": self.sms.id, "date": "2026-10-15 10:00:00"}
        records = [
            {
                **good,
                "partner_id": self.postpaid.id,
                "quantity": 2,
                "external_ref": "both-post-1",
            },
            {
                **good,
                "partner_id": self.postpaid.id,
                "quantity": 0.004,
                "price_unit": 0.0075,
                "external_ref": "both-post-2",
                "name": "a\tb",
            },
            # 3 x 0.3 of a balance of 1.00: the fourth is refused.
            *(
                {
                    **good,
                    "partner_id": self.customer.id,
                    "quantity": 3,
                    "price_unit": 0.1,
                    "external_ref": f"both-pre-{n}",
                }
                for n in range(4)
            ),
            {
                **good,
                "partner_id": self.customer.id,
                "quantity": 0.5,
                "external_ref": "both-pre-small",
            },
            {
                **good,
                "partner_id": self.postpaid.id,
                "quantity": "2",
                "external_ref": "both-text-quantity",
            },
            {
                **good,
                "partner_id": self.postpaid.id,
                "quantity": 1e9,
                "price_unit": 1.0,
                "external_ref": "both-too-much",
            },
            {
                **good,
                "partner_id": self.postpaid.id,
                "quantity": 1,
                "date": "15/10/2026",
                "external_ref": "both-bad-date",
            },
            {**good, "partner_id": -1, "quantity": 1, "external_ref": "both-nobody"},
            {
                **good,
                "partner_id": self.postpaid.id,
                "quantity": 1,
                "external_ref": "both-post-1",
            },
        ]
        Charge = type(self.env["billing.charge"])
        # No query runs while COPY reads the records (it would break the COPY):
        # reasons are given their text after.
        read, queries = CopyLines._read, []

        def counted_read(lines, size=-1):
            before = self.env.cr.sql_log_count
            chunk = read(lines, size)
            queries.append(self.env.cr.sql_log_count - before)
            return chunk

        with (
            self.env.cr.savepoint() as savepoint,
            patch.object(CopyLines, "read", counted_read),
        ):
            streamed = self.env["billing.charge"].ingest(records)
            streamed_rows = self._stored()
            savepoint.rollback()
        self.assertEqual(queries, [0, 0], "one read of the records, one of the end")
        self.env.invalidate_all()
        self.assertFalse(self._stored()[0])

        def staged(charge, records):
            raise IngestRetry("the staging table")

        with patch.object(Charge, "_ingest_copy", staged):
            again = self.env["billing.charge"].ingest(records)
        # The same answer; the streamed way gives the rejected in the order sent.
        self.assertEqual(
            (again["created"], again["duplicates"]),
            (streamed["created"], streamed["duplicates"]),
        )
        self.assertCountEqual(again["rejected"], streamed["rejected"])
        self.assertEqual(
            [entry["external_ref"] for entry in streamed["rejected"]],
            [
                "both-pre-3",
                "both-too-much",
                "both-bad-date",
                "both-nobody",
                "both-post-1",
            ],
        )
        self.assertEqual(self._stored(), streamed_rows)
        self.assertEqual(streamed["created"], 7, streamed)
        self.assertEqual(
            {rejected["external_ref"] for rejected in streamed["rejected"]},
            {
                "both-pre-3",
                "both-too-much",
                "both-bad-date",
                "both-nobody",
                "both-post-1",
            },
        )
        # The stored references sent again, with a new one: the staging way.
        with patch.object(
            Charge, "_ingest_staged", autospec=True, side_effect=Charge._ingest_staged
        ) as fallback:
            result = self.env["billing.charge"].ingest(
                records[:3] + [{**records[0], "external_ref": "both-new"}]
            )
        self.assertEqual(fallback.call_count, 1)
        self.assertEqual((result["created"], result["duplicates"]), (1, 3))
        self.assertEqual(self._stored()[1], streamed_rows[1])  # nothing paid twice

    def test_quantity_breaks_priced_exactly_and_once_per_break(self):
        volume = self.env["product.pricelist"].create(
            {
                "name": "Volume",
                "currency_id": self.currency.id,
                "item_ids": [
                    Command.create(
                        {
                            "applied_on": "0_product_variant",
                            "product_id": self.sms.id,
                            "compute_price": "fixed",
                            "fixed_price": fixed,
                            "min_quantity": minimum,
                        }
                    )
                    for minimum, fixed in ((0, 0.05), (100, 0.04), (1000, 0.03))
                ],
            }
        )
        # Based on Volume, with a break of its own: both pricelists' breaks count.
        reseller = self.env["product.pricelist"].create(
            {
                "name": "Reseller",
                "currency_id": self.currency.id,
                "item_ids": [
                    Command.create(
                        {
                            "applied_on": "3_global",
                            "compute_price": "formula",
                            "base": "pricelist",
                            "base_pricelist_id": volume.id,
                            "price_discount": 10,
                        }
                    ),
                    Command.create(
                        {
                            "applied_on": "3_global",
                            "compute_price": "formula",
                            "base": "pricelist",
                            "base_pricelist_id": volume.id,
                            "price_discount": 20,
                            "min_quantity": 500,
                        }
                    ),
                ],
            }
        )
        flat = self.env["product.pricelist"].create(
            {
                "name": "Flat",
                "currency_id": self.currency.id,
                "item_ids": [
                    Command.create(
                        {
                            "applied_on": "0_product_variant",
                            "product_id": self.sms.id,
                            "compute_price": "fixed",
                            "fixed_price": 0.02,
                        }
                    )
                ],
            }
        )
        customers = {}
        for pricelist in (volume, reseller, flat):
            customers[pricelist] = self._postpaid_customer(f"On {pricelist.name}")
            customers[pricelist].property_product_pricelist = pricelist
        quantities = [1, 99.5, 100, 100.25, 499, 500, 999.999, 1000, 5000, 3]
        records = [
            {
                "partner_id": customers[pricelist].id,
                "product_id": self.sms.id,
                "date": "2026-10-15 10:00:00",
                "quantity": quantity,
                "external_ref": f"break-{pricelist.name}-{index}",
            }
            for pricelist in (volume, reseller, flat)
            for index, quantity in enumerate(quantities)
        ]
        Pricelist = type(self.env["product.pricelist"])
        original = Pricelist._get_product_price
        calls = []

        def counted(pricelist, product, quantity, *args, **kwargs):
            calls.append((pricelist.id, quantity))
            return original(pricelist, product, quantity, *args, **kwargs)

        with patch.object(Pricelist, "_get_product_price", counted):
            result = self.env["billing.charge"].ingest(records)
        self.assertEqual(result["created"], len(records), result)
        # Volume: below 100, 100 to 1000, from 1000 (3); Reseller: those and
        # its own 500 (4), each pricing Volume once more; Flat: no break (1).
        # Ten quantities each: 30 prices were the cache by quantity.
        self.assertEqual(
            {
                pricelist_id: sum(1 for call in calls if call[0] == pricelist_id)
                for pricelist_id in (volume.id, reseller.id, flat.id)
            },
            {volume.id: 3 + 4, reseller.id: 4, flat.id: 1},
        )
        charges = {
            charge.external_ref: charge
            for charge in self.env["billing.charge"].search(
                [("external_ref", "=like", "break-%")]
            )
        }
        for pricelist in (volume, reseller, flat):
            for index, quantity in enumerate(quantities):
                charge = charges[f"break-{pricelist.name}-{index}"]
                expected = round(pricelist._get_product_price(self.sms, quantity), 6)
                self.assertAlmostEqual(charge.price_unit, expected, places=6)
                self.assertAlmostEqual(
                    charge.amount, round(quantity * expected, 6), places=6
                )
        self.assertAlmostEqual(charges["break-Volume-1"].price_unit, 0.05, places=6)
        self.assertAlmostEqual(charges["break-Volume-2"].price_unit, 0.04, places=6)
        self.assertAlmostEqual(charges["break-Volume-7"].price_unit, 0.03, places=6)
        self.assertAlmostEqual(charges["break-Reseller-4"].price_unit, 0.036, places=6)
        self.assertAlmostEqual(charges["break-Reseller-5"].price_unit, 0.032, places=6)
        self.assertAlmostEqual(charges["break-Reseller-8"].price_unit, 0.024, places=6)
