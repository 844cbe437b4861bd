"""The neuron alone against the authors' TSSLBP autograd function (tests/golden/op_visible.pt)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tssl.engine.neuron import neuron_forward, tsslbp_neuron

ENTRIES = torch.load(Path(__file__).parent / "golden" / "op_visible.pt", weights_only=True)["entries"]
RTOL = {"float32": 1e-5, "float64": 1e-12}


def time_first(t: torch.Tensor) -> torch.Tensor:
    return t.movedim(-1, 0)


def max_rel_error(got: torch.Tensor, ref: torch.Tensor) -> float:
    scale = ref.abs().max().item()
    return (got - ref).abs().max().item() / (scale if scale > 0 else 1.0)


@pytest.mark.parametrize("entry", ENTRIES, ids=[f"{e['name']}-{e['dtype']}" for e in ENTRIES])
def test_op_entry(entry):
    x = time_first(entry["x"]).clone().requires_grad_(True)
    trace = tsslbp_neuron(x, entry["tau_m"], entry["tau_s"], entry["threshold"])
    trace.backward(time_first(entry["g"]))
    _, membrane, spikes = neuron_forward(x.detach(), entry["tau_m"], entry["tau_s"], entry["threshold"])

    rtol = RTOL[entry["dtype"]]
    assert x.dtype == getattr(torch, entry["dtype"])
    assert torch.equal(spikes.to(torch.uint8), time_first(entry["spikes"]))
    assert max_rel_error(membrane, time_first(entry["u"])) <= rtol
    assert max_rel_error(trace.detach(), time_first(entry["a"])) <= rtol
    assert torch.isfinite(x.grad).all()
    assert max_rel_error(x.grad, time_first(entry["grad_x"])) <= rtol


def test_entries_cover_the_edge_features():
    """The fixture set exercises every feature the README lists; guard against a truncated copy."""
    covered = {name for entry in ENTRIES for name, present in entry["features"].items() if present}
    assert covered >= {
        "neuron_without_spike",
        "spike_at_t0",
        "spike_at_tlast",
        "consecutive_spikes",
        "clamp8_hit",
        "du_exactly_zero",
        "sigmoid_arg_clamped_in_surrogate",
        "a_exactly_at_switch_threshold",
        "surrogate_branch_used",
        "tssl_branch_used",
        "multi_spike_neuron",
    }
    assert len(ENTRIES) == 28  # 14 configurations x {float32, float64}
