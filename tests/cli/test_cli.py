"""The `ssimrecon` dispatcher: help, version, unknown commands, light `<command> --help`."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import pytest

from ssimrecon.cli import COMMANDS, main

LIBRARY_COMMANDS = sorted(
    c for c, (target, _) in COMMANDS.items() if target.startswith("ssimrecon.")
)


def test_help_lists_every_command_with_its_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    listing = out.split("commands:\n", 1)[1].splitlines()
    rows = {line.split()[0]: line for line in listing}
    assert set(rows) == set(COMMANDS) and len(COMMANDS) == 23
    for command, (_, description) in COMMANDS.items():
        assert rows[command].rstrip().endswith(description)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"ssimrecon {version('ssimrecon')}\n"


def test_no_command_prints_usage_on_stderr_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("error: no command given")
    assert "commands:" in captured.err


def test_a_figure_job_log_holds_no_font_subsetting_lines(tmp_path) -> None:
    """Saving a PDF subsets its fonts: fontTools logs ~150 INFO lines unless quietened."""
    script = (
        "import logging, matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt\n"
        "matplotlib.rcParams['pdf.fonttype'] = 42  # as Figure 2: TrueType, subset by fontTools\n"
        "from ssimrecon.cli import configure_logging\n"
        "configure_logging(); logging.getLogger('ssimrecon').info('job line')\n"
        f"plt.text(0.5, 0.5, 'SSIM'); plt.savefig({str(tmp_path / 'f.pdf')!r})\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "job line" in proc.stderr and "fontTools" not in proc.stderr, proc.stderr[:500]


def test_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trian"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown command 'trian'") and "train" in err


def test_every_command_has_a_function() -> None:
    for command in LIBRARY_COMMANDS:
        module, function = COMMANDS[command][0].split(":")
        __import__(module)
        assert callable(getattr(sys.modules[module], function)), command


def test_command_help_imports_no_heavy_library() -> None:
    """`<command> --help` parses before importing torch, numpy or matplotlib (fresh interpreter)."""
    probe = (
        "import sys\n"
        "from ssimrecon.cli import main\n"
        "for command in sys.argv[1:]:\n"
        "    try:\n"
        "        main([command, '--help'])\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code == 0, (command, exc.code)\n"
        "heavy = sorted({'torch', 'numpy', 'matplotlib', 'h5py'} & set(sys.modules))\n"
        "print('heavy:', ','.join(heavy))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, *LIBRARY_COMMANDS],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("usage: ssimrecon ") == len(LIBRARY_COMMANDS)
    assert proc.stdout.strip().endswith("heavy:")


def test_python_dash_m_and_stage_error_contract(tmp_path) -> None:
    """`python -m ssimrecon.cli` works; a user error is one `error:` line naming the key, exit 2."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ssimrecon.cli",
            "split",
            "--subjects",
            str(tmp_path / "subjects.csv"),
            "--output",
            str(tmp_path / "split.csv"),
            "--config-json",
            '{"n_train": 1, "n_val": 1, "n_test": null}',
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == "error: split.seed: missing setting"
