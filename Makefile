# Two entry points: `make run` (the main job on SQLite with demo data, no PBX needed)
# and `make test` (the test suite). Both set up everything they need on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SYSTEM_PACKAGES := espeak-ng sox prometheus chromium chromium-driver

.PHONY: run test lint bench system-packages

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

system-packages:
	scripts/install-system-packages $(SYSTEM_PACKAGES)

run: $(BIN)/.installed
	$(BIN)/onerpa-support run

test: $(BIN)/.installed system-packages
	$(BIN)/pytest -q

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# make bench NAME=lookup (without NAME: the list)
bench: $(BIN)/.installed
	$(BIN)/python -m bench $(NAME)
