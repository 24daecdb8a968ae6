# The two commands of the study (see README.md):
#   make study   pre-train, probe and build the book on the default preset (quick)
#   make test    the whole test suite: unit tests, notebooks under nbval, the book build
# Both set up everything on a fresh machine: a virtual environment in .venv, the Python packages
# (pyproject.toml) and Fashion-MNIST (Debian's dataset-fashion-mnist, or $MIMSTUDY_DATA); make test
# also installs Debian's chromium for the browser check of the built book.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PRESET ?= quick
JOBS   ?= 2
STAMP  := $(VENV)/.installed

.PHONY: study test test-fast test-paper install data browser book plan benchmark clean-book

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	touch $(STAMP)

install: $(STAMP)

data:
	@sh scripts/install-data.sh

browser:  # headless Chromium for the book's browser check (tests/test_browser.py); skips itself without apt
	@sh scripts/install-browser.sh

study: install data
	$(BIN)/mimstudy run --preset $(PRESET) --jobs $(JOBS)
	$(BIN)/python -m mimstudy.study.regime --pilot $(PRESET)  # per seed: the SimMIM gates' hand baselines (skipped when current)
	$(BIN)/python -m mimstudy.study.concept_ladder  # Section 4.1's measured ladder (skipped when current)
	$(MAKE) book

plan: install
	$(BIN)/mimstudy plan --preset $(PRESET)

book: install  # jupyter-book build, its pages executed $(JOBS) at a time (mimstudy/book/build.py)
	$(BIN)/python -m mimstudy.book.build --jobs $(JOBS) . --warningiserror --keep-going --quiet
	@echo "book: $(CURDIR)/_build/html/index.html"

test: install data browser  # two pytest-xdist workers, a test module each (tests/conftest.py); prints the 25 slowest tests' times
	$(BIN)/python -m pytest -n $(JOBS) --dist loadfile --no-loadscope-reorder --durations=25

test-paper: install data  # only the paper preset's Section 4 dry runs (make test runs them too): one step of each at SwinV2-B size
	$(BIN)/python -m pytest -m paper_dry_run -q

test-fast: install data  # the unit tests, for the edit-test loop (not the ci preset, the book or the browser)
	$(BIN)/python -m pytest -n $(JOBS) -m "not slow" -q

benchmark: install data
	$(BIN)/python benchmarks/train_throughput.py

clean-book:
	rm -rf _build
