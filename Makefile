# django-blueque: `make demo` runs the demo project, `make test` runs every check.
# Both create what they need (virtualenvs under .venv*) on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BLUEQUE101 := .venv-blueque101
DJANGO6 := .venv-django6
# A Python >= 3.12 for the Django 6.x leg of `make test`; empty when none is found.
PYTHON312 ?= $(shell ./.ci/find-python312)

.PHONY: demo test lint typecheck docs pytest slow reliability test-django6 screenshots clean bench

$(BIN)/.installed: setup.cfg pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "django-blueque needs Python 3.11 or newer; run with PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,docs]' 'django>=5.2,<5.3'
	touch $@

$(BLUEQUE101)/.installed:
	$(PYTHON) -m venv $(BLUEQUE101)
	$(BLUEQUE101)/bin/python -m pip install --quiet 'blueque==1.0.1'
	touch $@

$(DJANGO6)/.installed: setup.cfg pyproject.toml
	$(PYTHON312) -m venv $(DJANGO6)
	$(DJANGO6)/bin/python -m pip install --quiet --upgrade pip
	$(DJANGO6)/bin/python -m pip install --quiet -e '.[dev]' 'django>=6.0,<7'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/python testproject/demo.py

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/check-manifest --no-build-isolation

typecheck: $(BIN)/.installed
	$(BIN)/mypy

# The manual (docs/, Sphinx with MyST and Furo) into docs/_build/html; a warning is an error.
docs: $(BIN)/.installed
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

pytest: $(BIN)/.installed $(BLUEQUE101)/.installed
	$(BIN)/python -m pytest

# The reliability suite at full size (tens of minutes); writes its figures into docs/reliability.md,
# pass or fail. `make test` runs its short version. SOAK=1 adds an hour's soak (scenario 13; SOAK is in hours).
RELIABILITY_REPORT := .reliability-report.jsonl
SOAK ?=
reliability: $(BIN)/.installed
	rm -f $(RELIABILITY_REPORT)
	status=0; BLUEQUE_RELIABILITY=full BLUEQUE_SOAK=$(SOAK) BLUEQUE_RELIABILITY_REPORT=$(CURDIR)/$(RELIABILITY_REPORT) \
		$(BIN)/python -m pytest -s tests/reliability || status=$$?; \
	$(BIN)/python -m tests.reliability.figures $(RELIABILITY_REPORT) docs/reliability.md; \
	exit $$status

# The slow tests (tests/slow/, several minutes), left out of `make test`.
slow: $(BIN)/.installed $(BLUEQUE101)/.installed
	$(BIN)/python -m pytest -m slow

test-django6:
ifeq ($(PYTHON312),)
	@echo "No Python >= 3.12 found: skipping the Django 6.x run (set PYTHON312=/path/to/python3.12)."
else
	$(MAKE) $(DJANGO6)/.installed $(BLUEQUE101)/.installed
	# The reliability suite puts the worker processes and Redis through faults; what it tests does
	# not depend on Django's version, and it runs once, in the `pytest` leg.
	$(DJANGO6)/bin/python -m pytest --ignore=tests/reliability
endif

test: lint typecheck docs pytest test-django6

# Renew docs/images/ (the admin's screenshots in docs/admin.md) from the browser test.
screenshots: $(BIN)/.installed
	BLUEQUE_SCREENSHOTS=docs/images $(BIN)/python -m pytest tests/browser

# `make bench`: django-blueque beside Blueque 1.0.1, RQ, Celery, Huey and Dramatiq on one private
# redis-server (bench/side_by_side.py; figures into docs/performance.md and docs/images/bench/).
# QUICK=1 runs a short version (under 5 minutes once the virtualenvs exist). Each peer gets its own
# virtualenv under bench/.venvs/, pinned to its major version; matplotlib lives in bench/.venvs/tools.
BENCH_VENVS := bench/.venvs
QUICK ?=
BENCH_ARGS ?=
$(BENCH_VENVS)/tools/.installed:
	$(PYTHON) -m venv $(BENCH_VENVS)/tools
	$(BENCH_VENVS)/tools/bin/python -m pip install --quiet 'matplotlib>=3.8,<4'
	touch $@

$(BENCH_VENVS)/rq/.installed:
	$(PYTHON) -m venv $(BENCH_VENVS)/rq
	$(BENCH_VENVS)/rq/bin/python -m pip install --quiet 'rq>=2,<3'
	touch $@

$(BENCH_VENVS)/celery/.installed:
	$(PYTHON) -m venv $(BENCH_VENVS)/celery
	$(BENCH_VENVS)/celery/bin/python -m pip install --quiet 'celery[redis]>=5,<6'
	touch $@

$(BENCH_VENVS)/huey/.installed:
	$(PYTHON) -m venv $(BENCH_VENVS)/huey
	$(BENCH_VENVS)/huey/bin/python -m pip install --quiet 'huey>=3,<4' 'redis>=5'
	touch $@

$(BENCH_VENVS)/dramatiq/.installed:
	$(PYTHON) -m venv $(BENCH_VENVS)/dramatiq
	$(BENCH_VENVS)/dramatiq/bin/python -m pip install --quiet 'dramatiq[redis]>=2,<3'
	touch $@

BENCH_PEER_VENVS := $(foreach peer,tools rq celery huey dramatiq,$(BENCH_VENVS)/$(peer)/.installed)

bench: $(BIN)/.installed $(BLUEQUE101)/.installed $(BENCH_PEER_VENVS)
	$(BIN)/python bench/side_by_side.py $(if $(QUICK),--quick) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(BLUEQUE101) $(DJANGO6) docs/_build build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
