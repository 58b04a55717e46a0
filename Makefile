# Set-up and checks. `make demo` and `make test` each build the virtual environment on first use.
# TORCH names the torch wheel to install first: the default CPU build keeps pip from pulling a
# multi-GB CUDA build. On a GPU machine: make TORCH=torch demo
VENV ?= .venv
PYTHON ?= python3
# The demo's ragcun home: embedded store and catalog, kept inside the checkout (git-ignored).
DEMO_HOME ?= .ragcun
DEMO_QUERY ?= What is information science? Give definitions where possible.
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

# ruff lints the whole tree; mypy checks the library and training/ (see [tool.mypy] in pyproject.toml)
LINT_PATHS ?= ragcun training migrations tests benchmarks
# training/ installs as ragcun.training; mypy cannot follow the editable install's import hook, so it
# checks a tree of links laid out as the installed package.
TYPECHECK_TREE := build/typecheck

.PHONY: setup demo test check bench-encode clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/ragcun --home $(DEMO_HOME) init
	$(BIN)/ragcun --home $(DEMO_HOME) ingest ragcun/data/adi/corpus.jsonl -c adi
	$(BIN)/ragcun --home $(DEMO_HOME) search "$(DEMO_QUERY)" -c adi -k 5

# The suite on pytest-xdist workers, one per core (at most 4: each loads torch and the encoder), whole test
# modules per worker so module fixtures are built once. TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= auto
test: setup
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --maxprocesses 4 --dist loadscope

check: setup
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/ruff check $(LINT_PATHS)
	rm -rf $(TYPECHECK_TREE)/ragcun && mkdir -p $(TYPECHECK_TREE)/ragcun  # links only: mypy's cache stays
	ln -sfn $(CURDIR)/ragcun/* $(TYPECHECK_TREE)/ragcun/
	ln -sfn $(CURDIR)/training $(TYPECHECK_TREE)/ragcun/training
	cd $(TYPECHECK_TREE) && bash -o pipefail -c \
		"$(abspath $(BIN))/mypy --config-file $(CURDIR)/pyproject.toml -p ragcun | sed 's#^ragcun/training/#training/#'"

bench-encode: setup
	$(BIN)/python benchmarks/encode.py

clean:
	rm -rf $(VENV) *.egg-info $(TYPECHECK_TREE)
