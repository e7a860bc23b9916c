"""Money arithmetic: the one place Tally rounds, converts, taxes, prorates, discounts and consumes credit
(semantics M1–M4, P4, I4; ADR 0029).

Amounts are integer minor units (``*_cents``), or Decimals of minor units before they are rounded
("precise"). Every function here computes under ``CONTEXT`` — wide enough that bounded values
(``limits``) never raise or lose a digit — and rounds once, with a named mode. Current usage,
estimates, invoices, credit notes and wallets all call these functions, so a figure shown
anywhere is the figure an invoice would carry.

Where rounded parts must add up to a rounded whole (the taxes of an invoice's fees, of a
fee's rates, what a wallet takes of each fee), the whole is rounded once and apportioned by
largest remainder: each part is its exact share floored, and the units left go to the largest
fractions, earliest first on ties.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from decimal import (
    ROUND_FLOOR,
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)
from typing import TypeVar

from domain.currency import minor_unit_exponent

__all__ = (
    "CONTEXT", "apportion", "coupon_cents", "credits_to_cents", "cents_to_credits", "floor_cents", "from_cents",
    "invoice_taxes_cents", "minor_unit_exponent", "percent_of", "prorated_cents", "prorated_precise",
    "round_half_up_cents", "spread", "taxes_precise", "to_cents", "to_precise_cents", "unit_cents", "unit_price",
)

CONTEXT = Context(prec=60, rounding=ROUND_HALF_UP, traps=[InvalidOperation, DivisionByZero, Overflow])
_ZERO = Decimal(0)
_HUNDRED = Decimal(100)
_CREDIT_PLACES = Decimal("0.00001")  # Lago shows wallet credits floored to 5 decimals
_K = TypeVar("_K", bound=Hashable)


# --- rounding and units ---------------------------------------------------------------------------------------

def round_half_up_cents(amount: Decimal) -> int:
    """A precise amount of minor units as an integer, rounded half-up (away from zero) once (M1)."""
    with localcontext(CONTEXT):
        return int(Decimal(amount).to_integral_value(rounding=ROUND_HALF_UP))


def floor_cents(amount: Decimal) -> int:
    """The whole minor units within a precise amount: what a cap may take without exceeding it."""
    with localcontext(CONTEXT):
        return int(Decimal(amount).to_integral_value(rounding=ROUND_FLOOR))


def to_precise_cents(amount: Decimal, exponent: int) -> Decimal:
    """An amount in currency units as unrounded minor units (kept beside a fee for exact sums)."""
    with localcontext(CONTEXT):
        return Decimal(amount).scaleb(exponent)


def to_cents(amount: Decimal, exponent: int) -> int:
    """An amount in currency units as integer minor units, rounded half-up once to the currency's decimals (M1)."""
    return round_half_up_cents(to_precise_cents(amount, exponent))


def from_cents(cents: int | Decimal, exponent: int) -> Decimal:
    """Minor units as currency units (exact: a shift of the decimal point)."""
    with localcontext(CONTEXT):
        return Decimal(cents).scaleb(-exponent)


def unit_price(precise_cents: Decimal, units: Decimal, places: int = 10) -> Decimal:
    """The price of one unit in minor units, to ``places`` decimals (half-up); 0 without units."""
    if not units:
        return _ZERO
    with localcontext(CONTEXT):
        return (Decimal(precise_cents) / units).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def unit_cents(precise_cents: Decimal, units: Decimal) -> int:
    """The price of one unit in whole minor units, rounded half-up once from the exact quotient; 0 without units."""
    if not units:
        return 0
    with localcontext(CONTEXT):
        return round_half_up_cents(Decimal(precise_cents) / units)


# --- taxes (M2) -----------------------------------------------------------------------------------------------

def percent_of(base: Decimal, rate: Decimal) -> Decimal:
    """``base × rate / 100``, unrounded: a tax or percentage coupon on a precise base."""
    with localcontext(CONTEXT):
        return Decimal(base) * rate / _HUNDRED


def taxes_precise(taxable_cents: Decimal, rates: Iterable[Decimal]) -> Decimal:
    """A fee's taxes, unrounded: its taxable amount (after early invoices' credit and its coupon share) times the
    sum of its rates (M2)."""
    with localcontext(CONTEXT):
        return percent_of(taxable_cents, sum(rates, _ZERO))


def invoice_taxes_cents(fee_taxes: Iterable[Decimal]) -> int:
    """An invoice's (or current usage's, or a credit note's) taxes: the fees' unrounded taxes summed, rounded once
    (M2)."""
    with localcontext(CONTEXT):
        return round_half_up_cents(sum(fee_taxes, _ZERO))


# --- proration (P4, P5, C8) -----------------------------------------------------------------------------------

def prorated_precise(amount: int | Decimal, part: int | Decimal, whole: int | Decimal) -> Decimal:
    """``amount × part / whole``, unrounded: a daily price times the days billed."""
    if not whole:
        raise ValueError("a proration needs a whole")
    with localcontext(CONTEXT):
        return Decimal(amount) * Decimal(part) / Decimal(whole)


def prorated_cents(amount_cents: int, days: int, period_days: int) -> int:
    """``amount_cents × days / period_days``, rounded half-up once (P4); the whole amount for a whole period."""
    if period_days <= 0:
        raise ValueError("a period has at least one day")
    if days >= period_days:
        return amount_cents
    return round_half_up_cents(prorated_precise(amount_cents, days, period_days))


# --- coupons (M3) ---------------------------------------------------------------------------------------------

def coupon_cents(coupon_type: str, base: Decimal, *, percentage_rate: Decimal | None = None,
                 available_cents: int | None = None) -> int:
    """M3: a percentage of the base, rounded half-up, or the fixed amount available; never more than the base's
    whole minor units."""
    cap = max(floor_cents(base), 0)
    if coupon_type == "percentage":
        return min(round_half_up_cents(percent_of(base, percentage_rate or _ZERO)), cap)
    return min(available_cents or 0, cap)


def spread(amount: int | Decimal, weights: Mapping[_K, Decimal]) -> dict[_K, Decimal]:
    """``amount`` shared pro rata to ``weights``, unrounded (a coupon's share of each fee it discounts, M3)."""
    with localcontext(CONTEXT):
        whole = sum(weights.values(), _ZERO)
        if not whole:
            return {key: _ZERO for key in weights}
        return {key: Decimal(amount) * weight / whole for key, weight in weights.items()}


def apportion(total: int, weights: Mapping[_K, Decimal]) -> dict[_K, int]:
    """``total`` split in integer parts pro rata to ``weights`` that add up to it exactly (largest remainder).

    Each part is its exact share floored; the units left go one each to the largest fractions, the
    earliest key first on ties. Parts never exceed the ceiling of their exact share, so a part of a
    whole-number weight never exceeds that weight when ``total`` is at most the weights' sum. With no
    weight at all, everything goes to the first key."""
    if not weights:
        return {}
    with localcontext(CONTEXT):
        whole = sum(weights.values(), _ZERO)
        if not whole:
            first = next(iter(weights))
            return {key: (total if key == first else 0) for key in weights}
        exact = {key: Decimal(total) * weight / whole for key, weight in weights.items()}
        parts = {key: floor_cents(share) for key, share in exact.items()}
        left = total - sum(parts.values())
        order = sorted(enumerate(exact), key=lambda item: (-(exact[item[1]] - parts[item[1]]), item[0]))
        for _, key in order[:left]:
            parts[key] += 1
        return parts


# --- credits and wallets (I4 steps 5–6, reference §2.9) -------------------------------------------------------

def credits_to_cents(credits: Decimal, rate_amount: Decimal, exponent: int) -> int:
    """Wallet credits in minor units of the wallet's currency (one credit is ``rate_amount`` units), half-up once."""
    with localcontext(CONTEXT):
        return to_cents(Decimal(credits) * rate_amount, exponent)


def cents_to_credits(cents: int, rate_amount: Decimal, exponent: int) -> Decimal:
    """Minor units as wallet credits, floored to 5 decimals (as Lago shows them)."""
    if rate_amount <= 0:
        return _ZERO
    with localcontext(CONTEXT):
        return (from_cents(cents, exponent) / rate_amount).quantize(_CREDIT_PLACES, rounding=ROUND_FLOOR)


def consume(balance_cents: int, caps: Mapping[_K, int], remaining_cents: int) -> tuple[int, dict[_K, int]]:
    """What one credit (a wallet) takes: at most its balance, what the fees it applies to still owe (``caps``)
    and what the invoice still owes; and how much of each fee that is (apportioned, each within its cap)."""
    amount = max(min(balance_cents, sum(caps.values()), remaining_cents), 0)
    if not amount:
        return 0, {key: 0 for key in caps}
    return amount, apportion(amount, {key: Decimal(cap) for key, cap in caps.items()})
