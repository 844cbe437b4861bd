"""tssl.engine.recipe: the AdamW of the recipe runs fused where PyTorch has the kernel, and updates as the default."""

from __future__ import annotations

import torch
from torch import nn

from tssl.engine.recipe import clip_and_step, make_optimizer


def test_cpu_parameters_get_the_fused_adamw():
    params = [nn.Parameter(torch.randn(3, 2))]
    assert make_optimizer(params, 1e-3).param_groups[0]["fused"] is True


def test_parameter_groups_fall_back_to_the_default():
    groups = [{"params": [nn.Parameter(torch.randn(2))]}]
    assert not make_optimizer(groups, 1e-3).param_groups[0]["fused"]


def test_fused_step_matches_the_default_adamw():
    torch.manual_seed(0)
    fused = [nn.Parameter(torch.randn(4, 3, dtype=torch.float64) * 3) for _ in range(2)]
    plain = [nn.Parameter(p.detach().clone()) for p in fused]
    opt_fused = make_optimizer(fused, 0.1)
    opt_plain = torch.optim.AdamW(plain, lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    for _ in range(3):
        grads = [torch.randn(4, 3, dtype=torch.float64) for _ in fused]
        for params, optimizer in ((fused, opt_fused), (plain, opt_plain)):
            for p, g in zip(params, grads, strict=True):
                p.grad = g.clone()
            clip_and_step(params, optimizer)
    for a, b in zip(fused, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
