# The two commands of the README. Each does all of its own set-up on a fresh
# machine with Python 3.11+ and make: a virtualenv in .venv, the project and
# its test tools installed into it, then the job.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test lint bench clean tmux chromium frameworks-doc

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "agent-replay needs Python 3.11+")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

# The test suite also runs real agent frameworks (the `frameworks` extra, pinned),
# the optional extras (s3, otel) and the servers it starts (the `services` extra).
$(TEST_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install -q -e '.[dev,frameworks,s3,otel,services]'
	touch $(TEST_STAMP)

DEMO_DIR := .demo

demo: $(STAMP)
	$(BIN)/replay demo --dir $(DEMO_DIR)

lint: $(TEST_STAMP)
	$(BIN)/ruff check replay tui tests fixtures bench
	$(BIN)/mypy

# The TUI smoke test (tests/test_tui_tmux.py) drives `replay tui` in a real
# terminal under tmux: install tmux when it is missing and we can (apt-get as
# root or with passwordless sudo, or Homebrew); the test is skipped otherwise.
tmux:
	@command -v tmux >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1; then \
	    if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; \
	    $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq tmux >/dev/null; \
	  elif command -v brew >/dev/null 2>&1; then brew install tmux; fi; } || true
	@command -v tmux >/dev/null 2>&1 || echo "note: no tmux; the TUI smoke test will be skipped"

# The HTML report tests (tests/test_report.py) load the report in Debian's headless
# chromium: install it when missing and we can (apt-get as root or with passwordless
# sudo); the tests are skipped otherwise. No browser is downloaded at test time.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1; then \
	    if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	  fi; } || true
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || echo "note: no chromium; the HTML report browser tests will be skipped"

test: lint tmux chromium
	$(BIN)/pytest -n 2 -q

# Re-run the framework conformance suite and rewrite docs/frameworks.md's matrix.
frameworks-doc: $(TEST_STAMP)
	rm -rf build/frameworks
	FRAMEWORKS_REPORT=build/frameworks $(BIN)/pytest -n 2 -q tests/test_frameworks.py || true
	$(BIN)/python tests/frameworks_matrix.py build/frameworks

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) build *.egg-info
