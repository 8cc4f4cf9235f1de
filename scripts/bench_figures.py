"""Figures of scripts/bench, run inside ``odoo-bin shell`` (which provides ``env``)
on a throwaway database. Each figure prints one line starting with "bench "."""

import io
import json
import os
import resource
import secrets
import statistics
import sys
import threading
import time
import tracemalloc
from datetime import date, datetime, timedelta
from decimal import Decimal
from unittest.mock import patch

import psutil
from dateutil.relativedelta import relativedelta
from psycopg2 import errors

from odoo import SUPERUSER_ID, Command, api
from odoo.exceptions import UserError
from odoo.tools import SQL

FIGURES = os.environ.get("BENCH_FIGURES", "wallet").split()
CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", "2000"))
CHARGES_PER_CUSTOMER = int(os.environ.get("BENCH_CHARGES", "100"))
INGEST_BATCH = 10000
# Customers of each size of the recurring figure's scaling round ("" skips it).
SCALE_CUSTOMERS = [
    int(size) for size in os.environ.get("BENCH_SCALE_CUSTOMERS", "1000 10000").split()
]
# Sizes below CUSTOMERS the recurring figure also compares with OCA contract.
RATIO_CUSTOMERS = [
    int(size) for size in os.environ.get("BENCH_RATIO_CUSTOMERS", "500").split()
]
SCALE_CHUNK = 1000  # customers and schedules created (and committed) at a time
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
OCA = os.environ.get("BENCH_OCA") == "1"
REMINDERS = int(os.environ.get("BENCH_REMINDERS", "5000"))
REMINDERS_RENDERED = int(os.environ.get("BENCH_REMINDERS_RENDERED", "100"))
INGEST_BATCHES = int(os.environ.get("BENCH_INGEST_BATCHES", "5"))
INGEST_CUSTOMERS = 100  # x 100 charges each: one batch of INGEST_BATCH records
REALTIME_CALLS = int(os.environ.get("BENCH_REALTIME_CALLS", "2000"))
REALTIME_SETUP = os.environ.get("BENCH_REALTIME_SETUP", "")
SERVICES = int(os.environ.get("BENCH_SERVICES", "10000"))
DASHBOARD_SMALL = 100  # invoices of the first measure of the dashboard figure
DASHBOARD_INVOICES = int(os.environ.get("BENCH_DASHBOARD_INVOICES", "100000"))
DASHBOARD_CALLS = 5  # calls measured at each size (median)
# Usage records of the customer whose usage is exported, at each measure.
USAGE_EXPORT_SIZES = [
    int(size)
    for size in os.environ.get("BENCH_USAGE_EXPORT_ROWS", "20000 200000").split()
]
RENEWAL_BATCH = 200  # services a batch, as the scheduled action renews them
RENEWAL_PRICE = 9.99  # x 1, 2 or 3 units: whole cents, exact sums
# Usage amounts of the ingest and realtime figures: 0.05 x 1, 2 or 3, whole
# cents, so that a wallet goes down by exactly the sum of its charges however
# the debits are rounded.
USAGE_PRICE = 0.05
USAGE_MAX_AMOUNT = 0.15


class PeakMemory:
    """Peak resident memory of this process while the block runs (sampled)."""

    def __enter__(self):
        self.process = psutil.Process()
        self.peak = self.process.memory_info().rss
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.02)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def _bench_concurrently(registry, workers, call):
    """Run ``call(env, index)`` in ``workers`` threads at once, each in its own
    connection and transaction, committed when it returns True (succeeded),
    rolled back when it returns False (refused); serialization failures are
    retried. Returns the counts and the elapsed seconds."""
    results = {"ok": 0, "refused": 0, "retries": 0, "errors": 0}
    lock = threading.Lock()
    start_barrier = threading.Barrier(workers)

    def worker(index):
        start_barrier.wait()
        for _attempt in range(100):
            with registry.cursor() as cr:
                wenv = api.Environment(cr, SUPERUSER_ID, {})
                try:
                    if call(wenv, index):
                        cr.commit()
                        outcome = "ok"
                    else:
                        cr.rollback()
                        outcome = "refused"
                except UserError:
                    cr.rollback()
                    outcome = "refused"
                except (errors.SerializationFailure, errors.LockNotAvailable):
                    cr.rollback()
                    with lock:
                        results["retries"] += 1
                    time.sleep(0.005)
                    continue
                except Exception:  # noqa: BLE001 - counted and reported in the figure
                    cr.rollback()
                    outcome = "errors"
            with lock:
                results[outcome] += 1
            return

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, time.perf_counter() - started


def _bench_wallet_state(registry, wallet):
    with registry.cursor() as cr:
        cr.execute("SELECT balance FROM billing_wallet WHERE id = %s", [wallet.id])
        final = cr.fetchone()[0]
        cr.execute(
            "SELECT COALESCE(SUM(amount), 0), MIN(balance_after)"
            " FROM billing_wallet_move WHERE wallet_id = %s",
            [wallet.id],
        )
        ledger_sum, lowest = cr.fetchone()
    return final, ledger_sum, lowest


def _bench_funded_wallet(env, name, balance):
    partner = env["res.partner"].create({"name": name, "billing_mode": "prepaid"})
    wallet = env["billing.wallet"]._get_wallet(partner, env.company)
    wallet._apply_movements(
        [
            {
                "kind": "manual",
                "name": "Bench funding",
                "amount": balance,
                "idempotency_key": f"bench:funding:{partner.id}",
            }
        ]
    )
    env.cr.commit()  # the workers must see the funded wallet
    return partner, wallet


def bench_wallet(env, workers=50, debit=10.0, balance=100.0):
    """50 concurrent debits of 10 on a balance of 100, each in its own database
    transaction and connection: exactly 10 must succeed and the balance end at 0.
    Then the same through the real-time ingest path at a price finer than a
    cent: 50 concurrent single-record ingest calls of 0.0075 on an exact balance
    of 0.075."""
    registry = env.registry
    _partner, wallet = _bench_funded_wallet(env, "Bench Wallet Customer", balance)

    def debit_call(wenv, index):
        wenv["billing.wallet"].browse(wallet.id)._apply_movements(
            [
                {
                    "kind": "usage",
                    "name": f"Bench debit {index}",
                    "amount": -debit,
                    "idempotency_key": f"bench:debit:{index}",
                }
            ]
        )
        return True

    results, elapsed = _bench_concurrently(registry, workers, debit_call)
    final, ledger_sum, lowest = _bench_wallet_state(registry, wallet)
    print(
        f"bench wallet: {workers} concurrent debits of {debit:.2f} on {balance:.2f}: "
        f"{results['ok']} succeeded, {results['refused']} refused, "
        f"{results['errors']} errors, {results['retries']} serialization retries; "
        f"final balance {final:.2f}, ledger sum {ledger_sum:.2f}, lowest balance "
        f"{lowest:.2f}; {elapsed:.2f} s (target: exactly 10 succeed, balance 0)"
    )

    price, exact_balance = 0.0075, 0.075
    partner, wallet = _bench_funded_wallet(
        env, "Bench Exact Wallet Customer", exact_balance
    )
    service = env["product.product"].create({"name": "Bench SMS", "type": "service"})
    env.cr.commit()
    admin = env.ref("base.user_admin").id

    def ingest_call(wenv, index):
        result = (
            wenv["billing.charge"]
            .with_user(admin)
            .ingest(
                [
                    {
                        "partner_id": partner.id,
                        "product_id": service.id,
                        "date": "2026-11-20 10:00:00",
                        "quantity": 1,
                        "price_unit": price,
                        "external_ref": f"bench-exact-{index}",
                    }
                ]
            )
        )
        return result["created"] == 1

    results, elapsed = _bench_concurrently(registry, workers, ingest_call)
    final, ledger_sum, lowest = _bench_wallet_state(registry, wallet)
    with registry.cursor() as cr:
        cr.execute(
            "SELECT COUNT(*) FROM billing_charge WHERE partner_id = %s", [partner.id]
        )
        stored = cr.fetchone()[0]
    print(
        f"bench wallet exact: {workers} concurrent single-record ingest calls of "
        f"{price} on {exact_balance}: {results['ok']} succeeded, "
        f"{results['refused']} refused, {results['errors']} errors, "
        f"{results['retries']} serialization retries; {stored} charges stored; "
        f"final balance {final:.6f}, ledger sum {ledger_sum:.6f}, lowest balance "
        f"{lowest:.6f}; {elapsed:.2f} s (target: exactly 10 succeed, balance 0)"
    )


def _bench_products(env):
    Product = env["product.product"]
    return (
        Product.create({"name": "Bench SMS", "type": "service", "list_price": 0.05}),
        Product.create(
            {"name": "Bench Minutes", "type": "service", "list_price": 0.10}
        ),
        Product.create({"name": "Bench Plan", "type": "service", "list_price": 20.0}),
    )


def _fixed_lines(product):
    """The 3 fixed lines each recurring invoice has, ours and OCA's alike."""
    return [
        (
            0,
            0,
            {
                "product_id": product.id,
                "name": f"Fixed {n}",
                "quantity": 1,
                "price_unit": 10.0 + n,
            },
        )
        for n in range(3)
    ]


def _bench_customers(env, prefix, count, mode):
    return env["res.partner"].create(
        [
            {"name": f"{prefix} {index}", "is_company": True, "billing_mode": mode}
            for index in range(count)
        ]
    )


def _bench_oca_contracts(env, customers, product, today):
    """OCA contracts of ``customers``, 3 fixed lines each, invoiced from today."""
    journal = env["account.journal"].search(
        [("type", "=", "sale"), ("company_id", "=", env.company.id)], limit=1
    )
    env["contract.contract"].create(
        [
            {
                "name": f"Bench contract {partner.id}",
                "partner_id": partner.id,
                "contract_type": "sale",
                "journal_id": journal.id,
                "line_recurrence": False,
                "recurring_rule_type": "monthly",
                "recurring_interval": 1,
                "date_start": today,
                "contract_line_ids": [
                    (
                        0,
                        0,
                        {
                            **vals,
                            "date_start": today,
                            "recurring_next_date": today,
                            "recurring_rule_type": "monthly",
                            "recurring_interval": 1,
                        },
                    )
                    for _0, _1, vals in _fixed_lines(product)
                ],
            }
            for partner in customers
        ]
    )
    env.cr.commit()


def bench_recurring(env):
    """The recurring run (CUSTOMERS postpaid customers x CHARGES_PER_CUSTOMER
    usage charges, plus 3 fixed lines each) to draft invoices; ingestion of those
    charges in batches of 10,000; and, when OCA contract is installed, its cron on
    as many customers with 3 fixed lines, side by side, ROUNDS times."""
    sms, minutes, plan = _bench_products(env)
    today = date.today()
    period_day = datetime.combine(
        today.replace(day=1) - timedelta(days=1), datetime.min.time()
    )
    customers = _bench_customers(env, "Bench Postpaid", CUSTOMERS, "postpaid")
    env["billing.recurring"].create(
        [
            {
                "partner_id": partner.id,
                "interval_type": "month",
                "next_date": today,
                "generation_mode": "draft",
                "send_email": False,
                "line_ids": _fixed_lines(plan),
            }
            for partner in customers
        ]
    )
    env.cr.commit()
    # Ingestion: the usage of every customer, in batches of 10,000.
    records = []
    for index, partner in enumerate(customers):
        for n in range(CHARGES_PER_CUSTOMER):
            records.append(
                {
                    "partner_id": partner.id,
                    "product_id": (sms if n % 4 else minutes).id,
                    "date": (period_day - timedelta(minutes=n)).strftime(
                        "%Y-%m-%d %H:%M:%S"
                    ),
                    "quantity": 1 + n % 3,
                    "external_ref": f"bench-{index}-{n}",
                }
            )
    Charge = env["billing.charge"]
    ingest_seconds = 0.0
    created = 0
    for start in range(0, len(records), INGEST_BATCH):
        batch = records[start : start + INGEST_BATCH]
        started = time.perf_counter()
        result = Charge.ingest(batch)
        env.cr.commit()
        ingest_seconds += time.perf_counter() - started
        created += result["created"]
        assert not result["rejected"], result["rejected"][:3]
    started = time.perf_counter()
    again = Charge.ingest(records[:INGEST_BATCH])
    env.cr.rollback()
    resend_seconds = time.perf_counter() - started
    print(
        f"bench ingest: {created} charges in batches of {INGEST_BATCH}: "
        f"{created / ingest_seconds:,.0f} charges/s; re-sending a batch: "
        f"{again['created']} added, {again['duplicates']} duplicates "
        f"({INGEST_BATCH / resend_seconds:,.0f} records/s) "
        f"(target: >= 100,000 charges/s, 0 added)"
    )

    oca_customers = (
        _bench_customers(env, "Bench OCA", CUSTOMERS, "postpaid") if OCA else None
    )
    env.cr.commit()

    # The sizes compared with OCA: RATIO_CUSTOMERS below CUSTOMERS, then all of
    # them; a smaller size runs the schedules of its first customers only.
    sizes = sorted({size for size in RATIO_CUSTOMERS if size < CUSTOMERS}) + [CUSTOMERS]
    ours = {size: [] for size in sizes}
    theirs = {size: [] for size in sizes}
    peaks = []
    for _round in range(ROUNDS):
        for size in sizes:
            env.cr.execute(
                SQL(
                    "UPDATE billing_recurring SET state = CASE"
                    " WHEN partner_id = ANY(%(ids)s) THEN 'running'"
                    " ELSE 'stopped' END",
                    ids=customers[:size].ids,
                )
            )
            env.cr.commit()
            ours[size].append(_bench_our_round(env, size))
            peaks.append(ours[size][-1][3])
            env.cr.execute("UPDATE billing_recurring SET next_date = %s", [today])
            env.cr.commit()
            if OCA:
                theirs[size].append(
                    _bench_oca_round(env, oca_customers[:size], plan, today)
                )
    env.cr.execute("UPDATE billing_recurring SET state = 'running'")
    env.cr.commit()
    invoices_per_s = statistics.median(r[0] for r in ours[CUSTOMERS])
    charges_per_s = statistics.median(r[1] for r in ours[CUSTOMERS])
    print(
        f"bench recurring: {CUSTOMERS} customers x {CHARGES_PER_CUSTOMER} charges + "
        f"3 fixed lines to drafts: {invoices_per_s:,.1f} invoices/s, "
        f"{charges_per_s:,.0f} charges/s "
        f"(median of {ROUNDS}: "
        f"{', '.join(f'{r[2]:.1f} s' for r in ours[CUSTOMERS])}); "
        f"peak memory {max(peaks) / 2**20:,.0f} MiB; every charge billed once, "
        f"line totals equal their charges"
    )
    if not OCA:
        print("bench oca-contract: skipped (OCA contract 18.0 not installed)")
    for size in sizes if OCA else ():
        ours_rate = statistics.median(r[0] for r in ours[size])
        oca = statistics.median(theirs[size])
        print(
            f"bench oca-contract: {size} contracts x 3 fixed lines to drafts: "
            f"{oca:,.1f} invoices/s (median of {ROUNDS}); ours at {size} customers "
            f"x {CHARGES_PER_CUSTOMER} charges: {ours_rate:,.1f} invoices/s; ratio "
            f"ours/OCA {ours_rate / oca:.1f}x (target: >= 5x)"
        )
    if SCALE_CUSTOMERS:
        _bench_recurring_scale(env, sms, minutes, plan, today, period_day)


def _bench_our_round(env, size):
    """One recurring run of the running schedules (``size`` of them), timed,
    its sums checked, then undone: (invoices/s, charges/s, seconds, peak
    memory)."""
    # The rounds before deleted their invoices: their dead rows cleaned and the
    # planner statistics fresh, as autovacuum keeps a live database (else the
    # planner sees the journal items as an empty table that it reads whole).
    _bench_vacuum(env)
    env.invalidate_all()
    with PeakMemory() as memory:
        started = time.perf_counter()
        runs = env["billing.recurring"]._billing_run(trigger="manual", auto_commit=True)
        seconds = time.perf_counter() - started
    run = runs[:1]
    assert run.invoice_count == size, (
        run.invoice_count,
        run.failure_ids.mapped("error")[:3],
    )
    env.cr.execute("SELECT COUNT(*) FROM billing_charge WHERE state = 'invoiced'")
    billed = env.cr.fetchone()[0]
    # Check the sums, then reset for the next round.
    env.cr.execute(
        """
        SELECT COUNT(*) FROM (
            SELECT l.id FROM account_move_line l
              JOIN billing_charge c ON c.invoice_line_id = l.id
          GROUP BY l.id, l.price_subtotal
            HAVING ROUND(SUM(c.amount), 2) != l.price_subtotal) AS mismatch
        """
    )
    mismatches = env.cr.fetchone()[0]
    assert billed == size * CHARGES_PER_CUSTOMER and not mismatches
    env.cr.execute(
        "UPDATE billing_charge SET state = 'pending', invoice_line_id = NULL"
    )
    env.cr.execute("DELETE FROM account_move WHERE billing_recurring_id IS NOT NULL")
    env.cr.commit()
    return size / seconds, billed / seconds, seconds, memory.peak


def _bench_oca_round(env, customers, plan, today):
    """OCA contract's cron on contracts of ``customers``, timed, then undone:
    invoices/s."""
    _bench_oca_contracts(env, customers, plan, today)
    _bench_vacuum(env)  # as before our rounds
    env.invalidate_all()
    started = time.perf_counter()
    env["contract.contract"].cron_recurring_create_invoice()
    env.cr.commit()
    seconds = time.perf_counter() - started
    env.cr.execute(
        "SELECT COUNT(DISTINCT move_id) FROM account_move_line"
        " WHERE contract_line_id IS NOT NULL"
    )
    count = env.cr.fetchone()[0]
    assert count == len(customers), count
    env.cr.execute(
        "DELETE FROM account_move WHERE id IN (SELECT move_id"
        " FROM account_move_line WHERE contract_line_id IS NOT NULL)"
    )
    env.cr.execute("DELETE FROM contract_line")
    env.cr.execute("DELETE FROM contract_contract")
    env.cr.commit()
    env.invalidate_all()
    return count / seconds


def _bench_scale_charges(env, customers, sms, minutes, period_day, tag):
    """CHARGES_PER_CUSTOMER pending usage records of each of ``customers``,
    as the recurring figure ingests them (3 SMS for a minute, 1 to 3 units,
    a minute apart before ``period_day``), inserted by one SQL statement with
    valid keys (they are, by construction; the ingest is measured by the
    figure before)."""
    env.cr.execute(
        SQL(
            """
            INSERT INTO billing_charge (
                partner_id, product_id, date, quantity, price_unit, amount, name,
                external_ref, company_id, state,
                create_uid, write_uid, create_date, write_date)
            SELECT c.partner_id, p.product_id,
                   %(day)s::timestamp - n * interval '1 minute',
                   1 + mod(n, 3), p.price, (1 + mod(n, 3)) * p.price,
                   'Bench usage', %(tag)s || c.partner_id || '-' || n,
                   %(company)s, 'pending', %(uid)s, %(uid)s,
                   now() at time zone 'UTC', now() at time zone 'UTC'
              FROM unnest(%(customers)s::int[]) AS c(partner_id)
             CROSS JOIN generate_series(0, %(charges)s - 1) AS n
              JOIN LATERAL (
                  SELECT CASE WHEN mod(n, 4) = 0 THEN %(minutes)s
                              ELSE %(sms)s END AS product_id,
                         CASE WHEN mod(n, 4) = 0 THEN 0.10 ELSE 0.05 END AS price
              ) p ON TRUE
            """,
            day=period_day,
            tag=tag,
            company=env.company.id,
            uid=env.uid,
            customers=customers.ids,
            charges=CHARGES_PER_CUSTOMER,
            minutes=minutes.id,
            sms=sms.id,
        )
    )
    env.cr.execute("ANALYZE billing_charge")
    env.cr.commit()


def _bench_vacuum(env):
    """VACUUM ANALYZE the database, whose tables the rounds before rewrote
    (charges reset, invoices deleted), so that autovacuum does not clean them up
    during the next measure, and the planner sees what they hold."""
    with env.registry.cursor() as cr:
        cr._cnx.autocommit = True  # VACUUM runs outside a transaction only
        try:
            cr.execute("VACUUM ANALYZE")
        finally:
            cr._cnx.autocommit = False


def _bench_recurring_scale(env, sms, minutes, plan, today, period_day):
    """The scaling round of the recurring figure: for each size of
    SCALE_CUSTOMERS, as many new postpaid customers with a monthly draft
    schedule of 3 fixed lines and CHARGES_PER_CUSTOMER usage records each
    (inserted in SQL), invoiced by one run as the scheduler's (batches of 200,
    each committed); the other schedules stopped. Invoices/s of each size and
    their ratio to the first, the peak resident memory of the run and the
    growth of memory within one batch, and the resident memory as each batch
    starts (first and last: the memory of a batch does not pile up)."""
    Recurring = env["billing.recurring"]
    original = type(Recurring)._billing_process_batch
    figures = []
    for size in SCALE_CUSTOMERS:
        env.cr.execute("UPDATE billing_recurring SET state = 'stopped'")
        env.cr.commit()
        customers = env["res.partner"]
        for start in range(0, size, SCALE_CHUNK):
            chunk = _bench_customers(
                env, f"Bench Scale {size}", min(SCALE_CHUNK, size - start), "postpaid"
            )
            Recurring.create(
                [
                    {
                        "partner_id": partner.id,
                        "interval_type": "month",
                        "next_date": today,
                        "generation_mode": "draft",
                        "send_email": False,
                        "line_ids": _fixed_lines(plan),
                    }
                    for partner in chunk
                ]
            )
            env.cr.commit()
            customers |= chunk
        _bench_scale_charges(
            env, customers, sms, minutes, period_day, f"bench-scale-{size}-"
        )
        _bench_vacuum(env)
        env.cr.execute("ANALYZE")
        env.invalidate_all()
        batches = []

        def measured_batch(records, batch_today, batches=batches):
            with PeakMemory() as memory:
                start_rss = memory.peak
                result = original(records, batch_today)
            batches.append((start_rss, memory.peak))
            return result

        with (
            patch.object(type(Recurring), "_billing_process_batch", measured_batch),
            PeakMemory() as memory,
        ):
            started = time.perf_counter()
            runs = Recurring._billing_run(trigger="manual", auto_commit=True)
            seconds = time.perf_counter() - started
        run = runs[:1]
        assert run.invoice_count == size, (
            run.invoice_count,
            run.failure_ids.mapped("error")[:3],
        )
        env.cr.execute(
            SQL(
                "SELECT COUNT(*) FROM billing_charge"
                " WHERE state = 'invoiced' AND partner_id = ANY(%(ids)s)",
                ids=customers.ids,
            )
        )
        billed = env.cr.fetchone()[0]
        assert billed == size * CHARGES_PER_CUSTOMER, billed
        batch_growth = max(peak - start for start, peak in batches)
        figures.append((size, size / seconds, memory.peak))
        print(
            f"bench recurring-scale: {size:,} customers x {CHARGES_PER_CUSTOMER} "
            f"charges + 3 fixed lines to drafts, one run in {len(batches)} batches: "
            f"{size / seconds:,.1f} invoices/s ({seconds:.1f} s); peak memory of "
            f"the run {memory.peak / 2**20:,.0f} MiB, of one batch "
            f"+{batch_growth / 2**20:,.0f} MiB at most; memory as a batch starts: "
            f"{batches[0][0] / 2**20:,.0f} MiB (first), "
            f"{batches[-1][0] / 2**20:,.0f} MiB (last); every charge billed once"
        )
        # The invoices and usage of this size out of the way of the next one.
        env.cr.execute(
            SQL(
                "DELETE FROM billing_charge WHERE partner_id = ANY(%(ids)s)",
                ids=customers.ids,
            )
        )
        env.cr.execute(
            SQL(
                "DELETE FROM account_move WHERE partner_id = ANY(%(ids)s)",
                ids=customers.ids,
            )
        )
        env.cr.execute(
            SQL(
                "UPDATE billing_recurring SET state = 'stopped'"
                " WHERE partner_id = ANY(%(ids)s)",
                ids=customers.ids,
            )
        )
        env.cr.commit()
        env.invalidate_all()
    (first, first_rate, _peak), (last, last_rate, _peak) = figures[0], figures[-1]
    # ru_maxrss: the most this process held since it started, in KiB on Linux.
    lifetime = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        f"bench recurring-scale: {last:,} customers against {first:,}: "
        f"{last_rate:,.1f} / {first_rate:,.1f} invoices/s, ratio "
        f"{last_rate / first_rate:.2f} (target: >= 0.80, within 20%); peak memory "
        f"of the runs {max(f[2] for f in figures) / 2**20:,.0f} MiB, of the whole "
        f"bench process {lifetime / 2**20:,.0f} MiB (target: < 1,024 MiB)"
    )


def _bench_open_invoices(env, count, product, prefix, batch=500):
    """``count`` posted customer invoices, unpaid and 20 days overdue, of
    customers with an email (5 invoices each)."""
    today = date.today()
    customers = env["res.partner"].create(
        [
            {
                "name": f"{prefix} {index}",
                "email": f"{prefix.lower().replace(' ', '.')}.{index}@example.com",
                "is_company": True,
                "billing_mode": "postpaid",
            }
            for index in range(max(1, count // 5))
        ]
    )
    moves = env["account.move"]
    for start in range(0, count, batch):
        chunk = env["account.move"].create(
            [
                {
                    "move_type": "out_invoice",
                    "partner_id": customers[index % len(customers)].id,
                    "invoice_date": today - timedelta(days=30),
                    "invoice_date_due": today - timedelta(days=20),
                    "invoice_line_ids": [
                        Command.create(
                            {
                                "product_id": product.id,
                                "quantity": 1,
                                "price_unit": 100.0 + index % 50,
                            }
                        )
                    ],
                }
                for index in range(start, min(start + batch, count))
            ]
        )
        chunk.action_post()
        env.cr.commit()
        moves |= chunk
    return moves


def _bench_reminder_run(env, moves, **values):
    """Open the wizard on ``moves`` as the list's selection and send their
    reminders, as the administrator (a Billing Administrator, with access
    checks); returns (wizard, seconds to open it and count what it will
    send, seconds to send)."""
    admin_env = env(user=env.ref("base.user_admin").id)
    env.invalidate_all()
    started = time.perf_counter()
    wizard = (
        admin_env["billing.reminder.send"]
        .with_context(active_model="account.move", active_ids=moves.ids)
        .create(values)
    )
    assert wizard.send_count + wizard.skip_count == len(moves)
    opened = time.perf_counter() - started
    env.cr.commit()
    env.invalidate_all()
    started = time.perf_counter()
    wizard.action_send()
    admin_env.flush_all()
    seconds = time.perf_counter() - started
    env.cr.commit()
    return wizard, opened, seconds


def _bench_reminder_mails(env, moves):
    env.cr.execute(
        """
        SELECT COUNT(*), COUNT(DISTINCT m.res_id)
          FROM mail_mail mail
          JOIN mail_message m ON m.id = mail.mail_message_id
         WHERE m.model = 'account.move' AND m.res_id IN %s
        """,
        [tuple(moves.ids)],
    )
    return env.cr.fetchone()


def bench_reminders(env):
    """REMINDERS posted unpaid invoices reminded through the Send Payment
    Reminders wizard: their PDFs stored beforehand (as after Send & Print), then
    a second run the same day; and REMINDERS_RENDERED invoices without a PDF,
    rendered during the run."""
    product = env["product.product"].create(
        {"name": "Bench Reminder Service", "type": "service", "list_price": 100.0}
    )
    moves = _bench_open_invoices(env, REMINDERS, product, "Bench Reminder")
    # Each invoice's stored official PDF, as Send & Print leaves it: one real
    # rendering, its content kept on every invoice.
    pdf = env["ir.actions.report"]._render_qweb_pdf(
        "account.account_invoices", moves[:1].ids
    )[0]
    env["ir.attachment"].create(
        [
            {
                "name": move._get_invoice_report_filename(),
                "raw": pdf,
                "mimetype": "application/pdf",
                "res_model": "account.move",
                "res_id": move.id,
                "res_field": "invoice_pdf_report_file",
            }
            for move in moves
        ]
    )
    env.cr.commit()
    env.cr.execute("ANALYZE")
    ids = tuple(moves.ids)
    rounds = []
    for _round in range(ROUNDS):
        # Start each round from invoices never reminded.
        env.cr.execute(
            "DELETE FROM mail_message WHERE model = 'account.move' AND res_id IN %s",
            [ids],
        )
        env.cr.execute(
            "UPDATE account_move SET billing_reminder_count = 0,"
            " billing_reminder_date = NULL WHERE id IN %s",
            [ids],
        )
        env.cr.commit()
        wizard, opened, seconds = _bench_reminder_run(env, moves)
        mails, reminded = _bench_reminder_mails(env, moves)
        env.cr.execute(
            "SELECT COUNT(*) FROM account_move WHERE id IN %s"
            " AND billing_reminder_count = 1 AND billing_reminder_date = %s",
            [ids, date.today()],
        )
        counted = env.cr.fetchone()[0]
        assert wizard.sent_count == mails == reminded == counted == REMINDERS, (
            wizard.sent_count,
            mails,
            reminded,
            counted,
        )
        rounds.append((seconds, opened))
    again, _opened, again_seconds = _bench_reminder_run(env, moves)
    assert again.sent_count == 0 and _bench_reminder_mails(env, moves)[0] == mails
    seconds = statistics.median(r[0] for r in rounds)
    print(
        f"bench reminders: {REMINDERS} unpaid invoices with their PDF stored: "
        f"{REMINDERS / seconds:,.0f} invoices/s, {seconds:.1f} s (median of "
        f"{ROUNDS}: {', '.join(f'{r[0]:.1f} s' for r in rounds)}; opening the "
        f"wizard and counting: {statistics.median(r[1] for r in rounds):.1f} s); "
        f"{mails} mails queued, one per invoice, counted and dated; the same day "
        f"again: 0 sent in {again_seconds:.1f} s (target: {REMINDERS} in <= 20 s, "
        f"one mail each)"
    )
    if REMINDERS_RENDERED:
        fresh = _bench_open_invoices(
            env, REMINDERS_RENDERED, product, "Bench Reminder PDF"
        )
        # Odoo renders the missing PDFs 80 invoices a wkhtmltopdf call; a
        # wkhtmltopdf built without its patched Qt fails on several at once.
        batching = "80 invoices a wkhtmltopdf call"
        try:
            with env.cr.savepoint():
                env["ir.actions.report"]._render_qweb_pdf(
                    "account.account_invoices", fresh[:2].ids
                )
        except Exception:  # noqa: BLE001 - reported in the figure
            env["ir.config_parameter"].set_param("account.pdf_generation_batch", "0")
            batching = (
                "one invoice a wkhtmltopdf call, as this wkhtmltopdf (unpatched "
                "Qt) fails on several at once"
            )
        env.cr.commit()
        env.cr.execute("ANALYZE")
        wizard, _opened, seconds = _bench_reminder_run(env, fresh)
        env.invalidate_all()
        rendered = len(fresh.filtered("invoice_pdf_report_id"))
        assert wizard.sent_count == rendered == REMINDERS_RENDERED, (
            wizard.sent_count,
            rendered,
        )
        print(
            f"bench reminders-pdf: {REMINDERS_RENDERED} unpaid invoices without a "
            f"PDF, rendered during the run ({batching}; without a web server "
            f"for the stylesheets): {REMINDERS_RENDERED / seconds:,.1f} invoices/s "
            f"({seconds:.1f} s)"
        )


def _bench_billing_user(env, login, password=None):
    """A Billing User, as integrations send usage (a login of its own even on a
    database kept with BENCH_KEEP=1)."""
    login = f"{login}_{secrets.token_hex(3)}"
    return (
        env["res.users"]
        .with_context(no_reset_password=True)
        .create(
            {
                "name": f"Bench {login}",
                "login": login,
                "password": password or secrets.token_urlsafe(16),
                "groups_id": [
                    Command.set(
                        [
                            env.ref("base.group_user").id,
                            env.ref("prepaid_postpaid_billing.group_billing_user").id,
                        ]
                    )
                ],
            }
        )
    )


def _bench_fund(env, partners, amount, key):
    """A manual wallet credit of ``amount`` on each of ``partners``' wallets, with
    its journal entry, as *Credit or Debit a Wallet* makes it."""
    company = env.company
    for partner in partners:
        wallet = env["billing.wallet"]._get_wallet(partner, company)
        entry = wallet._post_entry(
            "Bench funding",
            [
                (company.billing_wallet_bonus_account_id, amount, "Bench funding"),
                (company.billing_wallet_account_id, -amount, "Bench funding"),
            ],
        )
        wallet._apply_movements(
            [
                {
                    "kind": "manual",
                    "name": "Bench funding",
                    "amount": amount,
                    "idempotency_key": f"bench:{key}:{partner.id}",
                    "account_move_id": entry.id,
                }
            ]
        )


def _bench_balance(env, partners):
    env.invalidate_all()
    return round(sum(partners.mapped("billing_balance")), 2)


def _bench_charge_totals(env, partners):
    """(number, sum of amounts) of the charges stored for ``partners``."""
    [(count, total)] = env["billing.charge"]._read_group(
        [("partner_id", "in", partners.ids)], [], ["__count", "amount:sum"]
    )
    return count, round(total or 0.0, 2)


def bench_ingest(env):
    """Batch ingestion through ``billing.charge.ingest`` as a Billing User, in
    batches of 10,000 records (INGEST_CUSTOMERS customers x 100 charges) of
    postpaid customers and of prepaid customers with funded wallets:
    INGEST_BATCHES batches of each mode, the modes alternating; then one batch of
    each mode sent again."""
    modes = ("postpaid", "prepaid")
    per_customer = INGEST_BATCH // INGEST_CUSTOMERS
    product = env["product.product"].create(
        {"name": "Bench Ingest SMS", "type": "service", "list_price": USAGE_PRICE}
    )
    customers = {
        mode: _bench_customers(env, f"Bench Ingest {mode}", INGEST_CUSTOMERS, mode)
        for mode in modes
    }
    # Enough for every batch, the warm-up and a re-sent batch were it charged.
    funding = round(USAGE_MAX_AMOUNT * (per_customer * (INGEST_BATCHES + 1) + 1), 2)
    _bench_fund(env, customers["prepaid"], funding, "ingest:funding")
    user = _bench_billing_user(env, "bench_ingest")
    env.cr.commit()
    Charge = env(user=user.id)["billing.charge"]
    day = datetime.combine(date.today() - timedelta(days=1), datetime.min.time())

    def batch(mode, number, count=per_customer):
        return [
            {
                "partner_id": partner.id,
                "product_id": product.id,
                "date": (day + timedelta(seconds=n)).strftime("%Y-%m-%d %H:%M:%S"),
                "quantity": 1 + n % 3,
                "external_ref": f"bench-ingest-{mode}-{number}-{index}-{n}",
            }
            for index, partner in enumerate(customers[mode])
            for n in range(count)
        ]

    def send(records):
        env.invalidate_all()  # each batch comes in a request of its own
        started = time.perf_counter()
        result = Charge.ingest(records)
        env.cr.commit()
        return result, time.perf_counter() - started

    # The references: the same rows, formatted as text and sent with COPY right
    # after each batch, into tables of the same database: a temporary table of
    # their columns; an indexed table (TARGETS.md) of the same columns, with a
    # primary key and the unique reference; a table like billing_charge, with
    # its columns, indexes and constraints.
    usage_columns = (
        "partner_id int4, product_id int4, date timestamp, quantity numeric, "
        "external_ref varchar"
    )
    env.cr.execute(f"CREATE TEMPORARY TABLE bench_ingest_copy ({usage_columns})")
    env.cr.execute("DROP TABLE IF EXISTS bench_ingest_indexed, bench_ingest_replica")
    env.cr.execute(
        f"CREATE TABLE bench_ingest_indexed (id serial PRIMARY KEY, {usage_columns},"
        " UNIQUE (external_ref))"
    )
    env.cr.execute(
        "CREATE TABLE bench_ingest_replica (LIKE billing_charge INCLUDING ALL)"
    )
    env.cr.commit()
    # As the ingest's COPY: the dates of creation and change are the columns'
    # defaults, which LIKE ... INCLUDING ALL copies.
    stored_columns = (
        "partner_id, product_id, date, quantity, price_unit, amount, name, "
        "external_ref, company_id, state, wallet_move_id, create_uid, write_uid"
    )
    usage_names = "partner_id, product_id, date, quantity, external_ref"
    references = {
        "temporary": f"bench_ingest_copy ({usage_names})",
        "indexed": f"bench_ingest_indexed ({usage_names})",
        "like billing_charge": f"bench_ingest_replica ({stored_columns})",
    }

    def copy(records, reference):
        started = time.perf_counter()
        if reference != "like billing_charge":
            lines = (
                f"{r['partner_id']}\t{r['product_id']}\t{r['date']}\t"
                f"{r['quantity']}\t{r['external_ref']}\n"
                for r in records
            )
        else:
            tail = f"\t{env.company.id}\tpending\t\\N\t{user.id}\t{user.id}\n"
            lines = (
                f"{r['partner_id']}\t{r['product_id']}\t{r['date']}\t"
                f"{r['quantity']}\t{USAGE_PRICE}\t{r['quantity'] * USAGE_PRICE}\t"
                f"\\N\t{r['external_ref']}{tail}"
                for r in records
            )
        data = io.StringIO("".join(lines))
        env.cr.copy_expert(f"COPY {references[reference]} FROM STDIN", data)
        env.cr.commit()
        return len(records) / (time.perf_counter() - started)

    balance_start = _bench_balance(env, customers["prepaid"])
    for mode in modes:  # warm-up: one record per customer, not timed
        result, _seconds = send(batch(mode, "warmup", count=1))
        assert result["created"] == INGEST_CUSTOMERS, result
    for reference in references:
        copy(batch("postpaid", "warmup", count=1), reference)
    rates = {mode: [] for mode in modes}
    copy_rates = {reference: {mode: [] for mode in modes} for reference in references}
    for number in range(INGEST_BATCHES):
        for mode in modes if number % 2 == 0 else modes[::-1]:
            records = batch(mode, number)
            result, seconds = send(records)
            assert result == {
                "created": len(records),
                "duplicates": 0,
                "rejected": [],
            }, (result["created"], result["duplicates"], result["rejected"][:3])
            rates[mode].append(len(records) / seconds)
            for reference in references:
                copy_rates[reference][mode].append(copy(records, reference))
    sent = INGEST_CUSTOMERS + INGEST_BATCH * INGEST_BATCHES
    totals = {mode: _bench_charge_totals(env, customers[mode]) for mode in modes}
    debited = round(balance_start - _bench_balance(env, customers["prepaid"]), 2)
    assert all(totals[mode][0] == sent for mode in modes), totals
    assert debited == totals["prepaid"][1], (debited, totals["prepaid"])
    # Re-send the first batch of each mode: nothing is stored or debited again.
    resent = {}
    for mode in modes:
        balance = _bench_balance(env, customers["prepaid"])
        result, _seconds = send(batch(mode, 0))
        resent[mode] = (
            _bench_charge_totals(env, customers[mode])[0] - sent,
            result["created"],
            result["duplicates"],
            round(balance - _bench_balance(env, customers["prepaid"]), 2),
        )
    # The consumption posting the prepaid batches triggered, as its scheduled
    # action runs it: one journal entry per wallet, then books equal wallets.
    env.invalidate_all()
    started = time.perf_counter()
    posted = env["billing.wallet"]._post_consumption_run(auto_commit=True)
    posting_seconds = time.perf_counter() - started
    env.invalidate_all()
    wallets = env["billing.wallet"].search(
        [("partner_id", "in", customers["prepaid"].ids)]
    )
    account = env.company.billing_wallet_account_id
    credit = {
        partner.id: -balance
        for partner, balance in env["account.move.line"]._read_group(
            [
                ("account_id", "=", account.id),
                ("partner_id", "in", customers["prepaid"].ids),
                ("parent_state", "=", "posted"),
            ],
            ["partner_id"],
            ["balance:sum"],
        )
    }
    currency = env.company.currency_id
    off_books = [
        wallet.partner_id.id
        for wallet in wallets
        if currency.compare_amounts(
            credit.get(wallet.partner_id.id, 0.0),
            wallet.balance + wallet.unposted_consumption,
        )
    ]
    medians = {mode: statistics.median(rates[mode]) for mode in modes}
    for mode in modes:
        print(
            f"bench ingest-{mode}: {INGEST_BATCHES} batches of {INGEST_BATCH:,} "
            f"({INGEST_CUSTOMERS} {mode} customers x {per_customer} charges) "
            f"through billing.charge.ingest as a Billing User: "
            f"{medians[mode]:,.0f} records/s (median of {INGEST_BATCHES}: "
            f"{', '.join(f'{rate:,.0f}' for rate in rates[mode])}); "
            f"{totals[mode][0]:,} charges stored"
            + (
                f", wallets down by {debited:,.2f} = the charges' sum "
                f"{totals['prepaid'][1]:,.2f}"
                if mode == "prepaid"
                else ""
            )
            + " (target: >= 100,000 records/s)"
        )
    env.cr.execute("DROP TABLE bench_ingest_indexed, bench_ingest_replica")
    env.cr.commit()
    ratios = {
        reference: {
            mode: statistics.median(
                rate / ref for rate, ref in zip(rates[mode], refs[mode], strict=True)
            )
            for mode in modes
        }
        for reference, refs in copy_rates.items()
    }
    described = {
        "temporary": "a temporary table of their columns",
        "indexed": "an indexed table of the same columns (a primary key and the "
        "unique reference)",
        "like billing_charge": "a table like billing_charge (its indexes and "
        "constraints)",
    }
    print(
        "bench ingest-copy: the same rows formatted and sent with COPY after each "
        f"batch (medians of {2 * INGEST_BATCHES}; ingest/COPY: the median of the "
        "batch by batch ratios): "
        + "; ".join(
            f"into {described[reference]} "
            f"{statistics.median(refs['postpaid'] + refs['prepaid']):,.0f} "
            f"records/s, ingest/COPY postpaid {ratios[reference]['postpaid']:.2f}, "
            f"prepaid {ratios[reference]['prepaid']:.2f}"
            for reference, refs in copy_rates.items()
        )
        + " (target: ingest >= 1/3 of COPY into an indexed table, TARGETS.md)"
    )
    pairs = [
        prepaid / postpaid
        for postpaid, prepaid in zip(rates["postpaid"], rates["prepaid"], strict=True)
    ]
    ratio = medians["prepaid"] / medians["postpaid"]
    print(
        f"bench ingest-ratio: prepaid/postpaid {ratio:.2f} (batch by batch: "
        f"{', '.join(f'{pair:.2f}' for pair in pairs)}) (target: >= 0.80)"
    )
    print(
        f"bench ingest-posting: consumption of {posted} prepaid wallets booked, one "
        f"journal entry each, in {posting_seconds:.2f} s "
        f"({posted / posting_seconds if posting_seconds else 0:,.1f} wallets/s); "
        f"{len(off_books)} wallets whose books differ from balance + not yet posted"
        " (target: 0)"
    )
    print(
        "bench ingest-resend: one batch of 10,000 sent again, "
        + "; ".join(
            f"{mode}: {rows} rows added ({created} created, {duplicates:,} "
            f"duplicates), wallets down by {down:.2f}"
            for mode, (rows, created, duplicates, down) in resent.items()
        )
        + " (target: 0 rows added)"
    )


def _bench_fund_wallets(env, funding, key, chunk=1000):
    """Fund the new, empty wallets of the customers of ``funding`` ({partner id:
    exact Decimal amount}) in bulk, with the books *Credit or Debit a Wallet*
    keeps: each credit is a line of the customer on the customer wallet account
    in a posted manual entry of ``chunk`` customers (against the bonus account,
    one line), and one manual ledger line of the wallet linked to that entry;
    the ledger lines are inserted with one statement a chunk and the balances
    set with one UPDATE (from 0: the wallets are new)."""
    company = env.company
    Wallet = env["billing.wallet"]
    partners = env["res.partner"].browse(list(funding))
    wallets = Wallet._get_wallets(partners, company)
    assert len(wallets) == len(funding)
    assert not any(wallet.balance for wallet in wallets.values())
    ids = list(funding)
    for start in range(0, len(ids), chunk):
        part = ids[start : start + chunk]
        total = float(sum(funding[partner_id] for partner_id in part))
        lines = [
            (
                company.billing_wallet_bonus_account_id,
                total,
                "Bench funding",
                env["res.partner"],
            )
        ] + [
            (
                company.billing_wallet_account_id,
                -float(funding[partner_id]),
                "Bench funding",
                env["res.partner"].browse(partner_id),
            )
            for partner_id in part
        ]
        entry = wallets[part[0]]._post_entry("Bench funding", lines)
        env.cr.execute(
            """
            INSERT INTO billing_wallet_move
                (wallet_id, partner_id, company_id, date, kind, name, amount,
                 balance_after, idempotency_key, account_move_id, user_id,
                 create_uid, write_uid, create_date, write_date)
            SELECT v.wallet_id, v.partner_id, %(company)s, NOW() AT TIME ZONE 'UTC',
                   'manual', 'Bench funding', v.amount, v.amount,
                   %(key)s || ':' || v.partner_id, %(entry)s, %(uid)s, %(uid)s,
                   %(uid)s, NOW() AT TIME ZONE 'UTC', NOW() AT TIME ZONE 'UTC'
              FROM unnest(%(wallets)s::int4[], %(partners)s::int4[],
                          %(amounts)s::numeric[]) AS v(wallet_id, partner_id, amount)
            """,
            {
                "company": company.id,
                "key": f"bench:{key}",
                "entry": entry.id,
                "uid": env.uid,
                "wallets": [wallets[partner_id].id for partner_id in part],
                "partners": part,
                "amounts": [funding[partner_id] for partner_id in part],
            },
        )
        env.cr.execute(
            """
            UPDATE billing_wallet w SET balance = v.amount
              FROM unnest(%(wallets)s::int4[], %(amounts)s::numeric[])
                   AS v(id, amount)
             WHERE w.id = v.id AND w.balance = 0
            """,
            {
                "wallets": [wallets[partner_id].id for partner_id in part],
                "amounts": [funding[partner_id] for partner_id in part],
            },
        )
        assert env.cr.rowcount == len(part)
    env.invalidate_all()


def _bench_renewal_state(env, services, prepaid):
    """What the renewal of ``services`` left, read back with SQL: {service id:
    [(period start, exact amount, state, wallet movement id)]}, {service id:
    (state, next date)}, {partner id: (exact balance, exact not yet posted)} of
    the ``prepaid`` customers, their renewal ledger lines {partner id: [exact
    amount]}, the lowest balance of any wallet and of any ledger line, and the
    customers whose wallet account credit is not their balance + not yet
    posted."""
    cr = env.cr
    ids = services.ids
    cr.execute(
        "SELECT service_id, service_period_start, amount::text, state, wallet_move_id"
        " FROM billing_charge WHERE service_id = ANY(%s)",
        [ids],
    )
    charges = {}
    for service_id, start, amount, state, move_id in cr.fetchall():
        charges.setdefault(service_id, []).append(
            (start, Decimal(amount), state, move_id)
        )
    cr.execute(
        "SELECT id, state, next_date FROM billing_service WHERE id = ANY(%s)", [ids]
    )
    rows = {
        service_id: (state, next_date) for service_id, state, next_date in cr.fetchall()
    }
    cr.execute(
        "SELECT partner_id, balance::text, unposted_consumption::text"
        " FROM billing_wallet WHERE company_id = %s AND partner_id = ANY(%s)",
        [env.company.id, prepaid.ids],
    )
    wallets = {
        partner_id: (Decimal(balance), Decimal(unposted))
        for partner_id, balance, unposted in cr.fetchall()
    }
    cr.execute(
        "SELECT partner_id, amount::text FROM billing_wallet_move"
        " WHERE kind = 'renewal' AND partner_id = ANY(%s)",
        [prepaid.ids],
    )
    debits = {}
    for partner_id, amount in cr.fetchall():
        debits.setdefault(partner_id, []).append(Decimal(amount))
    cr.execute(
        "SELECT (SELECT MIN(balance) FROM billing_wallet),"
        " (SELECT MIN(balance_after) FROM billing_wallet_move)"
    )
    lowest = cr.fetchone()
    cr.execute(
        """
        SELECT w.partner_id FROM billing_wallet w
          LEFT JOIN (SELECT partner_id, -SUM(balance) AS credit
                       FROM account_move_line
                      WHERE account_id = %(account)s AND parent_state = 'posted'
                   GROUP BY partner_id) books ON books.partner_id = w.partner_id
         WHERE w.company_id = %(company)s AND w.partner_id = ANY(%(partners)s)
           AND ROUND(COALESCE(books.credit, 0), 2)
               != ROUND(w.balance + w.unposted_consumption, 2)
        """,
        {
            "account": env.company.billing_wallet_account_id.id,
            "company": env.company.id,
            "partners": prepaid.ids,
        },
    )
    off_books = [row[0] for row in cr.fetchall()]
    return charges, rows, wallets, debits, lowest, off_books


def bench_renewals(env):
    """One renewal run as the scheduled action makes it (batches of 200, each
    committed) on SERVICES monthly services due today or up to 9 days ago, each
    of its own customer: half prepaid, whose new wallets are funded with one or
    two periods, half postpaid; then the same run again the same day, which
    must charge nothing. Checked: one charge per service for its due period,
    the prepaid wallets debited exactly by one ledger line each, no negative
    wallet, books equal wallets."""
    today = date.today()
    product = env["product.product"].create(
        {"name": "Bench Renewal Number", "type": "service", "list_price": RENEWAL_PRICE}
    )
    count_prepaid = SERVICES // 2
    customers = {
        "prepaid": _bench_customers(
            env, "Bench Renewal prepaid", count_prepaid, "prepaid"
        ),
        "postpaid": _bench_customers(
            env, "Bench Renewal postpaid", SERVICES - count_prepaid, "postpaid"
        ),
    }
    partners = customers["prepaid"] | customers["postpaid"]
    # Activated earlier: the first period began a month and 0 to 9 days ago, the
    # second (due) today or up to 9 days ago; the one after is not due yet.
    vals_list, due, after, amounts, funding = [], {}, {}, {}, {}
    for index, partner in enumerate(partners):
        quantity = 1 + index % 3
        start = today - relativedelta(months=1) - timedelta(days=index % 10)
        next_date = start + relativedelta(months=1)
        assert next_date <= today < start + relativedelta(months=2)
        vals_list.append(
            {
                "partner_id": partner.id,
                "product_id": product.id,
                "name": f"Bench number {index}",
                "quantity": quantity,
                "price_unit": RENEWAL_PRICE,
                "interval_type": "month",
                "interval_number": 1,
                "date_start": start,
                "next_date": next_date,
                "state": "active",
            }
        )
        amount = Decimal(str(RENEWAL_PRICE)) * quantity
        amounts[partner.id] = amount
        due[partner.id] = next_date
        # Counted from the start: after Oct 31 and Nov 30 comes Dec 31.
        after[partner.id] = start + relativedelta(months=2)
        if partner.billing_mode == "prepaid":
            funding[partner.id] = amount * (1 + index % 2)  # one or two periods
    setup_started = time.perf_counter()
    services = (
        env["billing.service"]
        .with_context(
            tracking_disable=True, mail_create_nolog=True, mail_create_nosubscribe=True
        )
        .create(vals_list)
    )
    _bench_fund_wallets(env, funding, "renewals:funding")
    env.cr.commit()
    setup_seconds = time.perf_counter() - setup_started
    env.cr.execute("ANALYZE")
    env.invalidate_all()

    Service = env["billing.service"]
    with PeakMemory() as memory:
        started = time.perf_counter()
        runs = Service._renewal_run(
            trigger="cron", batch_size=RENEWAL_BATCH, auto_commit=True, today=today
        )
        seconds = time.perf_counter() - started
    run = runs.filtered(lambda run: run.company_id == env.company)
    assert len(runs) == 1 and run, runs
    assert not run.failure_ids, run.failure_ids.mapped("error")[:3]
    charges, rows, wallets, debits, lowest, off_books = _bench_renewal_state(
        env, services, customers["prepaid"]
    )
    charged = sum(len(found) for found in charges.values())
    by_partner = {service.id: service.partner_id.id for service in services}
    wrong = []  # services whose charges, state or next date are not as due
    for service_id, partner_id in by_partner.items():
        prepaid = partner_id in funding
        expected = [
            (
                due[partner_id],
                amounts[partner_id],
                "debited" if prepaid else "pending",
            )
        ]
        found = charges.get(service_id, [])
        if (
            [(start, amount, state) for start, amount, state, _move in found]
            != expected
            or bool(found[0][3]) != prepaid
            or rows[service_id] != ("active", after[partner_id])
        ):
            wrong.append(service_id)
    misdebited = [
        partner_id
        for partner_id, amount in funding.items()
        if wallets[partner_id] != (amount - amounts[partner_id], amounts[partner_id])
        or debits.get(partner_id) != [-amounts[partner_id]]
    ]
    assert run.charge_count == charged == SERVICES, (run.charge_count, charged)
    assert run.service_count == SERVICES and not run.suspended_count, (
        run.service_count,
        run.suspended_count,
    )
    assert not wrong, wrong[:5]
    assert not misdebited, misdebited[:5]
    assert min(lowest) >= 0 and not off_books, (lowest, off_books[:5])

    # The same day again: nothing is due any more.
    env.invalidate_all()
    started = time.perf_counter()
    again = Service._renewal_run(
        trigger="cron", batch_size=RENEWAL_BATCH, auto_commit=True, today=today
    )
    again_seconds = time.perf_counter() - started
    again_charges = sum(again.mapped("charge_count"))
    charges_after, *_rest, lowest_after, off_after = _bench_renewal_state(
        env, services, customers["prepaid"]
    )
    stored_after = sum(len(found) for found in charges_after.values())
    assert again_charges == 0 and stored_after == charged, (again_charges, stored_after)
    assert min(lowest_after) >= 0 and not off_after
    debited = sum(amounts[partner_id] for partner_id in funding)
    print(
        f"bench renewals: {SERVICES:,} due monthly services ({len(funding):,} "
        f"prepaid with funded wallets, {SERVICES - len(funding):,} postpaid), one "
        f"renewal run as the scheduler's (batches of {RENEWAL_BATCH}, each "
        f"committed): {run.charge_count / seconds:,.0f} renewals/s "
        f"({seconds:.1f} s); {run.service_count:,} services renewed, "
        f"{run.charge_count:,} charges, {run.suspended_count} suspended; peak "
        f"memory {memory.peak / 2**20:,.0f} MiB; one charge per service for its "
        f"due period, {len(funding):,} wallets debited exactly ({debited:,.2f} in "
        f"all), lowest balance {min(lowest):.2f}, {len(off_books)} wallets off "
        f"their books; the same day again: {again_charges} charged in "
        f"{again_seconds:.1f} s (setup {setup_seconds:.0f} s) (target: "
        f"{SERVICES:,} renewed in one run, 0 the second time)"
    )


def bench_realtime_setup(env):
    """The data of the realtime figure (scripts/bench_realtime.py talks to a real
    server): a Billing User with a password, a prepaid customer whose wallet
    covers every call, a postpaid customer and a service; their ids are written
    as JSON to REALTIME_SETUP."""
    product = env["product.product"].create(
        {"name": "Bench Realtime SMS", "type": "service", "list_price": USAGE_PRICE}
    )
    prepaid = _bench_customers(env, "Bench Realtime prepaid", 1, "prepaid")
    postpaid = _bench_customers(env, "Bench Realtime postpaid", 1, "postpaid")
    # Every measured call of every round and the warm-up, twice over.
    funding = round(USAGE_MAX_AMOUNT * (REALTIME_CALLS * ROUNDS + 1000) * 2, 2)
    _bench_fund(env, prepaid, funding, "realtime:funding")
    password = secrets.token_urlsafe(16)
    user = _bench_billing_user(env, "bench_realtime", password)
    env.cr.commit()
    fd = os.open(REALTIME_SETUP, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as setup:
        json.dump(
            {
                "db": env.cr.dbname,
                "login": user.login,
                "password": password,
                "prepaid_id": prepaid.id,
                "postpaid_id": postpaid.id,
                "product_id": product.id,
                "price_unit": USAGE_PRICE,
                "funding": funding,
            },
            setup,
        )


def _bench_dashboard_invoices(env, count, product, customers, batch=1000):
    """``count`` customer invoices of this month: one in ten a draft, the others
    posted, one posted in ten paid by a bank payment, committed by batch."""
    today = date.today()
    bank = env["account.journal"].search(
        [("type", "=", "bank"), ("company_id", "=", env.company.id)], limit=1
    )
    for start in range(0, count, batch):
        chunk = env["account.move"].create(
            [
                {
                    "move_type": "out_invoice",
                    "partner_id": customers[index % len(customers)].id,
                    "invoice_date": today.replace(day=1),
                    "invoice_date_due": today.replace(day=1)
                    + timedelta(days=index % 60),
                    "invoice_line_ids": [
                        Command.create(
                            {
                                "product_id": product.id,
                                "quantity": 1,
                                "price_unit": 10.0 + index % 90,
                            }
                        )
                    ],
                }
                for index in range(start, min(start + batch, count))
            ]
        )
        posted = chunk.filtered(lambda move: move.id % 10)
        posted.action_post()
        to_pay = posted.filtered(lambda move: move.id % 10 == 1)
        if to_pay:
            env["account.payment.register"].with_context(
                active_model="account.move", active_ids=to_pay.ids
            ).create({"journal_id": bank.id, "group_payment": False})._create_payments()
        env.cr.commit()  # each batch kept
        env.invalidate_all()


def _bench_dashboard_measure(env, user):
    """(queries, median milliseconds) of the dashboard's data for ``user``, on
    an empty cache, after a first call that warms the registry's caches."""
    dashboard = env["billing.dashboard"].with_user(user)
    dashboard.get_dashboard_data({})
    queries, times = set(), []
    for _index in range(DASHBOARD_CALLS):
        env.invalidate_all()
        before = env.cr.sql_log_count
        started = time.perf_counter()
        dashboard.get_dashboard_data({})
        times.append((time.perf_counter() - started) * 1000)
        queries.add(env.cr.sql_log_count - before)
    return max(queries), statistics.median(times)


def _bench_dashboard_copies(env, moves, total):
    """Grow the customer invoices to ``total`` with copies of the rows of
    ``moves`` in SQL (numbered apart, their lines not copied): the
    dashboard reads the invoices' rows, never their lines, and making 100,000
    real invoices through the ORM takes hours here."""
    env.flush_all()
    env.cr.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_name = 'account_move' "
        "AND column_name NOT IN ('id', 'name', 'sequence_prefix')"
    )
    columns = [row[0] for row in env.cr.fetchall()]
    copies = -(-(total - len(moves)) // len(moves))  # rounded up
    env.cr.execute(
        SQL(
            """
            INSERT INTO account_move (name, sequence_prefix, %(columns)s)
            SELECT CASE WHEN move.name IS NULL OR move.name = '/' THEN move.name
                        ELSE 'COPY ' || copy || ' ' || move.name END,
                   -- A numbering of their own: the journal's next number is
                   -- still the one after its real invoices.
                   'COPY ' || copy || ' ' || move.sequence_prefix, %(source)s
              FROM account_move move, generate_series(1, %(copies)s) copy
             WHERE move.id = ANY(%(ids)s)
             ORDER BY copy, move.id
             LIMIT %(limit)s
            """,
            columns=SQL(", ").join(SQL.identifier(column) for column in columns),
            source=SQL(", ").join(SQL.identifier("move", column) for column in columns),
            copies=copies,
            ids=moves.ids,
            limit=total - len(moves),
        )
    )
    env.cr.execute("ANALYZE account_move")
    env.cr.commit()  # the invoices the second measure reads
    env.invalidate_all()


def bench_dashboard(env):
    """The dashboard's data for a Billing User with 100 customer invoices of this
    month (real ones: drafts, posted, paid), then with DASHBOARD_INVOICES (the
    100 and copies of their rows): the same queries, and how much longer."""
    _sms, _minutes, plan = _bench_products(env)
    customers = _bench_customers(env, "Bench Dashboard", 50, "postpaid")
    user = _bench_billing_user(env, "bench_dashboard")
    env.cr.commit()
    _bench_dashboard_invoices(env, DASHBOARD_SMALL, plan, customers)
    moves = env["account.move"].search(
        [("partner_id", "in", customers.ids), ("move_type", "=", "out_invoice")]
    )
    small_queries, small_ms = _bench_dashboard_measure(env, user)
    _bench_dashboard_copies(env, moves, DASHBOARD_INVOICES)
    figures = env["billing.dashboard"].with_user(user).get_dashboard_data({})
    total = next(tile for tile in figures["tiles"] if tile["key"] == "total")
    if total["count"] != DASHBOARD_INVOICES:
        raise AssertionError(
            f"the dashboard counts {total['count']} invoices of "
            f"{DASHBOARD_INVOICES} made"
        )
    large_queries, large_ms = _bench_dashboard_measure(env, user)
    print(
        f"bench dashboard: {DASHBOARD_SMALL:,} invoices: {small_queries} queries, "
        f"{small_ms:,.0f} ms; {DASHBOARD_INVOICES:,} invoices: {large_queries} "
        f"queries, {large_ms:,.0f} ms (x{large_ms / small_ms:,.1f}); same queries: "
        f"{'yes' if small_queries == large_queries else 'NO'}"
    )


def _bench_usage_rows(env, partner, products, count):
    """Grow ``partner``'s usage records to ``count`` with rows made in SQL
    (the export reads rows, and the ingest is measured by its own figure),
    0.004 to 1 units at usage prices, a third of them invoiced-like."""
    env.cr.execute(
        SQL("SELECT count(*) FROM billing_charge WHERE partner_id = %s", partner.id)
    )
    have = env.cr.fetchone()[0]
    env.cr.execute(
        SQL(
            """
            INSERT INTO billing_charge
                (partner_id, product_id, date, quantity, price_unit, amount, name,
                 external_ref, company_id, state, create_uid, write_uid,
                 create_date, write_date)
            SELECT %(partner)s, (%(products)s::int4[])[1 + mod(n, 3)],
                   TIMESTAMP '2026-01-01' + n * INTERVAL '17 seconds',
                   0.004 * (1 + mod(n, 250)), 0.0075,
                   round(0.004 * (1 + mod(n, 250)) * 0.0075, 6),
                   'Bench usage ' || n, 'bench-usage-' || n, %(company)s,
                   CASE WHEN mod(n, 3) = 0 THEN 'debited' ELSE 'pending' END,
                   %(uid)s, %(uid)s, NOW() AT TIME ZONE 'UTC',
                   NOW() AT TIME ZONE 'UTC'
              FROM generate_series(%(first)s, %(last)s) n
            """,
            partner=partner.id,
            products=products.ids,
            company=env.company.id,
            uid=env.uid,
            first=have + 1,
            last=count,
        )
    )
    env.cr.execute("ANALYZE billing_charge")
    env.cr.commit()  # the export reads them in a cursor of its own


def _bench_usage_measure(env, chunks):
    """Consume the export ``chunks`` (a generator of bytes, as the HTTP
    response streams it): (bytes, seconds, peak resident memory and its
    growth over the start, in MiB), then again traced: the peak of Python
    allocations in MiB."""
    started = time.perf_counter()
    size = 0
    with PeakMemory() as memory:
        start_rss = memory.peak
        for chunk in chunks():
            size += len(chunk)
    seconds = time.perf_counter() - started
    tracemalloc.start()
    for _chunk in chunks():
        pass
    _current, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return (
        size,
        seconds,
        memory.peak / 2**20,
        (memory.peak - start_rss) / 2**20,
        traced / 2**20,
    )


def bench_usage_export(env):
    """The CSV and Excel exports of My Usage, as their routes stream them, for
    one customer with USAGE_EXPORT_SIZES usage records: memory must not grow
    with the records (they are read in batches of 5,000, the Excel file
    written in constant memory mode to a temporary file)."""
    from odoo.addons.prepaid_postpaid_billing.controllers import usage_portal

    sms, minutes, plan = _bench_products(env)
    partner = _bench_customers(env, "Bench Usage Export", 1, "postpaid")
    portal = (
        env["res.users"]
        .with_context(no_reset_password=True)
        .create(
            {
                "name": "Bench Usage Portal",
                "login": f"bench_usage_{secrets.token_hex(3)}",
                "partner_id": partner.id,
                "groups_id": [Command.set([env.ref("base.group_portal").id])],
            }
        )
    )
    env.cr.commit()
    domain = [("partner_id", "=", partner.id), ("company_id", "=", env.company.id)]
    headers = usage_portal.usage_export_headers(env)
    context = {"lang": "en_US", "tz": "UTC", "uid": portal.id}
    args = (env.cr.dbname, portal.id, context, domain)
    results = []
    for count in USAGE_EXPORT_SIZES:
        _bench_usage_rows(env, partner, sms | minutes | plan, count)
        csv_size, csv_s, csv_peak, csv_rss, csv_traced = _bench_usage_measure(
            env, lambda: usage_portal.usage_csv_chunks(*args, headers)
        )
        xlsx_size, xlsx_s, xlsx_peak, xlsx_rss, xlsx_traced = _bench_usage_measure(
            env,
            lambda: usage_portal.usage_xlsx_chunks(*args, headers, "Usage"),
        )
        results.append((csv_traced, xlsx_traced))
        print(
            f"bench usage_export: {count:,} rows: CSV {csv_size / 2**20:,.1f} MiB "
            f"in {csv_s:,.1f} s ({count / csv_s:,.0f} rows/s), peak resident "
            f"{csv_peak:,.0f} MiB (+{csv_rss:,.1f}), peak Python allocations "
            f"{csv_traced:,.1f} MiB; XLSX {xlsx_size / 2**20:,.1f} MiB in "
            f"{xlsx_s:,.1f} s ({count / xlsx_s:,.0f} rows/s), peak resident "
            f"{xlsx_peak:,.0f} MiB (+{xlsx_rss:,.1f}), peak Python allocations "
            f"{xlsx_traced:,.1f} MiB"
        )
    if len(results) > 1:
        (small_csv, small_xlsx), (large_csv, large_xlsx) = results[0], results[-1]
        growth = USAGE_EXPORT_SIZES[-1] / USAGE_EXPORT_SIZES[0]
        print(
            f"bench usage_export: rows x{growth:,.0f}: Python allocations "
            f"x{large_csv / small_csv:,.2f} (CSV), x{large_xlsx / small_xlsx:,.2f} "
            "(XLSX)"
        )


# charge_indexes: the Usage Records views' queries on a large billing_charge.
CHARGE_ROWS = int(os.environ.get("BENCH_CHARGE_ROWS", "1000000"))
CHARGE_CUSTOMERS = 1000
CHARGE_PRODUCTS = 20
CHARGE_INVOICED_MONTHS = 10  # the older months of the year, invoiced
# The indexes on billing_charge the addon's fields declare for its views and
# rules (dropped for "before", re-created from their definitions for "after").
CHARGE_INDEXES = (
    "billing_charge_date_product_idx",
    "billing_charge_partner_state_date_idx",
)
CHARGE_RARE = 200  # the records of a service of few, taken from another
# Indexes tried and not kept: measured with the others, to show what they add.
CHARGE_INDEXES_TRIED = {
    # The service's own index, which the date and service index replaced.
    "bench_charge_product_idx": "(product_id)",
    "bench_charge_company_date_idx": "(company_id, date DESC, id DESC)",
    "bench_charge_state_idx": "(state)",
    "bench_charge_company_idx": "(company_id)",
    # The partial index of the pending records the customer, state and date
    # index replaced.
    "bench_charge_pending_partner_date_idx": (
        "(partner_id, date) WHERE state = 'pending'"
    ),
}


def _invoiced_customer(index):
    """Whether the customer of this index has invoiced records (see
    ``_bench_charge_rows``)."""
    return bool(index % 10 and index % 3)


def _bench_charge_rows(env, customers, products, lines, ranks, other_company):
    """CHARGE_ROWS usage records over the last 365 days, in order of date, by
    one generate_series INSERT with valid keys (foreign key triggers off: the
    keys are valid by construction). One customer in ten belongs to
    ``other_company``; a third of the customers are prepaid (debited), the
    others postpaid: invoiced up to two months ago (one in a hundred
    cancelled), pending since. An invoiced record points to the line of its
    product in the invoice of its customer and month (``lines``, in the order
    of the invoiced customers, months, products)."""
    start = datetime.now().replace(microsecond=0) - timedelta(days=365)
    env.cr.execute("SET session_replication_role = replica")
    env.cr.execute(
        SQL(
            """
            INSERT INTO billing_charge (
                partner_id, product_id, date, quantity, price_unit, amount, name,
                external_ref, company_id, state, invoice_line_id,
                create_uid, write_uid, create_date, write_date)
            SELECT (%(customers)s::int[])[1 + c],
                   (%(products)s::int[])[1 + p],
                   %(start)s::timestamp + i * (interval '365 days' / %(rows)s),
                   q, 0.05, q * 0.05, 'Bench usage', 'bench-' || i,
                   CASE WHEN mod(c, 10) = 0 THEN %(other)s ELSE %(company)s END,
                   CASE WHEN mod(c, 10) = 0 AND m >= %(months)s THEN 'pending'
                        WHEN mod(c, 10) = 0 OR mod(c, 3) = 0 THEN 'debited'
                        WHEN m >= %(months)s THEN 'pending'
                        WHEN mod(i, 100) = 1 THEN 'cancelled'
                        ELSE 'invoiced' END,
                   CASE WHEN mod(c, 10) <> 0 AND mod(c, 3) <> 0
                             AND m < %(months)s
                             AND mod(i, 100) <> 1
                        THEN (%(lines)s::int[])[
                            1 + ((%(ranks)s::int[])[1 + c] * %(months)s + m)
                                * %(nproducts)s + p]
                   END,
                   %(uid)s, %(uid)s, now() at time zone 'UTC',
                   now() at time zone 'UTC'
              FROM (SELECT i, mod(i, %(ncustomers)s) AS c,
                           mod(i / %(ncustomers)s, %(nproducts)s) AS p,
                           (12 * i / %(rows)s)::int AS m, 1 + mod(i, 3) AS q
                      FROM generate_series(0, %(rows)s - 1) i) g
            """,
            customers=customers.ids,
            products=products.ids,
            lines=lines,
            ranks=ranks,
            months=CHARGE_INVOICED_MONTHS,
            start=start,
            rows=CHARGE_ROWS,
            ncustomers=len(customers),
            nproducts=len(products),
            other=other_company.id,
            company=env.company.id,
            uid=env.uid,
        )
    )
    env.cr.execute("SET session_replication_role = DEFAULT")
    env.cr.commit()
    return start


def _bench_charge_invoices(env, customers, products):
    """One posted invoice of each invoiced customer and month, of CHARGE_PRODUCTS
    lines, one per product in order: a real one, then copies of it in SQL (see
    ``_bench_invoice_copies``). Returns the invoices and their line ids, in the
    order of the customers, months, products."""
    invoice = env["account.move"].create(
        {
            "move_type": "out_invoice",
            "partner_id": customers[1].id,
            "invoice_line_ids": [
                Command.create(
                    {"product_id": product.id, "quantity": 1, "price_unit": 1.0}
                )
                for product in products
            ],
        }
    )
    invoice.action_post()
    invoiced = [index for index in range(len(customers)) if _invoiced_customer(index)]
    count = len(invoiced) * CHARGE_INVOICED_MONTHS
    env.cr.execute("SELECT max(id) FROM account_move")
    last = env.cr.fetchone()[0]
    _bench_invoice_copies(env, invoice, 0, count - 1)
    env.cr.execute(
        "SELECT id FROM account_move WHERE id = %s OR id > %s ORDER BY id",
        [invoice.id, last],
    )
    moves = env["account.move"].browse(row[0] for row in env.cr.fetchall())
    env.cr.execute(
        """
        SELECT line.move_id, line.product_id, line.id
          FROM account_move_line line
         WHERE line.move_id = ANY(%s) AND line.display_type = 'product'
        """,
        [moves.ids],
    )
    by_move = {}
    for move_id, product_id, line_id in env.cr.fetchall():
        by_move.setdefault(move_id, {})[product_id] = line_id
    lines = [
        by_move[move_id][product.id] for move_id in moves.ids for product in products
    ]
    env.cr.commit()
    return moves, lines


class _SqlSpy:
    """The SELECT queries on billing_charge executed in the block, as
    (code, params), to be explained as the ORM ran them."""

    def __init__(self, cr):
        self.cr, self.queries = cr, []

    def __enter__(self):
        cr, queries, execute = self.cr, self.queries, self.cr.execute

        def spy(query, params=None, log_exceptions=True):
            code, args = (
                (query.code, query.params)
                if isinstance(query, SQL)
                else (query, params)
            )
            if (
                code.lstrip().upper().startswith("SELECT")
                and '"billing_charge"' in code
            ):
                queries.append((code, args))
            return execute(query, params, log_exceptions)

        self.execute = execute
        cr.execute = spy
        return self

    def __exit__(self, *exc):
        del self.cr.execute  # back to the class's method


def _bench_charge_explain(env, code, params):
    """(milliseconds, shared buffers, index names used) of one EXPLAIN (ANALYZE,
    BUFFERS) of the query."""
    env.cr.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + code, params)
    result = env.cr.fetchone()[0][0]
    plan, indexes = result["Plan"], set()

    def walk(node):
        if node.get("Index Name"):
            indexes.add(node["Index Name"])
        for child in node.get("Plans", ()):
            walk(child)

    walk(plan)
    buffers = plan.get("Shared Hit Blocks", 0) + plan.get("Shared Read Blocks", 0)
    return result["Planning Time"] + result["Execution Time"], buffers, indexes


def _bench_charge_calls(env, user, customers, products, rare, moves, start):
    """The views' calls as the web client makes them, for ``user``: name ->
    function running it (search_fetch of a page of 80 and its count up to
    10,000, or the read_group of a group by); ``rare`` is a service of few
    records."""
    Charge = env["billing.charge"].with_user(user)
    fields_list = [
        "date",
        "partner_id",
        "product_id",
        "quantity",
        "amount",
        "state",
        "invoice_id",
        "external_ref",
        "price_unit",
    ]

    def page(domain):
        def run():
            records = Charge.search_fetch(domain, fields_list, limit=80)
            records.mapped("invoice_id")
            Charge.search_count(domain, limit=10000)

        return run

    month = (start + timedelta(days=300)).replace(day=1, hour=0, minute=0, second=0)
    invoice = moves[len(moves) // 2]
    return {
        "list": page([]),
        "pending": page([("state", "=", "pending")]),
        "invoiced": page([("state", "=", "invoiced")]),
        "date range": page(
            [("date", ">=", month), ("date", "<", month + relativedelta(months=1))]
        ),
        "product": page([("product_id", "=", products[7].id)]),
        "rare product": page([("product_id", "=", rare.id)]),
        "product in a month": page(
            [
                ("product_id", "=", products[7].id),
                ("date", ">=", month),
                ("date", "<", month + relativedelta(months=1)),
            ]
        ),
        "customer": page([("partner_id", "=", customers[13].id)]),
        # The recurring run's pending charges of a batch of customers up to a
        # date, counted by customer (as billing.recurring counts a batch's).
        "pending of customers": lambda: Charge._read_group(
            [
                ("partner_id", "in", customers[10:210].ids),
                ("state", "=", "pending"),
                ("date", "<", month + relativedelta(months=2)),
            ],
            groupby=["partner_id"],
            aggregates=["__count", "amount:sum"],
        ),
        "group by product": lambda: Charge.web_read_group(
            [], ["quantity:sum", "amount:sum"], ["product_id"]
        ),
        # The Invoice search field: text typed (Odoo's name search of invoices:
        # number, reference or customer name), only the number, or an invoice
        # picked from the suggestions.
        "invoice typed": page([("invoice_id", "ilike", invoice.name)]),
        "invoice number": page([("invoice_id.name", "ilike", invoice.name)]),
        "invoice picked": page([("invoice_id", "=", invoice.id)]),
    }


def _bench_charge_measure(env, calls, label):
    """name -> (median ms of the call's billing_charge queries over 3 EXPLAIN
    ANALYZE, their shared buffers, indexes their plans use); the plans go to
    the log (bench.log)."""
    figures = {}
    for name, call in calls.items():
        env.invalidate_all()
        with _SqlSpy(env.cr) as spy:
            call()
        runs = []
        for _round in range(3):
            total, buffers, indexes = 0.0, 0, set()
            for code, params in spy.queries:
                ms, blocks, used = _bench_charge_explain(env, code, params)
                total, buffers, indexes = total + ms, buffers + blocks, indexes | used
            runs.append((total, buffers, indexes))
        runs.sort(key=lambda run: run[0])
        figures[name] = runs[1]
        for code, params in spy.queries:
            env.cr.execute("EXPLAIN (ANALYZE, BUFFERS) " + code, params)
            plan = "\n".join(row[0] for row in env.cr.fetchall())
            query = env.cr.mogrify(code, params).decode()
            print(
                f"charge_indexes {label} {name}:\n{query}\n{plan}\n",
                file=sys.stderr,
            )
    return figures


def bench_charge_indexes(env):
    """The Usage Records list, filters and group by of a Billing User on
    CHARGE_ROWS usage records of two companies, timed by EXPLAIN (ANALYZE,
    BUFFERS) of the queries the ORM runs (the company rule included), with the
    indexes of the addon dropped (before), then created (after), then with the
    tried ones too."""
    products = env["product.product"].create(
        [
            {"name": f"Bench Service {index}", "type": "service", "list_price": 0.05}
            for index in range(CHARGE_PRODUCTS)
        ]
    )
    customers = _bench_customers(env, "Bench Charges", CHARGE_CUSTOMERS, "postpaid")
    other = env["res.company"].create({"name": "Bench Other Company"})
    user = _bench_billing_user(env, "bench_indexes")
    env.cr.commit()
    moves, lines = _bench_charge_invoices(env, customers, products)
    ranks, rank = [], 0
    for index in range(len(customers)):
        ranks.append(rank if _invoiced_customer(index) else 0)
        rank += _invoiced_customer(index)
    started = time.perf_counter()
    start = _bench_charge_rows(env, customers, products, lines, ranks, other)
    filled = time.perf_counter() - started
    # A service of few records (the latest of another service's), as a
    # product sold to some customers only.
    rare = env["product.product"].create(
        {"name": "Bench Rare Service", "type": "service", "list_price": 0.05}
    )
    env.cr.execute(
        SQL(
            "UPDATE billing_charge SET product_id = %s WHERE id IN (SELECT id FROM "
            "billing_charge WHERE product_id = %s ORDER BY id DESC LIMIT %s)",
            rare.id,
            products[3].id,
            CHARGE_RARE,
        )
    )
    env.cr.execute("ANALYZE billing_charge")
    env.cr.commit()
    print(
        f"bench charge_indexes: {CHARGE_ROWS:,} usage records inserted in "
        f"{filled:,.1f} s, {CHARGE_CUSTOMERS:,} customers, {CHARGE_PRODUCTS} "
        f"services and one of {CHARGE_RARE} records, 2 companies"
    )
    env.cr.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'billing_charge'"
        " AND indexname = ANY(%s)",
        [list(CHARGE_INDEXES)],
    )
    definitions = dict(env.cr.fetchall())
    missing = set(CHARGE_INDEXES) - set(definitions)
    if missing:
        raise AssertionError(f"indexes not made by the addon: {sorted(missing)}")
    calls = _bench_charge_calls(env, user, customers, products, rare, moves, start)
    for name in definitions:
        env.cr.execute(SQL("DROP INDEX %s", SQL.identifier(name)))
    env.cr.execute("ANALYZE billing_charge")
    before = _bench_charge_measure(env, calls, "before")
    for definition in definitions.values():
        env.cr.execute(definition)
    env.cr.execute("ANALYZE billing_charge")
    after = _bench_charge_measure(env, calls, "after")
    for name, columns in CHARGE_INDEXES_TRIED.items():
        env.cr.execute(
            SQL(
                "CREATE INDEX %s ON billing_charge %s",
                SQL.identifier(name),
                SQL(columns),
            )
        )
    env.cr.execute("ANALYZE billing_charge")
    tried = _bench_charge_measure(env, calls, "tried")
    for name in CHARGE_INDEXES_TRIED:
        env.cr.execute(SQL("DROP INDEX %s", SQL.identifier(name)))
    env.cr.commit()
    for name in calls:
        (b_ms, b_buf, b_idx), (a_ms, a_buf, a_idx), (t_ms, _t_buf, t_idx) = (
            before[name],
            after[name],
            tried[name],
        )
        print(
            f"bench charge_indexes {name}: before {b_ms:,.1f} ms ({b_buf:,} buffers; "
            f"{', '.join(sorted(b_idx)) or 'no index'}), after {a_ms:,.1f} ms "
            f"({a_buf:,} buffers; {', '.join(sorted(a_idx)) or 'no index'}), "
            f"x{b_ms / a_ms:,.1f}; with the tried indexes too {t_ms:,.1f} ms "
            f"({', '.join(sorted(t_idx - a_idx)) or 'none of them used'})"
        )


# install: the addon's install on a database of many invoices (see scripts/bench).
INSTALL_REAL_INVOICES = 10  # real invoices, copied in SQL up to the size asked
INSTALL_INVOICES = int(os.environ.get("BENCH_INSTALL_SIZE", "100000"))


def bench_install_invoices(env):
    """Grow the customer invoices of a database with Invoicing alone to
    BENCH_INSTALL_SIZE: INSTALL_REAL_INVOICES real ones made once (posted, two
    or three product lines, taxes; two paid by bank), then copies of their rows
    and lines in SQL (their ids taken from the sequences, numbered apart, foreign
    key triggers off: the keys are those of the originals)."""
    Move = env["account.move"]
    real = Move.search([("ref", "=", "bench-install")], order="id")
    if not real:
        products = env["product.product"].create(
            [
                {"name": f"Bench Install {index}", "type": "service", "list_price": 10}
                for index in range(3)
            ]
        )
        partners = env["res.partner"].create(
            [{"name": f"Bench Install Customer {index}"} for index in range(5)]
        )
        real = Move.create(
            [
                {
                    "move_type": "out_invoice",
                    "ref": "bench-install",
                    "partner_id": partners[index % len(partners)].id,
                    "invoice_date": date.today(),
                    "invoice_line_ids": [
                        Command.create(
                            {"product_id": product.id, "quantity": 1 + index % 4}
                        )
                        for product in products[: 2 + index % 2]
                    ],
                }
                for index in range(INSTALL_REAL_INVOICES)
            ]
        )
        real.action_post()
        bank = env["account.journal"].search(
            [("type", "=", "bank"), ("company_id", "=", env.company.id)], limit=1
        )
        env["account.payment.register"].with_context(
            active_model="account.move", active_ids=real[:2].ids
        ).create({"journal_id": bank.id, "group_payment": False})._create_payments()
        env.flush_all()
    unpaid = real.filtered(lambda move: move.payment_state == "not_paid")
    env.cr.execute("SELECT count(*) FROM account_move WHERE move_type = 'out_invoice'")
    have = env.cr.fetchone()[0]
    wanted = INSTALL_INVOICES - have
    if wanted > 0:
        started = time.perf_counter()
        _bench_invoice_copies(env, unpaid, have, wanted)
        print(
            f"bench install: {wanted:,} invoices copied in "
            f"{time.perf_counter() - started:,.0f} s"
        )
    env.cr.execute(
        "SELECT count(*), (SELECT count(*) FROM account_move_line),"
        " (SELECT count(*) FROM account_payment)"
        " FROM account_move WHERE move_type = 'out_invoice'"
    )
    moves, lines, payments = env.cr.fetchone()
    print(
        f"bench install: database of {moves:,} customer invoices, {lines:,} journal "
        f"items, {payments:,} payments"
    )


def _columns(env, table, skip):
    env.cr.execute(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_name = %s AND column_name <> ALL(%s)",
        [table, list(skip)],
    )
    return [row[0] for row in env.cr.fetchall()]


def _bench_invoice_copies(env, moves, have, wanted, chunk=100000):
    """``wanted`` copies of the unpaid invoices ``moves`` with their lines, by
    chunks of ``chunk`` invoices committed each."""
    move_columns = _columns(env, "account_move", ("id", "name", "sequence_prefix"))
    line_columns = _columns(env, "account_move_line", ("id", "move_id"))
    env.cr.execute("SET session_replication_role = replica")
    done = 0
    while done < wanted:
        size = min(chunk, wanted - done)
        env.cr.execute(
            SQL(
                """
                CREATE TEMPORARY TABLE bench_move_map ON COMMIT DROP AS
                SELECT source.id AS source, nextval('account_move_id_seq') AS copy,
                       'COPY ' || (%(offset)s + serial) || ' ' AS label
                  FROM generate_series(0, %(size)s - 1) serial
                  JOIN LATERAL (
                      SELECT (%(ids)s::int[])[1 + mod(serial, %(count)s)] AS id
                  ) source ON TRUE
                """,
                offset=have + done,
                size=size,
                ids=moves.ids,
                count=len(moves),
            )
        )
        env.cr.execute(
            SQL(
                """
                INSERT INTO account_move (id, name, sequence_prefix, %(columns)s)
                SELECT map.copy, map.label || move.name,
                       map.label || move.sequence_prefix, %(source)s
                  FROM bench_move_map map
                  JOIN account_move move ON move.id = map.source
                """,
                columns=SQL(", ").join(SQL.identifier(c) for c in move_columns),
                source=SQL(", ").join(SQL.identifier("move", c) for c in move_columns),
            )
        )
        env.cr.execute(
            SQL(
                """
                INSERT INTO account_move_line (move_id, %(columns)s)
                SELECT map.copy, %(source)s
                  FROM bench_move_map map
                  JOIN account_move_line line ON line.move_id = map.source
                """,
                columns=SQL(", ").join(SQL.identifier(c) for c in line_columns),
                source=SQL(", ").join(SQL.identifier("line", c) for c in line_columns),
            )
        )
        env.cr.commit()
        done += size
    env.cr.execute("SET session_replication_role = DEFAULT")
    env.cr.execute("ANALYZE account_move")
    env.cr.execute("ANALYZE account_move_line")
    env.cr.commit()


for figure in FIGURES:
    globals()[f"bench_{figure}"](env)  # noqa: F821 - env comes from odoo-bin shell
