# `make run` and `make test` work on a fresh machine with only Python 3.11+: they build .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
PLUGINS := plugins/samcart_triggers plugins/circle plugins/webhook web
PLUGIN_CFGS := $(addsuffix /setup.cfg,$(PLUGINS))

.PHONY: run test lint screenshots openapi bench bench-quick clean

run: $(STAMP)
	$(BIN)/hookyard run

# tests.needs brings what the suite needs beyond Python (Chromium, as root on Debian) or stops with one message.
test: $(TEST_STAMP)
	@$(BIN)/python -m tests.needs $(PYTEST_ARGS)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# ruff (ruff.toml): lint, and the formatting every file is kept in (`.venv/bin/ruff format .` applies it).
lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The browser tests, writing their page screenshots into the docs.
screenshots: $(TEST_STAMP)
	HOOKYARD_SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(BIN)/python -m pytest tests/web $(PYTEST_ARGS)

openapi: $(STAMP)
	$(BIN)/hookyard openapi write openapi.json

# The benchmark suite (bench/README.md): tables on stdout, figures in bench/results/. Needs wrk and Node-RED (npm),
# each skipped with one line when missing. `make bench` about 15 minutes on 2 cores today, `make bench-quick` under 3.
bench: $(TEST_STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

bench-quick: $(TEST_STAMP)
	$(BIN)/python bench/run.py --quick $(BENCH_ARGS)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit("Hookyard needs Python 3.11 or newer" if sys.version_info < (3, 11) else 0)'
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { echo "Python's venv module is missing (Debian: apt-get install python3-venv)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip setuptools wheel

# Core and plugins are installed editable, each as its own distribution, exactly as a third party's would be.
$(STAMP): $(BIN)/python setup.cfg $(PLUGIN_CFGS)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[embedded,postgres]' $(addprefix -e ,$(PLUGINS))
	touch $@

$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) build platform/*.egg-info plugins/*/*.egg-info
