"""Billable metric expressions: Lago's small language that computes a property of each usage event.

Grammar (whitespace may separate any two tokens)::

    sum       := product (("+" | "-") product)*
    product   := unary (("*" | "/") unary)*
    unary     := "-" unary | primary
    primary   := NUMBER | STRING | "(" sum ")" | NAME "(" [sum ("," sum)*] ")" | attribute
    attribute := "event.code" | "event.timestamp" | "event.properties." IDENTIFIER

NUMBER is ``123`` or ``123.45`` (no sign, exponent or bare dot); STRING is single-quoted with no
escapes; function names are case-insensitive, attributes are not. Numbers are ``Decimal``s
computed in a 38-digit context; results keep their exact value and scale, never normalized, so
``0.1 + 0.2`` is ``Decimal("0.3")`` and ``round(x, 2)`` always has two decimals, as in SQL.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import (
    MAX_EMAX,
    MIN_EMIN,
    ROUND_CEILING,
    ROUND_FLOOR,
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    Context,
    Decimal,
    DecimalException,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)
from typing import NamedTuple

MAX_SOURCE_LENGTH = 1000
MAX_DEPTH = 50
PRECISION = 38
# Operands beyond 10**999 are refused, so rounding or rendering one never builds a huge string.
_MAX_ADJUSTED_EXPONENT = 999
_ARITHMETIC = Context(
    prec=PRECISION,
    rounding=ROUND_HALF_EVEN,
    Emax=_MAX_ADJUSTED_EXPONENT,
    Emin=-_MAX_ADJUSTED_EXPONENT,
    traps=[InvalidOperation, DivisionByZero, Overflow],
)
_TOKEN = re.compile(
    r"(?P<number>[0-9]+(?:\.[0-9]+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)"
    r"|(?P<text>'[^']*')"
    r"|(?P<symbol>[-+*/(),])"
)
_PROPERTY = re.compile(r"event\.properties\.([A-Za-z_][A-Za-z0-9_]*)")
_NUMERIC_TEXT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_MISSING = object()

Value = Decimal | str


class ExpressionError(Exception):
    """The expression is malformed, or cannot be evaluated on this event; ``position`` is a 0-based offset."""

    def __init__(self, message: str, *, position: int | None = None) -> None:
        self.position = position
        super().__init__(message if position is None else f"{message} at position {position}")


class _Event(NamedTuple):
    code: str
    timestamp: object
    properties: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class _Literal:
    value: Value


@dataclass(frozen=True, slots=True)
class _Field:
    name: str  # "code" or "timestamp"


@dataclass(frozen=True, slots=True)
class _Property:
    name: str


@dataclass(frozen=True, slots=True)
class _Negate:
    operand: _Node


@dataclass(frozen=True, slots=True)
class _Arithmetic:
    """A left-associative chain like ``a - b + c``, kept flat so long chains do not recurse."""

    first: _Node
    rest: tuple[tuple[str, _Node], ...]


@dataclass(frozen=True, slots=True)
class _Function:
    name: str
    min_arguments: int
    max_arguments: int | None
    arity: str
    apply: Callable[[tuple[_Node, ...], _Event], Value]


@dataclass(frozen=True, slots=True)
class _Call:
    function: _Function
    arguments: tuple[_Node, ...]


_Node = _Literal | _Field | _Property | _Negate | _Arithmetic | _Call
_OPERATORS: dict[str, Callable[[Decimal, Decimal], Decimal]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
}


def _evaluate(node: _Node, event: _Event) -> Value:
    match node:
        case _Literal(value):
            return value
        case _Field("code"):
            return event.code
        case _Field("timestamp"):
            return _from_json(event.timestamp, _label(node))
        case _Property(name):
            value = event.properties.get(name, _MISSING)
            if value is _MISSING:
                raise ExpressionError(f"{_label(node)} is missing")
            return _from_json(value, _label(node))
        case _Negate(operand):
            return -_number(operand, event)
        case _Arithmetic(first, rest):
            result = _number(first, event)
            for symbol, operand in rest:
                value = _number(operand, event)
                if symbol == "/" and value.is_zero():
                    culprit = _label(operand)
                    raise ExpressionError(f"division by zero: {culprit} is 0" if culprit else "division by zero")
                result = _OPERATORS[symbol](result, value)
            return result
        case _Call(function, arguments):
            return function.apply(arguments, event)
    raise TypeError(f"not an expression node: {node!r}")


def _label(node: _Node) -> str:
    """How an error message names a node that can hold text; other nodes are always numbers."""
    match node:
        case _Literal(str() as text):
            return f"'{text}'"
        case _Field(name):
            return f"event.{name}"
        case _Property(name):
            return f"event.properties.{name}"
        case _Call(function):
            return f"{function.name}(...)"
    return ""


def _property_names(node: _Node) -> frozenset[str]:
    match node:
        case _Property(name):
            return frozenset({name})
        case _Negate(operand):
            return _property_names(operand)
        case _Arithmetic(first, rest):
            return _property_names(first).union(*(_property_names(operand) for _, operand in rest))
        case _Call(_, arguments):
            return frozenset().union(*(_property_names(argument) for argument in arguments))
    return frozenset()


def _from_json(value: object, label: str) -> Value:
    """A property as the language sees it: strings stay strings, JSON numbers become Decimals."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise ExpressionError(f"{label} is a boolean, not a number or string")
    if isinstance(value, int):
        return _bounded(Decimal(value), label)
    if isinstance(value, float):
        # str() gives the shortest repr, so 0.1 is 0.1 and not the binary fraction's expansion.
        return _bounded(Decimal(str(value)), label)
    if isinstance(value, Decimal):
        return _bounded(value, label)
    if value is None:
        raise ExpressionError(f"{label} is null")
    raise ExpressionError(f"{label} is not a number or string")


def _bounded(number: Decimal, label: str) -> Decimal:
    if not number.is_finite():
        raise ExpressionError(f"{label} is not a finite number")
    if not number.is_zero() and number.adjusted() > _MAX_ADJUSTED_EXPONENT:
        raise ExpressionError(f"{label} is too large")
    return number


def _number(node: _Node, event: _Event) -> Decimal:
    """The node's value for arithmetic: a Decimal, or a string spelling a plain decimal number."""
    value = _evaluate(node, event)
    if isinstance(value, Decimal):
        return value
    text, label = value.strip(), _label(node) or "value"
    if not _NUMERIC_TEXT.fullmatch(text):
        raise ExpressionError(f"{label} is not a number: {value!r}")
    return _bounded(Decimal(text), label)


def _render(value: Value) -> str:
    """Text for concat: a number in positional notation with the digits it has, never ``1E+2``."""
    if isinstance(value, str):
        return value
    return format(_without_negative_zero(value), "f")


def _without_negative_zero(value: Value) -> Value:
    return value.copy_abs() if isinstance(value, Decimal) and value.is_zero() else value


def _rescale(value: Decimal, exponent: int, rounding: str) -> Decimal:
    """``value`` rounded to a multiple of 10**exponent; the context is sized so quantize cannot overflow."""
    digits = max(value.adjusted() - exponent + 2, 1)
    context = Context(prec=digits, rounding=rounding, Emax=MAX_EMAX, Emin=MIN_EMIN)
    return value.quantize(Decimal((0, (1,), exponent)), context=context)


def _concat(arguments: tuple[_Node, ...], event: _Event) -> Value:
    return "".join(_render(_evaluate(argument, event)) for argument in arguments)


def _round(arguments: tuple[_Node, ...], event: _Event) -> Value:
    value = _number(arguments[0], event)
    places = _places(arguments[1], event) if len(arguments) == 2 else 0
    # Python's ROUND_HALF_UP breaks ties away from zero, which is SQL ROUND's behaviour.
    rounded = _rescale(value, -places, ROUND_HALF_UP)
    # A negative precision leaves 12E+2; rescale (exactly) so whole results read as 1200.
    return _rescale(rounded, 0, ROUND_HALF_UP) if places < 0 else rounded


def _places(node: _Node, event: _Event) -> int:
    places = _number(node, event)
    if places != places.to_integral_value() or abs(places) > PRECISION:
        raise ExpressionError(
            f"round precision must be a whole number from -{PRECISION} to {PRECISION}, got {_render(places)}"
        )
    return int(places)


def _ceil(arguments: tuple[_Node, ...], event: _Event) -> Value:
    return _rescale(_number(arguments[0], event), 0, ROUND_CEILING)


def _floor(arguments: tuple[_Node, ...], event: _Event) -> Value:
    return _rescale(_number(arguments[0], event), 0, ROUND_FLOOR)


_FUNCTIONS = {
    function.name: function
    for function in (
        _Function("concat", 1, None, "at least 1 argument", _concat),
        _Function("round", 1, 2, "1 or 2 arguments", _round),
        _Function("ceil", 1, 1, "1 argument", _ceil),
        _Function("floor", 1, 1, "1 argument", _floor),
    )
}


class _Token(NamedTuple):
    kind: str  # number, name, text, symbol or end
    text: str
    position: int


def _tokenize(source: str) -> list[_Token]:
    tokens = []
    position = _skip_space(source, 0)
    while position < len(source):
        match = _TOKEN.match(source, position)
        if match is None:
            raise _bad_character(source, position)
        tokens.append(_Token(match.lastgroup or "", match.group(), position))
        position = _skip_space(source, match.end())
    tokens.append(_Token("end", "", len(source)))
    return tokens


def _skip_space(source: str, position: int) -> int:
    while position < len(source) and source[position].isspace():
        position += 1
    return position


def _bad_character(source: str, position: int) -> ExpressionError:
    character = source[position]
    if character == "'":
        return ExpressionError("unterminated string", position=position)
    if character == '"':
        return ExpressionError("strings take single quotes, not '\"'", position=position)
    return ExpressionError(f"unexpected character {character!r}", position=position)


class _Parser:
    """Recursive descent over the grammar in the module docstring, one method per rule."""

    def __init__(self, source: str) -> None:
        self._tokens = _tokenize(source)
        self._index = 0
        self._depth = 0

    def parse(self) -> _Node:
        node = self._sum()
        if self._peek().kind != "end":
            raise _unexpected(self._peek())
        return node

    def _sum(self) -> _Node:
        return self._chain(self._product, "+-")

    def _product(self) -> _Node:
        return self._chain(self._unary, "*/")

    def _chain(self, operand: Callable[[], _Node], symbols: str) -> _Node:
        first, rest = operand(), []
        while self._at(*symbols):
            rest.append((self._advance().text, operand()))
        return _Arithmetic(first, tuple(rest)) if rest else first

    def _unary(self) -> _Node:
        if not self._at("-"):
            return self._primary()
        self._enter(self._advance())
        node = _Negate(self._unary())
        self._depth -= 1
        return node

    def _primary(self) -> _Node:
        token = self._advance()
        if token.kind == "number":
            return _Literal(Decimal(token.text))
        if token.kind == "text":
            return _Literal(token.text[1:-1])
        if token.kind == "name":
            return self._call(token) if self._at("(") else _attribute(token)
        if token.kind == "symbol" and token.text == "(":
            self._enter(token)
            node = self._sum()
            self._expect(")")
            self._depth -= 1
            return node
        raise _unexpected(token)

    def _call(self, name: _Token) -> _Node:
        function = _FUNCTIONS.get(name.text.lower())
        if function is None:
            raise ExpressionError(f"unknown function '{name.text}'", position=name.position)
        self._enter(self._advance())
        arguments = []
        if not self._at(")"):
            arguments.append(self._sum())
            while self._at(","):
                self._advance()
                arguments.append(self._sum())
        self._expect(")")
        self._depth -= 1
        count = len(arguments)
        if count < function.min_arguments or (function.max_arguments is not None and count > function.max_arguments):
            raise ExpressionError(f"{function.name} takes {function.arity}, got {count}", position=name.position)
        return _Call(function, tuple(arguments))

    def _enter(self, token: _Token) -> None:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise ExpressionError(f"expression nests deeper than {MAX_DEPTH} levels", position=token.position)

    def _expect(self, symbol: str) -> None:
        token = self._advance()
        if token.kind != "symbol" or token.text != symbol:
            found = "end of expression" if token.kind == "end" else f"'{token.text}'"
            raise ExpressionError(f"expected '{symbol}' but found {found}", position=token.position)

    def _at(self, *symbols: str) -> bool:
        token = self._peek()
        return token.kind == "symbol" and token.text in symbols

    def _peek(self) -> _Token:
        return self._tokens[self._index]

    def _advance(self) -> _Token:
        token = self._tokens[self._index]
        if token.kind != "end":
            self._index += 1
        return token


def _unexpected(token: _Token) -> ExpressionError:
    if token.kind == "end":
        return ExpressionError("unexpected end of expression", position=token.position)
    return ExpressionError(f"unexpected '{token.text}'", position=token.position)


def _attribute(token: _Token) -> _Node:
    if token.text in ("event.code", "event.timestamp"):
        return _Field(token.text.removeprefix("event."))
    if match := _PROPERTY.fullmatch(token.text):
        return _Property(match.group(1))
    raise ExpressionError(
        f"unknown attribute '{token.text}' (expected event.code, event.timestamp or event.properties.<name>)",
        position=token.position,
    )


@dataclass(frozen=True, slots=True)
class Expression:
    """A parsed expression, checked once when built and evaluated on every usage event."""

    source: str
    _root: _Node = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.source, str):
            raise ExpressionError("expression must be a string")
        if not self.source.strip():
            raise ExpressionError("expression is empty")
        if len(self.source) > MAX_SOURCE_LENGTH:
            raise ExpressionError(f"expression is longer than {MAX_SOURCE_LENGTH} characters")
        object.__setattr__(self, "_root", _Parser(self.source).parse())

    def evaluate(self, *, code: str, timestamp: Decimal, properties: Mapping[str, object]) -> Decimal | str:
        """The expression's value on one event: a Decimal for arithmetic, a str for text."""
        try:
            with localcontext(_ARITHMETIC):
                result = _evaluate(self._root, _Event(code, timestamp, properties))
        except DecimalException as error:
            raise ExpressionError("arithmetic result is out of range") from error
        return _without_negative_zero(result)

    def property_names(self) -> frozenset[str]:
        """The event properties the expression reads, so ingest can tell which ones it needs."""
        return _property_names(self._root)


def compile_expression(source: str) -> Expression:
    """Parse ``source`` once; raises ExpressionError with a position if it is not a valid expression."""
    return Expression(source)
