"""Efficiency metrics (tssl.measure.metrics): every value pinned by hand on a tiny model, the same counts from every
backend, NeuroBench's own metrics on the same models (where they agree and where our convention differs), and
the runner's record."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from tiny_suites import digits_suite
from torch import nn

from tssl.engine.layers import SpikingConv2d, SpikingLinear
from tssl.engine.network import build_network
from tssl.measure.metrics import measure_efficiency
from tssl.methods import ModelConfig, get_method
from tssl.records.metric_definitions import CONVENTION, CONVENTIONS, E_AC_JOULES, E_MAC_JOULES, ENERGY_LABEL
from tssl_baselines.common import copy_weights

# ------------------------------------------------------------------------------------------------------------
# The tiny model: 1x3x3 image -> 2C3 (padding 1) -> 1.1 x sum pool 2 -> linear 3 -> linear 2, T = 3, tau_m 5,
# tau_s 3, V 1. Weights are chosen so that every neuron either fires at every step or never, except one.
#
#   conv channel 0: only the centre tap, 6   -> neuron (i, j) sees 6 x (PSP of pixel (i, j)): fires at every step
#                                               where the pixel is >= 1 (current 2, 10/3, 38/9 for a pixel of 1)
#   conv channel 1: only the top-left tap, -1 -> never fires (negative or zero current)
#   linear 1 (2 pooled units -> 3):  h0 = 4 x unit0, h1 = 4 x unit1, h2 = -4 x unit0 + 1 x unit1
#   linear 2 (3 -> 2):               o0 = 2.4 x h0, o1 = 2 x h2
#
# Sample A has pixels 1, 1, 1, 2 at (0,0), (0,2), (1,1), (2,2); sample B a single 1 at (1,1).

STEPS = 3
TINY = ModelConfig("2C3p1-P2-3", (1, 3, 3), 2, STEPS)
IMAGES = torch.tensor([
    [[[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 2.0]]],
    [[[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]],
])  # fmt: skip
LABELS = torch.tensor([0, 1])


def tiny_network() -> nn.Module:
    net = build_network(TINY.architecture, TINY.input_shape, TINY.classes, STEPS)
    conv = torch.zeros(2, 1, 3, 3)
    conv[0, 0, 1, 1], conv[1, 0, 0, 0] = 6.0, -1.0
    with torch.no_grad():
        net.layers[0].weight.copy_(conv)
        net.layers[2].weight.copy_(torch.tensor([[4.0, 0.0], [0.0, 4.0], [-4.0, 1.0]]))
        net.layers[3].weight.copy_(torch.tensor([[2.4, 0.0, 0.0], [0.0, 0.0, 2.0]]))
    return net


def test_tiny_model_every_metric_by_hand():
    result = measure_efficiency(tiny_network(), [(IMAGES, LABELS)])
    conv, hidden, output = result["layers"]
    assert result["convention"] == CONVENTION and result["samples"] == 2 and result["input"] == "static"
    assert [layer["name"] for layer in result["layers"]] == ["layers.0", "layers.2", "layers.3"]
    assert [layer["input"] for layer in result["layers"]] == ["static input (MAC)", "spikes (AC)", "spikes (AC)"]
    assert json.loads(json.dumps(result, allow_nan=False)) == result  # what the results store writes

    # Spikes. conv: channel 0 fires at all 3 steps at A's 4 nonzero pixels and B's 1: (4 + 1) x 3 / 2 samples.
    # h0 fires at every step in both samples (current 4 x 1.1 x 1 or 2 spikes' trace: 4.4/3 > 1 at t = 0); h1
    # sees nothing, h2 only negative current. o0 gets 2.4 x h0's trace = 0.8, 1.33, 1.69: u = 0.8 (no spike),
    # 0.64 + 1.33 (spike), 1.69 (spike): 2 spikes per sample. o1 sees the silent h2.
    assert [conv["spikes_per_sample"], hidden["spikes_per_sample"], output["spikes_per_sample"]] == [7.5, 3.0, 2.0]
    assert result["spikes_per_sample"] == 12.5
    assert [conv["neurons"], hidden["neurons"], output["neurons"], result["neurons"]] == [18, 3, 2, 23]
    assert conv["firing_rate"] == pytest.approx(7.5 / (18 * 3), rel=1e-15)
    assert hidden["firing_rate"] == pytest.approx(1 / 3, rel=1e-15)
    assert output["firing_rate"] == pytest.approx(1 / 3, rel=1e-15)
    assert result["firing_rate"] == pytest.approx(12.5 / 69, rel=1e-15)
    assert result["activation_sparsity"] == pytest.approx(1 - 12.5 / 69, rel=1e-15)

    # MACs (static image): nonzero pixels x synapses they reach (nonzero taps, borders exact) x 3 steps.
    # The centre tap gives every pixel 1 synapse; the top-left tap only pixels with row, col <= 1 (their
    # target (r+1, c+1) is inside). A: (0,0) 2, (0,2) 1, (1,1) 2, (2,2) 1 = 6; B: (1,1) 2. (6 + 2) x 3 / 2 = 12.
    assert (conv["macs"], conv["acs"]) == (12.0, 0.0)
    # ACs after pooling: the 2x2 window of the 3x3 map holds (0,0) and (1,1) only ((0,2), (2,2) are cut off by
    # the floor): A sends 2 events per step into unit 0, B 1. Unit 0 reaches h0 and h2 (2 nonzero weights):
    # (2 + 1) x 2 x 3 steps / 2 samples = 9. Not the pooled trace, not 1.1 x anything: each spike, once.
    assert (hidden["macs"], hidden["acs"]) == (0.0, 9.0)
    # h0's 3 spikes reach o0 only (1 nonzero weight): 3 per sample.
    assert (output["macs"], output["acs"]) == (0.0, 3.0)
    assert (result["macs"], result["acs"], result["synops_total"]) == (12.0, 12.0, 24.0)
    assert [conv["synops"], hidden["synops"], output["synops"]] == [12.0, 9.0, 3.0]

    # Dense: every input x every synapse x 3 steps. Conv 3x3 padding 1 on 3x3, all-ones kernel: corners reach 4
    # outputs, edges 6, the centre 9: 49 per channel, 98 for 2 channels, x 3 = 294. Linear: 2 x 3 x 3, 3 x 2 x 3.
    assert [conv["dense_synops"], hidden["dense_synops"], output["dense_synops"]] == [294.0, 18.0, 18.0]
    assert result["dense_synops"] == 330.0

    # Energy per sample: 4.6 pJ x 12 MACs + 0.9 pJ x 12 ACs = 66 pJ; dense: 4.6 pJ x 330.
    assert result["energy_joules"] == pytest.approx(66e-12, rel=1e-12)
    assert result["energy_dense_joules"] == pytest.approx(4.6e-12 * 330, rel=1e-12)
    assert conv["energy_joules"] == pytest.approx(4.6e-12 * 12, rel=1e-12)
    assert hidden["energy_joules"] == pytest.approx(0.9e-12 * 9, rel=1e-12)
    assert result["energy_model"] == {"e_mac_joules": 4.6e-12, "e_ac_joules": 0.9e-12, "label": ENERGY_LABEL}
    assert (E_MAC_JOULES, E_AC_JOULES) == (4.6e-12, 0.9e-12)
    assert "theoretical lower bound" in ENERGY_LABEL and "ignores memory traffic" in ENERGY_LABEL

    # Size: 18 + 6 + 6 weights, float32, no buffers; zeros: 16 conv, 2 + 4 linear.
    assert (result["parameter_count"], result["footprint_bytes"]) == (30, 120)
    assert result["connection_sparsity"] == pytest.approx(22 / 30, rel=1e-15)
    assert [conv["connection_sparsity"], hidden["connection_sparsity"], output["connection_sparsity"]] == [
        pytest.approx(16 / 18),
        pytest.approx(2 / 6),
        pytest.approx(4 / 6),
    ]

    # Membrane updates (NeuroBench's definition on the membrane after reset): every neuron at t = 0, then each
    # neuron-step whose membrane changed. conv: 2 x 18 at t = 0; later, only channel 1 neurons with a negative
    # input change (A: (1,1), (2,2); B: (2,2)), 2 steps each: 36 + 6 = 42, / 2 = 21. hidden: 3 + h2's 2 = 5.
    # output: 2 + o0 at t = 1 (0.8 -> 0 by the reset) = 3.
    assert [conv["membrane_updates"], hidden["membrane_updates"], output["membrane_updates"]] == [21.0, 5.0, 3.0]
    assert result["membrane_updates"] == 29.0
    assert (result["neuron_updates"], conv["neuron_updates"]) == (69, 54)


def test_event_frames_cost_one_accumulate_per_event():
    frames = torch.zeros(STEPS, 1, 1, 3, 3)  # [T, B, C, H, W]
    frames[0, 0, 0, 0, 0] = frames[2, 0, 0, 0, 0] = frames[1, 0, 0, 1, 1] = 1.0
    conv = measure_efficiency(tiny_network(), [(frames, torch.tensor([0]))])["layers"][0]
    # Pixel (0,0) reaches 2 synapses, twice; (1,1) 2 synapses, once: 6 ACs. Dense as for images.
    assert (conv["macs"], conv["acs"], conv["dense_synops"]) == (0.0, 6.0, 294.0)
    with pytest.raises(ValueError, match="event counts"):
        measure_efficiency(tiny_network(), [(frames * 0.5, torch.tensor([0]))])


def test_every_backend_counts_the_same_spikes_the_same_way():
    native = tiny_network()
    reference = measure_efficiency(native, [(IMAGES, LABELS)])
    footprints = {}
    for name, recipe in [("tssl-surrogate", "matched"), ("snntorch", "matched"), ("spikingjelly", "matched")]:
        method = get_method(name, recipe=recipe)
        model = method.build(TINY)
        copy_weights(native, model)
        result = measure_efficiency(model, [(IMAGES, LABELS)], reset=method.reset)
        footprints[name] = result.pop("footprint_bytes")
        assert result == {k: v for k, v in reference.items() if k != "footprint_bytes"}, name
    # Footprint = parameters + persistent buffers: snntorch's Leaky keeps beta, threshold (float64),
    # graded_spikes_factor and reset_mechanism_val as buffers; the native engine and SpikingJelly have none.
    assert footprints["tssl-surrogate"] == footprints["spikingjelly"] == 120 and footprints["snntorch"] > 120

    # Native recipe (spikes between layers, no PSP): the same spikes but for o0, which now gets 2.4 at every step
    # and fires 3 times; o0's membrane stays 0, so it makes no update after t = 0.
    natives = []
    for name in ("snntorch", "spikingjelly"):
        method = get_method(name, recipe="native")
        model = method.build(TINY)
        copy_weights(native, model)
        result = measure_efficiency(model, [(IMAGES, LABELS)], reset=method.reset)
        result.pop("footprint_bytes")
        natives.append(result)
    assert natives[0] == natives[1]
    assert natives[0]["spikes_per_sample"] == 13.5 and natives[0]["layers"][2]["spikes_per_sample"] == 3.0
    assert (natives[0]["macs"], natives[0]["acs"], natives[0]["membrane_updates"]) == (12.0, 12.0, 28.0)


@pytest.fixture(scope="module")
def digits_images() -> torch.Tensor:
    from tssl.data.registry import load_data

    data = load_data("digits", steps=5)
    return torch.cat([inputs for inputs, _ in data.batches(data.test, 32, limit=2)])  # 64 real test images


def digits_config(architecture: str) -> ModelConfig:
    # Weight scales raised so that an untrained network fires in every layer (rates 0.05-0.3).
    return ModelConfig(architecture, (1, 8, 8), 10, 5, padding=1, conv_weight_scale=2, linear_weight_scale=3)


def batches_of(images: torch.Tensor, size: int = 32) -> list[tuple[torch.Tensor, None]]:
    return [(images[i : i + size], None) for i in range(0, len(images), size)]


@pytest.mark.parametrize("architecture", ["8C3-32", "8C3-P2-16"])
def test_backends_agree_on_a_digits_network(digits_images, architecture):
    config = digits_config(architecture)
    torch.manual_seed(0)
    native = get_method("tssl").build(config)
    reference = measure_efficiency(native, batches_of(digits_images))
    reference.pop("footprint_bytes")
    assert all(layer["spikes_per_sample"] > 0 for layer in reference["layers"])
    by_recipe = {}
    for name in ("tssl-surrogate", "snntorch", "spikingjelly"):
        for recipe in ("matched", "native") if name != "tssl-surrogate" else ("matched",):
            method = get_method(name, recipe=recipe)
            model = method.build(config)
            copy_weights(native, model)
            result = measure_efficiency(model, batches_of(digits_images), reset=method.reset)
            result.pop("footprint_bytes")
            by_recipe.setdefault(recipe, []).append(result)
    assert all(result == reference for result in by_recipe["matched"])
    assert by_recipe["native"][0] == by_recipe["native"][1]
    assert by_recipe["native"][0]["spikes_per_sample"] != reference["spikes_per_sample"]  # other spikes, same rule


# ------------------------------------------------------------------------------------------------------------
# NeuroBench cross-check. NeuroBench hooks torch.nn.Conv2d / nn.Linear modules; our layers hold their weights
# in SpikingConv2d / SpikingLinear, so the test hands NeuroBench the same model unrolled into nn.Conv2d /
# nn.Linear modules that share the very weight tensors, with the same framework neurons, encoder and pooling
# (asserted equal in output), wrapped by NeuroBench's own SNNTorchModel / TorchModel.


class Unrolled(nn.Module):
    """A baseline network with each SpikingConv2d / SpikingLinear split into an nn.Conv2d / nn.Linear (sharing
    its weight) and its neuron; resets the framework state before every forward, as the method does."""

    def __init__(self, net: nn.Module, reset) -> None:
        super().__init__()
        self.encoder, self.reset_state = net.encoder, reset
        self.stack = nn.ModuleList()
        for layer in net.layers:
            weight = layer.weight if isinstance(layer, (SpikingConv2d, SpikingLinear)) else None
            if isinstance(layer, SpikingConv2d):
                out, inp, k = weight.shape[0], weight.shape[1], weight.shape[-1]
                module = nn.Conv2d(inp, out, k, layer.stride, layer.padding, bias=False)
            elif isinstance(layer, SpikingLinear):
                module = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
            else:
                self.stack.append(layer)
                continue
            module.weight = weight
            self.stack.extend([module, layer.neuron])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.reset_state(self)
        x = self.encoder(x)
        for module in self.stack:
            if isinstance(module, nn.Conv2d):
                y = module(x.flatten(0, 1))
                x = y.reshape(x.shape[0], -1, *y.shape[1:])
            elif isinstance(module, nn.Linear):
                x = module(x.reshape(x.shape[0], x.shape[1], -1))
            else:
                x = module(x)
        return x


def neurobench_run(name: str, recipe: str, native: nn.Module, config: ModelConfig, images: torch.Tensor, batch: int):
    """Ours and NeuroBench's metrics for the ``name`` / ``recipe`` baseline carrying ``native``'s weights."""
    pytest.importorskip("neurobench", reason="NeuroBench is an optional extra: pip install -e '.[metrics]'")
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.static import ConnectionSparsity, Footprint, ParameterCount
    from neurobench.metrics.workload import ActivationSparsity, MembraneUpdates, SynapticOperations
    from neurobench.models import SNNTorchModel, TorchModel
    from spikingjelly.activation_based.neuron import LIFNode
    from torch.utils.data import DataLoader, TensorDataset

    method = get_method(name, recipe=recipe)
    model = method.build(config)
    copy_weights(native, model)
    ours = measure_efficiency(model, batches_of(images, batch), reset=method.reset)
    unrolled = Unrolled(model, method.reset)
    unrolled_output = unrolled(images[:batch])
    method.reset(model)
    assert torch.equal(unrolled_output, model(images[:batch]))  # the same model
    if name == "snntorch":
        wrapped = SNNTorchModel(unrolled, custom_forward=True)  # NeuroBench hooks every snntorch.Leaky
    else:
        wrapped = TorchModel(unrolled)
        wrapped.add_activation_module(LIFNode)  # SpikingJelly's neuron as NeuroBench's activation layer
    loader = DataLoader(TensorDataset(images, torch.zeros(len(images), dtype=torch.long)), batch_size=batch)
    metrics = [
        [Footprint, ConnectionSparsity, ParameterCount],
        [SynapticOperations, ActivationSparsity, MembraneUpdates],
    ]
    theirs = Benchmark(wrapped, loader, [], [], metrics).run(quiet=True)
    leaky_state = sum(m.mem.numel() * m.mem.element_size() for m in unrolled.modules() if hasattr(m, "reset_mem"))
    return ours, theirs, leaky_state


@pytest.mark.parametrize("name", ["snntorch", "spikingjelly"])
def test_neurobench_on_the_tiny_model_pins_where_we_differ(name):
    for recipe, (nb_macs, nb_acs, nb_membrane) in {"matched": (21.0, 0.0, 29.0), "native": (18.0, 3.0, 28.0)}.items():
        ours, theirs, leaky_state = neurobench_run(name, recipe, tiny_network(), TINY, IMAGES, 2)
        synops = theirs["SynapticOperations"]
        # Ours, both recipes: 12 MACs (the image) + 12 ACs (9 spikes x fan-out after pooling, 3 after h0).
        assert (ours["macs"], ours["acs"], ours["dense_synops"]) == (12.0, 12.0, 330.0)
        # NeuroBench binarises each layer's input and calls it MACs unless every value is 0 or +-1. Matched: the
        # pooled PSP traces (6 = 1 unit x 2 synapses x 3 steps) and h0's trace (3) are real: 12 + 6 + 3 = 21
        # MACs, 0 ACs. Native: the pooled input is 1.1 x spike count (1.1, 2.2), still "MACs", and counts a unit
        # once however many spikes it pools (6, not our 9): 12 + 6 = 18 MACs; h0's spikes are binary: 3 ACs.
        assert (synops["Effective_MACs"], synops["Effective_ACs"], synops["Dense"]) == (nb_macs, nb_acs, 330.0)
        assert theirs["ActivationSparsity"] == pytest.approx(ours["activation_sparsity"], rel=1e-12)
        assert theirs["ParameterCount"] == ours["parameter_count"] == 30
        assert theirs["ConnectionSparsity"] == round(ours["connection_sparsity"], 4)  # NeuroBench rounds to 4
        if name == "snntorch":
            # NeuroBench's footprint also counts snntorch's run-time membrane buffers (Leaky.mem, sized by the
            # last batch); ours counts what state_dict saves.
            assert leaky_state > 0 and theirs["Footprint"] == ours["footprint_bytes"] + leaky_state
            assert theirs["MembraneUpdates"] == ours["membrane_updates"] == nb_membrane
        else:
            assert theirs["Footprint"] == ours["footprint_bytes"] == 120
            assert theirs["MembraneUpdates"] == 0  # NeuroBench reads membranes of snntorch neurons only
            assert ours["membrane_updates"] == nb_membrane


@pytest.mark.parametrize("name", ["snntorch", "spikingjelly"])
def test_neurobench_agrees_where_the_inputs_are_binary(digits_images, name):
    config = digits_config("8C3-32")  # no pooling: every layer after the first receives spikes (native recipe)
    torch.manual_seed(0)
    native = get_method("tssl").build(config)
    ours, theirs, leaky_state = neurobench_run(name, "native", native, config, digits_images, 32)
    synops = theirs["SynapticOperations"]
    assert synops["Effective_MACs"] == ours["macs"] > 0  # the image, the same count
    assert synops["Effective_ACs"] == ours["acs"] > 0  # the spikes, the same count
    assert synops["Dense"] == ours["dense_synops"]
    assert theirs["ActivationSparsity"] == pytest.approx(ours["activation_sparsity"], rel=1e-12)
    assert theirs["ParameterCount"] == ours["parameter_count"]
    assert theirs["ConnectionSparsity"] == round(ours["connection_sparsity"], 4)
    assert theirs["Footprint"] == ours["footprint_bytes"] + leaky_state

    # Matched recipe: layers pass PSP traces. NeuroBench counts every nonzero trace value as a MAC, and a trace
    # stays nonzero for the rest of the window after one spike; we count the spikes as ACs.
    ours, theirs, _ = neurobench_run(name, "matched", native, config, digits_images, 32)
    synops = theirs["SynapticOperations"]
    assert synops["Effective_ACs"] == 0 and synops["Dense"] == ours["dense_synops"]
    assert synops["Effective_MACs"] > ours["macs"] + ours["acs"]
    if name == "snntorch":
        assert theirs["MembraneUpdates"] == ours["membrane_updates"]  # reset_delay=False: post-reset membrane


def test_neurobench_after_pooling_counts_pooled_units_as_macs(digits_images):
    config = digits_config("8C3-P2-16")
    torch.manual_seed(0)
    native = get_method("tssl").build(config)
    ours, theirs, _ = neurobench_run("snntorch", "native", native, config, digits_images, 32)
    synops = theirs["SynapticOperations"]
    conv, pooled, output = ours["layers"]
    # The output layer receives spikes: the same ACs. The layer after pooling receives 1.1 x spike counts,
    # which NeuroBench counts as MACs on nonzero pooled units; we count every pooled spike as fan-out ACs.
    assert synops["Effective_ACs"] == output["acs"] > 0
    assert conv["macs"] < synops["Effective_MACs"] < conv["macs"] + pooled["acs"]
    assert synops["Dense"] == ours["dense_synops"]


# ------------------------------------------------------------------------------------------------------------
# The runner and the report

SUITE = digits_suite("tiny", task="digits-small", architecture="8C3-P2-32", methods=("tssl", "snntorch"))


def test_runner_records_efficiency_and_the_report_states_the_convention(tmp_path: Path):
    from tssl.harness.runner import RunOptions, run_suite
    from tssl.harness.suites import load_suite
    from tssl.records.report import build_report
    from tssl.records.store import read_records

    (tmp_path / "tiny.yaml").write_text(SUITE)
    options = RunOptions(tmp_path / "results", tmp_path / "runs", "cpu", limit_batches=2, progress=False)
    outcome = run_suite(load_suite(str(tmp_path / "tiny.yaml")), options, log=lambda _: None)
    assert not outcome.failed and len(outcome.ran) == 2
    records = read_records(tmp_path / "results" / "tiny.jsonl")
    for record in records:
        efficiency = record["efficiency"]
        assert efficiency["convention"] == CONVENTION and efficiency["split"] == "test"
        assert efficiency["samples"] == 128  # --limit-batches 2 at batch size 64, on the test split
        assert efficiency["synops_total"] == efficiency["macs"] + efficiency["acs"] > 0
        assert math.isclose(efficiency["energy_joules"], 4.6e-12 * efficiency["macs"] + 0.9e-12 * efficiency["acs"])
        assert [layer["name"] for layer in efficiency["layers"]] == ["layers.0", "layers.2", "layers.3"]
        assert efficiency["parameter_count"] == 8 * 9 + 8 * 4 * 4 * 32 + 32 * 10
    output = build_report("tiny", records, tmp_path / "report")
    text = output.index.read_text()
    assert "## 6. Efficiency" in text and "efficiency.png" in output.figures
    assert CONVENTION in text and CONVENTIONS[CONVENTION][:60] in text and ENERGY_LABEL in text
