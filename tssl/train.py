"""The training and evaluation loop, shared by every method so that none re-implements it."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from tssl.network import predict
from tssl.recipe import clip_and_step

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
) -> float:
    """Test accuracy (fraction in [0, 1]) of the summed-trace readout."""
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for inputs, labels in batches:
            reset(model)
            output = model(inputs.to(device))
            correct += (predict(output).cpu() == labels).sum().item()
            total += labels.numel()
    return correct / max(total, 1)


def train_epoch(
    model: nn.Module,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device | str = "cpu",
    reset: ResetFn = _no_reset,
    progress_bar: tqdm | None = None,
) -> tuple[float, float]:
    """One epoch of the recipe (clip 1, AdamW, clamp [-4, 4]); returns (mean loss per sample, accuracy)."""
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    loss_sum = correct = seen = 0.0
    for inputs, labels in batches:
        inputs, labels = inputs.to(device), labels.to(device)
        reset(model)
        optimizer.zero_grad(set_to_none=True)
        output = model(inputs)
        loss = loss_fn(output, labels)
        loss.backward()
        clip_and_step(params, optimizer)
        loss_sum += loss.item()
        correct += (predict(output.detach()) == labels).sum().item()
        seen += labels.numel()
        if progress_bar is not None:
            progress_bar.update(1)
            progress_bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}")
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
) -> list[EpochRecord]:
    """Train for ``epochs`` and evaluate after each; ``train_batches()`` yields a fresh epoch of batches."""
    history: list[EpochRecord] = []
    show = _show_progress(progress)
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        batches = train_batches()
        total = len(batches) if hasattr(batches, "__len__") else None
        with tqdm(total=total, desc=f"epoch {epoch}/{epochs}", leave=False, disable=not show) as bar:
            train_loss, train_acc = train_epoch(model, loss_fn, optimizer, batches, device, reset, bar)
        test_acc = evaluate(model, test_batches(), device, reset)
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
) -> list[float]:
    """Accuracy (fraction) of the readout summed over the first t steps, for t = 1..T: the latency curve."""
    model.eval()
    correct: torch.Tensor | None = None
    total = 0
    with torch.no_grad():
        for inputs, labels in batches:
            reset(model)
            output = model(inputs.to(device))  # [T, B, classes]
            running = output.cumsum(0).argmax(-1)  # [T, B]: prediction after t + 1 steps
            hits = (running.cpu() == labels.cpu()).sum(1)
            correct = hits if correct is None else correct + hits
            total += labels.numel()
    if correct is None:
        return []
    return (correct.double() / max(total, 1)).tolist()
