# The two Quickstart commands: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CLI := $(BIN)/lstm-rare-event
DEMO ?= demo
SEED ?= 7

.PHONY: demo test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The stamp is remade when the package metadata changes, so a new dependency gets installed.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

test: $(VENV)/.installed
	$(BIN)/python -m pytest

demo: $(VENV)/.installed
	$(CLI) demo-data --out $(DEMO)/demo.csv --seed $(SEED)
	$(CLI) prepare $(DEMO)/demo.csv --out $(DEMO)/run --seed $(SEED)

bench: $(VENV)/.installed
	$(BIN)/python bench/run.py

clean:
	rm -rf $(DEMO) build *.egg-info
