"""Subject ids from file names: IXI names, BIDS entities or any other name, made unique.

A subject id becomes a file name (``shards/<id>.h5``) and a Snakemake wildcard, so it holds only
``[A-Za-z0-9_-]`` and starts with a letter or digit (the Snakefile's ``subject`` constraint).
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Sequence

#: the NIfTI file names the data stage reads, compressed or not
NIFTI_SUFFIXES = (".nii.gz", ".nii")
#: IXI file names: ``IXI002-Guys-0828-T1.nii.gz`` -> subject IXI002, site Guys; the demo archive's
#: pseudo-subjects use the same layout with their own prefix (``DEMO005-SynthA-0713-T1.nii.gz``)
_IXI_NAME = re.compile(r"^(?P<subject>(?:IXI|DEMO)\d+)-(?P<site>[A-Za-z]+)-\d+-T1\.nii(\.gz)?$")
#: runs of characters a subject id may not hold
_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
#: the id of a name with no safe character at all
UNNAMED = "unnamed"
#: hex digits of the suffix that separates colliding ids
SUFFIX_DIGITS = 6


def nifti_stem(name: str) -> str:
    """File name without its ``.nii.gz`` / ``.nii`` suffix."""
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def safe_id(text: str) -> str:
    """``text`` with every run of characters outside ``[A-Za-z0-9_-]`` replaced by ``-`` and
    leading/trailing ``-``/``_`` removed; ``"unnamed"`` if nothing is left."""
    return _UNSAFE_ID_CHARS.sub("-", text).strip("-_") or UNNAMED


def parse_ixi_name(name: str) -> tuple[str, str]:
    """(subject, site) from an IXI T1 file name; any other name gives (``safe_id`` of its stem,
    "unknown")."""
    match = _IXI_NAME.match(name)
    if match:
        return match.group("subject"), match.group("site")
    return safe_id(nifti_stem(name)), "unknown"


def _suffixed(subject: str, source_name: str) -> str:
    digest = hashlib.md5(source_name.encode("utf-8", "surrogateescape")).hexdigest()
    return f"{subject}-{digest[:SUFFIX_DIGITS]}"


def unique_ids(ids: Sequence[str], source_names: Sequence[str]) -> list[str]:
    """Ids made unique: of the files sharing an id, the one whose ``source_name`` (the path
    relative to the source's root) sorts first keeps it, each other one gets ``-<6 hex digits of
    the MD5 of its source_name>``. Deterministic, and independent of the order given.

    ValueError if the suffixed ids still collide (two equal source names)."""
    if len(ids) != len(source_names):
        raise ValueError("ids and source_names differ in length")
    groups: dict[str, list[int]] = defaultdict(list)
    for index, subject in enumerate(ids):
        groups[subject].append(index)
    result = list(ids)
    for subject, members in groups.items():
        for index in sorted(members, key=lambda i: source_names[i])[1:]:
            result[index] = _suffixed(subject, source_names[index])
    seen: dict[str, str] = {}
    for subject, name in zip(result, source_names):
        if subject in seen:
            raise ValueError(f"subject id {subject} derived twice: {seen[subject]} and {name}")
        seen[subject] = name
    return result
