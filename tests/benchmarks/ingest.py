"""`make bench`: ingestion throughput and current-usage latency, each as a ratio to a floor
measured in the same run on the same machine (no absolute figure is a pass or fail).

Floors: raw psycopg ``executemany`` of the same stored-event rows, 100 per transaction, into
a scratch table; and a bare Falcon POST/GET endpoint under the same gunicorn settings, hit
by the same load generator. Targets (issue 4): batch ingest ≥ 0.6 × executemany floor;
single-event ingest ≥ 0.5 × bare POST floor; current_usage p99 at 1M events ≤ 3 × bare GET p99.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from interfaces import embedded_postgres
from interfaces.store import migrate, open_store

ROOT = Path(__file__).resolve().parents[2]
WORKERS = os.environ.get("TALLY_WEB_WORKERS", "2")
THREADS = os.environ.get("TALLY_WEB_THREADS", "16")
SECONDS = float(os.environ.get("BENCH_SECONDS", "15"))
TOTAL_EVENTS = int(os.environ.get("BENCH_TOTAL_EVENTS", "1000000"))


@contextmanager
def database() -> Iterator[str]:
    url = os.environ.get("BENCH_DATABASE_URL")
    if url:
        yield url
        return
    data = Path(tempfile.mkdtemp(prefix="tally-bench-")) / "pg"
    yield embedded_postgres.start(data, throwaway=True)


@contextmanager
def process(*argv: str, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen(list(argv), cwd=ROOT, env={**os.environ, **env}, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield child
    finally:
        os.killpg(child.pid, signal.SIGTERM)
        try:
            child.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)


def wait_listening(port: int, path: str = "/health", timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", path)
            if connection.getresponse().status < 500:
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answers on port {port}")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the load generator: processes × threads, one keep-alive connection per thread ---------


def _client(port: int, method: str, path: str, headers: dict[str, str], bodies: Callable[[int, int], bytes] | None,
            seconds: float, worker: int, results: Any, latencies: bool) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    done, failed, sequence = 0, 0, 0
    timings: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        body = bodies(worker, sequence) if bodies else None
        sequence += 1
        started = time.perf_counter()
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            failed += 1
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            continue
        if latencies:
            timings.append(time.perf_counter() - started)
        if response.status == 200:
            done += 1
        else:
            failed += 1
    results.put((done, failed, timings))


def _process(port: int, method: str, path: str, headers: dict[str, str], bodies: Any, seconds: float,
             threads: int, offset: int, results: Any, latencies: bool) -> None:
    workers = [threading.Thread(target=_client, args=(port, method, path, headers, bodies, seconds, offset + n, results, latencies))
               for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def hammer(port: int, method: str, path: str, *, headers: dict[str, str] | None = None,
           bodies: Callable[[int, int], bytes] | None = None, seconds: float = SECONDS, processes: int = 2,
           threads: int = 8, latencies: bool = False) -> tuple[float, int, list[float]]:
    """Requests per second answered 200, failures, and per-request seconds if asked."""
    results: Any = multiprocessing.get_context("fork").Queue()
    jobs = [multiprocessing.get_context("fork").Process(
        target=_process, args=(port, method, path, headers or {}, bodies, seconds, threads, p * threads, results, latencies))
        for p in range(processes)]
    started = time.perf_counter()
    for job in jobs:
        job.start()
    done, failed, timings = 0, 0, []
    for _ in range(processes * threads):
        d, f, t = results.get()
        done, failed, timings = done + d, failed + f, timings + t
    for job in jobs:
        job.join()
    return done / (time.perf_counter() - started), failed, timings


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


# --- the floors ------------------------------------------------------------------------------------


def executemany_floor(url: str, seconds: float = SECONDS) -> float:
    """Rows/s of plain executemany of stored-event-shaped rows, 100 rows per transaction."""
    state = json.dumps({"timestamp": "2026-04-01T00:00:00Z", "organization_id": str(uuid.uuid4()), "transaction_id": "t",
                        "external_subscription_id": "sub", "code": "calls", "occurred_at": "2026-04-01T00:00:00Z",
                        "properties": "{}", "precise_total_amount_cents": None}).encode()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_scratch")
        conn.execute("CREATE TABLE bench_scratch (originator_id uuid, originator_version bigint, topic text, state bytea, "
                     "notification_id bigserial, PRIMARY KEY (originator_id, originator_version))")
        rows = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            batch = [(uuid.uuid4(), 1, "domain.usage_event:UsageEvent.Recorded", state) for _ in range(100)]
            with conn.transaction():
                conn.cursor().executemany(
                    "INSERT INTO bench_scratch (originator_id, originator_version, topic, state) VALUES (%s, %s, %s, %s)", batch)
            rows += 100
        rate = rows / (time.perf_counter() - started)
        conn.execute("DROP TABLE bench_scratch")
    return rate


def bare_falcon(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", WORKERS, "--worker-class", "gthread",
         "--threads", THREADS, "--keep-alive", "5", "tests.benchmarks.bare:app"],
        cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# --- the run -------------------------------------------------------------------------------------


def event_batch(worker: int, sequence: int) -> bytes:
    return json.dumps({"events": [
        {"transaction_id": f"b{worker}-{sequence}-{n}", "external_subscription_id": "sub", "code": "calls",
         "properties": {"region": "eu" if n % 2 else "us"}} for n in range(100)]}).encode()


def single_event(worker: int, sequence: int) -> bytes:
    return json.dumps({"event": {"transaction_id": f"s{worker}-{sequence}", "external_subscription_id": "sub",
                                 "code": "calls", "properties": {"region": "us"}}}).encode()


ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


def main() -> int:
    """Floors and targets measured in alternating rounds; each figure is the median of its rounds."""
    report: dict[str, Any] = {}
    rounds: dict[str, list[float]] = {"executemany": [], "bare_post": [], "batch": [], "single": []}
    with database() as url:
        migrate(url)
        store = open_store(url, role="bench", pool_size=2)
        key = store.billing.create_organization("Bench")
        store.close()
        headers = {"Authorization": f"Bearer {key.secret}", "Content-Type": "application/json"}
        port, bare_port = free_port(), free_port()
        env = {"DATABASE_URL": url, "TALLY_WEB_WORKERS": WORKERS, "TALLY_WEB_THREADS": THREADS, "TALLY_LOG_LEVEL": "warning"}
        bare = bare_falcon(bare_port)
        try:
            with process(sys.executable, "-m", "interfaces.cli", "api", "--bind", f"127.0.0.1:{port}", env=env):
                wait_listening(bare_port, "/")
                wait_listening(port)
                setup(port, headers)
                for number in range(ROUNDS):
                    print(f"round {number + 1}/{ROUNDS}: executemany floor, bare POST floor, batch ingest, single ingest …", flush=True)
                    rounds["executemany"].append(executemany_floor(url))
                    rounds["bare_post"].append(hammer(bare_port, "POST", "/", bodies=single_event, threads=16)[0])
                    rate, failed, _ = hammer(port, "POST", "/api/v1/events/batch", headers=headers,
                                             bodies=lambda w, s, r=number: event_batch(w + 100 * r, s), threads=4)
                    rounds["batch"].append(rate * 100)
                    rate, failed, _ = hammer(port, "POST", "/api/v1/events", headers=headers,
                                             bodies=lambda w, s, r=number: single_event(w + 100 * r, s), threads=16)
                    rounds["single"].append(rate)
                _, _, bare_get = hammer(bare_port, "GET", "/", seconds=10, processes=1, threads=1, latencies=True)
                stored = load_until(url, port, headers, TOTAL_EVENTS)
                report["events_stored"] = stored
                # The projection worker starts now, so ingestion was measured alone; its own rate is reported.
                with process(sys.executable, "-m", "interfaces.cli", "worker", env=env):
                    print(f"projection worker catching up with {stored} events …", flush=True)
                    report["projection_catch_up_s"] = caught_up(url)
                    report["projection_events_per_s"] = stored / report["projection_catch_up_s"]
                    path = "/api/v1/customers/cus/current_usage?external_subscription_id=sub"
                    _, _, timings = hammer(port, "GET", path, headers=headers, seconds=10, processes=1, threads=1, latencies=True)
        finally:
            os.killpg(bare.pid, signal.SIGTERM)
            bare.wait(20)
    report["rounds"] = rounds
    report["executemany_rows_per_s"] = statistics.median(rounds["executemany"])
    report["bare_post_per_s"] = statistics.median(rounds["bare_post"])
    report["batch_events_per_s"] = statistics.median(rounds["batch"])
    report["single_events_per_s"] = statistics.median(rounds["single"])
    report["current_usage_p50_ms"] = percentile(timings, 0.5) * 1000
    report["current_usage_p99_ms"] = percentile(timings, 0.99) * 1000
    report["bare_get_p99_ms"] = percentile(bare_get, 0.99) * 1000
    report["bare_get_p50_ms"] = statistics.median(bare_get) * 1000
    report["batch_ratio"] = report["batch_events_per_s"] / report["executemany_rows_per_s"]
    report["single_ratio"] = report["single_events_per_s"] / report["bare_post_per_s"]
    report["latency_ratio"] = report["current_usage_p99_ms"] / report["bare_get_p99_ms"]
    print_report(report)
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / f"ingest-{time.strftime('%Y%m%dT%H%M%S')}.json").write_text(json.dumps(report, indent=2))
    return 0


def setup(port: int, headers: dict[str, str]) -> None:
    def call(method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request(method, path, body=json.dumps(body), headers=headers)
        response = connection.getresponse()
        payload = json.loads(response.read())
        if response.status != 200:
            raise RuntimeError(f"{path}: {payload}")
        return dict(payload)

    metric = call("POST", "/api/v1/billable_metrics", {"billable_metric": {
        "name": "Calls", "code": "calls", "aggregation_type": "count_agg",
        "filters": [{"key": "region", "values": ["us", "eu"]}]}})["billable_metric"]["lago_id"]
    call("POST", "/api/v1/plans", {"plan": {"name": "Bench", "code": "bench", "interval": "monthly", "amount_cents": 1000,
                                            "amount_currency": "USD", "pay_in_advance": False, "charges": [
                                                {"billable_metric_id": metric, "charge_model": "graduated", "properties": {
                                                    "graduated_ranges": [
                                                        {"from_value": 0, "to_value": 1000, "per_unit_amount": "0.01", "flat_amount": "0"},
                                                        {"from_value": 1001, "to_value": None, "per_unit_amount": "0.001", "flat_amount": "0"}]},
                                                 "filters": [{"values": {"region": ["eu"]}, "properties": {"graduated_ranges": [
                                                     {"from_value": 0, "to_value": None, "per_unit_amount": "0.02", "flat_amount": "0"}]}}]}]}})
    call("POST", "/api/v1/subscriptions", {"subscription": {"external_customer_id": "cus", "plan_code": "bench", "external_id": "sub"}})


def stored_events(url: str) -> int:
    with psycopg.connect(url) as conn:
        return int(conn.execute("SELECT coalesce(max(notification_id), 0) FROM metering_events").fetchone()[0])


def load_until(url: str, port: int, headers: dict[str, str], total: int) -> int:
    """Batch-ingest until ``total`` events are stored (for the latency measurement at scale)."""
    print(f"loading up to {total} events …", flush=True)
    while (count := stored_events(url)) < total:
        hammer(port, "POST", "/api/v1/events/batch", headers=headers,
               bodies=lambda w, s, c=count: event_batch(w + 1000 * (c // 1000), s), seconds=20, threads=4)
        print(f"  {stored_events(url)} events stored", flush=True)
    return stored_events(url)


def caught_up(url: str, timeout: float = 1800) -> float:
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        while time.perf_counter() - started < timeout:
            row = conn.execute("SELECT position FROM projection_tracking WHERE projection = 'usage' AND application = 'Metering'").fetchone()
            head = conn.execute("SELECT coalesce(max(notification_id), 0) FROM metering_events").fetchone()[0]
            if row and row[0] >= head:
                return time.perf_counter() - started
            time.sleep(1)
    raise RuntimeError("the usage projection did not catch up")


def print_report(report: dict[str, Any]) -> None:
    print()
    print(f"medians of {ROUNDS} alternating rounds of {SECONDS:g} s; per round: "
          + ", ".join(f"{k} " + "/".join(f"{v:,.0f}" for v in vals) for k, vals in report["rounds"].items()))
    print(f"executemany floor            {report['executemany_rows_per_s']:>10,.0f} rows/s")
    print(f"batch ingest (100/request)   {report['batch_events_per_s']:>10,.0f} events/s   ratio {report['batch_ratio']:.2f} (target ≥ 0.60)")
    print(f"bare Falcon POST floor       {report['bare_post_per_s']:>10,.0f} requests/s")
    print(f"single-event ingest          {report['single_events_per_s']:>10,.0f} events/s   ratio {report['single_ratio']:.2f} (target ≥ 0.50)")
    print(f"events stored                {report['events_stored']:>10,}")
    print(f"usage projection             {report['projection_events_per_s']:>10,.0f} events/s "
          f"({report['projection_catch_up_s']:.1f} s for all, worker started after loading)")
    print(f"current_usage p50 / p99      {report['current_usage_p50_ms']:>7.2f} / {report['current_usage_p99_ms']:.2f} ms")
    print(f"bare GET p50 / p99           {report['bare_get_p50_ms']:>7.2f} / {report['bare_get_p99_ms']:.2f} ms   "
          f"ratio {report['latency_ratio']:.2f} (target ≤ 3)")


if __name__ == "__main__":
    sys.exit(main())
