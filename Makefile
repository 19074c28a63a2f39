# The two entry points a newcomer needs are `make demo` and `make test`; both
# install what they need (virtualenv, packages, the local Kafka) idempotently.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# apt-get needs root: sudo only when not root already.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: install lock audit kafka-dist browser lint types test test-fast demo bench docs clean

install: $(STAMP)

# Exact versions from constraints.txt (see `lock`), so a test run, the demo and the image
# install the same, audited set.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	@touch $(STAMP)

# Re-resolve every dependency (test extras included) in a scratch virtualenv and pin the
# result: run after changing a dependency in pyproject.toml, then `make audit`, and commit
# both files.
LOCK_VENV := .lock-venv
lock:
	rm -rf $(LOCK_VENV) && $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install --quiet -e '.[test]'
	{ echo "# Exact versions of every dependency, test extras included; made by \`make lock\`."; \
	  $(LOCK_VENV)/bin/python -m pip freeze --exclude-editable; } > constraints.txt
	rm -rf $(LOCK_VENV)

# Known vulnerabilities in the pinned set, from PyPI's advisory data (one request per
# package). --strict: a package PyPI cannot answer for fails the audit, as does an
# unreachable registry, so a check that audited nothing never passes.
audit: $(STAMP)
	$(BIN)/pip-audit --strict --progress-spinner off --no-deps --disable-pip -r constraints.txt
	$(BIN)/pip-audit --strict --progress-spinner off --no-deps --disable-pip -r tests/harness/s3-server.txt

kafka-dist: $(STAMP)
	$(BIN)/python -m service.dev.localkafka fetch

# The tests' local S3 server (moto), pinned in tests/harness/s3-server.txt, in a virtualenv
# of its own: botocore pins python-dateutil<3, the kubernetes client >=3.
S3_VENV := .s3-venv
S3_STAMP := $(S3_VENV)/.installed
.PHONY: s3-server
s3-server: $(S3_STAMP)
$(S3_STAMP): tests/harness/s3-server.txt
	@test -x $(S3_VENV)/bin/python || $(PYTHON) -m venv $(S3_VENV)
	$(S3_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(S3_VENV)/bin/python -m pip install --quiet --no-deps -r tests/harness/s3-server.txt
	@touch $(S3_STAMP)

# Debian's chromium, for the overview page's headless screenshot test.
browser:
	@command -v chromium >/dev/null || ($(SUDO) apt-get update && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy

# The whole suite, real Kafka and PostgreSQL included; a missing service fails
# the run instead of skipping, and "no tests ran" (pytest exit 5) is a failure.
# PYTHONFAULTHANDLER: a crash of the interpreter itself (also after pytest's own
# handler is gone, at exit) prints every thread's stack instead of nothing.
# Two workers (pytest-xdist), whole files each, slow files first (tests/conftest.py): the
# end-to-end loops mostly wait, and the short tests fill that time on the other worker.
# PYTEST_WORKERS=0 runs everything in one process.
PYTEST_WORKERS ?= 2
PYTEST_PARALLEL = -n $(PYTEST_WORKERS) $(if $(filter 0,$(PYTEST_WORKERS)),,--dist loadfile --no-loadscope-reorder)
test: kafka-dist s3-server browser lint types
	PYTHONFAULTHANDLER=1 DRIFTWATCH_REQUIRE_SERVICES=1 $(BIN)/python -m pytest -p no:cacheprovider $(PYTEST_PARALLEL) --durations=25; \
	  rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

test-fast: $(STAMP) s3-server
	$(BIN)/python -m pytest -m "not kafka and not postgres"

demo: kafka-dist
	$(BIN)/python -m service.dev.demo

# The documentation site: regenerate the reference pages (configuration keys, commands,
# OpenAPI) from the code, then build it into site/ with every link and anchor checked.
# The tests check the same (tests/unit/test_docs_site.py), so `make test` fails on a stale
# page or a broken link.
docs: $(STAMP)
	$(BIN)/python -m docgen
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: kafka-dist
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/chaos_ingest.py

clean:
	rm -rf demo site .pytest_cache .mypy_cache .ruff_cache
