# l6kit — every target sets itself up: a .venv with the exact pins of constraints.txt.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.l6kit-installed
PORT ?= 5006
export OMP_NUM_THREADS ?= 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup book test dashboards lint browser clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[book,dash,test]"
	@touch $(STAMP)

setup: $(STAMP)

## make book: execute every notebook of _toc.yml at profile ci (2 workers) and build _build/html
book: setup
	$(BIN)/l6kit book --workers 2

## make test: lint; unit tests + every notebook at ci (2 workers); then the book build, browser tests and
## the quick start's outputs checked by nbval
test: setup browser
	$(BIN)/ruff check l6kit tests
	$(BIN)/pytest -n 2 -m "not serial and not slow" -p no:cacheprovider tests
	$(BIN)/pytest -p no:cacheprovider tests/test_book.py book/quickstart.ipynb --nbval-lax

## make dashboards: serve every dashboard on 127.0.0.1:$(PORT)
dashboards: setup
	$(BIN)/l6kit dashboard all --port $(PORT)

lint: setup
	$(BIN)/ruff check l6kit tests

# Debian's Chromium for the browser tests (Playwright drives it; no browser download).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q chromium; \
	  else sudo apt-get update -q && sudo apt-get install -y -q chromium; fi; }

clean:
	rm -rf _build results/*.json book/scoreboard.md
