"""The load check of scripts/chaos: concurrent clients against a real Odoo
server for a fixed time, then the invariants checked in the database.

    chaos_load.py SETUP_JSON URL

SETUP_JSON is written by chaos_setup.py. CHAOS_LOAD_CLIENTS (20) clients run
for CHAOS_LOAD_SECONDS (60), each picking at random, per request:
``billing.charge.ingest`` of 1 to 10 records over JSON-RPC as the Billing User
(prepaid and postpaid customers mixed; one call in ten sends a batch of the
client's again), a wallet debit over JSON-RPC as a Billing Administrator
(*Credit or Debit a Wallet*: the wizard's ``create`` and ``action_apply``), or a
portal page over HTTP (/my, /my/wallet, /my/usage, /my/invoices) as the
client's portal customer, logged in at the start. Half of the prepaid wallets
hold 20 only: they run dry under load, and the debits and usage records they
cannot cover must be refused, not go below zero.

An error is a request that fails: an HTTP status other than 200, a JSON-RPC
error other than the refusal of a debit or record the balance cannot cover, an
answer of the wrong shape; Odoo's own retries on concurrency errors are not.
First two bursts, as scripts/bench's wallet figures but asserted: 50
concurrent debits of 10 on a wallet of 100, then 50 concurrent single-record
ingest calls of 0.007 on a wallet of 0.07: exactly 10 must succeed each time,
the others be refused, and the wallet end at exactly 0. Each client logs in
and sends one request of each kind before the timed run (a warm-up, not
measured). Then, in the database: no wallet and no ledger line below zero, each ledger's
sum and running balance equal to its wallet's, the books equal to the wallets,
every record the clients were told was stored stored exactly once and none
other, the debits applied exactly. Prints one "chaos load:" line; exits 1 when
there is an error or an invariant broke.
"""

import json
import os
import random
import secrets
import sys
import threading
import time
from collections import Counter, defaultdict

import requests
from chaos_client import Portal, Rpc, RpcError, database, percentile, wallet_invariants

CLIENTS = int(os.environ.get("CHAOS_LOAD_CLIENTS", "20"))
SECONDS = float(os.environ.get("CHAOS_LOAD_SECONDS", "60"))
SERVER = os.environ.get("CHAOS_SERVER_MODE", "server")
SEED = int(os.environ.get("CHAOS_SEED", "17"))
PAGES = ("/my", "/my/wallet", "/my/usage", "/my/invoices")
# Shares of the requests: ingest, debits, portal pages.
WEIGHTS = {"ingest": 4, "debit": 2, "page": 4}
NOT_COVERED = ("does not cover",)
BURST = 50  # concurrent requests of each burst


class Load:
    def __init__(self, setup, url):
        self.setup = setup
        self.url = url
        self.token = secrets.token_hex(4)
        self.lock = threading.Lock()
        self.latencies = defaultdict(list)  # kind -> seconds
        self.errors = Counter()
        self.messages = []
        self.refused = Counter()
        self.stored_refs = set()  # told stored (created or already there)
        self.sent_refs = set()
        self.debits = defaultdict(list)  # partner id -> cents debited
        self.customers = setup["prepaid"] + setup["postpaid"]

    def error(self, kind, message):
        with self.lock:
            self.errors[kind] += 1
            if len(self.messages) < 5:
                self.messages.append(f"{kind}: {message[:300]}")

    # -------------------------------------------------------------------------
    # Requests
    # -------------------------------------------------------------------------

    def ingest(self, rpc, rng, state):
        if state["batches"] and rng.random() < 0.1:
            records = rng.choice(state["batches"])
        else:
            state["n"] += 1
            records = [
                {
                    "partner_id": rng.choice(self.customers)["partner_id"],
                    "product_id": self.setup["product_id"],
                    "date": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
                    "quantity": rng.randint(1, 3),
                    "price_unit": self.setup["price_unit"],
                    "external_ref": f"chaos-{self.token}-{state['index']}-"
                    f"{state['n']}-{k}",
                }
                for k in range(rng.randint(1, 10))
            ]
            state["batches"].append(records)
        refs = {record["external_ref"] for record in records}
        with self.lock:
            self.sent_refs |= refs
        result = rpc.execute("billing.charge", "ingest", records)
        rejected = result.get("rejected", [])
        if set(result) != {"created", "duplicates", "rejected"} or result[
            "created"
        ] + result["duplicates"] + len(rejected) != len(records):
            raise ValueError(f"ingest answered {result!r} for {len(records)} records")
        bad = [r for r in rejected if not any(s in r["reason"] for s in NOT_COVERED)]
        if bad:
            raise ValueError(f"records rejected: {bad[:2]!r}")
        with self.lock:
            self.refused["records"] += len(rejected)
            self.stored_refs |= refs - {r["external_ref"] for r in rejected}

    def debit(self, rpc, rng, state):
        partner = rng.choice(self.setup["prepaid"])
        cents = rng.randint(100, 300)
        wizard = rpc.execute(
            "billing.wallet.adjust",
            "create",
            {
                "partner_id": partner["partner_id"],
                "direction": "debit",
                "amount": cents / 100,
                "reason": f"chaos load {self.token}",
            },
        )
        try:
            rpc.execute("billing.wallet.adjust", "action_apply", [wizard])
        except RpcError as error:
            if error.refusal and any(s in error.message for s in NOT_COVERED):
                with self.lock:
                    self.refused["debits"] += 1
                return
            raise
        with self.lock:
            self.debits[partner["partner_id"]].append(cents)

    def page(self, portal, rng, state, path=None):
        path = path or rng.choice(PAGES)
        response = portal.get(path)
        if response.status_code != 200 or "/web/login" in response.url:
            raise ValueError(f"GET {path}: HTTP {response.status_code} {response.url}")

    # -------------------------------------------------------------------------
    # Run
    # -------------------------------------------------------------------------

    def client(self, index, barrier, deadline_box):
        rng = random.Random(SEED * 1000 + index)
        setup = self.setup
        ingest = Rpc(self.url, setup["db"], **_login(setup["ingest"])).authenticate()
        admin = Rpc(self.url, setup["db"], **_login(setup["admin"])).authenticate()
        customer = self.customers[index % len(self.customers)]
        portal = Portal(self.url, setup["db"], **_login(customer)).log_in()
        state = {"index": index, "n": 0, "batches": []}
        kinds = [kind for kind, weight in WEIGHTS.items() for _ in range(weight)]
        calls = {"ingest": (ingest, self.ingest), "debit": (admin, self.debit)}
        calls["page"] = (portal, self.page)
        for kind in WEIGHTS:  # a warm-up, not measured: the first of each kind
            session, call = calls[kind]
            call(session, rng, state)
        barrier.wait()
        while time.monotonic() < deadline_box[0]:
            kind = rng.choice(kinds)
            session, call = calls[kind]
            started = time.perf_counter()
            try:
                call(session, rng, state)
            except (requests.RequestException, RpcError, ValueError) as error:
                self.error(kind, f"{type(error).__name__}: {error}")
            finally:
                with self.lock:
                    self.latencies[kind].append(time.perf_counter() - started)

    def warm_up(self):
        """One portal customer's login and pages, alone: the server compiles
        its templates before the clients come at once (CPython 3.11 can fail
        compiling in several threads at once: "AST constructor recursion depth
        mismatch")."""
        setup = self.setup
        portal = Portal(self.url, setup["db"], **_login(self.customers[0])).log_in()
        for path in PAGES:
            self.page(portal, None, None, path)

    def run(self):
        barrier = threading.Barrier(CLIENTS + 1)
        deadline_box = [0.0]
        failed = []

        def target(index):
            try:
                self.client(index, barrier, deadline_box)
            except Exception as error:  # noqa: BLE001 - reported, the check fails
                failed.append(f"client {index}: {type(error).__name__}: {error}")
                barrier.abort()

        threads = [
            threading.Thread(target=target, args=(i,), daemon=True)
            for i in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
        deadline_box[0] = time.monotonic() + SECONDS
        started = time.monotonic()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        return elapsed, failed

    def check(self):
        """Problems of the database after the run."""
        problems = []
        with database(self.setup["db"]) as connection, connection.cursor() as cr:
            wallet_problems, wallets = wallet_invariants(cr, self.setup["company_id"])
            problems += wallet_problems
            cr.execute(
                "SELECT external_ref, COUNT(*) FROM billing_charge"
                " WHERE external_ref LIKE %s GROUP BY external_ref",
                [f"chaos-{self.token}-%"],
            )
            stored = dict(cr.fetchall())
            twice = [ref for ref, count in stored.items() if count != 1]
            lost = self.stored_refs - set(stored)
            extra = set(stored) - self.stored_refs
            if twice:
                problems.append(f"{len(twice)} records stored twice: {twice[:3]}")
            if lost:
                problems.append(
                    f"{len(lost)} accepted records lost: {sorted(lost)[:3]}"
                )
            if extra:
                problems.append(
                    f"{len(extra)} records stored that were rejected: "
                    f"{sorted(extra)[:3]}"
                )
            cr.execute(
                "SELECT partner_id, array_agg(ROUND(-amount * 100)::int)"
                " FROM billing_wallet_move WHERE kind = 'manual' AND amount < 0"
                " AND company_id = %s GROUP BY partner_id",
                [self.setup["company_id"]],
            )
            applied = {p: sorted(a) for p, a in cr.fetchall()}
            told = {p: sorted(a) for p, a in self.debits.items()}
            if applied != told:
                problems.append(
                    f"debits applied {sum(map(len, applied.values()))} "
                    f"({_cents(applied)}), told {sum(map(len, told.values()))} "
                    f"({_cents(told)})"
                )
            cr.execute(
                """
                SELECT COUNT(*) FROM billing_charge c
                  JOIN res_partner p ON p.id = c.partner_id
                 WHERE c.external_ref LIKE %s AND p.billing_mode = 'prepaid'
                   AND (c.state <> 'debited' OR c.wallet_move_id IS NULL)
                """,
                [f"chaos-{self.token}-%"],
            )
            [(unpaid,)] = cr.fetchall()
            if unpaid:
                problems.append(f"{unpaid} prepaid records not paid from the wallet")
            cr.execute(
                """
                SELECT COUNT(*) FROM billing_wallet_move m
                 WHERE m.kind = 'usage' AND m.company_id = %s
                   AND m.amount <> -(SELECT COALESCE(SUM(c.amount), 0)
                                       FROM billing_charge c
                                      WHERE c.wallet_move_id = m.id)
                """,
                [self.setup["company_id"]],
            )
            [(usage_off,)] = cr.fetchall()
            if usage_off:
                problems.append(
                    f"{usage_off} usage ledger lines differ from their records"
                )
        return problems, wallets, len(stored)

    def burst(self, kind, partner_id, amount, calls=BURST):
        """``calls`` concurrent requests, each on its own connection, released
        at once: wallet debits of ``amount`` ("debit") or single-record ingest
        calls of that amount ("record") on the wallet of ``partner_id``.
        Returns (succeeded, refused, errors)."""
        setup = self.setup
        user = setup["admin"] if kind == "debit" else setup["ingest"]
        barrier = threading.Barrier(calls)
        outcomes = Counter()

        def target(index):
            try:
                rpc = Rpc(self.url, setup["db"], **_login(user)).authenticate()
                if kind == "debit":
                    wizard = rpc.execute(
                        "billing.wallet.adjust",
                        "create",
                        {
                            "partner_id": partner_id,
                            "direction": "debit",
                            "amount": amount,
                            "reason": f"chaos burst {index}",
                        },
                    )
                barrier.wait()
                if kind == "debit":
                    rpc.execute("billing.wallet.adjust", "action_apply", [wizard])
                    outcome = "ok"
                else:
                    result = rpc.execute(
                        "billing.charge",
                        "ingest",
                        [
                            {
                                "partner_id": partner_id,
                                "product_id": setup["product_id"],
                                "date": "2026-11-20 10:00:00",
                                "quantity": 1,
                                "price_unit": amount,
                                "external_ref": f"chaos-{self.token}-burst-{index}",
                            }
                        ],
                    )
                    outcome = "ok" if result["created"] == 1 else "refused"
                    if outcome == "ok":
                        with self.lock:
                            self.stored_refs.add(f"chaos-{self.token}-burst-{index}")
            except RpcError as error:
                covered = any(s in error.message for s in NOT_COVERED)
                outcome = "refused" if error.refusal and covered else "error"
                if outcome == "error":
                    self.error(f"burst {kind}", str(error))
            except (requests.RequestException, threading.BrokenBarrierError) as error:
                outcome = "error"
                self.error(f"burst {kind}", f"{type(error).__name__}: {error}")
            with self.lock:
                outcomes[outcome] += 1
                if kind == "debit" and outcome == "ok":
                    self.debits[partner_id].append(round(amount * 100))

        threads = [
            threading.Thread(target=target, args=(i,), daemon=True)
            for i in range(calls)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return outcomes["ok"], outcomes["refused"], outcomes["error"]

    def bursts(self):
        """The bursts' line and problems: exactly 10 of 50 succeed each time
        and the wallet ends at exactly 0."""
        problems, parts = [], []
        for kind, partner_id, amount, label in (
            ("debit", self.setup["burst_debit_id"], 10.0, "debits of 10.00 on 100.00"),
            ("record", self.setup["burst_exact_id"], 0.007, "records of 0.007 on 0.07"),
        ):
            ok, refused, errors = self.burst(kind, partner_id, amount)
            with database(self.setup["db"]) as connection, connection.cursor() as cr:
                cr.execute(
                    "SELECT balance FROM billing_wallet WHERE partner_id = %s",
                    [partner_id],
                )
                [(balance,)] = cr.fetchall()
            parts.append(
                f"{BURST} concurrent {label}: {ok} succeeded, {refused} refused, "
                f"{errors} errors, balance {balance}"
            )
            if (ok, refused, errors) != (10, BURST - 10, 0) or balance != 0:
                problems.append(f"burst of {kind}s: not exactly 10 succeeded at 0")
        return "; ".join(parts), problems

    def main(self):
        self.warm_up()
        burst_line, burst_problems = self.bursts()
        elapsed, failed = self.run()
        problems, wallets, stored = self.check()
        problems = burst_problems + problems
        latencies = [s for values in self.latencies.values() for s in values]
        counts = {kind: len(values) for kind, values in self.latencies.items()}
        errors = sum(self.errors.values()) + len(failed)
        for message in failed + self.messages:
            print(f"load error: {message}", file=sys.stderr)
        for kind, values in self.latencies.items():
            print(
                f"load {kind}: {len(values)} requests, p50 "
                f"{percentile(values, 0.5) * 1000:,.0f} ms, p99 "
                f"{percentile(values, 0.99) * 1000:,.0f} ms",
                file=sys.stderr,
            )
        line = (
            f"chaos load: {CLIENTS} clients for {elapsed:.0f} s ({SERVER}): "
            f"{len(latencies):,} "
            f"requests ({counts.get('ingest', 0):,} ingest calls, "
            f"{counts.get('debit', 0):,} wallet debits, {counts.get('page', 0):,} "
            f"portal pages), {len(latencies) / elapsed:,.1f} requests/s, "
            f"{errors} errors, p50 {percentile(latencies, 0.5) * 1000:,.0f} ms, "
            f"p99 {percentile(latencies, 0.99) * 1000:,.0f} ms; refused as "
            f"uncovered: {self.refused['records']:,} records, "
            f"{self.refused['debits']:,} debits; {stored:,} records stored of "
            f"{len(self.stored_refs):,} accepted ({len(self.sent_refs):,} sent), "
            f"{wallets} wallets checked: "
        )
        burst_ok = "FAILED" if burst_problems else "exactly 10 each, balances 0"
        print(f"chaos load: bursts: {burst_line} ({burst_ok})")
        if problems or errors:
            print(line + "FAILED: " + "; ".join(problems or [f"{errors} errors"]))
            return 1
        print(
            line + "none below zero, ledgers = balances, books = wallets, each "
            "accepted record stored once, none lost"
        )
        return 0


def _login(user):
    return {"login": user["login"], "password": user["password"]}


def _cents(debits):
    return f"{sum(sum(a) for a in debits.values()) / 100:,.2f}"


if __name__ == "__main__":
    with open(sys.argv[1]) as setup_file:
        load_setup = json.load(setup_file)
    sys.exit(Load(load_setup, sys.argv[2]).main())
