"""``tally scheduler --once`` closes every due period exactly once: concurrent schedulers, a SIGKILL mid-pass."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import psycopg

from interfaces.store import Store

SUBSCRIPTIONS = 200


def _due_subscriptions(store: Store, count: int) -> None:
    """``count`` arrears subscriptions started last month: each owes exactly one invoice now."""
    billing = store.billing
    now = datetime.now(UTC)
    started = (now.replace(day=1) - timedelta(days=20)).replace(hour=0, minute=0, second=0, microsecond=0)
    organization_id = billing.create_organization("Scheduled").organization_id
    billing.create_plan(organization_id, {"name": "Base", "code": "base", "interval": "monthly", "amount_cents": 3000,
                                          "amount_currency": "USD", "pay_in_advance": False}, now)
    for number in range(count):
        billing.create_subscription(organization_id, {"external_customer_id": f"cus-{number}", "plan_code": "base",
                                                      "external_id": f"sub-{number}", "subscription_at": started}, now)


def _scheduler(database_url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": database_url, "TALLY_LOG_LEVEL": "warning"}
    return subprocess.Popen([sys.executable, "-m", "interfaces.cli", "scheduler", "--once"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _invoices(database_url: str) -> tuple[int, int]:
    """Invoices issued, and subscriptions with more than one periodic invoice."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        issued = conn.execute("SELECT count(*) FROM billing_events WHERE topic LIKE %s", ("%Invoice.Issued",)).fetchone()[0]
        repeated = conn.execute(
            "SELECT count(*) FROM (SELECT originator_id FROM billing_events WHERE topic LIKE %s "
            "GROUP BY originator_id HAVING count(*) > 1) twice", ("%Subscription.PeriodClosed",)).fetchone()[0]
    return issued, repeated


def test_two_schedulers_started_together_issue_one_invoice_per_due_period(store: Store, database_url: str) -> None:
    _due_subscriptions(store, SUBSCRIPTIONS)

    first, second = _scheduler(database_url), _scheduler(database_url)
    outputs = [process.communicate(timeout=240)[0].decode() for process in (first, second)]

    assert [first.returncode, second.returncode] == [0, 0], outputs
    assert _invoices(database_url) == (SUBSCRIPTIONS, 0)


def test_a_scheduler_killed_mid_pass_and_restarted_misses_and_repeats_nothing(store: Store, database_url: str) -> None:
    _due_subscriptions(store, SUBSCRIPTIONS)

    victim = _scheduler(database_url)
    deadline = time.monotonic() + 120
    while _invoices(database_url)[0] < 20 and time.monotonic() < deadline and victim.poll() is None:
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait(30)
    interrupted = _invoices(database_url)[0]
    survivor = _scheduler(database_url)
    output = survivor.communicate(timeout=240)[0].decode()

    print(f"killed after {interrupted} invoices; after the restart {_invoices(database_url)} (issued, repeated)")
    assert 0 < interrupted < SUBSCRIPTIONS, "the kill should land mid-pass"
    assert survivor.returncode == 0, output
    assert _invoices(database_url) == (SUBSCRIPTIONS, 0)
