"""The runs of an experiment: one training run per (network, swept weights, acceleration, seed).

Without a ``study:`` section each network of ``networks:`` is one run named after the network,
trained at ``mask.acceleration`` with ``training.seed`` (the paper's two-network experiment). With
``study: {seeds, accelerations, sweep}`` every network is trained once per acceleration and seed,
and once per combination of the swept weights of the loss terms it has (a term it does not have is
not swept for it: Net-mse stays one run per acceleration and seed), and with the physics axes
``study.forward_models`` and ``study.data_consistency`` once per forward model and DC setting. Run
names are stable and readable:
``<network>[_<term><weight>...]_R<acceleration>[_<forward model>][_dc]_seed<seed>``, e.g.
``Net-mse-dssim_dssim0.1_R10_seed1``, ``Net-mse_R10_seed1`` and
``Net-mse-dssim_dssim0.1_R10_multicoil_dc_seed0``; numbers are written with ``%g``; the forward
model and ``dc`` tokens appear only for their axes' non-default values (magnitude, no DC: the
names of a study without those axes stay as they were).
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

#: the method name of the zero-filled input (``zero-filled_R<acc>`` in a study): a reference that
#: Table 1 and a reader study show, never a tested comparison
ZERO_FILLED = "zero-filled"


def is_zero_filled(method: str) -> bool:
    """Whether ``method`` names the zero-filled input (``zero-filled``, ``zero-filled_R<acc>``)."""
    return method == ZERO_FILLED or method.startswith(f"{ZERO_FILLED}_R")


@dataclasses.dataclass(frozen=True)
class Run:
    """One training run: its name, the network it instantiates, its loss weights, the acceleration
    of its mask and its training seed. ``swept`` names the loss terms the study varied for it;
    ``condition`` is the name without the seed (the runs a seed average pools)."""

    name: str
    condition: str
    network: str
    loss: dict[str, float]
    acceleration: float
    seed: int
    swept: tuple[str, ...]
    forward_model: str = "magnitude"
    data_consistency: bool = False


def number_label(value: float) -> str:
    """``%g`` text of a weight or acceleration as it appears in run and file names (10.0 -> 10)."""
    return f"{float(value):g}"


def accelerations(config: dict[str, Any]) -> list[float]:
    """Accelerations the experiment trains at, the first one first (``mask.acceleration`` without a
    study)."""
    study = config.get("study")
    return (
        [float(r) for r in study["accelerations"]]
        if study
        else [float(config["mask"]["acceleration"])]
    )


def forward_models(config: dict[str, Any]) -> list[str]:
    """The forward models the experiment simulates: ``study.forward_models``, else
    ``preprocessing.forward_model`` (magnitude when the config has none)."""
    study = config.get("study") or {}
    if study.get("forward_models"):
        return [str(m) for m in study["forward_models"]]
    return [str(config.get("preprocessing", {}).get("forward_model", "magnitude"))]


def forward_model_axis(config: dict[str, Any]) -> bool:
    """Whether the study varies the forward model (``study.forward_models``): then each forward
    model has its own shards (``shards/<forward model>/``) and name token."""
    return bool((config.get("study") or {}).get("forward_models"))


def forward_model_token(config: dict[str, Any], forward_model: str) -> str:
    """``_complex``, ``_multicoil`` in names on the forward-model axis; empty for magnitude and
    without the axis."""
    on_axis = forward_model_axis(config) and forward_model != "magnitude"
    return f"_{forward_model}" if on_axis else ""


def network_data_consistency(config: dict[str, Any], spec: dict[str, Any]) -> bool:
    """``model.data_consistency`` of a network (its own override, else the top-level model's)."""
    model = {**config.get("model", {}), **spec.get("model", {})}
    return bool(model.get("data_consistency", False))


def expand_runs(config: dict[str, Any]) -> dict[str, Run]:
    """Run name -> :class:`Run`, in a stable order (network, swept weights, acceleration,
    forward model, data consistency, seed)."""
    study = config.get("study")
    runs: dict[str, Run] = {}
    for network, spec in config["networks"].items():
        loss = {term: float(w) for term, w in spec["loss"].items()}
        dc_default = network_data_consistency(config, spec)
        if not study:
            runs[network] = Run(
                network,
                network,
                network,
                loss,
                float(config["mask"]["acceleration"]),
                int(config["training"]["seed"]),
                (),
                forward_models(config)[0],
                dc_default,
            )
            continue
        dc_axis = study.get("data_consistency")
        dc_values = [bool(v) for v in dc_axis] if dc_axis else [dc_default]
        swept = tuple(sorted(t for t in study.get("sweep", {}) if t in loss))
        grids = [[float(w) for w in study["sweep"][t]] for t in swept]
        for weights in itertools.product(*grids):
            run_loss = {**loss, **dict(zip(swept, weights))}
            label = "".join(f"_{t}{number_label(w)}" for t, w in zip(swept, weights))
            for acceleration, model, dc in itertools.product(
                accelerations(config), forward_models(config), dc_values
            ):
                physics = forward_model_token(config, model) + ("_dc" if dc and dc_axis else "")
                condition = f"{network}{label}_R{number_label(acceleration)}{physics}"
                for seed in study["seeds"]:
                    name = f"{condition}_seed{int(seed)}"
                    runs[name] = Run(
                        name,
                        condition,
                        network,
                        run_loss,
                        float(acceleration),
                        int(seed),
                        swept,
                        model,
                        dc,
                    )
    return runs
