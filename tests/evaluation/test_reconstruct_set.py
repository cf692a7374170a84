"""reconstruct with several inputs and models: --output-dir, one CSV, failures reported at the end;
the generalisation set it is run on."""

from __future__ import annotations

import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from ssimrecon.cli import main
from ssimrecon.errors import SsimreconError
from ssimrecon.evaluation.generalisation import VARIANTS, build_generalisation_set
from ssimrecon.evaluation.reconstruct_set import CSV_COLUMNS, reconstruct_many
from ssimrecon.kspace.shards import grid_record
from tests.helpers.models import make_test_model
from tests.helpers.shards import sample_mask
from tests.helpers.volumes import smooth_head

GRID = grid_record(2, (2.0, 2.0), 2.0)


def _volume(path: Path, shape: tuple[int, int, int] = (24, 28, 6), seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(smooth_head(shape, seed), np.diag([2.0, 2.0, 2.0, 1.0])), path)
    return path


def _models(tmp_path: Path) -> list[Path]:
    paths = [tmp_path / "models" / name / "best.pt" for name in ("Net-a", "Net-b")]
    for seed, path in enumerate(paths):
        path.parent.mkdir(parents=True)
        make_test_model(path, sample_mask(), seed=seed, grid=GRID)
    return paths


def test_folders_and_files_with_two_models_one_csv_and_failures_at_the_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Mutation tried: stopping at the first failing volume leaves later rows and outputs out."""
    models = _models(tmp_path)  # make_test_model names the network after the file: both "best"
    inputs = tmp_path / "in"
    _volume(inputs / "a.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 4), np.float32), np.eye(4)), inputs / "b_zero.nii")
    _volume(inputs / "c.nii.gz", seed=1)
    (inputs / "notes.txt").write_text("not a volume")
    extra = _volume(tmp_path / "elsewhere" / "d.nii.gz", shape=(20, 24, 5))
    with pytest.raises(SsimreconError, match=r"share network names"):
        reconstruct_many(models, [inputs], tmp_path / "out", device="cpu")
    for path in models:  # name them as training does: extra.network
        bundle = torch.load(path, weights_only=True)
        bundle["extra"]["network"] = path.parent.name
        torch.save(bundle, path)

    argv = ["reconstruct", "--model", *map(str, models), "--input", str(inputs), str(extra)]
    assert main([*argv, "--output-dir", str(tmp_path / "out"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "error: 2 of 8 reconstructions failed" in err and "b_zero.nii" in err
    table = pd.read_csv(tmp_path / "out" / "reconstruct.csv")
    assert list(table.columns) == list(CSV_COLUMNS) and len(table) == 8
    assert table["status"].tolist() == ["ok", "error", "ok", "ok"] * 2
    failed = table[table["status"] == "error"]
    assert failed["error"].str.contains("b_zero.nii.*has no signal").all()
    done = table[table["status"] == "ok"]
    assert set(done["network"]) == {"Net-a", "Net-b"}
    for row in done.to_dict("records"):
        assert all(
            math.isfinite(row[f"{m}_{k}"])
            for m in ("network", "zero_filled")
            for k in ("ssim", "psnr", "rel_error", "mse")
        )
        assert row["slices_scored"] <= row["slices_reconstructed"] <= row["slices_total"]
        metrics = json.loads(Path(row["output"].replace(".nii.gz", ".metrics.json")).read_text())
        assert metrics["network"]["ssim"] == pytest.approx(row["network_ssim"], rel=1e-9)
    stems = {"a", "c", "d"}
    for net in ("Net-a", "Net-b"):
        written = {p.name for p in (tmp_path / "out" / net).iterdir()}
        assert written == {
            f"{s}{x}" for s in stems for x in (".nii.gz", ".zero_filled.nii.gz", ".metrics.json")
        }
    shape = nib.load(str(tmp_path / "out" / "Net-a" / "d.nii.gz")).shape
    assert shape == (20, 24, 5)


def test_one_model_writes_next_to_the_csv_and_prints_a_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _models(tmp_path)[0]
    first, second = _volume(tmp_path / "x.nii.gz"), _volume(tmp_path / "y.nii", seed=2)
    csv = tmp_path / "tables" / "all.csv"
    argv = ["reconstruct", "--model", str(model), "--input", str(first), str(second)]
    assert main([*argv, "--output-dir", str(tmp_path / "o"), "--csv", str(csv)]) == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == sorted(
        f"{s}{x}" for s in "xy" for x in (".nii.gz", ".zero_filled.nii.gz", ".metrics.json")
    )
    assert pd.read_csv(csv)["status"].tolist() == ["ok", "ok"]
    out = capsys.readouterr().out
    assert "| x.nii.gz | best |" in out and "| y.nii | best |" in out


def test_outputs_are_checked_before_anything_is_computed(tmp_path: Path) -> None:
    model = _models(tmp_path)[0]
    folder = tmp_path / "scans"
    _volume(folder / "s.nii.gz")
    _volume(folder / "s.zero_filled.nii.gz", seed=3)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    # writing into the input folder: s.nii.gz would be overwritten by its own reconstruction
    with pytest.raises(SsimreconError, match=r"would overwrite the input .*scans/s"):
        reconstruct_many([model], [folder], folder, device="cpu")
    # two inputs with one stem
    _volume(tmp_path / "other" / "s.nii", seed=4)
    with pytest.raises(SsimreconError, match=r"s\.nii\.gz and .*other/s\.nii would both write"):
        reconstruct_many([model], [folder / "s.nii.gz", tmp_path / "other" / "s.nii"], tmp_path)
    with pytest.raises(SsimreconError, match=r"input .*missing\.nii\.gz does not exist"):
        reconstruct_many([model], [tmp_path / "missing.nii.gz"], tmp_path / "o")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SsimreconError, match=r"input folder .*empty holds no \.nii"):
        reconstruct_many([model], [tmp_path / "empty"], tmp_path / "o")
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(SsimreconError, match=r"output folder .*a-file.* is not writable"):
        reconstruct_many([model], [folder / "s.nii.gz"], blocker, device="cpu")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert not (tmp_path / "o").exists()
    two = [str(folder / "s.nii.gz"), str(folder / "s.zero_filled.nii.gz")]
    with pytest.raises(SystemExit) as info:  # --output takes one input
        main(["reconstruct", "--model", str(model), "--input", *two, "--output", "r.nii"])
    assert info.value.code == 2


def _tiny_sources(tmp_path: Path) -> dict[str, Path]:
    """A 1 mm RAS uint8 'Colin27' and a 2 mm LAS int16 'anatomical.nii', both small."""
    head = smooth_head((30, 36, 30))
    colin = tmp_path / "src" / "ch2.nii.gz"
    colin.parent.mkdir()
    nib.save(nib.Nifti1Image(np.round(head / 4).astype(np.uint8), np.eye(4)), colin)
    anatomical = tmp_path / "src" / "anatomical.nii"
    las = np.diag([-2.0, 2.0, 2.0, 1.0])
    nib.save(
        nib.Nifti1Image((smooth_head((12, 14, 10)) * 10 - 500).astype(np.int16), las), anatomical
    )
    return {"colin27": colin, "nibabel_anatomical": anatomical}


def test_generalisation_set_is_deterministic_and_mimics_other_scanners(tmp_path: Path) -> None:
    sources = _tiny_sources(tmp_path)
    rows = build_generalisation_set(tmp_path / "set", sources)
    again = build_generalisation_set(tmp_path / "again", sources)
    assert [r["data_md5"] for r in rows] == [r["data_md5"] for r in again]
    manifest = pd.read_csv(tmp_path / "set" / "manifest.csv", dtype=str)
    assert manifest["file"].tolist() == [str(tmp_path / "set" / f"{n}.nii.gz") for n in VARIANTS]
    by_name = {Path(r["file"]).name.split(".")[0]: r for r in rows}
    expect = {
        "colin27_1mm_ras_uint8": ("RAS", "uint8", "1x1x1"),
        "colin27_2x2x3mm_lsa_int16": ("LSA", "int16", "2x2x3"),
        "colin27_2mm_mni_float_negative": ("RAS", "float32", "2x2x2"),
        "colin27_1mm_oblique_int16": ("RAS", "int16", "1x1x1"),
        "nibabel_anatomical_2mm_las_int16": ("LAS", "int16", "2x2x2"),
    }
    for name, (orientation, dtype, voxel) in expect.items():
        row = by_name[name]
        assert (row["orientation"], row["dtype"], row["voxel_mm"]) == (orientation, dtype, voxel)
        assert nib.load(row["file"]).shape == tuple(int(v) for v in row["shape"].split("x"))
    negative = nib.load(by_name["colin27_2mm_mni_float_negative"]["file"]).get_fdata()
    assert negative.min() < -0.5 < 0.5 < negative.max()  # z-scored: background below 0
    oblique = nib.load(by_name["colin27_1mm_oblique_int16"]["file"]).affine[:3, :3]
    assert np.count_nonzero(np.abs(oblique) > 1e-6) > 3  # not a permutation of the axes
    np.testing.assert_array_equal(
        nib.load(by_name["nibabel_anatomical_2mm_las_int16"]["file"]).get_fdata(),
        nib.load(str(sources["nibabel_anatomical"])).get_fdata(),
    )
    with pytest.raises(SsimreconError, match=r"gone/ch2\.nii\.gz does not exist.*mricron-data"):
        build_generalisation_set(
            tmp_path / "x", sources | {"colin27": tmp_path / "gone" / "ch2.nii.gz"}
        )


def test_generalisation_set_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """nibabel's own anatomical.nii (installed with nibabel) and a tiny stand-in for Colin27."""
    colin = _tiny_sources(tmp_path)["colin27"]
    assert (
        main(["generalisation-set", "--output", str(tmp_path / "set"), "--colin", str(colin)]) == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(VARIANTS) and lines[-1].endswith("2x2x2 mm  LAS")
    manifest = pd.read_csv(tmp_path / "set" / "manifest.csv")
    assert manifest["source"].iloc[-1].endswith("nibabel/tests/data/anatomical.nii")
    assert manifest["shape"].iloc[-1] == "33x41x25"
