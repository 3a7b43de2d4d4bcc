# The two set-up commands of the README: `make run` (the default job on the real GDSC data) and
# `make test` (the test suite). Both create the virtual environment from requirements.lock first.
PYTHON ?= python3
VENV ?= .venv
CORES ?= 2
BIN := $(VENV)/bin

.PHONY: run test report lock

$(VENV)/.installed: requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	touch $@

run: $(VENV)/.installed
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --cores $(CORES) --report results/report.html
	@echo "Report: results/report.html"

test: $(VENV)/.installed
	$(BIN)/python -m pytest

# Refresh the lock after changing requirements.in (then update envs/*.yaml to the same versions).
lock: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -r requirements.in
	$(BIN)/python -m pip freeze | sed 's/+cpu$$//' > requirements.lock
