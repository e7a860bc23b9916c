"""A short fuzz of the OpenAPI contract against a fresh Tally (the budget of `make fuzz` is larger)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import fuzz

pytestmark = pytest.mark.slow


def test_no_fuzzed_request_breaks_the_contract(postgres_server: str, tmp_path: Path) -> None:
    """No 5xx, and every status, content type and body as the served document says."""
    outcome = fuzz.run(max_examples=5, phases="examples,coverage,fuzzing", seed=27, logs=tmp_path / "fuzz",
                       server=postgres_server)
    print(outcome.summary())

    assert outcome.requests > 1000, outcome.summary()
    assert not outcome.failed, outcome.summary() + "\n" + (tmp_path / "fuzz" / "schemathesis.log").read_text()[-20000:]
