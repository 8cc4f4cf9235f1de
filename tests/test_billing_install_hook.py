from odoo import Command
from odoo.tests import tagged
from odoo.tools import SQL, sql

from ..hooks import COMPUTED_COLUMNS, fill_computed_columns, pre_init_hook
from .wallet_common import BillingWalletCommon

# The columns the computed columns depend on, which a database gets with this
# addon: before its install, the hook's SQL runs without them.
DEPENDENCY_COLUMNS = (
    ("product_template", "billing_topup_credit"),
    ("product_template", "billing_is_recharge"),
    ("res_partner", "billing_reseller_id"),
    ("res_company", "billing_wallet_journal_id"),
)


@tagged("post_install", "-at_install")
class TestBillingInstallHook(BillingWalletCommon):
    """The pre-install hook fills the stored computed columns this addon adds to
    ``account_move`` and ``account_payment`` in SQL: the values must be those of
    the ORM computes, for every branch of them."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls._setup_test_provider()
        cls.reseller = cls.env["res.partner"].create(
            {"name": "Hook Reseller", "is_company": True, "is_billing_reseller": True}
        )
        cls.reseller_customer = cls.env["res.partner"].create(
            {
                "name": "Hook Reseller Customer",
                "is_company": True,
                "billing_reseller_id": cls.reseller.id,
            }
        )
        cls.reseller_contact = cls.env["res.partner"].create(
            {"name": "Hook Reseller Contact", "parent_id": cls.reseller_customer.id}
        )
        cls.company_package = cls.env["product.product"].create(
            {
                "name": "Company Credit Package",
                "type": "service",
                "list_price": 10.0,
                "billing_topup_credit": 12.0,
                "company_id": cls.company.id,
                "taxes_id": [Command.clear()],
            }
        )

    def _moves(self):
        """Moves covering every branch of the computes of ``billing_is_topup``
        and ``billing_reseller_id``."""
        Move = self.env["account.move"]
        moves = Move
        for lines, partner in (
            ([(self.package, 1, 100.0)], None),  # credit package: a top-up
            ([(self.recharge, 1, 40.0)], None),  # recharge: a top-up
            ([(self.company_package, 1, 10.0)], None),  # package of the company
            ([(self.service, 1, 30.0)], None),  # plain service: not a top-up
            ([(self.service, 1, 30.0), (self.package, 2, 100.0)], None),
            ([(self.service, 1, 5.0)], self.reseller_contact),  # a reseller's
            ([(self.package, 1, 100.0)], self.reseller_customer),
        ):
            moves |= self._invoice(lines, partner=partner, post=False)
        posted = self._invoice([(self.package, 1, 100.0)])
        moves |= posted
        moves |= Move.create(  # a line without a product
            {
                "move_type": "out_invoice",
                "partner_id": self.customer.id,
                "invoice_line_ids": [
                    Command.create({"name": "Free text", "price_unit": 20.0}),
                    Command.create({"name": "Notes", "display_type": "line_note"}),
                ],
            }
        )
        for move_type, partner in (
            ("out_refund", self.customer),  # a credit note of a package
            ("in_invoice", self.reseller_customer),  # a vendor bill of it
        ):
            moves |= Move.create(
                {
                    "move_type": move_type,
                    "partner_id": partner.id,
                    "invoice_date": "2026-11-01",
                    "invoice_line_ids": [
                        Command.create(
                            {
                                "product_id": self.package.id,
                                "quantity": 1,
                                "price_unit": 100.0,
                                "tax_ids": [Command.clear()],
                            }
                        )
                    ],
                }
            )
        account = self.company_data["default_account_revenue"]
        moves |= Move.create(  # a journal entry without a partner
            {
                "move_type": "entry",
                "line_ids": [
                    Command.create({"account_id": account.id, "debit": 10.0}),
                    Command.create({"account_id": account.id, "credit": 10.0}),
                ],
            }
        )
        return moves

    def _payments(self):
        """Payments covering every branch of ``_compute_billing_payment_method``."""
        bank_paid = self._fund(50.0)  # by bank: a recharge, funding the wallet
        online = self._invoice([(self.service, 1, 15.0)])
        self._transaction(online, "done")
        self.company.billing_wallet_allow_payments = False
        due = self._invoice([(self.service, 1, 20.0)])
        due.action_billing_pay_from_wallet()
        return (
            bank_paid.matched_payment_ids
            | online.matched_payment_ids
            | due.matched_payment_ids
        )

    def _computed(self, records, names):
        """The values of ``names`` on ``records`` as the ORM computes them now."""
        for name in names:
            self.env.add_to_compute(records._fields[name], records)
        records.invalidate_recordset(names)
        values = {
            record.id: tuple(
                record[name].id
                if record._fields[name].type == "many2one"
                else record[name]
                for name in names
            )
            for record in records
        }
        self.env.flush_all()
        return values

    def _stored(self, table, ids, names):
        self.env.cr.execute(
            SQL(
                "SELECT id, %s FROM %s WHERE id = ANY(%s)",
                SQL(", ").join(SQL.identifier(name) for name in names),
                SQL.identifier(table),
                list(ids),
            )
        )
        return {row[0]: tuple(row[1:]) for row in self.env.cr.fetchall()}

    def _reset(self, table, ids, names):
        self.env.flush_all()
        self.env.cr.execute(
            SQL(
                "UPDATE %s SET %s WHERE id = ANY(%s)",
                SQL.identifier(table),
                SQL(", ").join(
                    SQL("%s = NULL", SQL.identifier(name)) for name in names
                ),
                list(ids),
            )
        )
        self.env.invalidate_all()

    def test_fill_equals_compute(self):
        moves, payments = self._moves(), self._payments()
        move_names = ("billing_is_topup", "billing_reseller_id")
        payment_names = ("billing_payment_method",)
        expected_moves = self._computed(moves, move_names)
        expected_payments = self._computed(payments, payment_names)
        # Every branch is there.
        self.assertEqual({value[0] for value in expected_moves.values()}, {True, False})
        self.assertEqual(
            {value[1] for value in expected_moves.values()}, {self.reseller.id, False}
        )
        self.assertEqual(
            sorted(value[0] for value in expected_payments.values()),
            ["bank", "online", "wallet"],
        )
        self.assertEqual(
            [expected_moves[move.id][0] for move in moves],
            [
                True,
                True,
                True,
                False,
                True,
                False,
                True,
                True,
                False,
                False,
                False,
                False,
            ],
        )
        self._reset("account_move", moves.ids, move_names)
        self._reset("account_payment", payments.ids, payment_names)
        fill_computed_columns(self.env.cr, moves.ids, payments.ids)
        stored_moves = self._stored("account_move", moves.ids, move_names)
        self.assertEqual(
            stored_moves,
            {
                move_id: (topup, reseller or None)
                for move_id, (topup, reseller) in expected_moves.items()
            },
        )
        self.assertEqual(
            self._stored("account_payment", payments.ids, payment_names),
            expected_payments,
        )
        # Filling everything again changes nothing of them.
        fill_computed_columns(self.env.cr)
        self.assertEqual(
            self._stored("account_move", moves.ids, move_names), stored_moves
        )

    def test_hook_before_install(self):
        """On a database without the addon (its columns absent), the hook makes
        the columns of the fields' types, so that Odoo keeps them, with the
        values of invoices and payments that predate the addon."""
        moves, payments = self._moves(), self._payments()
        self.env.flush_all()
        cr = self.env.cr
        cr.execute("SAVEPOINT billing_before_install")
        try:
            for table, column, _type, _label in COMPUTED_COLUMNS:
                cr.execute(
                    SQL(
                        "ALTER TABLE %s DROP COLUMN %s",
                        SQL.identifier(table),
                        SQL.identifier(column),
                    )
                )
            for table, column in DEPENDENCY_COLUMNS:
                sql.rename_column(cr, table, column, f"{column}_hidden")
            pre_init_hook(self.env)
            columns = {
                table: sql.table_columns(cr, table)
                for table in ("account_move", "account_payment")
            }
            for table, column, _type, _label in COMPUTED_COLUMNS:
                model = self.env[table.replace("_", ".")]
                self.assertEqual(
                    columns[table][column]["udt_name"],
                    model._fields[column].column_type[0],
                    f"{table}.{column} is not of the type Odoo makes",
                )
                cr.execute(
                    "SELECT column_default FROM information_schema.columns"
                    " WHERE table_name = %s AND column_name = %s",
                    [table, column],
                )
                self.assertIsNone(cr.fetchone()[0], f"{table}.{column} has a default")
            self.assertEqual(
                set(
                    self._stored(
                        "account_move",
                        moves.ids,
                        ["billing_is_topup", "billing_reseller_id"],
                    ).values()
                ),
                {(False, None)},
            )
            online = payments.filtered("payment_transaction_id")
            self.assertEqual(len(online), 1)
            self.assertEqual(
                self._stored(
                    "account_payment", payments.ids, ["billing_payment_method"]
                ),
                {
                    payment.id: ("online" if payment == online else "bank",)
                    for payment in payments
                },
            )
        finally:
            cr.execute("ROLLBACK TO SAVEPOINT billing_before_install")
        self.assertTrue(sql.column_exists(cr, "account_move", "billing_is_topup"))
