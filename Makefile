# Developer entry points. `make help` lists them; every target installs what it needs first.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTHON_VERSION := $(shell cat .python-version 2>/dev/null || echo 3.13)
PYTHON_MINOR := $(word 1,$(subst ., ,$(PYTHON_VERSION))).$(word 2,$(subst ., ,$(PYTHON_VERSION)))

# Puts DATABASE_URL and REDIS_URL in the recipe's environment: the servers on 127.0.0.1:5432/6379 when
# they answer, else embedded ones left running in the background (`make stop-services` stops them).
# A failure of `devrun services` fails the recipe (assignment first, then eval).
WITH_SERVICES = services="$$($(PY) -m scrm.devrun services)"; eval "$$services";

.PHONY: help install run test e2e bench lint migrations-check simulator stop-services

help: ## List the targets
	@echo "Targets:"
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-zA-Z0-9_-]*:.*## / {printf "  %-17s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: $(STAMP) ## Create .venv with the Python in .python-version and install the dependencies

# Re-runs only when pyproject.toml or .python-version changed. The dependency list (project + dev extra)
# is read from pyproject.toml with tomllib: the repo runs from its checkout and is not built as a package.
$(STAMP): pyproject.toml .python-version
	@want="$(PYTHON_MINOR)"; ok() { "$$1" -c "import sys; sys.exit(f'{sys.version_info[0]}.{sys.version_info[1]}' != '$$want')" 2>/dev/null; }; \
	if [ -x "$(PY)" ] && ok "$(PY)"; then :; else \
		boot=""; \
		for cand in "$$(command -v python$$want || true)" "$$(pyenv which python 2>/dev/null || true)"; do \
			if [ -n "$$cand" ] && ok "$$cand"; then boot="$$cand"; break; fi; \
		done; \
		if [ -z "$$boot" ]; then echo "error: no Python $$want found (tried python$$want and 'pyenv which python'); install it, e.g. 'pyenv install $(PYTHON_VERSION)'" >&2; exit 1; fi; \
		echo "creating $(VENV) with $$boot"; rm -rf "$(VENV)"; "$$boot" -m venv "$(VENV)"; \
	fi
	$(PY) -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; print("\n".join(p["dependencies"] + p["optional-dependencies"]["dev"]))' > $(VENV)/requirements.txt
	$(PY) -m pip install --disable-pip-version-check --quiet -r $(VENV)/requirements.txt
	@touch $@

run: install ## Start everything (embedded Postgres/Redis unless DATABASE_URL/REDIS_URL are set); Ctrl-C stops it
	$(PY) -m scrm.devrun run

test: install ## Run the whole test suite (pytest -n 2) against real Postgres and Redis
	@$(WITH_SERVICES) $(PY) -m pytest -n 2

e2e: install ## Run only the browser tests (pytest -m e2e, Chromium at /usr/bin/chromium)
	@$(WITH_SERVICES) $(PY) -m pytest -m e2e

bench: install ## Run the benchmarks (python -m bench); each prints ratios
	@$(WITH_SERVICES) $(PY) -m bench

lint: install ## ruff check
	$(PY) -m ruff check .

migrations-check: install ## Fail if a model change has no migration (makemigrations --check --dry-run)
	@$(WITH_SERVICES) DJANGO_SETTINGS_MODULE=scrm.test_settings $(PY) manage.py makemigrations --check --dry-run

simulator: install ## Run only the WeCom simulator on 127.0.0.1:8900 with the dev credentials in .data/dev.env
	$(PY) -m scrm.devrun simulator

stop-services: ## Stop the background Postgres/Redis that `make test` started (if it had to)
	@if [ -x "$(PY)" ]; then $(PY) -m scrm.devrun stop-services; fi
