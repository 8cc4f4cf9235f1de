from odoo import SUPERUSER_ID, Command, api
from odoo.tests import TransactionCase, tagged

from .test_billing_reseller_concurrency import run_at_once

RECORDS = 2000


@tagged("post_install", "-at_install")
class TestBillingIngestConcurrency(TransactionCase):
    """Ingest calls on real, committed transactions, each on its own cursor.
    Two calls sending the same references at once: the COPY of one waits for
    the other's rows, or the two deadlock when the references come in opposite
    orders; either way the one that meets the other's rows is undone to its
    savepoint and stores through the staging table, where the references
    already stored are duplicates. Each record is stored once, and both calls
    succeed."""

    def setUp(self):
        super().setUp()
        self.data = {}
        self.addCleanup(self._clean_up)
        with self.registry.cursor() as fixture_cr:
            env = api.Environment(fixture_cr, SUPERUSER_ID, {})
            self.data["product_id"] = (
                env["product.product"]
                .create(
                    {
                        "name": "Concurrently Ingested SMS",
                        "type": "service",
                        "list_price": 0.05,
                        "taxes_id": [Command.clear()],
                    }
                )
                .id
            )
            self.data["partner_id"] = (
                env["res.partner"]
                .create(
                    {
                        "name": "Concurrent Ingest Postpaid",
                        "is_company": True,
                        "billing_mode": "postpaid",
                    }
                )
                .id
            )
            fixture_cr.commit()

    def _clean_up(self):
        with self.registry.cursor() as cleanup_cr:
            cleanup_cr.execute(
                "DELETE FROM billing_charge WHERE partner_id = %s",
                [self.data["partner_id"]],
            )
            env = api.Environment(cleanup_cr, SUPERUSER_ID, {})
            env["res.partner"].browse(self.data["partner_id"]).unlink()
            env["product.product"].browse(self.data["product_id"]).unlink()
            cleanup_cr.commit()

    def _records(self, numbers):
        return [
            {
                "partner_id": self.data["partner_id"],
                "product_id": self.data["product_id"],
                "date": "2000-01-10 10:00:00",
                "quantity": 1,
                "external_ref": f"concurrent-ingest-{number:05d}",
            }
            for number in numbers
        ]

    def _job(self, records):
        def read(env):
            return env["res.partner"].search_count(
                [("id", "=", self.data["partner_id"])]
            )

        def act(env):
            return env["billing.charge"].ingest(records)

        return read, act

    def test_same_references_at_once_in_opposite_orders_stored_once(self):
        numbers = list(range(RECORDS))
        outcomes = run_at_once(
            self,
            {
                "forward": self._job(self._records(numbers)),
                "backward": self._job(self._records(reversed(numbers))),
            },
        )
        for label, (succeeded, result) in outcomes.items():
            self.assertTrue(succeeded, f"{label}: {result!r}")
            self.assertFalse(result["rejected"], label)
            self.assertEqual(result["created"] + result["duplicates"], RECORDS, label)
        results = [result for _succeeded, result in outcomes.values()]
        self.assertEqual(sum(result["created"] for result in results), RECORDS)
        self.assertEqual(sum(result["duplicates"] for result in results), RECORDS)
        with self.registry.cursor() as cr:
            cr.execute(
                "SELECT COUNT(*), COUNT(DISTINCT external_ref) FROM billing_charge"
                " WHERE partner_id = %s",
                [self.data["partner_id"]],
            )
            self.assertEqual(cr.fetchone(), (RECORDS, RECORDS))
