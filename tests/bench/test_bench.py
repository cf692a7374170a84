"""`ssimrecon bench` (package ssimrecon_bench) and the CPU fast path: the benchmark's bookkeeping,
never its timings.

The CLI test runs real rows on small settings and checks that summary.csv holds real numbers whose
``met`` agrees with value vs target; speed is what the benchmark reports, not what the tests assert.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import yaml

from ssimrecon.errors import SsimreconError
from ssimrecon.training import bf16, tcmalloc
from ssimrecon_bench import cli, core, runner
from ssimrecon_bench.config import DEMO_CONFIG, PAPER_CONFIG, load_config
from ssimrecon_bench.core import (
    BenchError,
    Context,
    Options,
    Row,
    Target,
    at_least,
    at_most,
    best_of_rounds,
    format_table,
    write_summary,
)
from ssimrecon_bench.demo import rule_seconds
from ssimrecon_bench.projection import projected_hours
from ssimrecon_bench.runner import run_rows
from ssimrecon_bench.ssim import ssim_images
from ssimrecon_bench.train import unet_flops_per_slice
from ssimrecon_bench.workspace import copy_workflow
from tests.helpers.workspace import deep_merge

VENV_BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]


def _clean_env(**extra: str) -> dict[str, str]:
    """This environment without any preload or ssimrecon fast-path variables, plus ``extra``.

    ``SSIMRECON_TCMALLOC`` is kept: ``SSIMRECON_TCMALLOC= pytest`` runs these tests as on a machine
    without the library.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "LD_PRELOAD"
        and k != tcmalloc.PATH_VAR
        and not k.startswith("SSIMRECON_")
        and not k.startswith("TCMALLOC_")
    }
    if tcmalloc.PATH_VAR in os.environ:
        env[tcmalloc.PATH_VAR] = os.environ[tcmalloc.PATH_VAR]
    env["PATH"] = str(VENV_BIN) + os.pathsep + env.get("PATH", "")
    env.update(extra)
    return env


def _read_summary(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == core.SUMMARY_COLUMNS
        return list(reader)


def _check_consistent(rows: list[dict[str, str]]) -> None:
    """Every value is a number; met is empty exactly for rows without target, else
    value-vs-target."""
    for row in rows:
        value = float(row["value"])
        target = Target.parse(row["target"])
        if target is None:
            assert row["met"] == "", row
        else:
            assert row["met"] in ("True", "False"), row
            assert (row["met"] == "True") == target.met(value), row
            if not math.isfinite(value):
                assert row["met"] == "False", row


# -----------------------------------------------------------------------------------------------
# the CLI
def test_bench_quick_rows_write_consistent_summary(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    cmd = [
        sys.executable,
        "-m",
        "ssimrecon_bench.cli",
        "--quick",
        "--only",
        "ssim",
        "train",
        "shards",
        "loader",
        "disk",
        "--output",
        str(out),
        "--train-size",
        "32",
        "32",
        "--train-steps",
        "1",
        "--train-rounds",
        "1",
        "--volume-shape",
        "64",
        "64",
        "40",
        "--image-size",
        "64",
        "64",
        "--work-dir",
        str(tmp_path / "work"),
    ]
    proc = subprocess.run(
        cmd, cwd=REPO, env=_clean_env(), capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    rows = _read_summary(out / "summary.csv")
    _check_consistent(rows)
    by_metric = {r["metric"]: r for r in rows}
    for metric, target in [
        ("ssim_speedup_vs_pytorch_msssim", ">= 5"),
        ("ssim_max_abs_diff_vs_skimage", "<= 1e-05"),
        ("train_fast_vs_plain_speedup", ">= 3"),
        ("shard_volumes_per_s", ">= 2"),
        ("loader_slices_per_s", ">= 2000"),
        ("disk_added_r_fraction", "<= 0.25"),
    ]:
        assert by_metric[metric]["target"] == target
    # every row was measured (no FAILED rows) and gives a positive finite number
    for row in rows:
        assert math.isfinite(float(row["value"])) and float(row["value"]) >= 0, row
    for metric in (
        "ssim_fwd_bwd_ms",
        "train_plain_slices_per_s",
        "train_fast_slices_per_s",
        "loader_slices_per_s",
    ):
        assert float(by_metric[metric]["value"]) > 0
    # an added acceleration costs a mask file, not a copy of the shards: the 25% bound holds
    assert by_metric["disk_added_r_fraction"]["met"] == "True"
    shard_bytes = sum(p.stat().st_size for p in (tmp_path / "work" / "shards").glob("IXI900.h5"))
    first = float(by_metric["disk_first_r_bytes_per_subject"]["value"]) * 1e6
    assert shard_bytes < first < shard_bytes + 100_000  # the shard plus its mask file
    # correctness is a real requirement, not a timing: the project's SSIM matches scikit-image
    assert float(by_metric["ssim_max_abs_diff_vs_skimage"]["value"]) <= 1e-5
    assert by_metric["ssim_max_abs_diff_vs_skimage"]["met"] == "True"
    # --quick leaves out the demo and the paper-DAG rows; no projection at a 32x32 training size
    assert not any(r["metric"].startswith(("demo_", "dag_", "cpu_paper")) for r in rows)

    details = json.loads((out / "details.json").read_text())
    # the bench re-executes itself with tcmalloc exactly when the library is installed
    assert details["machine"]["tcmalloc_loaded"] == (tcmalloc.tcmalloc_path() is not None)
    assert "targets missed" in proc.stdout and "ssim_speedup_vs_pytorch_msssim" in proc.stdout


def test_bench_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(SsimreconError, match="--train-steps: must be >= 1, got 0"):
        cli.main(["--only", "ssim", "--train-steps", "0", "--output", str(tmp_path)])
    with pytest.raises(SystemExit):
        cli.main(["--only", "nonsense"])
    # run as a script: the user error is one line and exit status 2, nothing is written
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ssimrecon_bench.cli",
            "--image-size",
            "0",
            "64",
            "--output",
            str(out),
        ],
        cwd=REPO,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: --image-size: sizes must be positive, got [0, 64]"
    ]
    assert not out.exists()


# -----------------------------------------------------------------------------------------------
# bookkeeping
def test_failed_row_is_reported_not_hidden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(opts: Options, ctx: Context) -> list[Row]:
        raise RuntimeError("disk on fire")

    def fine(opts: Options, ctx: Context) -> list[Row]:
        return [Row("shard_volumes_per_s", 1.5, "volumes/s", at_least(2.0)), Row("info", 3.0, "x")]

    monkeypatch.setitem(
        runner.ROW_FUNCS, "ssim", (broken, "ssim_speedup_vs_pytorch_msssim", "x", at_least(5.0))
    )
    monkeypatch.setitem(
        runner.ROW_FUNCS, "shards", (fine, "shard_volumes_per_s", "volumes/s", at_least(2.0))
    )
    opts = Options(config=load_config(REPO), work_dir=tmp_path)
    rows, _ = run_rows(["ssim", "shards"], opts)
    assert [r.metric for r in rows] == [
        "ssim_speedup_vs_pytorch_msssim",
        "shard_volumes_per_s",
        "info",
    ]
    assert math.isnan(rows[0].value) and rows[0].met is False and "disk on fire" in rows[0].note
    assert rows[1].met is False and rows[2].met is None
    write_summary(rows, tmp_path / "summary.csv")
    written = _read_summary(tmp_path / "summary.csv")
    _check_consistent(written)
    assert [r["met"] for r in written] == ["False", "False", ""]
    assert "NO" in format_table(rows)


def test_targets() -> None:
    assert at_least(5).met(5.0) and not at_least(5).met(4.99) and not at_least(5).met(math.nan)
    assert at_most(1e-5).met(0.0) and not at_most(1e-5).met(2e-5) and not at_most(10).met(math.inf)
    for target in (at_least(2000.0), at_most(1e-5), at_most(10.0)):
        assert Target.parse(str(target)) == target
    assert Target.parse("") is None
    with pytest.raises(ValueError):
        Target("==", 1.0)


def test_best_of_rounds_interleaves_and_keeps_each_best_round() -> None:
    calls: list[str] = []

    def slow() -> None:
        calls.append("slow")
        time.sleep(0.004)

    times = best_of_rounds({"fast": lambda: calls.append("fast"), "slow": slow}, 2, 3, warmup=1)
    assert calls == ["fast", "slow"] + (["fast"] * 3 + ["slow"] * 3) * 2
    assert times["slow"] >= 0.004 > times["fast"] >= 0


def _record_clock_and_cuda(monkeypatch: pytest.MonkeyPatch, events: list[str], used: bool) -> None:
    """A CUDA machine whose CUDA context exists (``used``) or not; clock readings and
    synchronisations are appended to ``events``."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: used)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: events.append("sync"))
    clock = time.perf_counter

    def recording_clock() -> float:
        events.append("clock")
        return clock()

    monkeypatch.setattr(time, "perf_counter", recording_clock)


def test_best_of_rounds_synchronises_cuda_before_each_clock_reading(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events: list[str] = []
    _record_clock_and_cuda(monkeypatch, events, used=True)
    best_of_rounds({"f": lambda: events.append("call")}, rounds=2, iters=2, warmup=1)
    round_ = ["sync", "clock", "call", "call", "sync", "clock"]
    assert events == ["call", *round_, *round_]


def test_best_of_rounds_never_synchronises_cpu_work(monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    _record_clock_and_cuda(monkeypatch, events, used=False)
    best_of_rounds({"f": lambda: events.append("call")}, rounds=2, iters=2, warmup=1)
    assert events == ["call", *(["clock", "call", "call", "clock"] * 2)]


def test_projected_hours() -> None:
    # 1 network x 1 epoch of 3600 training slices and 1080 validation slices (a third of a
    # step each) at 1 slice/s
    assert projected_hours(1.0, 3600, 1080, epochs=1, networks=1) == pytest.approx(1.1)
    assert projected_hours(2.0, 3600, 0, epochs=100, networks=2) == pytest.approx(100.0)
    assert math.isnan(projected_hours(0.0, 1, 1, 1, 1))


def _assert_holds(loaded: dict, expected: dict, where: str = "") -> None:
    """Every key of ``expected`` is in ``loaded`` with the same value (recursively)."""
    for key, value in expected.items():
        assert key in loaded, f"{where}{key}"
        if isinstance(value, dict):
            _assert_holds(loaded[key], value, f"{where}{key}.")
        else:
            assert loaded[key] == value, (f"{where}{key}", loaded[key], value)


def test_paper_settings_are_config_yaml_with_schema_defaults() -> None:
    in_file = yaml.safe_load((REPO / PAPER_CONFIG).read_text())
    loaded = load_config(REPO)
    _assert_holds(loaded, in_file)
    assert set(loaded) >= set(in_file)
    # keys config.yaml leaves out come from workflow/schemas/config.schema.yaml
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    threads = schema["properties"]["training"]["properties"]["threads"]["default"]
    assert "threads" not in in_file["training"] and loaded["training"]["threads"] == threads
    assert loaded["preprocessing"]["image_size"] == [160, 256]


def test_demo_settings_are_config_demo_yaml_over_config_yaml() -> None:
    paper = yaml.safe_load((REPO / PAPER_CONFIG).read_text())
    demo = yaml.safe_load((REPO / DEMO_CONFIG).read_text())
    loaded = load_config(REPO, (DEMO_CONFIG,))
    _assert_holds(loaded, deep_merge(paper, demo))
    # a demo key replaces the paper's, a key the demo leaves out keeps the paper's value
    assert loaded["model"]["base_channels"] == demo["model"]["base_channels"] != 64
    assert loaded["model"]["depth"] == paper["model"]["depth"]
    assert loaded["experiment"] == demo["experiment"]


def test_load_config_errors_name_the_file_or_key(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="config.yaml: no such config file"):
        load_config(tmp_path)
    ws = copy_workflow(REPO, tmp_path / "ws")
    (ws / "extra.yaml").write_text("split:\n  n_trian: 3\n")
    with pytest.raises(BenchError, match="unknown key 'split.n_trian'"):
        load_config(ws, ("extra.yaml",))
    (ws / "extra.yaml").write_text("mask:\n  acceleration: fast\n")
    with pytest.raises(BenchError, match="config key 'mask.acceleration'"):
        load_config(ws, ("extra.yaml",))


def test_unet_flops_per_slice_of_the_paper_network() -> None:
    model = load_config(REPO)["model"]
    flops = unet_flops_per_slice(model, (256, 256))
    assert 3.5e11 < flops < 5.0e11  # ~419 GFLOP forward + backward (the issue's ~450)
    forward = unet_flops_per_slice(model, (256, 256), backward=False)
    assert forward == pytest.approx(flops / 3, rel=0.05)


def test_ssim_images_are_valid_inputs() -> None:
    ref, est = ssim_images(n=2, size=64)
    assert ref.shape == est.shape == (2, 1, 64, 64) and ref.dtype == torch.float32
    assert (
        float(ref.min()) == 0.0
        and float(ref.max()) == 1.0
        and 0.0 <= float(est.min()) <= float(est.max()) <= 1.0
    )


def test_copy_workflow_copies_no_results(tmp_path: Path) -> None:
    ws = copy_workflow(REPO, tmp_path / "ws")
    assert (
        (ws / "Snakefile").is_file()
        and (ws / "workflow" / "rules").is_dir()
        and (ws / "config.yaml").is_file()
    )
    assert not (ws / "results").exists() and not (ws / ".snakemake").exists()
    with pytest.raises(BenchError):
        copy_workflow(tmp_path / "nowhere", tmp_path / "ws2")


def test_demo_rule_seconds_sum_the_benchmark_files_per_rule(tmp_path: Path) -> None:
    (tmp_path / "train").mkdir()
    for name, seconds in (("Net-mse", "12.5"), ("Net-mse-dssim", "7.5")):
        (tmp_path / "train" / f"{name}.tsv").write_text(f"s\th:m:s\n{seconds}\t0:00:12\n")
    (tmp_path / "report.tsv").write_text("s\th:m:s\n1.0\t0:00:01\n")
    (tmp_path / "empty.tsv").write_text("")
    assert rule_seconds(tmp_path) == {"train": 20.0, "report": 1.0}


# -----------------------------------------------------------------------------------------------
# tcmalloc
_PROBE = textwrap.dedent("""
    import json, os, sys
    from ssimrecon.training import tcmalloc
    print(json.dumps({"phase": "%s", "LD_PRELOAD": os.environ.get("LD_PRELOAD"),
                      "loaded": tcmalloc.tcmalloc_loaded()}), flush=True)
    %s
    print(json.dumps({"phase": "after", "LD_PRELOAD": os.environ.get("LD_PRELOAD"),
                      "loaded": tcmalloc.tcmalloc_loaded()}), flush=True)
""")


def _probe(call: str, env: dict[str, str], prologue: str = "") -> list[dict]:
    code = prologue + _PROBE % ("start", call)
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def test_ensure_tcmalloc_reexecs_with_preload_when_installed() -> None:
    lines = _probe("tcmalloc.ensure_tcmalloc()", _clean_env())
    lib = tcmalloc.tcmalloc_path()
    if lib is not None:
        # start (no preload) -> execve -> start again with the library preloaded and mapped -> after
        assert [line["phase"] for line in lines] == ["start", "start", "after"]
        assert lines[0]["LD_PRELOAD"] is None and lines[0]["loaded"] is False
        assert lines[1]["LD_PRELOAD"].split(":")[0] == lib and lines[1]["loaded"] is True
        assert lines[2]["loaded"] is True
    else:
        # no library: nothing happens, the process carries on without a preload
        assert [line["phase"] for line in lines] == ["start", "after"]
        assert lines[1]["LD_PRELOAD"] is None and lines[1]["loaded"] is False


def test_ensure_tcmalloc_is_noop_without_library_or_when_disabled(tmp_path: Path) -> None:
    for env in (
        _clean_env(SSIMRECON_TCMALLOC=""),
        _clean_env(SSIMRECON_TCMALLOC=str(tmp_path / "missing.so")),
        _clean_env(SSIMRECON_NO_TCMALLOC="1"),
    ):
        lines = _probe("tcmalloc.ensure_tcmalloc()", env)
        assert [line["phase"] for line in lines] == ["start", "after"]
        assert lines[1]["LD_PRELOAD"] is None and lines[1]["loaded"] is False


def test_ensure_tcmalloc_keeps_existing_preload_entries() -> None:
    lib = tcmalloc.tcmalloc_path()
    other = "/nonexistent-but-harmless.so"  # the loader warns about it and carries on
    lines = _probe("tcmalloc.ensure_tcmalloc()", _clean_env(LD_PRELOAD=other))
    if lib is not None:
        assert lines[-1]["LD_PRELOAD"] == f"{lib}:{other}" and lines[-1]["loaded"] is True
    else:
        assert lines[-1]["LD_PRELOAD"] == other


def test_cli_preload_only_reexecs_the_ssimrecon_entry_point() -> None:
    lib = tcmalloc.tcmalloc_path()
    # a library caller (argv[0] is not ssimrecon) is never re-executed
    lines = _probe(
        "tcmalloc.cli_preload('bench')",
        _clean_env(),
        prologue="import sys; sys.argv = ['pytest', 'bench']\n",
    )
    assert [line["phase"] for line in lines] == ["start", "after"]
    # nor is another command's process
    lines = _probe(
        "tcmalloc.cli_preload('train')",
        _clean_env(),
        prologue="import sys; sys.argv = ['/x/bin/ssimrecon', 'bench']\n",
    )
    assert [line["phase"] for line in lines] == ["start", "after"]
    lines = _probe(
        "tcmalloc.cli_preload('bench')",
        _clean_env(),
        prologue="import sys; sys.argv = ['/x/bin/ssimrecon', 'bench']\n",
    )
    expected = ["start", "start", "after"] if lib is not None else ["start", "after"]
    assert [line["phase"] for line in lines] == expected
    assert lines[-1]["loaded"] is (lib is not None)


def test_strip_tcmalloc() -> None:
    env = {
        "LD_PRELOAD": "/usr/lib/libtcmalloc_minimal.so.4:/opt/libfoo.so",
        tcmalloc.REEXEC_MARKER: "1",
        "A": "b",
    }
    assert tcmalloc.strip_tcmalloc(env) == {"LD_PRELOAD": "/opt/libfoo.so", "A": "b"}
    assert tcmalloc.strip_tcmalloc({"LD_PRELOAD": "libtcmalloc.so.4"}) == {}
    assert env["LD_PRELOAD"].startswith("/usr/lib/libtcmalloc")  # the input is not modified


def test_tcmalloc_path_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``$SSIMRECON_TCMALLOC`` replaces the search; without it the search order is asserted.

    Mutation tried (fails this test): the loops over names and folders swapped in ``tcmalloc_path``
    (a folder's plain libtcmalloc then beats the minimal one elsewhere)."""
    fake = tmp_path / "libtcmalloc_minimal.so.4"
    fake.write_bytes(b"")
    monkeypatch.setenv("SSIMRECON_TCMALLOC", str(fake))
    assert tcmalloc.tcmalloc_path() == str(fake.resolve())
    monkeypatch.setenv("SSIMRECON_TCMALLOC", "")
    assert tcmalloc.tcmalloc_path() is None
    monkeypatch.delenv("SSIMRECON_TCMALLOC")
    # The search, on folders of our own: the interpreter's lib/ first, then the system's globs;
    # the minimal library is preferred wherever it is.
    prefix, system = tmp_path / "prefix", tmp_path / "usr" / "lib" / "x86_64-linux-gnu"
    (prefix / "lib").mkdir(parents=True)
    system.mkdir(parents=True)
    monkeypatch.setattr(sys, "prefix", str(prefix))
    monkeypatch.setattr(tcmalloc, "_LIB_DIRS", (str(tmp_path / "usr" / "lib" / "*-linux-gnu"),))
    assert tcmalloc.tcmalloc_path() is None
    (system / "libtcmalloc.so.4").write_bytes(b"")
    assert tcmalloc.tcmalloc_path() == str(system / "libtcmalloc.so.4")
    (prefix / "lib" / "libtcmalloc.so.4").write_bytes(b"")
    assert tcmalloc.tcmalloc_path() == str(prefix / "lib" / "libtcmalloc.so.4")
    (system / "libtcmalloc_minimal.so.4").write_bytes(b"")
    assert tcmalloc.tcmalloc_path() == str(system / "libtcmalloc_minimal.so.4")


def _cpu_flags() -> set[str]:
    """The CPU feature flags the kernel reports in /proc/cpuinfo."""
    flags: set[str] = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return flags


def test_bf16_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """True exactly when oneDNN is there and the CPU has AVX512-BF16 or AMX tiles: on this machine
    as /proc/cpuinfo says, and with each probe patched.

    Mutations tried (each fails this test): ``return True`` in place of the final ``return False``,
    and the AMX probe name dropped from the loop."""
    native = bool({"avx512_bf16", "amx_tile"} & _cpu_flags())
    assert bf16.cpu_supports_bf16() is (native and torch.backends.mkldnn.is_available())
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: True)
    for avx512_bf16, amx in [(False, False), (True, False), (False, True)]:
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v)
        assert bf16.cpu_supports_bf16() is (avx512_bf16 or amx), (avx512_bf16, amx)
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    assert bf16.cpu_supports_bf16() is False


# -----------------------------------------------------------------------------------------------
# make gpu-check (ssimrecon_bench.gpu) on a machine without CUDA
TINY_GPU_CHECK = [
    "--cpu-size",
    "64",
    "--model-json",
    json.dumps({"base_channels": 4, "depth": 2}),
    "--volume-shape",
    "64",
    "64",
    "8",
]


def _gpu_check(out: Path, *extra: str) -> subprocess.CompletedProcess:
    """The gpu-check script with CUDA hidden (the CPU path, whatever this machine has)."""
    cmd = [sys.executable, "-m", "ssimrecon_bench.gpu", "--output", str(out), *extra]
    env = _clean_env(CUDA_VISIBLE_DEVICES="")
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_gpu_check_without_cuda_runs_the_cpu_rows_and_exits_0(tmp_path: Path) -> None:
    proc = _gpu_check(tmp_path, *TINY_GPU_CHECK)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "no CUDA device on this machine" in proc.stdout
    rows = _read_summary(tmp_path / "gpu.csv")
    _check_consistent(rows)
    by_metric = {r["metric"]: r for r in rows}
    for metric in (
        "gpu_train_fp32_slices_per_s",
        "gpu_train_bf16_cl_slices_per_s",
        "gpu_train_bf16_cl_torchnorm_slices_per_s",
        "gpu_eval_slices_per_s",
        "gpu_loader_slices_per_s",
        "gpu_ssim_fwd_bwd_ms",
        "gpu_pytorch_msssim_fwd_bwd_ms",
    ):
        assert float(by_metric[metric]["value"]) > 0, by_metric[metric]
    best = max(
        float(by_metric[f"gpu_train_{v}_slices_per_s"]["value"])
        for v in ("bf16_cl", "bf16_cl_torchnorm")
    )
    assert float(by_metric["gpu_train_best_slices_per_s"]["value"]) == pytest.approx(best)
    ratio = float(by_metric["gpu_loader_slices_per_s"]["value"]) / best
    assert float(by_metric["gpu_loader_vs_consumption"]["value"]) == pytest.approx(ratio)
    assert by_metric["gpu_loader_vs_consumption"]["target"] == ">= 3"
    # figures that need CUDA are NaN and miss their targets, never invented
    for metric in ("gpu_host_syncs_per_step", "gpu_train_mfu", "gpu_peak_memory_gib"):
        assert math.isnan(float(by_metric[metric]["value"])), metric
    assert by_metric["gpu_host_syncs_per_step"]["met"] == "False"
    assert by_metric["gpu_train_mfu"]["target"] == ">= 0.4"
    details = json.loads((tmp_path / "gpu.json").read_text())
    # every row of a GPU run is written; those only CUDA can measure are NaN and say so
    notes = {r["metric"]: r["note"] for r in details["summary"]}
    cuda_only = [m for m in notes if "compile" in m or "_batch16_" in m or "projected" in m]
    assert len(cuda_only) == 5, cuda_only
    for metric in cuda_only:
        assert math.isnan(float(by_metric[metric]["value"])) and notes[metric] == "no CUDA"
    assert details["device"] == "CPU" and details["skipped"] == []
    assert "gpu_check_skipped_rows" in proc.stdout


def test_gpu_check_reports_what_its_time_budget_skipped(tmp_path: Path) -> None:
    proc = _gpu_check(tmp_path, *TINY_GPU_CHECK, "--budget-s", "0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["metric"]: r for r in _read_summary(tmp_path / "gpu.csv")}
    skipped = json.loads((tmp_path / "gpu.json").read_text())["skipped"]
    # 3 training variants, evaluation, shards (so no loader or sync rows), SSIM
    assert len(skipped) == 6 and float(rows["gpu_check_skipped_rows"]["value"]) == 6
    assert math.isnan(float(rows["gpu_train_fp32_slices_per_s"]["value"]))
    assert "skipped for time: fp32 batch 4" in proc.stdout


def test_bf16_peaks_by_device_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from ssimrecon_bench.gpu_rows import PEAK_ENV, bf16_peak_tflops

    monkeypatch.delenv(PEAK_ENV, raising=False)
    for name, peak in [
        ("NVIDIA H100 80GB HBM3", 989.0),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA H200", 989.0),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA L40S", 362.0),
        ("NVIDIA L4", 121.0),
        ("NVIDIA A10", 125.0),
    ]:
        assert bf16_peak_tflops(name)[0] == peak, name
    value, note = bf16_peak_tflops("Tesla V100-SXM2-16GB")
    assert math.isnan(value) and PEAK_ENV in note
    monkeypatch.setenv(PEAK_ENV, "100")
    assert bf16_peak_tflops("Tesla V100-SXM2-16GB")[0] == 100.0
