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

.PHONY: setup demo test bench-encode clean

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

test: setup
	$(BIN)/python -m pytest -q

bench-encode: setup
	$(BIN)/python benchmarks/encode.py

clean:
	rm -rf $(VENV) *.egg-info
