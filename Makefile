# The two set-up commands of the README, and what CI runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

# constraints.txt pins the versions the tests last passed with (refresh: pip freeze).
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test,production]'
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
