"""Shared test factories: tiny IXI-like NIfTI volumes and archives, synthetic shards and model
bundles, throw-away workflow workspaces and readers of Snakemake's dry-run plan.

Tests import shared builders from here only, never from each other."""

from __future__ import annotations

import copy
import gzip
import hashlib
import importlib
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import types
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
import yaml

from ssimrecon.kspace.fft import fft2c
from ssimrecon.kspace.mask import save_mask, variable_density_mask
from ssimrecon.kspace.preprocess import Preprocessing, slice_signal_fraction
from ssimrecon.kspace.shards import FORMAT_VERSION, KSPACE_FORMULA, slice_geometry, write_shard
from ssimrecon.nn.bundle import save_model_bundle
from ssimrecon.nn.unet import UNet

# ---------------------------------------- workflow workspaces
REPO = Path(__file__).resolve().parents[1]
VENV_BIN = str(Path(sys.executable).parent)
#: subjects in the tiny archive (tests/conftest.py): 4 train, 2 val, 2 test
TINY_SUBJECTS = 8

#: Overrides that shrink the demo to seconds: 8 subjects of 64x64x32 (4 train, 2 val, 2 test),
#: 16x32 images, 2 epochs.
TINY_CONFIG: dict = {
    "experiment": "tiny",
    "source": {"n_subjects": TINY_SUBJECTS},
    "split": {"n_train": 4, "n_val": 2, "seed": 1},
    "preprocessing": {"image_size": [16, 32], "downsample": 2, "slice_stride": 4},
    "mask": {"acceleration": 4, "center_size": 4},
    "model": {"base_channels": 4, "depth": 2, "residual": True},
    "training": {
        "epochs": 2,
        "batch_size": 4,
        "lr": 1.0e-3,
        "num_workers": 0,
        "threads": 1,
        "min_signal_fraction": 0.05,
        "crop": None,  # config.demo.yaml's training crop is larger than the tiny images
    },
    "evaluation": {"min_signal_fraction": 0.05},
    "figure": {"dpi": 60},
}
TINY_SHAPE = (64, 64, 32)
TINY_VOXEL = (3.75, 3.75, 4.8)


def deep_merge(base: dict, overrides: dict) -> dict:
    """Recursive dict update, as Snakemake merges several --configfile files."""
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@dataclass
class TinySource:
    url: str
    md5: str
    archive: Path


@dataclass
class Workspace:
    """A throw-away copy of the workflow whose config.yaml is the tiny experiment."""

    root: Path
    config: dict = field(default_factory=dict)

    @property
    def results(self) -> Path:
        return self.root / "results" / self.config["experiment"]

    def write_config(self, overrides: dict | None = None) -> dict:
        """Merge overrides into the current config and write it as the workspace's config.yaml."""
        self.config = deep_merge(self.config, overrides or {})
        (self.root / "config.yaml").write_text(yaml.safe_dump(self.config, sort_keys=False))
        return self.config

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
        env.pop("PYTHONPATH", None)
        env.update(extra or {})
        return env

    def snakemake(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        check: bool = True,
        timeout: float = 900,
    ) -> subprocess.CompletedProcess:
        """Run ``python -m snakemake ARGS`` in the workspace; output is captured as text."""
        proc = subprocess.run(
            [sys.executable, "-m", "snakemake", *args],
            cwd=self.root,
            env=self.env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"snakemake {' '.join(args)} failed ({proc.returncode}):\n"
                f"{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
            )
        return proc

    def clone(self, destination: Path) -> Workspace:
        """Copy the workspace with its results and Snakemake metadata (timestamps kept)."""
        shutil.copytree(self.root, destination, symlinks=True)
        return Workspace(root=destination, config=copy.deepcopy(self.config))


def make_workspace(root: Path, source: TinySource, overrides: dict | None = None) -> Workspace:
    """Copy Snakefile, workflow/, profiles/, envs/ and configs to ``root``; config.yaml = paper +
    demo + tiny."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "Snakefile", root / "Snakefile")
    for folder in ("workflow", "profiles", "envs"):
        shutil.copytree(REPO / folder, root / folder)
    base = yaml.safe_load((REPO / "config.yaml").read_text())
    demo = yaml.safe_load((REPO / "config.demo.yaml").read_text())
    config = deep_merge(deep_merge(base, demo), TINY_CONFIG)
    config["source"].pop("demo", None)
    config["source"].update({"url": source.url, "md5": source.md5})
    workspace = Workspace(root=root, config=config)
    workspace.write_config(overrides)
    return workspace


# ---------------------------------------- dry-run plans
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


# ---------------------------------------- IXI-like volumes and archives
#: voxel size (mm) and axis codes of the IXI T1 volumes (256x256x150, 0.9375x0.9375x1.2, PSR)
IXI_ZOOMS = (0.9375, 0.9375, 1.2)
IXI_AXCODES = "PSR"

_SITES = ("Guys", "HH", "IOP")


def ixi_file_name(subject: str, index: int = 0) -> str:
    """IXI-style T1 file name, e.g. ``IXI002-Guys-0828-T1.nii.gz`` for subject ``IXI002``."""
    return f"{subject}-{_SITES[index % len(_SITES)]}-{828 + index:04d}-T1.nii.gz"


def ixi_affine(zooms: tuple[float, float, float] = IXI_ZOOMS) -> np.ndarray:
    """4x4 affine whose axes point P, S, R (as in IXI T1) with the given voxel sizes."""
    affine = np.zeros((4, 4))
    affine[1, 0] = -zooms[0]  # axis 0 -> posterior
    affine[2, 1] = zooms[1]  # axis 1 -> superior
    affine[0, 2] = zooms[2]  # axis 2 -> right
    affine[3, 3] = 1.0
    return affine


def tiny_volume(shape: tuple[int, ...] = (16, 16, 8), seed: int = 0) -> np.ndarray:
    """A smooth ellipsoid 'head' with noise, float32 in about [0, 1000]; shape as given (any
    ndim)."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    radius = np.sqrt(sum(g**2 for g in grids))
    volume = 800.0 * (radius < 0.8) + 200.0 * rng.random(shape)
    return volume.astype(np.float32)


def smooth_head(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """Positive ellipsoid 'head' (soft edge, about 600) with an off-centre bright blob (orientation
    errors would move it) and noise up to 20, float32 of ``shape``."""
    rng = np.random.default_rng(seed)
    g = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    r2 = (g[0] / 0.85) ** 2 + (g[1] / 0.8) ** 2 + (g[2] / 0.9) ** 2
    blob = (g[0] - 0.3) ** 2 + (g[1] + 0.2) ** 2 + (g[2] - 0.4) ** 2 < 0.08
    vol = (
        600.0 / (1 + np.exp(np.clip((r2 - 1) * 10, -50, 50)))
        + 300.0 * blob
        + 20.0 * rng.random(shape)
    )
    return vol.astype(np.float32)


def nifti_bytes(data: np.ndarray, zooms: tuple[float, float, float] = IXI_ZOOMS) -> bytes:
    """Gzipped NIfTI-1 file content for ``data`` with an IXI-like affine."""
    image = nib.Nifti1Image(data, ixi_affine(zooms))
    image.header.set_zooms(zooms + (1.0,) * (data.ndim - 3))
    return gzip.compress(image.to_bytes(), mtime=0)


def write_nifti(
    path: Path | str, data: np.ndarray, zooms: tuple[float, float, float] = IXI_ZOOMS
) -> Path:
    """Write ``data`` as a gzipped NIfTI file at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(nifti_bytes(data, zooms))
    return path


def corrupt_nifti_bytes(seed: int = 0) -> bytes:
    """A truncated .nii.gz: the first half of a valid gzipped volume (header readable, data not)."""
    valid = nifti_bytes(tiny_volume((16, 16, 8), seed))
    return valid[: len(valid) // 2]


def write_tiny_ixi_archive(
    path: Path | str,
    subjects: list[str],
    shape: tuple[int, int, int] = (16, 16, 8),
    corrupt: set[str] | frozenset[str] = frozenset(),
) -> str:
    """Write a tar (``.tar.gz`` if the name ends in .gz) of IXI-named T1 volumes; returns its MD5.

    Subject ``subjects[i]`` (e.g. ``IXI002``) gets ``ixi_file_name(subject, i)`` at the archive's
    top level, a ``tiny_volume(shape, seed=i)``; subjects in ``corrupt`` get a truncated gzip
    instead.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "w:gz" if path.name.endswith(".gz") else "w"
    with tarfile.open(path, mode) as tar:
        for index, subject in enumerate(subjects):
            if subject in corrupt:
                content = corrupt_nifti_bytes(index)
            else:
                content = nifti_bytes(tiny_volume(shape, seed=index))
            info = tarfile.TarInfo(ixi_file_name(subject, index))
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    return hashlib.md5(path.read_bytes()).hexdigest()


# ---------------------------------------- bring your own data: a tiny BIDS dataset
#: T1w volumes of the tiny BIDS dataset (path under its root) -> the subject id derived from it:
#: no session, two sessions, two runs of one session, an acquisition entity, an uncompressed .nii
TINY_BIDS_T1W = {
    "sub-01/anat/sub-01_T1w.nii.gz": "sub-01",
    "sub-02/ses-1/anat/sub-02_ses-1_T1w.nii.gz": "sub-02_ses-1",
    "sub-02/ses-2/anat/sub-02_ses-2_T1w.nii.gz": "sub-02_ses-2",
    "sub-03/ses-1/anat/sub-03_ses-1_run-1_T1w.nii.gz": "sub-03_ses-1_run-1",
    "sub-03/ses-1/anat/sub-03_ses-1_run-2_T1w.nii.gz": "sub-03_ses-1_run-2",
    "sub-04/anat/sub-04_acq-mprage_T1w.nii": "sub-04_acq-mprage",
    "sub-05/anat/sub-05_T1w.nii.gz": "sub-05",
    "sub-06/ses-pre/anat/sub-06_ses-pre_T1w.nii.gz": "sub-06_ses-pre",
}
#: files of the dataset that are not sub-*/[ses-*/]anat/*_T1w volumes: never read (the 4D bold
#: and the non-NIfTI sidecar would fail QC if they were)
TINY_BIDS_IGNORED = (
    "sub-01/anat/sub-01_T2w.nii.gz",
    "sub-01/anat/sub-01_T1w.json",
    "sub-01/func/sub-01_task-rest_bold.nii.gz",
    "derivatives/skullstrip/sub-01/anat/sub-01_desc-brain_T1w.nii.gz",
    "sourcedata/sub-01/anat/sub-01_T1w.nii.gz",
)
#: participants.tsv sites (sub-04 says n/a, the others have no row): the rest are "unknown"
TINY_BIDS_SITES = {"sub-01": "SiteA", "sub-02": "SiteB", "sub-03": "SiteA"}


def write_tiny_bids(
    root: Path | str,
    shape: tuple[int, int, int] = (16, 16, 8),
    zooms: tuple[float, float, float] = IXI_ZOOMS,
) -> Path:
    """A BIDS dataset at ``root``: the ``TINY_BIDS_T1W`` volumes (``tiny_volume(shape, seed=i)``),
    the ``TINY_BIDS_IGNORED`` files, dataset_description.json and participants.tsv."""
    root = Path(root)
    for index, name in enumerate(TINY_BIDS_T1W):
        content = nifti_bytes(tiny_volume(shape, seed=index), zooms)
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.decompress(content) if name.endswith(".nii") else content)
    for name in TINY_BIDS_IGNORED:
        if name.endswith(".json"):
            (root / name).write_text('{"RepetitionTime": 2.3}')
        else:
            write_nifti(root / name, tiny_volume((*shape, 2) if "bold" in name else shape), zooms)
    (root / "dataset_description.json").write_text('{"Name": "tiny", "BIDSVersion": "1.9.0"}')
    rows = [f"{p}\t{s}" for p, s in TINY_BIDS_SITES.items()] + ["sub-04\tn/a"]
    (root / "participants.tsv").write_text("participant_id\tsite\n" + "\n".join(rows) + "\n")
    return root


# ---------------------------------------- synthetic shards and model bundles


def preprocessing(**overrides: Any) -> Preprocessing:
    """A Preprocessing with the defaults of the workflow's config schema (their one source) and
    ``overrides``."""
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    fields = schema["properties"]["preprocessing"]["properties"]
    values = {key: spec["default"] for key, spec in fields.items()}
    return Preprocessing.from_dict({**values, **overrides})


SIZE = 32
PREP = preprocessing(readout_axis=2, image_size=(SIZE, SIZE))


def sample_mask(seed: int = 0, size: int = SIZE) -> np.ndarray:
    """A (size, size) variable-density mask, R = 4, 6x6 fully sampled centre."""
    return variable_density_mask((size, size), 4.0, 6, seed)


def _soft_inside(q: np.ndarray) -> np.ndarray:
    """Soft indicator of q < 1 (a logistic edge of width ~1/12), for smooth ellipses."""
    return 1 / (1 + np.exp(np.clip((q - 1) * 12, -50, 50)))


def ellipse_slices(
    n_slices: int, size: int = SIZE, seed: int = 0, empty: tuple[int, ...] = ()
) -> np.ndarray:
    """(S, H, W) float32 smooth ellipses whose size varies across slices; slices in ``empty`` are
    zero."""
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size), indexing="ij")
    out = np.zeros((n_slices, size, size), dtype=np.float32)
    for s in range(n_slices):
        if s in empty:
            continue
        grow = 0.45 + 0.4 * np.sin(np.pi * (s + 0.5) / n_slices)
        cy, cx = rng.uniform(-0.1, 0.1, 2)
        r2 = ((y - cy) / (0.9 * grow)) ** 2 + ((x - cx) / (0.7 * grow)) ** 2
        inner = ((y - cy) / (0.4 * grow)) ** 2 + ((x - cx + 0.1) / (0.25 * grow)) ** 2
        img = 0.8 * _soft_inside(r2) + 0.3 * _soft_inside(inner)
        out[s] = img + 0.02 * rng.random((size, size))
    return out


def make_test_shard(
    path: Path,
    subject: str,
    *,
    n_slices: int = 6,
    seed: int = 0,
    mask: np.ndarray | None = None,
    empty: tuple[int, ...] = (0,),
    slice_index: np.ndarray | None = None,
    prep: Preprocessing = PREP,
    source_file: str = "",
    scale: float = 1.0,
) -> dict:
    """Write a shard of ellipse slices; returns its arrays (kspace = fft2c(target) * mask)."""
    mask = sample_mask() if mask is None else mask
    target = ellipse_slices(n_slices, mask.shape[0], seed, empty)
    return write_target_shard(
        path,
        target,
        mask,
        prep,
        subject=subject,
        slice_index=slice_index,
        source_file=source_file,
        scale=scale,
    )


def write_target_shard(
    path: Path,
    target: np.ndarray,
    mask: np.ndarray,
    prep: Preprocessing,
    *,
    subject: str,
    slice_index: np.ndarray | None = None,
    source_file: str = "",
    source_md5: str = "",
    scale: float = 1.0,
) -> dict:
    """Write ``target`` (S, H, W) as a shard (no phase, 1 mm pixels); returns its arrays (kspace =
    fft2c(target) * mask as a reader with ``mask`` forms it, target, mask, data_range,
    slice_index, slice_signal)."""
    n_slices = target.shape[0]
    data_range = float(target.max())
    kspace = (fft2c(target) * mask).astype(np.complex64)
    index = (
        np.arange(n_slices, dtype=np.int32)
        if slice_index is None
        else np.asarray(slice_index, np.int32)
    )
    signal = slice_signal_fraction(target, data_range)
    attrs = {
        "subject": subject,
        "kspace_formula": KSPACE_FORMULA,
        "scale": scale,
        "data_range": data_range,
        "source_file": source_file,
        "source_md5": source_md5,
        "readout_axis": 2,
        "format_version": FORMAT_VERSION,
        "preprocessing": prep.to_json(),
        **slice_geometry((*target.shape[1:], n_slices), (1.0, 1.0, 1.0), prep),
    }
    write_shard(
        path,
        target=target,
        phase=None,
        slice_index=index,
        slice_signal=signal,
        attrs=attrs,
    )
    return {
        "kspace": kspace,
        "target": target,
        "mask": mask,
        "data_range": data_range,
        "slice_index": index,
        "slice_signal": signal,
    }


def make_test_model(
    path: Path,
    mask: np.ndarray,
    *,
    prep: Preprocessing = PREP,
    seed: int = 0,
    min_signal_fraction: float | None = None,
    grid: dict | None = None,
) -> UNet:
    """Save an untrained tiny residual U-Net bundle (base 4, depth 2) for ``mask``; ``grid``: the
    bundle's training grid (None: none recorded, as in older bundles)."""
    torch.manual_seed(seed)
    model = UNet(base_channels=4, depth=2, convs_per_stage=1, residual=True).eval()
    extra: dict = {"network": path.stem}
    if min_signal_fraction is not None:
        extra["training"] = {"min_signal_fraction": min_signal_fraction}
    save_model_bundle(
        path,
        model=model,
        preprocessing=prep.to_dict(),
        mask=mask,
        mask_meta={"seed": 0, "acceleration": 4.0},
        extra=extra,
        grid=grid,
    )
    return model


def phantom_slices(n: int, size: int, rng: np.random.Generator, empty: int = 0) -> np.ndarray:
    """``n`` images (n, size, size) float32: random ellipses with sharp edges and a bright square;
    the last ``empty`` slices are blank (background only)."""
    yy, xx = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    out = np.zeros((n, size, size), dtype=np.float32)
    for i in range(n - empty):
        img = 0.6 * (((xx / rng.uniform(0.6, 0.9)) ** 2 + (yy / rng.uniform(0.6, 0.9)) ** 2) < 1)
        for _ in range(3):
            cx, cy, r = rng.uniform(-0.4, 0.4), rng.uniform(-0.4, 0.4), rng.uniform(0.1, 0.3)
            img = img + rng.uniform(0.1, 0.4) * (((xx - cx) ** 2 + (yy - cy) ** 2) < r * r)
        s0, s1 = sorted(rng.integers(size // 4, 3 * size // 4, size=2))
        img[s0 : s1 + 2, s0 : s1 + 2] += 0.3
        out[i] = img
    return out


def write_mask_file(path: Path, mask: np.ndarray, seed: int = 0) -> Path:
    """Save ``mask`` (H, W) bool as a mask file (centre 4, power 2; R from its samples)."""
    acceleration = mask.size / np.count_nonzero(mask)
    save_mask(path, mask, acceleration=acceleration, seed=seed, center_size=4, power=2.0)
    return path


#: file name of the mask :func:`write_test_shards` saves beside its shards
TEST_MASK_NAME = "mask.npz"


#: every training setting (TrainSettings has no defaults) for tiny CPU runs on write_test_shards
#: data; tests override what they vary
TINY_TRAINING: dict[str, Any] = {
    "epochs": 1,
    "batch_size": 2,
    "seed": 0,
    "device": "cpu",
    "min_signal_fraction": 0.05,
    "max_train_batches": None,
    "lr": 1e-3,
    "crop": [24, 24],
    "num_workers": 0,
    "bf16": False,
    "channels_last": True,
    "gpus": 1,
    "compile": False,
    "instance_norm": "project",
}


def train_arguments(
    train: list[Path], val: list[Path], config: dict[str, Any], out: Path, threads: int = 1
) -> list[str]:
    """``ssimrecon train`` arguments (after the program) for network ``net`` writing best.pt,
    history.csv and state/ under ``out``; the mask is write_test_shards' (:func:`mask_path_of`)."""
    return [
        "train",
        "--network",
        "net",
        "--train-shards",
        *map(str, train),
        "--val-shards",
        *map(str, val),
        "--mask",
        str(mask_path_of(train)),
        "--config-json",
        json.dumps(config),
        "--threads",
        str(threads),
        "--best",
        str(out / "best.pt"),
        "--history",
        str(out / "history.csv"),
        "--state-dir",
        str(out / "state"),
    ]


def mask_path_of(shards: list[Path]) -> Path:
    """The mask file :func:`write_test_shards` saved beside ``shards``."""
    return shards[0].parent / TEST_MASK_NAME


def write_test_shards(
    folder: Path,
    n_subjects: int,
    n_slices: int = 4,
    size: int = 32,
    empty: int = 0,
    acceleration: float = 4.0,
    seed: int = 0,
    mask_seed: int = 7,
) -> list[Path]:
    """Shards of phantom slices and their seeded variable-density mask, saved as
    ``folder / TEST_MASK_NAME`` (:func:`mask_path_of`)."""
    rng = np.random.default_rng(seed)
    mask = variable_density_mask((size, size), acceleration, center_size=4, seed=mask_seed)
    prep = preprocessing(image_size=(size, size))
    folder.mkdir(parents=True, exist_ok=True)
    write_mask_file(folder / TEST_MASK_NAME, mask, seed=mask_seed)
    paths = []
    for s in range(n_subjects):
        path = folder / f"SUB{s:03d}.h5"
        write_target_shard(
            path,
            phantom_slices(n_slices, size, rng, empty=empty),
            mask,
            prep,
            subject=f"SUB{s:03d}",
            source_file=f"sub{s}.nii.gz",
            source_md5="0" * 32,
        )
        paths.append(path)
    return paths


def set_slice_geometry(
    path: Path, pixel_spacing: tuple[float, float], native_extent: tuple[int, int, int, int]
) -> None:
    """Overwrite a shard's ``pixel_spacing`` (mm of H, W) and ``native_extent`` attributes."""
    import json

    import h5py

    with h5py.File(path, "a") as f:
        f.attrs["pixel_spacing"] = json.dumps([float(v) for v in pixel_spacing])
        f.attrs["native_extent"] = json.dumps([int(v) for v in native_extent])


def skimage_ssim_psnr(
    reference: np.ndarray, estimate: np.ndarray, data_range: float
) -> tuple[float, float]:
    """Independent reference for one slice: scikit-image's SSIM in the paper's convention (Gaussian
    11x11, sigma 1.5, population covariance, valid region) and PSNR (dB)."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    reference, estimate = reference.astype(np.float64), estimate.astype(np.float64)
    ssim = structural_similarity(
        reference,
        estimate,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=data_range,
    )
    return float(ssim), float(peak_signal_noise_ratio(reference, estimate, data_range=data_range))


def skimage_ssim_map(
    reference: np.ndarray, estimate: np.ndarray, data_range: float
) -> tuple[np.ndarray, np.ndarray]:
    """(scikit-image's paper-convention SSIM map (H, W), bool mask (H, W) of its valid region: the
    5-pixel border of the 11-tap window excluded)."""
    from skimage.metrics import structural_similarity

    _, full = structural_similarity(
        reference,
        estimate,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=data_range,
        full=True,
    )
    valid = np.zeros(full.shape, dtype=bool)
    valid[5:-5, 5:-5] = True
    return full, valid


# ---------------------------------------- reader study: a session of synthetic reconstructions
#: the methods of the synthetic reader-study sessions, baseline first
READER_METHODS = ("Net-mse", "Net-mse-dssim")


def synthetic_method_image(reference: np.ndarray, method_index: int) -> np.ndarray:
    """The synthetic reconstruction of method ``method_index``: the reference dimmed by a
    method-specific factor (each method's image is told apart by its pixels)."""
    return (reference * (0.55 + 0.2 * method_index)).astype(np.float32)


def write_synthetic_session(
    folder: Path,
    *,
    methods: tuple[str, ...] = READER_METHODS,
    subjects: int = 3,
    slices: int = 5,
    trials: int = 8,
    repeats: int = 2,
    seed: int = 1,
    tasks: tuple[str, ...] = ("choice", "likert"),
) -> dict[str, Any]:
    """A reader-study page (``folder/page/reader-study.html``) and key (``folder/key.csv``) of
    ``trials`` + ``repeats`` trials drawn from ``subjects`` x ``slices`` random 12x16 slices
    (pixel aspect 1.25); returns the paths, the session id, the trials and the shown slices."""
    import pandas as pd

    from ssimrecon.reader_study.session import ShownSlice, build_session
    from ssimrecon.reader_study.trials import draw_trials

    rng = np.random.default_rng(seed)
    table = pd.DataFrame(
        [(f"SUBJ{s:02d}", 10 + i, 0.5) for s in range(subjects) for i in range(slices)],
        columns=["subject", "slice", "slice_signal"],
    )
    drawn = draw_trials(
        table, methods, trials=trials, repeats=repeats, seed=seed, min_signal_fraction=0.1
    )
    shown = {}
    for subject, index in sorted({(t.subject, t.slice) for t in drawn}):
        reference = rng.random((12, 16)).astype(np.float32)
        images = {m: synthetic_method_image(reference, i) for i, m in enumerate(methods)}
        shown[(subject, index)] = ShownSlice(reference, images, 1.0, 1.25)
    html, key = folder / "page" / "reader-study.html", folder / "key.csv"
    html.parent.mkdir(parents=True, exist_ok=True)
    session = build_session(drawn, shown, methods, tasks=tasks, zoom=3, html=html, key=key)
    return {"html": html, "key": key, "session": session, "trials": drawn, "shown": shown}


# ---------------------------------------- image quality metrics: real brain slices, piq


def mni_slices(axial: tuple[int, ...] = (70, 90, 110)) -> tuple[np.ndarray, float]:
    """Axial slices (S, 197, 233) float64 of the MNI152 2009a T1 template (real anatomy, zero
    background; the nilearn wheel's file the demo uses), divided by the 99th percentile of their
    voxels > 0 as preprocessing does; returns (slices, data_range = their maximum)."""
    from ssimrecon.data.anatomy import MNI_T1, NILEARN_PIN, package_file

    volume = nib.load(str(package_file("nilearn", MNI_T1, NILEARN_PIN))).get_fdata()
    slices = np.stack([volume[:, :, z] for z in axial]).astype(np.float64)
    slices /= np.percentile(slices[slices > 0], 99)
    return slices, float(slices.max())


def piq_module(name: str) -> Any:
    """piq 0.8.0's module ``piq.<name>`` (the independent implementation the metric tests compare
    against), imported without running ``piq/__init__.py``: that file also imports piq's LPIPS and
    DISTS, which need torchvision, and PyPI's torchvision builds for torch 2.13.0 are CUDA builds
    that cannot load beside the CPU torch.  The metrics used here import only torch and piq's own
    ``utils`` and ``functional``."""
    if "piq" not in sys.modules:
        spec = importlib.util.find_spec("piq")
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError("piq is not installed (make .venv/.installed installs it)")
        package = types.ModuleType("piq")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["piq"] = package
    return importlib.import_module(f"piq.{name}")
