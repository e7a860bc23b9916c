"""Lago's wire conventions, once: envelopes in and out, pagination, JSON encoding.

Request bodies are ``{"<root>": {...}}``; a missing or empty root is a 400, a field of the
wrong type a 422 naming the field. Unknown fields are ignored, as Lago ignores them
(docs/adr/0008-lago-wire-conventions.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

import falcon
import msgspec

from domain import limits
from domain.errors import NotFound, ValidationFailed

T = TypeVar("T", bound=msgspec.Struct)

JSON = "application/json; charset=utf-8"
DEFAULT_PER_PAGE = 100
MAX_PER_PAGE = 1000

_encode = msgspec.json.Encoder(decimal_format="string").encode
_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`")


class BadRequest(Exception):
    """The request cannot be read at all: malformed JSON, missing envelope, bad query."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PayloadTooLarge(Exception):
    """The body exceeds the configured limit; nothing of it was processed."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body larger than {limit} bytes")
        self.limit = limit


def read_body(req: falcon.Request, limit: int) -> bytes:
    """The raw body, refusing more than ``limit`` bytes whatever Content-Length claims."""
    if req.content_length is not None and req.content_length > limit:
        raise PayloadTooLarge(limit)
    data = req.bounded_stream.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(limit)
    return data


def field_errors(error: msgspec.ValidationError, root: str | None = None) -> dict[str, list[str]]:
    """Turn msgspec's message into Lago's ``error_details``: dotted field → [code]."""
    message = str(error)
    match = _PATH.search(message)
    path = match.group("path") if match else ""
    parts = [p for p in re.split(r"\.|\[|\]", path) if p]
    if root is not None and parts[:1] == [root]:
        parts = parts[1:]
    missing = _MISSING.match(message)
    if missing:
        return {".".join([*parts, missing.group("field")]): ["value_is_mandatory"]}
    return {".".join(parts) or "base": ["value_is_invalid"]}


class Body(Generic[T]):
    """Decoder of one request envelope ``{root: T}``, built once per module."""

    def __init__(self, root: str, struct: type[T]) -> None:
        self.root = root
        self.struct = struct
        envelope = msgspec.defstruct(
            f"{struct.__name__}Envelope", [(root, struct | None, None)]
        )
        self._decode = msgspec.json.Decoder(envelope).decode

    def decode(self, raw: bytes) -> T:
        try:
            envelope = self._decode(raw)
        except msgspec.ValidationError as error:
            raise self._refusal(raw, error) from None
        except msgspec.DecodeError as error:
            raise BadRequest(f"malformed JSON: {error}") from None
        value = getattr(envelope, self.root)
        if value is None or _is_empty(value):
            raise BadRequest(f"param is missing or the value is empty or invalid: {self.root}")
        check_decoded(value)
        return value

    def _refusal(self, raw: bytes, error: msgspec.ValidationError) -> Exception:
        """400 when the envelope itself is wrong (not an object, root empty), else 422."""
        message = str(error)
        match = _PATH.search(message)
        if match is None or match.group("path") == "":
            return BadRequest("request body must be a JSON object")
        root = msgspec.json.decode(raw).get(self.root)
        if not isinstance(root, dict) or not root:
            return BadRequest(f"param is missing or the value is empty or invalid: {self.root}")
        return ValidationFailed(field_errors(error, self.root))


def check_decoded(value: Any, path: list[str] | None = None) -> None:
    """Dates and times a typed body decoded must lie in the window every period computation can reach
    (the other edge checks run on the raw body: ``interfaces.http.edge``)."""
    problems: dict[str, list[str]] = {}
    _walk_struct(value, path or [], problems)
    if problems:
        raise ValidationFailed(problems)


def _walk_struct(value: Any, path: list[str], problems: dict[str, list[str]]) -> None:
    if isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            _walk_struct(getattr(value, name), [*path, name], problems)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _walk_struct(item, [*path, str(index)], problems)
    elif isinstance(value, datetime | date):
        if not limits.moment_within(value):
            problems.setdefault(".".join(path) or "base", []).append("value_is_out_of_range")


def _is_empty(value: msgspec.Struct) -> bool:
    return all(getattr(value, f) is msgspec.UNSET for f in value.__struct_fields__)


def given(struct: msgspec.Struct) -> dict[str, Any]:
    """The fields a client actually sent (UNSET ones left out), as plain dicts and lists."""
    return {
        name: _plain(getattr(struct, name))
        for name in struct.__struct_fields__
        if getattr(struct, name) is not msgspec.UNSET
    }


def _plain(value: Any) -> Any:
    if isinstance(value, msgspec.Struct):
        return given(value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def timestamp(moment: datetime | None) -> str | None:
    """Lago's response timestamps: UTC, second precision, with a Z."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def respond(resp: falcon.Response, body: Any, status: str = falcon.HTTP_200) -> None:
    resp.status = status
    resp.content_type = JSON
    resp.data = _encode(body)


@dataclass(frozen=True)
class PageRequest:
    """``page`` and ``per_page`` query parameters, 1-based, checked."""

    page: int
    per_page: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    @classmethod
    def of(cls, req: falcon.Request) -> PageRequest:
        page = _positive_int(req, "page", 1)
        if page > limits.MAX_PAGE:
            raise ValidationFailed({"page": ["value_is_out_of_range"]})
        per_page = min(_positive_int(req, "per_page", DEFAULT_PER_PAGE), MAX_PER_PAGE)
        return cls(page, per_page)

    def meta(self, total_count: int) -> dict[str, int | None]:
        """Lago's pagination block, including its special case for an empty collection."""
        if total_count == 0:
            return {"current_page": 0, "next_page": None, "prev_page": None, "total_pages": 0, "total_count": 0}
        total_pages = -(-total_count // self.per_page)
        return {
            "current_page": self.page,
            "next_page": self.page + 1 if self.page < total_pages else None,
            "prev_page": self.page - 1 if self.page > 1 else None,
            "total_pages": total_pages,
            "total_count": total_count,
        }


NO_ID = UUID(int=0)  # an id nothing has: a filter naming something unknown lists nothing


def parse_id(raw: str, missing: type[NotFound]) -> UUID:
    """A ``lago_id`` from the path; one that is not a UUID is as unknown as a missing one (Lago's 404)."""
    try:
        return UUID(raw)
    except ValueError:
        raise missing(key=raw) from None


def filter_id(raw: str | None) -> UUID | None:
    """An id given as a list filter: None when not given, ``NO_ID`` (matching nothing) when not a UUID."""
    if not raw:
        return None
    try:
        return UUID(raw)
    except ValueError:
        return NO_ID


def query_dates(req: falcon.Request, names: tuple[str, ...], problems: dict[str, list[str]]) -> dict[str, date | None]:
    """Optional ``YYYY-MM-DD`` query parameters; a bad one is named in ``problems`` (422 ``invalid_date``)."""
    found: dict[str, date | None] = {}
    for name in names:
        raw = req.get_param(name)
        try:
            found[name] = date.fromisoformat(raw) if raw else None
        except ValueError:
            problems[name] = ["invalid_date"]
    return found


def query_ints(req: falcon.Request, names: tuple[str, ...], problems: dict[str, list[str]]) -> dict[str, int | None]:
    """Optional integer query parameters; a bad one is named in ``problems`` (422 ``value_is_invalid``)."""
    found: dict[str, int | None] = {}
    for name in names:
        raw = req.get_param(name)
        try:
            found[name] = int(raw) if raw else None
        except ValueError:
            problems[name] = ["value_is_invalid"]
            continue
        if found[name] is not None and not limits.storable_integer(found[name]):
            problems[name] = ["value_is_out_of_range"]
    return found


def count_param(req: falcon.Request, name: str, default: int | None = None, most: int = limits.MAX_PAGE) -> int | None:
    """An optional count query parameter: ASCII digits, at least 1, at most ``most`` (422 naming it otherwise)."""
    raw = req.get_param(name)
    if raw is None or raw == "":
        return default
    if not _COUNT.match(raw) or int(raw) < 1:
        raise ValidationFailed({name: ["value_is_invalid"]})
    return min(int(raw), most)


_COUNT = re.compile(r"^[0-9]{1,18}$")


def _positive_int(req: falcon.Request, name: str, default: int) -> int:
    raw = req.get_param(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationFailed({name: ["value_is_invalid"]}) from None
    if value < 1:
        raise ValidationFailed({name: ["value_is_out_of_range"]})
    return value
