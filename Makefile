# enet: the two commands a newcomer needs are `make demo` and `make test`; both set themselves up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install test test-fast demo bench lint clean

install: $(STAMP)

# Re-run pip only when the dependency list changes, so `make test` stays quick when nothing did.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

# Two worker processes (pytest-xdist), each taking whole test modules (loadscope: a module's
# fixtures, such as a trained run folder, are built once); enet's commands start forked from a
# server that imported enet once (tests/cli_process.py): 11:29 for 361 tests on 2 cores (CI).
# PYTEST_WORKERS=0: one process.
PYTEST_WORKERS ?= 2
test: install
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadscope $(PYTEST_ARGS)

# The quick tier while developing: every test but those running enet's commands end to end
# (marked e2e in tests/conftest.py). `make test` (CI) runs them all.
test-fast: install
	$(BIN)/python -m pytest -q -m "not slow and not e2e" $(PYTEST_ARGS)

# Trains a small XResNet on the shipped mini data on the CPU (well under two minutes), then
# evaluates its best checkpoint.
demo: install
	$(BIN)/enet train --config configs/smoke.yaml --out runs/demo --overwrite
	$(BIN)/enet eval runs/demo/checkpoints/best.pt --out runs/demo/eval

# Model step and data pipeline throughput, each against what a user would otherwise run.
BENCH_DATA ?= $(if $(wildcard ../shared/data/imagenette-224/train),../shared/data/imagenette-224,mini)
bench: install
	$(BIN)/enet bench model --batch-size 32 --res 128 --precision fp32
	$(BIN)/enet bench data $(BENCH_DATA) --res 128 --batch-size 64 --workers 2

lint: install
	$(BIN)/ruff check enet tests scripts
	$(BIN)/ruff format --check enet tests scripts

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
