"""No SQL is built from values (issue 10, ADR 0028): values go in as parameters, identifiers through
``sql.Identifier`` from fixed sets. This reads the source, so a new statement that breaks the rule fails here."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("domain", "projections", "interfaces", "scheduler")
SQL = re.compile(r"\bSELECT\b|INSERT INTO|\bUPDATE \w+ SET\b|DELETE FROM|CREATE (TABLE|INDEX|UNIQUE|OR)|DROP |\bWHERE\b")

# Interpolations into SQL text that are code constants (a table name of a class, a fixed fragment).
CONSTANT_FRAGMENTS = {
    "projections/documents.py": {"cls.table", "extra"},
    "projections/subscriptions.py": {"live"},
    "projections/runner.py": {"columns", "_FAILURE_COLUMNS"},
    "projections/usage.py": {"CONTEXT_COLUMNS"},
    "projections/usage_reader.py": {"CONTEXT_COLUMNS"},
}
# ``sql.Literal`` renders a value into a statement's text: only code constants (view names) may use it.
LITERAL_ALLOWED = {"projections/freshness.py"}


def _sources() -> list[tuple[str, ast.Module]]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            found.append((relative, ast.parse(path.read_text(), relative)))
    return found


def _is_sql(text: str) -> bool:
    return SQL.search(text) is not None


def test_sql_text_interpolates_only_code_constants() -> None:
    """An f-string or %-format that builds SQL names only fragments that are constants of the code."""
    offenders = []
    for relative, tree in _sources():
        allowed = CONSTANT_FRAGMENTS.get(relative, set())
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):
                text = "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
                if not _is_sql(text):
                    continue
                for value in node.values:
                    if isinstance(value, ast.FormattedValue) and ast.unparse(value.value) not in allowed:
                        offenders.append(f"{relative}:{node.lineno} interpolates {ast.unparse(value.value)}")
            elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
                if isinstance(node.left, ast.Constant) and isinstance(node.left.value, str) and _is_sql(node.left.value):
                    offenders.append(f"{relative}:{node.lineno} formats SQL with %")
    assert offenders == []


def test_sql_literal_renders_no_values() -> None:
    """``sql.Literal`` puts a value into the statement text, where a ``%`` becomes a placeholder."""
    offenders = [
        f"{relative}:{node.lineno}"
        for relative, tree in _sources()
        if relative not in LITERAL_ALLOWED
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr == "Literal" and ast.unparse(node.value) == "sql"
    ]
    assert offenders == []
