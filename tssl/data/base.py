"""What every dataset gives the runner: batches on the device, with their provenance.

Static images come as ``[B, C, H, W]`` (the network turns them into a constant current over T steps), event
frames as ``[T, B, C, H, W]`` (converted to time-first here, at the edge). Tensors that fit on the device live
there and are shuffled and augmented there, so a GPU is not starved by a CPU loader.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import torch

if TYPE_CHECKING:
    from tssl.engine.distributed import Ranks

# unverified: files that claim to be the published data set but whose SHA-256 differs from the published one.
DataKind = Literal["real", "generated", "reduced", "unverified"]
Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


class DataError(RuntimeError):
    """Data that is missing or fails its integrity check; the message says what to run."""


def fingerprint_tensors(*tensors: torch.Tensor) -> str:
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return "sha256:" + digest.hexdigest()


@dataclass
class TensorSplit:
    """One split as tensors: inputs ``[N, ...]`` (static) or ``[N, T, ...]`` (events), labels ``[N]``."""

    inputs: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class PreparedData:
    """A dataset ready for training: splits as tensors, plus what is needed to label results honestly."""

    name: str
    kind: DataKind
    source: str
    input_shape: tuple[int, ...]
    classes: int
    train: TensorSplit
    test: TensorSplit
    validation: TensorSplit | None = None
    events: bool = False  # inputs are [N, T, C, H, W] event frames
    train_augment: Augment | None = None  # applied per batch, on the device, to training inputs only
    fingerprint: str = ""
    notes: list[str] = field(default_factory=list)
    # The files whose SHA-256 differs from the published one: {file: {"expected": hex, "actual": hex}}.
    checksums: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.fingerprint:
            parts = [self.train.inputs, self.train.labels, self.test.inputs, self.test.labels]
            if self.validation is not None:
                parts += [self.validation.inputs, self.validation.labels]
            self.fingerprint = fingerprint_tensors(*parts)

    def to(self, device: torch.device | str) -> PreparedData:
        """Move every split to ``device`` (done once, before training)."""
        for split in (self.train, self.test, self.validation):
            if split is not None:
                split.inputs, split.labels = split.inputs.to(device), split.labels.to(device)
        return self

    def batches(
        self,
        split: TensorSplit,
        batch_size: int,
        generator: torch.Generator | None = None,
        augment: bool = False,
        limit: int | None = None,
        ranks: Ranks | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(inputs, labels)`` batches, shuffled when a generator is given; event inputs time-first.

        With ``ranks`` (a run on several processes), ``batch_size`` is the global batch and each rank gets its
        contiguous share of every global batch of the same permutation. A rank whose share of the last batch is
        empty gets one stand-in sample with *no* label (``len(labels) == 0``): training steps on it with weight 0
        so that the gradient all-reduce still matches; evaluation skips it.
        """
        count = len(split)
        if generator is not None:
            order = torch.randperm(count, generator=generator).to(split.labels.device)
        else:
            order = torch.arange(count, device=split.labels.device)
        augmenting = augment and self.train_augment is not None
        for number, start in enumerate(range(0, count, batch_size)):
            if limit is not None and number >= limit:
                return
            index = order[start : start + batch_size]
            low, high = (0, len(index)) if ranks is None else ranks.share(len(index))
            mine = slice(low, high) if high > low else slice(0, 1)
            # Augmentation draws from the generator per global batch: augment it whole on every rank, then cut,
            # so that every rank's generator stays in step with a single process's.
            inputs = split.inputs[index if augmenting else index[mine]]
            if not inputs.is_floating_point():  # binary event frames are stored as uint8: a quarter of float32
                inputs = inputs.float()
            if augmenting:
                inputs = self.train_augment(inputs, generator)[mine]
            if self.events:
                inputs = inputs.transpose(0, 1)  # [B, T, ...] -> [T, B, ...]
            labels = split.labels[index[mine]]
            yield inputs, labels if high > low else labels[:0]

    def batch_count(self, split: TensorSplit, batch_size: int, limit: int | None = None) -> int:
        count = -(-len(split) // batch_size)
        return count if limit is None else min(count, limit)


def split_validation(
    train: TensorSplit, fraction: float, seed: int
) -> tuple[TensorSplit, TensorSplit | None]:
    """Hold out ``fraction`` of the training set (fixed by ``seed``) for validation; 0 keeps no split."""
    if fraction == 0:
        return train, None
    if not 0 < fraction < 1:
        raise ValueError(f"validation fraction must be in [0, 1); got {fraction}")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    held = round(len(train) * fraction)
    val_idx, train_idx = order[:held], order[held:]
    return (
        TensorSplit(train.inputs[train_idx], train.labels[train_idx]),
        TensorSplit(train.inputs[val_idx], train.labels[val_idx]),
    )
