import re
import threading
from contextlib import contextmanager
from types import SimpleNamespace

from odoo.tests import new_test_user
from odoo.tests.common import TransactionCase

# A statement that writes: what a refusal must not have sent before it raises.
WRITE_SQL = re.compile(
    r"\b(INSERT\s+INTO|UPDATE\s+\S+\s+SET|DELETE\s+FROM|TRUNCATE)\b", re.IGNORECASE
)


class RollbackAssertMixin:
    """``assertRaisesRegex`` as Odoo's ``assertRaises``: in a savepoint, so that
    the failed operation is rolled back as the request's transaction would be."""

    @contextmanager
    def assertRaisesRegex(self, expected_exception, expected_regex):
        with self.assertRaises(expected_exception) as caught:
            yield caught
        self.assertRegex(str(caught.exception), expected_regex)

    @contextmanager
    def assertRefusedWritingNothing(
        self, expected_exception, expected_regex=None, allowed_sql=None
    ):
        """The block raises ``expected_exception`` (its message matching
        ``expected_regex``) and has written nothing before it raised.

        Unlike ``assertRaises``, no savepoint rolls back what the block wrote, so
        a check after it proves something: any INSERT, UPDATE or DELETE the block
        sent on this transaction's cursor that changed a row, and anything it left
        for the ORM to write (flushed here, tracking included), fails the test. A
        caller that catches the refusal and goes on (a batch, a run, the auto
        payment of a posted invoice) keeps nothing half-written. Only for
        refusals raised in Python: after an SQL error the transaction is aborted.
        ``allowed_sql``: a pattern of the statements the refusal may send (say,
        the creation of the empty wallets it locks before it checks).
        """
        cr = self.env.cr
        cr.flush()  # what was pending before the block is not the block's
        writes = []

        def hook(cursor, query, params, start, delay):
            if cursor is not cr:
                return
            code = query.decode() if isinstance(query, bytes) else str(query)
            code = " ".join(code.split())
            if allowed_sql and re.search(allowed_sql, code):
                return
            if WRITE_SQL.search(code) and cursor.rowcount != 0:
                writes.append(f"{cursor.rowcount} row(s): {code}")

        thread = threading.current_thread()
        hooks = getattr(thread, "query_hooks", ())
        thread.query_hooks = (*hooks, hook)
        caught = SimpleNamespace(exception=None)
        try:
            try:
                yield caught
            except expected_exception as exception:
                caught.exception = exception
            if caught.exception is not None:
                cr.flush()  # what the block left in the cache to write
        finally:
            thread.query_hooks = hooks
        if caught.exception is None:
            self.fail(f"{expected_exception.__name__} not raised")
        if expected_regex is not None:
            self.assertRegex(str(caught.exception), expected_regex)
        self.assertFalse(
            writes, f"refused after writing: {caught.exception}\n" + "\n".join(writes)
        )


class BillingCommon(RollbackAssertMixin, TransactionCase):
    """Fixtures shared by the billing tests: a company offering both modes, its
    billing users and a reseller with one customer."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env = cls.env(context=dict(cls.env.context, tracking_disable=False))
        cls.company = cls.env.company
        cls.company.write(
            {
                "billing_offer_prepaid": True,
                "billing_offer_postpaid": True,
                "billing_default_mode": "prepaid",
            }
        )
        cls.Partner = cls.env["res.partner"]
        cls.billing_user = new_test_user(
            cls.env,
            login="billing_user",
            groups="prepaid_postpaid_billing.group_billing_user",
        )
        cls.billing_manager = new_test_user(
            cls.env,
            login="billing_manager",
            groups="prepaid_postpaid_billing.group_billing_manager",
        )
        cls.internal_user = new_test_user(
            cls.env,
            login="internal_user",
            groups="base.group_user,base.group_partner_manager",
        )
        cls.reseller = cls.Partner.create(
            {"name": "Reseller One", "is_company": True, "is_billing_reseller": True}
        )
        cls.reseller_customer = cls.Partner.create(
            {
                "name": "Reseller Customer",
                "is_company": True,
                "billing_mode": "postpaid",
                "billing_reseller_id": cls.reseller.id,
            }
        )
        cls.direct_customer = cls.Partner.create(
            {"name": "Direct Customer", "is_company": True}
        )
        cls.reseller_contact = cls.Partner.create(
            {"name": "Reseller Agent", "parent_id": cls.reseller.id}
        )
        cls.reseller_user = new_test_user(
            cls.env,
            login="reseller_user",
            partner_id=cls.reseller_contact.id,
            groups="prepaid_postpaid_billing.group_billing_reseller",
        )
        cls.customer_contact = cls.Partner.create(
            {"name": "Customer Contact", "parent_id": cls.direct_customer.id}
        )
        cls.portal_user = new_test_user(
            cls.env,
            login="portal_customer",
            partner_id=cls.customer_contact.id,
            groups="base.group_portal",
        )

    def _flush_tracking(self):
        """Run the precommit hooks that write tracking values into the chatter."""
        self.env.flush_all()
        self.env.cr.flush()

    def _tracked_fields(self, partner):
        """Names of the fields tracked in the chatter of ``partner``."""
        self._flush_tracking()
        return set(partner.message_ids.tracking_value_ids.field_id.mapped("name"))
