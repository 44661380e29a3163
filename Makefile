# Baton: `make run` starts everything on a fresh machine; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
WITH_SERVICES := $(PY) -m deploy.local.with_services --

.PHONY: run test bench conformance lint typecheck fmt migrate totp clean-var install

$(STAMP): requirements-dev.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-dev.lock
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m deploy.local.run

# Each run gets its own cache and queue prefix: a run's keys (rate limits, throttles, queued
# tasks) must not meet the next run's, which reuses the same tenant schemas and ids.
test: $(STAMP)
	RUN=test-$$(date +%s%N); BATON_FAST_PASSWORD_HASHER=1 BATON_CELERY_KEY_PREFIX=$$RUN- BATON_CACHE_KEY_PREFIX=$$RUN $(WITH_SERVICES) $(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(WITH_SERVICES) $(PY) -m bench.run

# Reads every file under ../shared/samples/ (or BATON_SAMPLES_DIR) in place; report in var/conformance/edi.json.
conformance: $(STAMP)
	$(PY) -m connectors.edi.conformance

migrate: $(STAMP)
	$(WITH_SERVICES) $(PY) manage.py baton_migrate

totp: $(STAMP)
	@$(PY) manage.py demo_totp

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: $(STAMP)
	$(VENV)/bin/mypy .

fmt: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean-var:
	rm -rf var
