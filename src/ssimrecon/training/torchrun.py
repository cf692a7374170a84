"""The program that starts ``ssimrecon train``: the CLI itself, or torchrun for several GPUs.

Importing this module does not import torch: workflow/rules/train.smk calls :func:`launch_command`
while Snakemake parses the workflow.
"""

from __future__ import annotations

__all__ = ["launch_command"]


def launch_command(gpus: int, python: str) -> list[str]:
    """The program that runs ``ssimrecon <command> ...`` for ``training.gpus`` = ``gpus``:
    ``ssimrecon`` itself for one GPU, else ``gpus`` processes on this node started by torchrun
    (``<python> -m torch.distributed.run --standalone --nproc-per-node=<gpus> -m ssimrecon.cli``;
    :mod:`ssimrecon.training.distributed`).  Rule train uses it (with ``python`` = "python")."""
    if gpus == 1:
        return ["ssimrecon"]
    return [
        python,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={int(gpus)}",
        "-m",
        "ssimrecon.cli",
    ]
