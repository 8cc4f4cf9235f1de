import logging
from collections import Counter
from decimal import Decimal
from unittest.mock import patch

from dateutil.relativedelta import relativedelta
from freezegun import freeze_time

from odoo import SUPERUSER_ID, Command, api, fields
from odoo.tests import TransactionCase, tagged

from odoo.addons.prepaid_postpaid_billing.models.billing_service import (
    BillingService,
)

from .test_billing_reseller_concurrency import run_at_once

_logger = logging.getLogger(__name__)

PRICE = Decimal(10)


@tagged("post_install", "-at_install")
class TestBillingServiceConcurrency(TransactionCase):
    """Renewal runs at the same moment, each on its own cursor in its own
    thread, as two cron workers, a cron worker and a manager's Run Now, or a
    run and a top-up of a suspended customer are in production: every period
    of every service is charged exactly once, none is skipped, a prepaid
    wallet is debited once per period and never below zero.

    The threads only see committed data: the fixtures are committed on a
    cursor of their own and removed again after the test (as in
    ``TestBillingResellerConcurrency``). Charges, wallet movements, runs and
    the services' messages cannot all be deleted through the ORM (a charged
    service cannot be deleted), so the clean-up deletes them in SQL."""

    def setUp(self):
        super().setUp()
        company = self.env.company
        if not (
            company.billing_wallet_account_id and company.billing_wallet_journal_id
        ):
            self.skipTest(f"company {company.name} has no wallet account")
        self.data = {"partner_ids": [], "service_ids": [], "product_ids": []}
        self.addCleanup(self._clean_up)
        with self.registry.cursor() as fixture_cr:
            env = api.Environment(fixture_cr, SUPERUSER_ID, {})
            # The day the runs renew for: the day the services' own credit
            # path (``_resume_for_wallet``) renews for as well.
            self.today = fields.Date.context_today(env["billing.service"])
            fixture_cr.execute("SELECT COALESCE(MAX(id), 0) FROM billing_run")
            self.data["run_floor"] = fixture_cr.fetchone()[0]
            product = env["product.product"].create(
                {
                    "name": "Concurrently Renewed Number",
                    "type": "service",
                    "list_price": float(PRICE),
                    "taxes_id": [Command.clear()],
                }
            )
            self.data["product_ids"].append(product.id)
            # A period not paid suspends its service at once.
            self.assertEqual(env.company.billing_service_grace_days, 0)
            fixture_cr.commit()

    # -------------------------------------------------------------------------
    # Fixtures, committed
    # -------------------------------------------------------------------------

    def _committed_env(self, cr):
        return api.Environment(cr, SUPERUSER_ID, {})

    def _customer(self, env, name, mode, credit=0):
        partner = env["res.partner"].create(
            {
                "name": name,
                "is_company": True,
                "email": f"{name.lower().replace(' ', '.')}@example.com",
                "billing_mode": mode,
            }
        )
        self.data["partner_ids"].append(partner.id)
        if credit:
            self._credit(env, partner, credit, f"fixture-{partner.id}-{credit}")
        return partner

    def _credit(self, env, partner, amount, key):
        wallet = env["billing.wallet"]._get_wallet(partner, env.company)
        return wallet._apply_movements(
            [
                {
                    "kind": "manual",
                    "name": "Concurrency test credit",
                    "amount": float(amount),
                    "idempotency_key": key,
                }
            ]
        )

    def _service(self, env, partner, months_ago=0, days_ago=0):
        """A monthly service of ``partner`` at 10 started ``months_ago`` months
        and ``days_ago`` days before today, activated on its start date (its
        first period charged then): the periods since are due, as after a
        scheduler that did not run."""
        start = self.today - relativedelta(months=months_ago, days=days_ago)
        service = env["billing.service"].create(
            {
                "partner_id": partner.id,
                "product_id": self.data["product_ids"][0],
                "name": f"{partner.name} number {len(self.data['service_ids']) + 1}",
                "price_unit": float(PRICE),
                "interval_type": "month",
                "interval_number": 1,
                "date_start": start,
            }
        )
        self.data["service_ids"].append(service.id)
        with freeze_time(start):
            service.action_activate()
        return service

    def _due_services(self):
        """Prepaid customers with enough credit and an under-funded one, a
        postpaid customer; services with three periods missed, one or two
        missed, and one not due. Returns {service id: periods the runs must
        charge: all due, or as many as the credit covers}."""
        with self.registry.cursor() as fixture_cr:
            env = self._committed_env(fixture_cr)
            funded = self._customer(env, "Renewed Prepaid Funded", "prepaid", 200)
            other = self._customer(env, "Renewed Prepaid Other", "prepaid", 100)
            short = self._customer(env, "Renewed Prepaid Short", "prepaid", 10)
            postpaid = self._customer(env, "Renewed Postpaid", "postpaid")
            services = [
                (self._service(env, funded, months_ago=3), None),
                (self._service(env, funded, months_ago=3), None),
                (self._service(env, funded, months_ago=1), None),
                (self._service(env, funded, days_ago=10), None),
                (self._service(env, other, months_ago=3), None),
                (self._service(env, other, months_ago=2), None),
                # Its first period paid by its 10; 20 more cover two of the
                # three periods missed: the third suspends it.
                (self._service(env, short, months_ago=3), 2),
                (self._service(env, postpaid, months_ago=3), None),
                (self._service(env, postpaid, months_ago=2), None),
                (self._service(env, postpaid, months_ago=1), None),
            ]
            self._credit(env, short, 20, f"fixture-{short.id}-more")
            expected = {}
            for service, covered in services:
                self.assertEqual(service.state, "active")
                self.assertEqual(len(service.charge_ids), 1)
                due = self._periods_until(service.date_start, self.today)[1:]
                expected[service.id] = due if covered is None else due[:covered]
            fixture_cr.commit()
        self.assertEqual(
            sorted(len(due) for due in expected.values()),
            [0, 1, 1, 2, 2, 2, 3, 3, 3, 3],
        )
        return expected

    @staticmethod
    def _periods_until(start, today):
        """Starts of the monthly periods from ``start`` up to ``today``."""
        periods, index = [], 0
        while start + relativedelta(months=index) <= today:
            periods.append(start + relativedelta(months=index))
            index += 1
        return periods

    def _clean_up(self):
        """Remove what the test committed, and what the runs committed."""
        data = self.data
        with self.registry.cursor() as cleanup_cr:
            services, partners = data["service_ids"], data["partner_ids"]
            cleanup_cr.execute(
                "DELETE FROM mail_message WHERE model = 'billing.service' "
                "AND res_id = ANY(%s)",
                [services],
            )
            cleanup_cr.execute(
                "DELETE FROM mail_followers WHERE res_model = 'billing.service' "
                "AND res_id = ANY(%s)",
                [services],
            )
            cleanup_cr.execute(
                "DELETE FROM billing_run WHERE id > %s", [data.get("run_floor", 0)]
            )
            cleanup_cr.execute(
                "DELETE FROM billing_charge WHERE service_id = ANY(%s) "
                "OR partner_id = ANY(%s)",
                [services, partners],
            )
            cleanup_cr.execute(
                """
                SELECT ARRAY_AGG(DISTINCT m.account_move_id)
                  FROM billing_wallet_move m
                  JOIN billing_wallet w ON w.id = m.wallet_id
                 WHERE w.partner_id = ANY(%s) AND m.account_move_id IS NOT NULL
                """,
                [partners],
            )
            entry_ids = cleanup_cr.fetchone()[0] or []
            cleanup_cr.execute(
                "DELETE FROM billing_wallet_move WHERE wallet_id IN "
                "(SELECT id FROM billing_wallet WHERE partner_id = ANY(%s))",
                [partners],
            )
            cleanup_cr.execute(
                "DELETE FROM account_move_line WHERE move_id = ANY(%s)", [entry_ids]
            )
            cleanup_cr.execute(
                "DELETE FROM account_move WHERE id = ANY(%s)", [entry_ids]
            )
            cleanup_cr.execute(
                "DELETE FROM billing_service WHERE id = ANY(%s)", [services]
            )
            cleanup_cr.execute(
                "DELETE FROM billing_wallet WHERE partner_id = ANY(%s)", [partners]
            )
            env = self._committed_env(cleanup_cr)
            env["res.partner"].browse(partners).unlink()
            env["product.product"].browse(data["product_ids"]).unlink()
            cleanup_cr.commit()

    # -------------------------------------------------------------------------
    # What was committed
    # -------------------------------------------------------------------------

    def _committed(self):
        """What the threads committed, read on a fresh cursor: charges per
        service (period starts, in order, with their states), the services
        (state, next renewal), the wallets (balance, the renewal movements
        made since the fixtures: amounts, balances after), the renewal runs."""
        with self.registry.cursor() as cr:
            services = self.data["service_ids"]
            cr.execute(
                """
                SELECT service_id, service_period_start, state, amount::text,
                       wallet_move_id
                  FROM billing_charge WHERE service_id = ANY(%s)
              ORDER BY service_id, service_period_start
                """,
                [services],
            )
            charges = {}
            for service, start, state, amount, move in cr.fetchall():
                charges.setdefault(service, []).append(
                    (start, state, Decimal(amount), move)
                )
            cr.execute(
                "SELECT id, state, next_date FROM billing_service WHERE id = ANY(%s)",
                [services],
            )
            states = {row[0]: row[1:] for row in cr.fetchall()}
            cr.execute(
                """
                SELECT w.partner_id, w.balance::text,
                       ARRAY_AGG(m.amount::text ORDER BY m.id)
                           FILTER (WHERE m.kind = 'renewal' AND m.id > %s),
                       ARRAY_AGG(m.balance_after::text ORDER BY m.id)
                           FILTER (WHERE m.kind = 'renewal' AND m.id > %s),
                       ARRAY_AGG(m.id ORDER BY m.id)
                           FILTER (WHERE m.kind = 'renewal' AND m.id > %s)
                  FROM billing_wallet w
             LEFT JOIN billing_wallet_move m ON m.wallet_id = w.id
                 WHERE w.partner_id = ANY(%s)
              GROUP BY w.partner_id, w.balance
                """,
                [self.data["move_floor"]] * 3 + [self.data["partner_ids"]],
            )
            wallets = {
                partner: (
                    Decimal(balance),
                    [Decimal(a) for a in amounts or []],
                    [Decimal(b) for b in after or []],
                    move_ids or [],
                )
                for partner, balance, amounts, after, move_ids in cr.fetchall()
            }
            cr.execute(
                "SELECT state, COALESCE(charge_count, 0), kind FROM billing_run"
                " WHERE id > %s",
                [self.data["run_floor"]],
            )
            runs = cr.fetchall()
        return charges, states, wallets, runs

    def _mark_moves(self):
        """From now on, the wallet movements ``_committed`` reports."""
        with self.registry.cursor() as cr:
            cr.execute("SELECT COALESCE(MAX(id), 0) FROM billing_wallet_move")
            self.data["move_floor"] = cr.fetchone()[0]

    def _snapshot(self):
        """Charges per service and wallets before the runs (see ``_committed``);
        the movements made from now on are the runs'."""
        self._mark_moves()
        charges, _states, wallets, _runs = self._committed()
        return charges, {partner: wallet[0] for partner, wallet in wallets.items()}

    def assertRenewedOnce(self, expected, before, after):
        """Each service of ``expected`` charged once for each period it lists,
        after the periods charged ``before``, none skipped, none twice; each
        prepaid wallet debited once per period it paid, never below zero, each
        debit from the balance the previous one left."""
        charges_before, balances_before = before
        charges, states, wallets, runs = after
        with self.registry.cursor() as cr:
            env = self._committed_env(cr)
            services = env["billing.service"].browse(expected)
            info = {
                service.id: (
                    service.partner_id.id,
                    service.partner_id.billing_mode,
                    service.date_start,
                )
                for service in services
            }
        debited = Counter()
        for service_id, due in expected.items():
            partner_id, mode, start = info[service_id]
            old = [charge[0] for charge in charges_before.get(service_id, [])]
            periods = [charge[0] for charge in charges.get(service_id, [])]
            with self.subTest(service=service_id):
                # Consecutive periods from the start, each once: the old ones
                # and the due ones, nothing skipped, nothing twice.
                self.assertEqual(periods, old + due)
                self.assertEqual(
                    periods, self._periods_until(start, self.today)[: len(periods)]
                )
                new = [c for c in charges[service_id] if c[0] in due]
                self.assertEqual({c[2] for c in new}, {PRICE} if new else set())
                state, next_date = states[service_id]
                fully_paid = periods == self._periods_until(start, self.today)
                if mode == "prepaid":
                    self.assertEqual({c[1] for c in new}, {"debited"} if new else set())
                    self.assertTrue(all(c[3] for c in new), new)
                    debited[partner_id] += len(new)
                else:
                    self.assertEqual({c[1] for c in new}, {"pending"} if new else set())
                    self.assertFalse([c[3] for c in new if c[3]])
                # The next renewal is the first period not paid: after today
                # for a service paid up, else the unpaid period (suspended).
                self.assertEqual(next_date, start + relativedelta(months=len(periods)))
                self.assertEqual(state, "active" if fully_paid else "suspended")
        for partner_id, (balance, amounts, after_balances, move_ids) in wallets.items():
            with self.subTest(wallet=partner_id):
                self.assertGreaterEqual(balance, 0)
                count = debited[partner_id]
                # One debit of 10 per period paid, the balance lowered by
                # exactly that.
                self.assertEqual(amounts, [-PRICE] * count)
                self.assertEqual(balance, balances_before[partner_id] - PRICE * count)
                # Each debit from the balance the previous one left: no two
                # from the same balance, whatever order they were made in.
                self.assertEqual(
                    sorted(after_balances),
                    [balance + PRICE * index for index in range(count)],
                )
                linked = {
                    c[3]
                    for service_id in expected
                    if info[service_id][0] == partner_id
                    for c in charges.get(service_id, [])
                    if c[3] in move_ids
                }
                self.assertEqual(linked, set(move_ids))
        # The runs' figures count each charge once, and none failed.
        total = sum(
            len(charges.get(s, [])) - len(charges_before.get(s, [])) for s in expected
        )
        self.assertEqual(sum(run[1] for run in runs if run[2] == "renewal"), total)
        self.assertFalse([run for run in runs if run[0] in ("failed", "running")])

    def _committed_then_completed(self, expected, before):
        """What the runs at once committed; a run that met the other's
        committed work stops and leaves the rest to the next run (invariant
        5): what it left, each service's charges still consecutive from its
        start, is renewed by one more run, as the next cron would."""
        charges, states, _wallets, _runs = self._committed()
        left = [
            service_id
            for service_id, (state, next_date) in states.items()
            if service_id in expected and state == "active" and next_date <= self.today
        ]
        if left:
            for service_id in left:
                periods = [charge[0] for charge in charges.get(service_id, [])]
                old = [charge[0] for charge in before[0].get(service_id, [])]
                due = expected[service_id]
                self.assertEqual(periods, old + due[: len(periods) - len(old)])
            _logger.info("%d services left to the next run: %s", len(left), left)
            with self.registry.cursor() as run_cr:
                env = self._committed_env(run_cr)
                env["billing.service"]._renewal_run(today=self.today)
                run_cr.commit()
        return self._committed()

    def _run_job(self, **kwargs):
        """A renewal run as of today, with its snapshot taken before the other
        thread acts."""

        def read(env):
            return env["billing.service"].search_count(
                [("id", "in", self.data["service_ids"])]
            )

        def act(env):
            return env["billing.service"]._renewal_run(today=self.today, **kwargs).ids

        return read, act

    def _report(self, case, retried, runs):
        """Log how the work was shared: the runs' states and charges, the
        retries."""
        _logger.info(
            "%s: runs (state, charges) %s, %d retries of a serialization failure "
            "or deadlock",
            case,
            sorted(run[:2] for run in runs),
            len(retried),
        )

    # -------------------------------------------------------------------------
    # Tests
    # -------------------------------------------------------------------------

    def test_two_cron_runs_at_once(self):
        """Two scheduled runs (committing each batch of two) at once."""
        expected = self._due_services()
        before = self._snapshot()
        retried = []
        outcomes = run_at_once(
            self,
            {
                "first": self._run_job(batch_size=2, auto_commit=True),
                "second": self._run_job(batch_size=2, auto_commit=True),
            },
            retried,
        )
        self.assertTrue(all(ok for ok, _result in outcomes.values()), outcomes)
        after = self._committed_then_completed(expected, before)
        self._report("two cron runs", retried, after[3])
        self.assertRenewedOnce(expected, before, after)

    def test_a_run_killed_inside_a_batch_keeps_what_it_committed(self):
        """A scheduled run in batches of 3 services, each committed, whose
        process dies inside the second batch, once its charges and debits are
        made and before its commit (its transaction rolled back as a dead
        connection's is; the kill -9 of a real process at random moments is
        ``scripts/chaos crash``'s). On a fresh cursor: the first batch's
        periods are charged, the second's not, the run still running; the
        next run closes it as interrupted and renews the rest: every period
        charged once, none skipped, each wallet debited once per period."""
        expected = self._due_services()
        before = self._snapshot()
        original = BillingService._renewal_process_batch
        calls = []

        def killed_in_second_batch(batch, today):
            calls.append(batch.ids)
            result = original(batch, today)
            if len(calls) == 2:
                raise RuntimeError("worker killed")
            return result

        with (
            patch.object(
                BillingService, "_renewal_process_batch", killed_in_second_batch
            ),
            self.registry.cursor() as run_cr,
        ):
            env = self._committed_env(run_cr)
            try:
                env["billing.service"]._renewal_run(
                    trigger="cron", batch_size=3, auto_commit=True, today=self.today
                )
            except RuntimeError as error:
                self.assertEqual(str(error), "worker killed")
            else:
                self.fail("the run was not killed")
            run_cr.rollback()  # what the dead process had not committed is lost
        first, second = calls
        charges, _states, _wallets, runs = self._committed()
        old = before[0]
        new = {
            service_id: [
                charge[0]
                for charge in charges.get(service_id, [])
                if charge not in old.get(service_id, [])
            ]
            for service_id in expected
        }
        for service_id in first:
            self.assertEqual(new[service_id], expected[service_id], "committed")
        for service_id in second:
            self.assertEqual(new[service_id], [], "rolled back")
        committed = sum(len(expected[service_id]) for service_id in first)
        self.assertTrue(committed)
        self.assertEqual(runs, [("running", committed, "renewal")])

        with self.registry.cursor() as run_cr:
            env = self._committed_env(run_cr)
            env["billing.service"]._renewal_run(
                trigger="cron", batch_size=3, auto_commit=True, today=self.today
            )
        after = self._committed()
        self.assertEqual(
            sorted(run[0] for run in after[3]), ["done", "interrupted"], after[3]
        )
        self.assertRenewedOnce(expected, before, after)

    def test_two_runs_of_one_transaction_at_once(self):
        """Two runs committing once at their end, a service per batch: they
        share the services (SKIP LOCKED) and meet on the wallets."""
        expected = self._due_services()
        before = self._snapshot()
        retried = []
        outcomes = run_at_once(
            self,
            {
                "first": self._run_job(batch_size=1),
                "second": self._run_job(batch_size=1),
            },
            retried,
        )
        self.assertTrue(all(ok for ok, _result in outcomes.values()), outcomes)
        after = self._committed_then_completed(expected, before)
        self._report("two single-transaction runs", retried, after[3])
        self.assertRenewedOnce(expected, before, after)

    def test_run_now_beside_the_cron(self):
        """A manager's Run Now while the scheduled action runs."""
        expected = self._due_services()
        before = self._snapshot()
        admin = self.env.ref("base.user_admin")
        self.assertTrue(
            admin.has_group("prepaid_postpaid_billing.group_billing_manager")
        )
        read = self._run_job()[0]
        retried = []
        outcomes = run_at_once(
            self,
            {
                # The scheduled action's run in process (with queue_job
                # installed, the scheduled action queues jobs instead).
                "cron": (
                    read,
                    lambda env: (
                        env["billing.service"]
                        ._renewal_run(trigger="cron", batch_size=2, auto_commit=True)
                        .ids
                    ),
                ),
                "run now": (
                    read,
                    lambda env: (
                        env["billing.service"].with_user(admin.id).action_run_now()
                    ),
                ),
            },
            retried,
        )
        self.assertTrue(all(ok for ok, _result in outcomes.values()), outcomes)
        after = self._committed_then_completed(expected, before)
        self._report("cron and run now", retried, after[3])
        self.assertRenewedOnce(expected, before, after)

    def _suspended_service(self, name, covered):
        """A prepaid customer's service suspended since its first period (its
        wallet was empty), now in its second period. With ``covered``, its
        wallet holds a period's credit already, given while a run held the
        service (so the credit could not resume it: the next run does)."""
        start = self.today - relativedelta(months=1)
        with self.registry.cursor() as fixture_cr:
            env = self._committed_env(fixture_cr)
            partner = self._customer(env, name, "prepaid")
            service = self._service(env, partner, months_ago=1)
            self.assertEqual(
                (service.state, service.next_date, service.charge_ids),
                ("suspended", start, env["billing.charge"]),
            )
            fixture_cr.commit()
            if covered:
                with self.registry.cursor() as run_cr:
                    run_cr.execute(
                        "SELECT id FROM billing_service WHERE id = %s FOR UPDATE",
                        [service.id],
                    )
                    self._credit(env, partner, PRICE, f"fixture-{partner.id}-held")
                    fixture_cr.commit()
                service.invalidate_recordset()
                self.assertEqual(service.state, "suspended")
                self.assertEqual(partner.billing_balance, float(PRICE))
        return service.id, partner.id

    def test_run_and_top_up_of_a_suspended_customer_at_once(self):
        """A renewal run and a top-up of the suspended customer at once: the
        current period is charged once, the one missed not, whichever of the
        two resumes the service; with a credit given earlier or not, with the
        run's snapshot taken before the top-up or not."""
        rounds = [
            (covered, run_reads_first)
            for _repeat in range(2)
            for covered in (True, False)
            for run_reads_first in (True, False)
        ]
        total_retries = 0
        for index, (covered, run_reads_first) in enumerate(rounds):
            with self.subTest(covered=covered, run_reads_first=run_reads_first):
                service_id, partner_id = self._suspended_service(
                    f"Suspended Customer {index}", covered
                )
                self._mark_moves()
                start = self.today - relativedelta(months=1)
                before = PRICE if covered else Decimal(0)
                read, act = self._run_job()
                retried = []
                outcomes = run_at_once(
                    self,
                    {
                        "run": (read if run_reads_first else (lambda env: None), act),
                        "top-up": (
                            read,
                            lambda env, p=partner_id, i=index: (
                                self._credit(
                                    env,
                                    env["res.partner"].browse(p),
                                    PRICE,
                                    f"top-up-{i}",
                                ).ids
                            ),
                        ),
                    },
                    retried,
                )
                total_retries += len(retried)
                self.assertTrue(all(ok for ok, _r in outcomes.values()), outcomes)
                charges, states, wallets, runs = self._committed()
                self.assertEqual(
                    [(c[0], c[1], c[2]) for c in charges.get(service_id, [])],
                    [(start + relativedelta(months=1), "debited", PRICE)],
                )
                self.assertEqual(
                    states[service_id], ("active", start + relativedelta(months=2))
                )
                balance, amounts, _after, move_ids = wallets[partner_id]
                self.assertEqual(amounts, [-PRICE])
                self.assertEqual(move_ids, [charges[service_id][0][3]])
                self.assertEqual(balance, before + PRICE - PRICE)
                self.assertFalse([run for run in runs if run[0] == "failed"])
        _logger.info(
            "run and top-up: %d rounds, %d retries", len(rounds), total_retries
        )
