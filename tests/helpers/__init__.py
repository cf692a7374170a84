"""Shared test builders, one module per kind of thing they build: ``workspace`` (throw-away workflow
copies of the tiny experiment), ``plans`` (Snakemake dry-run plans), ``volumes`` (IXI-like NIfTI
volumes and archives), ``bids`` (a tiny BIDS dataset), ``shards`` (synthetic shards and masks),
``fastmri`` (fastMRI multi-coil files), ``models`` (model bundles), ``training`` (tiny training
settings and arguments), ``reference`` (independent reference metrics), ``iqa`` (real brain slices
and piq, for the image-quality metrics), ``reader_study`` (reader-study sessions of synthetic
reconstructions).

Tests import shared builders from these modules only, never from each other."""
