# enet: the two commands a newcomer needs are `make demo` and `make test`; both set themselves up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install test demo bench lint clean

install: $(STAMP)

# Re-run pip only when the dependency list changes, so `make test` stays quick when nothing did.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

demo: install
	$(BIN)/enet models

bench: install
	$(BIN)/enet models

lint: install
	$(BIN)/ruff check enet tests scripts
	$(BIN)/ruff format --check enet tests scripts

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
