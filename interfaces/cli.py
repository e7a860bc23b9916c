"""The ``tally`` command. Every failure prints one clear line and exits non-zero."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg

from application.invoicing import Invoicing
from domain import identity
from domain.api_key import IssuedKey
from domain.errors import BillingError, ValidationFailed
from interfaces.progress import Progress
from interfaces.store import NotMigrated, Store, database_url, migrate, open_store
from projections import runner, worker
from scheduler import main as scheduler_main
from scheduler.advance_subscriptions import AdvanceSubscriptions
from scheduler.close_periods import ClosePeriods
from scheduler.watch_projections import WatchProjections

DEFAULT_BIND = "0.0.0.0:3000"


class CommandFailed(Exception):
    """A CLI-level refusal with the line to print."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help(sys.stderr)
        return 2
    _configure_logging(args.long_running)
    try:
        return args.run(args) or 0
    except KeyboardInterrupt:
        return 130
    except ValidationFailed as error:
        details = "; ".join(f"{field}: {', '.join(codes)}" for field, codes in error.details.items())
        return _fail(f"invalid input ({details})")
    except (BillingError, NotMigrated, CommandFailed) as error:
        return _fail(str(error))
    except psycopg.OperationalError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return _fail(f"cannot reach the database: {first}")
    except Exception as error:  # one line, not a traceback, for anything unexpected
        logging.getLogger(__name__).debug("unexpected failure", exc_info=True)
        return _fail(f"{type(error).__name__}: {error}")


def _fail(message: str) -> int:
    print(f"tally: {message}", file=sys.stderr)
    return 1


def _configure_logging(long_running: bool) -> None:
    level = os.environ.get("TALLY_LOG_LEVEL", "INFO" if long_running else "WARNING").upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for chatty in ("pgserver", "apscheduler"):  # their INFO lines are per-minute or per-initdb noise
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tally", description="Usage-based billing on an event-sourced ledger.")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    def command(name: str, run: Callable[[argparse.Namespace], int | None], help: str,
                into: Any = commands, long_running: bool = False) -> argparse.ArgumentParser:
        sub = into.add_parser(name, help=help, description=help)
        sub.set_defaults(run=run, long_running=long_running)
        return sub

    command("migrate", _migrate, "create every table and trigger once (idempotent)")
    up = command("up", _up, "database, migrations, API, projection worker and scheduler on one machine", long_running=True)
    up.add_argument("--bind", default=os.environ.get("TALLY_BIND", DEFAULT_BIND), help="HOST:PORT (default %(default)s)")
    api = command("api", _api, "serve the HTTP API under gunicorn", long_running=True)
    api.add_argument("--bind", default=os.environ.get("TALLY_BIND", DEFAULT_BIND), help="HOST:PORT (default %(default)s)")
    command("worker", _worker, "keep every projection at the head of the event log", long_running=True)
    sched = command("scheduler", _scheduler, "run the scheduled jobs every minute", long_running=True)
    sched.add_argument("--once", action="store_true", help="run one pass and exit")

    org = commands.add_parser("org", help="organizations and their API keys").add_subparsers(title="org commands", metavar="COMMAND")
    create = command("create", _org_create, "create an organization and print its first API key", into=org)
    create.add_argument("name")
    create.add_argument("--slug", help="unique short name (default: derived from NAME)")
    create.add_argument("--if-missing", action="store_true", help="succeed without a new key if it exists")
    keys = org.add_parser("keys", help="API keys").add_subparsers(title="key commands", metavar="COMMAND")
    key_create = command("create", _key_create, "issue a new API key for ORG (id or slug)", into=keys)
    key_create.add_argument("org")
    key_create.add_argument("--name", default="", help="a label for the key")
    key_revoke = command("revoke", _key_revoke, "revoke an API key by its id", into=keys)
    key_revoke.add_argument("key_id")
    key_list = command("list", _key_list, "list ORG's API keys (ids, never secrets)", into=keys)
    key_list.add_argument("org")

    proj = commands.add_parser("projections", help="read models").add_subparsers(title="projection commands", metavar="COMMAND")
    command("status", _projections_status,
            "events each projection still has to process; exits 1 when one is stuck on an event", into=proj)
    retry = command("retry", _projections_retry, "make the worker retry stuck projections now", into=proj)
    retry.add_argument("names", nargs="*", help="projections to retry (default: all)")
    rebuild = command("rebuild", _projections_rebuild, "drop views and replay the log into them", into=proj)
    rebuild.add_argument("names", nargs="*", help="projections to rebuild (default: all)")

    db = commands.add_parser("db", help="the database").add_subparsers(title="db commands", metavar="COMMAND")
    command("url", _db_url, "print the database URL (starts the embedded server if needed)", into=db)
    return parser


def _store(role: str, **options: Any) -> Store:
    return open_store(database_url(), role=role, **options)


def _migrate(args: argparse.Namespace) -> None:
    reset = migrate(database_url())
    print("migrated" + (f"; views reset for rebuild: {', '.join(reset)}" if reset else ""))


def _up(args: argparse.Namespace) -> int:
    from interfaces.supervisor import supervise

    url = database_url()
    migrate(url)
    store = open_store(url, role="setup", pool_size=2)
    try:
        if store.readers.organizations.count() == 0:
            issued = store.billing.create_organization("Default")
            _announce_first_key(issued, args.bind)
        else:
            print("Tally: organizations exist; use the API key you were given, or `tally org keys create ORG`.")
    finally:
        store.close()
    print(f"Tally: serving on http://{args.bind} (Ctrl-C stops)", flush=True)
    return supervise(url, args.bind)


def _announce_first_key(issued: IssuedKey, bind: str) -> None:
    host, _, port = bind.rpartition(":")
    local = f"http://{'localhost' if host in ('0.0.0.0', '', '::') else host}:{port}"
    print(
        "Tally: created organization 'Default'. Its API key is shown once and stored only as a hash:\n\n"
        f"    {issued.secret}\n\n"
        f"    curl -H 'Authorization: Bearer {issued.secret}' {local}/api/v1/organizations\n",
        flush=True,
    )


def _api(args: argparse.Namespace) -> None:
    from interfaces.http.server import serve

    serve(database_url(), args.bind)


def _worker(args: argparse.Namespace) -> None:
    os.environ.setdefault("PGAPPNAME", "tally-worker")
    store = _store("worker", pool_size=3)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    logging.getLogger(__name__).info("projection worker following %s", ", ".join(p.name for p in store.projectors))
    from application.invoicing import Invoicing

    invoicing = Invoicing(store.billing, store.readers)
    try:
        worker.run(store.projectors, store.url, stop,
                   after_round=lambda: invoicing.bill_advance_charges(datetime.now(UTC)))
    finally:
        store.close()


def _scheduler(args: argparse.Namespace) -> int:
    store = _store("scheduler", pool_size=3)
    try:
        jobs = [
            AdvanceSubscriptions(store.billing, store.readers.subscriptions, lambda: datetime.now(UTC)),
            ClosePeriods(Invoicing(store.billing, store.readers), lambda: datetime.now(UTC)),
            WatchProjections(store.freshness.lags),
        ]
        if args.once:
            return 1 if scheduler_main.run_pass(jobs) else 0
        scheduler_main.run(jobs)
        return 0
    finally:
        store.close()


def _org_create(args: argparse.Namespace) -> None:
    store = _store("cli", pool_size=2)
    try:
        slug = args.slug if args.slug is not None else identity.slugify(args.name)
        if not slug:
            raise CommandFailed(f"cannot derive a slug from {args.name!r}; pass --slug")
        if args.if_missing and (existing := store.billing.find_organization(slug)) is not None:
            print(json.dumps({"organization_id": str(existing.id), "api_key": None, "existing": True}))
            return
        issued = store.billing.create_organization(args.name, slug)
        print(json.dumps({"organization_id": str(issued.organization_id), "api_key": issued.secret,
                          "api_key_id": str(issued.key_id)}))
    finally:
        store.close()


def _organization_id(store: Store, ref: str) -> UUID:
    try:
        return UUID(ref)
    except ValueError:
        organization = store.billing.find_organization(ref)
        if organization is None:
            raise CommandFailed(f"no organization with slug {ref!r}") from None
        return organization.id


def _key_create(args: argparse.Namespace) -> None:
    store = _store("cli", pool_size=2)
    try:
        issued = store.billing.issue_api_key(_organization_id(store, args.org), args.name)
        print(json.dumps({"organization_id": str(issued.organization_id), "api_key_id": str(issued.key_id),
                          "api_key": issued.secret}))
    finally:
        store.close()


def _key_revoke(args: argparse.Namespace) -> None:
    try:
        key_id = UUID(args.key_id)
    except ValueError:
        raise CommandFailed(f"not a key id: {args.key_id!r}") from None
    store = _store("cli", pool_size=2)
    try:
        store.billing.revoke_api_key(key_id)
        print(json.dumps({"api_key_id": str(key_id), "revoked": True}))
    finally:
        store.close()


def _key_list(args: argparse.Namespace) -> None:
    store = _store("cli", pool_size=2)
    try:
        for key in store.billing.api_keys(_organization_id(store, args.org)):
            print(json.dumps({"api_key_id": str(key.id), "name": key.name, "revoked": key.is_revoked,
                              "created_at": key.created_on.isoformat()}))
    finally:
        store.close()


def _projections_status(args: argparse.Namespace) -> None:
    store = _store("cli", pool_size=2)
    try:
        for name, lag in sorted(store.freshness.lags().items()):
            print(f"{name}: {lag} events behind")
        stuck = store.freshness.stuck()
        for failure in stuck:
            since = f"{failure.first_seen_at.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}" if failure.first_seen_at else "?"
            print(f"{failure.projection}: STUCK at event {failure.position} of {failure.application} "
                  f"({failure.topic}, originator {failure.originator_id} v{failure.originator_version}): "
                  f"{failure.error} ({failure.attempts} attempts since {since})")
    finally:
        store.close()
    if stuck:
        names = ", ".join(sorted({f.projection for f in stuck}))
        raise CommandFailed(f"stuck on an event they fail on: {names}; fix their code and restart the worker, "
                            "or `tally projections rebuild NAME` (docs/adr/0026)")


def _projections_retry(args: argparse.Namespace) -> None:
    store = _store("cli", pool_size=2)
    try:
        known = {p.name for p in store.projectors}
        unknown = set(args.names) - known
        if unknown:
            raise CommandFailed(f"unknown projection(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
        with store.pool.connection() as conn:
            for name in args.names or [""]:
                conn.execute("SELECT pg_notify(%s, %s)", (worker.RETRY_CHANNEL, name))
        print(f"asked the worker to retry {', '.join(args.names) or 'every stuck projection'} now; "
              "see `tally projections status`")
    finally:
        store.close()


def _projections_rebuild(args: argparse.Namespace) -> None:
    store = _store("cli", pool_size=2)
    try:
        known = {p.name for p in store.projectors}
        unknown = set(args.names) - known
        if unknown:
            raise CommandFailed(f"unknown projection(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
        chosen = [p for p in store.projectors if not args.names or p.name in args.names]
        runner.rebuild(store.pool, chosen)
        for projector in chosen:
            _, head = projector.lag()
            with Progress(f"{projector.name} ← {projector.log.application}", head) as bar:
                projector.catch_up(bar.reach)
                bar.reach(head)
    finally:
        store.close()


def _db_url(args: argparse.Namespace) -> None:
    print(database_url())


if __name__ == "__main__":
    sys.exit(main())
