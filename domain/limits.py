"""Every bound an accepted value must keep, in one place (docs/adr/0028-limits-checked-at-the-edge.md).

A value inside these bounds can be stored, projected, priced and dated forever: every read model
column holds it, date arithmetic on it stays inside what ``datetime`` can represent, and decimal
arithmetic on it stays exact. The HTTP edge refuses anything outside them with a 422 naming the
field, before anything is recorded; the domain checks the same bounds for callers that are not HTTP.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal

MAX_INTEGER = 2**63 - 1  # a Postgres bigint: the widest integer column any view has
MAX_AMOUNT_CENTS = 10**15  # any amount or fee, in minor units (10 trillion dollars)
MAX_CREDITS = Decimal(10) ** 12  # wallet credits, and a credit's rate in currency units
MAX_QUANTITY_DIGITS = 18  # a number's integer digits: 10^18 units, or an amount as a decimal string
MAX_FRACTION_DIGITS = 30  # a number's digits after the point (floats' repr needs at most ~25)
MAX_KEPT_EXPONENT = 1000  # a number kept as sent (event properties): within 10^±1000, as Postgres numeric parses
MAX_RATE_PERCENT = Decimal(100)  # a tax or coupon rate, in percent
MAX_DAYS = 36_500  # any count of days (payment terms, trials, grace periods): 100 years
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)  # the first instant any date or time may name
LATEST = datetime(2999, 12, 31, 23, 59, 59, tzinfo=UTC)  # the last: 7,000 years before datetime's end
MAX_JSON_DEPTH = 32  # nesting of objects and arrays in a request body
MAX_PAGE = 10**9  # with per_page ≤ 1000 the offset stays far inside a bigint

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")  # Postgres text holds no NUL; UTF-8 holds no lone surrogate


def storable_text(value: str) -> bool:
    """True when Postgres can hold the string in a text or jsonb column."""
    return _UNSTORABLE.search(value) is None


def storable_integer(value: int) -> bool:
    return -MAX_INTEGER <= value <= MAX_INTEGER


def storable_number(value: Decimal) -> bool:
    """A finite decimal with at most ``MAX_QUANTITY_DIGITS`` integer and ``MAX_FRACTION_DIGITS`` fraction digits."""
    if not value.is_finite():
        return False
    if value.is_zero():
        return True
    return value.adjusted() < MAX_QUANTITY_DIGITS and value.as_tuple().exponent >= -MAX_FRACTION_DIGITS  # type: ignore[operator]


def kept_number(value: Decimal) -> bool:
    """A number stored as sent, never aggregated unless ``storable_number``: Postgres and ``Decimal`` parse it cheaply."""
    if not value.is_finite() or value.is_zero():
        return value.is_finite()
    exponent = value.as_tuple().exponent
    return abs(value.adjusted()) <= MAX_KEPT_EXPONENT and exponent >= -MAX_KEPT_EXPONENT  # type: ignore[operator]


def amount_cents_within(value: int) -> bool:
    """An amount in minor units that any fee, balance and ledger column can hold (negative ones too)."""
    return -MAX_AMOUNT_CENTS <= value <= MAX_AMOUNT_CENTS


def days_within(value: int | Decimal) -> bool:
    return 0 <= value <= MAX_DAYS


def moment_within(value: datetime | date) -> bool:
    """A date or time inside [EARLIEST, LATEST]; naive times are read as UTC."""
    if not isinstance(value, datetime):
        return EARLIEST.date() <= value <= LATEST.date()
    moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return EARLIEST <= moment <= LATEST
