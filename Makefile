# The two commands of the quick start: `make demo` runs the product, `make test` runs every check.
# Both work on a fresh Debian 12 with Python 3.11: they install what is missing first.

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
SYSTEM_PACKAGES := postgresql redis-server chromium ca-certificates
INSTALLED := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest system-packages install clean

demo: install
	$(BIN)/synchronizer demo

test: install lint typecheck pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest

install: system-packages $(INSTALLED)

system-packages:
	@sh tools/ensure-system-packages.sh $(SYSTEM_PACKAGES)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall when the dependencies change.
$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache
