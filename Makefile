# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CORES  ?= all

.PHONY: demo test test-fast bench lint clean-demo

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip
	$(BIN)/pip install --quiet -e .
	# pydeface only ships the demo's template head; its own dependencies are not needed.
	$(BIN)/pip install --quiet --no-deps pydeface==2.1.0
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

lint: $(STAMP)
	$(BIN)/snakemake --lint

clean-demo:
	rm -rf results/demo
