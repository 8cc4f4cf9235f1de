from odoo import Command
from odoo.exceptions import AccessError
from odoo.tests import tagged

from .recurring_common import BillingRecurringCommon


@tagged("post_install", "-at_install")
class TestBillingCompanyRules(BillingRecurringCommon):
    """Every stored billing model has a company and a multi-company rule, so a
    user of one company reads nothing of another's."""

    def test_every_billing_model_has_a_company_rule(self):
        Rule = self.env["ir.rule"].sudo()
        models = [
            name
            for name, model in self.env.registry.items()
            if name.startswith("billing.")
            and not model._transient
            and not model._abstract
            and model._auto
        ]
        self.assertIn("billing.recurring.line", models)
        missing = []
        for name in sorted(models):
            field = self.env[name]._fields.get("company_id")
            rules = Rule.search(
                [("model_id.model", "=", name), ("groups", "=", False)]
            ).filtered(lambda rule: "company_ids" in (rule.domain_force or ""))
            if not (field and field.store and rules):
                missing.append(name)
        self.assertFalse(
            missing, f"billing models without a stored company and its rule: {missing}"
        )

    def test_billing_user_reads_no_child_record_of_another_company(self):
        other = self.setup_other_company()["company"]
        customer = self._postpaid_customer("Other Company Customer")
        schedule = (
            self.env["billing.recurring"]
            .with_company(other)
            .create(
                {
                    "partner_id": customer.id,
                    "company_id": other.id,
                    "interval_type": "month",
                    "interval_number": 1,
                    "line_ids": [
                        Command.create(
                            {
                                "product_id": self.plan.id,
                                "name": "Secret plan",
                                "price_unit": 99.0,
                            }
                        )
                    ],
                    "allowance_ids": [
                        Command.create({"product_id": self.sms.id, "quantity": 100})
                    ],
                }
            )
        )
        # sudo: runs are written by the recurring run only.
        run = (
            self.env["billing.run"]
            .sudo()
            .create(
                {
                    "company_id": other.id,
                    "failure_ids": [
                        Command.create(
                            {
                                "recurring_id": schedule.id,
                                "partner_id": customer.id,
                                "error": "Secret failure",
                            }
                        )
                    ],
                }
            )
        )
        records = {
            "billing.recurring.line": schedule.line_ids,
            "billing.recurring.allowance": schedule.allowance_ids,
            "billing.run.failure": run.failure_ids,
        }
        for name, theirs in records.items():
            self.assertTrue(theirs, name)
            self.assertEqual(theirs.company_id, other, name)
            Model = self.env[name].with_user(self.billing_user)
            found = Model.search_read([], ["id"])
            self.assertFalse(
                {row["id"] for row in found} & set(theirs.ids),
                f"{name}: another company's records are listed",
            )
            with self.assertRaises(AccessError, msg=name):
                Model.browse(theirs.ids).read(["id"])
