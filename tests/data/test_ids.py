"""ids.py: wildcard-safe subject ids from any file name; deterministic suffixes on collisions."""

from __future__ import annotations

import hashlib
import re

import pytest

from ssimrecon.data.ids import parse_ixi_name, safe_id, unique_ids

#: the Snakefile's subject wildcard constraint
WILDCARD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def test_ixi_names_give_subject_and_site() -> None:
    assert parse_ixi_name("IXI002-Guys-0828-T1.nii.gz") == ("IXI002", "Guys")
    assert parse_ixi_name("IXI640-HH-2788-T1.nii.gz") == ("IXI640", "HH")
    assert parse_ixi_name("IXI002-Guys-0828-T1.nii") == ("IXI002", "Guys")
    assert parse_ixi_name("DEMO005-SynthA-0713-T1.nii.gz") == ("DEMO005", "SynthA")  # the demo's
    assert parse_ixi_name("DEMOX05-SynthA-0713-T1.nii.gz")[1] == "unknown"


def test_other_names_give_wildcard_safe_subject_ids() -> None:
    assert parse_ixi_name("brain.nii.gz") == ("brain", "unknown")
    assert parse_ixi_name("sub-01_T1w.nii.gz") == ("sub-01_T1w", "unknown")
    assert parse_ixi_name("sub 01; touch X$(y).nii") == ("sub-01-touch-X-y", "unknown")
    assert parse_ixi_name("..nii.gz") == ("unnamed", "unknown")
    for text in ["a b", "_x_", "ünïcode/ä", "-", "--a--b--", "x" * 3 + "$(rm -rf ~)"]:
        assert WILDCARD.fullmatch(safe_id(text)), text


def _suffix(name: str) -> str:
    return hashlib.md5(name.encode()).hexdigest()[:6]


def test_collisions_get_suffixes_from_their_paths_whatever_the_order() -> None:
    """``a b.nii.gz`` and ``a-b.nii.gz`` both make ``a-b``: the path that sorts first keeps it."""
    names = ["x/a b.nii.gz", "a-b.nii.gz", "a-b.nii", "c.nii.gz"]
    ids = [parse_ixi_name(n.rsplit("/", 1)[-1])[0] for n in names]
    assert ids == ["a-b", "a-b", "a-b", "c"]
    unique = unique_ids(ids, names)
    assert unique == [f"a-b-{_suffix('x/a b.nii.gz')}", f"a-b-{_suffix('a-b.nii.gz')}", "a-b", "c"]
    order = [2, 0, 3, 1]
    assert unique_ids([ids[i] for i in order], [names[i] for i in order]) == [
        unique[i] for i in order
    ]
    assert all(WILDCARD.fullmatch(s) for s in unique)


def test_a_suffixed_id_equal_to_another_files_id_is_refused() -> None:
    """Mutation tried: without the final check two subjects share ``a-<suffix>``."""
    taken = f"a-{_suffix('n2.nii')}"
    with pytest.raises(ValueError, match=f"subject id {taken} derived twice"):
        unique_ids(["a", "a", taken], ["n1.nii", "n2.nii", f"{taken}.nii"])
