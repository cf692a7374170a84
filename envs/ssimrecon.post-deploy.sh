#!/bin/sh
# Snakemake runs this inside the new environment right after creating it from envs/ssimrecon.yaml
# (`--software-deployment-method conda`; the file name <env>.post-deploy.sh is how it finds it).
#
# Why not `-e ..` under `pip:` in the yaml: Snakemake copies the yaml to
# .snakemake/conda/<hash>.yaml and creates the environment from that copy, and conda resolves a
# relative pip path against the copy's folder, so `..` would name .snakemake/, not this checkout.
# Instead the package is installed here from the checkout whose Snakefile is running: its path is
# SSIMRECON_REPO, which workflow/rules/common.smk sets before any environment is created.
set -eu
repo="${SSIMRECON_REPO:-}"
if [ -z "$repo" ]; then
    echo "error: SSIMRECON_REPO is not set (workflow/rules/common.smk sets it; run the ssimrecon Snakefile)" >&2
    exit 1
fi
if ! grep -q '^name = "ssimrecon"$' "$repo/pyproject.toml" 2>/dev/null; then
    echo "error: SSIMRECON_REPO=$repo has no pyproject.toml of the ssimrecon package" >&2
    exit 1
fi
python -m pip install --quiet --no-deps --editable "$repo"
