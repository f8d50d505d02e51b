# The two commands of the README. Each does all of its own set-up on a fresh
# machine with Python 3.11+ and make: a virtualenv in .venv, the project and
# its test tools installed into it, then the job.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "agent-replay needs Python 3.11+")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

DEMO_DIR := .demo

demo: $(STAMP)
	$(BIN)/replay demo --dir $(DEMO_DIR)

lint: $(STAMP)
	$(BIN)/ruff check replay tui tests fixtures bench
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -n 2 -q

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) build *.egg-info
