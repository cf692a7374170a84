"""Several processes (one GPU each) training one run with DistributedDataParallel.

``training.gpus: N`` > 1: rule train starts ``ssimrecon train`` under torchrun
(:func:`ssimrecon.training.torchrun.launch_command`: ``python -m torch.distributed.run
--standalone --nproc-per-node N -m ssimrecon.cli``); each process finds its rank in the environment
torchrun sets (:func:`from_environment`).

* **Global batch**: ``training.batch_size`` is the global batch, whatever N is.  Global batch ``b``
  of the epoch's seeded order (:class:`~ssimrecon.training.dataset.EpochSampler`) is cut into N
  contiguous, nearly equal shares, one per rank (:class:`RankBatchSampler`); each rank scales its
  loss by ``N x share / global`` so that DDP's gradient mean is the gradient of the global batch's
  mean loss.  Results therefore do not depend on N (up to rounding); a trailing global batch with
  fewer than N slices is left out of the epoch (at most N - 1 slices).
* **State**: rank 0 writes ``last.pt``, best.pt and history.csv; every rank loads ``last.pt``.
* **Signals**: a stop flag raised on any rank reaches all through an all-reduce at batch
  boundaries, every :data:`STOP_CHECK_EVERY` batches (reading it back waits for the device, so
  not at every step) and at the end of the epoch's training part.
* **Backends**: NCCL on CUDA (rank r uses ``cuda:LOCAL_RANK``), gloo on CPU (tests).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from ssimrecon.device import resolve_device
from ssimrecon.errors import SsimreconError

__all__ = [
    "STOP_CHECK_EVERY",
    "Group",
    "from_environment",
    "start",
    "stop",
    "RankBatchSampler",
    "share",
    "n_batches",
]

#: training batches between two all-reduces of the stop flag (a signal waits at most this long)
STOP_CHECK_EVERY = 8
#: how long a collective waits for a rank that died before the others fail (seconds)
TIMEOUT_S = 120


@dataclasses.dataclass(frozen=True)
class Group:
    """This process's place in the run: ``rank`` of ``world`` processes, ``local_rank`` on the
    node.  ``world == 1`` means no process group (a plain single-process run)."""

    rank: int
    world: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes state, checkpoints and history."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """True when a process group joins several processes."""
        return self.world > 1

    def barrier(self) -> None:
        """Wait for every rank (no-op for a single process)."""
        if self.active:
            dist.barrier()

    def any_stop(self, signum: int | None, device: torch.device) -> int | None:
        """The largest signal number any rank received (None if none did); all ranks agree."""
        if not self.active:
            return signum
        flag = torch.tensor([signum or 0], dtype=torch.int64, device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        value = int(flag.item())  # the one host read, every STOP_CHECK_EVERY batches
        return value or None

    def check_due(self, b: int, n_batches: int) -> bool:
        """Ask the ranks about stop signals after batch ``b``?  A single process: always (its flag
        is a host value); several: every STOP_CHECK_EVERY batches and after the epoch's last."""
        return not self.active or (b + 1) % STOP_CHECK_EVERY == 0 or b + 1 == n_batches

    def reduce_sums(
        self, loss_sum: torch.Tensor, term_sums: torch.Tensor, slices: int
    ) -> tuple[float, list[float], int]:
        """The training sums ``loss_sum``, ``term_sums`` (device tensors) and ``slices`` summed over
        the ranks, as host values (loss_sum, term_sums, slices)."""
        count = torch.tensor([float(slices)], dtype=torch.float64, device=loss_sum.device)
        totals = self.sum(torch.cat([loss_sum.reshape(1), term_sums, count])).tolist()
        return totals[0], totals[1:-1], round(totals[-1])

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise sum of ``values`` over the ranks (``values`` itself for one process)."""
        if self.active:
            values = values.clone()
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values


SINGLE = Group(0, 1, 0)


def from_environment() -> Group:
    """The group torchrun (or srun with the same variables) describes in ``RANK``, ``WORLD_SIZE``
    and ``LOCAL_RANK``; a single process when they are absent."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE
    return Group(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def start(group: Group, gpus: int, device_setting: str) -> torch.device:
    """This process's device; with several processes, join the group first (NCCL on CUDA, gloo
    on CPU; rank r uses ``cuda:LOCAL_RANK``).  A single process resolves ``training.device`` as
    before.  Raises SsimreconError when the number of processes is not ``training.gpus``."""
    if group.world != gpus:
        how = "run `ssimrecon train` under torchrun (the rule train does)" if gpus > 1 else ""
        raise SsimreconError(
            f"training.gpus: {gpus}, but {group.world} process(es) were started (WORLD_SIZE) {how}"
        )
    if not group.active:
        return resolve_device(device_setting)
    cuda = device_setting != "cpu" and torch.cuda.is_available()
    if cuda and torch.cuda.device_count() < group.world:
        raise SsimreconError(
            f"training.gpus: {gpus}, but this node shows {torch.cuda.device_count()} GPU(s)"
        )
    device = torch.device("cuda", group.local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(
            "nccl" if cuda else "gloo",
            rank=group.rank,
            world_size=group.world,
            timeout=timedelta(seconds=TIMEOUT_S),
        )
    return device


def stop() -> None:
    """Leave the process group (if one was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def share(size: int, rank: int, world: int) -> tuple[int, int]:
    """(first, count) of ``rank``'s contiguous share of a global batch of ``size`` slices."""
    base, extra = divmod(size, world)
    first = rank * base + min(rank, extra)
    return first, base + (1 if rank < extra else 0)


def n_batches(epoch_length: int, batch_size: int, world: int) -> int:
    """Global batches of an epoch; a trailing batch smaller than ``world`` is left out."""
    full, rest = divmod(epoch_length, batch_size)
    return full + (1 if rest >= max(world, 1) else 0)


class RankBatchSampler(Sampler[list[int]]):
    """This rank's share of each global batch of ``sampler`` (an EpochSampler, including its
    ``skip``); yields lists of dataset indices (a DataLoader ``batch_sampler``)."""

    def __init__(self, sampler: Sampler[int], batch_size: int, group: Group) -> None:
        self.sampler, self.batch_size, self.group = sampler, batch_size, group

    def __iter__(self) -> Iterator[list[int]]:
        order = list(self.sampler)
        for b in range(0, len(order), self.batch_size):
            batch = order[b : b + self.batch_size]
            if len(batch) < self.group.world:
                return
            first, count = share(len(batch), self.group.rank, self.group.world)
            yield batch[first : first + count]

    def __len__(self) -> int:
        return n_batches(len(self.sampler), self.batch_size, self.group.world)  # type: ignore[arg-type]
