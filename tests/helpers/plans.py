"""Readers of Snakemake's dry-run plan of a workspace."""

from __future__ import annotations

import re
from collections import Counter

from tests.helpers.workspace import Workspace

_STATS_ROW = re.compile(r"^(\S+)\s+(\d+)$")


def planned_jobs(workspace: Workspace, *extra: str) -> Counter:
    """Rule -> job count of a dry run (empty when Snakemake says there is nothing to be done)."""
    proc = workspace.snakemake("--dry-run", "--cores", "1", *extra)
    text = proc.stdout + proc.stderr
    if "Nothing to be done" in text:
        return Counter()
    counts: Counter = Counter()
    in_stats = False
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("Job stats:"):
            in_stats = True
            continue
        if in_stats:
            match = _STATS_ROW.match(line)
            if match and match.group(1) != "total":
                counts[match.group(1)] = int(match.group(2))
            elif line.startswith("total"):
                break
    assert counts, f"no job stats in dry-run output:\n{text[-3000:]}"
    return counts


def planned_wildcards(workspace: Workspace, rule: str, key: str) -> list[str]:
    """Values of one wildcard across the planned jobs of a rule (from the dry-run job listing)."""
    proc = workspace.snakemake("--dry-run", "--cores", "1")
    text = proc.stdout + proc.stderr
    values = []
    for block in re.split(r"\n(?=(?:local)?(?:rule|checkpoint) )", text):
        if re.match(rf"(?:local)?(?:rule|checkpoint) {re.escape(rule)}:", block):
            found = re.search(rf"wildcards:.*?\b{key}=([^,\s]+)", block)
            if found:
                values.append(found.group(1))
    return sorted(values)
