"""The realtime figure of scripts/bench: single-record calls over JSON-RPC to a
running Odoo server, from several client threads (Python's standard library
only: scripts/bench runs it with Odoo's Python, any Python 3 would do).

    bench_realtime.py SETUP_JSON URL [SERVER_LOG]

SETUP_JSON is written by the realtime_setup step of bench_figures.py: database,
a Billing User's login and password, a prepaid customer with a funded wallet, a
postpaid customer and a service. Three kinds of call are timed the same way, a
fixed number of calls or a time cap each, after a warm-up, in rounds whose
order rotates: a trivial call (``search_count`` of one partner by id), a
single-record ``billing.charge.ingest`` for the postpaid customer, and one for
the prepaid customer. Every call must succeed; each run's stored charges must
equal its calls and the prepaid wallet go down by exactly their sum. Prints
"bench ..." lines; exits 1 when a check fails.
"""

import http.client
import json
import os
import secrets
import statistics
import sys
import threading
import time
from urllib.parse import urlsplit

CALLS = int(os.environ.get("BENCH_REALTIME_CALLS", "2000"))
SECONDS = float(os.environ.get("BENCH_REALTIME_SECONDS", "20"))
CLIENTS = max(1, int(os.environ.get("BENCH_REALTIME_CLIENTS", "4")))
WARMUP = int(os.environ.get("BENCH_REALTIME_WARMUP", "5"))  # calls a client
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CALL_TIMEOUT = 120  # seconds; Odoo's retries on concurrency errors wait up to 31 s
READY_TIMEOUT = 180
KINDS = ("trivial", "postpaid", "prepaid")


class RpcError(Exception):
    pass


class Client:
    """JSON-RPC over one HTTP connection (reopened when the server closes it:
    Odoo's threaded server answers HTTP/1.0)."""

    def __init__(self, url):
        parts = urlsplit(url)
        self.connection = http.client.HTTPConnection(
            parts.hostname, parts.port, timeout=CALL_TIMEOUT
        )
        self.sequence = 0

    def call(self, service, method, *args):
        self.sequence += 1
        body = json.dumps(
            {
                "jsonrpc": "2.0",
                "method": "call",
                "params": {"service": service, "method": method, "args": args},
                "id": self.sequence,
            }
        )
        try:
            self.connection.request(
                "POST", "/jsonrpc", body, {"Content-Type": "application/json"}
            )
            response = self.connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.connection.close()
            raise
        if response.status != 200:
            raise RpcError(f"HTTP {response.status}: {data[:200]!r}")
        reply = json.loads(data)
        if "error" in reply:
            error = reply["error"]
            raise RpcError(error.get("data", {}).get("message") or error.get("message"))
        return reply["result"]

    def close(self):
        self.connection.close()


class Bench:
    def __init__(self, setup, url, server_log):
        self.setup = setup
        self.url = url
        self.server_log = server_log
        self.token = secrets.token_hex(4)  # references unique across runs
        self.uid = None
        self.checker = Client(url)
        self.problems = []

    def execute(self, client, model, method, *args, **kwargs):
        return client.call(
            "object",
            "execute_kw",
            self.setup["db"],
            self.uid,
            self.setup["password"],
            model,
            method,
            list(args),
            kwargs,
        )

    def wait_ready(self):
        """The Billing User's uid once the server answers and has loaded the
        database (bounded by READY_TIMEOUT)."""
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                self.uid = self.checker.call(
                    "common",
                    "authenticate",
                    self.setup["db"],
                    self.setup["login"],
                    self.setup["password"],
                    {},
                )
            except (OSError, http.client.HTTPException, RpcError, ValueError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
                continue
            if not self.uid:
                raise RpcError("the Billing User could not log in")
            return

    def one_call(self, client, kind, ref, n):
        """One call of ``kind``; the cents it charges (0 for the trivial call)."""
        if kind == "trivial":
            count = self.execute(
                client,
                "res.partner",
                "search_count",
                [("id", "=", self.setup["postpaid_id"])],
            )
            if count != 1:
                raise RpcError(f"search_count returned {count!r}")
            return 0
        quantity = 1 + n % 3
        result = self.execute(
            client,
            "billing.charge",
            "ingest",
            [
                {
                    "partner_id": self.setup[f"{kind}_id"],
                    "product_id": self.setup["product_id"],
                    "date": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
                    "quantity": quantity,
                    "price_unit": self.setup["price_unit"],
                    "external_ref": ref,
                }
            ],
        )
        if result != {"created": 1, "duplicates": 0, "rejected": []}:
            raise RpcError(f"ingest returned {result!r}")
        return round(self.setup["price_unit"] * 100) * quantity

    def state(self, kind):
        """(stored charges, wallet balance in cents) of ``kind``'s customer."""
        if kind == "trivial":
            return 0, 0
        partner_id = self.setup[f"{kind}_id"]
        count = self.execute(
            self.checker,
            "billing.charge",
            "search_count",
            [("partner_id", "=", partner_id)],
        )
        [partner] = self.execute(
            self.checker, "res.partner", "read", [partner_id], ["billing_balance"]
        )
        return count, round(partner["billing_balance"] * 100)

    def stored_cents(self, kind, prefix):
        charges = self.execute(
            self.checker,
            "billing.charge",
            "search_read",
            [
                ("partner_id", "=", self.setup[f"{kind}_id"]),
                ("external_ref", "=like", f"{prefix}-%"),
            ],
            fields=["amount"],
        )
        return round(sum(charge["amount"] for charge in charges) * 100)

    def log_size(self):
        try:
            return os.path.getsize(self.server_log) if self.server_log else 0
        except OSError:
            return 0

    def retries_since(self, offset):
        """Odoo's retries on concurrency errors logged by the server since
        ``offset``."""
        if not self.server_log:
            return 0
        try:
            with open(self.server_log, "rb") as log:
                log.seek(offset)
                return log.read().count(b"try again in")
        except OSError:
            return 0

    def run(self, kind, label, calls):
        """``calls`` calls of ``kind`` from CLIENTS threads, stopped at SECONDS;
        checked; returns a dict with the rate."""
        prefix = f"rt-{self.token}-{kind}-{label}"
        shares = [calls // CLIENTS + (i < calls % CLIENTS) for i in range(CLIENTS)]
        results = [None] * CLIENTS
        barrier = threading.Barrier(CLIENTS + 1)
        count_before, balance_before = self.state(kind)
        log_offset = self.log_size()

        def worker(index):
            client = Client(self.url)
            ok = errors = cents = 0
            messages = []
            barrier.wait()
            deadline = time.perf_counter() + SECONDS
            for n in range(shares[index]):
                if time.perf_counter() >= deadline:
                    break
                try:
                    cents += self.one_call(client, kind, f"{prefix}-{index}-{n}", n)
                    ok += 1
                except (OSError, http.client.HTTPException, RpcError, ValueError) as e:
                    errors += 1
                    if len(messages) < 3:
                        messages.append(f"{type(e).__name__}: {str(e)[:300]}")
            client.close()
            results[index] = (ok, errors, cents, messages, time.perf_counter())

        threads = [
            threading.Thread(target=worker, args=(i,), daemon=True)
            for i in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        barrier.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        elapsed = max(r[4] for r in results) - started
        ok = sum(r[0] for r in results)
        errors = sum(r[1] for r in results)
        cents = sum(r[2] for r in results)
        for message in [m for r in results for m in r[3]][:3]:
            print(f"realtime {kind} {label} error: {message}", file=sys.stderr)
        outcome = {
            "ok": ok,
            "errors": errors,
            "cents": cents,
            "rate": ok / elapsed if elapsed > 0 else 0.0,
            "seconds": elapsed,
            "retries": self.retries_since(log_offset),
        }
        if errors:
            self.problems.append(f"{kind} {label}: {errors} calls failed")
        if kind != "trivial":
            count_after, balance_after = self.state(kind)
            outcome["stored"] = count_after - count_before
            if outcome["stored"] != ok:
                self.problems.append(
                    f"{kind} {label}: {outcome['stored']} charges stored for {ok} calls"
                )
        if kind == "prepaid":
            outcome["debited"] = balance_before - balance_after
            outcome["charged"] = self.stored_cents(kind, prefix)
            if not outcome["debited"] == outcome["charged"] == cents:
                self.problems.append(
                    f"prepaid {label}: wallet down by {outcome['debited'] / 100:.2f},"
                    f" charges stored {outcome['charged'] / 100:.2f}, sent "
                    f"{cents / 100:.2f}"
                )
        return outcome

    def main(self):
        try:
            self.wait_ready()
        except (OSError, http.client.HTTPException, RpcError, ValueError) as error:
            print(
                f"bench realtime: FAILED: the server did not answer as the Billing "
                f"User within {READY_TIMEOUT} s ({error}); see {self.server_log}"
            )
            return 1
        warmup = {kind: self.run(kind, "warmup", WARMUP * CLIENTS) for kind in KINDS}
        rounds = []
        for number in range(ROUNDS):
            order = KINDS[number % 3 :] + KINDS[: number % 3]
            rounds.append({kind: self.run(kind, f"r{number}", CALLS) for kind in order})
        self.report(warmup, rounds)
        if self.problems:
            print(f"bench realtime: FAILED: {'; '.join(self.problems)}")
            return 1
        return 0

    def report(self, warmup, rounds):
        medians = {
            kind: statistics.median(r[kind]["rate"] for r in rounds) for kind in KINDS
        }
        what = {
            "trivial": "search_count of one partner",
            "postpaid": "single-record billing.charge.ingest, a postpaid customer",
            "prepaid": "single-record billing.charge.ingest, a prepaid customer",
        }
        for kind in KINDS:
            runs = [r[kind] for r in rounds]
            calls = [run["ok"] + run["errors"] for run in runs]
            errors = sum(run["errors"] for run in [warmup[kind], *runs])
            warm = warmup[kind]["ok"] + warmup[kind]["errors"]
            unit = "calls/s" if kind == "trivial" else "records/s"
            rates = _join(run["rate"] for run in runs)
            seconds = _join((run["seconds"] for run in runs), "{:.1f}")
            line = (
                f"bench realtime-{kind}: {CLIENTS} clients, {what[kind]} a JSON-RPC "
                f"call: {medians[kind]:,.1f} {unit} (median of {ROUNDS} rounds: "
                f"{rates}; {_join(calls, INT)} calls in {seconds} s); "
                f"{errors} errors in {sum(calls):,} calls and a warm-up of {warm}"
            )
            if kind != "trivial":
                stored = sum(run["stored"] for run in runs)
                line += f"; {stored:,} charges stored"
            if kind == "prepaid":
                debited = sum(run["debited"] for run in runs) / 100
                charged = sum(run["charged"] for run in runs) / 100
                line += f", wallet down by {debited:,.2f} = their sum {charged:,.2f}"
            retries = sum(run["retries"] for run in runs)
            line += f"; {retries} retries on concurrency errors in the server"
            print(line)
        for top, bottom, target in (
            ("prepaid", "postpaid", 0.80),
            ("postpaid", "trivial", 0.50),
        ):
            pairs = _join(
                (_ratio(r[top]["rate"], r[bottom]["rate"]) for r in rounds), "{:.2f}"
            )
            print(
                f"bench realtime-ratio {top}/{bottom}: "
                f"{_ratio(medians[top], medians[bottom]):.2f} (round by round: "
                f"{pairs}) (target: >= {target:.2f})"
            )


INT = "{:,}"


def _join(values, template="{:,.1f}"):
    return ", ".join(template.format(value) for value in values)


def _ratio(top, bottom):
    return top / bottom if bottom else float("nan")


if __name__ == "__main__":
    with open(sys.argv[1]) as setup_file:
        bench_setup = json.load(setup_file)
    bench = Bench(bench_setup, sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "")
    sys.exit(bench.main())
