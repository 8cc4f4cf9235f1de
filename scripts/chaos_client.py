"""What the load and fuzz checks of scripts/chaos share on the client side: a
JSON-RPC client that keeps the class of a server error, a portal session logged
in over HTTP with its CSRF token, and a connection to the check's database for
the invariants (run with the client virtualenv's Python: requests, psycopg2).

Unlike bench_realtime.py's client, which only times successful calls, these
tell an expected refusal (a UserError naming the field) from an unhandled error.
"""

import json
import os
import re
import time

import psycopg2
import requests

CALL_TIMEOUT = 120  # seconds; Odoo's retries on concurrency errors wait up to 31 s
# Errors of Odoo that are a clear refusal of the request, not a failure.
REFUSALS = frozenset(
    f"odoo.exceptions.{name}"
    for name in ("UserError", "ValidationError", "AccessError", "MissingError")
)
CSRF = re.compile(r"""csrf_token["']?\s*[:=]\s*["']([0-9a-f]{20,}o?[0-9]*)["']""")
CSRF_INPUT = re.compile(r'name="csrf_token"\s+value="([^"]+)"')


class RpcError(Exception):
    """A JSON-RPC error of the server: ``name`` is the exception's class
    (``odoo.exceptions.UserError``...), ``message`` its message."""

    def __init__(self, name, message, status=200):
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message or ""
        self.status = status

    @property
    def refusal(self):
        return self.name in REFUSALS and bool(self.message.strip())


class Rpc:
    """``execute_kw`` over /jsonrpc as one user, on one keep-alive session."""

    def __init__(self, url, db, login, password):
        self.url = url.rstrip("/") + "/jsonrpc"
        self.db, self.login, self.password = db, login, password
        self.http = requests.Session()
        self.sequence = 0
        self.uid = None

    def call(self, service, method, *args):
        self.sequence += 1
        body = {
            "jsonrpc": "2.0",
            "method": "call",
            "params": {"service": service, "method": method, "args": args},
            "id": self.sequence,
        }
        response = self.http.post(
            self.url,
            data=json.dumps(body, allow_nan=True),
            headers={"Content-Type": "application/json"},
            timeout=CALL_TIMEOUT,
        )
        if response.status_code != 200:
            raise RpcError(f"HTTP {response.status_code}", response.text[:300], 500)
        reply = response.json()
        if "error" in reply:
            error = reply["error"]
            data = error.get("data") or {}
            raise RpcError(
                data.get("name") or error.get("message") or "?",
                data.get("message") or error.get("message") or "",
            )
        return reply["result"]

    def authenticate(self, timeout=180):
        """Log in (waiting for the server to answer, up to ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.uid = self.call(
                    "common", "authenticate", self.db, self.login, self.password, {}
                )
                break
            except (requests.RequestException, RpcError, ValueError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        if not self.uid:
            raise RpcError("login", f"{self.login} could not log in")
        return self

    def execute(self, model, method, *args, **kwargs):
        return self.call(
            "object",
            "execute_kw",
            self.db,
            self.uid,
            self.password,
            model,
            method,
            list(args),
            kwargs,
        )


class Portal:
    """A portal user's browser: logged in through /web/login, with the CSRF
    token of its session for the forms."""

    def __init__(self, url, db, login, password):
        self.url = url.rstrip("/")
        self.db, self.login, self.password = db, login, password
        self.http = requests.Session()
        self.token = None

    def get(self, path, **kwargs):
        return self.http.get(self.url + path, timeout=CALL_TIMEOUT, **kwargs)

    def post(self, path, data, **kwargs):
        """POST a form with the session's CSRF token (unless ``data`` has
        one)."""
        if isinstance(data, dict):
            data = {"csrf_token": self.token, **data}
        else:
            data = [("csrf_token", self.token), *data]
        return self.http.post(
            self.url + path, data=data, timeout=CALL_TIMEOUT, **kwargs
        )

    def log_in(self):
        page = self.get(f"/web/login?db={self.db}")
        page.raise_for_status()
        token = csrf_token(page.text)
        response = self.http.post(
            self.url + "/web/login",
            data={
                "login": self.login,
                "password": self.password,
                "csrf_token": token,
                "db": self.db,
                "redirect": "/my",
            },
            timeout=CALL_TIMEOUT,
        )
        if response.status_code != 200 or "/web/login" in response.url:
            raise RuntimeError(f"portal login of {self.login} failed")
        self.token = csrf_token(response.text)
        return self


def csrf_token(html):
    match = CSRF_INPUT.search(html) or CSRF.search(html)
    if not match:
        raise RuntimeError("no CSRF token in the page")
    return match.group(1)


def database(db):
    """A connection to the check's database in the private cluster
    (PG_PORT), in autocommit: each query sees what is committed."""
    connection = psycopg2.connect(
        host="127.0.0.1",
        port=int(os.environ["PG_PORT"]),
        user=os.environ.get("PG_ROLE", "odoo"),
        dbname=db,
    )
    connection.autocommit = True
    return connection


def percentile(values, share):
    """The ``share`` (0-1) percentile of ``values``, nearest rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def wallet_invariants(cr, company_id):
    """Problems of the wallets of ``company_id`` in the database, as text: a
    balance or a ledger line's balance after below zero, a ledger whose sum
    or running balance differs from the wallet's, a customer whose balance on
    the wallet account differs from its wallet balance plus its consumption
    not yet posted. Returns (problems, number of wallets)."""
    problems = []
    cr.execute(
        "SELECT COUNT(*) FILTER (WHERE balance < 0), COUNT(*)"
        " FROM billing_wallet WHERE company_id = %s",
        [company_id],
    )
    negative, wallets = cr.fetchone()
    if negative:
        problems.append(f"{negative} wallets below zero")
    cr.execute(
        "SELECT COUNT(*) FROM billing_wallet_move m JOIN billing_wallet w"
        " ON w.id = m.wallet_id WHERE w.company_id = %s AND m.balance_after < 0",
        [company_id],
    )
    [(negative_lines,)] = cr.fetchall()
    if negative_lines:
        problems.append(f"{negative_lines} ledger lines with a balance below zero")
    cr.execute(
        """
        SELECT w.id, w.balance, COALESCE(SUM(m.amount), 0)
          FROM billing_wallet w LEFT JOIN billing_wallet_move m ON m.wallet_id = w.id
         WHERE w.company_id = %s
      GROUP BY w.id HAVING w.balance <> COALESCE(SUM(m.amount), 0)
        """,
        [company_id],
    )
    off = cr.fetchall()
    if off:
        problems.append(f"{len(off)} wallets whose ledger sum is not their balance")
    cr.execute(
        """
        SELECT COUNT(*) FROM (
            SELECT m.balance_after, SUM(m.amount) OVER (
                       PARTITION BY m.wallet_id ORDER BY m.id) AS running
              FROM billing_wallet_move m JOIN billing_wallet w ON w.id = m.wallet_id
             WHERE w.company_id = %s) lines
         WHERE balance_after <> running
        """,
        [company_id],
    )
    [(chain,)] = cr.fetchall()
    if chain:
        problems.append(f"{chain} ledger lines whose balance after is not the sum")
    cr.execute(
        """
        SELECT w.partner_id, w.balance + w.unposted_consumption,
               -COALESCE(SUM(l.balance), 0)
          FROM billing_wallet w
          JOIN res_company c ON c.id = w.company_id
     LEFT JOIN account_move_line l
            ON l.partner_id = w.partner_id AND l.company_id = w.company_id
           AND l.account_id = c.billing_wallet_account_id
           AND l.parent_state = 'posted'
         WHERE w.company_id = %s
      GROUP BY w.id
        HAVING ABS(w.balance + w.unposted_consumption
                   + COALESCE(SUM(l.balance), 0)) >= 0.005
        """,
        [company_id],
    )
    books = cr.fetchall()
    if books:
        problems.append(f"{len(books)} wallets off their books: {books[:3]}")
    return problems, wallets
