"""Wallets read model: what ``/wallets`` and ``/wallet_transactions`` show."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from functools import singledispatchmethod
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.persistence import Tracking
from psycopg import sql

from domain.wallet import Wallet, WalletTerms, WalletTransaction
from projections.documents import Document, DocumentReader, DocumentView, jsonb
from projections.projection import Projection


@dataclass(frozen=True)
class WalletRecord:
    customer_id: UUID
    currency: str
    rate_amount: Decimal
    terms: WalletTerms
    opened_at: datetime
    status: str = "active"
    balance_cents: int = 0
    consumed_cents: int = 0
    terminated_at: datetime | None = None
    last_consumed_at: datetime | None = None
    pending: tuple[tuple[UUID, int], ...] = ()


class WalletsView(DocumentView):
    table = "wallets"
    columns = {"customer_id": "uuid NOT NULL", "currency": "text NOT NULL", "status": "text NOT NULL"}

    def record(self, id: UUID) -> WalletRecord:
        row = self.cursor.execute("SELECT data FROM wallets WHERE id = %s", (id,)).fetchone()
        return msgspec.convert(row[0], WalletRecord)

    def save(self, id: UUID, record: WalletRecord, at: datetime, tracking: Tracking) -> None:
        self.update(id, at, tracking, data=record, status=record.status)

    def transaction(self, wallet_id: UUID, organization_id: UUID, transaction: WalletTransaction, position: int) -> None:
        self.cursor.execute(
            "INSERT INTO wallet_transactions VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET "
            "status = excluded.status, data = excluded.data",
            (transaction.id, organization_id, wallet_id, transaction.status, transaction.transaction_type,
             transaction.transaction_status, transaction.created_at, jsonb(transaction)))
        del position


WalletsView.ddl = (*WalletsView.ddl,
                   "CREATE TABLE IF NOT EXISTS wallet_transactions (id uuid PRIMARY KEY, organization_id uuid NOT NULL, "
                   "wallet_id uuid NOT NULL, status text NOT NULL, transaction_type text NOT NULL, "
                   "transaction_status text NOT NULL, created_at timestamptz NOT NULL, data jsonb NOT NULL)",
                   "CREATE INDEX IF NOT EXISTS wallet_transactions_by_wallet ON wallet_transactions "
                   "(organization_id, wallet_id, created_at DESC)")
WalletsView.tables = ("wallets", "wallet_transactions")


class Wallets(Projection[WalletsView]):
    name = "wallets"

    @singledispatchmethod
    def process_event(self, event: Any, tracking: Tracking) -> None:
        """Other events do not change wallets."""

    @process_event.register
    def _(self, event: Wallet.Opened, tracking: Tracking) -> None:
        record = WalletRecord(customer_id=event.customer_id, currency=event.currency, rate_amount=event.rate_amount,
                              terms=event.terms, opened_at=event.opened_at)
        self.view.insert(event.originator_id, event.organization_id, event.terms.code or str(event.originator_id),
                         record, event.timestamp, tracking, customer_id=event.customer_id, currency=event.currency,
                         status="active")

    @process_event.register
    def _(self, event: Wallet.Moved, tracking: Tracking) -> None:
        record = self.view.record(event.originator_id)
        t = event.transaction
        balance, consumed, last = record.balance_cents, record.consumed_cents, record.last_consumed_at
        pending = record.pending
        if t.status == "settled":
            balance += t.amount_cents if t.transaction_type == "inbound" else -t.amount_cents
            if t.transaction_status == "invoiced":
                consumed, last = consumed + t.amount_cents, t.created_at
        else:
            pending = (*pending, (t.id, t.amount_cents))
        self.view.save(event.originator_id, replace(record, balance_cents=balance, consumed_cents=consumed,
                                                    last_consumed_at=last, pending=pending), event.timestamp, tracking)
        self.view.transaction(event.originator_id, self._organization(event.originator_id), t, tracking.notification_id)

    @process_event.register
    def _(self, event: Wallet.Settled, tracking: Tracking) -> None:
        record = self.view.record(event.originator_id)
        amount = dict(record.pending).get(event.transaction_id, 0)
        self.view.save(event.originator_id, replace(
            record, balance_cents=record.balance_cents + amount,
            pending=tuple(p for p in record.pending if p[0] != event.transaction_id)), event.timestamp, tracking)
        self.view.cursor.execute(
            "UPDATE wallet_transactions SET status = 'settled', data = data || jsonb_build_object('status', 'settled', "
            "'settled_at', %s::text) WHERE id = %s", (event.at.isoformat(), event.transaction_id))

    @process_event.register
    def _(self, event: Wallet.Updated, tracking: Tracking) -> None:
        record = self.view.record(event.originator_id)
        self.view.save(event.originator_id, replace(record, terms=event.terms), event.timestamp, tracking)

    @process_event.register
    def _(self, event: Wallet.Terminated, tracking: Tracking) -> None:
        record = self.view.record(event.originator_id)
        self.view.save(event.originator_id, replace(record, status="terminated", terminated_at=event.at, balance_cents=0),
                       event.timestamp, tracking)

    def _organization(self, wallet_id: UUID) -> UUID:
        return self.view.cursor.execute("SELECT organization_id FROM wallets WHERE id = %s", (wallet_id,)).fetchone()[0]


class WalletsReader(DocumentReader[WalletRecord]):
    def transactions(self, organization_id: UUID, wallet_id: UUID, offset: int, limit: int,
                     filters: dict[str, str]) -> tuple[list[WalletTransaction], int]:
        self.fresh()
        where = [sql.SQL("organization_id = %s AND wallet_id = %s")]
        params: list[Any] = [organization_id, wallet_id]
        for column in ("status", "transaction_type", "transaction_status"):
            if column in filters:
                where.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
                params.append(filters[column])
        clause = sql.SQL(" AND ").join(where)
        with self._pool.connection() as conn:
            total = conn.execute(sql.SQL("SELECT count(*) FROM wallet_transactions WHERE ") + clause, params).fetchone()[0]
            rows = conn.execute(sql.SQL("SELECT data FROM wallet_transactions WHERE ") + clause +
                                sql.SQL(" ORDER BY created_at DESC, id LIMIT %s OFFSET %s"),
                                [*params, limit, offset]).fetchall()
        return [msgspec.convert(r[0], WalletTransaction) for r in rows], int(total)

    def transaction(self, organization_id: UUID, transaction_id: UUID) -> tuple[WalletTransaction, Document[WalletRecord]] | None:
        self.fresh()
        with self._pool.connection() as conn:
            row = conn.execute("SELECT data, wallet_id FROM wallet_transactions WHERE organization_id = %s AND id = %s",
                               (organization_id, transaction_id)).fetchone()
        if row is None:
            return None
        wallet = self.by_id(organization_id, row[1])
        return (msgspec.convert(row[0], WalletTransaction), wallet) if wallet is not None else None

    def expired(self, now: datetime, limit: int = 10_000) -> list[tuple[UUID, UUID]]:
        """Across organizations: active wallets past their expiration, as (organization, wallet)."""
        self.fresh()
        with self._pool.connection() as conn:
            rows = conn.execute("SELECT organization_id, id FROM wallets WHERE status = 'active' AND deleted_at IS NULL "
                                "AND (data->'terms'->>'expiration_at')::timestamptz <= %s LIMIT %s",
                                (now, limit)).fetchall()
        return [(r[0], r[1]) for r in rows]

    def with_rules(self, limit: int = 10_000) -> list[tuple[UUID, UUID]]:
        """Across organizations: active wallets with recurring top-up rules, as (organization, wallet)."""
        self.fresh()
        with self._pool.connection() as conn:
            rows = conn.execute("SELECT organization_id, id FROM wallets WHERE status = 'active' AND deleted_at IS NULL "
                                "AND jsonb_array_length(data->'terms'->'recurring_rules') > 0 LIMIT %s",
                                (limit,)).fetchall()
        return [(r[0], r[1]) for r in rows]
