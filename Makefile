# The README's commands: `make demo` runs the main job, `make test` the fast tests before a
# commit, `make test-e2e` the end-to-end proofs.
# Each creates the virtual environment when it is missing and installs the project into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# After a pytest command: its exit code, except that 5 (no test collected) is not a failure.
NO_TESTS_OK = rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$rc

.PHONY: demo test test-e2e test-portable lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/jetx run --source data/sample.csv --out runs/demo

# The fast tier: lint, then every unit of behaviour (`-m "not e2e"`), in at most 10 minutes on 2
# cores. Two workers, one per core; tests/conftest.py gives each its share of the TensorFlow and
# BLAS threads. Why 2 and not 1: most of a test's wall time is its children starting, importing
# TensorFlow and being waited on, so one worker leaves a core idle. Measured on this shared 2-core
# machine (2026-12-03): -n 2 ran the fast tier in 4 min 46 s (6 min 9 s of user CPU, 1.3 cores
# busy), -n 1 in 9 min 45 s (6 min 34 s of user CPU, 0.7 cores busy; another suite ran beside it).
# A module stays on one worker (--dist loadfile), so its module fixtures are built once;
# tests/conftest.py's session fixtures are built once per worker.
test: $(STAMP)
	$(BIN)/ruff check jetx tasks flows tests bench
	$(BIN)/ruff format --check jetx tasks flows tests bench
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not e2e"; $(NO_TESTS_OK)

# The end-to-end proofs (`-m e2e`): flows killed at 10 moments, the cluster automation, the
# deployment in a browser, the planted-validity and walk-forward runs, the first run on a fresh
# PREFECT_HOME, the OOM-killed child, the GPU check's CPU path, the distributed runs. CI runs it
# after `make test`.
test-e2e: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m e2e; $(NO_TESTS_OK)

# The key paths again on the two kinds of CPU: oneDNN off (most laptops, AMD and older Intel
# machines: TensorFlow's CPU allocator keeps no statistics there) and oneDNN on.
test-portable: $(STAMP)
	TF_ENABLE_ONEDNN_OPTS=0 $(BIN)/python -m pytest -q -m portable; $(NO_TESTS_OK)
	TF_ENABLE_ONEDNN_OPTS=1 $(BIN)/python -m pytest -q -m portable; $(NO_TESTS_OK)

lint: $(STAMP)
	$(BIN)/ruff check --fix jetx tasks flows tests bench
	$(BIN)/ruff format jetx tasks flows tests bench

clean:
	rm -rf $(VENV) runs
