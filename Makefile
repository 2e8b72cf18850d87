# The two commands a newcomer needs:  `make run`  and  `make test`.  Both set everything up on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SYSTEM_PACKAGES := chromium poppler-utils fonts-dejavu-core libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint format system-deps install bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

# Debian packages for PDF rendering (Pango), PDF text extraction (pdftotext) and browser tests (Chromium, and npm
# for axe-core).
system-deps:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
	@# npm installs axe-core for the accessibility tests (into var/node, on first run).
	@command -v npm >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq npm; \
	}

# Serve the console and API on http://127.0.0.1:8000 with seeded demo data (SQLite under var/, DEBUG on).
run: install system-deps
	MASKER_DEBUG=1 $(PY) manage.py migrate --noinput
	MASKER_DEBUG=1 $(PY) manage.py seed_demo
	MASKER_DEBUG=1 $(PY) manage.py runserver $(HOST):$(PORT)

# The whole suite: lint, then pytest (DATABASE_URL picks the database; default SQLite).
test: install system-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest $(PYTEST_ARGS)

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
