"""Steps of the crash and parallel checks of scripts/chaos, run inside
``odoo-bin shell`` (which provides ``env``) on a throwaway database, the step
named by CHAOS_STEP:

- ``setup``: CHAOS_CUSTOMERS postpaid customers (a monthly recurring invoice
  due today each, one in CHAOS_CONFIRM_EVERY confirmed, the others drafts, 3
  fixed lines, CHAOS_CHARGES usage records of the period each, inserted in
  SQL) and CHAOS_SERVICES prepaid customers (a monthly service each whose last
  CHAOS_SERVICE_PERIODS periods are due, the wallet funded for them and 5.00
  more, in the books);
- ``recurring`` / ``renewal``: one run as the scheduler makes it
  (``_cron_billing_recurring`` / ``_cron_renew``, each batch committed), the
  process id first written to CHAOS_PIDFILE, in batches of CHAOS_BATCH
  (default: the scheduled action's, 200), started at the epoch second
  CHAOS_START_AT when given (two workers at the same moment); prints
  ``CHAOS_TIMING <start> <end> <invoices> <charges> <CPU s of the process>
  <CPU s of its database session> <cores of the machine busy meanwhile>``;
- ``check``: the invariants, printed as ``CHAOS_CHECK <json>``.
"""

import json
import os
import sys
import time
from datetime import date, datetime, timedelta
from decimal import Decimal

from dateutil.relativedelta import relativedelta

from odoo.tools import SQL

os.environ["BENCH_FIGURES"] = ""  # the helpers of bench_figures, no figure
os.environ["BENCH_CHARGES"] = os.environ.get("CHAOS_CHARGES", "10")
sys.path.insert(0, os.environ["CHAOS_SCRIPTS"])
import bench_figures as bench

STEP = os.environ["CHAOS_STEP"]
RENEWAL_PRICE = Decimal("9.99")
CHUNK = 1000


def setup(env):
    today = date.today()
    customers = int(os.environ.get("CHAOS_CUSTOMERS", "4000"))
    services = int(os.environ.get("CHAOS_SERVICES", "0"))
    periods = int(os.environ.get("CHAOS_SERVICE_PERIODS", "3"))
    confirm_every = int(os.environ.get("CHAOS_CONFIRM_EVERY", "0"))
    sms, minutes, plan = bench._bench_products(env)
    env.cr.commit()
    Recurring = env["billing.recurring"].with_context(
        tracking_disable=True, mail_create_nolog=True, mail_create_nosubscribe=True
    )
    postpaid = env["res.partner"]
    for start in range(0, customers, CHUNK):
        chunk = bench._bench_customers(
            env(context=dict(env.context, tracking_disable=True)),
            "Chaos Postpaid",
            min(CHUNK, customers - start),
            "postpaid",
        )
        Recurring.create(
            [
                {
                    "partner_id": partner.id,
                    "interval_type": "month",
                    "next_date": today,
                    "generation_mode": (
                        "confirm"
                        if confirm_every and (start + index) % confirm_every == 0
                        else "draft"
                    ),
                    "send_email": False,
                    "line_ids": bench._fixed_lines(plan),
                }
                for index, partner in enumerate(chunk)
            ]
        )
        env.cr.commit()
        postpaid |= chunk
    period_day = datetime.combine(today, datetime.min.time()) - timedelta(hours=1)
    if postpaid:
        bench._bench_scale_charges(env, postpaid, sms, minutes, period_day, "chaos-")
    if services:
        _setup_services(env, today, services, periods)
    env.cr.execute("ANALYZE")
    env.cr.commit()
    print(f"CHAOS_SETUP {customers} {services}")


def _setup_services(env, today, count, periods):
    """``count`` prepaid customers with a monthly service each, started
    ``periods`` months ago and active, its first period paid (not charged
    here): the ``periods`` periods since are due; the wallets funded for them
    and 5.00 more."""
    product = env["product.product"].create(
        {"name": "Chaos Number", "type": "service", "list_price": 9.99}
    )
    Service = env["billing.service"].with_context(
        tracking_disable=True, mail_create_nolog=True, mail_create_nosubscribe=True
    )
    for start in range(0, count, CHUNK):
        partners = bench._bench_customers(
            env(context=dict(env.context, tracking_disable=True)),
            "Chaos Prepaid",
            min(CHUNK, count - start),
            "prepaid",
        )
        funding = {}
        vals_list = []
        for index, partner in enumerate(partners):
            quantity = 1 + index % 3
            date_start = today - relativedelta(months=periods)
            vals_list.append(
                {
                    "partner_id": partner.id,
                    "product_id": product.id,
                    "name": f"Chaos number {start + index}",
                    "quantity": quantity,
                    "price_unit": float(RENEWAL_PRICE),
                    "interval_type": "month",
                    "interval_number": 1,
                    "date_start": date_start,
                    "next_date": date_start + relativedelta(months=1),
                    "state": "active",
                }
            )
            funding[partner.id] = RENEWAL_PRICE * quantity * periods + Decimal(5)
        Service.create(vals_list)
        bench._bench_fund_wallets(env, funding, f"chaos:funding:{start}")
        env.cr.commit()


def run(env, kind):
    pidfile = os.environ.get("CHAOS_PIDFILE")
    if pidfile:
        with open(pidfile, "w", encoding="utf-8") as file:
            file.write(str(os.getpid()))
    env.cr.rollback()
    start_at = float(os.environ.get("CHAOS_START_AT") or 0)
    if start_at:
        late = time.time() - start_at
        if late > 0:
            print(f"CHAOS_LATE {late:.2f}")
        time.sleep(max(0.0, start_at - time.time()))
    env.cr.execute("SELECT pg_backend_pid()")
    backend = env.cr.fetchone()[0]
    env.cr.rollback()  # the run's transactions begin with the run
    cpu = (time.process_time(), _process_cpu(backend), _machine_cpu())
    started = time.time()
    # The scheduled actions' own batches (200), unless CHAOS_BATCH sets them.
    batch = (
        {"batch_size": int(os.environ["CHAOS_BATCH"])}
        if os.environ.get("CHAOS_BATCH")
        else {}
    )
    if kind == "recurring":
        runs = env["billing.recurring"]._cron_billing_recurring(**batch)
    else:
        runs = env["billing.service"]._cron_renew(**batch)
    ended = time.time()
    # The CPU seconds the run took: this process's and its database
    # session's (the same connection all along).
    python_cpu = time.process_time() - cpu[0]
    database_cpu = _process_cpu(backend) - cpu[1]
    busy, total = (
        after - before for after, before in zip(_machine_cpu(), cpu[2], strict=True)
    )
    busy_cores = busy / total * os.cpu_count() if total else 0.0
    print(
        f"CHAOS_TIMING {started:.3f} {ended:.3f} {sum(runs.mapped('invoice_count'))} "
        f"{sum(runs.mapped('charge_count'))} {python_cpu:.2f} {database_cpu:.2f} "
        f"{busy_cores:.2f}"
    )


def _machine_cpu():
    """Busy and total CPU time of the machine so far (all cores, in ticks)."""
    with open("/proc/stat", encoding="ascii") as file:
        ticks = [int(value) for value in file.readline().split()[1:9]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return sum(ticks) - idle, sum(ticks)


def _process_cpu(pid):
    """CPU seconds (user and system) of the process ``pid`` so far."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as file:
            fields = file.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def check(env):
    """The invariants, on what is committed."""
    cr = env.cr
    today = date.today()
    found = {}
    # Each schedule due today: exactly one invoice (not cancelled) for the
    # period that ended yesterday.
    cr.execute(
        """
        SELECT r.id, COUNT(m.id) FILTER (WHERE m.state != 'cancel'
                                          AND m.invoice_date = %(today)s),
               r.next_date
          FROM billing_recurring r
     LEFT JOIN account_move m ON m.billing_recurring_id = r.id
      GROUP BY r.id
        """,
        {"today": today},
    )
    rows = cr.fetchall()
    found["customers"] = len(rows)
    found["no_invoice"] = sum(1 for _id, count, _next in rows if count == 0)
    found["invoiced_twice"] = sum(1 for _id, count, _next in rows if count > 1)
    found["not_advanced"] = sum(1 for _id, _count, nxt in rows if nxt <= today)
    # Usage charges (not the services'): all invoiced, each on a line of a live
    # invoice of its own customer, each line billing exactly its charges.
    cr.execute(
        """
        SELECT COUNT(*),
               COUNT(*) FILTER (WHERE c.state = 'pending'),
               COUNT(*) FILTER (WHERE c.state = 'invoiced' AND (
                   m.id IS NULL OR m.state = 'cancel'
                   OR m.partner_id != c.partner_id))
          FROM billing_charge c
     LEFT JOIN account_move_line l ON l.id = c.invoice_line_id
     LEFT JOIN account_move m ON m.id = l.move_id
         WHERE c.service_id IS NULL
        """
    )
    found["charges"], found["pending"], found["misbilled"] = cr.fetchone()
    cr.execute(
        """
        SELECT COUNT(*) FROM (
            SELECT l.id FROM account_move_line l
              JOIN billing_charge c ON c.invoice_line_id = l.id
          GROUP BY l.id, l.price_subtotal
            HAVING ROUND(SUM(c.amount), 2) != ROUND(l.price_subtotal, 2)) AS off
        """
    )
    found["lines_off"] = cr.fetchone()[0]
    cr.execute(
        """
        SELECT COUNT(*) FROM account_move m
         WHERE m.billing_recurring_id IS NOT NULL AND m.state != 'cancel'
           AND NOT EXISTS (SELECT 1 FROM account_move_line l
                             JOIN billing_charge c ON c.invoice_line_id = l.id
                            WHERE l.move_id = m.id)
        """
    )
    found["invoices_without_usage"] = cr.fetchone()[0]
    # Services: each period charged once, none due left.
    cr.execute(
        """
        SELECT COUNT(*) FROM (
            SELECT 1 FROM billing_charge WHERE service_id IS NOT NULL
          GROUP BY service_id, service_period_start HAVING COUNT(*) > 1) AS twice
        """
    )
    found["services_charged_twice"] = cr.fetchone()[0]
    cr.execute(
        """
        SELECT s.id, s.state, s.next_date, s.date_start,
               ARRAY_AGG(c.service_period_start ORDER BY c.service_period_start)
                   FILTER (WHERE c.id IS NOT NULL)
          FROM billing_service s
     LEFT JOIN billing_charge c ON c.service_id = s.id
      GROUP BY s.id
        """
    )
    services = cr.fetchall()
    found["services"] = len(services)
    wrong = 0
    for _id, state, next_date, start, charged in services:
        expected, index = [], 1
        while start + relativedelta(months=index) <= today:
            expected.append(start + relativedelta(months=index))
            index += 1
        if (
            state != "active"
            or (charged or []) != expected
            or next_date != start + relativedelta(months=index)
        ):
            wrong += 1
    found["services_wrong"] = wrong
    # Books against wallets: each wallet's customer credit on the wallet
    # account equals its balance plus its consumption not yet posted.
    company = env.company
    cr.execute(
        """
        SELECT COUNT(*),
               COUNT(*) FILTER (WHERE ROUND(COALESCE(books.credit, 0), 2)
                                 != ROUND(w.balance + w.unposted_consumption, 2)),
               COUNT(*) FILTER (WHERE w.balance < 0)
          FROM billing_wallet w
     LEFT JOIN (SELECT partner_id, -SUM(balance) AS credit
                  FROM account_move_line
                 WHERE account_id = %(account)s AND parent_state = 'posted'
              GROUP BY partner_id) books ON books.partner_id = w.partner_id
         WHERE w.company_id = %(company)s
        """,
        {"account": company.billing_wallet_account_id.id, "company": company.id},
    )
    found["wallets"], found["off_books"], found["negative"] = cr.fetchone()
    cr.execute(
        """
        SELECT COUNT(*) FROM billing_wallet w
         WHERE w.balance != (SELECT COALESCE(SUM(m.amount), 0)
                               FROM billing_wallet_move m WHERE m.wallet_id = w.id)
        """
    )
    found["ledger_off"] = cr.fetchone()[0]
    cr.execute(
        SQL(
            "SELECT kind, state, COUNT(*), SUM(invoice_count), SUM(charge_count)"
            " FROM billing_run GROUP BY kind, state"
        )
    )
    found["runs"] = [list(row) for row in cr.fetchall()]
    print("CHAOS_CHECK " + json.dumps(found))


if STEP == "setup":
    setup(env)  # noqa: F821 - env comes from odoo-bin shell
elif STEP in ("recurring", "renewal"):
    run(env, STEP)  # noqa: F821
elif STEP == "check":
    check(env)  # noqa: F821
else:
    raise SystemExit(f"unknown CHAOS_STEP {STEP}")
