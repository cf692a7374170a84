# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CORES  ?= all

.PHONY: demo test test-fast bench lint format clean-demo

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	# pydeface and nilearn only ship the demo's anatomy (pydeface's head, the MNI152 2009a brain);
	# their own dependencies are not needed (src/ssimrecon/data/anatomy.py reads the files only).
	$(BIN)/pip install --quiet --no-deps pydeface==2.1.0 nilearn==0.14.1
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --configfile config.yaml config.demo.yaml
	$(BIN)/snakemake --cores 1 --configfile config.yaml config.demo.yaml --report results/demo/report.html
	@$(BIN)/ssimrecon summary --results results/demo

test: $(STAMP)
	$(BIN)/python -m pytest -v

test-fast: $(STAMP)
	$(BIN)/python -m pytest -v -m "not slurm and not workflow"

bench: $(STAMP)
	$(BIN)/ssimrecon bench --output results/bench

# ruff (lint + format), snakefmt and Snakemake's own linter; `make format` applies the formatters.
LINT_PY := src tests
LINT_SMK := Snakefile workflow/rules

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PY)
	$(BIN)/ruff format --check $(LINT_PY)
	$(BIN)/snakefmt --check $(LINT_SMK)
	$(BIN)/snakemake --lint

format: $(STAMP)
	$(BIN)/ruff check --fix $(LINT_PY)
	$(BIN)/ruff format $(LINT_PY)
	$(BIN)/snakefmt $(LINT_SMK)

clean-demo:
	rm -rf results/demo
