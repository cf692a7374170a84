"""Training: learning on tiny phantoms, seeding, resume after SIGTERM/SIGUSR1 (bit-identical), stale
state, best-model bundle, history.csv (composite loss and its terms) and training curves."""

from __future__ import annotations

import csv
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from ssimrecon.cli import main as cli_main
from ssimrecon.cli.train import curves as curves_command
from ssimrecon.config.sections import settings_from
from ssimrecon.config.stages import TrainSettings
from ssimrecon.device import resolve_device
from ssimrecon.errors import SsimreconError
from ssimrecon.kspace.fft import zero_filled_magnitude
from ssimrecon.kspace.mask import load_mask, variable_density_mask
from ssimrecon.kspace.shards import ShardReader
from ssimrecon.nn.bundle import load_model_bundle
from ssimrecon.training import step as step_module
from ssimrecon.training.history import history_columns
from ssimrecon.training.loop import Trainer
from ssimrecon.training.signals import TrainingInterrupted
from ssimrecon.training.step import train_step_throughput
from tests.helpers.shards import mask_path_of, write_mask_file, write_test_shards
from tests.helpers.training import TINY_TRAINING, train_arguments

MODEL = {"base_channels": 4, "depth": 2, "residual": True}
LOSS = {"mse": 1.0, "dssim": 0.1}
BASE = {**TINY_TRAINING, "device": "auto"}
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One intra-op thread: fast on a busy 2-core machine and the same arithmetic in every
    process."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """3 training subjects x 5 slices (one blank each) and 1 validation subject, 32x32."""
    paths = write_test_shards(
        tmp_path_factory.mktemp("shards"), n_subjects=4, n_slices=5, empty=1, seed=1
    )
    return {"train": paths[:3], "val": paths[3:]}


def run(
    data: dict[str, list[Path]],
    out: Path,
    loss: dict | None = None,
    on_batch_end: Callable[[int, int], None] | None = None,
    mask_path: Path | None = None,
    **training,
) -> dict:
    settings = settings_from(TrainSettings, {**BASE, **training}, "training")
    return Trainer(
        data["train"],
        data["val"],
        mask_path=mask_path or mask_path_of(data["train"]),
        model_cfg=MODEL,
        loss_terms=loss or LOSS,
        settings=settings,
        best_path=out / "best.pt",
        history_path=out / "history.csv",
        state_dir=out / "state",
        network_name="net",
        on_batch_end=on_batch_end,
    ).fit()


def history(out: Path) -> list[dict[str, float]]:
    with open(out / "history.csv", newline="") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def weights(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, weights_only=True)
    return state["state_dict"] if "state_dict" in state else state["model"]


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


def assert_same_history(a: Path, b: Path) -> None:
    """Equal rows in every column but the timings (losses, terms and metrics bit for bit)."""
    ha, hb = history(a), history(b)
    assert len(ha) == len(hb)
    timing = {"seconds", "slices_per_s"}
    for ra, rb in zip(ha, hb):
        assert ra.keys() == rb.keys()
        assert {k: v for k, v in ra.items() if k not in timing} == {
            k: v for k, v in rb.items() if k not in timing
        }


def independent_val_scores(model_path: Path | None, shard: Path) -> tuple[float, float]:
    """(mean MSE, mean SSIM) of a model bundle over a validation shard's slices with slice_signal >=
    BASE's threshold: numpy MSE and scikit-image SSIM of ``model(zero_filled / s)`` against
    ``target / s``, s the volume's input scale (the normalised axis history.csv's MSE is on);
    ``model_path`` None scores the zero-filled input itself."""
    model = torch.nn.Identity() if model_path is None else load_model_bundle(model_path)[0]
    mse, ssim_values = [], []
    with ShardReader(shard, load_mask(mask_path_of([shard]))[0]) as reader:
        scale = reader.input_scale()
        data_range = float(reader.attrs["data_range"]) / scale
        for i in np.flatnonzero(reader.slice_signal >= BASE["min_signal_fraction"]):
            kspace, target = reader.read_slice(int(i))
            x = torch.from_numpy(zero_filled_magnitude(kspace).astype(np.float32) / scale)
            with torch.no_grad():
                pred = model(x[None, None])[0, 0].double().numpy()
            ref = target.astype(np.float64) / scale
            mse.append(np.mean((pred - ref) ** 2))
            ssim_values.append(
                structural_similarity(
                    ref,
                    pred,
                    gaussian_weights=True,
                    sigma=1.5,
                    use_sample_covariance=False,
                    data_range=data_range,
                )
            )
    return float(np.mean(mse)), float(np.mean(ssim_values))


def test_settings_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Mutation tried (fails this test): ``resolve_device`` calling ``pick_device`` without
    ``types=TRAIN_DEVICE_TYPES`` (``auto`` then picks MPS where it is available)."""

    def settings(**values: object) -> TrainSettings:
        return settings_from(TrainSettings, {**BASE, **values}, "training")

    s = settings(crop=[24, 32], bf16="false", epochs=3)
    assert s.crop == (24, 32) and s.bf16 is False and s.epochs == 3 and s.lr == 1e-3
    with pytest.raises(SsimreconError, match=r"training\.bogus"):
        settings(bogus=1)
    with pytest.raises(SsimreconError, match=r"training\.lr: missing"):
        settings_from(TrainSettings, {k: v for k, v in BASE.items() if k != "lr"}, "training")
    with pytest.raises(SsimreconError, match=r"training\.lr"):
        settings(lr=-1)
    with pytest.raises(SsimreconError, match=r"training\.bf16"):
        settings(bf16="sometimes")
    assert resolve_device("cpu") == torch.device("cpu")
    # auto: CUDA where available, else the CPU, never MPS (availability patched: every branch runs)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    monkeypatch.undo()
    for bad in ("gpu", "mps", "meta"):
        with pytest.raises(SsimreconError, match=r"^training\.device: "):
            resolve_device(bad)


def test_training_learns_and_writes_bundle_history_and_curves(
    data: dict[str, list[Path]], tmp_path: Path
) -> None:
    summary = run(data, tmp_path, epochs=5)
    rows = history(tmp_path)
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5]
    assert list(rows[0]) == list(history_columns(["mse", "dssim"]))
    head = ["epoch", "train_loss", "train_mse", "train_dssim", "val_loss", "val_dssim", "val_mse"]
    assert list(rows[0])[:7] == head
    for r in rows:  # the composite is the weighted sum of the logged terms
        assert r["train_loss"] == pytest.approx(r["train_mse"] + 0.1 * r["train_dssim"], rel=1e-6)
        assert r["val_loss"] == pytest.approx(r["val_mse"] + 0.1 * r["val_dssim"], rel=1e-6)
        assert r["val_dssim"] == pytest.approx(1 - r["val_ssim"], abs=1e-6)
        balance = r["val_dssim_over_mse_value"]
        assert balance == pytest.approx(0.1 * r["val_dssim"] / r["val_mse"], rel=1e-4)
        assert 0 < r["val_dssim_over_mse_grad"] < float("inf")
    # the residual network starts as the zero-filled input; training takes it beyond that
    zf_mse, zf_ssim = independent_val_scores(None, data["val"][0])
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert min(r["val_loss"] for r in rows) < zf_mse + 0.1 * (1 - zf_ssim)
    assert max(r["val_ssim"] for r in rows) > zf_ssim
    assert summary["train_slices"] == 12 and summary["val_slices"] == 4  # blank slices left out
    best_epoch = min(rows, key=lambda r: r["val_loss"])["epoch"]
    model, bundle = load_model_bundle(tmp_path / "best.pt")
    assert bundle["extra"]["epoch"] == best_epoch == summary["best_epoch"]
    assert bundle["extra"]["val_loss"] == pytest.approx(min(r["val_loss"] for r in rows))
    assert bundle["extra"]["loss_terms"] == LOSS and bundle["extra"]["training"]["crop"] == [24, 24]
    best_row = next(r for r in rows if r["epoch"] == best_epoch)
    mse, ssim_mean = independent_val_scores(tmp_path / "best.pt", data["val"][0])
    assert best_row["val_mse"] == pytest.approx(mse, rel=1e-4)
    assert best_row["val_ssim"] == pytest.approx(ssim_mean, abs=1e-5)
    mask, mask_meta = load_mask(mask_path_of(data["train"]))
    assert torch.equal(bundle["mask"], torch.from_numpy(mask))
    assert bundle["mask_meta"] == {
        "seed": 7,  # write_test_shards' mask seed
        "acceleration": mask_meta["achieved_acceleration"],
    }
    with ShardReader(data["train"][0]) as reader:
        assert bundle["preprocessing"] == reader.preprocessing.to_dict()
        assert bundle["grid"]["pixel_spacing_mm"] == list(reader.pixel_spacing)
    assert model.model_config["base_channels"] == 4
    state = torch.load(tmp_path / "state" / "last.pt", weights_only=True)  # plain tensors only
    assert state["epoch"] == 5 and state["next_batch"] == 0 and len(state["history"]) == 5

    png = tmp_path / "curves.png"
    assert (
        curves_command(
            [
                "--history",
                f"net={tmp_path / 'history.csv'}",
                f"other={tmp_path / 'history.csv'}",
                "--output",
                str(png),
            ]
        )
        == 0
    )
    assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SsimreconError, match="missing.csv"):
        curves_command(["--history", f"net={tmp_path / 'missing.csv'}", "--output", str(png)])


def test_same_seed_same_weights(data: dict[str, list[Path]], tmp_path: Path) -> None:
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        run(data, tmp_path / name, epochs=2, seed=seed)
    assert_same_weights(tmp_path / "a" / "best.pt", tmp_path / "b" / "best.pt")
    assert_same_history(tmp_path / "a", tmp_path / "b")
    with pytest.raises(AssertionError):
        assert_same_weights(tmp_path / "a" / "best.pt", tmp_path / "c" / "best.pt")


def test_signal_mid_epoch_then_resume_is_bit_identical(
    data: dict[str, list[Path]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ssimrecon.training.loop")
    run(data, tmp_path / "ref", epochs=3)
    out = tmp_path / "cut"

    def stop_at(epoch: int, batch: int):
        def hook(e: int, b: int) -> None:
            if (e, b) == (epoch, batch):
                os.kill(os.getpid(), signal.SIGUSR1)

        return hook

    settings = settings_from(TrainSettings, {**BASE, "epochs": 3}, "training")
    kwargs = dict(
        mask_path=mask_path_of(data["train"]),
        model_cfg=MODEL,
        loss_terms=LOSS,
        settings=settings,
        best_path=out / "best.pt",
        history_path=out / "history.csv",
        state_dir=out / "state",
        network_name="net",
    )
    # 1) in the middle of epoch 2 (after its 2nd batch); 2) after the last batch of epoch 3,
    # before validation
    for (epoch, batch), expected in (((1, 1), (1, 2)), ((2, 5), (2, 6))):
        with pytest.raises(TrainingInterrupted) as info:
            Trainer(data["train"], data["val"], on_batch_end=stop_at(epoch, batch), **kwargs).fit()
        assert info.value.exit_code == 128 + signal.SIGUSR1
        state = torch.load(out / "state" / "last.pt", weights_only=True)
        assert (state["epoch"], state["next_batch"]) == expected
        assert "received SIGUSR1; saved state" in caplog.text
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL  # handlers restored
    summary = Trainer(data["train"], data["val"], **kwargs).fit()
    assert summary["resumed_from"] == [2, 6]
    assert (
        "resuming net from epoch 2 batch 2" in caplog.text
        and "resuming net from epoch 3 batch 6" in caplog.text
    )
    assert_same_weights(out / "best.pt", tmp_path / "ref" / "best.pt")
    assert_same_weights(out / "state" / "last.pt", tmp_path / "ref" / "state" / "last.pt")
    assert_same_history(out, tmp_path / "ref")


def test_stale_state_is_moved_aside_and_finished_state_restores_outputs(
    data: dict[str, list[Path]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ssimrecon.training.loop")
    run(data, tmp_path, epochs=2)
    first = weights(tmp_path / "best.pt")
    # Snakemake removes the outputs of a job it reruns; a finished, matching state restores them
    (tmp_path / "best.pt").unlink()
    (tmp_path / "history.csv").unlink()
    summary = run(data, tmp_path, epochs=2)
    assert summary["resumed_from"] == [2, 0] and "resuming net from epoch 3 batch 0" in caplog.text
    assert len(history(tmp_path)) == 2
    assert all(torch.equal(first[k], v) for k, v in weights(tmp_path / "best.pt").items())
    # another loss: the state does not match, is moved aside and training starts afresh
    caplog.clear()
    summary = run(data, tmp_path, loss={"mse": 1.0}, epochs=2)
    assert summary["resumed_from"] is None and "resuming" not in caplog.text
    assert "moved to" in caplog.text and (tmp_path / "state" / "last.pt.stale").exists()
    assert load_model_bundle(tmp_path / "best.pt")[1]["extra"]["loss_terms"] == {"mse": 1.0}
    rows = history(tmp_path)
    assert len(rows) == 2 and list(rows[0]) == list(history_columns(["mse"]))
    assert all(r["train_loss"] == pytest.approx(r["train_mse"], rel=1e-6) for r in rows)
    assert all(r["val_loss"] == pytest.approx(r["val_mse"], rel=1e-6) for r in rows)


def test_a_state_of_another_mask_is_not_resumed(
    data: dict[str, list[Path]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Shards hold no mask, so the mask is part of the fingerprint: the same shards and settings
    at another acceleration start afresh. Mutation tried: leaving the mask out of the fingerprint
    resumes the finished R = 4 state (no epoch is trained at R = 8)."""
    caplog.set_level(logging.INFO, logger="ssimrecon.training.loop")
    run(data, tmp_path, epochs=2)
    sparse = variable_density_mask((32, 32), 8.0, center_size=4, seed=7)
    other = write_mask_file(tmp_path / "R8.npz", sparse, seed=7)
    caplog.clear()
    summary = run(data, tmp_path, mask_path=other, epochs=2)
    assert summary["resumed_from"] is None and "resuming" not in caplog.text
    assert (tmp_path / "state" / "last.pt.stale").exists()
    bundle = load_model_bundle(tmp_path / "best.pt")[1]
    assert torch.equal(bundle["mask"], torch.from_numpy(sparse))
    assert bundle["mask_meta"]["acceleration"] == pytest.approx(8.0, rel=0.01)


class Payload:
    """Anything that is not a tensor/primitive: torch.load(weights_only=True) must refuse it."""


def test_unsafe_state_file_is_moved_aside_never_loaded(
    data: dict[str, list[Path]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A state torch.load(weights_only=True) refuses is kept for inspection, not loaded, and the run
    starts afresh with a warning naming the file."""
    (tmp_path / "state").mkdir()
    unsafe = tmp_path / "state" / "last.pt"
    torch.save({"format": "ssimrecon-train-state", "payload": Payload()}, unsafe)
    payload = unsafe.read_bytes()
    summary = run(data, tmp_path, epochs=1)
    assert summary["resumed_from"] is None and summary["best_epoch"] == 1
    assert (tmp_path / "state" / "last.pt.unreadable").read_bytes() == payload
    assert "last.pt: refused to load" in caplog.text and "moved it to" in caplog.text


def test_truncated_state_resumes_from_the_previous_one(
    data: dict[str, list[Path]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """kill -9 while the disk was full can leave a truncated last.pt; the run resumes from
    last.prev.pt (the state before it) and ends with the same weights as an uninterrupted run.
    Mutation tried: without the fallback the run starts over (resumed_from None)."""
    reference = run(data, tmp_path / "ref", epochs=3)
    out = tmp_path / "cut"

    def die_in_epoch_3(epoch: int, batch: int) -> None:
        if epoch == 2:
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        run(data, out, epochs=3, on_batch_end=die_in_epoch_3)
    last = out / "state" / "last.pt"
    assert (out / "state" / "last.prev.pt").exists()
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    summary = run(data, out, epochs=3)
    assert summary["resumed_from"] == [1, 0]  # the end of epoch 1, kept as last.prev.pt
    assert (out / "state" / "last.pt.unreadable").exists()
    assert "resuming net from the previous state" in caplog.text
    assert summary["best_epoch"] == reference["best_epoch"]
    for key, value in weights(tmp_path / "ref" / "best.pt").items():
        assert torch.equal(value, weights(out / "best.pt")[key]), key


def test_diverged_training_has_no_best_checkpoint(
    data: dict[str, list[Path]], tmp_path: Path
) -> None:
    with pytest.raises(SsimreconError, match="no best checkpoint"):
        run(data, tmp_path, epochs=1, lr=1e30)
    assert not (tmp_path / "best.pt").exists()


def test_bf16_autocast_nchw_training_runs(data: dict[str, list[Path]], tmp_path: Path) -> None:
    summary = run(data, tmp_path, epochs=1, bf16=True, channels_last=False)
    assert summary["bf16"] is True and summary["best_epoch"] == 1
    assert all(
        v.dtype == torch.float32
        for v in weights(tmp_path / "best.pt").values()
        if v.is_floating_point()
    )


def test_cli_reports_bad_training_key(
    data: dict[str, list[Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli_main(
        [
            "train",
            "--network",
            "net",
            "--train-shards",
            str(data["train"][0]),
            "--val-shards",
            str(data["val"][0]),
            "--mask",
            str(mask_path_of(data["train"])),
            "--config-json",
            json.dumps(
                {"model": {}, "loss": {"mse": 1}, "training": {**BASE, "learning_rate": 0.1}}
            ),
            "--best",
            str(tmp_path / "b.pt"),
            "--history",
            str(tmp_path / "h.csv"),
            "--state-dir",
            str(tmp_path / "s"),
        ]
    )
    assert code == 2 and "training.learning_rate" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_throughput_benchmark_runs_both_modes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Slices/s = batch size * timed steps / their time: with a clock that advances 0.25 s per
    optimiser step, exactly batch_size / 0.25, and warm-up + timed steps ran.

    Mutations tried (each fails this test): the rate computed as ``steps / elapsed`` (batch size
    left out), and the clock started before the warm-up steps."""
    clock = {"now": 1000.0, "steps": 0}
    adam_step = torch.optim.Adam.step

    def timed_step(self: torch.optim.Adam, *args: object, **kwargs: object) -> object:
        clock["now"] += 0.25
        clock["steps"] += 1
        return adam_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", timed_step)
    monkeypatch.setattr(step_module, "time", SimpleNamespace(perf_counter=lambda: clock["now"]))
    for fast in (False, True):
        clock["steps"] = 0
        rate = train_step_throughput(
            MODEL, batch_size=2, size=32, fast=fast, steps=3, device="cpu", warmup=2
        )
        assert clock["steps"] == 2 + 3
        assert rate == pytest.approx(2 / 0.25)


def test_cli_sigterm_then_rerun_resumes_bit_identical(
    data: dict[str, list[Path]], tmp_path: Path
) -> None:
    epochs = 12
    run(data, tmp_path / "ref", epochs=epochs)
    out = tmp_path / "cli"
    training = {**BASE, "num_workers": 1, "epochs": epochs}
    config = {"model": MODEL, "loss": LOSS, "training": training}
    cmd = [
        sys.executable,
        "-m",
        "ssimrecon.cli",
        *train_arguments(data["train"], data["val"], config, out),
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO
    )
    deadline = time.monotonic() + 60
    while not (out / "state" / "last.pt").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "received SIGTERM; saved state" in err
    stopped = torch.load(out / "state" / "last.pt", weights_only=True)
    assert stopped["epoch"] < epochs

    again = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert again.returncode == 0, again.stderr
    assert (
        f"resuming net from epoch {stopped['epoch'] + 1} batch {stopped['next_batch']}"
        in again.stderr
    )
    assert_same_weights(out / "best.pt", tmp_path / "ref" / "best.pt")
    assert_same_weights(out / "state" / "last.pt", tmp_path / "ref" / "state" / "last.pt")
    assert_same_history(out, tmp_path / "ref")


def test_training_progress_lines_reach_the_log(
    data: dict[str, list[Path]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Inside Snakemake stderr is the job log, not a terminal: each epoch reports slices, rate and
    ETA there (tqdm printed nothing until the end)."""
    monkeypatch.setenv("SSIMRECON_PROGRESS_SECONDS", "0")
    caplog.set_level(logging.INFO, logger="ssimrecon.progress")
    summary = run(data, tmp_path, epochs=2)
    n = summary["train_slices"]
    for epoch in (1, 2):
        done = f"train net epoch {epoch}/2: {n} of {n} slices (100%)"
        assert any(m.startswith(done) and "slices/s, ETA" in m for m in caplog.messages), epoch
    assert any(m.startswith("validate net: ") for m in caplog.messages)


@pytest.mark.parametrize("crop", [[24, 40], [24, 30]])
def test_a_crop_the_shards_or_the_unet_cannot_take_stops_the_trainer_before_training(
    data: dict[str, list[Path]], tmp_path: Path, crop: list[int]
) -> None:
    """TrainSettings.check_crop against the shards' 32x32 slices (24 x 40 does not fit) and the
    depth-2 U-Net (30 is not divisible by 4): nothing is written."""
    message = rf"^training\.crop: \[{crop[0]}, {crop[1]}\] must fit in image_size \[32, 32\] and be"
    with pytest.raises(SsimreconError, match=message + " divisible by 4$"):
        run(data, tmp_path / "out", crop=crop)
    assert not (tmp_path / "out").exists()


def test_the_lr_schedule_sets_every_steps_learning_rate(
    data: dict[str, list[Path]], tmp_path: Path
) -> None:
    """training.lr_schedule onecycle: history.csv's lr (the last step's of each epoch) follows
    :func:`~ssimrecon.training.schedule.learning_rate` over epochs x batches steps."""
    from ssimrecon.training.schedule import learning_rate

    run(data, tmp_path, epochs=2, lr_schedule="onecycle", lr=3e-3)
    rows = history(tmp_path)
    steps = 2 * 6  # 12 training slices in batches of 2, two epochs
    for row, last_step in zip(rows, (5, 11)):
        assert row["lr"] == pytest.approx(learning_rate("onecycle", 3e-3, last_step, steps))
    assert rows[0]["lr"] > rows[1]["lr"]
