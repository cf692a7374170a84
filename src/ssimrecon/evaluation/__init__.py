"""Stages 7-8: inference, per-slice metrics, Table 1, reconstruct, summary."""
