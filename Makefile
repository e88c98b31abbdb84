# Quick start: `make demo` then `make test`. Both create .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-postgres bench reliability clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# compat: an editable install through a .pth path entry; the default import hook costs every command ~40 ms
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]' --config-settings editable_mode=compat
	# bytecode now: where PYTHONDONTWRITEBYTECODE is set, an editable install would compile every module at every start
	$(BIN)/python -m compileall -q qualcode
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/qualcode code --project .

test: $(STAMP)
	$(BIN)/ruff check qualcode tests benchmarks scripts
	$(BIN)/mypy qualcode
	$(BIN)/python -m pytest

# The whole suite with a throw-away PostgreSQL cluster (needs Debian's postgresql package), as CI runs it.
test-postgres: $(STAMP)
	QUALCODE_REQUIRE_POSTGRES=1 pg_virtualenv $(MAKE) test

bench: $(STAMP)
	$(BIN)/python benchmarks/throughput.py
	$(BIN)/python benchmarks/review_latency.py
	$(BIN)/python benchmarks/quality.py

reliability: $(STAMP)
	$(BIN)/python benchmarks/reliability.py

clean:
	rm -rf $(VENV) .qualcode .pytest_cache
