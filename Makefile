# The two commands a newcomer needs:  `make run`  and  `make test`.  Both set everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Debian packages: running needs Pango and fonts (WeasyPrint's PDF renderer); the tests also need Chromium (console
# tests) and poppler (pdftotext reads the PDFs back).
RUN_PACKAGES := fonts-dejavu-core libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b
TEST_PACKAGES := $(RUN_PACKAGES) chromium poppler-utils
HOST ?= 127.0.0.1
PORT ?= 8000

# bash with pipefail, so a failing command piped through a filter still fails the target.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
# pip warns about every unreachable extra index location a machine's pip.conf names; those lines are dropped.
PIP_FILTER := 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }

.PHONY: run test architecture lint format system-deps system-deps-run install bench clean

# What running needs (requirements.txt), and what the tests and tools need on top (requirements-dev.txt).
$(VENV)/.installed-run: requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PIP) -r requirements.txt $(PIP_FILTER)
	@touch $@

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PIP) -r requirements-dev.txt $(PIP_FILTER)
	@touch $@ $(VENV)/.installed-run

install: $(VENV)/.installed

# Missing Debian packages are installed; apt waits up to 10 minutes for another apt to release the dpkg lock.
define apt_install
	@missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq $$missing >/dev/null; \
	fi
endef

system-deps-run:
	$(call apt_install,$(RUN_PACKAGES))

# The tests also need npm, which installs axe-core for the accessibility tests (into var/node, on first run).
system-deps:
	$(call apt_install,$(TEST_PACKAGES))
	@command -v npm >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq npm >/dev/null; \
	}

# A development configuration, written once and never overwritten: DEBUG on and a secret of this machine's own.
# Settings read it, so every manage.py command of the README works as written.
.env:
	@umask 077 && { \
	  echo "# Development configuration written by 'make run' (see .env.example for every variable)."; \
	  echo "MASKER_DEBUG=1"; \
	  echo "MASKER_SECRET_KEY=$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(50))')"; \
	} > $@

# Serve the console and API on http://127.0.0.1:8000 with seeded demo data (SQLite under var/, DEBUG on), and a
# report-run worker with its beat beside it (Celery on the filesystem broker under var/broker: no server needed).
run: $(VENV)/.installed-run system-deps-run .env
	@$(PY) manage.py migrate --noinput -v 0
	@$(PY) manage.py seed_demo
	@$(VENV)/bin/celery -A masker worker --beat --concurrency 1 --loglevel INFO --without-mingle --without-gossip \
	  --schedule var/celerybeat-schedule >var/worker.log 2>&1 & worker=$$!; \
	  trap 'kill $$worker 2>/dev/null; wait $$worker' EXIT; \
	  for i in $$(seq 600); do grep -q " ready\." var/worker.log && break; \
	    kill -0 $$worker 2>/dev/null || { cat var/worker.log; exit 1; }; sleep 0.1; done; \
	  echo "Report-run worker (pid $$worker, log var/worker.log):$$(grep -m1 ' ready\.' var/worker.log | sed 's/^[^]]*]//')"; \
	  echo "Serving http://$(HOST):$(PORT)/ (console /login/, API /api/v1/, API docs /api/v1/docs). Ctrl-C stops."; \
	  $(PY) manage.py runserver $(HOST):$(PORT) --skip-checks

# The whole suite: lint, then pytest (DATABASE_URL picks the database; default SQLite).
test: install system-deps architecture
	$(PY) -m pytest $(PYTEST_ARGS)

# The shape CI holds: lint, the import contracts (pyproject.toml), migrations in step with the models, the deploy
# check with production settings, and a type check that admits no error beyond .ci/mypy-baseline.txt (its Django
# plugin loads the test settings without their clean-up: their folders go where the recipe removes them).
architecture: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache
	$(PY) manage.py makemigrations --check --dry-run --settings=tests.settings
	keys=$$(mktemp -d) && trap 'rm -rf "$$keys"' EXIT && \
	  MASKER_DEBUG=0 MASKER_SECRET_KEY=deploy-check-$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(40))') \
	  MASKER_ALLOWED_HOSTS=compliance.example.org MASKER_SSL_REDIRECT=1 MASKER_HSTS_INCLUDE_SUBDOMAINS=1 \
	  MASKER_HSTS_PRELOAD=1 MASKER_CREATE_DEV_KEY=1 MASKER_KEYS_DIR="$$keys" \
	  $(PY) manage.py check --deploy --fail-level WARNING
	keys=$$(mktemp -d) && trap 'rm -rf "$$keys"' EXIT && \
	  { MASKER_KEYS_DIR="$$keys" MASKER_RUN_FILES_DIR="$$keys/run-files" MASKER_BROKER_DIR="$$keys/broker" \
	    $(VENV)/bin/mypy; test $$? -le 1; } | $(PY) .ci/mypy_baseline.py .ci/mypy-baseline.txt

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Benchmarks on PostgreSQL (see docs/performance.md); BENCH_DATABASE_URL defaults to the local server.
bench: install
	$(PY) bench/append.py
	$(PY) bench/report.py
	$(PY) bench/ingest.py
	$(PY) bench/export.py

clean:
	rm -rf $(VENV) var
