# kpi-collector: `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint format docs bench screenshots clean mutate coverage

$(STAMP): pyproject.toml tests/plugin/pyproject.toml tests/plugin/kpi_plugin_example/__init__.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[all,dev]'
	$(BIN)/pip install --quiet ./tests/plugin  # not editable: no import hook on every start
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/kpi demo --dir kpi-demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

docs: $(STAMP)  # the connector sections of README.md and docs/, from each connector's README.md
	$(BIN)/python scripts/build_docs.py

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

mutate: $(STAMP)  # mutation scores of the pure core -> benchmarks/MUTATION.md (slow: not in `make test`)
	$(BIN)/python scripts/mutate.py

JOBS ?= 3
coverage: $(STAMP)  # line and branch coverage of the suite, `kpi` subprocesses included, in JOBS shards side by side -> htmlcov/
	$(BIN)/python scripts/coverage_shards.py --jobs $(JOBS) $(TESTS)

screenshots: $(STAMP)
	$(BIN)/python scripts/screenshots.py

clean:
	rm -rf $(VENV) kpi-demo .pytest_cache .mypy_cache .ruff_cache build/mutate build/coverage htmlcov .coverage .coverage.*
