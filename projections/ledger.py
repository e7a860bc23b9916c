"""The ledger read model: journal entries posted from the Billing log by ``domain.ledger``'s rules.

Each money-moving event gives balanced postings, stored as rows keyed by the event's log
position and the posting's place in it, so replaying the log writes the same rows. What
the rules need to remember of an invoice or credit note between its events (its ``Book``)
is kept beside the entries, as JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import singledispatchmethod
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.persistence import Tracking
from psycopg import sql
from psycopg_pool import ConnectionPool

from domain.credit_note import CreditNote
from domain.invoice import Invoice
from domain.ledger import (
    Book,
    NoteBook,
    Posting,
    WalletBook,
    post,
    post_credit_note,
    post_wallet,
)
from domain.wallet import Wallet
from projections.documents import jsonb
from projections.freshness import Freshness
from projections.projection import Projection, View

_INVOICE_EVENTS = (Invoice.Issued, Invoice.Refreshed, Invoice.Discounted, Invoice.Credited, Invoice.Prepaid,
                   Invoice.Finalized,
                   Invoice.Offset, Invoice.Paid, Invoice.PaymentStatusChanged, Invoice.Voided, Invoice.Deleted)
_NOTE_EVENTS = (CreditNote.Created, CreditNote.Voided)
_WALLET_EVENTS = (Wallet.Opened, Wallet.Moved, Wallet.Settled, Wallet.Terminated)


class LedgerView(View):
    tables = ("ledger_entries", "ledger_books")
    ddl = (
        """
        CREATE TABLE IF NOT EXISTS ledger_entries (
            position bigint NOT NULL,
            line integer NOT NULL,
            organization_id uuid NOT NULL,
            source_id uuid NOT NULL,
            event text NOT NULL,
            account text NOT NULL,
            customer_id uuid,
            currency text NOT NULL,
            debit_cents bigint NOT NULL,
            credit_cents bigint NOT NULL,
            posted_at timestamptz NOT NULL,
            PRIMARY KEY (position, line)
        )
        """,
        "CREATE INDEX IF NOT EXISTS ledger_entries_by_account ON ledger_entries (organization_id, account, currency)",
        "CREATE INDEX IF NOT EXISTS ledger_entries_by_customer ON ledger_entries (organization_id, customer_id, posted_at)",
        """
        CREATE TABLE IF NOT EXISTS ledger_books (
            id uuid PRIMARY KEY,
            organization_id uuid NOT NULL,
            kind text NOT NULL,
            book jsonb NOT NULL
        )
        """,
    )

    def __init__(self) -> None:
        super().__init__()
        self._books: dict[UUID, tuple[UUID, str, Any]] = {}
        self._entries: list[tuple[Any, ...]] = []

    def book(self, id: UUID, kind: type[Any]) -> Any:
        if id in self._books:
            return self._books[id][2]
        row = self.cursor.execute("SELECT book FROM ledger_books WHERE id = %s", (id,)).fetchone()
        return None if row is None else msgspec.convert(row[0], kind)

    def organization_of(self, id: UUID) -> UUID:
        """The organization of a book, for events that do not name it."""
        if id in self._books:
            return self._books[id][0]
        row = self.cursor.execute("SELECT organization_id FROM ledger_books WHERE id = %s", (id,)).fetchone()
        return row[0] if row is not None else UUID(int=0)

    def keep(self, id: UUID, organization_id: UUID, book: Any) -> None:
        if book is not None:
            self._books[id] = (organization_id, type(book).__name__, book)

    def enter(self, position: int, organization_id: UUID, source_id: UUID, event: str, postings: Sequence[Posting],
              at: datetime) -> None:
        for line, p in enumerate(postings):
            self._entries.append((position, line, organization_id, source_id, event, p.account, p.customer_id,
                                  p.currency, p.debit_cents, p.credit_cents, at))

    def flush(self) -> None:
        if self._entries:
            self.cursor.executemany(
                "INSERT INTO ledger_entries VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT DO NOTHING", self._entries)
        if self._books:
            self.cursor.executemany(
                "INSERT INTO ledger_books VALUES (%s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET book = excluded.book",
                [(id, organization_id, kind, jsonb(book)) for id, (organization_id, kind, book) in self._books.items()])
        self._books.clear()
        self._entries.clear()

    def discard(self) -> None:
        self._books.clear()
        self._entries.clear()


class Ledger(Projection[LedgerView]):
    name = "ledger"

    @singledispatchmethod
    def process_event(self, event: Any, tracking: Tracking) -> None:
        """Other events move no money."""

    def _invoice(self, event: Any, tracking: Tracking) -> None:
        self._fold(event, tracking, post, Book)

    def _credit_note(self, event: Any, tracking: Tracking) -> None:
        self._fold(event, tracking, post_credit_note, NoteBook)

    def _wallet(self, event: Any, tracking: Tracking) -> None:
        self._fold(event, tracking, post_wallet, WalletBook)

    def _fold(self, event: Any, tracking: Tracking, rules: Any, kind: type[Any]) -> None:
        organization_id = getattr(event, "organization_id", None) or self.view.organization_of(event.originator_id)
        after, postings = rules(event, self.view.book(event.originator_id, kind))
        self.view.keep(event.originator_id, organization_id, after)
        self.view.enter(tracking.notification_id, organization_id, event.originator_id, type(event).__qualname__,
                        postings, event.timestamp)


for _kind in _INVOICE_EVENTS:
    Ledger.process_event.register(_kind, Ledger._invoice)  # type: ignore[attr-defined]
for _kind in _NOTE_EVENTS:
    Ledger.process_event.register(_kind, Ledger._credit_note)  # type: ignore[attr-defined]
for _kind in _WALLET_EVENTS:
    Ledger.process_event.register(_kind, Ledger._wallet)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class AccountBalance:
    account: str
    customer_id: UUID | None
    currency: str
    debit_cents: int
    credit_cents: int

    @property
    def balance_cents(self) -> int:
        return self.debit_cents - self.credit_cents


@dataclass(frozen=True)
class Entry:
    position: int
    line: int
    source_id: UUID
    event: str
    account: str
    customer_id: UUID | None
    currency: str
    debit_cents: int
    credit_cents: int
    posted_at: datetime


class LedgerReader:
    def __init__(self, pool: ConnectionPool[Any], freshness: Freshness) -> None:
        self._pool = pool
        self._freshness = freshness

    def accounts(self, organization_id: UUID, customer_id: UUID | None = None,
                 account: str | None = None) -> list[AccountBalance]:
        self._freshness.wait(["ledger"])
        where, params = self._where(organization_id, customer_id, account, None, None)
        with self._pool.connection() as conn:
            rows = conn.execute(sql.SQL(
                "SELECT account, customer_id, currency, sum(debit_cents), sum(credit_cents) FROM ledger_entries WHERE ")
                + where + sql.SQL(" GROUP BY account, customer_id, currency ORDER BY account, currency, customer_id"),
                params).fetchall()
        return [AccountBalance(r[0], r[1], r[2], int(r[3]), int(r[4])) for r in rows]

    def entries(self, organization_id: UUID, offset: int, limit: int, *, customer_id: UUID | None = None,
                account: str | None = None, since: datetime | None = None,
                until: datetime | None = None) -> tuple[list[Entry], int]:
        self._freshness.wait(["ledger"])
        where, params = self._where(organization_id, customer_id, account, since, until)
        with self._pool.connection() as conn:
            total = conn.execute(sql.SQL("SELECT count(*) FROM ledger_entries WHERE ") + where, params).fetchone()[0]
            rows = conn.execute(sql.SQL(
                "SELECT position, line, source_id, event, account, customer_id, currency, debit_cents, credit_cents, "
                "posted_at FROM ledger_entries WHERE ") + where + sql.SQL(" ORDER BY position, line LIMIT %s OFFSET %s"),
                [*params, limit, offset]).fetchall()
        return [Entry(*row) for row in rows], int(total)

    @staticmethod
    def _where(organization_id: UUID, customer_id: UUID | None, account: str | None, since: datetime | None,
               until: datetime | None) -> tuple[sql.Composable, list[Any]]:
        parts = [sql.SQL("organization_id = %s")]
        params: list[Any] = [organization_id]
        for fragment, value in (("customer_id = %s", customer_id), ("posted_at >= %s", since),
                                ("posted_at < %s", until)):
            if value is not None:
                parts.append(sql.SQL(fragment))
                params.append(value)
        if account is not None:  # an account or every account under it: "revenue" matches "revenue:charge:calls"
            parts.append(sql.SQL("(account = %s OR account LIKE %s)"))
            params.extend([account, account.replace("%", r"\%").replace("_", r"\_") + ":%"])
        return sql.SQL(" AND ").join(parts), params
