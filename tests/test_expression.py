"""Billable metric expressions: parsing, Decimal evaluation and the errors a metric author sees."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.expression import Expression, ExpressionError, compile_expression

_bounded_decimals = st.decimals(
    min_value=Decimal("-1000000000000"),
    max_value=Decimal("1000000000000"),
    places=6,
    allow_nan=False,
    allow_infinity=False,
)


def _evaluate(
    source: str, properties: Mapping[str, object] | None = None, *, code: str = "api_call", timestamp: Decimal = Decimal(0)
) -> Decimal | str:
    return compile_expression(source).evaluate(code=code, timestamp=timestamp, properties=properties or {})


def test_concat_joins_properties_and_literals_as_text() -> None:
    """Lago's CONCAT example builds one string from a string id, a literal and a numeric id."""
    properties = {"user_id": "user_7", "app_id": 42}

    value = _evaluate("CONCAT(event.properties.user_id, '-', event.properties.app_id)", properties)

    assert value == "user_7-42"


def test_compute_cost_combines_products_and_sums_exactly() -> None:
    """Lago's compute example mixes integers and a tiny decimal without losing a digit."""
    properties = {"cpu_number": 2, "duration_msec": 1500, "memory_mb": 512}
    source = (
        "(event.properties.cpu_number * 25 * event.properties.duration_msec)"
        " + (event.properties.memory_mb * 0.000001 * event.properties.duration_msec)"
    )

    value = _evaluate(source, properties)

    assert value == Decimal("75000.768")


def test_round_without_precision_rounds_to_a_whole_number() -> None:
    """ROUND(x) drops the fraction, breaking the tie 1234.5 upwards."""
    properties = {"duration_msec": Decimal("1.2345")}

    value = _evaluate("ROUND(event.properties.duration_msec * 1000)", properties)

    assert value == Decimal("1235")
    assert str(value) == "1235"


def test_round_with_precision_keeps_that_many_decimals() -> None:
    """round(a / 3, 2) cuts the 38-digit quotient to cents, as SQL's ROUND does."""
    properties = {"a": 10}

    value = _evaluate("round(event.properties.a / 3, 2)", properties)

    assert str(value) == "3.33"


def test_duration_in_replica_hours_divides_exactly() -> None:
    """Lago's duration example turns epoch seconds and replicas into hours."""
    properties = {"started_at": 1700000000, "ended_at": 1700001800, "replicas": 3}

    value = _evaluate("(event.properties.ended_at - event.properties.started_at) * event.properties.replicas / 3600", properties)

    assert value == Decimal("1.5")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 + 2 * 3", "7"),
        ("(1 + 2) * 3", "9"),
        ("10 - 4 - 3", "3"),
        ("12 / 4 / 3", "1"),
        ("2 * 3 / 4", "1.5"),
        ("1 + 2 * 3 - 4 / 2", "5"),
        ("((((7))))", "7"),
    ],
)
def test_multiplication_binds_tighter_and_operators_associate_left(source: str, expected: str) -> None:
    """Usual precedence: * and / before + and -, equal operators left to right, parentheses first."""
    value = _evaluate(source)

    assert value == Decimal(expected)


@pytest.mark.parametrize(
    ("source", "expected"),
    [("-2 * 3", "-6"), ("2 - -3", "5"), ("-(1 + 2)", "-3"), ("--4", "4"), ("2 * -event.properties.a", "-10")],
)
def test_unary_minus_negates_its_operand(source: str, expected: str) -> None:
    """A leading minus negates a number, a parenthesis or a property, and may repeat."""
    value = _evaluate(source, {"a": 5})

    assert value == Decimal(expected)


@pytest.mark.parametrize("source", ["round(2.5)", "ROUND(2.5)", "Round(2.5)", "rOuNd(2.5)"])
def test_function_names_ignore_case(source: str) -> None:
    """ROUND, round and Round are the same function."""
    value = _evaluate(source)

    assert value == Decimal(3)


def test_decimal_sums_are_exact() -> None:
    """0.1 + 0.2 is 0.3 exactly, even when the operands arrive as JSON floats."""
    properties = {"a": 0.1, "b": 0.2}

    value = _evaluate("event.properties.a + event.properties.b", properties)

    assert value == Decimal("0.3")
    assert str(value) == "0.3"


def test_numeric_strings_take_part_in_arithmetic() -> None:
    """A property sent as " 12.5 " is a number once surrounding blanks are stripped."""
    properties = {"a": " 12.5 ", "b": "-2"}

    value = _evaluate("event.properties.a * event.properties.b", properties)

    assert value == Decimal("-25")


def test_a_property_alone_keeps_its_type() -> None:
    """A string property is returned verbatim, leading zeros included; a number becomes a Decimal."""
    properties = {"zip": "007", "count": 3}

    as_text, as_number = _evaluate("event.properties.zip", properties), _evaluate("event.properties.count", properties)

    assert as_text == "007"
    assert as_number == Decimal(3) and isinstance(as_number, Decimal)


def test_event_code_and_timestamp_are_readable() -> None:
    """event.code is text and event.timestamp the event time in epoch seconds."""
    source = "concat(event.code, '@', event.timestamp + 60)"

    value = _evaluate(source, code="storage", timestamp=Decimal("1700000000.5"))

    assert value == "storage@1700000060.5"


def test_division_is_exact_to_38_digits() -> None:
    """1 / 3 carries 38 significant digits; an exact quotient keeps only the digits it needs."""
    thirds, quarters = _evaluate("1 / 3"), _evaluate("10 / 4")

    assert thirds == Decimal("0." + "3" * 38)
    assert str(quarters) == "2.5"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("round(2.5)", "3"),
        ("round(-2.5)", "-3"),
        ("round(1.005, 2)", "1.01"),
        ("round(-1.005, 2)", "-1.01"),
        ("round(1.5, 2)", "1.50"),
        ("round(1234.5, -2)", "1200"),
        ("round(0.4)", "0"),
        ("round(-0.4)", "0"),
    ],
)
def test_round_breaks_ties_away_from_zero(source: str, expected: str) -> None:
    """Halves round away from zero at any precision, like SQL ROUND on numerics."""
    value = _evaluate(source)

    assert str(value) == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [("ceil(1.2)", "2"), ("ceil(-1.5)", "-1"), ("floor(1.8)", "1"), ("floor(-1.5)", "-2"), ("ceil(4)", "4")],
)
def test_ceil_and_floor_return_whole_numbers(source: str, expected: str) -> None:
    """ceil goes towards +infinity, floor towards -infinity, and both drop the fraction."""
    value = _evaluate(source)

    assert str(value) == expected


def test_concat_renders_numbers_without_an_exponent() -> None:
    """Tiny and huge floats print in positional notation, and given decimals keep their zeros."""
    properties = {"tiny": 1e-07, "huge": 1e22}

    value = _evaluate("concat(event.properties.tiny, ' ', event.properties.huge, ' ', 1.50, ' ', 0 * -1)", properties)

    assert value == "0.0000001 10000000000000000000000 1.50 0"


def test_property_names_lists_each_property_read_once() -> None:
    """The names a metric needs from an event, whatever the nesting, and never event.code."""
    expression = compile_expression("concat(event.code, round(event.properties.a / -event.properties.b), event.properties.a)")

    names = expression.property_names()

    assert names == frozenset({"a", "b"})
    assert compile_expression("event.timestamp * 2").property_names() == frozenset()


def test_a_compiled_expression_is_immutable_and_reusable() -> None:
    """Compile once, evaluate on many events; two compilations of one source are equal."""
    expression = compile_expression("event.properties.a * 2")

    values = [expression.evaluate(code="c", timestamp=Decimal(0), properties={"a": a}) for a in (1, 2, 3)]

    assert values == [Decimal(2), Decimal(4), Decimal(6)]
    assert expression == compile_expression("event.properties.a * 2")
    with pytest.raises(dataclasses.FrozenInstanceError):
        expression.source = "1"  # type: ignore[misc]


def test_nesting_up_to_the_limit_is_accepted() -> None:
    """Fifty levels of parentheses are fine; the limit only stops abuse."""
    source = "(" * 50 + "1" + ")" * 50

    value = _evaluate(source)

    assert value == Decimal(1)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("", "expression is empty"),
        ("   \n", "expression is empty"),
        ("1 +", "unexpected end of expression at position 3"),
        ("(1 + 2", "expected ')' but found end of expression at position 6"),
        ("1 2", "unexpected '2' at position 2"),
        ("1 + * 2", "unexpected '*' at position 4"),
        ("+1", "unexpected '+' at position 0"),
        ("1e5", "unexpected 'e5' at position 1"),
        ("2 % 3", "unexpected character '%' at position 2"),
        ('concat("a")', "strings take single quotes"),
        ("concat('abc)", "unterminated string at position 7"),
        ("sqrt(4)", "unknown function 'sqrt' at position 0"),
        ("round()", "round takes 1 or 2 arguments, got 0 at position 0"),
        ("round(1, 2, 3)", "round takes 1 or 2 arguments, got 3"),
        ("ceil(1, 2)", "ceil takes 1 argument, got 2"),
        ("concat()", "concat takes at least 1 argument, got 0"),
        ("round(1,)", "unexpected ')' at position 8"),
        ("event.name", "unknown attribute 'event.name'"),
        ("user_id", "unknown attribute 'user_id'"),
        ("event.properties", "unknown attribute 'event.properties'"),
        ("event.properties.a.b", "unknown attribute 'event.properties.a.b'"),
        ("Event.Code", "unknown attribute 'Event.Code'"),
        ("1" * 1001, "longer than 1000 characters"),
        ("(" * 51 + "1" + ")" * 51, "deeper than 50 levels at position 50"),
        ("-" * 51 + "1", "deeper than 50 levels"),
        ("round(" * 51 + "1" + ")" * 51, "deeper than 50 levels"),
    ],
)
def test_malformed_expressions_are_refused_when_compiled(source: str, message: str) -> None:
    """Syntax, unknown names, arity and abuse are caught once, with where it went wrong."""
    with pytest.raises(ExpressionError) as refused:
        compile_expression(source)

    assert message in str(refused.value)


def test_syntax_errors_carry_their_position() -> None:
    """The offset is available to callers that underline the culprit."""
    with pytest.raises(ExpressionError) as refused:
        compile_expression("1 + (2 * )")

    assert refused.value.position == 9


@pytest.mark.parametrize(
    ("source", "properties", "message"),
    [
        ("event.properties.a + 1", {}, "event.properties.a is missing"),
        ("event.properties.a + 1", {"a": "abc"}, "event.properties.a is not a number: 'abc'"),
        ("event.properties.a + 1", {"a": "1e5"}, "event.properties.a is not a number: '1e5'"),
        ("event.properties.a + 1", {"a": "1,5"}, "event.properties.a is not a number"),
        ("event.properties.a + 1", {"a": True}, "event.properties.a is a boolean"),
        ("event.properties.a", {"a": None}, "event.properties.a is null"),
        ("event.properties.a", {"a": [1]}, "event.properties.a is not a number or string"),
        ("event.properties.a * 2", {"a": float("nan")}, "event.properties.a is not a finite number"),
        ("1 / event.properties.a", {"a": 0}, "division by zero: event.properties.a is 0"),
        ("1 / (2 - 2)", {}, "division by zero"),
        ("'a' * 2", {}, "'a' is not a number: 'a'"),
        ("ceil(concat('x', 1))", {}, "concat(...) is not a number: 'x1'"),
        ("round(1, 2.5)", {}, "round precision must be a whole number"),
        ("round(1, 39)", {}, "round precision must be a whole number from -38 to 38"),
        ("event.properties.a * event.properties.a", {"a": Decimal("1E+600")}, "out of range"),
        ("event.properties.a", {"a": Decimal("1E+1000")}, "event.properties.a is too large"),
    ],
)
def test_unusable_event_values_are_refused_when_evaluated(
    source: str, properties: Mapping[str, object], message: str
) -> None:
    """Missing, non-numeric, boolean and zero divisors fail the evaluation with a message naming them."""
    expression = compile_expression(source)

    with pytest.raises(ExpressionError) as refused:
        expression.evaluate(code="c", timestamp=Decimal(0), properties=properties)

    assert message in str(refused.value)


@given(a=_bounded_decimals, b=_bounded_decimals)
def test_sums_of_bounded_decimals_are_exact(a: Decimal, b: Decimal) -> None:
    """Adding two properties is exact, whether they arrive as Decimals or as decimal strings."""
    expression = compile_expression("event.properties.a + event.properties.b")

    from_decimals = expression.evaluate(code="c", timestamp=Decimal(0), properties={"a": a, "b": b})
    from_strings = expression.evaluate(code="c", timestamp=Decimal(0), properties={"a": f"{a:f}", "b": f"{b:f}"})

    assert from_decimals == from_strings == a + b


@given(x=st.decimals(min_value=-10**9, max_value=10**9, places=9, allow_nan=False, allow_infinity=False))
def test_round_to_two_places_stays_within_half_a_cent(x: Decimal) -> None:
    """round(x, 2) has two decimals, moves x by at most 0.005 and is symmetric around zero."""
    expression = compile_expression("round(event.properties.x, 2)")

    rounded = expression.evaluate(code="c", timestamp=Decimal(0), properties={"x": x})
    mirrored = expression.evaluate(code="c", timestamp=Decimal(0), properties={"x": -x})

    assert isinstance(rounded, Decimal) and rounded.as_tuple().exponent == -2
    assert abs(rounded - x) <= Decimal("0.005")
    assert mirrored == -rounded


@given(x=_bounded_decimals)
def test_floor_and_ceil_bracket_their_argument(x: Decimal) -> None:
    """floor(x) <= x <= ceil(x), both are whole numbers and at most one apart."""
    properties = {"x": x}

    low, high = _evaluate("floor(event.properties.x)", properties), _evaluate("ceil(event.properties.x)", properties)

    assert isinstance(low, Decimal) and isinstance(high, Decimal)
    assert low <= x <= high
    assert low == low.to_integral_value() and high == high.to_integral_value()
    assert high - low <= 1


@given(x=st.decimals(allow_nan=False, allow_infinity=False, min_value=-10**30, max_value=10**30))
def test_concat_renders_a_number_that_reads_back_unchanged(x: Decimal) -> None:
    """A number concatenated as text is positional, never scientific, and parses to the same value."""
    text = _evaluate("concat(event.properties.x)", {"x": x})

    assert isinstance(text, str) and "E" not in text.upper()
    assert Decimal(text) == x


@given(
    source=st.lists(st.sampled_from([*"0123456789.-+*/(), 'E_", "event.properties.a", "round", "concat", "floor"])).map("".join),
    a=st.one_of(st.integers(), st.floats(), st.decimals(), st.text(max_size=5), st.booleans(), st.none()),
)
def test_any_text_either_evaluates_or_raises_expression_error(source: str, a: object) -> None:
    """Whatever a metric author types and whatever an event carries, the only failure is ExpressionError."""
    try:
        value = _evaluate(source, {"a": a})
    except ExpressionError:
        return

    assert isinstance(value, (Decimal, str))


def test_expression_is_the_compiled_type() -> None:
    """compile_expression hands back an Expression that remembers its source."""
    expression = compile_expression("1")

    assert isinstance(expression, Expression)
    assert expression.source == "1"
