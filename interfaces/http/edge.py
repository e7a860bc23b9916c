"""Checks every request passes before a resource sees it: text Postgres can hold, numbers the views
can hold, bodies that are UTF-8 JSON of bounded depth (docs/adr/0028-limits-checked-at-the-edge.md).

The checks are shaped for the hot path: a body is scanned by a few byte-level searches that run in
C, and only a body in which one of them finds something suspicious is decoded and walked to name
the offending field. The bounds themselves are in ``domain.limits``.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import falcon
import msgspec

from domain import limits
from domain.errors import ValidationFailed
from interfaces.http.wire import BadRequest, field_errors

# A JSON escape of NUL (an odd run of backslashes before u0000), a number literal with an exponent,
# 19 or more integer digits or too many fraction digits. Inside strings these are only suspicious:
# the walk that follows decides.
_SUSPICIOUS = re.compile(
    rb"(?:^|[^\\])(?:\\\\)*\\u0000"
    rb"|[:\[,]\s*-?\d+(?:\.\d+)?[eE]"
    rb"|[:\[,]\s*-?\d{19,}"
    rb"|[:\[,]\s*-?\d*\.\d{%d,}" % (limits.MAX_FRACTION_DIGITS + 1)
)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_decode_any = msgspec.json.Decoder(float_hook=Decimal).decode


def check_body(raw: bytes) -> None:
    """Refuse a body no view could hold: 400 when it is not UTF-8 or nests too deep, 422 naming a bad value."""
    if not raw:
        return
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("request body is not valid UTF-8") from None
    if _SUSPICIOUS.search(raw) is None and _shallow(raw):
        return
    try:
        value = _decode_any(raw)
    except RecursionError:
        raise BadRequest(f"JSON nested deeper than {limits.MAX_JSON_DEPTH} levels") from None
    except msgspec.ValidationError as error:  # a number no decoder can hold
        raise ValidationFailed({field: ["value_is_out_of_range"] for field in field_errors(error, _root(raw))}) from None
    except msgspec.DecodeError:
        return  # not JSON at all: the resource's own decoder answers 400
    problems: dict[str, list[str]] = {}
    _walk(value, [], problems, 0)
    if "\x00depth" in problems:
        raise BadRequest(f"JSON nested deeper than {limits.MAX_JSON_DEPTH} levels")
    if problems:
        raise ValidationFailed(problems)


def _root(raw: bytes) -> str | None:
    """The envelope's key, left out of field names as Lago does."""
    match = re.match(rb'\s*\{\s*"(\w+)"', raw)
    return match.group(1).decode() if match else None


def _shallow(raw: bytes) -> bool:
    """True when the body surely nests at most ``MAX_JSON_DEPTH`` levels.

    Keeping only brackets and removing innermost pairs ``MAX_JSON_DEPTH`` times empties any
    such body; brackets inside strings may leave some behind, and then the walk decides.
    """
    brackets = raw.translate(None, _NOT_BRACKETS)
    for _ in range(limits.MAX_JSON_DEPTH):
        if not brackets:
            return True
        shorter = brackets.replace(b"[]", b"").replace(b"{}", b"")
        if shorter == brackets:
            return False
        brackets = shorter
    return not brackets


_FREE_FORM = frozenset({"event", "events"})  # envelopes whose ``properties`` are kept as sent (Lago's events)


def _walk(value: Any, path: list[str], problems: dict[str, list[str]], depth: int, free: bool = False) -> None:
    if depth > limits.MAX_JSON_DEPTH:
        problems["\x00depth"] = ["too_deep"]
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not limits.storable_text(key):
                _problem(problems, [*path, _printable(key)], "value_is_invalid")
                continue
            inside = free or (key == "properties" and path[:1] != [] and path[0] in _FREE_FORM)
            _walk(item, [*path, key], problems, depth + 1, inside)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _walk(item, [*path, str(index)], problems, depth + 1, free)
    else:
        code = _scalar_problem(value, free)
        if code is not None:
            _problem(problems, path, code)


def _scalar_problem(value: Any, free: bool) -> str | None:
    """Typed fields must fit their columns; free-form event properties only what Postgres ``numeric`` parses."""
    if isinstance(value, str):
        return None if limits.storable_text(value) else "value_is_invalid"
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        fits = limits.kept_number(Decimal(value)) if free else limits.storable_integer(value)
        return None if fits else "value_is_out_of_range"
    if isinstance(value, Decimal):
        fits = limits.kept_number(value) if free else limits.storable_number(value)
        return None if fits else "value_is_out_of_range"
    if isinstance(value, datetime | date):
        return None if limits.moment_within(value) else "value_is_out_of_range"
    return None


def _problem(problems: dict[str, list[str]], path: list[str], code: str) -> None:
    """Lago names a field without its envelope: ``{"customer": {"name": …}}`` → ``name``."""
    field = ".".join(path[1:] if len(path) > 1 else path) or "base"
    problems.setdefault(field, []).append(code)


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace").replace("\x00", "\\u0000")


def check_request(req: falcon.Request, params: dict[str, Any]) -> None:
    """Path parameters, query parameter names and values: text Postgres can hold."""
    problems: dict[str, list[str]] = {}
    for name, value in params.items():
        if isinstance(value, str) and not limits.storable_text(value):
            problems.setdefault(name, []).append("value_is_invalid")
    for name, value in req.params.items():
        values = value if isinstance(value, list) else [value]
        if not limits.storable_text(name) or not all(limits.storable_text(v) for v in values):
            problems.setdefault(_printable(name).removesuffix("[]"), []).append("value_is_invalid")
    if problems:
        raise ValidationFailed(problems)
