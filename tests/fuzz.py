"""`make fuzz`: schemathesis over every operation of our served OpenAPI document, against a fresh Tally.

Tally is started as users run it: a fresh database (embedded Postgres unless DATABASE_URL or
TALLY_TEST_DATABASE_URL names a server, on which a new database is made), `tally migrate`,
`tally org create`, then `tally api` and `tally worker` on a free loopback port. A little data is
made through the API first, so that path parameters can name real objects and lists are not
empty. Schemathesis then checks every answer: no 5xx, a documented status, the documented
content type and schema (docs/adr/0027). The API's log, with any traceback, is kept in the log
directory. Exits non-zero on any failure.

    python -m tests.fuzz                          # the full run (≥ 10,000 requests)
    python -m tests.fuzz --max-examples 5 --phases examples,fuzzing   # a short one
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import psycopg
from psycopg.conninfo import make_conninfo

from interfaces import embedded_postgres

ROOT = Path(__file__).resolve().parent.parent
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance", "response_schema_conformance")
# Schemathesis names a failure by its kind; these are the checks that raise each kind.
CHECK_OF = {
    "ServerError": "not_a_server_error", "ContentTypeServerError": "not_a_server_error",
    "UndefinedStatusCode": "status_code_conformance",
    "MissingContentType": "content_type_conformance", "UndefinedContentType": "content_type_conformance",
    "MalformedMediaType": "content_type_conformance",
    "JsonSchemaError": "response_schema_conformance", "MalformedJson": "response_schema_conformance",
    "ContentDeserializationError": "response_schema_conformance",
    "DiscriminatorMismatch": "response_schema_conformance",
}
ACCESS_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3}) ')


@dataclass
class Outcome:
    """What one run saw: requests the API answered (by status class), and failures by check."""

    requests: int
    statuses: Counter[str]
    test_cases: int
    failures: Counter[str]
    errors: list[str]
    exit_code: int
    seconds: float
    logs: Path

    @property
    def failed(self) -> bool:
        return self.exit_code != 0 or bool(self.failures) or bool(self.errors)

    def summary(self) -> str:
        checks = " ".join(f"{check}={self.failures.get(check, 0)}" for check in CHECKS)
        others = " ".join(f"{name}={count}" for name, count in sorted(self.failures.items()) if name not in CHECKS)
        statuses = " ".join(f"{k}={v}" for k, v in sorted(self.statuses.items()))
        return (f"fuzz: {self.requests} requests sent ({statuses}), {self.test_cases} test cases, "
                f"{sum(self.failures.values())} failures [{checks}{' ' + others if others else ''}]"
                f"{', errors: ' + '; '.join(self.errors) if self.errors else ''} in {self.seconds:.0f} s; "
                f"logs in {self.logs}")


# --- a fresh Tally, as users start it ------------------------------------------------------------


@contextmanager
def fresh_database(server: str | None = None) -> Iterator[str]:
    """A new, empty database: on ``server`` or the one the environment names, else in a throwaway embedded one."""
    server = server or os.environ.get("DATABASE_URL") or os.environ.get("TALLY_TEST_DATABASE_URL")
    if not server:
        data = Path(tempfile.mkdtemp(prefix="tally-fuzz-")) / "pg"
        server = embedded_postgres.start(data, throwaway=True)
    name = f"tally_fuzz_{uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield make_conninfo(server, dbname=name)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def tally(*args: str, url: str) -> str:
    """Run one `tally` command to completion; its standard output."""
    done = subprocess.run([sys.executable, "-m", "interfaces.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "DATABASE_URL": url})
    if done.returncode != 0:
        raise RuntimeError(f"tally {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


@contextmanager
def process(argv: list[str], url: str, log: Path, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    """A long-running `tally` process, its output in ``log``, stopped (with its children) at the end."""
    with log.open("wb") as out:
        child = subprocess.Popen([sys.executable, "-m", "interfaces.cli", *argv], cwd=ROOT, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True,
                                 env={**os.environ, "DATABASE_URL": url, **env})
        try:
            yield child
        finally:
            os.killpg(child.pid, signal.SIGTERM)
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(base: str, api: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if api.poll() is not None:
            raise RuntimeError("tally api exited before it answered")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"tally api did not answer on {base} within {timeout:g}s")


# --- a little data, so that fuzzed requests meet real objects --------------------------------------


def seed(base: str, key: str) -> dict[str, list[str]]:
    """Make one of most things through the API; the keys and ids they got, by path parameter name."""
    client = httpx.Client(base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=30)

    def call(method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = client.request(method, path, json=body)
        if response.status_code != 200:
            print(f"fuzz: seeding {method} {path} answered {response.status_code}: {response.text[:300]}",
                  file=sys.stderr)
            return {}
        return dict(response.json())

    call("POST", "/taxes", {"tax": {"name": "VAT", "code": "vat", "rate": "20"}})
    call("POST", "/add_ons", {"add_on": {"name": "Setup", "code": "setup", "amount_cents": 5000,
                                         "amount_currency": "USD"}})
    call("POST", "/coupons", {"coupon": {"name": "Ten off", "code": "ten", "coupon_type": "fixed_amount",
                                         "amount_cents": 1000, "amount_currency": "USD", "frequency": "once",
                                         "expiration": "no_expiration"}})
    calls = call("POST", "/billable_metrics", {"billable_metric": {"name": "Calls", "code": "calls",
                                                                   "aggregation_type": "sum_agg", "field_name": "n",
                                                                   "filters": [{"key": "region",
                                                                                "values": ["eu", "us"]}]}})
    seats = call("POST", "/billable_metrics", {"billable_metric": {"name": "Seats", "code": "seats",
                                                                   "aggregation_type": "count_agg"}})
    charges = []
    if calls:
        charges.append({"billable_metric_id": calls["billable_metric"]["lago_id"], "charge_model": "standard",
                        "properties": {"amount": "0.5"},
                        "filters": [{"invoice_display_name": "EU", "properties": {"amount": "1"},
                                     "values": {"region": ["eu"]}}]})
    if seats:
        charges.append({"billable_metric_id": seats["billable_metric"]["lago_id"], "charge_model": "standard",
                        "pay_in_advance": True, "invoiceable": True, "properties": {"amount": "2"}})
    call("POST", "/plans", {"plan": {"name": "Basic", "code": "basic", "interval": "monthly", "amount_cents": 1000,
                                     "amount_currency": "USD", "pay_in_advance": False, "charges": charges}})
    call("POST", "/customers", {"customer": {"external_id": "acme", "name": "Acme", "currency": "USD",
                                             "email": "billing@acme.test"}})
    call("POST", "/subscriptions", {"subscription": {"external_customer_id": "acme", "plan_code": "basic",
                                                     "external_id": "acme-basic"}})
    for n, (code, properties) in enumerate([("calls", {"n": 3, "region": "eu"}), ("calls", {"n": 2}), ("seats", {})]):
        call("POST", "/events", {"event": {"transaction_id": f"seed-{n}", "external_subscription_id": "acme-basic",
                                           "code": code, "properties": properties}})
    call("POST", "/applied_coupons", {"applied_coupon": {"external_customer_id": "acme", "coupon_code": "ten"}})
    call("POST", "/wallets", {"wallet": {"external_customer_id": "acme", "currency": "USD", "rate_amount": "1",
                                         "paid_credits": "10", "granted_credits": "5", "name": "Prepaid"}})
    invoice = call("POST", "/invoices", {"invoice": {"external_customer_id": "acme", "currency": "USD",
                                                     "fees": [{"add_on_code": "setup", "units": 2}]}})
    call("POST", "/subscriptions/acme-basic/invoice_now")
    if invoice:
        invoice_id = invoice["invoice"]["lago_id"]
        call("POST", "/payments", {"payment": {"invoice_id": invoice_id, "amount_cents": 100, "reference": "wire-1"}})
        fees = invoice["invoice"].get("fees") or []
        if fees:
            call("POST", "/credit_notes", {"credit_note": {
                "invoice_id": invoice_id, "reason": "other", "credit_amount_cents": 100, "refund_amount_cents": 0,
                "items": [{"fee_id": fees[0]["lago_id"], "amount_cents": 100}]}})
        call("POST", "/payment_requests", {"payment_request": {"external_customer_id": "acme",
                                                               "email": "billing@acme.test",
                                                               "lago_invoice_ids": [invoice_id]}})
    return _known(call)


def _known(call: Any) -> dict[str, list[str]]:
    """The identifiers the seeded objects have now, by the parameter names that take them."""

    def listed(path: str, root: str, field: str) -> list[str]:
        return [str(item[field]) for item in call("GET", f"{path}?per_page=100").get(root, []) if item.get(field)]

    plans = call("GET", "/plans?per_page=100").get("plans", [])
    charges = [c for p in plans for c in p.get("charges", [])]
    return {
        "code": [*listed("/billable_metrics", "billable_metrics", "code"), *listed("/plans", "plans", "code"),
                 *listed("/taxes", "taxes", "code"), *listed("/add_ons", "add_ons", "code"),
                 *listed("/coupons", "coupons", "code")],
        "charge_code": [str(c.get("code") or c["lago_id"]) for c in charges],
        "filter_id": [str(f["lago_id"]) for c in charges for f in c.get("filters", []) if f.get("lago_id")],
        "external_id": [*listed("/customers", "customers", "external_id"),
                        *listed("/subscriptions", "subscriptions", "external_id")],
        "lago_id": [*listed("/invoices", "invoices", "lago_id"), *listed("/credit_notes", "credit_notes", "lago_id"),
                    *listed("/payments", "payments", "lago_id"), *listed("/wallets", "wallets", "lago_id"),
                    *listed("/payment_requests", "payment_requests", "lago_id"), *listed("/fees", "fees", "lago_id"),
                    *listed("/applied_coupons", "applied_coupons", "lago_id")],
        "transaction_id": listed("/events", "events", "transaction_id"),
    }


def config(known: dict[str, list[str]], workers: int, seed: int | None) -> str:
    """A schemathesis.toml: path parameters name a seeded object half of the time; values seen in
    responses feed later requests; stateful links are inferred from the document."""
    lines = [f"workers = {workers}", *([f"seed = {seed}"] if seed is not None else []), ""]
    for name, values in known.items():
        if values:
            lines += [f"[dictionaries.{name}]", f"values = {json.dumps(sorted(set(values)))}", ""]
    bindings = {f"path.{name}": name for name, values in known.items() if values}
    for query, name in (("external_customer_id", "external_id"), ("external_subscription_id", "external_id"),
                        ("invoice_id", "lago_id"), ("code", "code"), ("billable_metric_code", "code")):
        if known.get(name):
            bindings[f"query.{query}"] = name
    lines.append("[parameters]")
    lines += [f'"{key}" = {{ dictionary = "{name}", probability = 0.5 }}' for key, name in sorted(bindings.items())]
    lines += ["", "[phases.fuzzing.extra-data-sources]", "responses = true", "",
              "[phases.stateful.inference]", 'algorithms = ["location-headers", "dependency-analysis"]', ""]
    return "\n".join(lines)


# --- the run -------------------------------------------------------------------------------------


def run(*, max_examples: int, phases: str, workers: int = 2, seed: int | None = None, logs: Path,
        max_time: float | None = None, server: str | None = None, mode: str = "all") -> Outcome:
    """Start a fresh Tally (its database on ``server`` if given), seed it, fuzz it; what happened."""
    started = time.monotonic()
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    with ExitStack() as stack:
        url = stack.enter_context(fresh_database(server))
        tally("migrate", url=url)
        key = json.loads(tally("org", "create", "Fuzz", url=url))["api_key"]
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        api = stack.enter_context(process(["api", "--bind", f"127.0.0.1:{port}"], url, logs / "api.log",
                                          TALLY_ACCESS_LOG="1", TALLY_WEB_WORKERS="1", TALLY_WEB_THREADS="4",
                                          TALLY_LOG_LEVEL="info"))
        stack.enter_context(process(["worker"], url, logs / "worker.log", TALLY_LOG_LEVEL="warning"))
        wait_healthy(base, api)
        known = seed_and_describe(base, key, logs)
        (logs / "schemathesis.toml").write_text(config(known, workers, seed))
        report = logs / "report.json"
        argv = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(logs / "schemathesis.toml"), "run",
                f"{base}/api/v1/openapi.json", "--url", base, "--checks", ",".join(CHECKS),
                "--header", f"Authorization: Bearer {key}", "--max-examples", str(max_examples),
                "--phases", phases, "--mode", mode, "--continue-on-failure", "--no-color",
                "--suppress-health-check", "all", "--request-timeout", "30",
                "--report", "json,junit", "--report-json-path", str(report),
                "--report-junit-path", str(logs / "junit.xml"), "--output-truncate", "false"]
        if max_time is not None:
            argv += ["--max-time", str(int(max_time))]
        with (logs / "schemathesis.log").open("w") as out:
            exit_code = subprocess.run(argv, cwd=logs, stdout=out, stderr=subprocess.STDOUT,
                                       env=os.environ).returncode
    return _outcome(logs, report, exit_code, time.monotonic() - started)


def seed_and_describe(base: str, key: str, logs: Path) -> dict[str, list[str]]:
    known = seed(base, key)
    (logs / "seeded.json").write_text(json.dumps(known, indent=1))
    return known


def _outcome(logs: Path, report: Path, exit_code: int, seconds: float) -> Outcome:
    statuses: Counter[str] = Counter()
    requests = 0
    for line in (logs / "api.log").read_text(errors="replace").splitlines():
        match = ACCESS_LINE.search(line)
        if match:
            requests += 1
            statuses[match.group("status")[0] + "xx"] += 1
    failures: Counter[str] = Counter()
    errors: list[str] = []
    test_cases = 0
    if report.exists():
        document = json.loads(report.read_text())
        test_cases = int(document["test_cases"]["generated"])
        for group in document["failures"]:
            failures[CHECK_OF.get(group["type"], group["type"])] += int(group["count"])
        errors = [f"{e['title']} ×{e['count']}" for e in document["errors"]]
    else:
        errors = ["schemathesis wrote no report"]
    return Outcome(requests, statuses, test_cases, failures, errors, exit_code, seconds, logs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=100, help="test cases per operation and phase")
    parser.add_argument("--phases", default="examples,coverage,fuzzing,stateful")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--max-time", type=float, default=None, help="seconds for the whole schemathesis run")
    parser.add_argument("--mode", choices=("all", "positive", "negative"), default="all",
                        help="valid inputs, invalid ones, or both")
    parser.add_argument("--logs", type=Path, default=ROOT / ".fuzz", help="where logs and reports go")
    args = parser.parse_args(argv)
    outcome = run(max_examples=args.max_examples, phases=args.phases, workers=args.workers, seed=args.seed,
                  logs=args.logs.resolve(), max_time=args.max_time, mode=args.mode)
    print(outcome.summary())
    return 1 if outcome.failed else 0


if __name__ == "__main__":
    sys.exit(main())
