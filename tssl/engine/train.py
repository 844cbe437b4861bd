"""The training and evaluation loop, shared by every method so that none re-implements it."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from tssl.engine.distributed import SINGLE, Ranks
from tssl.engine.network import predict
from tssl.engine.precision import DEFAULT_PRECISION, autocast, math_mode
from tssl.engine.recipe import clip_and_step

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
ResetFn = Callable[[nn.Module], None]


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float  # mean loss per sample
    train_accuracy: float
    test_accuracy: float
    seconds: float


def _no_reset(_model: nn.Module) -> None:
    """The native engine keeps no state between batches."""


def _show_progress(progress: bool | None) -> bool:
    return sys.stderr.isatty() if progress is None else progress


def evaluate(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device | str = "cpu",
    reset: ResetFn = _no_reset,
    precision: str = DEFAULT_PRECISION,
    *,
    ranks: Ranks = SINGLE,
) -> float:
    """Test accuracy (fraction in [0, 1]) of the summed-trace readout, computed at ``precision``.

    With several ``ranks``, each sees its share of the batches and the counts are summed over ranks."""
    model.eval()
    correct = total = 0
    with torch.no_grad(), math_mode(precision, device):
        for inputs, labels in batches:
            if not len(labels):  # an empty share of the last batch (see PreparedData.batches)
                continue
            reset(model)
            with autocast(precision, device):
                output = model(inputs.to(device))
            correct += (predict(output).cpu() == labels.cpu()).sum().item()
            total += labels.numel()
    correct, total = ranks.sum(correct, total, device=device)
    return correct / max(total, 1)


def train_step(
    model: nn.Module,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    params: list[nn.Parameter],
    inputs: torch.Tensor,
    labels: torch.Tensor,
    device: torch.device | str = "cpu",
    reset: ResetFn = _no_reset,
    precision: str = DEFAULT_PRECISION,
    weight: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step of the recipe (reset, forward and loss at ``precision``, backward of ``weight`` x
    loss, clip 1, AdamW, clamp [-4, 4]); returns (loss, output). ``tssl bench`` times exactly this."""
    reset(model)
    optimizer.zero_grad(set_to_none=True)
    with autocast(precision, device):
        output = model(inputs)
        loss = loss_fn(output, labels)
    (loss if weight == 1.0 else loss * weight).backward()
    clip_and_step(params, optimizer)
    return loss, output


def train_epoch(
    model: nn.Module,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device | str = "cpu",
    reset: ResetFn = _no_reset,
    progress_bar: tqdm | None = None,
    precision: str = DEFAULT_PRECISION,
    *,
    ranks: Ranks = SINGLE,
) -> tuple[float, float]:
    """One epoch of the recipe (clip 1, AdamW, clamp [-4, 4]) at ``precision`` (``tssl.engine.precision``: autocast
    covers the forward and the loss); returns (mean loss per sample, accuracy).

    With several ``ranks`` (``model`` wrapped in DistributedDataParallel), each rank steps on its share of every
    global batch and the loss and accuracy are summed over ranks: see ``tssl.engine.distributed``."""
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    loss_sum = correct = seen = 0.0
    with math_mode(precision, device):
        for inputs, labels in batches:
            inputs, labels = inputs.to(device), labels.to(device)
            weight = ranks.gradient_scale  # 1 alone; the world size under DDP's gradient averaging
            stand_in = not len(labels)  # an empty share of the last batch: join the all-reduce with weight 0
            if stand_in:
                labels, weight = torch.zeros(1, dtype=torch.long, device=device), 0.0
            loss, output = train_step(model, loss_fn, optimizer, params, inputs, labels, device, reset, precision,
                                      weight)
            if stand_in:
                continue
            loss_sum += loss.item()
            correct += (predict(output.detach()) == labels).sum().item()
            seen += labels.numel()
            if progress_bar is not None:
                progress_bar.update(1)
                progress_bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}")
    loss_sum, correct, seen = ranks.sum(loss_sum, correct, seen, device=device)
    return loss_sum / max(seen, 1), correct / max(seen, 1)


def fit(
    model: nn.Module,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    train_batches: Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]],
    test_batches: Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]],
    epochs: int,
    device: torch.device | str = "cpu",
    reset: ResetFn = _no_reset,
    progress: bool | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    precision: str = DEFAULT_PRECISION,
) -> list[EpochRecord]:
    """Train for ``epochs`` and evaluate after each; ``train_batches()`` yields a fresh epoch of batches."""
    history: list[EpochRecord] = []
    show = _show_progress(progress)
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        batches = train_batches()
        total = len(batches) if hasattr(batches, "__len__") else None
        with tqdm(total=total, desc=f"epoch {epoch}/{epochs}", leave=False, disable=not show) as bar:
            train_loss, train_acc = train_epoch(model, loss_fn, optimizer, batches, device, reset, bar, precision)
        test_acc = evaluate(model, test_batches(), device, reset, precision)
        record = EpochRecord(epoch, train_loss, train_acc, test_acc, time.perf_counter() - start)
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
    return history


def latency_curve(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device | str = "cpu",
    reset: ResetFn = _no_reset,
    precision: str = DEFAULT_PRECISION,
    *,
    ranks: Ranks = SINGLE,
) -> list[float]:
    """Accuracy (fraction) of the readout summed over the first t steps, for t = 1..T: the latency curve.

    With several ``ranks``, the hit counts are summed over ranks."""
    model.eval()
    correct: torch.Tensor | None = None
    total = 0
    with torch.no_grad(), math_mode(precision, device):
        for inputs, labels in batches:
            reset(model)
            with autocast(precision, device):
                output = model(inputs.to(device))  # [T, B, classes]
            running = output.cumsum(0).argmax(-1)  # [T, B]: prediction after t + 1 steps
            if len(labels):
                hits = (running.cpu() == labels.cpu()).sum(1)
            else:  # the stand-in of an empty share of the last batch
                hits = torch.zeros(len(running), dtype=torch.long)
            correct = hits if correct is None else correct + hits
            total += labels.numel()
    if correct is None:
        return []
    if ranks.active:  # the stand-in of an empty share above keeps every rank's curve the same length
        correct, total = ranks.sum_tensor(correct, device), int(ranks.sum(total, device=device)[0])
    return (correct.double() / max(total, 1)).tolist()
