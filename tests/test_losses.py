"""Losses, target conventions and the refusal of impossible combinations."""

from __future__ import annotations

import pytest
import torch

from tssl.engine.losses import CountLoss, KernelLoss, LossConfigError, SoftmaxLoss, desired_pattern, make_loss
from tssl.engine.neuron import psp_filter


def test_desired_patterns():
    assert desired_pattern(5).tolist() == [0, 1, 1, 1, 1]
    assert desired_pattern(20).tolist() == [0, 1] * 10
    assert desired_pattern(10, "paper").tolist() == [0, 1, 0, 1, 1] * 2


def test_final_target_is_filtered_twice_and_paper_target_once():
    tau_s = 3.0
    final = KernelLoss(5, tau_s, "final").label_target
    paper = KernelLoss(5, tau_s, "paper").label_target
    torch.testing.assert_close(final, psp_filter(psp_filter(torch.tensor([0.0, 1, 1, 1, 1]).double(), tau_s), tau_s))
    torch.testing.assert_close(paper, psp_filter(torch.tensor([0.0, 1, 0, 1, 1]).double(), tau_s))


def test_kernel_loss_value_and_gradient():
    loss_fn = KernelLoss(5, 3.0)
    out = torch.rand(5, 2, 4, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([1, 3])
    target = torch.zeros(5, 2, 4, dtype=torch.float64)
    target[:, 0, 1] = target[:, 1, 3] = loss_fn.label_target
    loss = loss_fn(out, labels)
    loss.backward()
    assert loss.item() == pytest.approx(0.5 * ((out - target) ** 2).sum().item())
    torch.testing.assert_close(out.grad, (out - target).detach())  # dL/d(output) = delta


@pytest.mark.parametrize(("steps", "convention"), [(3, "final"), (7, "final"), (15, "final"), (12, "paper")])
def test_kernel_loss_refuses_incompatible_steps(steps, convention):
    with pytest.raises(LossConfigError, match=f"kernel loss .*needs T .*got T={steps}"):
        make_loss("kernel", steps, 3.0, kernel_target=convention)


def test_count_loss_is_asymmetric():
    steps = 10
    loss_fn = CountLoss(steps, desired_count=5, undesired_count=1)
    out = torch.zeros(steps, 1, 3, dtype=torch.float64)
    out[:, 0, 0] = 0.3  # label: count 3 < 5, penalised
    out[:, 0, 1] = 0.05  # other class: count 0.5 <= 1, not penalised
    out[:, 0, 2] = 0.2  # other class: count 2 > 1, penalised
    out.requires_grad_(True)
    loss = loss_fn(out, torch.tensor([0]))
    loss.backward()
    assert loss.item() == pytest.approx(((3 - 5) ** 2 + (2 - 1) ** 2) / (2 * steps))
    expected = torch.tensor([(3 - 5) / steps, 0.0, (2 - 1) / steps], dtype=torch.float64)
    torch.testing.assert_close(out.grad[:, 0], expected.expand(steps, 3))  # delta at every step

    above = torch.full((steps, 1, 3), 0.0, dtype=torch.float64)
    above[:, 0, 0] = 0.9  # label above its target: not penalised
    assert loss_fn(above, torch.tensor([0])).item() == 0.0


def test_softmax_loss_sums_over_the_batch():
    out = torch.randn(5, 4, 10)
    labels = torch.tensor([0, 1, 2, 3])
    expected = torch.nn.functional.cross_entropy(out.sum(0), labels, reduction="sum")
    torch.testing.assert_close(SoftmaxLoss()(out, labels), expected)


def test_bad_loss_settings_are_refused():
    with pytest.raises(LossConfigError, match="allowed: kernel, count, softmax"):
        make_loss("mse", 5, 3.0)
    with pytest.raises(LossConfigError, match="needs desired_count and undesired_count"):
        make_loss("count", 30, 4.0)
    with pytest.raises(LossConfigError, match="desired_count > undesired_count"):
        make_loss("count", 30, 4.0, desired_count=3, undesired_count=15)
    with pytest.raises(LossConfigError, match="allowed: final, paper"):
        make_loss("kernel", 5, 3.0, kernel_target="draft")
    with pytest.raises(LossConfigError, match="built for T=5 but the output has T=10"):
        KernelLoss(5, 3.0)(torch.zeros(10, 1, 2), torch.tensor([0]))
