"""Invoice commands of the Billing application: close a period, bill a start or a termination, and the lifecycle.

Usage and taxes are read models; the caller (the scheduler or an API resource) reads them and
passes them in with the log positions they were read at. Every invoice of a subscription has a
deterministic id and is saved in one transaction with the subscription's record of it, so a
second close of the same period — another scheduler, a retry, a crash mid-close — stores nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid5
from zoneinfo import ZoneInfo

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate

from domain.add_on import AddOn
from domain.advance_charge import AdvanceUsage, ChargeMeter, rise_amount
from domain.credit_note import (
    REASONS,
    CreditNote,
    CreditNoteNotFound,
    Estimate,
    credit_note_number,
    estimate,
    manual_split,
    split,
    termination_item,
)
from domain.credit_note import taxes_cents as credit_taxes_cents
from domain.currency import is_accepted_currency, minor_unit_exponent
from domain.customer import Customer, CustomerNotFound
from domain.errors import Problems, RuleViolated, ValidationFailed
from domain import money
from domain.fee import MAX_CENTS, Fee, choose_taxes
from domain.invoice import (
    DRAFT,
    FINALIZED,
    AppliedCredit,
    BillingPeriod,
    Invoice,
    InvoiceNotDraft,
    InvoiceNotFound,
    InvoiceNotVoidable,
    Provenance,
    digest,
    invoice_number,
    organization_invoice_number,
)
from domain.keyed_store import ConcurrentWrite
from domain.organization import Organization, OrganizationNotFound
from domain.payment import Payment, PaymentNotFound
from domain.payment_request import PaymentRequest
from domain.period_close import (
    Due,
    PricedBucket,
    SubscriptionFacts,
    TaxTable,
    at_boundary,
    at_now,
    at_start,
    at_termination,
    charges_period,
    fee_period,
    start_due_at,
)
from domain.plan import Plan, PlanNotFound
from domain.sequence import Sequence as NumberSequence
from domain.sequence import SequenceNotFound
from domain.subscription import Subscription, SubscriptionNotFound, billing_period
from domain.usage import NO_FILTER, bucket_properties, group_values
from domain.money import cents_to_credits, credits_to_cents
from domain.wallet import Wallet, WalletNotFound
from domain.wallet_commands import SPENDING_INVOICE_TYPES, WalletCommands, credits_value

_INSTANT = timedelta(microseconds=1)
_remembered: ContextVar[dict[UUID, Any] | None] = ContextVar("tally_remembered_aggregates", default=None)


class NothingToInvoice(RuleViolated):
    """``invoice_now`` found no usage that is not invoiced yet (Lago's 422 shape, on ``usage``)."""

    code = "no_usage_to_invoice"
    field = "usage"


class InvoiceCommands(WalletCommands):
    @contextmanager
    def remembering(self) -> Iterator[None]:
        """For one scheduler pass: plans and organizations are loaded once, not once per invoice.
        A plan changed during the pass applies from the next pass, as if the pass had run a moment earlier."""
        token = _remembered.set({})
        try:
            yield
        finally:
            _remembered.reset(token)

    def _load_rarely_changed(self, aggregate_id: UUID, kind: type[Any], missing: type[Exception]) -> Any:
        memo = _remembered.get()
        if memo is None:
            return self._load(aggregate_id, kind, missing)
        if aggregate_id not in memo:
            memo[aggregate_id] = self._load(aggregate_id, kind, missing)
        return memo[aggregate_id]

    # --- what billing needs to know ----------------------------------------------------------------

    def billing_facts(self, subscription_id: UUID) -> SubscriptionFacts | None:
        """What billing needs to know of a subscription; None until it has started."""
        subscription = self._load(subscription_id, Subscription, SubscriptionNotFound)
        if subscription.started_at is None:
            return None
        return self._facts(subscription, self._load(subscription.customer_id, Customer, CustomerNotFound))

    def _facts(self, subscription: Subscription, customer: Customer,
                organization: Organization | None = None) -> SubscriptionFacts:
        plan = self._load_rarely_changed(subscription.plan_id, Plan, PlanNotFound)
        if organization is None and not customer.definition.timezone:
            organization = self._load_rarely_changed(subscription.organization_id, Organization, OrganizationNotFound)
        timezone = self._timezone(customer, organization)
        if subscription.started_at is None:
            raise SubscriptionNotFound(key=subscription.id)
        return SubscriptionFacts(
            id=subscription.id, external_id=subscription.external_id, customer_id=subscription.customer_id,
            plan_id=plan.id, plan=plan.definition, billing_time=subscription.terms.billing_time,
            subscription_at=subscription.terms.subscription_at, started_at=subscription.started_at,
            created_at=subscription.created_at or subscription.created_on, trial_anchor_at=subscription.trial_anchor_at,
            timezone=timezone, terminated_at=subscription.terminated_at,
            upgraded=subscription.upgraded, organization_id=subscription.organization_id,
            early_bills=subscription.early_bills,
        )

    def schedule_billing(self, subscription_id: UUID) -> datetime | None:
        """Record a started subscription's next boundary to invoice (the first one, or after its last close)."""
        subscription = self._load(subscription_id, Subscription, SubscriptionNotFound)
        if subscription.started_at is None:
            return None
        facts = self._facts(subscription, self._load(subscription.customer_id, Customer, CustomerNotFound))
        after = subscription.billed_until or facts.started_at
        boundary = charges_period(facts, after).ends_at
        if subscription.next_close_at != boundary:
            subscription.schedule_billing(boundary)
            self._save(subscription)
        return boundary

    def previous_subscription(self, subscription_id: UUID) -> UUID | None:
        """The subscription this one replaced (an upgrade or downgrade), if any."""
        return self._load(subscription_id, Subscription, SubscriptionNotFound).previous_id

    # --- issuing ---------------------------------------------------------------------------------

    def close_period(self, subscription_id: UUID, boundary: datetime, buckets: Sequence[PricedBucket],
                     taxes: TaxTable, positions: tuple[int, int], now: datetime) -> UUID | None:
        """Invoice the charge period ending at ``boundary``; None when it already is."""
        return _retrying(lambda: self._close_period(subscription_id, boundary, buckets, taxes, positions, now))

    def _close_period(self, subscription_id: UUID, boundary: datetime, buckets: Sequence[PricedBucket],
                      taxes: TaxTable, positions: tuple[int, int], now: datetime) -> UUID | None:
        subscription = self._load(subscription_id, Subscription, SubscriptionNotFound)
        if subscription.billed_until is not None and boundary <= subscription.billed_until:
            return None
        customer = self._load(subscription.customer_id, Customer, CustomerNotFound)
        organization = self._load_rarely_changed(subscription.organization_id, Organization, OrganizationNotFound)
        facts = self._facts(subscription, customer, organization)
        invoice_id = Invoice.create_id(subscription.organization_id, f"subscription/{subscription.id}/{boundary.isoformat()}")
        taxes = self._with_customer(taxes, customer)
        due = at_boundary(facts, invoice_id, boundary, buckets, taxes)
        subscription.close_period(boundary, invoice_id, charges_period(facts, boundary).ends_at)
        return self._issue(subscription, customer, facts, due, f"subscription/{subscription.id}/{boundary.isoformat()}",
                           boundary, buckets, taxes, positions, now, organization)

    def invoice_start(self, subscription_id: UUID, taxes: TaxTable, positions: tuple[int, int], now: datetime) -> UUID | None:
        """An in-advance plan started now bills its first period at once (P3); None when nothing is owed."""
        return _retrying(lambda: self._invoice_start(subscription_id, taxes, positions, now))

    def _invoice_start(self, subscription_id: UUID, taxes: TaxTable, positions: tuple[int, int], now: datetime) -> UUID | None:
        subscription = self._load(subscription_id, Subscription, SubscriptionNotFound)
        if subscription.start_billed or subscription.started_at is None:
            return None
        customer = self._load(subscription.customer_id, Customer, CustomerNotFound)
        facts = self._facts(subscription, customer)
        billed_at = start_due_at(facts)
        if billed_at is not None and billed_at > now:
            return None  # in trial: invoiced when it ends (P7); the scheduler comes back then
        key = f"subscription/{subscription.id}/start"
        due = None if billed_at is None else at_start(facts, Invoice.create_id(subscription.organization_id, key),
                                                       self._with_customer(taxes, customer))
        if due is None:
            subscription.record_start_invoice(None)
            self._save(subscription)
            return None
        subscription.record_start_invoice(Invoice.create_id(subscription.organization_id, key))
        return self._issue(subscription, customer, facts, due, key, billed_at or facts.started_at, (),
                           self._with_customer(taxes, customer), positions, now)

    def invoice_termination(self, subscription_id: UUID, buckets: Sequence[PricedBucket], taxes: TaxTable,
                            positions: tuple[int, int], now: datetime) -> UUID | None:
        """The final invoice of a terminated subscription (P5); None when it already has one."""
        return _retrying(lambda: self._invoice_termination(subscription_id, buckets, taxes, positions, now))

    def _invoice_termination(self, subscription_id: UUID, buckets: Sequence[PricedBucket], taxes: TaxTable,
                             positions: tuple[int, int], now: datetime) -> UUID | None:
        subscription = self._load(subscription_id, Subscription, SubscriptionNotFound)
        if subscription.final_billed or subscription.terminated_at is None:
            return None
        customer = self._load(subscription.customer_id, Customer, CustomerNotFound)
        organization = self._load_rarely_changed(subscription.organization_id, Organization, OrganizationNotFound)
        facts = self._facts(subscription, customer, organization)
        credited = self._termination_credit(subscription, customer, facts, now)
        key = f"subscription/{subscription.id}/termination"
        if subscription.terms.on_termination_invoice == "skip":
            subscription.record_final_invoice(None)
            self._save(*_unique([subscription, *credited]))
            return None
        taxes = self._with_customer(taxes, customer)
        due = at_termination(facts, Invoice.create_id(subscription.organization_id, key), buckets, taxes)
        subscription.record_final_invoice(Invoice.create_id(subscription.organization_id, key))
        return self._issue(subscription, customer, facts, due, key, subscription.terminated_at, buckets, taxes,
                           positions, now, organization, extra=credited)

    def invoice_now(self, subscription_id: UUID, buckets: Sequence[PricedBucket], taxes: TaxTable,
                    positions: tuple[int, int], now: datetime) -> UUID:
        """Bill the open period's usage up to now without ending anything (Tally's ``invoice_now``); the period's
        close bills the rest, net of it. Finalized at once, as one-off invoices are."""
        issued = _retrying(lambda: self._invoice_now(subscription_id, buckets, taxes, positions, now))
        assert issued is not None
        return issued

    def _invoice_now(self, subscription_id: UUID, buckets: Sequence[PricedBucket], taxes: TaxTable,
                     positions: tuple[int, int], now: datetime) -> UUID:
        subscription = self._load(subscription_id, Subscription, SubscriptionNotFound)
        if subscription.status != "active" or subscription.started_at is None or subscription.started_at > now:
            raise NothingToInvoice("only an active subscription's usage can be invoiced now")
        customer = self._load(subscription.customer_id, Customer, CustomerNotFound)
        organization = self._load_rarely_changed(subscription.organization_id, Organization, OrganizationNotFound)
        facts = self._facts(subscription, customer, organization)
        key = f"subscription/{subscription.id}/now/{len(subscription.early_bills) + 1}"
        taxes = self._with_customer(taxes, customer)
        due, bill = at_now(facts, Invoice.create_id(subscription.organization_id, key), now, buckets, taxes)
        if all(f.is_empty for f in due.fees):
            raise NothingToInvoice("no usage since the last invoice")
        subscription.record_early_bill(bill)
        invoice = Invoice.issue(
            organization_id=subscription.organization_id, key=key, customer_id=customer.id,
            invoice_type="progressive_billing", currency=facts.plan.amount_currency,
            issuing_date=now.astimezone(ZoneInfo(facts.timezone)).date(),
            net_payment_term=_net_payment_term(customer, organization), billing_periods=(due.billing_period,),
            fees=due.fees, provenance=_provenance(facts, due, key, buckets, taxes, positions),
        )
        self._save(*_unique([subscription, invoice, *self._finalize(invoice, customer, organization, now)]))
        return invoice.id

    def bill_in_advance(self, usage: AdvanceUsage, taxes: TaxTable, now: datetime) -> UUID | None:
        """One event of a pay-in-advance charge: its rise above the high-water mark, invoiced at once (C10).
        None when it bills nothing or was billed before."""
        return _retrying(lambda: self._bill_in_advance(usage, taxes, now))

    def _bill_in_advance(self, usage: AdvanceUsage, taxes: TaxTable, now: datetime) -> UUID | None:
        subscription = self._load(usage.subscription_id, Subscription, SubscriptionNotFound)
        customer = self._load(subscription.customer_id, Customer, CustomerNotFound)
        organization = self._load_rarely_changed(subscription.organization_id, Organization, OrganizationNotFound)
        facts = self._facts(subscription, customer, organization)
        charge = next((c for c in facts.plan.charges if c.id == usage.charge_id), None)
        if charge is None or not charge.pay_in_advance or not charge.invoiceable:
            return None
        meter = self._meter(usage)
        rise = meter.measure(usage)
        if rise is None:
            return None
        currency = facts.plan.amount_currency
        exponent = minor_unit_exponent(currency)
        amount = rise_amount(charge, usage, rise, exponent)
        cents = money.to_cents(amount, exponent)
        if cents <= 0:
            self._save(meter)  # the level moved, but nothing is owed: no invoice of zero
            return None
        key = f"in_advance/{usage.event_id}/{charge.id}"
        invoice_id = Invoice.create_id(subscription.organization_id, key)
        taxes = self._with_customer(taxes, customer)
        units = rise.value if charge.charge_model == "percentage" else rise.units
        precise = money.to_precise_cents(amount, exponent)
        fee = Fee(
            id=uuid5(invoice_id, "charge"), fee_type="charge", item_id=usage.metric_id, item_code=usage.metric_code,
            item_name=usage.metric_name, invoice_display_name=charge.invoice_display_name, amount_cents=cents,
            precise_amount_cents=precise, units=units, events_count=1,
            unit_amount_cents=money.unit_cents(precise, units),
            precise_unit_amount=money.unit_price(precise, units),
            currency=currency, from_at=usage.period_starts_at, to_at=usage.period_ends_at, subscription_id=subscription.id,
            charge_id=charge.id, charge_filter_id=None if usage.filter_id == NO_FILTER else usage.filter_id,
            grouped_by=tuple((k, "" if v is None else str(v)) for k, v in group_values(
                bucket_properties(charge, usage.filter_id).pricing_group_keys, usage.group).items()),
            pay_in_advance=True, taxes=taxes.choose(charge.tax_codes, facts.plan.tax_codes),
            event_transaction_id=usage.transaction_id,
            usage=(("units_before", str(rise.before)), ("units_after", str(rise.after))),
        )
        period = BillingPeriod(
            subscription_id=subscription.id, external_subscription_id=subscription.external_id, plan_id=facts.plan_id,
            subscription_from_at=None, subscription_to_at=None, charges_from_at=usage.period_starts_at,
            charges_to_at=usage.period_ends_at, invoicing_reason="in_advance_charge",
        )
        inputs = {"key": key, "charge": str(charge.id), "model": charge.charge_model, "before": str(rise.before),
                  "after": str(rise.after), "value": str(rise.value), "amount": str(amount)}
        invoice = Invoice.issue(
            organization_id=subscription.organization_id, key=key, customer_id=customer.id, invoice_type="subscription",
            currency=currency, issuing_date=now.astimezone(ZoneInfo(facts.timezone)).date(),
            net_payment_term=_net_payment_term(customer, organization), billing_periods=(period,), fees=(fee,),
            provenance=Provenance(0, usage.position, digest(inputs)),
        )
        self._save(*_unique([meter, invoice, *self._finalize(invoice, customer, organization, now)]))
        return invoice.id

    def _meter(self, usage: AdvanceUsage) -> ChargeMeter:
        meter_id = ChargeMeter.create_id(usage.organization_id, usage.subscription_id, usage.charge_id,
                                         usage.period_starts_at)
        try:
            return self._load(meter_id, ChargeMeter, SubscriptionNotFound)
        except SubscriptionNotFound:
            return ChargeMeter(organization_id=usage.organization_id, subscription_id=usage.subscription_id,
                               charge_id=usage.charge_id, period_starts_at=usage.period_starts_at)

    def _termination_credit(self, subscription: Subscription, customer: Customer, facts: SubscriptionFacts,
                            now: datetime) -> list[Aggregate]:
        """The unused in-advance days of a terminated (or upgraded) subscription, given back by a credit note on
        the invoice that billed them (P5, P6); nothing when the plan is in arrears, the policy says ``skip``, or
        that invoice is not finalized. Returns what to save with the final invoice."""
        policy = subscription.terms.on_termination_credit_note or "credit"
        if not facts.plan.pay_in_advance or policy == "skip" or facts.terminated_at is None:
            return []
        paid = self._paid_fee(subscription, facts)
        if paid is None:
            return []
        invoice, fee = paid
        item = termination_item(fee, facts.terminated_at, facts.timezone, upgraded=facts.upgraded)
        if item is None:
            return []
        numbers = self._sequence(invoice.organization_id, f"credit_notes/invoice/{invoice.id}")
        sequence = numbers.take()
        items = (item,)
        taxes = credit_taxes_cents(items)
        total = item.amount_cents + taxes
        paid_cents = invoice.totals.total_amount_cents if invoice.payment_status == "succeeded" else 0
        parts = split(total, policy, paid_cents=paid_cents, due_cents=invoice.total_due_amount_cents)
        note = CreditNote(
            organization_id=invoice.organization_id, key=f"termination/{subscription.id}", invoice_id=invoice.id,
            invoice_number=invoice.number or "", customer_id=customer.id, currency=invoice.currency,
            number=credit_note_number(invoice.number or "", sequence), sequential_id=sequence,
            issuing_date=facts.terminated_at.astimezone(ZoneInfo(facts.timezone)).date(),
            reason="order_change" if facts.upgraded else "order_cancellation", description=None, items=items,
            taxes_amount_cents=taxes, split=parts,
        )
        invoice.record_credit_note(note.id, [(fee.id, item.amount_cents)])
        changed: list[Aggregate] = [note, numbers, invoice]
        if parts.credit_amount_cents:
            customer.credit_available(note.id)
            changed.append(customer)
        if parts.offset_amount_cents:
            invoice.offset(note.id, parts.offset_amount_cents)
        return changed

    def _paid_fee(self, subscription: Subscription, facts: SubscriptionFacts) -> tuple[Invoice, Fee] | None:
        """The finalized invoice and in-advance fee that paid for the period the subscription ended in."""
        assert facts.terminated_at is not None
        period, _ = fee_period(facts, max(facts.terminated_at - _INSTANT, facts.started_at))
        keys = [f"subscription/{subscription.id}/{period.starts_at.isoformat()}", f"subscription/{subscription.id}/start"]
        for key in keys:
            try:
                invoice = self._load(Invoice.create_id(subscription.organization_id, key), Invoice, InvoiceNotFound)
            except InvoiceNotFound:
                continue
            if invoice.status != FINALIZED:
                continue
            for fee in invoice.fees:
                if (fee.fee_type == "subscription" and fee.subscription_id == subscription.id and fee.from_at is not None
                        and fee.to_at is not None and fee.from_at <= facts.terminated_at < fee.to_at):
                    return invoice, fee
        return None

    def _issue(self, subscription: Subscription, customer: Customer, facts: SubscriptionFacts, due: Due, key: str,
               billed_at: datetime, buckets: Sequence[PricedBucket], taxes: TaxTable, positions: tuple[int, int],
               now: datetime, organization: Organization | None = None, extra: Sequence[Aggregate] = ()) -> UUID | None:
        organization = organization or self._load_rarely_changed(subscription.organization_id, Organization,
                                                                 OrganizationNotFound)
        issuing_date = billed_at.astimezone(ZoneInfo(facts.timezone)).date()
        grace = _grace_days(customer, organization)
        invoice = Invoice.issue(
            organization_id=subscription.organization_id, key=key, customer_id=customer.id,
            invoice_type="subscription", currency=facts.plan.amount_currency, issuing_date=issuing_date,
            net_payment_term=_net_payment_term(customer, organization), billing_periods=(due.billing_period,),
            fees=due.fees, provenance=_provenance(facts, due, key, buckets, taxes, positions),
            expected_finalization_date=issuing_date + timedelta(days=grace),
        )
        changed: list[Aggregate] = [subscription, invoice]
        if grace == 0:
            changed.extend(self._finalize(invoice, customer, organization, now))
        changed.extend(extra)
        self._save(*_unique(changed))  # a concurrent closer or numberer makes this a ConcurrentWrite: see _retrying
        return invoice.id

    @staticmethod
    def _with_customer(taxes: TaxTable, customer: Customer) -> TaxTable:
        """The organization's taxes, with this customer's own codes (M2's third choice)."""
        return replace(taxes, customer_codes=tuple(customer.definition.tax_codes))

    def issue_one_off(self, organization_id: UUID, external_customer_id: str, currency: str | None,
                      lines: Sequence[Mapping[str, Any]], taxes: TaxTable, now: datetime) -> UUID:
        """``POST /invoices``: an invoice of add-ons, finalized at once (no grace period, as Lago)."""
        key = f"one_off/{self.new_id()}"
        issued = _retrying(lambda: self._issue_one_off(key, organization_id, external_customer_id, currency, lines,
                                                       taxes, now))
        assert issued is not None
        return issued

    def _issue_one_off(self, invoice_key: str, organization_id: UUID, external_customer_id: str, currency: str | None,
                       lines: Sequence[Mapping[str, Any]], taxes: TaxTable, now: datetime) -> UUID:
        customer = self.customer(organization_id, external_customer_id)
        organization = self._load(organization_id, Organization, OrganizationNotFound)
        taxes = self._with_customer(taxes, customer)
        problems = Problems()
        problems.check(bool(lines), "fees", "value_is_mandatory")
        fees: list[Fee] = []
        invoice_id = Invoice.create_id(organization_id, invoice_key)
        chosen_currency = currency or customer.definition.currency
        for index, line in enumerate(lines):
            add_on = self._resolve(organization_id, AddOn, str(line.get("add_on_code") or ""))[1]
            definition = add_on.definition
            units = _decimal(line.get("units"), Decimal(1), problems, f"fees.{index}.units")
            unit_cents = line.get("unit_amount_cents")
            unit_cents = definition.amount_cents if unit_cents is None else unit_cents
            if not isinstance(unit_cents, int) or isinstance(unit_cents, bool) or unit_cents < 0:
                problems.add(f"fees.{index}.unit_amount_cents", "value_is_invalid")
                continue
            chosen_currency = chosen_currency or definition.amount_currency
            precise = units * unit_cents
            own_codes = tuple(line.get("tax_codes") or definition.tax_codes)
            missing = [c for c in own_codes if c not in taxes.by_code]
            if missing:
                problems.add("tax_codes", "tax_not_found")
            fees.append(Fee(
                id=uuid5(invoice_id, f"add_on/{index}"), fee_type="add_on", item_id=add_on.id,
                item_code=definition.code, item_name=definition.name,
                invoice_display_name=line.get("invoice_display_name") or definition.invoice_display_name,
                description=line.get("description") or definition.description, amount_cents=money.round_half_up_cents(precise),
                precise_amount_cents=precise, units=units, unit_amount_cents=unit_cents,
                precise_unit_amount=Decimal(unit_cents), currency=chosen_currency or "USD",
                from_at=line.get("from_datetime"), to_at=line.get("to_datetime"),
                taxes=choose_taxes(taxes.for_codes(own_codes), taxes.for_codes(taxes.customer_codes),
                                   taxes.organization_defaults),
            ))
        problems.check(chosen_currency is None or is_accepted_currency(chosen_currency), "currency", "value_is_invalid")
        problems.raise_if_any()
        invoice = Invoice.issue(
            organization_id=organization_id, key=invoice_key, customer_id=customer.id, invoice_type="one_off",
            currency=chosen_currency or "USD", issuing_date=now.astimezone(ZoneInfo(self._timezone(customer))).date(),
            net_payment_term=_net_payment_term(customer, organization), billing_periods=(), fees=fees,
            provenance=Provenance(0, 0, digest({"key": invoice_key, "fees": [[f.item_code, str(f.units), f.amount_cents]
                                                                           for f in fees]})),
        )
        self._save(*_unique([invoice, *self._finalize(invoice, customer, organization, now)]))
        return invoice.id

    # --- lifecycle -------------------------------------------------------------------------------

    def invoice(self, organization_id: UUID, invoice_id: UUID) -> Invoice:
        invoice = self._owned(organization_id, invoice_id, Invoice, InvoiceNotFound)
        if invoice.status == "deleted":
            raise InvoiceNotFound(key=invoice_id)
        return invoice

    def refresh_draft(self, organization_id: UUID, invoice_id: UUID, buckets: Sequence[PricedBucket], taxes: TaxTable,
                      positions: tuple[int, int]) -> None:
        """Compute a draft's fees again, as at its issue but with today's usage and taxes (late events)."""
        invoice = self.invoice(organization_id, invoice_id)
        kind, _, rest = invoice.key.partition("/")
        if invoice.status != DRAFT or kind != "subscription":
            return
        subscription_id, _, moment = rest.partition("/")
        subscription = self._load(UUID(subscription_id), Subscription, SubscriptionNotFound)
        customer = self._load(subscription.customer_id, Customer, CustomerNotFound)
        facts = self._facts(subscription, customer)
        taxes = self._with_customer(taxes, customer)
        if moment == "start":
            due = at_start(facts, invoice.id, taxes)
        elif moment == "termination":
            due = at_termination(facts, invoice.id, buckets, taxes)
        else:
            due = at_boundary(facts, invoice.id, datetime.fromisoformat(moment), buckets, taxes)
        if due is None:
            return
        invoice.refresh(due.fees, _provenance(facts, due, invoice.key, buckets, taxes, positions))
        self._save(invoice)

    def finalize_invoice(self, organization_id: UUID, invoice_id: UUID, now: datetime) -> None:
        invoice = self.invoice(organization_id, invoice_id)
        if invoice.status != DRAFT:
            raise InvoiceNotDraft(f"invoice {invoice.id} is {invoice.status}")
        customer = self._load(invoice.customer_id, Customer, CustomerNotFound)
        organization = self._load(organization_id, Organization, OrganizationNotFound)
        self._save(*_unique([invoice, *self._finalize(invoice, customer, organization, now)]))

    def void_invoice(self, organization_id: UUID, invoice_id: UUID, now: datetime) -> None:
        """Void a finalized invoice; the coupons it took are given back (as Lago)."""
        invoice = self.invoice(organization_id, invoice_id)
        if invoice.invoice_type == "credit":
            raise InvoiceNotVoidable(f"invoice {invoice.id} bought wallet credits: void the credits instead")
        invoice.void(now)
        changed: list[Aggregate] = [invoice]
        if invoice.coupons or invoice.credits:
            customer = self._load(invoice.customer_id, Customer, CustomerNotFound)
            self._give_back_coupons(invoice, customer, changed)
            self._give_back_credit(invoice, customer, changed)
        self._give_back_wallets(invoice, changed, now)
        self._save(*_unique(changed))

    def _give_back_credit(self, invoice: Invoice, customer: Customer, changed: list[Aggregate]) -> None:
        """A voided invoice returns the credit-note credit it consumed (Lago keeps it consumed; Tally does not)."""
        if not invoice.credits:
            return
        for credit in invoice.credits:
            note = self._load(credit.credit_note_id, CreditNote, CreditNoteNotFound)
            note.restore(invoice.id, credit.amount_cents)
            customer.credit_available(note.id)
            changed.append(note)
        changed.append(customer)

    def delete_invoice(self, organization_id: UUID, invoice_id: UUID, now: datetime) -> None:
        invoice = self.invoice(organization_id, invoice_id)
        invoice.delete(now)
        self._save(invoice)

    def update_invoice(self, organization_id: UUID, invoice_id: UUID, *, payment_status: str | None,
                       metadata: Mapping[str, str | None] | None, now: datetime) -> None:
        invoice = self.invoice(organization_id, invoice_id)
        invoice.update(payment_status=payment_status, metadata=metadata)
        settled = self._settle_purchase(invoice, now)
        self._save(invoice, *([settled] if settled else []))

    def record_payment(self, organization_id: UUID, changes: Mapping[str, Any], now: datetime) -> UUID:
        """POST /payments: a manual payment of part or all of an invoice's due amount. The same invoice and
        reference twice is one payment: the second is refused as already recorded. A payment racing another
        change of the invoice is tried again on the invoice as it now is."""
        return _retrying(lambda: self._record_payment(organization_id, changes, now))  # type: ignore[return-value]

    def _record_payment(self, organization_id: UUID, changes: Mapping[str, Any], now: datetime) -> UUID:
        problems = Problems()
        reference = changes.get("reference")
        amount = changes.get("amount_cents")
        problems.check(isinstance(reference, str) and bool(reference.strip()), "reference", "value_is_mandatory")
        problems.check(isinstance(amount, int) and not isinstance(amount, bool), "amount_cents", "value_is_mandatory")
        try:
            invoice_id = UUID(str(changes.get("invoice_id")))
        except ValueError:
            raise InvoiceNotFound(key=changes.get("invoice_id")) from None
        problems.raise_if_any()
        invoice = self.invoice(organization_id, invoice_id)
        paid_at = changes.get("paid_at") or now
        payment = Payment(organization_id=organization_id, invoice_id=invoice.id, reference=str(reference),
                          customer_id=invoice.customer_id, invoice_number=invoice.number or "", amount_cents=int(amount),
                          currency=invoice.currency, paid_at=paid_at)
        invoice.pay(payment.id, int(amount))
        settled = self._settle_purchase(invoice, paid_at if isinstance(paid_at, datetime) else now)
        try:
            self._save(payment, invoice, *([settled] if settled else []))
        except ConcurrentWrite:
            if self._exists(payment.id):
                raise ValidationFailed({"reference": ["value_already_exist"]}) from None
            raise
        return payment.id

    def payment(self, organization_id: UUID, payment_id: UUID) -> Payment:
        return self._owned(organization_id, payment_id, Payment, PaymentNotFound)

    def _exists(self, aggregate_id: UUID) -> bool:
        try:
            self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return False
        return True

    # --- wallets: credits in --------------------------------------------------------------------

    def create_wallet(self, organization_id: UUID, changes: Mapping[str, Any], now: datetime) -> UUID:
        """POST /wallets: a wallet, with its first paid and granted credits if sent."""
        wallet, customer = self._open_wallet(organization_id, changes, now)
        changed: list[Aggregate] = [wallet, customer]
        problems = Problems()
        paid = credits_value(changes.get("paid_credits"), "paid_credits", problems)
        granted = credits_value(changes.get("granted_credits"), "granted_credits", problems)
        problems.raise_if_any()
        self._top_up(wallet, customer, paid, granted, Decimal(0), now, changed, source="manual",
                     name=changes.get("transaction_name"))
        self._save(*_unique(changed))
        return wallet.id

    def top_up_wallet(self, organization_id: UUID, changes: Mapping[str, Any], now: datetime,
                      source: str = "manual") -> list[UUID]:
        """POST /wallet_transactions: paid credits (a credit invoice), granted credits, voided credits."""
        problems = Problems()
        try:
            wallet_id = UUID(str(changes.get("wallet_id")))
        except ValueError:
            raise WalletNotFound(key=changes.get("wallet_id")) from None
        paid = credits_value(changes.get("paid_credits"), "paid_credits", problems)
        granted = credits_value(changes.get("granted_credits"), "granted_credits", problems)
        voided = credits_value(changes.get("voided_credits"), "voided_credits", problems)
        problems.raise_if_any()
        wallet = self.wallet(organization_id, wallet_id)
        customer = self._load(wallet.customer_id, Customer, CustomerNotFound)
        changed: list[Aggregate] = [wallet]
        made = self._top_up(wallet, customer, paid, granted, voided, now, changed, source=source,
                            name=changes.get("name"))
        self._save(*_unique(changed))
        return made

    def _top_up(self, wallet: Wallet, customer: Customer, paid: Decimal, granted: Decimal, voided: Decimal,
                now: datetime, changed: list[Aggregate], *, source: str, name: Any) -> list[UUID]:
        exponent = minor_unit_exponent(wallet.currency)
        for field, credits in (("paid_credits", paid), ("granted_credits", granted), ("voided_credits", voided)):
            if credits_to_cents(credits, wallet.rate_amount, exponent) > MAX_CENTS:
                raise ValidationFailed({field: ["value_is_out_of_range"]})
        made: list[UUID] = []
        if paid > 0:
            cents = credits_to_cents(paid, wallet.rate_amount, exponent)
            terms = wallet.terms
            if ((terms.paid_top_up_min_amount_cents and cents < terms.paid_top_up_min_amount_cents)
                    or (terms.paid_top_up_max_amount_cents and cents > terms.paid_top_up_max_amount_cents)):
                raise ValidationFailed({"paid_credits": ["amount_out_of_range"]})
            transaction_id = wallet.next_transaction_id()
            invoice = self._credit_invoice(wallet, customer, transaction_id, paid, cents, now)
            made.append(wallet.purchase(cents, invoice.id, now, source=source, name=name))
            changed.append(invoice)
            changed.extend(self._finalize(invoice, customer, self._load_rarely_changed(
                wallet.organization_id, Organization, OrganizationNotFound), now))
            if not wallet.terms.invoice_requires_successful_payment or invoice.payment_status == "succeeded":
                wallet.settle(transaction_id, now)
        if granted > 0:
            made.append(wallet.grant(credits_to_cents(granted, wallet.rate_amount, exponent), now, source=source,
                                     name=name))
        if voided > 0:
            made.append(wallet.void_credits(credits_to_cents(voided, wallet.rate_amount, exponent), now))
        return made

    def apply_wallet_rules(self, organization_id: UUID, wallet_id: UUID, now: datetime) -> list[UUID]:
        """Recurring top-ups: an ``interval`` rule tops up once per interval from its start; a ``threshold`` rule
        when the balance is at or below its threshold and no purchase of its own is pending. ``target`` tops
        paid credits up to the target balance. Returns the transactions made."""
        wallet = self.wallet(organization_id, wallet_id)
        if wallet.status != "active":
            return []
        customer = self._load(wallet.customer_id, Customer, CustomerNotFound)
        exponent = minor_unit_exponent(wallet.currency)
        made: list[UUID] = []
        changed: list[Aggregate] = [wallet]
        for rule in wallet.terms.recurring_rules:
            balance = cents_to_credits(wallet.balance_cents, wallet.rate_amount, exponent)
            source = rule.trigger
            if rule.trigger == "interval":
                if rule.interval is None or rule.started_at is None or now < rule.started_at:
                    continue
                period = billing_period(interval=rule.interval, billing_time="anniversary",
                                        subscription_at=rule.started_at, started_at=rule.started_at, timezone="UTC",
                                        at=now)
                if any(t.source == "interval" and t.created_at >= period.starts_at for t in wallet.transactions):
                    continue
            else:
                pending = any(t.source == "threshold" and t.status == "pending" for t in wallet.transactions)
                if pending or rule.threshold_credits is None or balance > rule.threshold_credits:
                    continue
            paid = rule.paid_credits
            if rule.method == "target" and rule.target_ongoing_balance is not None:
                paid = max(rule.target_ongoing_balance - balance, Decimal(0))
            made += self._top_up(wallet, customer, paid, rule.granted_credits, Decimal(0), now, changed,
                                 source=source, name=None)
        if made:
            self._save(*_unique(changed))
        return made

    def _credit_invoice(self, wallet: Wallet, customer: Customer, transaction_id: UUID, credits: Decimal, cents: int,
                        now: datetime) -> Invoice:
        """The invoice of purchased credits (``invoice_type`` credit, no taxes, finalized at once)."""
        key = f"wallet/{wallet.id}/{transaction_id}"
        invoice_id = Invoice.create_id(wallet.organization_id, key)
        organization = self._load_rarely_changed(wallet.organization_id, Organization, OrganizationNotFound)
        fee = Fee(id=uuid5(invoice_id, "credit"), fee_type="credit", item_id=wallet.id,
                  item_code=wallet.terms.code or "credits", item_name=wallet.terms.name or "Prepaid credits",
                  amount_cents=cents, precise_amount_cents=Decimal(cents), units=credits,
                  unit_amount_cents=money.unit_cents(Decimal(cents), credits),
                  precise_unit_amount=money.to_precise_cents(wallet.rate_amount, minor_unit_exponent(wallet.currency)),
                  currency=wallet.currency)
        return Invoice.issue(
            organization_id=wallet.organization_id, key=key, customer_id=customer.id, invoice_type="credit",
            currency=wallet.currency, issuing_date=now.astimezone(ZoneInfo(self._timezone(customer))).date(),
            net_payment_term=_net_payment_term(customer, organization), billing_periods=(), fees=(fee,),
            provenance=Provenance(0, 0, digest({"key": key, "credits": str(credits), "cents": cents})),
        )

    def _settle_purchase(self, invoice: Invoice, now: datetime) -> Wallet | None:
        """A credit invoice now paid settles its wallet's pending purchase."""
        kind, _, rest = invoice.key.partition("/")
        if invoice.invoice_type != "credit" or kind != "wallet" or invoice.payment_status != "succeeded":
            return None
        wallet_id, _, transaction_id = rest.partition("/")
        wallet = self._load(UUID(wallet_id), Wallet, WalletNotFound)
        if wallet.transaction(UUID(transaction_id)).status != "pending":
            return None
        wallet.settle(UUID(transaction_id), now)
        return wallet

    def request_payment(self, organization_id: UUID, changes: Mapping[str, Any], now: datetime) -> UUID:
        """POST /payment_requests: ask a customer to pay some of their finalized, unpaid invoices (one currency)."""
        problems = Problems()
        email = changes.get("email")
        problems.check(isinstance(email, str) and "@" in email, "email", "value_is_invalid")
        raw_ids = changes.get("lago_invoice_ids") or []
        problems.check(bool(raw_ids), "lago_invoice_ids", "value_is_mandatory")
        problems.raise_if_any()
        customer = self.customer(organization_id, str(changes.get("external_customer_id") or ""))
        invoices = []
        for raw in raw_ids:
            try:
                invoice = self.invoice(organization_id, UUID(str(raw)))
            except (ValueError, InvoiceNotFound):
                raise InvoiceNotFound(key=raw) from None
            if invoice.customer_id != customer.id or invoice.status != FINALIZED or invoice.total_due_amount_cents <= 0:
                problems.add("lago_invoice_ids", "invalid_invoice")
            invoices.append(invoice)
        if len({i.currency for i in invoices}) > 1:
            problems.add("lago_invoice_ids", "invoices_have_different_currencies")
        problems.raise_if_any()
        request = PaymentRequest(
            organization_id=organization_id, key=str(self.new_id()), customer_id=customer.id, email=str(email),
            invoice_ids=tuple(i.id for i in invoices), amount_cents=sum(i.total_due_amount_cents for i in invoices),
            currency=invoices[0].currency, requested_at=now)
        self._save(request)
        return request.id

    # --- credit notes by hand (I5) ----------------------------------------------------------------

    def estimate_credit_note(self, organization_id: UUID, changes: Mapping[str, Any]) -> tuple[Invoice, Estimate]:
        """POST /credit_notes/estimate: what a credit note with these items would be; nothing is stored."""
        invoice, requested = self._credit_request(organization_id, changes)
        paid = invoice.paid_amount_cents or (invoice.totals.total_amount_cents if invoice.payment_status == "succeeded"
                                             else 0)
        found = estimate(invoice.fees, invoice.credited, requested, paid, invoice.total_due_amount_cents,
                         CreditNote.create_id(organization_id, f"estimate/{invoice.id}"))
        return invoice, found

    def create_credit_note(self, organization_id: UUID, changes: Mapping[str, Any], now: datetime) -> UUID:
        """POST /credit_notes: give back items of a finalized invoice as credit, refund and offset (I5)."""
        return _retrying(lambda: self._create_credit_note(organization_id, changes, now))  # type: ignore[return-value]

    def _create_credit_note(self, organization_id: UUID, changes: Mapping[str, Any], now: datetime) -> UUID:
        invoice, requested = self._credit_request(organization_id, changes)
        problems = Problems()
        reason = changes.get("reason") or "other"
        problems.check(reason in REASONS, "reason", "value_is_invalid")
        problems.raise_if_any()
        numbers = self._sequence(organization_id, f"credit_notes/invoice/{invoice.id}")
        sequence = numbers.last + 1
        key = f"manual/{invoice.id}/{sequence}"
        note_id = CreditNote.create_id(organization_id, key)
        paid = invoice.paid_amount_cents or (invoice.totals.total_amount_cents if invoice.payment_status == "succeeded"
                                             else 0)
        found = estimate(invoice.fees, invoice.credited, requested, paid, invoice.total_due_amount_cents, note_id)
        amounts = {name: changes.get(name) for name in ("credit_amount_cents", "refund_amount_cents", "offset_amount_cents")}
        for name, value in amounts.items():
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise ValidationFailed({name: ["value_is_invalid"]})
        given = {name: int(value or 0) for name, value in amounts.items()}
        if not any(given.values()):
            given["credit_amount_cents"] = found.total_cents  # nothing said: all of it as credit
        parts = manual_split(found, given["credit_amount_cents"], given["refund_amount_cents"],
                             given["offset_amount_cents"])
        customer = self._load(invoice.customer_id, Customer, CustomerNotFound)
        organization = self._load_rarely_changed(organization_id, Organization, OrganizationNotFound)
        numbers.take()
        note = CreditNote(
            organization_id=organization_id, key=key, invoice_id=invoice.id, invoice_number=invoice.number or "",
            customer_id=customer.id, currency=invoice.currency,
            number=credit_note_number(invoice.number or "", sequence), sequential_id=sequence,
            issuing_date=now.astimezone(ZoneInfo(self._timezone(customer, organization))).date(), reason=reason,
            description=changes.get("description"), items=found.items, taxes_amount_cents=found.taxes_cents,
            split=parts,
        )
        invoice.record_credit_note(note.id, [(i.fee.id, i.amount_cents) for i in found.items])
        changed: list[Aggregate] = [note, numbers, invoice]
        if parts.credit_amount_cents:
            customer.credit_available(note.id)
            changed.append(customer)
        if parts.offset_amount_cents:
            invoice.offset(note.id, parts.offset_amount_cents)
        self._save(*_unique(changed))
        return note.id

    def _credit_request(self, organization_id: UUID, changes: Mapping[str, Any]) -> tuple[Invoice, list[tuple[UUID, int]]]:
        try:
            invoice_id = UUID(str(changes.get("invoice_id")))
        except ValueError:
            raise InvoiceNotFound(key=changes.get("invoice_id")) from None
        invoice = self.invoice(organization_id, invoice_id)
        if invoice.status != FINALIZED:
            raise ValidationFailed({"invoice": ["invalid_status"]})
        problems = Problems()
        requested: list[tuple[UUID, int]] = []
        for index, item in enumerate(changes.get("items") or ()):
            try:
                fee_id = UUID(str(item.get("fee_id")))
            except (ValueError, AttributeError):
                problems.add(f"items.{index}.fee_id", "fee_not_found")
                continue
            amount = item.get("amount_cents")
            if not isinstance(amount, int) or isinstance(amount, bool):
                problems.add(f"items.{index}.amount_cents", "value_is_invalid")
                continue
            requested.append((fee_id, amount))
        problems.raise_if_any()
        return invoice, requested

    def credit_note(self, organization_id: UUID, credit_note_id: UUID) -> CreditNote:
        return self._owned(organization_id, credit_note_id, CreditNote, CreditNoteNotFound)

    def update_credit_note(self, organization_id: UUID, credit_note_id: UUID, *, refund_status: str | None = None,
                           metadata: Mapping[str, str | None] | None = None) -> None:
        note = self.credit_note(organization_id, credit_note_id)
        note.change(refund_status=refund_status, metadata=metadata)
        self._save(note)

    def set_wallet_metadata(self, organization_id: UUID, wallet_id: UUID, metadata: Mapping[str, str | None]) -> None:
        wallet = self.wallet(organization_id, wallet_id)
        wallet.update(replace(wallet.terms, metadata=tuple(sorted(metadata.items()))))
        self._save(wallet)

    def void_credit_note(self, organization_id: UUID, credit_note_id: UUID, now: datetime) -> None:
        """Withdraw a credit note's remaining credit: later invoices no longer consume it."""
        note = self.credit_note(organization_id, credit_note_id)
        customer = self._load(note.customer_id, Customer, CustomerNotFound)
        note.void(now)
        customer.credit_spent(note.id)
        self._save(note, customer)

    def attach_invoice_file(self, organization_id: UUID, invoice_id: UUID, key: str) -> None:
        invoice = self.invoice(organization_id, invoice_id)
        invoice.attach_file(key)
        self._save(invoice)

    def _finalize(self, invoice: Invoice, customer: Customer, organization: Organization, now: datetime) -> list[Aggregate]:
        """Finalize with the next numbers (I2) and the customer's credit (I4 step 5); returns the sequences,
        credit notes and customer to save with it."""
        settings = organization.settings
        prefix = settings.document_number_prefix
        changed: list[Aggregate] = []
        per_customer = self._sequence(organization.id, f"invoices/customer/{customer.id}")
        sequential_id = per_customer.take()
        changed.append(per_customer)
        if settings.document_numbering == "per_organization":
            overall = self._sequence(organization.id, "invoices")
            local_day = now.astimezone(ZoneInfo(settings.timezone or "UTC")).date()
            number = organization_invoice_number(prefix, local_day, overall.take())
            changed.append(overall)
        else:
            if customer.sequential_id is None:
                customers = self._sequence(organization.id, "customers")
                customer.number(customers.take())
                changed.extend([customers, customer])
            number = invoice_number(prefix, customer.sequential_id or 0, sequential_id)
        self._take_coupons(invoice, customer, changed, now)
        credits = self._spend_credit(invoice, customer, changed)
        prepaid = self._spend_wallets(invoice, customer, credits, changed, now)
        invoice.finalize(number=number, sequential_id=sequential_id, at=now, credits=credits, prepaid=prepaid)
        return changed

    def _spend_credit(self, invoice: Invoice, customer: Customer, changed: list[Aggregate]) -> list[AppliedCredit]:
        """The customer's credit notes in the invoice's currency, oldest first, consume what it owes."""
        owed = invoice.totals.total_amount_cents if invoice.invoice_type in SPENDING_INVOICE_TYPES else 0
        credits: list[AppliedCredit] = []
        for credit_note_id in customer.credit_note_ids:
            if owed <= 0:
                break
            note = self._load(credit_note_id, CreditNote, CreditNoteNotFound)
            if note.currency != invoice.currency:
                continue
            used = note.consume(invoice.id, owed)
            if used:
                owed -= used
                credits.append(AppliedCredit(note.id, note.number, used))
                changed.append(note)
            if note.balance_amount_cents == 0:
                customer.credit_spent(note.id)
                changed.append(customer)
        return credits

    def _sequence(self, organization_id: UUID, scope: str) -> NumberSequence:
        repository = getattr(self, "snapshot_repository", self.repository)  # sequences are the snapshotted kind
        try:
            found = repository.get(NumberSequence.create_id(organization_id, scope))
        except AggregateNotFoundError:
            return NumberSequence.start(organization_id, scope)
        if not isinstance(found, NumberSequence):
            raise SequenceNotFound(key=scope)
        return found


def _unique(aggregates: Sequence[Aggregate]) -> list[Aggregate]:
    """Each aggregate once, in first-seen order: one save records each one's pending events once."""
    seen: dict[UUID, Aggregate] = {}
    for aggregate in aggregates:
        seen.setdefault(aggregate.id, aggregate)
    return list(seen.values())


def _decimal(raw: Any, default: Decimal, problems: Problems, field: str) -> Decimal:
    """Units as Lago sends them: a decimal string (or a number); positive."""
    if raw is None:
        return default
    try:
        value = Decimal(str(raw))
    except ArithmeticError:
        problems.add(field, "value_is_invalid")
        return default
    if not value.is_finite() or value <= 0:
        problems.add(field, "value_is_invalid")
        return default
    return value


def _grace_days(customer: Customer, organization: Organization) -> int:
    own = customer.definition.billing_configuration.invoice_grace_period
    return int(own if own is not None else organization.settings.billing_configuration.invoice_grace_period)


def _net_payment_term(customer: Customer, organization: Organization) -> int:
    own = customer.definition.net_payment_term
    return int(own if own is not None else organization.settings.net_payment_term)


def _provenance(facts: SubscriptionFacts, due: Due, key: str, buckets: Sequence[PricedBucket], taxes: TaxTable,
                positions: tuple[int, int]) -> Provenance:
    """The inputs that fix the invoice's figures, hashed; the positions say which events were read."""
    inputs: dict[str, Any] = {
        "key": key,
        "plan": {"id": facts.plan_id, "code": facts.plan.code, "amount_cents": facts.plan.amount_cents,
                 "pay_in_advance": facts.plan.pay_in_advance, "interval": facts.plan.interval,
                 "trial_period": facts.plan.trial_period},
        "subscription": {"started_at": facts.started_at, "terminated_at": facts.terminated_at,
                         "billing_time": facts.billing_time, "timezone": facts.timezone},
        "usage": sorted([str(b.charge.id), str(b.filter_id), list(b.group), str(b.units), b.events_count,
                         b.amount_cents, str(b.precise_amount_cents)] for b in buckets),
        "taxes": sorted([t.code, str(t.rate)] for t in taxes.by_code.values()),
        "fees": [[f.fee_type, str(f.charge_id), f.amount_cents, str(f.units)] for f in due.fees],
    }
    return Provenance(billing_position=positions[0], metering_position=positions[1], digest=digest(inputs))


def _retrying(attempt: Callable[[], UUID | None], attempts: int = 5) -> UUID | None:
    """Run a close again when a concurrent write won: reloaded, it finds its work done (None) or redoes it."""
    for _ in range(attempts - 1):
        try:
            return attempt()
        except ConcurrentWrite:
            continue
    return attempt()
