"""The error bases every domain rule raises, so interfaces map them once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class BillingError(Exception):
    """A refusal by the billing domain, with a stable machine-readable code."""

    code: str = "billing_error"

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message or type(self).__name__)
        if code is not None:
            self.code = code


class NotFound(BillingError):
    """The thing named does not exist in the caller's organization."""

    resource: str = "resource"

    def __init__(self, resource: str | None = None, key: object = None) -> None:
        self.resource = resource or type(self).resource
        self.key = key
        super().__init__(f"{self.resource} not found: {key}", code=f"{self.resource}_not_found")


class Conflict(BillingError):
    """The command lost a race with another write, or repeats a unique key."""

    code = "conflict"


class RuleViolated(BillingError):
    """The command breaks a business rule; nothing was recorded. ``field`` names the input."""

    code = "rule_violated"
    field = "base"


class NotAllowed(BillingError):
    """The command is refused in the current state of the thing (Lago's 405)."""

    code = "not_allowed"


class Unauthenticated(BillingError):
    """The caller did not present a valid, unrevoked API key."""

    code = "unauthorized"


class ValidationFailed(RuleViolated):
    """One or more fields are invalid: field name → list of snake_case error codes."""

    code = "validation_errors"

    def __init__(self, details: Mapping[str, Sequence[str] | Mapping[str, Sequence[str]]]) -> None:
        # A batch nests one level: {"3": {"transaction_id": ["value_already_exist"]}}.
        self.details = {
            field: dict(codes) if isinstance(codes, Mapping) else list(codes) for field, codes in details.items()
        }
        super().__init__(f"validation failed: {self.details}")


class Problems:
    """Collects field errors while a command checks its input, then raises them at once."""

    def __init__(self) -> None:
        self._details: dict[str, list[str]] = {}

    def add(self, field: str, code: str) -> None:
        codes = self._details.setdefault(field, [])
        if code not in codes:
            codes.append(code)

    def check(self, condition: bool, field: str, code: str) -> None:
        if not condition:
            self.add(field, code)

    def raise_if_any(self) -> None:
        if self._details:
            raise ValidationFailed(self._details)
