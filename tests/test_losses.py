"""Losses, target conventions and the refusal of impossible combinations."""

from __future__ import annotations

import pytest
import torch

from tssl.engine.kernel_target import authors_define
from tssl.engine.losses import (
    CountLoss,
    KernelLoss,
    LossConfigError,
    SoftmaxLoss,
    desired_pattern,
    kernel_target_trace,
    make_loss,
)
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
def test_authors_pattern_is_refused_where_they_define_none(steps, convention):
    with pytest.raises(LossConfigError, match=f"the authors' {convention} kernel target needs T .*got T={steps}"):
        desired_pattern(steps, convention)


@pytest.mark.parametrize("convention", ["final", "paper"])
@pytest.mark.parametrize("fill", ["last", "first"])
@pytest.mark.parametrize("steps", [5, 10, 20, 30])
def test_filled_target_is_the_authors_wherever_they_define_one(steps, convention, fill):
    if not authors_define(steps, convention):
        pytest.skip("the authors define no target here")
    trace = psp_filter(desired_pattern(steps, convention), 3.0)
    if convention == "final":  # their final code filters twice
        trace = psp_filter(trace, 3.0)
    assert torch.equal(kernel_target_trace(steps, 3.0, convention, fill), trace)


def test_last_fill_takes_the_tail_and_first_fill_the_head_of_the_next_defined_target():
    five = kernel_target_trace(5, 3.0, "final")
    assert torch.equal(kernel_target_trace(2, 3.0, "final", "last"), five[-2:])
    assert torch.equal(kernel_target_trace(3, 3.0, "final", "first"), five[:3])
    # T = 2, final, first: the tiled [0, 1, 1, 1, 1] cut to [0, 1], filtered twice: 0, 1/9
    torch.testing.assert_close(kernel_target_trace(2, 3.0, "final", "first"),
                               torch.tensor([0.0, 1 / 9], dtype=torch.float64))
    # T = 12 (final, period [0, 1] x 5 from T = 10 on): the last 12 steps of the T = 20 target
    assert torch.equal(kernel_target_trace(12, 3.0, "final", "last"), kernel_target_trace(20, 3.0, "final")[-12:])


def test_at_two_steps_the_first_fill_makes_silence_the_label_neurons_best_answer():
    """Why ``last`` is the default: under ``first`` at T = 2 a silent label neuron has a lower kernel loss than
    any spike train it can emit, so the label neuron is asked for what every other neuron is asked for."""
    def best_train(target):
        trains = [torch.tensor(bits, dtype=torch.float64) for bits in ((0, 0), (1, 0), (0, 1), (1, 1))]
        return min(trains, key=lambda s: (psp_filter(s, 3.0) - target).square().sum().item()).tolist()

    assert best_train(kernel_target_trace(2, 3.0, "final", "first")) == [0.0, 0.0]
    assert best_train(kernel_target_trace(2, 3.0, "final", "last")) == [1.0, 1.0]


def test_kernel_loss_runs_at_any_steps():
    for steps in (1, 2, 3, 4, 7, 12):
        loss_fn = make_loss("kernel", steps, 3.0)
        out = torch.zeros(steps, 2, 4, dtype=torch.float64)
        assert loss_fn(out, torch.tensor([0, 3])).item() > 0


def test_bad_fill_and_an_all_zero_target_are_refused():
    with pytest.raises(LossConfigError, match="kernel target fill 'middle' is unknown; allowed: last, first"):
        make_loss("kernel", 3, 3.0, kernel_target_fill="middle")
    with pytest.raises(LossConfigError, match="zero at every step for T=1"):
        make_loss("kernel", 1, 3.0, kernel_target_fill="first")


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
