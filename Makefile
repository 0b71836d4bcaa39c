# Two entry points (README): `make demo` runs the main job, `make test` runs the test suite.
# Both create .venv and install medcf into it on first use; torch is pinned by constraints.txt.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
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

clean:
	rm -rf $(VENV) demo-output
