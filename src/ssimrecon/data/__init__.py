"""Stages 1-3: download, safe extraction, QC, split, demo archive."""
