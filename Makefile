# The two commands: `make run` and `make test` (also `make bench`, `make fuzz`). Only Python 3.11+ is needed.
SHELL := /bin/bash
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test bench fuzz clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "make: Python 3.11 or newer is required" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

run: install
	$(BIN)/tally up

test: install
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .fuzz *.egg-info

fuzz: install
	$(BIN)/python -m tests.fuzz

bench: install
	$(BIN)/python -m tests.benchmarks.ingest
	$(BIN)/python -m tests.benchmarks.close
