# The README's two commands: `make demo` runs the main job, `make test` runs the test suite.
# Each creates the virtual environment when it is missing and installs the project into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-portable lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/jetx run --source data/sample.csv --out runs/demo

test: $(STAMP)
	$(BIN)/ruff check jetx tasks flows tests bench
	$(BIN)/ruff format --check jetx tasks flows tests bench
	$(BIN)/python -m pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 0; fi; exit $$rc

# The key paths again on the two kinds of CPU: oneDNN off (most laptops, AMD and older Intel
# machines: TensorFlow's CPU allocator keeps no statistics there) and oneDNN on.
test-portable: $(STAMP)
	TF_ENABLE_ONEDNN_OPTS=0 $(BIN)/python -m pytest -q -m portable
	TF_ENABLE_ONEDNN_OPTS=1 $(BIN)/python -m pytest -q -m portable

lint: $(STAMP)
	$(BIN)/ruff check --fix jetx tasks flows tests bench
	$(BIN)/ruff format jetx tasks flows tests bench

clean:
	rm -rf $(VENV) runs
