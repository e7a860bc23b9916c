"""The layers point down (ADR 0031): the import-linter contracts in pyproject.toml hold, and they fail on a
bad import (shown with a module written for the purpose)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _lint(cwd: Path, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                           "lint_imports_command()", "--no-cache", "--config", str(config)],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


def test_every_layer_contract_is_kept() -> None:
    """domain imports nothing above it and no library but eventsourcing; projections and application only the
    domain; the scheduler not the interfaces; no package has an import cycle."""
    result = _lint(ROOT, ROOT / "pyproject.toml")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 kept, 0 broken" in result.stdout


def test_a_domain_module_importing_a_projection_breaks_the_contract(tmp_path: Path) -> None:
    """The check is live: the same contracts over a copy of the tree with one bad import fail."""
    for package in ("domain", "application", "projections", "interfaces", "scheduler"):
        subprocess.run(["cp", "-r", str(ROOT / package), str(tmp_path / package)], check=True)
    (tmp_path / "domain" / "bad_import.py").write_text("from projections.usage import UsageView\n")

    result = _lint(tmp_path, ROOT / "pyproject.toml")

    assert result.returncode != 0
    assert "domain imports none of the other layers BROKEN" in result.stdout
    assert "domain.bad_import -> projections.usage" in result.stdout
