"""Training data: slices of k-space shards as a torch ``Dataset``, a resumable sampler and a loader.

* :class:`SliceDataset` indexes ``(shard, slice)`` pairs whose ``slice_signal`` (fraction of target pixels
  above 10% of the volume maximum, written by :mod:`ssimrecon.shards`) is at least ``min_signal_fraction``:
  the documented rule that drops near-empty slices (outside the head) from training and validation.
  HDF5 files are opened lazily, once per process: a DataLoader worker forked from a process that had them
  open notices the new pid and opens its own handles (HDF5 handles must not be shared across fork).
* Items carry the undersampled k-space as real ``(H, W, 2)`` float32 (``view_as_real``: collates and pins
  everywhere), the reference ``(1, H, W)``, the volume's ``data_range`` and subject/slice indices.
  :func:`to_network_input` turns a k-space batch into the zero-filled magnitude on the batch's device.
* :class:`EpochSampler` draws ``torch.randperm`` from a generator seeded by ``(seed, epoch)`` only, so an
  epoch's order can be regenerated after a restart and resumed at a batch offset (``skip``).
"""
from __future__ import annotations

import hashlib
import os
import signal
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ssimrecon.errors import ShardError
from ssimrecon.fft import zero_filled_magnitude_torch
from ssimrecon.shards import ShardReader

__all__ = ["SliceDataset", "EpochSampler", "to_network_input", "make_loader", "derive_seed"]


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed that depends only on ``parts`` (stable across processes and Python versions)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class SliceDataset(Dataset):
    """Slices of one or more shards whose ``slice_signal >= min_signal_fraction``.

    ``subject`` in an item is the shard's position in ``shard_paths``; ``slice`` its slice position in
    that shard.  Raises :class:`ShardError` naming the shards if no slice passes the filter.
    """

    def __init__(self, shard_paths: Sequence[Path | str], min_signal_fraction: float = 0.0) -> None:
        self.shard_paths = [Path(p) for p in shard_paths]
        if not self.shard_paths:
            raise ShardError("no shards given")
        self.min_signal_fraction = float(min_signal_fraction)
        self.data_ranges: list[float] = []
        self.subjects: list[str] = []
        self.index: list[tuple[int, int]] = []
        self.shape: tuple[int, int] | None = None
        self.num_total = 0
        for s, path in enumerate(self.shard_paths):
            with ShardReader(path) as reader:
                attrs = dict(reader.attrs)
                signal_fraction = [float(v) for v in reader.slice_signal]
                shape = tuple(int(n) for n in reader.shape[1:])
            if "data_range" not in attrs:
                raise ShardError(f"{path}: attribute 'data_range' missing")
            data_range = float(attrs["data_range"])
            if not data_range > 0:
                raise ShardError(f"{path}: attribute 'data_range' must be positive, got {data_range}")
            if self.shape is None:
                self.shape = shape  # type: ignore[assignment]
            elif shape != self.shape:
                raise ShardError(f"{path}: slice shape {shape} differs from {self.shape} of {self.shard_paths[0]}")
            self.data_ranges.append(data_range)
            self.subjects.append(str(attrs.get("subject", path.stem)))
            self.num_total += len(signal_fraction)
            self.index += [(s, i) for i, f in enumerate(signal_fraction) if f >= self.min_signal_fraction]
        if not self.index:
            names = ", ".join(str(p) for p in self.shard_paths)
            raise ShardError(
                f"no slice with slice_signal >= {self.min_signal_fraction} in shards: {names} "
                "(lower training.min_signal_fraction?)"
            )
        self._readers: dict[int, Any] = {}
        self._pid: int | None = None

    def __len__(self) -> int:
        return len(self.index)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_readers"], state["_pid"] = {}, None  # handles never travel (spawn/pickle)
        return state

    def _reader(self, shard: int) -> Any:
        pid = os.getpid()
        if self._pid != pid:  # first use in this process (e.g. a forked worker): drop inherited handles
            self._readers, self._pid = {}, pid
        reader = self._readers.get(shard)
        if reader is None:
            reader = ShardReader(self.shard_paths[shard])
            reader.__enter__()
            self._readers[shard] = reader
        return reader

    def __getitem__(self, i: int) -> dict[str, Any]:
        shard, slice_ = self.index[i]
        kspace, target = self._reader(shard).read_slice(slice_)
        k = torch.view_as_real(torch.from_numpy(kspace.astype("complex64", copy=False)).contiguous())
        return {
            "kspace": k,
            "target": torch.from_numpy(target.astype("float32", copy=False)).unsqueeze(0),
            "data_range": torch.tensor(self.data_ranges[shard], dtype=torch.float32),
            "subject": shard,
            "slice": slice_,
        }

    def close(self) -> None:
        """Close this process's open shard handles."""
        if self._pid == os.getpid():
            for reader in self._readers.values():
                reader.__exit__(None, None, None)
        self._readers, self._pid = {}, None


def to_network_input(kspace: torch.Tensor) -> torch.Tensor:
    """Zero-filled magnitude of a real k-space batch ``(B, H, W, 2)`` -> ``(B, 1, H, W)`` float32 (same device)."""
    if kspace.dim() != 4 or kspace.shape[-1] != 2:
        raise ValueError(f"expected k-space of shape (B, H, W, 2), got {tuple(kspace.shape)}")
    return zero_filled_magnitude_torch(torch.view_as_complex(kspace.float().contiguous())).unsqueeze(1)


class EpochSampler(Sampler[int]):
    """Random order of ``range(n)`` that depends only on ``(seed, epoch)``.

    ``set_epoch(epoch, skip)`` selects the epoch and drops its first ``skip`` indices (resume at batch b
    with ``skip = b * batch_size``); ``max_samples`` caps each epoch's length (before skipping).
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
        g = torch.Generator().manual_seed(derive_seed("order", self.seed, self.epoch if epoch is None else epoch))
        perm = torch.randperm(self.n, generator=g)
        return perm if self.max_samples is None else perm[: self.max_samples]

    def epoch_length(self) -> int:
        """Number of samples in a full epoch (after the cap)."""
        return self.n if self.max_samples is None else min(self.n, self.max_samples)

    def __iter__(self) -> Iterator[int]:
        return iter(self.order()[self.skip :].tolist())

    def __len__(self) -> int:
        return max(0, self.epoch_length() - self.skip)


def _worker_init(_: int) -> None:
    """Workers leave SIGTERM/SIGUSR1 to the main process, which saves state and shuts them down."""
    for sig in (signal.SIGTERM, signal.SIGUSR1):
        signal.signal(sig, signal.SIG_IGN)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    sampler: Sampler[int] | None = None,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """DataLoader over ``dataset`` (fixed order if ``sampler`` is None); persistent workers if any."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
        worker_init_fn=_worker_init if num_workers > 0 else None,
        prefetch_factor=2 if num_workers > 0 else None,
        drop_last=False,
    )
