# Baton: `make run` starts everything on a fresh machine; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
WITH_SERVICES := $(PY) -m deploy.local.with_services --

.PHONY: run test bench conformance lint typecheck fmt migrate totp clean-var install messages

$(STAMP): requirements-dev.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-dev.lock
	touch $(STAMP)

# axe-core for the accessibility tests (package-lock.json pins it). Only the tests need it, so
# without npm this warns and `make run` still works; the accessibility tests then say what is missing.
AXE := node_modules/axe-core/axe.min.js
$(AXE): package.json package-lock.json
	@if command -v npm >/dev/null 2>&1; then npm ci --no-audit --no-fund --loglevel=error && touch $(AXE); \
	else echo "npm not found: skipping axe-core (accessibility tests need it: apt-get install npm)"; fi

# Translations: locale/<lang>/LC_MESSAGES/django.po are the source (in git); the .mo files msgfmt
# compiles from them are build output. Without msgfmt this warns and the site runs in English.
MO := $(patsubst %.po,%.mo,$(wildcard locale/*/LC_MESSAGES/django.po))
locale/%.mo: locale/%.po
	@if command -v msgfmt >/dev/null 2>&1; then msgfmt --check -o $@ $<; \
	else echo "msgfmt not found: skipping $@, pages stay in English (apt-get install gettext)"; fi

# Refresh the catalogs from the strings marked in templates and Python (then translate the new
# empty entries in locale/*/LC_MESSAGES/django.po, and `make install` compiles them).
MESSAGES_IGNORE := --ignore=.venv --ignore=node_modules --ignore=var --ignore=tests --ignore=bench --ignore=staticfiles --ignore=locale
messages: $(STAMP)
	$(PY) manage.py makemessages -l de -l es -e html,txt,py --add-location=file --no-obsolete $(MESSAGES_IGNORE)

install: $(STAMP) $(AXE) $(MO)

run: $(STAMP) $(MO)
	$(PY) -m deploy.local.run

# Each run gets its own cache and queue prefix: a run's keys (rate limits, throttles, queued
# tasks) must not meet the next run's, which reuses the same tenant schemas and ids.
test: $(STAMP) $(AXE) $(MO)
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
