# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CORES  ?= all

.PHONY: demo study-demo study-physics test test-fast bench gpu-check lint format clean-demo generalisation lock

LOCK   := envs/requirements.lock

# The tested set: every package at the version of envs/requirements.lock (`make lock` rewrites it
# from the venv), then this checkout on top without resolving again.
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip
	$(BIN)/pip install --quiet -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	# pydeface and nilearn only ship the demo's anatomy (pydeface's head, the MNI152 2009a brain);
	# their own dependencies are not needed (src/ssimrecon/data/anatomy.py reads the files only).
	$(BIN)/pip install --quiet --no-deps pydeface==2.1.0 nilearn==0.14.1
	# piq (Apache-2.0) is the independent implementation the tests compare HaarPSI, VIF, GMSD and
	# MS-SSIM with; its torchvision requirement serves only piq's network metrics, and PyPI's
	# torchvision for torch 2.13.0 is a CUDA build that cannot load beside the CPU torch.
	$(BIN)/pip install --quiet --no-deps piq==0.8.0
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --configfile config.yaml config.demo.yaml
	$(BIN)/snakemake --cores 1 --configfile config.yaml config.demo.yaml --report results/demo/report.html
	@$(BIN)/ssimrecon summary --results results/demo

# After `make demo`: both demo networks on real T1 heads the demo never used (Debian's mricron-data
# Colin27 and nibabel's anatomical.nii, with scanner-like variants) -> results/demo/generalisation.csv
GENERALISATION := results/demo/generalisation
generalisation: $(STAMP)
	$(BIN)/ssimrecon generalisation-set --output $(GENERALISATION)-set
	$(BIN)/ssimrecon reconstruct --model results/demo/models/*/best.pt \
	    --input $(GENERALISATION)-set --output-dir $(GENERALISATION) --csv $(GENERALISATION).csv

# A small study (2 seeds x 3 dssim weights x 2 accelerations) on the demo data -> results/demo-study/
STUDY_DEMO := --configfile config.yaml config.demo.yaml config.study-demo.yaml
study-demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) $(STUDY_DEMO)
	$(BIN)/snakemake --cores 1 $(STUDY_DEMO) --report results/demo-study/report.html

# The physics axes (forward model x data consistency, Net-mse vs Net-mse-dssim at R = 10, one seed)
# on the demo data -> results/demo-physics/
STUDY_PHYSICS := --configfile config.yaml config.demo.yaml config.study-physics.yaml
study-physics: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) $(STUDY_PHYSICS)
	$(BIN)/snakemake --cores 1 $(STUDY_PHYSICS) --report results/demo-physics/report.html

test: $(STAMP)
	$(BIN)/python -m pytest -v

test-fast: $(STAMP)
	$(BIN)/python -m pytest -v -m "not slurm and not workflow"

bench: $(STAMP)
	$(BIN)/ssimrecon bench --output results/bench

# The GPU path measured in one run (stops itself within 400 s) -> results/bench/gpu.csv and a short
# real training of the paper's U-Net on the demo data (results/gpu-demo/); never touches the venv or a
# package registry: the venv's python if there is one, else python3 (GPU_PYTHON=... to choose), wheels of
# benchmarks/gpu/wheels.txt carried in .whl/. Without CUDA it says so and runs the same phases on
# the CPU (docs/performance.md, "GPU").
GPU_PYTHON ?= $(if $(wildcard $(BIN)/python),$(abspath $(BIN)/python),python3)
gpu-check:
	PYTHON='$(GPU_PYTHON)' bash benchmarks/gpu/run.sh

# ruff (lint + format), snakefmt and Snakemake's own linter; `make format` applies the formatters.
LINT_PY := src tests envs
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

# Rewrite the lock from what the venv holds: after changing a pin in pyproject.toml, install it into
# the venv (`.venv/bin/pip install -e '.[test,bench]'`), run `make test`, then `make lock`.
lock:
	$(BIN)/python envs/lock.py --output $(LOCK)
