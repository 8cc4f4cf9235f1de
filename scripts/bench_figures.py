"""Figures of scripts/bench, run inside ``odoo-bin shell`` (which provides ``env``)
on a throwaway database. Each figure prints one line starting with "bench "."""

import os
import statistics
import threading
import time
from datetime import date, datetime, timedelta

import psutil
from psycopg2 import errors

from odoo import SUPERUSER_ID, api
from odoo.exceptions import UserError

FIGURES = os.environ.get("BENCH_FIGURES", "wallet").split()
CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", "2000"))
CHARGES_PER_CUSTOMER = int(os.environ.get("BENCH_CHARGES", "100"))
INGEST_BATCH = 10000
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
OCA = os.environ.get("BENCH_OCA") == "1"


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


def bench_wallet(env, workers=50, debit=10.0, balance=100.0):
    """50 concurrent debits of 10 on a balance of 100, each in its own database
    transaction and connection: exactly 10 must succeed and the balance end at 0."""
    registry = env.registry
    partner = env["res.partner"].create({"name": "Bench Wallet Customer"})
    wallet = env["billing.wallet"]._get_wallet(partner, env.company)
    wallet._apply_movements(
        [
            {
                "kind": "manual",
                "name": "Bench funding",
                "amount": balance,
                "idempotency_key": "bench:funding",
            }
        ]
    )
    env.cr.commit()  # the workers must see the funded wallet
    results = {"ok": 0, "refused": 0, "retries": 0, "errors": 0}
    lock = threading.Lock()
    start_barrier = threading.Barrier(workers)

    def worker(index):
        start_barrier.wait()
        for _attempt in range(100):
            with registry.cursor() as cr:
                wenv = api.Environment(cr, SUPERUSER_ID, {})
                try:
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
                    cr.commit()
                    outcome = "ok"
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
    elapsed = time.perf_counter() - started
    env.invalidate_all()
    with registry.cursor() as cr:
        cr.execute("SELECT balance FROM billing_wallet WHERE id = %s", [wallet.id])
        final = cr.fetchone()[0]
        cr.execute(
            "SELECT COALESCE(SUM(amount), 0), MIN(balance_after)"
            " FROM billing_wallet_move WHERE wallet_id = %s",
            [wallet.id],
        )
        ledger_sum, lowest = cr.fetchone()
    print(
        f"bench wallet: {workers} concurrent debits of {debit:.2f} on {balance:.2f}: "
        f"{results['ok']} succeeded, {results['refused']} refused, "
        f"{results['errors']} errors, {results['retries']} serialization retries; "
        f"final balance {final:.2f}, ledger sum {ledger_sum:.2f}, lowest balance "
        f"{lowest:.2f}; {elapsed:.2f} s (target: exactly 10 succeed, balance 0)"
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

    ours, theirs, peaks = [], [], []
    for _round in range(ROUNDS):
        env.cr.execute("ANALYZE")  # fresh planner statistics for both, as in production
        env.invalidate_all()
        with PeakMemory() as memory:
            started = time.perf_counter()
            runs = env["billing.recurring"]._billing_run(
                trigger="manual", auto_commit=True
            )
            seconds = time.perf_counter() - started
        run = runs[:1]
        assert run.invoice_count == CUSTOMERS, (
            run.invoice_count,
            run.failure_ids.mapped("error")[:3],
        )
        env.cr.execute("SELECT COUNT(*) FROM billing_charge WHERE state = 'invoiced'")
        billed = env.cr.fetchone()[0]
        ours.append((CUSTOMERS / seconds, billed / seconds, seconds))
        peaks.append(memory.peak)
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
        assert billed == CUSTOMERS * CHARGES_PER_CUSTOMER and not mismatches
        env.cr.execute(
            "UPDATE billing_charge SET state = 'pending', invoice_line_id = NULL"
        )
        env.cr.execute(
            "DELETE FROM account_move WHERE billing_recurring_id IS NOT NULL"
        )
        env.cr.execute("UPDATE billing_recurring SET next_date = %s", [today])
        env.cr.commit()
        if OCA:
            _bench_oca_contracts(env, oca_customers, plan, today)
            env.cr.execute("ANALYZE")
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
            assert count == CUSTOMERS, count
            theirs.append(count / seconds)
            env.cr.execute(
                "DELETE FROM account_move WHERE id IN (SELECT move_id"
                " FROM account_move_line WHERE contract_line_id IS NOT NULL)"
            )
            env.cr.execute("DELETE FROM contract_line")
            env.cr.execute("DELETE FROM contract_contract")
            env.cr.commit()
            env.invalidate_all()
    invoices_per_s = statistics.median(r[0] for r in ours)
    charges_per_s = statistics.median(r[1] for r in ours)
    print(
        f"bench recurring: {CUSTOMERS} customers x {CHARGES_PER_CUSTOMER} charges + "
        f"3 fixed lines to drafts: {invoices_per_s:,.1f} invoices/s, "
        f"{charges_per_s:,.0f} charges/s "
        f"(median of {ROUNDS}: {', '.join(f'{r[2]:.1f} s' for r in ours)}); "
        f"peak memory {max(peaks) / 2**20:,.0f} MiB; every charge billed once, "
        f"line totals equal their charges"
    )
    if OCA:
        oca = statistics.median(theirs)
        print(
            f"bench oca-contract: {CUSTOMERS} contracts x 3 fixed lines to drafts: "
            f"{oca:,.1f} invoices/s (median of {ROUNDS}); ratio ours/OCA "
            f"{invoices_per_s / oca:.1f}x (target: >= 5x)"
        )
    else:
        print("bench oca-contract: skipped (OCA contract 18.0 not installed)")


for figure in FIGURES:
    globals()[f"bench_{figure}"](env)  # noqa: F821 - env comes from odoo-bin shell
