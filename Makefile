# georeg: the two commands of the quick start are `make serve` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
# The pycsw test server runs in a virtualenv of its own (pycsw 2.6 pins SQLAlchemy<2 and OWSLib<0.29).
PYCSW_VENV := .venv-pycsw

.PHONY: serve test bench install install-test install-pycsw install-browser lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

$(PYCSW_VENV)/.installed: tests/pycsw-requirements.txt | $(BIN)/python
	$(BIN)/python tests/pycsw_venv.py $(PYCSW_VENV)

install-pycsw: $(PYCSW_VENV)/.installed

# The browser tests drive Debian's Chromium through Playwright (Playwright's own browser download cannot work
# here). A file target: nothing runs once /usr/bin/chromium exists; sudo only when not already root.
CHROMIUM := /usr/bin/chromium
SUDO     := $(if $(filter 0,$(shell id -u)),,sudo)

$(CHROMIUM):
	$(SUDO) apt-get update
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium

## make install-browser: Debian's Chromium for the browser tests (apt-get, only when /usr/bin/chromium is missing)
install-browser: $(CHROMIUM)

## make serve: Prefect server (SQLite) + worker + API on http://127.0.0.1:8000 (Ctrl-C stops all)
serve: install
	$(BIN)/georeg serve

## make test: the whole suite (SQLite, and PostgreSQL when 127.0.0.1:5432 answers), in TEST_WORKERS processes
## (each with its own Prefect harness; a test file stays in one process; files in tests/conftest.py's order, slowest
## first). TEST_WORKERS=0: one process.
TEST_WORKERS ?= 3
test: install-test install-pycsw install-browser
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

## make bench: benchmarks, printing ratios against references measured in the same run
bench: install-test install-pycsw
	$(BIN)/python -m bench

## make lint: ruff (style, bugs, annotations) and import-linter (layers)
lint: install-test
	$(BIN)/ruff check .
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) $(PYCSW_VENV) $(PYCSW_VENV).lock build *.egg-info .pytest_cache
