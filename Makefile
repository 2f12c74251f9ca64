# Salesforce <-> Deployteq for Apache Airflow 3.
#
# Quick start (on a machine with only Python 3.11; everything else is set up here):
#   make demo   run the demo: emulator + PostgreSQL + every demo DAG once, then a report
#   make test   run the whole test suite
# More:
#   make ui     the demo environment with the Airflow UI (API server, scheduler, DAG processor,
#               triggerer) on http://localhost:8080 until Ctrl-C
#   make soak   a real distributed Airflow (Celery, Redis, PostgreSQL) under load and faults for 15 minutes,
#               checked end to end (needs Redis and PostgreSQL servers; see README, "Running at scale")
#   make stop   stop what `python -m include.demo --keep-ui` left running
#   make clean  stop leftovers and delete .state/ (all demo and test state); keeps .venv
#   make distclean  clean + delete .venv
#
# Arguments: `make demo DEMO_ARGS=--keep-ui`, `make test PYTEST_ARGS="-k loader -x"`,
# `make soak SOAK_ARGS="--minutes 3 --leads 20000 --contacts 10000"`.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed

.PHONY: demo test ui soak stop clean distclean install

# The stamp is newer than these files once they are installed, so pip only runs after a change.
$(STAMP): requirements.txt constraints.txt pyproject.toml
	@if [ ! -x "$(PY)" ]; then \
	  test -n "$(PYTHON)" || { echo "Python 3.11 is needed (python3.11 or python3 on PATH)"; exit 1; }; \
	  "$(PYTHON)" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
	    || echo "warning: $(PYTHON) is not Python 3.11; the pins in constraints.txt are for 3.11"; \
	  echo "Creating $(VENV) with $(PYTHON)"; \
	  "$(PYTHON)" -m venv $(VENV); \
	fi
	@echo "Installing requirements.txt into $(VENV) (only after it or constraints.txt changed)"
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt
	@echo "Installing the provider itself, editable (its entry points make Airflow list the provider and its connection types)"
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e . -c constraints.txt
	@touch $@

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m include.demo $(DEMO_ARGS)

test: $(STAMP)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

ui: $(STAMP)
	$(PY) -m include.demo --ui

soak: $(STAMP)
	PYTHONPATH=plugins $(PY) -m include.soak $(SOAK_ARGS)

stop:
	@if [ -x "$(PY)" ]; then $(PY) -m include.demo --stop; fi

clean: stop
	@if [ -x "$(PY)" ]; then $(PY) -c 'from pathlib import Path; from include.demo import stop_embedded_postgres; \
	  stop_embedded_postgres(Path(".state/test-postgres").resolve())' 2>/dev/null || true; fi
	rm -rf .state

distclean: clean
	rm -rf $(VENV)
