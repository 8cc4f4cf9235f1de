import random
import re
import sys
import threading
import time
import traceback
from collections import defaultdict
from decimal import Decimal

from odoo import SUPERUSER_ID, Command, api
from odoo.exceptions import AccessDenied
from odoo.service.model import (
    MAX_TRIES_ON_CONCURRENCY_FAILURE,
    PG_CONCURRENCY_EXCEPTIONS_TO_RETRY,
)
from odoo.tests import TransactionCase, tagged
from odoo.tools import float_compare, mute_logger

# How long a posting thread may take before the test gives up on it: far more
# than a posting and Odoo's retries of a serialization failure (at most
# 2 + 4 + 8 + 16 s of pause) take.
THREAD_TIMEOUT = 60


def _retrying(act, env, retried=None):
    """``act(env)``, then commit; on a serialization failure or a deadlock
    rolled back and done again, at most MAX_TRIES_ON_CONCURRENCY_FAILURE times,
    as ``odoo.service.model.retrying`` does for a request, but without its
    reset of the registry: the test runner holds the registry's lock while
    the tests run, and a thread would wait for it forever. Each retry is
    counted in ``retried`` (a list) when given."""
    for tries_left in range(MAX_TRIES_ON_CONCURRENCY_FAILURE - 1, -1, -1):
        try:
            result = act(env)
            env.flush_all()
            env.cr.commit()
            return result
        except PG_CONCURRENCY_EXCEPTIONS_TO_RETRY:
            env.cr.rollback()
            env.clear()
            if not tries_left:
                raise
            if retried is not None:
                retried.append(act)
            time.sleep(random.uniform(0.0, 0.5))
    raise AssertionError("unreachable")


def run_at_once(test, jobs, retried=None):
    """Run each of ``jobs`` ({label: (read, act)}, functions of an environment)
    in a thread of its own, on a cursor of its own, at the same moment: each
    thread calls ``read`` first (its transaction's snapshot is then taken before
    any of the others acts), all wait for each other, then call ``act`` and
    commit, retried on a serialization failure as Odoo retries a request
    (see ``_retrying``). Returns {label: (True, what ``act``
    returned) or (False, the exception it raised)}, each retry counted in
    ``retried`` (a list) when given; fails the test when a thread hangs."""
    barrier = threading.Barrier(len(jobs), timeout=THREAD_TIMEOUT)
    outcomes = {}
    dbname = test.env.cr.dbname

    def work(label, read, act):
        try:
            with test.registry.cursor() as cr:
                # The registry of the cursor's transaction given, not looked
                # up by name: the test runner holds the lock of that look-up
                # while the tests run, and a thread would wait for it.
                cr.transaction = api.Transaction(test.registry)
                env = api.Environment(cr, SUPERUSER_ID, {})
                read(env)
                barrier.wait()
                outcomes[label] = (True, _retrying(act, env, retried))
        except Exception as error:  # noqa: BLE001 (reported to the test)
            barrier.abort()
            outcomes[label] = (False, error)

    threads = []
    for label, (read, act) in jobs.items():
        thread = threading.Thread(target=work, args=(label, read, act))
        # As the test's own thread: the database in the logs, and the code
        # that checks whether it runs in a test (no auto-commit, no message
        # sent for real) told so.
        thread.dbname = dbname
        thread.testing = True
        threads.append(thread)
    # The statement a concurrent change fails (a serialization failure, the
    # duplicate number retried by Odoo's sequence) is logged as a bad query:
    # expected here.
    with mute_logger("odoo.sql_db"):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(THREAD_TIMEOUT)
    hanging = [thread.name for thread in threads if thread.is_alive()]
    if hanging:
        barrier.abort()
        with test.registry.cursor() as cr:
            cr.execute(
                "SELECT pid, state, wait_event_type, wait_event, LEFT(query, 300) "
                "FROM pg_stat_activity WHERE datname = current_database()"
            )
            activity = cr.fetchall()
        names = {thread.ident: thread.name for thread in threads}
        stacks = "".join(
            f"{names[ident]}:\n{''.join(traceback.format_stack(frame))}"
            for ident, frame in sys._current_frames().items()
            if ident in names
        )
        test.fail(
            f"threads hang: {hanging}; outcomes: {outcomes}; database "
            f"sessions: {activity}; where they are:\n{stacks}"
        )
    return outcomes


@tagged("post_install", "-at_install")
class TestBillingResellerConcurrency(TransactionCase):
    """Two resellers posting invoices at the same moment, each on its own
    cursor in its own thread, never share or skip a number, and neither do two
    invoices of the same reseller posted at the same moment.

    The threads only see committed data: the fixtures are committed on a cursor
    of their own, and removed again after the test (as Odoo's
    ``TestSequenceMixinConcurrency`` does)."""

    def setUp(self):
        super().setUp()
        company = self.env.company
        if not company.chart_template:
            self.skipTest(f"company {company.name} has no chart of accounts")
        self.data, data = {}, {}
        self.addCleanup(self._clean_up)
        # Committed on a cursor of its own, not the test's, for the threads to
        # see them.
        with self.registry.cursor() as fixture_cr:
            env = api.Environment(fixture_cr, SUPERUSER_ID, {})
            Partner = env["res.partner"]
            product = env["product.product"].create(
                {
                    "name": "Concurrency Test Service",
                    "type": "service",
                    "list_price": 10.0,
                    "taxes_id": [Command.clear()],
                }
            )
            data["product_id"] = product.id
            resellers = Partner.create(
                [
                    {
                        "name": "Concurrency Reseller A",
                        "is_company": True,
                        "is_billing_reseller": True,
                        "billing_invoice_prefix": "CONC-A",
                    },
                    {
                        "name": "Concurrency Reseller B",
                        "is_company": True,
                        "is_billing_reseller": True,
                        "billing_invoice_prefix": "CONC-B",
                    },
                ]
            )
            data["reseller_ids"] = resellers.ids
            data["journal_ids"] = resellers.billing_journal_id.ids
            reseller_a, reseller_b = resellers
            customers = Partner.create(
                [
                    {
                        "name": name,
                        "is_company": True,
                        "billing_reseller_id": reseller.id,
                    }
                    for name, reseller in (
                        ("Concurrency Customer A1", reseller_a),
                        ("Concurrency Customer A2", reseller_a),
                        ("Concurrency Customer B1", reseller_b),
                    )
                ]
            )
            data["customer_ids"] = customers.ids
            customer_a1, customer_a2, customer_b1 = customers
            moves = env["account.move"].create(
                [
                    {
                        "move_type": "out_invoice",
                        "partner_id": customer.id,
                        "invoice_date": "2026-11-02",
                        "invoice_line_ids": [
                            Command.create(
                                {
                                    "product_id": product.id,
                                    "price_unit": 10.0,
                                    "tax_ids": [Command.clear()],
                                }
                            )
                        ],
                    }
                    for customer in (customer_a1, customer_b1, customer_a1, customer_a2)
                ]
            )
            data["move_ids"] = moves.ids
            # The invoices of a reseller's customers are in the reseller's
            # journal as soon as they are created.
            self.assertEqual(
                moves.journal_id.ids,
                [reseller_a.billing_journal_id.id, reseller_b.billing_journal_id.id],
            )
            self.assertEqual(set(moves.mapped("state")), {"draft"})
            fixture_cr.commit()
        self.data = data  # committed: removed again after the test

    def _clean_up(self):
        """Remove what the test committed: the invoices, the customers, the
        resellers' journals, the resellers and the product."""
        if not self.data:
            return
        with self.registry.cursor() as cleanup_cr:
            env = api.Environment(cleanup_cr, SUPERUSER_ID, {})
            moves = env["account.move"].browse(self.data.get("move_ids", [])).exists()
            moves.filtered(lambda m: m.state in ("posted", "cancel")).button_draft()
            moves.posted_before = False
            moves.unlink()
            env["res.partner"].browse(self.data.get("customer_ids", [])).unlink()
            env["account.journal"].browse(self.data.get("journal_ids", [])).unlink()
            env["res.partner"].browse(self.data.get("reseller_ids", [])).unlink()
            env["product.product"].browse(self.data.get("product_id", [])).unlink()
            cleanup_cr.commit()

    def _post_at_once(self, move_ids):
        """Post each of ``move_ids`` in a thread of its own, on a cursor of its
        own, at the same moment (see ``run_at_once``). Returns the errors of
        the threads (none expected)."""
        outcomes = run_at_once(
            self,
            {
                move_id: (
                    lambda env, move_id=move_id: self.assertEqual(
                        env["account.move"].browse(move_id).state, "draft"
                    ),
                    lambda env, move_id=move_id: (
                        env["account.move"].browse(move_id).action_post()
                    ),
                )
                for move_id in move_ids
            },
        )
        return [
            f"invoice {move_id}: {outcome!r}"
            for move_id, (ok, outcome) in outcomes.items()
            if not ok
        ]

    def _committed_moves(self):
        """The test's invoices as committed, read on a fresh cursor: (name,
        journal id, state) per invoice, in the order of ``move_ids``."""
        with self.registry.cursor() as cr:
            cr.execute(
                "SELECT id, name, journal_id, state FROM account_move "
                "WHERE id = ANY(%s)",
                [self.data["move_ids"]],
            )
            rows = {row[0]: row[1:] for row in cr.fetchall()}
        return [rows[move_id] for move_id in self.data["move_ids"]]

    def test_two_resellers_and_one_reseller_post_at_the_same_moment(self):
        a1, b1, a2, a3 = self.data["move_ids"]
        journal_a, journal_b = self.data["journal_ids"]

        # Two resellers at the same moment: each its own first number.
        self.assertEqual(self._post_at_once([a1, b1]), [])
        moves = self._committed_moves()
        self.assertEqual(
            moves[:2],
            [
                ("CONC-A/2026/00001", journal_a, "posted"),
                ("CONC-B/2026/00001", journal_b, "posted"),
            ],
        )

        # Two invoices of the same reseller at the same moment: the one that
        # posts second started before the other's number was committed, does
        # not see it, and still takes the next number, not the same one.
        self.assertEqual(self._post_at_once([a2, a3]), [])
        moves = self._committed_moves()
        self.assertEqual(
            sorted(moves[2:]),
            [
                ("CONC-A/2026/00002", journal_a, "posted"),
                ("CONC-A/2026/00003", journal_a, "posted"),
            ],
        )
        # Nothing else was numbered in these journals: no gap, no duplicate.
        with self.registry.cursor() as cr:
            cr.execute(
                """
                SELECT journal_id, ARRAY_AGG(name ORDER BY name)
                  FROM account_move
                 WHERE journal_id = ANY(%s) AND name != '/'
              GROUP BY journal_id
                """,
                [self.data["journal_ids"]],
            )
            numbered = dict(cr.fetchall())
        self.assertEqual(
            numbered,
            {
                journal_a: [
                    "CONC-A/2026/00001",
                    "CONC-A/2026/00002",
                    "CONC-A/2026/00003",
                ],
                journal_b: ["CONC-B/2026/00001"],
            },
        )


@tagged("post_install", "-at_install")
class TestBillingResellerRechargeConcurrency(TransactionCase):
    """Recharges of one reseller sent at the same moment, each on its own
    cursor in its own thread: its balance is never spent twice, and a form
    sent twice at once recharges once.

    The fixtures are committed on a cursor of their own and removed again
    after the test; wallet movements and the entries that book them cannot be
    deleted through the ORM, so the clean-up deletes them in SQL."""

    def setUp(self):
        super().setUp()
        company = self.env.company
        if not (
            company.billing_wallet_account_id and company.billing_wallet_journal_id
        ):
            self.skipTest(f"company {company.name} has no wallet account")
        self.data = {}
        self.addCleanup(self._clean_up)
        with self.registry.cursor() as fixture_cr:
            env = api.Environment(fixture_cr, SUPERUSER_ID, {})
            Partner = env["res.partner"]
            reseller = Partner.create(
                {
                    "name": "Concurrent Recharger",
                    "is_company": True,
                    "is_billing_reseller": True,
                    "billing_invoice_prefix": "CONC-R",
                }
            )
            customers = Partner.create(
                [
                    {
                        "name": f"Concurrently Recharged {letter}",
                        "is_company": True,
                        "billing_mode": "prepaid",
                        "billing_reseller_id": reseller.id,
                    }
                    for letter in "XY"
                ]
            )
            partners = reseller | customers
            wallets = env["billing.wallet"]._get_wallets(partners, env.company)
            wallets[reseller.id]._apply_movements(
                [
                    {
                        "kind": "manual",
                        "name": "Concurrency test credit",
                        "amount": 100.0,
                        "idempotency_key": f"concurrency-credit-{reseller.id}",
                    }
                ]
            )
            self.data = {
                "reseller_id": reseller.id,
                "customer_ids": customers.ids,
                "partner_ids": partners.ids,
                "journal_ids": reseller.billing_journal_id.ids,
                "company_id": env.company.id,
            }
            fixture_cr.commit()

    def _clean_up(self):
        if not self.data:
            return
        with self.registry.cursor() as cleanup_cr:
            partner_ids = self.data["partner_ids"]
            cleanup_cr.execute(
                """
                SELECT ARRAY_AGG(DISTINCT m.account_move_id)
                  FROM billing_wallet_move m
                  JOIN billing_wallet w ON w.id = m.wallet_id
                 WHERE w.partner_id = ANY(%s) AND m.account_move_id IS NOT NULL
                """,
                [partner_ids],
            )
            entry_ids = cleanup_cr.fetchone()[0] or []
            cleanup_cr.execute(
                "DELETE FROM billing_wallet_move WHERE wallet_id IN "
                "(SELECT id FROM billing_wallet WHERE partner_id = ANY(%s))",
                [partner_ids],
            )
            cleanup_cr.execute(
                "DELETE FROM account_move_line WHERE move_id = ANY(%s)", [entry_ids]
            )
            cleanup_cr.execute(
                "DELETE FROM account_move WHERE id = ANY(%s)", [entry_ids]
            )
            cleanup_cr.execute(
                "DELETE FROM billing_wallet WHERE partner_id = ANY(%s)", [partner_ids]
            )
            env = api.Environment(cleanup_cr, SUPERUSER_ID, {})
            env["res.partner"].browse(self.data["customer_ids"]).unlink()
            env["account.journal"].browse(self.data["journal_ids"]).unlink()
            env["res.partner"].browse(self.data["reseller_id"]).unlink()
            cleanup_cr.commit()

    def _recharge_job(self, customer_id, amount, key):
        def read(env):
            return (
                env["billing.wallet"].search([("partner_id", "=", customer_id)]).balance
            )

        def act(env):
            Partner = env["res.partner"]
            entry, replayed = env["billing.wallet"]._reseller_recharge(
                Partner.browse(self.data["reseller_id"]),
                Partner.browse(customer_id),
                amount,
                key,
                env["res.company"].browse(self.data["company_id"]),
            )
            return entry.id, replayed

        return read, act

    def _committed(self):
        """(balance per partner id, recharge movements, entries) as committed."""
        with self.registry.cursor() as cr:
            cr.execute(
                "SELECT partner_id, balance::text FROM billing_wallet"
                " WHERE partner_id = ANY(%s)",
                [self.data["partner_ids"]],
            )
            balances = {partner: Decimal(text) for partner, text in cr.fetchall()}
            cr.execute(
                """
                SELECT COUNT(*), COUNT(DISTINCT account_move_id)
                  FROM billing_wallet_move m JOIN billing_wallet w ON w.id = m.wallet_id
                 WHERE w.partner_id = ANY(%s) AND m.kind = 'recharge'
                """,
                [self.data["partner_ids"]],
            )
            movements, entries = cr.fetchone()
        return balances, movements, entries

    def test_concurrent_recharges_never_spend_the_balance_twice(self):
        reseller = self.data["reseller_id"]
        x, y = self.data["customer_ids"]
        # 60 to X and 60 to Y at once, from 100: one is refused.
        retried = []
        outcomes = run_at_once(
            self,
            {
                "x": self._recharge_job(x, 60.0, "concurrent-key-x"),
                "y": self._recharge_job(y, 60.0, "concurrent-key-y"),
            },
            retried,
        )
        # Both started from the same balance: the one that locked the
        # reseller's wallet second met the other's committed change and was
        # done again.
        self.assertTrue(retried, "the two recharges did not overlap")
        done = [label for label, (ok, _result) in outcomes.items() if ok]
        refused = {
            label: str(result) for label, (ok, result) in outcomes.items() if not ok
        }
        self.assertEqual(len(done), 1, outcomes)
        self.assertEqual(len(refused), 1, outcomes)
        self.assertIn("does not cover", next(iter(refused.values())))
        balances, movements, entries = self._committed()
        winner = x if done == ["x"] else y
        loser = y if winner == x else x
        self.assertEqual(
            balances,
            {reseller: Decimal(40), winner: Decimal(60), loser: Decimal(0)},
        )
        self.assertEqual((movements, entries), (2, 1))

        # The same form sent twice at once: one recharge of 10 to the winner.
        retried = []
        outcomes = run_at_once(
            self,
            {
                "first": self._recharge_job(winner, 10.0, "concurrent-key-twice"),
                "again": self._recharge_job(winner, 10.0, "concurrent-key-twice"),
            },
            retried,
        )
        self.assertTrue(retried, "the two submissions did not overlap")
        self.assertTrue(all(ok for ok, _result in outcomes.values()), outcomes)
        replays = sorted(result[1] for _ok, result in outcomes.values())
        self.assertEqual(replays, [False, True])
        self.assertEqual(len({result[0] for _ok, result in outcomes.values()}), 1)
        balances, movements, entries = self._committed()
        self.assertEqual(
            balances,
            {reseller: Decimal(30), winner: Decimal(70), loser: Decimal(0)},
        )
        self.assertEqual((movements, entries), (4, 2))


@tagged("post_install", "-at_install")
class TestBillingResellerDemo(TransactionCase):
    """The demo data gives a new user a working reseller portal: two
    resellers with their portal logins, each with a funded wallet and a prepaid
    and a postpaid customer with usage and invoices in every state, numbered in
    the reseller's journal.

    Runs on a database with the demo data only, skipped elsewhere: the suite
    of ``scripts/test`` runs on a database without demo data; ``scripts/test``
    runs this class when it installs the demo data on a second database."""

    RESELLERS = (
        # (reseller, login, prefix, wallet balance)
        # Relay's 300 less the 25 it recharged to Kiez Cafe.
        ("res_partner_demo_reseller", "reseller", "RELAY", 275.0),
        ("res_partner_demo_reseller2", "reseller2", "AUR", 150.0),
    )

    def setUp(self):
        super().setUp()
        if not self.env.ref(
            "prepaid_postpaid_billing.res_partner_demo_prepaid",
            raise_if_not_found=False,
        ):
            self.skipTest("the demo data of prepaid_postpaid_billing is not installed")

    def _wallet(self, partner):
        return (
            self.env["billing.wallet"]
            .sudo()
            ._get_wallet(partner, self.env.company, create=False)
        )

    def assertBooksMatchWallet(self, partner):
        """Invariant 1: the partner's credit on the wallet account is its wallet
        balance plus its consumption not yet posted."""
        company = self.env.company
        lines = self.env["account.move.line"].search(
            [
                ("account_id", "=", company.billing_wallet_account_id.id),
                ("partner_id", "=", partner.id),
                ("parent_state", "=", "posted"),
            ]
        )
        credit = -sum(lines.mapped("balance"))
        wallet = self._wallet(partner)
        self.assertTrue(wallet, f"{partner.name} has no wallet")
        expected = wallet.balance + wallet.unposted_consumption
        self.assertEqual(
            company.currency_id.compare_amounts(credit, expected),
            0,
            f"{partner.name}: wallet account {credit}, wallet {expected}",
        )

    def test_demo_resellers(self):
        Partner = self.env["res.partner"]
        group = self.env.ref("prepaid_postpaid_billing.group_billing_reseller")
        all_customers = Partner.search(
            Partner._billing_reseller_customers_domain(
                [
                    self.env.ref(f"prepaid_postpaid_billing.{xmlid}").id
                    for xmlid, *_rest in self.RESELLERS
                ]
            )
        )
        for xmlid, login, prefix, balance in self.RESELLERS:
            reseller = self.env.ref(f"prepaid_postpaid_billing.{xmlid}")
            with self.subTest(reseller=reseller.name):
                self._check_reseller(reseller, login, prefix, balance, group)
                customers = Partner.search(
                    Partner._billing_reseller_customers_domain(reseller.ids)
                )
                self._check_portal_user(reseller, login, customers, all_customers)

    def _check_reseller(self, reseller, login, prefix, balance, group):
        currency = self.env.company.currency_id
        self.assertTrue(reseller.is_billing_reseller)
        self.assertEqual(reseller.billing_invoice_prefix, prefix)
        journal = reseller.billing_journal_id
        self.assertEqual(journal.billing_reseller_id, reseller)
        # Its own wallet, funded by a paid credit package bought from the
        # company (the company's journal, not its own).
        self.assertEqual(reseller.billing_mode, "prepaid")
        self.assertEqual(
            float_compare(reseller.billing_balance, balance, precision_digits=6), 0
        )
        topups = self.env["account.move"].search(
            [("partner_id", "=", reseller.id), ("billing_is_topup", "=", True)]
        )
        self.assertTrue(topups)
        self.assertEqual(set(topups.mapped("payment_state")), {"paid"})
        self.assertFalse(topups.journal_id.billing_reseller_id)
        self.assertBooksMatchWallet(reseller)
        recharges = self.env["billing.wallet.move"].search(
            [("kind", "=", "recharge"), ("partner_id", "=", reseller.id)]
        )
        if login == "reseller":
            # Its recharge of Kiez Cafe, in both ledgers, by one entry.
            self.assertEqual(recharges.mapped("amount"), [-25.0])
            credit = self.env["billing.wallet.move"].search(
                [("kind", "=", "recharge"), ("partner_id", "!=", reseller.id)]
            )
            self.assertEqual(credit.mapped("amount"), [25.0])
            self.assertEqual(credit.account_move_id, recharges.account_move_id)
            self.assertEqual(credit.partner_id.billing_reseller_id, reseller)

        customers = self.env["res.partner"].search(
            self.env["res.partner"]._billing_reseller_customers_domain(reseller.ids)
        )
        self.assertEqual(set(customers.mapped("billing_mode")), {"prepaid", "postpaid"})
        Charge = self.env["billing.charge"]
        for customer in customers:
            charges = Charge.search([("partner_id", "=", customer.id)])
            self.assertTrue(charges, f"{customer.name} has no usage")
            if customer.billing_mode == "prepaid":
                # Paid from its wallet, which a paid top-up funded.
                self.assertEqual(set(charges.mapped("state")), {"debited"})
                self.assertEqual(
                    currency.compare_amounts(customer.billing_balance, 0), 1
                )
                self.assertBooksMatchWallet(customer)
            else:
                self.assertEqual(set(charges.mapped("state")), {"pending"})

        # Its customers' invoices, all in its journal, in every state.
        invoices = self.env["account.move"].search(
            [("partner_id", "in", customers.ids), ("move_type", "like", "out_")]
        )
        self.assertEqual(invoices.journal_id, journal)
        posted = invoices.filtered(lambda m: m.state == "posted")
        states = {
            (move.move_type, move.payment_state, move.billing_due_status)
            for move in posted
        }
        for expected in (
            ("out_invoice", "paid", False),
            ("out_invoice", "not_paid", "overdue"),
            ("out_invoice", "not_paid", "not_due"),
            ("out_invoice", "reversed", False),
            ("out_refund", "paid", False),
        ):
            self.assertIn(expected, states)
        self.assertIn("draft", invoices.mapped("state"))
        # Numbered with its prefix, per type and year from 1, without a gap.
        numbers = defaultdict(list)
        for move in posted:
            head = ("R" if move.move_type == "out_refund" else "") + prefix
            match = re.fullmatch(rf"{re.escape(head)}/(\d{{4}})/(\d{{5}})", move.name)
            self.assertTrue(match, f"{move.name} is not numbered {head}/YYYY/NNNNN")
            self.assertEqual(int(match[1]), move.date.year)
            numbers[head, match[1]].append(int(match[2]))
        for key, sequence in numbers.items():
            self.assertEqual(sorted(sequence), list(range(1, len(sequence) + 1)), key)

    def _check_portal_user(self, reseller, login, customers, all_customers):
        user = self.env["res.users"].search([("login", "=", login)])
        self.assertEqual(user.partner_id.commercial_partner_id, reseller)
        self.assertTrue(user.share)
        self.assertTrue(
            user.has_group("prepaid_postpaid_billing.group_billing_reseller")
        )
        self.assertTrue(user.has_group("base.group_portal"))
        # The password is the login.
        user.with_user(user)._check_credentials(
            {"login": login, "password": login, "type": "password"},
            {"interactive": False},
        )
        with self.assertRaises(AccessDenied):
            user.with_user(user)._check_credentials(
                {"login": login, "password": "not-" + login, "type": "password"},
                {"interactive": False},
            )
        # It sees its own customers and their wallets, not the other reseller's.
        seen = (
            self.env["res.partner"]
            .with_user(user)
            .search([("id", "in", all_customers.ids)])
        )
        self.assertEqual(seen, customers)
        wallets = self.env["billing.wallet"].with_user(user).search([])
        self.assertEqual(
            wallets.partner_id,
            reseller | customers.filtered(lambda c: c.billing_mode == "prepaid"),
        )
        charges = self.env["billing.charge"].with_user(user).search([])
        self.assertEqual(charges.partner_id, customers)
