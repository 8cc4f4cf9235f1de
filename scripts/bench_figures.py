"""Figures of scripts/bench, run inside ``odoo-bin shell`` (which provides ``env``)
on a throwaway database. Each figure prints one line starting with "bench "."""

import os
import threading
import time

from psycopg2 import errors

from odoo import SUPERUSER_ID, api
from odoo.exceptions import UserError

FIGURES = os.environ.get("BENCH_FIGURES", "wallet").split()


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


for figure in FIGURES:
    globals()[f"bench_{figure}"](env)  # noqa: F821 - env comes from odoo-bin shell
