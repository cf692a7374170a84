"""Training data: slices of k-space shards as a torch ``Dataset``, a resumable sampler and a loader.

* :class:`SliceDataset` indexes ``(shard, slice)`` pairs whose ``slice_signal`` (fraction of target
  pixels
  above 10% of the volume maximum, written by :mod:`ssimrecon.kspace.shards`) is at least
  ``min_signal_fraction``:
  the documented rule that drops near-empty slices (outside the head) from training and validation.
  HDF5 files are opened lazily, once per process: a DataLoader worker forked from a process that had
  them
  open notices the new pid and opens its own handles (HDF5 handles must not be shared across fork).
* Shards store no k-space: the dataset applies its one sampling ``mask`` (H, W) as it reads
  (``mask * fft2c(target * exp(i * phase))``, :mod:`ssimrecon.kspace.shards`, as fastMRI does), and
  items carry only the sampled k-space points: ``samples`` ``(n_sampled, 2)`` float32 =
  ``kspace[mask]`` as real/imag (row-major order of the mask), about 1/R of the plane; this keeps
  the worker -> main process transfer small; multicoil shards give ``(C, n_sampled, 2)``, every
  coil under the same mask, and the dataset holds their shared ``sensitivities`` (C, H, W) once
  (shards of measured k-space hold one estimate per slice: items then carry their slice's
  ``sensitivities`` (C, H, W, 2) float32, real/imag).
  Items also carry the reference ``(1, H, W)``, the
  volume's ``data_range``, its ``input_scale`` (the network's intensity scale, from the volume's
  zero-filled magnitude alone: :meth:`~ssimrecon.kspace.shards.ShardReader.input_scale`, found
  once per shard) and subject/slice indices.  :func:`to_network_input` scatters a batch of
  samples back into zero k-space on the batch's device (at :attr:`SliceDataset.flat_index`, found
  once per dataset: no ``nonzero()`` and no host synchronisation per batch) and forms the
  zero-filled magnitude.
  ``__getitems__`` reads a whole batch at once.
* :class:`EpochSampler` draws ``torch.randperm`` from a generator seeded by ``(seed, epoch)`` only,
  so an
  epoch's order can be regenerated after a restart and resumed at a batch offset (``skip``).
"""

from __future__ import annotations

import hashlib
import os
import signal
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.data._utils.collate import collate_tensor_fn

from ssimrecon.errors import ShardError
from ssimrecon.kspace.fft import zero_filled_magnitude_torch
from ssimrecon.kspace.preprocess import simulate_kspace
from ssimrecon.kspace.shards import ShardReader

__all__ = [
    "SliceDataset",
    "EpochSampler",
    "scatter_samples",
    "to_network_input",
    "collate_slices",
    "make_loader",
    "derive_seed",
]


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed that depends only on ``parts`` (stable across processes and Python
    versions)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class SliceDataset(Dataset):
    """Slices of one or more shards whose ``slice_signal >= min_signal_fraction``.

    ``mask`` (H, W) bool is the undersampling applied to every slice. ``subject`` in an item is the
    shard's position in ``shard_paths``; ``slice`` its slice position in that shard.  Raises
    :class:`ShardError` naming the shards if no slice passes the filter.
    """

    def __init__(
        self,
        shard_paths: Sequence[Path | str],
        mask: np.ndarray,
        min_signal_fraction: float = 0.0,
    ) -> None:
        self.shard_paths = [Path(p) for p in shard_paths]
        if not self.shard_paths:
            raise ShardError("no shards given")
        self.min_signal_fraction = float(min_signal_fraction)
        self.data_ranges: list[float] = []
        #: per shard: the network's intensity scale (zero-filled magnitude, no reference statistic)
        self.input_scales: list[float] = []
        self.subjects: list[str] = []
        self.index: list[tuple[int, int]] = []
        self.shape: tuple[int, int] | None = None
        self.num_total = 0
        #: ``preprocessing.forward_model`` of the shards (all the same)
        self.forward_model: str | None = None
        #: multicoil: the shards' coil sensitivities (C, H, W) complex64 (all the same), else None
        self.sensitivities: np.ndarray | None = None
        #: multicoil shards of measured k-space: one sensitivity estimate per slice, in the items
        self.per_slice_sensitivities: bool | None = None
        mask = np.asarray(mask, dtype=bool)
        for s, path in enumerate(self.shard_paths):
            with ShardReader(path, mask) as reader:
                attrs = dict(reader.attrs)
                signal_fraction = [float(v) for v in reader.slice_signal]
                shape = tuple(int(n) for n in reader.shape[1:])
                self.input_scales.append(reader.input_scale())
                per_slice = reader.per_slice_sensitivities
                maps = None if per_slice else reader.sensitivities
                self._same_physics(path, reader.forward_model, maps, per_slice)
            if "data_range" not in attrs:
                raise ShardError(f"{path}: attribute 'data_range' missing")
            data_range = float(attrs["data_range"])
            if not data_range > 0:
                raise ShardError(
                    f"{path}: attribute 'data_range' must be positive, got {data_range}"
                )
            if self.shape is None:
                self.shape = shape  # type: ignore[assignment]
            elif shape != self.shape:
                raise ShardError(
                    f"{path}: slice shape {shape} differs from {self.shape} of "
                    f"{self.shard_paths[0]}"
                )
            self.data_ranges.append(data_range)
            self.subjects.append(str(attrs.get("subject", path.stem)))
            self.num_total += len(signal_fraction)
            self.index += [
                (s, i) for i, f in enumerate(signal_fraction) if f >= self.min_signal_fraction
            ]
        if not self.index:
            names = ", ".join(str(p) for p in self.shard_paths)
            raise ShardError(
                f"no slice with slice_signal >= {self.min_signal_fraction} in shards: {names} "
                "(lower training.min_signal_fraction?)"
            )
        self._mask = mask
        #: the shared sampling mask (H, W) bool; ``samples`` are ``kspace[mask]`` in row-major order
        self.mask = torch.from_numpy(mask)
        self._flat = np.flatnonzero(mask)  # row-major positions of the sampled points
        #: the same positions as an int64 tensor (:func:`scatter_samples`), computed once here
        self.flat_index = torch.from_numpy(self._flat.astype(np.int64))
        self.num_sampled = int(self._flat.size)
        self._readers: dict[int, Any] = {}
        self._pid: int | None = None

    def _same_physics(
        self, path: Path, model: str, maps: np.ndarray | None, per_slice: bool = False
    ) -> None:
        """Record the first shard's forward model and sensitivities; ShardError naming ``path``
        when a later shard's differ (one network sees one kind of data)."""
        if self.per_slice_sensitivities is None:
            self.per_slice_sensitivities = per_slice
        elif per_slice != self.per_slice_sensitivities:
            raise ShardError(
                f"{path}: sensitivities {'per slice' if per_slice else 'shared'}, unlike those "
                f"of {self.shard_paths[0]} (measured and simulated multicoil data do not mix)"
            )
        if self.forward_model is None:
            self.forward_model, self.sensitivities = model, maps
        elif model != self.forward_model:
            raise ShardError(
                f"{path}: forward_model {model} differs from {self.forward_model} of "
                f"{self.shard_paths[0]}"
            )
        elif maps is not None and not np.array_equal(maps, self.sensitivities):
            raise ShardError(
                f"{path}: coil sensitivities differ from those of {self.shard_paths[0]}"
            )

    def __len__(self) -> int:
        return len(self.index)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_readers"], state["_pid"] = {}, None  # handles never travel (spawn/pickle)
        return state

    def _reader(self, shard: int) -> Any:
        pid = os.getpid()
        if (
            self._pid != pid
        ):  # first use in this process (e.g. a forked worker): drop inherited handles
            self._readers, self._pid = {}, pid
        reader = self._readers.get(shard)
        if reader is None:
            reader = ShardReader(self.shard_paths[shard], self._mask)
            reader.__enter__()
            self._readers[shard] = reader
        return reader

    def __getitem__(self, i: int) -> dict[str, Any]:
        shard, slice_ = self.index[i]
        kspace, target = self._reader(shard).read_slice(slice_)
        k = np.ascontiguousarray(kspace, dtype=np.complex64)
        k = k.reshape(-1) if k.ndim == 2 else k.reshape(k.shape[0], -1)
        samples = np.take(k, self._flat, axis=-1).view(np.float32).reshape(*k.shape[:-1], -1, 2)
        extra = {}
        if self.per_slice_sensitivities:
            maps = np.ascontiguousarray(
                self._reader(shard).slice_sensitivities(slice_), np.complex64
            )
            extra["sensitivities"] = torch.from_numpy(maps.view(np.float32).reshape(*maps.shape, 2))
        return {
            **extra,
            "samples": torch.from_numpy(samples),
            "target": torch.from_numpy(target.astype("float32", copy=False)).unsqueeze(0),
            "data_range": torch.tensor(self.data_ranges[shard], dtype=torch.float32),
            "input_scale": self.input_scales[shard],
            "subject": shard,
            "slice": slice_,
        }

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """The items of a whole batch (what a DataLoader worker asks for): every target is read
        straight into one preallocated array, the batch's k-space formed in one FFT and the sampled
        points of all slices gathered in one ``np.take``."""
        assert self.shape is not None
        if self.forward_model == "multicoil":  # the stored coil k-space, one slice each
            return [self[i] for i in indices]
        n = len(indices)
        target = np.empty((n, 1, *self.shape), dtype=np.float32)
        phase: np.ndarray | None = None
        for j, i in enumerate(indices):
            shard, slice_ = self.index[i]
            reader = self._reader(shard)
            reader.read_target_into(slice_, target[j, 0])
            slice_phase = reader.read_phase(slice_)
            if slice_phase is not None:
                phase = np.zeros((n, *self.shape), np.float32) if phase is None else phase
                phase[j] = slice_phase
        kspace = simulate_kspace(target[:, 0], self._mask, phase)
        samples = torch.from_numpy(
            np.take(kspace.reshape(n, -1), self._flat, axis=1).view(np.float32).reshape(n, -1, 2)
        )
        targets = torch.from_numpy(target)
        out = []
        for j, i in enumerate(indices):
            shard, slice_ = self.index[i]
            out.append(
                {
                    "samples": samples[j],
                    "target": targets[j],
                    "data_range": torch.tensor(self.data_ranges[shard], dtype=torch.float32),
                    "input_scale": self.input_scales[shard],
                    "subject": shard,
                    "slice": slice_,
                }
            )
        return out

    def close(self) -> None:
        """Close this process's open shard handles."""
        if self._pid == os.getpid():
            for reader in self._readers.values():
                reader.__exit__(None, None, None)
        self._readers, self._pid = {}, None


def scatter_samples(
    samples: torch.Tensor, flat_index: torch.Tensor, shape: tuple[int, int]
) -> torch.Tensor:
    """Sampled points ``(B, n, 2)`` (real/imag) -> complex k-space ``(B, H, W)`` on ``samples``'
    device, zero where nothing was sampled.

    ``flat_index`` ``(n,)`` int64: the row-major positions of the sampled points in the (H, W) =
    ``shape`` plane (:attr:`SliceDataset.flat_index`, computed once per dataset; ideally already on
    the device).  Only shapes are checked here, so a CUDA step never waits for the device.
    """
    if samples.dim() not in (3, 4) or samples.shape[-1] != 2:
        raise ValueError(f"expected samples of shape (B, n_sampled, 2), got {tuple(samples.shape)}")
    if flat_index.dim() != 1 or flat_index.numel() != samples.shape[-2]:
        raise ValueError(
            f"mask has {flat_index.numel()} sampled points, samples have {samples.shape[-2]}"
        )
    lead = tuple(samples.shape[:-2])
    k = torch.zeros(*lead, shape[0] * shape[1], dtype=torch.complex64, device=samples.device)
    k[..., flat_index.to(samples.device)] = torch.view_as_complex(samples.float().contiguous())
    return k.reshape(*lead, *shape)


def to_network_input(
    samples: torch.Tensor, flat_index: torch.Tensor, shape: tuple[int, int]
) -> torch.Tensor:
    """Zero-filled magnitude ``(B, 1, H, W)`` float32 of a batch of sampled points ``(B, n, 2)``
    (positions ``flat_index`` in the (H, W) = ``shape`` plane), computed on ``samples``' device."""
    return zero_filled_magnitude_torch(scatter_samples(samples, flat_index, shape)).unsqueeze(1)


class EpochSampler(Sampler[int]):
    """Random order of ``range(n)`` that depends only on ``(seed, epoch)``.

    ``set_epoch(epoch, skip)`` selects the epoch and drops its first ``skip`` indices (resume at
    batch b with ``skip = b * batch_size``); ``max_samples`` caps each epoch's length (before
    skipping).
    """

    def __init__(self, n: int, seed: int, max_samples: int | None = None) -> None:
        if n <= 0:
            raise ValueError("EpochSampler needs n > 0")
        self.n, self.seed = int(n), int(seed)
        self.max_samples = None if max_samples is None else max(0, int(max_samples))
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = int(epoch), max(0, int(skip))

    def order(self, epoch: int | None = None) -> torch.Tensor:
        """The full (capped) permutation for ``epoch`` (default: the current one)."""
        g = torch.Generator().manual_seed(
            derive_seed("order", self.seed, self.epoch if epoch is None else epoch)
        )
        perm = torch.randperm(self.n, generator=g)
        return perm if self.max_samples is None else perm[: self.max_samples]

    def epoch_length(self) -> int:
        """Number of samples in a full epoch (after the cap)."""
        return self.n if self.max_samples is None else min(self.n, self.max_samples)

    def __iter__(self) -> Iterator[int]:
        return iter(self.order()[self.skip :].tolist())

    def __len__(self) -> int:
        return max(0, self.epoch_length() - self.skip)


def collate_slices(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack ``samples`` and ``target`` into tensors; ``data_range``, ``input_scale`` (float32),
    ``subject`` and ``slice`` (int64) become small numpy arrays.  numpy arrays are pickled by
    value, whereas every tensor a worker sends costs its own shared-memory segment and file
    descriptor: three scalar tensors per batch cut the worker -> main transfer rate by a third
    (docs/performance.md)."""
    extra = {}
    if "sensitivities" in items[0]:  # per-slice sensitivities of measured k-space
        extra["sensitivities"] = collate_tensor_fn([it["sensitivities"] for it in items])
    return {  # collate_tensor_fn stacks straight into shared memory inside a worker
        **extra,
        "samples": collate_tensor_fn([it["samples"] for it in items]),
        "target": collate_tensor_fn([it["target"] for it in items]),
        "data_range": np.array([float(it["data_range"]) for it in items], dtype=np.float32),
        "input_scale": np.array([float(it["input_scale"]) for it in items], dtype=np.float32),
        "subject": np.array([int(it["subject"]) for it in items], dtype=np.int64),
        "slice": np.array([int(it["slice"]) for it in items], dtype=np.int64),
    }


def _worker_init(_: int) -> None:
    """Workers leave SIGTERM/SIGUSR1 to the main process, which saves state and shuts them down.

    They also send batches with torch's ``file_system`` sharing strategy (the sender's strategy
    decides; the main process keeps its own): the receiver opens the shared-memory segment by name
    instead of fetching a file descriptor from the worker over a new socket connection for every
    tensor, which raised the loader from ~1,700 to ~2,400 slices/s on 2 cores (docs/performance.md).
    Segments are still cleaned up by torch's ``torch_shm_manager`` if a process dies.
    """
    torch.multiprocessing.set_sharing_strategy("file_system")
    for sig in (signal.SIGTERM, signal.SIGUSR1):
        signal.signal(sig, signal.SIG_IGN)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    sampler: Sampler[int] | None = None,
    num_workers: int = 0,
    pin_memory: bool = False,
    batch_sampler: Sampler[list[int]] | None = None,
) -> DataLoader:
    """DataLoader over ``dataset`` (fixed order if ``sampler`` is None); persistent workers if any.

    ``batch_sampler`` (a distributed rank's shares, :mod:`ssimrecon.training.distributed`)
    replaces ``batch_size`` and ``sampler``.  Batches are :func:`collate_slices` dicts
    (``samples``/``target`` tensors, numpy metadata)."""
    batching: dict[str, Any] = (
        {"batch_sampler": batch_sampler}
        if batch_sampler is not None
        else {"batch_size": batch_size, "sampler": sampler, "shuffle": False, "drop_last": False}
    )
    return DataLoader(
        dataset,
        **batching,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
        collate_fn=collate_slices,
        worker_init_fn=_worker_init if num_workers > 0 else None,
        prefetch_factor=2 if num_workers > 0 else None,
    )
