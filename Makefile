# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create their own virtual environment in .venv.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench bench-scaling clean testdata

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python testdata/demo.py

test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest

# The bench installs the hook as deployed in bench/.venv-deployed (rebuilt when the source
# changes) and times that; see bench/README.md. BENCH_ARGS="--repeats 101", say.
bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

bench-scaling: $(STAMP)
	$(BIN)/python bench/run.py --scaling $(BENCH_ARGS)

testdata: $(STAMP)
	$(BIN)/python testdata/generate.py

clean:
	rm -rf $(VENV) bench/.venv-deployed bench/.venv-deployed.lock .mypy_cache .pytest_cache .ruff_cache
