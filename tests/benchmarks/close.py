"""`make bench`, period close: invoices/s closing one period for many subscriptions, at two event volumes.

Subscriptions on a plan with 3 charges (count, sum, unique count), back-dated into last month,
each with E events in that month; then one ``tally scheduler --once`` pass (timed) invoices them
all. Run at E and at 10 × E events per subscription: the cost of an invoice must not grow with
its events (targets, issue 5: ≥ 200 invoices/s; flat in events per subscription).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import psycopg

from domain.usage_event import UsageEvent
from interfaces.store import Store, migrate, open_store
from tests.benchmarks.ingest import ROOT, caught_up, database, process

SUBSCRIPTIONS = int(os.environ.get("BENCH_CLOSE_SUBSCRIPTIONS", "10000"))
EVENTS = int(os.environ.get("BENCH_CLOSE_EVENTS", "100"))
HEAVY_SUBSCRIPTIONS = int(os.environ.get("BENCH_CLOSE_HEAVY_SUBSCRIPTIONS", "1000"))


def _organization(store: Store, name: str, count: int, events: int, started: datetime, now: datetime) -> None:
    billing = store.billing
    organization_id = billing.create_organization(name).organization_id
    metrics = []
    for code, aggregation, field in (("calls", "count_agg", None), ("tokens", "sum_agg", "tokens"),
                                     ("users", "unique_count_agg", "user")):
        metrics.append(billing.create_billable_metric(organization_id, {
            "name": code, "code": code, "aggregation_type": aggregation, "field_name": field}))
    billing.create_plan(organization_id, {
        "name": "Base", "code": "base", "interval": "monthly", "amount_cents": 3000, "amount_currency": "USD",
        "pay_in_advance": False, "charges": [
            {"billable_metric_id": str(m), "charge_model": "standard", "properties": {"amount": "0.01"}} for m in metrics]}, now)
    at = started + timedelta(days=2)
    batch: list[UsageEvent.Recorded] = []
    for number in range(count):
        billing.create_subscription(organization_id, {"external_customer_id": f"cus-{number}", "plan_code": "base",
                                                      "external_id": f"sub-{number}", "subscription_at": started}, now)
        for sequence in range(events):
            code = ("calls", "tokens", "users")[sequence % 3]
            batch.append(UsageEvent.receive(organization_id, {
                "transaction_id": f"{number}-{sequence}", "external_subscription_id": f"sub-{number}", "code": code,
                "timestamp": int((at + timedelta(seconds=sequence)).timestamp()),
                "properties": {"tokens": sequence, "user": f"u{sequence % 7}"}}, received_at=now, expressions={}))
            if len(batch) >= 5000:
                store.metering.record(batch)
                batch = []
    if batch:
        store.metering.record(batch)


def _close_pass(url: str) -> tuple[float, int]:
    env = {**os.environ, "DATABASE_URL": url, "TALLY_LOG_LEVEL": "warning"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "interfaces.cli", "scheduler", "--once"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=7200)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(done.stdout[-2000:] + done.stderr[-2000:])
    with psycopg.connect(url, autocommit=True) as conn:
        invoices = conn.execute("SELECT count(*) FROM billing_events WHERE topic LIKE %s", ("%Invoice.Issued",)).fetchone()[0]
        # The closing itself, without process start-up and scheduling: first to last invoice stored.
        first, last = conn.execute(
            "SELECT min(convert_from(state, 'UTF8')::jsonb->>'timestamp'), max(convert_from(state, 'UTF8')::jsonb->>'timestamp') "
            "FROM billing_events WHERE topic LIKE %s", ("%Invoice.Issued",)).fetchone()
    closing = (datetime.fromisoformat(last) - datetime.fromisoformat(first)).total_seconds()
    return elapsed, invoices, closing


def main() -> int:
    now = datetime.now(UTC)
    started = (now.replace(day=1) - timedelta(days=20)).replace(hour=0, minute=0, second=0, microsecond=0)
    report = {}
    for label, count, events in (("light", SUBSCRIPTIONS, EVENTS), ("heavy", HEAVY_SUBSCRIPTIONS, EVENTS * 10)):
        with database() as url:
            migrate(url)
            store = open_store(url, role="bench", pool_size=4)
            print(f"{label}: {count} subscriptions × 3 charges, {events} events each …", flush=True)
            _organization(store, f"Bench {label}", count, events, started, now)
            store.close()
            env = {"DATABASE_URL": url, "TALLY_LOG_LEVEL": "warning"}
            with process(sys.executable, "-m", "interfaces.cli", "worker", env=env):  # running, as in production
                caught_up(url)
                elapsed, invoices, closing = _close_pass(url)
            report[label] = (count, events, invoices, elapsed, closing)
    print()
    for label, (count, events, invoices, elapsed, closing) in report.items():
        print(f"close, {events:>5} events/subscription   {invoices:>6} invoices; pass {elapsed:6.1f} s = "
              f"{invoices / elapsed:6.1f}/s; closing alone {closing:6.1f} s = {invoices / closing:6.1f}/s (target ≥ 200)")
    light, heavy = report["light"], report["heavy"]
    print(f"heavy ÷ light, closing alone      {(heavy[2] / heavy[4]) / (light[2] / light[4]):.2f} (flat ≈ 1.0)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())



