"""The training and evaluation loop, shared by every method so that none re-implements it: the one optimiser step
(:func:`train_step`, which ``tssl bench`` times), the one epoch loop (:func:`fit`, which the runner trains every
run with), evaluation and the latency curve."""

from __future__ import annotations

import math
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
Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


class DivergenceError(RuntimeError):
    """The training loss became non-finite (the runner records the run as failed, ``diverged``)."""

    def __init__(self, epoch: int, loss: float) -> None:
        super().__init__(f"diverged at epoch {epoch}: non-finite training loss ({loss})")


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float  # mean loss per sample
    train_accuracy: float  # accuracies are fractions in [0, 1]
    test_accuracy: float
    seconds: float  # training and evaluation
    validation_accuracy: float | None = None
    train_seconds: float = 0.0  # training alone


@dataclass(frozen=True)
class EpochBars:
    """The epoch loop's progress bars: one over the epochs, labelled ``label`` (None: no such bar), at line
    ``position``, and one over each epoch's ``batches`` (None: the batches' len() if they have one) below it."""

    label: str | None = None
    position: int = 0
    batches: int | None = None


def no_reset(_model: nn.Module) -> None:
    """The native engine keeps no state between batches."""


def _show_progress(progress: bool | None) -> bool:
    return sys.stderr.isatty() if progress is None else progress


def evaluate(
    model: nn.Module,
    batches: Batches,
    device: torch.device | str = "cpu",
    reset: ResetFn = no_reset,
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
    reset: ResetFn = no_reset,
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
    batches: Batches,
    device: torch.device | str = "cpu",
    reset: ResetFn = no_reset,
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
    train_batches: Callable[[], Batches],
    test_batches: Callable[[], Batches],
    epochs: int,
    device: torch.device | str = "cpu",
    reset: ResetFn = no_reset,
    progress: bool | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    precision: str = DEFAULT_PRECISION,
    *,
    validation_batches: Callable[[], Batches] | None = None,
    first_epoch: int = 1,
    ranks: Ranks = SINGLE,
    wrapped: nn.Module | None = None,
    bars: EpochBars = EpochBars(),
) -> list[EpochRecord]:
    """The epoch loop: train epochs ``first_epoch`` to ``epochs`` and evaluate after each; the runner trains every
    run through it, and the learning tests do too.

    ``train_batches()`` yields a fresh epoch of batches, ``test_batches()`` and ``validation_batches()`` (if given)
    the evaluation batches. ``model`` is evaluated and reset (``reset(model)``, before every batch); ``wrapped``
    (DistributedDataParallel's wrapper of ``model`` over several ``ranks``) is what steps, when given.
    ``on_epoch(record)`` runs after each epoch's evaluation (the runner's checkpoint). Raises
    :class:`DivergenceError`, before evaluating, when an epoch's mean training loss is not finite.
    """
    history: list[EpochRecord] = []
    show = _show_progress(progress)
    with tqdm(total=epochs, initial=first_epoch - 1, desc=bars.label, position=bars.position, leave=False,
              disable=not show or bars.label is None) as epoch_bar:
        for epoch in range(first_epoch, epochs + 1):
            record = _run_epoch(epoch, model, loss_fn, optimizer, train_batches, test_batches, validation_batches,
                                device, reset, precision, ranks, model if wrapped is None else wrapped, bars, show)
            history.append(record)
            if on_epoch is not None:
                on_epoch(record)
            epoch_bar.update(1)
            epoch_bar.set_postfix(test_acc=f"{record.test_accuracy:.3f}")
    return history


def _run_epoch(
    epoch: int,
    model: nn.Module,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    train_batches: Callable[[], Batches],
    test_batches: Callable[[], Batches],
    validation_batches: Callable[[], Batches] | None,
    device: torch.device | str,
    reset: ResetFn,
    precision: str,
    ranks: Ranks,
    stepping: nn.Module,
    bars: EpochBars,
    show: bool,
) -> EpochRecord:
    """One epoch of :func:`fit`: train, check the loss, evaluate."""
    start = time.perf_counter()
    batches = train_batches()
    total = bars.batches if bars.batches is not None else (len(batches) if hasattr(batches, "__len__") else None)
    with tqdm(total=total, desc=f"epoch {epoch}", position=bars.position + 1, leave=False, disable=not show) as bar:
        train_loss, train_accuracy = train_epoch(stepping, loss_fn, optimizer, batches, device,
                                                 lambda _stepping: reset(model), bar, precision, ranks=ranks)
    # The epoch's mean loss costs nothing more and is summed over ranks, so all ranks stop together (a per-batch
    # check on one rank's share could leave the others waiting in a collective); a non-finite batch makes the
    # mean non-finite, so at most one epoch is spent on a diverged run.
    if not math.isfinite(train_loss):
        raise DivergenceError(epoch, train_loss)
    train_seconds = time.perf_counter() - start
    validation_accuracy = None
    if validation_batches is not None:
        validation_accuracy = evaluate(model, validation_batches(), device, reset, precision, ranks=ranks)
    test_accuracy = evaluate(model, test_batches(), device, reset, precision, ranks=ranks)
    return EpochRecord(epoch, train_loss, train_accuracy, test_accuracy, time.perf_counter() - start,
                       validation_accuracy, train_seconds)


def latency_curve(
    model: nn.Module,
    batches: Batches,
    device: torch.device | str = "cpu",
    reset: ResetFn = no_reset,
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
