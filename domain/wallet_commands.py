"""Wallet commands of the Billing application: open, update and terminate wallets, and spend them when an invoice
is finalized (reference §2.9, semantics I4 step 6). Top-ups that need a credit invoice are in ``invoice_commands``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.coupon_commands import CouponCommands
from domain.currency import is_accepted_currency
from domain.customer import Customer, CustomerNotFound
from domain.errors import Problems, ValidationFailed
from domain.invoice import AppliedCredit, Invoice
from domain import limits
from domain.wallet import (
    RecurringRule,
    Wallet,
    WalletNotFound,
    WalletUse,
    spend,
    terms_from,
)

MAX_CREDITS = limits.MAX_CREDITS  # credits (and a credit's rate) beyond this would overflow what balances hold
SPENDING_INVOICE_TYPES = ("subscription", "one_off", "progressive_billing")  # not the credit invoices of top-ups
RULE_TRIGGERS = ("interval", "threshold")
RULE_INTERVALS = ("weekly", "monthly", "quarterly", "semiannual", "yearly")


def credits_value(raw: Any, field: str, problems: Problems) -> Decimal:
    """Credits as Lago sends them: a decimal string (or number), zero or more."""
    if raw is None:
        return Decimal(0)
    try:
        value = Decimal(str(raw))
    except (InvalidOperation, ValueError):
        problems.add(field, "value_is_invalid")
        return Decimal(0)
    if not value.is_finite() or value < 0:
        problems.add(field, "value_is_invalid")
        return Decimal(0)
    if value > MAX_CREDITS:
        problems.add(field, "value_is_out_of_range")
        return Decimal(0)
    return value


class WalletCommands(CouponCommands):
    def wallet(self, organization_id: UUID, wallet_id: UUID) -> Wallet:
        return self._owned(organization_id, wallet_id, Wallet, WalletNotFound)

    def _open_wallet(self, organization_id: UUID, changes: Mapping[str, Any], now: datetime) -> tuple[Wallet, Customer]:
        problems = Problems()
        external_customer_id = str(changes.get("external_customer_id") or "")
        problems.check(bool(external_customer_id), "external_customer_id", "value_is_mandatory")
        currency = changes.get("currency")
        problems.check(isinstance(currency, str) and is_accepted_currency(currency), "currency", "value_is_invalid")
        rate = credits_value(changes.get("rate_amount"), "rate_amount", problems)
        problems.check(rate > 0, "rate_amount", "value_is_invalid")
        rules = self._rules(changes.get("recurring_transaction_rules"), problems, now)
        problems.raise_if_any()
        customer = self.customer(organization_id, external_customer_id)
        if customer.definition.currency and customer.definition.currency != currency:
            raise ValidationFailed({"currency": ["currencies_does_not_match"]})
        terms = terms_from(changes)
        wallet = Wallet(organization_id=organization_id, customer_id=customer.id, number=customer.wallets_opened + 1,
                        currency=str(currency), rate_amount=rate, terms=replace(terms, recurring_rules=rules),
                        opened_at=now)
        customer.wallet_opened(wallet.id)
        return wallet, customer

    def _rules(self, raw: Any, problems: Problems, now: datetime) -> tuple[RecurringRule, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, Sequence):
            problems.add("recurring_transaction_rules", "value_is_invalid")
            return ()
        rules = []
        for index, item in enumerate(raw):
            path = f"recurring_transaction_rules.{index}"
            if not isinstance(item, Mapping):
                problems.add(path, "value_is_invalid")
                continue
            trigger = item.get("trigger")
            problems.check(trigger in RULE_TRIGGERS, f"{path}.trigger", "value_is_invalid")
            interval = item.get("interval")
            if trigger == "interval":
                problems.check(interval in RULE_INTERVALS, f"{path}.interval", "value_is_invalid")
            threshold = item.get("threshold_credits")
            if trigger == "threshold":
                problems.check(threshold is not None, f"{path}.threshold_credits", "value_is_mandatory")
            method = item.get("method") or "fixed"
            problems.check(method in ("fixed", "target"), f"{path}.method", "value_is_invalid")
            rules.append(RecurringRule(
                id=self.new_id(), trigger=str(trigger), method=method, interval=interval,
                paid_credits=credits_value(item.get("paid_credits"), f"{path}.paid_credits", problems),
                granted_credits=credits_value(item.get("granted_credits"), f"{path}.granted_credits", problems),
                threshold_credits=credits_value(threshold, f"{path}.threshold_credits", problems)
                if threshold is not None else None,
                target_ongoing_balance=credits_value(item.get("target_ongoing_balance"),
                                                     f"{path}.target_ongoing_balance", problems)
                if item.get("target_ongoing_balance") is not None else None,
                started_at=item.get("started_at") or now,
            ))
        return tuple(rules)

    def update_wallet(self, organization_id: UUID, wallet_id: UUID, changes: Mapping[str, Any], now: datetime) -> None:
        wallet = self.wallet(organization_id, wallet_id)
        problems = Problems()
        rules = self._rules(changes.get("recurring_transaction_rules"), problems, now) \
            if "recurring_transaction_rules" in changes else wallet.terms.recurring_rules
        problems.raise_if_any()
        wallet.update(replace(terms_from(changes, wallet.terms), recurring_rules=rules))
        self._save(wallet)

    def terminate_wallet(self, organization_id: UUID, wallet_id: UUID, now: datetime) -> None:
        wallet = self.wallet(organization_id, wallet_id)
        customer = self._load(wallet.customer_id, Customer, CustomerNotFound)
        wallet.terminate(now)
        customer.wallet_closed(wallet.id)
        self._save(wallet, customer)

    def _spend_wallets(self, invoice: Invoice, customer: Customer, credits: Sequence[AppliedCredit],
                       changed: list[Aggregate], now: datetime) -> list[WalletUse]:
        """I4 step 6: after credit notes, the customer's wallets in the invoice's currency pay what they may."""
        if invoice.invoice_type not in SPENDING_INVOICE_TYPES or not customer.wallet_ids:
            return []
        credited = sum(c.amount_cents for c in credits)
        total = invoice.totals.total_amount_cents - credited
        if total <= 0:
            return []
        wallets = {w.id: w for w in (self._load(i, Wallet, WalletNotFound) for i in customer.wallet_ids)
                   if w.currency == invoice.currency}
        candidates = [c for c in (w.candidate(now) for w in wallets.values()) if c is not None]
        uses = list(spend(invoice.fees, credited, total, candidates))
        for use in uses:
            wallets[use.wallet_id].consume(invoice.id, use.amount_cents, now)
            changed.append(wallets[use.wallet_id])
        return uses

    def _give_back_wallets(self, invoice: Invoice, changed: list[Aggregate], now: datetime) -> None:
        """A voided invoice returns the wallet credits it consumed (as Lago)."""
        for use in invoice.prepaid:
            wallet = self._load(use.wallet_id, Wallet, WalletNotFound)
            wallet.give_back(invoice.id, use.amount_cents, now)  # even to a wallet terminated since: the credit is owed
            changed.append(wallet)
