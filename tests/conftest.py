"""Fixtures: one Postgres per session (embedded unless TALLY_TEST_DATABASE_URL), a fresh
database per test copied from a migrated template, and the wired store and API on it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import falcon.testing
import httpx
import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from domain.api_key import IssuedKey
from interfaces import embedded_postgres
from interfaces.http.app import create_app
from interfaces.store import Store, migrate, open_store

# One template per test session, so sessions sharing a server never drop each other's.
TEMPLATE = f"tally_test_template_{os.getpid()}"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of a server the tests may create databases on."""
    url = os.environ.get("TALLY_TEST_DATABASE_URL")
    if url:
        yield url
        return
    data = Path(tempfile.mkdtemp(prefix="tally-test-")) / "pg"
    url = embedded_postgres.start(data, throwaway=True)
    with psycopg.connect(url, autocommit=True) as conn:
        # A throwaway server: durability buys nothing here, speed does.
        conn.execute("ALTER SYSTEM SET fsync = off")
        conn.execute("ALTER SYSTEM SET synchronous_commit = off")
        conn.execute("ALTER SYSTEM SET full_page_writes = off")
        conn.execute("SELECT pg_reload_conf()")
    yield url


def database_in(server: str, name: str) -> str:
    return make_conninfo(server, dbname=name)


@pytest.fixture(scope="session")
def template_database(postgres_server: str) -> Iterator[str]:
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {TEMPLATE}")
    migrate(database_in(postgres_server, TEMPLATE))
    yield TEMPLATE
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")


def _fresh_database(server: str, template: str) -> Iterator[str]:
    name = f"t_{uuid4().hex[:16]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template} STRATEGY FILE_COPY")
    yield database_in(server, name)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def database_url(postgres_server: str, template_database: str) -> Iterator[str]:
    """A fresh, migrated database of this test's own."""
    yield from _fresh_database(postgres_server, template_database)


@pytest.fixture(scope="module")
def shared_database_url(postgres_server: str, template_database: str) -> Iterator[str]:
    """One database for a whole module; its tests stay apart by using their own organizations."""
    yield from _fresh_database(postgres_server, template_database)


@pytest.fixture(scope="module")
def shared_store(shared_database_url: str) -> Iterator[Store]:
    opened = open_store(shared_database_url, role="test", pool_size=4, read_wait_seconds=10)
    yield opened
    opened.close()


@pytest.fixture
def tenant(shared_store: Store) -> IssuedKey:
    """A new organization in the module's shared database."""
    return shared_store.billing.create_organization(f"Tenant {uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def api(shared_store: Store) -> falcon.testing.TestClient:
    """The API in process, on the module's shared database."""
    return falcon.testing.TestClient(create_app(shared_store.billing, shared_store.metering, shared_store.readers, max_body_bytes=256 * 1024))


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = open_store(database_url, role="test", pool_size=4, read_wait_seconds=10)
    yield opened
    opened.close()


@pytest.fixture
def client(store: Store) -> falcon.testing.TestClient:
    return falcon.testing.TestClient(create_app(store.billing, store.metering, store.readers, max_body_bytes=64 * 1024))


@pytest.fixture
def org(store: Store) -> IssuedKey:
    return store.billing.create_organization(f"Org {uuid4().hex[:8]}")


def _serve(database: str) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database, "TALLY_WEB_WORKERS": "1", "TALLY_WEB_THREADS": "4",
           "TALLY_LOG_LEVEL": "warning"}
    process = subprocess.Popen([sys.executable, "-m", "interfaces.cli", "api", "--bind", f"127.0.0.1:{port}"],
                               cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(healthy, timeout=30, interval=0.1)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(20)


@pytest.fixture
def server(database_url: str) -> Iterator[str]:
    """``tally api`` on a free port, as deployed: gunicorn, gthread workers."""
    yield from _serve(database_url)


@pytest.fixture(scope="module")
def shared_server(shared_database_url: str) -> Iterator[str]:
    """``tally api`` on the module's shared database."""
    yield from _serve(shared_database_url)


def bearer(key: IssuedKey | str) -> dict[str, str]:
    secret = key.secret if isinstance(key, IssuedKey) else key
    return {"Authorization": f"Bearer {secret}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tally(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the ``tally`` CLI as a user would, in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "interfaces.cli", *args],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT, env={**os.environ, **(env or {})},
    )


def wait_until(condition: object, timeout: float = 30.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
