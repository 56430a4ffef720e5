# fcam: set up, run the default pipeline, test.   make demo | make test | make lint
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2
DVC_REMOTE ?= $(abspath ..)/$(notdir $(CURDIR))-dvc-remote

.PHONY: setup demo test lint clean

$(BIN)/fcam: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

setup: $(BIN)/fcam  ## install fcam and its pinned dependencies into .venv; prepare DVC
	@[ -d .git ] || git init -q
	@[ -d .dvc ] || $(BIN)/dvc init -q
	@$(BIN)/dvc config cache.type reflink,hardlink,symlink,copy >/dev/null
	@# a default local DVC remote beside the repository, unless one is configured (dvc push / dvc pull)
	@$(BIN)/dvc remote list | grep -q . || $(BIN)/dvc remote add --local -d local "$(DVC_REMOTE)" >/dev/null

demo: setup  ## run the default pipeline (synthetic benchmark) up to reports/table1.tex
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/snakemake --cores $(CORES) reports/table1.tex

test: setup  ## fast unit tests, then the slow end-to-end tests (the real DAG on the smoke preset)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -q
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -q -m slow

lint: setup
	$(BIN)/ruff check fcam tests benchmarks
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/snakemake --lint

clean:
	rm -rf results logs .snakemake
