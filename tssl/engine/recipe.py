"""The authors' optimisation recipe: AdamW (weight decay 0.01), global grad-norm clip 1, weights clamped to
[-4, 4] after every step (spec section 3). The step that applies it is ``tssl.engine.train.train_step``."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

WEIGHT_DECAY = 0.01
GRAD_CLIP_NORM = 1.0
WEIGHT_CLAMP = 4.0


def _fused_supported(params: list[nn.Parameter]) -> bool:
    """PyTorch's fused AdamW runs where every parameter is a float tensor on one device type it has kernels for."""
    from torch.optim.optimizer import _get_fused_kernels_supported_devices

    if not params or not all(isinstance(p, torch.Tensor) for p in params):  # empty, or parameter groups
        return False
    device_types = {p.device.type for p in params}
    return (
        len(device_types) == 1
        and device_types <= set(_get_fused_kernels_supported_devices())
        and all(p.is_floating_point() for p in params)
    )


def make_optimizer(params: Iterable[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    """AdamW of the recipe; the fused implementation (one kernel for all parameters, several times faster than
    the per-op one on CPU) wherever PyTorch has it, the default otherwise. They agree up to float rounding."""
    if not lr > 0:
        raise ValueError(f"lr must be > 0; got {lr}")
    params = list(params)
    fused = True if _fused_supported(params) else None
    return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=WEIGHT_DECAY, fused=fused)


def clip_and_step(params: list[nn.Parameter], optimizer: torch.optim.Optimizer) -> torch.Tensor:
    """Clip the global gradient norm to 1, step, clamp the weights; returns the norm before clipping."""
    total_norm = torch.nn.utils.clip_grad_norm_(params, GRAD_CLIP_NORM)
    optimizer.step()
    with torch.no_grad():
        for param in params:
            param.clamp_(-WEIGHT_CLAMP, WEIGHT_CLAMP)
    return total_norm

