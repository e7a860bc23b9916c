"""The invoicing process manager: read usage and taxes, then tell Billing to invoice — for the scheduler and
the API alike (ADR 0019, 0020, 0031).

Billing decides what is owed; this module fetches what Billing cannot read itself (priced usage,
the organization's taxes, the log positions), through the protocols of ``application.readers``,
and walks every subscription with invoicing due, catching up every missed period, oldest first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar
from uuid import UUID

from application.readers import InvoicingReaders, Positions
from domain.application import Billing, ConcurrentWrite
from domain.batched_invoicing import PeriodToClose
from domain.errors import NotFound
from domain.invoice_commands import NothingToInvoice
from domain.period_close import TaxTable

log = logging.getLogger(__name__)
_INSTANT = timedelta(microseconds=1)
_NO_ID = UUID(int=0)
T = TypeVar("T")
BATCH = 100  # closes saved together (docs/adr/0020): a transaction each, and what a conflict sends one at a time


@dataclass
class InvoicingPass:
    """What one pass did."""

    scheduled: int = 0
    closed: int = 0
    started: int = 0
    finished: int = 0
    finalized: int = 0
    in_advance: int = 0
    top_ups: int = 0
    failed: int = 0

    @property
    def invoices(self) -> int:
        return self.closed + self.started + self.finished + self.in_advance


class Invoicing:
    def __init__(self, billing: Billing, readers: InvoicingReaders) -> None:
        self._billing = billing
        self._readers = readers
        self._taxes: dict[UUID, TaxTable] | None = None  # remembered for the length of one pass
    # --- one subscription ---------------------------------------------------------------------------

    def close(self, subscription_id: UUID, boundary: datetime, now: datetime,
              organization_id: UUID | None = None) -> UUID | None:
        if organization_id is None:
            facts = self._billing.billing_facts(subscription_id)
            if facts is None:
                return None
            organization_id = facts.organization_id
        buckets, positions = self._readers.usage.priced_for_billing(subscription_id, boundary - _INSTANT)
        return self._billing.close_period(subscription_id, boundary, buckets, self.taxes(organization_id), positions,
                                          now)

    def close_many(self, due: Sequence[tuple[UUID, datetime, UUID]], now: datetime) -> list[UUID | None]:
        """``close`` of many (subscription, boundary, organization): their usage read in one snapshot, their invoices
        saved in one transaction; all or nothing."""
        usages, positions = self._readers.usage.priced_for_billing_many([(s, b - _INSTANT) for s, b, _ in due])
        closes = [PeriodToClose(s, b, buckets, self.taxes(o), positions)
                  for (s, b, o), buckets in zip(due, usages, strict=True)]
        return self._billing.close_periods(closes, now)

    def start(self, subscription_id: UUID, now: datetime) -> UUID | None:
        facts = self._billing.billing_facts(subscription_id)
        if facts is None:
            return None
        return self._billing.invoice_start(subscription_id, self.taxes(facts.organization_id),
                                           _positions(self._readers.freshness.heads()), now)

    def catch_up(self, subscription_id: UUID, until: datetime, now: datetime) -> int:
        """Close every period of the subscription ending before ``until`` that is not invoiced yet."""
        closed = 0
        while True:
            boundary = self._billing.schedule_billing(subscription_id)
            if boundary is None or boundary >= until or boundary > now:
                return closed
            self.close(subscription_id, boundary, now)
            closed += 1

    def after_change(self, subscription_id: UUID, now: datetime) -> None:
        """Right after an API write: bill a replaced subscription's end and this one's start, at once.
        A failure here is logged and left to the scheduler's next pass, which retries it."""
        try:
            previous = self._billing.previous_subscription(subscription_id)
            for candidate in (previous, subscription_id):
                if candidate is None:
                    continue
                facts = self._billing.billing_facts(candidate)
                if facts is None:
                    continue
                if facts.terminated_at is not None:
                    self.finish(candidate, now)
                elif candidate == subscription_id:
                    self.start(candidate, now)
        except Exception:
            log.exception("invoicing after a change of subscription %s failed; the scheduler will retry", subscription_id)

    def finish(self, subscription_id: UUID, now: datetime) -> UUID | None:
        facts = self._billing.billing_facts(subscription_id)
        if facts is None or facts.terminated_at is None:
            return None
        self.catch_up(subscription_id, facts.terminated_at, now)
        buckets, positions = self._readers.usage.priced_for_billing(
            subscription_id, max(facts.terminated_at - _INSTANT, facts.started_at))
        return self._billing.invoice_termination(subscription_id, buckets, self.taxes(facts.organization_id),
                                                 positions, now)

    def invoice_now(self, subscription_id: UUID, now: datetime) -> UUID:
        """The open period's usage so far, invoiced at once; passed boundaries are closed first."""
        facts = self._billing.billing_facts(subscription_id)
        if facts is None:
            raise NothingToInvoice("the subscription has not started")
        self.catch_up(subscription_id, now, now)
        buckets, positions = self._readers.usage.priced_for_billing(subscription_id, now)
        return self._billing.invoice_now(subscription_id, buckets, self.taxes(facts.organization_id), positions, now)

    def bill_advance_charges(self, now: datetime, limit: int = 500) -> int:
        """Invoice the queued events of pay-in-advance charges, oldest first (C10); returns invoices issued.

        One drainer at a time (an advisory lock; others return at once), so each meter sees its events in log
        order. A row leaves the queue after its command ran: a crash in between runs the command again,
        which finds the event measured and bills nothing."""
        # The queue is written by the usage projection: what a worker holds is billed next time.
        self._readers.freshness.caught_up(["usage"])
        issued = 0
        with self._readers.usage.advance_queue() as queue:
            if queue is None:  # another drainer holds it
                return 0
            blocked: set[tuple[UUID, UUID]] = set()  # (subscription, charge) with a failed event: retried next time
            cursor = (-1, _NO_ID, _NO_ID)
            while True:  # one pass through the queue, in log order
                charges = queue.after(cursor, limit)
                if not charges:
                    return issued
                cursor = charges[-1].cursor
                for charge in charges:
                    if (charge.subscription_id, charge.charge_id) in blocked:
                        continue  # its meter must see the failed event first
                    try:
                        issued += self._billing.bill_in_advance(
                            charge.usage, self.taxes(charge.usage.organization_id), now) is not None
                    except NotFound:  # the subscription or customer is gone: nothing can be billed, ever
                        log.warning("pay-in-advance charge of event %s dropped: its subscription is gone",
                                    charge.event_id)
                    except Exception:
                        log.exception("pay-in-advance charge of event %s failed; retried on the next drain",
                                      charge.event_id)
                        blocked.add((charge.subscription_id, charge.charge_id))
                        continue
                    queue.remove(charge)

    def taxes(self, organization_id: UUID | None) -> TaxTable:
        if organization_id is None:
            return TaxTable({}, (), ())
        if self._taxes is not None and organization_id in self._taxes:
            return self._taxes[organization_id]
        table = self._readers.taxes.tax_table(organization_id)
        if self._taxes is not None:
            self._taxes[organization_id] = table
        return table

    # --- a pass over everything due -------------------------------------------------------------------

    def run_due(self, now: datetime, *, rounds: int = 1000, on_progress: Callable[[int], None] | None = None) -> InvoicingPass:
        """Schedule, close (catching up every missed period), bill starts and terminations, finalize drafts."""
        done = InvoicingPass()
        self._taxes = {}
        try:
            done.in_advance = self._attempt(done, lambda: self.bill_advance_charges(now)) or 0
            for _ in range(rounds):
                # One read scope a round: the views are brought up to the logs once, not after each of our own writes
                # (invoices change no usage); the next round sees the closes of this one.
                with self._readers.freshness.read_scope(), self._billing.remembering():
                    if not self._round(done, now, on_progress):
                        break
            for organization_id, wallet_id in self._readers.wallets.expired(now):  # what is left is forfeited
                self._attempt(done, lambda o=organization_id, w=wallet_id: self._billing.terminate_wallet(o, w, now))
            for organization_id, wallet_id in self._readers.wallets.with_rules():
                done.top_ups += len(self._attempt(
                    done, lambda o=organization_id, w=wallet_id: self._billing.apply_wallet_rules(o, w, now)) or [])
            for organization_id, invoice_id in self._readers.invoices.drafts_due(now.date()):
                if self._attempt(done, lambda o=organization_id, i=invoice_id: self.finalize(o, i, now)) is not None:
                    done.finalized += 1
        finally:
            self._taxes = None
        return done

    def _round(self, done: InvoicingPass, now: datetime, on_progress: Callable[[int], None] | None) -> bool:
        """One round over what is due; False when nothing was, or nothing could move."""
        due = self._readers.subscriptions.billing_due(now)
        if not len(due):
            return False
        before = (done.scheduled, done.closed, done.started, done.finished)
        for batch in _batches(due.to_schedule):
            scheduled = self._batched(len(batch), lambda b=batch: self._billing.schedule_billings(b))
            if scheduled is None:  # one at a time: what another scheduler did is found done
                scheduled = [self._attempt(done, lambda s=s: self._billing.schedule_billing(s)) for s in batch]
            done.scheduled += sum(boundary is not None for boundary in scheduled)
        for batch in _batches(due.to_close):
            closed = self._batched(len(batch), lambda b=batch: self.close_many(b, now))
            if closed is None:
                closed = [self._attempt(done, lambda s=s, b=b, o=o: self.close(s, b, now, o)) for s, b, o in batch]
            done.closed += sum(invoice_id is not None for invoice_id in closed)
            if on_progress:
                on_progress(len(batch))
        for subscription_id in due.to_start:
            done.started += self._attempt(done, lambda s=subscription_id: self.start(s, now)) is not None
        for subscription_id in due.to_finish:
            done.finished += self._attempt(done, lambda s=subscription_id: self.finish(s, now)) is not None
        return (done.scheduled, done.closed, done.started, done.finished) != before  # else stop, don't spin

    def finalize(self, organization_id: UUID, invoice_id: UUID, now: datetime) -> UUID:
        self.refresh(organization_id, invoice_id, now)
        self._billing.finalize_invoice(organization_id, invoice_id, now)
        return invoice_id

    def refresh(self, organization_id: UUID, invoice_id: UUID, now: datetime) -> None:
        """A draft's fees computed again from current usage (late events, changed taxes)."""
        invoice = self._billing.invoice(organization_id, invoice_id)
        if invoice.status != "draft" or not invoice.billing_periods:
            return
        period = invoice.billing_periods[0]
        facts = self._billing.billing_facts(period.subscription_id)
        if facts is None:
            return
        at = (period.charges_to_at or period.subscription_to_at or now) - _INSTANT
        buckets, positions = self._readers.usage.priced_for_billing(period.subscription_id, max(at, facts.started_at))
        self._billing.refresh_draft(organization_id, invoice_id, buckets, self.taxes(facts.organization_id), positions)

    @staticmethod
    def _batched(size: int, step: Callable[[], list[T]]) -> list[T] | None:
        """A batch's results; None when it stored nothing (a concurrent writer won, or one of it failed), and each of
        it is to be done alone: those already done are found done, a failure is then one subscription's."""
        try:
            return step()
        except ConcurrentWrite:
            log.info("a batch of %d met a concurrent write; doing them one at a time", size)
        except Exception:
            log.warning("a batch of %d failed; doing them one at a time", size, exc_info=True)
        return None

    @staticmethod
    def _attempt(done: InvoicingPass, step: Callable[[], object]) -> object | None:
        try:
            return step()
        except ConcurrentWrite:  # another scheduler moved it first: its write stands, nothing is lost
            return None
        except Exception:  # one subscription's failure never stops the others; the next pass retries it
            done.failed += 1
            log.exception("invoicing step failed")
            return None


def _batches(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), BATCH):
        yield items[start:start + BATCH]


def _positions(positions: dict[str, int]) -> Positions:
    return positions.get("Billing", 0), positions.get("Metering", 0)
