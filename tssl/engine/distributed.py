"""One run on several processes (``torchrun``, or a multi-GPU Slurm job): ranks, sharding and reductions.

Every rank walks the same global permutation of the training set (same seed, same generator) and cuts each
global batch into contiguous shares, one per rank, that differ in size by at most one sample. The losses sum
over the batch, and DistributedDataParallel averages gradients over ranks, so each rank backpropagates its loss
times the world size: the all-reduced gradient is then the gradient of the loss summed over the whole global
batch, exactly what one process computes (up to float summation order). Clipping, AdamW and the clamp then see
the same gradient on every rank and keep the replicas identical.

A rank whose share of the last, partial batch is empty (fewer samples left than ranks) still has to take part
in the gradient all-reduce: it steps on one stand-in sample with weight 0 (see ``PreparedData.batches``).

Only rank 0 reads the results store, writes records and checkpoints; the others follow its decisions.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

T = TypeVar("T")

# Ranks wait for rank 0 while it measures efficiency and writes the record: allow for a slow test pass.
COLLECTIVE_TIMEOUT = timedelta(minutes=60)


class DistributedError(RuntimeError):
    """A multi-process setting that cannot work (e.g. a global batch smaller than the number of ranks)."""


@dataclass(frozen=True)
class Ranks:
    """Where this process stands in its process group; ``Ranks()`` is the single-process case."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def gradient_scale(self) -> float:
        """DDP averages gradients over ranks; the losses sum over the batch: scale each rank's loss back up."""
        return float(self.world_size)

    def share(self, count: int) -> tuple[int, int]:
        """This rank's contiguous slice ``[start, stop)`` of ``count`` items (shares differ by at most one)."""
        base, extra = divmod(count, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return start, start + base + (1 if self.rank < extra else 0)

    def sum(self, *values: float, device: torch.device | str = "cpu") -> list[float]:
        """Sum numbers over ranks (float64, so that counts and loss sums stay exact enough)."""
        if not self.active:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=_collective_device(device))
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.cpu().tolist()

    def sum_tensor(self, tensor: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
        if not self.active:
            return tensor
        reduced = tensor.to(_collective_device(device), torch.float64)
        dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
        return reduced.cpu()

    def broadcast(self, value: T) -> T:
        """Rank 0's ``value`` on every rank (any picklable object)."""
        if not self.active:
            return value
        box: list[Any] = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


SINGLE = Ranks()


def _collective_device(device: torch.device | str) -> torch.device:
    device = torch.device(device)
    # NCCL reduces CUDA tensors only; gloo reduces CPU tensors.
    return device if device.type == "cuda" and dist.get_backend() == "nccl" else torch.device("cpu")


def ranks_from_environment() -> Ranks:
    """The ranks that ``torchrun`` (or a launcher exporting the same variables) set; one process without them."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return SINGLE
    return Ranks(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", os.environ["RANK"])))


def init_process_group(ranks: Ranks, device: torch.device) -> None:
    """Join the process group (NCCL on CUDA, gloo on CPU) unless already in one or running alone."""
    if not ranks.active or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, rank=ranks.rank, world_size=ranks.world_size, timeout=COLLECTIVE_TIMEOUT)


TEARDOWN_WAIT = timedelta(seconds=60)


def shutdown(synchronise: bool = True) -> None:
    """Leave the process group. With ``synchronise`` (the ranks finished normally) every rank first waits for
    the others: a rank that tears gloo down while another still talks to it can abort that process
    ("terminate called without an active exception"). After a failure the wait is skipped on NCCL, where a
    rank that never arrives would hold the others for the whole collective timeout."""
    if not dist.is_initialized():
        return
    try:
        if dist.get_backend() == "gloo":
            dist.monitored_barrier(timeout=TEARDOWN_WAIT)  # raises after TEARDOWN_WAIT if a rank is gone
        elif synchronise:
            dist.barrier()
    except RuntimeError:
        pass  # a rank that failed never arrives: leave anyway
    dist.destroy_process_group()


def device_for(name: str, ranks: Ranks) -> str:
    """Each rank takes the GPU of its local rank: ``auto``/``cuda`` become ``cuda:<local rank>``."""
    if not ranks.active:
        return name
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        return f"cuda:{ranks.local_rank}"
    return name


def wrap_model(model: nn.Module, ranks: Ranks, device: torch.device) -> nn.Module:
    """The model DistributedDataParallel trains with (the model itself when alone).

    Buffers are not broadcast: the replicas start equal (same seed, and DDP copies rank 0's parameters) and the
    baselines keep batch-shaped state in buffers, whose shapes differ between ranks' shares.
    """
    if not ranks.active:
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    ddp = nn.parallel.DistributedDataParallel
    # Newer torch renames the switch (the init-time sync it keeps is harmless: the replicas start equal).
    no_sync = ("forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(ddp).parameters
               else "broadcast_buffers")
    return ddp(model, device_ids=device_ids, **{no_sync: False})


def check_global_batch(batch_size: int, ranks: Ranks, what: str) -> None:
    if batch_size < ranks.world_size:
        raise DistributedError(
            f"{what}: batch_size {batch_size} (global) is smaller than the {ranks.world_size} ranks; use "
            f"batch_size >= {ranks.world_size} or batch_semantics: per_rank"
        )
