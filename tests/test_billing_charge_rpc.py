from odoo import Command
from odoo.tests import HttpCase, new_test_user, tagged


@tagged("post_install", "-at_install")
class TestBillingChargeRpc(HttpCase):
    """Integrations push usage over the external API."""

    def test_ingest_over_xmlrpc(self):
        integration = new_test_user(
            self.env,
            login="usage_integration",
            password="usage_integration",
            groups="prepaid_postpaid_billing.group_billing_user",
        )
        partner = self.env["res.partner"].create(
            {"name": "RPC Postpaid", "billing_mode": "postpaid"}
        )
        product = self.env["product.product"].create(
            {"name": "RPC SMS", "type": "service", "list_price": 0.05}
        )
        records = [
            {
                "partner_id": partner.id,
                "product_id": product.id,
                "date": "2026-10-01 12:00:00",
                "quantity": 2,
                "external_ref": f"rpc-{index}",
            }
            for index in range(3)
        ]
        records.append({**records[0], "external_ref": "rpc-bad", "quantity": -1})
        result = self.xmlrpc_object.execute_kw(
            self.env.cr.dbname,
            integration.id,
            "usage_integration",
            "billing.charge",
            "ingest",
            [records],
        )
        self.assertEqual(result["created"], 3)
        self.assertEqual(result["duplicates"], 0)
        self.assertEqual(result["rejected"][0]["external_ref"], "rpc-bad")
        again = self.xmlrpc_object.execute_kw(
            self.env.cr.dbname,
            integration.id,
            "usage_integration",
            "billing.charge",
            "ingest",
            [records[:3]],
        )
        self.assertEqual(again, {"created": 0, "duplicates": 3, "rejected": []})
        charges = self.env["billing.charge"].search([("partner_id", "=", partner.id)])
        self.assertEqual(len(charges), 3)
        self.assertAlmostEqual(sum(charges.mapped("amount")), 0.3, places=6)

    def test_ingest_refused_to_users_without_billing_role(self):
        new_test_user(
            self.env,
            login="plain_user",
            password="plain_user",
            groups="base.group_user",
            company_ids=[Command.set(self.env.company.ids)],
        )
        uid = self.xmlrpc_common.authenticate(
            self.env.cr.dbname, "plain_user", "plain_user", {}
        )
        with self.assertRaises(Exception) as caught:
            self.xmlrpc_object.execute_kw(
                self.env.cr.dbname,
                uid,
                "plain_user",
                "billing.charge",
                "ingest",
                [[{"external_ref": "x"}]],
            )
        self.assertIn("Only Billing Users", str(caught.exception))
