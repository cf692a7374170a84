"""T1-weighted volumes of a BIDS dataset: ``sub-<label>/[ses-<label>/]anat/*_T1w.nii[.gz]``.

Only those two layouts are read (``derivatives/``, ``sourcedata/``, other modalities and other
suffixes such as ``_T2w`` are ignored). The subject id is the file name's entities without the
``_T1w`` suffix (``sub-01_ses-02_run-1``), so sessions, acquisitions and runs stay distinct. The
site is the ``site`` column of ``participants.tsv`` where there is one, else "unknown". The
participant (:func:`participant_of`) groups a person's sessions and runs, so that the split never
puts one person in two sets.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from ssimrecon.data.ids import NIFTI_SUFFIXES, nifti_stem, safe_id
from ssimrecon.errors import VolumeError

#: ``sub-<label>[_<key>-<label>...]_T1w`` (BIDS labels are alphanumeric)
_T1W_STEM = re.compile(r"^sub-(?P<sub>[A-Za-z0-9]+)(?P<entities>(?:_[A-Za-z]+-[A-Za-z0-9]+)*)_T1w$")
#: the folders below the dataset root that hold anatomical volumes
ANAT_PATTERNS = ("sub-*/anat/*_T1w.nii*", "sub-*/ses-*/anat/*_T1w.nii*")
UNKNOWN_SITE = "unknown"
#: the first folder of a BIDS path: the participant
_PARTICIPANT_FOLDER = re.compile(r"^sub-[A-Za-z0-9]+$")


def participant_of(subject: str, source_name: str) -> str:
    """The person a volume belongs to: the ``sub-<label>`` folder a BIDS path starts with
    (``sub-01/ses-02/anat/sub-01_ses-02_T1w.nii.gz`` -> ``sub-01``), else the subject id itself
    (IXI, a folder of files: one volume per person as far as anyone can tell)."""
    first, _, rest = str(source_name).replace("\\", "/").partition("/")
    return first if rest and _PARTICIPANT_FOLDER.match(first) else subject


def participant_sites(root: Path) -> dict[str, str]:
    """``participants.tsv``'s site per subject label (``sub-01`` -> ``Guys``); empty without the
    file or a ``site`` column; ``n/a`` and blanks are left out."""
    table = root / "participants.tsv"
    if not table.is_file():
        return {}
    try:
        with open(table, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise VolumeError(f"{table}: cannot read participants table ({exc})") from exc
    sites = {}
    for row in rows:
        fields = {str(k).strip().lower(): (v or "").strip() for k, v in row.items() if k}
        participant, site = fields.get("participant_id", ""), fields.get("site", "")
        if participant and site and site.lower() != "n/a":
            sites[participant] = site
    return sites


def bids_subject_id(relative: Path) -> str:
    """Subject id of a T1w file given by its path under the dataset root.

    VolumeError naming the path when its name is not a BIDS T1w name or disagrees with its
    ``sub-``/``ses-`` folders."""
    stem = nifti_stem(relative.name)
    match = _T1W_STEM.match(stem)
    if match is None:
        raise VolumeError(
            f"{relative}: not a BIDS T1w file name (sub-<label>[_<key>-<label>...]_T1w.nii[.gz])"
        )
    folders = relative.parts[:-2]  # without anat/ and the file name
    if folders[0] != f"sub-{match.group('sub')}":
        raise VolumeError(
            f"{relative}: the file name's subject differs from its folder {folders[0]}"
        )
    entities = dict(part.split("-", 1) for part in match.group("entities").split("_")[1:])
    session = folders[1] if len(folders) > 1 else None
    named = f"ses-{entities['ses']}" if "ses" in entities else None
    if session != named:
        raise VolumeError(
            f"{relative}: the file name's session ({named}) differs from its folder ({session})"
        )
    return safe_id(stem[: -len("_T1w")])


def bids_t1w_files(root: Path) -> list[tuple[Path, str, str]]:
    """(path under ``root``, subject id, site) of every T1w volume, sorted by path; ids are not
    yet made unique (see :func:`ssimrecon.data.ids.unique_ids`)."""
    sites = participant_sites(root)
    found = set()
    for pattern in ANAT_PATTERNS:
        found |= {p for p in root.glob(pattern) if p.name.endswith(NIFTI_SUFFIXES)}
    result = []
    for path in sorted(found):
        relative = path.relative_to(root)
        result.append(
            (relative, bids_subject_id(relative), sites.get(relative.parts[0], UNKNOWN_SITE))
        )
    return result
