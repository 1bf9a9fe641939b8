# The two set-up commands of the README, and what CI runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test,production]'
	touch $(STAMP)

## run: the portal on embedded defaults (SQLite, SMTP catcher, dry-run accounts) on :8010
run: $(STAMP)
	$(BIN)/etrepo demo

## test: lint, then the whole test suite (real SMTP, useradd, sshd, Chromium where present)
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .

## bench: provisioning benchmark (root; creates and removes 200 throwaway users)
bench: $(STAMP)
	$(BIN)/python bench/provisioning.py

clean:
	rm -rf $(VENV) build *.egg-info
