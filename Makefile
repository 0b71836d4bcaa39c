# Two entry points (README): `make demo` runs the main job, `make test` runs the test suite.
# Both create .venv and install medcf into it on first use, every package at the version constraints.txt locks.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The one pin chosen by hand: the CPU wheel on these machines' disk (a looser pin pulls GBs of CUDA wheels).
TORCH := torch==2.13.0
LOCK_VENV := /tmp/medcf-lock-venv
LATEST_VENV := .venv-latest

.PHONY: demo test test-slow test-latest lint docs lock clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/medcf demo

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not gpu" -q

# Slow tests run in CI after the fast suite; pytest exits 5 when none are collected.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m "slow and not gpu" -q || test $$? -eq 5

lint: $(STAMP)
	$(BIN)/ruff check src tests

# The documentation site (mkdocs.yml, docs/) into site/; --strict: a broken link or docstring fails the build.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir site

# Rewrites constraints.txt (torch as $(TORCH): the local '+cpu' label would match no other machine's wheel) from a fresh venv: torch pinned, everything else the newest that pyproject.toml's
# ranges allow today. Run `make test-latest` first, then this, then `make test test-slow` before committing.
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet --upgrade pip
	$(LOCK_VENV)/bin/pip install --quiet "$(TORCH)" -e ".[dev]"
	{ echo "# The lock: every package of a fresh 'pip install -e .[dev]' with $(TORCH), written by 'make lock'"; \
	  echo "# on $$(date -u +%F) under $$($(LOCK_VENV)/bin/python --version). Edit pyproject.toml, not this file."; \
	  echo "$(TORCH)"; \
	  $(LOCK_VENV)/bin/pip freeze --all --exclude-editable | grep -v '^torch==' | LC_ALL=C sort -f; } > constraints.txt
	rm -rf $(LOCK_VENV)

# Drift watch, not CI: the fast suite in a separate venv with the newest versions pyproject.toml allows.
test-latest:
	rm -rf $(LATEST_VENV)
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/pip install --quiet --upgrade pip
	$(LATEST_VENV)/bin/pip install --quiet "$(TORCH)" -e ".[dev]"
	$(LATEST_VENV)/bin/pip freeze --all --exclude-editable | grep -v '^torch==' | LC_ALL=C sort -f > $(LATEST_VENV)/freeze.txt
	@echo "newest allowed versions against the lock (< locked, > newest):"
	grep -v -e '^#' -e '^torch==' constraints.txt | diff - $(LATEST_VENV)/freeze.txt || true
	$(LATEST_VENV)/bin/python -m pytest -m "not slow and not gpu and not locked" -q -p no:cacheprovider

clean:
	rm -rf $(VENV) $(LATEST_VENV) demo-output site
