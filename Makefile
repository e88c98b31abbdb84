# Quick start: `make demo` then `make test`. Both create .venv on first use; `demo` installs what running qualcode
# needs, `test` adds the test tools and the extras the tests exercise (PostgreSQL driver, Dask, pyarrow, linters).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
BASE := $(VENV)/.installed-base
FULL := $(VENV)/.installed-test
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check

.PHONY: demo test test-postgres bench reliability clean

$(BASE): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# compat: an editable install through a .pth path entry; the default import hook costs every command ~40 ms
	$(PIP) -e . --config-settings editable_mode=compat
	# bytecode now: where PYTHONDONTWRITEBYTECODE is set, an editable install would compile every module at every start
	$(BIN)/python -m compileall -q qualcode
	touch $(BASE)

$(FULL): $(BASE) pyproject.toml
	$(PIP) -e '.[test]' --config-settings editable_mode=compat
	touch $(FULL)

demo: $(BASE)
	$(BIN)/qualcode code --project .

test: $(FULL)
	$(BIN)/ruff check qualcode tests benchmarks scripts
	$(BIN)/mypy qualcode
	$(BIN)/python -m pytest

# The whole suite with a throw-away PostgreSQL cluster (needs Debian's postgresql package), as CI runs it.
test-postgres: $(FULL)
	QUALCODE_REQUIRE_POSTGRES=1 pg_virtualenv -t $(MAKE) test

bench: $(FULL)
	$(BIN)/python benchmarks/throughput.py
	$(BIN)/python benchmarks/review_latency.py
	$(BIN)/python benchmarks/quality.py

reliability: $(FULL)
	$(BIN)/python benchmarks/reliability.py

clean:
	rm -rf $(VENV) .qualcode .pytest_cache
