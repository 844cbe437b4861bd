"""NIR export and import (issue 16, docs/nir.md): the neuron mapping, the round trip, snnTorch 1.0 reading our
graphs and writing graphs we read, the refusals, and a finished run's final weights.

The networks are trained briefly on the real digits (sklearn, offline). The agreement figures are printed
(pytest -s) and recorded as test properties (--junitxml).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import subprocess
import sys
import textwrap
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_suites import digits_suite
from torch.utils.data import DataLoader, TensorDataset

from tssl.compat.nir import (
    NIRError,
    export_nir,
    export_run,
    load_nir,
    output_scores,
    save_final_weights,
)
from tssl.compat.nir.mapping import NeuronConstants, cuba_lif_parameters, steps_from_seconds
from tssl.data.digits import CLASSES, INPUT_SHAPE, load_digits_split
from tssl.engine.layers import POOL_GAIN
from tssl.engine.losses import make_loss
from tssl.engine.network import build_network, predict
from tssl.engine.neuron import neuron_forward, psp_filter
from tssl.engine.recipe import make_optimizer
from tssl.engine.train import fit
from tssl.harness.runner import Run
from tssl.harness.suites import load_suite
from tssl.methods import ModelConfig, get_method

needs_nir = pytest.mark.skipif(
    importlib.util.find_spec("nir") is None, reason="NIR is an optional extra: pip install -e '.[nir]'"
)
STEPS, TAU_M, TAU_S = 5, 5.0, 3.0
AGREEMENT_FLOOR = 0.99  # issue 16: the same class on at least 99 % of the digits test set


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These networks are tiny: one thread trains and steps them several times faster on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


def train(net, digits, epochs: int = 4):
    """TSSL-BP's recipe on the digits for a few epochs (seconds); returns the test accuracy per epoch."""
    generator = torch.Generator().manual_seed(0)
    train_set = TensorDataset(digits.train_x, digits.train_y)
    history = fit(
        net,
        make_loss("kernel", STEPS, TAU_S),
        make_optimizer(net.parameters(), 5e-3),
        lambda: DataLoader(train_set, batch_size=32, shuffle=True, generator=generator),
        lambda: DataLoader(TensorDataset(digits.test_x, digits.test_y), batch_size=500),
        epochs=epochs,
        progress=False,
    )
    return [record.test_accuracy for record in history]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A run of the tiny digits suite as the runner describes it (its provenance config is ``run.config``)."""
    path = tmp_path_factory.mktemp("suite") / "nirtest.yaml"
    path.write_text(digits_suite("nirtest", architecture="8C3-P2-32"))
    (task,) = load_suite(str(path)).tasks
    return Run("nirtest", task, "tssl", 0)


@pytest.fixture(scope="module")
def trained_cnn(digits, digits_run):
    """8C3-P2-32-10 (conv, 1.1 x sum pooling, linear), built as the runner builds the run, trained 4 epochs."""
    torch.manual_seed(0)
    net = get_method("tssl").build(ModelConfig.from_task(digits_run.task, INPUT_SHAPE, CLASSES))
    accuracy = train(net, digits)
    assert accuracy[-1] >= 0.85, accuracy  # a trained network, so that agreeing on its classes means something
    return net.eval()


@pytest.fixture(scope="module")
def trained_mlp(digits):
    torch.manual_seed(0)
    net = build_network("64", INPUT_SHAPE, CLASSES, STEPS)
    accuracy = train(net, digits)
    assert accuracy[-1] >= 0.85, accuracy
    return net.eval()


def outputs(net, inputs):
    with torch.no_grad():
        return net(inputs)


def accuracy_of(predictions, labels) -> float:
    return (predictions == labels).double().mean().item()


def report(record_property, **figures):
    print("\n" + ", ".join(f"{key} = {value:.4f}" if isinstance(value, float) else f"{key} = {value}"
                           for key, value in figures.items()))
    for key, value in figures.items():
        record_property(key, value)


# --- the neuron mapping --------------------------------------------------------------------------------------


def euler_cuba_lif(node, currents: np.ndarray, dt: float):
    """NIR's CubaLIF stepped by forward Euler at ``dt``, written from its equations (nir 1.0.8's docstring):
    ``tau_syn I' = -I + w_in S``, ``tau_mem v' = v_leak - v + R I``, spike where ``v > v_threshold``, then
    ``v = v_reset``. ``currents`` [T, n] is S. Returns I, v before the reset, and the spikes."""
    current = np.zeros(currents.shape[1])
    voltage = np.zeros(currents.shape[1])
    trace = {"current": [], "voltage": [], "spikes": []}
    for step_input in currents:
        current = current + dt / node.tau_syn * (-current + node.w_in * step_input)
        voltage = voltage + dt / node.tau_mem * (node.v_leak - voltage + node.r * current)
        spikes = voltage > node.v_threshold
        trace["current"].append(current)
        trace["voltage"].append(voltage)
        trace["spikes"].append(spikes)
        voltage = np.where(spikes, node.v_reset, voltage)
    return {key: np.stack(value) for key, value in trace.items()}


@needs_nir
@pytest.mark.parametrize(("tau_m", "tau_s", "threshold", "dt"), [(5.0, 3.0, 1.0, 1e-4), (8.0, 4.0, 1.5, 1e-3),
                                                                (2.5, 7.25, 0.7, 1e-4)])
def test_cuba_lif_stepped_by_forward_euler_is_our_neuron(tau_m, tau_s, threshold, dt):
    """docs/nir.md's mapping, in float64: the Euler-stepped CubaLIF's current is our PSP-filtered input, its
    membrane our membrane, its spikes our spikes; the other reading of w_in (1/tau_s) is not."""
    import nir

    generator = torch.Generator().manual_seed(0)
    synaptic_input = torch.rand(40, 300, generator=generator, dtype=torch.float64) * 2.4 - 0.4  # W s, per step
    constants = NeuronConstants(tau_m, tau_s, threshold)
    node = nir.CubaLIF(**cuba_lif_parameters(constants, (300,), dt))
    euler = euler_cuba_lif(node, synaptic_input.numpy(), dt)
    current = psp_filter(synaptic_input, tau_s)
    ours = neuron_forward(current, tau_m, tau_s, threshold)
    assert 0.05 < ours.spikes.double().mean() < 0.9  # the neurons fire, and not at every step
    assert np.array_equal(euler["spikes"], ours.spikes.numpy())
    np.testing.assert_allclose(euler["current"], current.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(euler["voltage"], ours.membrane.numpy(), rtol=0, atol=1e-12)
    node.w_in = np.full(300, 1 / tau_s)  # the normalisation counted twice: different spikes
    assert not np.array_equal(euler_cuba_lif(node, synaptic_input.numpy(), dt)["spikes"], ours.spikes.numpy())


def test_time_constants_come_back_exactly_from_seconds():
    for dt in (1e-4, 1e-3, 5e-4):
        for steps in np.round(np.arange(1.0, 60.0, 0.05), 2):
            assert steps_from_seconds(float(steps) * dt, dt) == steps, (steps, dt)


# --- export --------------------------------------------------------------------------------------------------


@needs_nir
def test_export_writes_the_documented_graph(trained_cnn):
    import nir

    graph = export_nir(trained_cnn)
    chain = [type(node).__name__ for node in graph.nodes.values()]
    assert chain == ["Input", "Conv2d", "CubaLIF", "SumPool2d", "Scale", "Flatten", "Linear", "CubaLIF", "Linear",
                     "CubaLIF", "Output"]
    assert graph.edges == list(pairwise(graph.nodes))
    lif = graph.nodes["lif_1"]
    assert isinstance(lif, nir.CubaLIF) and lif.tau_syn.shape == (8, 8, 8)
    expected = {"tau_syn": TAU_S * 1e-4, "tau_mem": TAU_M * 1e-4, "r": TAU_M, "w_in": 1.0, "v_threshold": 1.0,
                "v_leak": 0.0, "v_reset": 0.0}
    for field, value in expected.items():
        assert np.all(getattr(lif, field) == value), field
    conv = graph.nodes["conv_1"]
    assert np.array_equal(conv.weight, trained_cnn.layers[0].weight.detach().numpy()) and not conv.bias.any()
    assert tuple(conv.padding) == (1, 1) and tuple(conv.output_type["output"]) == (8, 8, 8)
    assert np.all(graph.nodes["gain_2"].scale == np.float32(POOL_GAIN))
    assert graph.metadata["dt"] == 1e-4 and graph.metadata["steps"] == STEPS and graph.metadata["tau_s"] == TAU_S
    assert "summed PSP trace" in graph.metadata["readout"]

    averaged = export_nir(trained_cnn, pooling="avg")
    assert [type(n).__name__ for n in averaged.nodes.values()][3:5] == ["AvgPool2d", "Flatten"]
    folded = averaged.nodes["linear_3"].weight.astype(np.float64)
    np.testing.assert_allclose(folded, trained_cnn.layers[2].weight.detach().double().numpy() * 4 * POOL_GAIN,
                               rtol=1e-6)


@needs_nir
def test_export_refuses_what_nir_cannot_express(trained_cnn):
    with pytest.raises(NIRError, match="not a Linear"):
        export_nir(torch.nn.Linear(3, 2))
    with pytest.raises(NIRError, match="pooling='max' is not a form"):
        export_nir(trained_cnn, pooling="max")
    with pytest.raises(NIRError, match="metadata key 'dt' is the export's own"):
        export_nir(trained_cnn, metadata={"dt": 1e-3})  # load_nir would read the time constants at the wrong dt
    net = build_network("4-3", (5,), 2, STEPS)
    net.layers[1].neuron.tau_s = 4.0  # one layer's trace with its own tau_s: no single CubaLIF synapse for it
    with pytest.raises(NIRError, match=r"^layer 2 \(SpikingLinear\): .*one pair per network$"):
        export_nir(net)


# --- round trip ----------------------------------------------------------------------------------------------


@needs_nir
def test_round_trip_gives_bit_identical_traces_on_the_digits_test_set(trained_cnn, digits, tmp_path):
    path = tmp_path / "digits.nir"
    export_nir(trained_cnn, path)
    loaded = load_nir(path).eval()
    ours, theirs = outputs(trained_cnn, digits.test_x), outputs(loaded, digits.test_x)
    assert ours.sum() > 0  # the output layer spikes
    assert torch.equal(ours, theirs)
    assert (loaded.spec.tau_m, loaded.spec.tau_s, loaded.spec.steps) == (TAU_M, TAU_S, STEPS)
    for mine, read in zip(trained_cnn.parameters(), loaded.parameters(), strict=True):
        assert torch.equal(mine, read)


@needs_nir
def test_round_trip_of_a_deeper_network_with_dropout_and_strides(tmp_path):
    torch.manual_seed(0)
    net = build_network("6C3-P2-8C3s2-D0.2-12", (2, 12, 12), 4, 10, padding=1, tau_m=8.0, tau_s=4.0,
                        threshold=[1.0, 0.8, 1.2, 0.9], conv_weight_scale=5.0, linear_weight_scale=6.0).eval()
    graph = export_nir(net, tmp_path / "deep.nir")
    assert not any("dropout" in name for name in graph.nodes)  # the identity at inference leaves no node
    loaded = load_nir(tmp_path / "deep.nir").eval()
    inputs = torch.rand(16, 2, 12, 12, generator=torch.Generator().manual_seed(1)) * 4
    ours = outputs(net, inputs)
    assert ours.sum() > 0 and torch.equal(ours, outputs(loaded, inputs))
    assert [m.neuron.threshold for m in loaded.layers if hasattr(m, "neuron")] == [1.0, 0.8, 1.2, 0.9]
    events = (torch.rand(10, 3, 2, 12, 12, generator=torch.Generator().manual_seed(2)) < 0.3).float() * 4
    assert torch.equal(outputs(net, events), outputs(loaded, events))  # event frames, one per step


@needs_nir
def test_average_pool_form_reads_back_as_the_same_network(trained_cnn, digits, tmp_path):
    export_nir(trained_cnn, tmp_path / "avg.nir", pooling="avg")
    loaded = load_nir(tmp_path / "avg.nir").eval()
    for mine, read in zip(trained_cnn.parameters(), loaded.parameters(), strict=True):
        torch.testing.assert_close(read, mine, rtol=2e-7, atol=0)  # k*k*1.1 folded in and out: one rounding each
    assert torch.equal(predict(outputs(loaded, digits.test_x)), predict(outputs(trained_cnn, digits.test_x)))


@needs_nir
def test_an_imported_graph_trains_with_tsslbp(digits, tmp_path):
    torch.manual_seed(3)
    untrained = build_network("8C3-P2-32", INPUT_SHAPE, CLASSES, STEPS, padding=1)
    export_nir(untrained, tmp_path / "untrained.nir")
    imported = load_nir(tmp_path / "untrained.nir", grad="tsslbp")
    accuracy = train(imported, digits)
    assert accuracy[-1] >= 0.85, accuracy


# --- across libraries: snnTorch 1.0 ----------------------------------------------------------------------------


def spikes_of(traces: torch.Tensor) -> torch.Tensor:
    """The spikes behind our output traces [T, B, classes]: each step's trace rises by 1/tau_s where one fired."""
    before = torch.cat([torch.zeros_like(traces[:1]), traces[:-1]]) * (1 - 1 / TAU_S)
    return (traces - before) > 0.5 / TAU_S


def snntorch_output_spikes(module, inputs: torch.Tensor, steps: int) -> torch.Tensor:
    """Step snnTorch's imported module: one call per time step, one sample at a time. snnTorch 1.0 maps NIR's
    batch-free Flatten(start_dim=0) to torch's Flatten(0), which would flatten a batch dimension too."""
    import snntorch.utils

    samples = []
    with torch.no_grad():
        for sample in inputs:
            snntorch.utils.reset(module)
            samples.append(torch.stack([module(sample)[0] for _ in range(steps)]))
    return torch.stack(samples, dim=1)  # [T, B, classes]


@needs_nir
def test_snntorch_reads_our_graph_and_predicts_our_classes(trained_cnn, digits, tmp_path, record_property):
    import nir
    from snntorch.import_nir import import_from_nir

    path = tmp_path / "digits_avg.nir"
    export_nir(trained_cnn, path, pooling="avg")  # snnTorch 1.0 maps neither SumPool2d + Scale nor Scale
    with contextlib.redirect_stdout(io.StringIO()):  # its importer prints a warning per CubaLIF (w_in != tau_syn/dt)
        module = import_from_nir(nir.read(path))
    spikes = snntorch_output_spikes(module, digits.test_x, STEPS)
    ours = outputs(trained_cnn, digits.test_x)
    theirs = output_scores(spikes, TAU_S)
    assert torch.equal(psp_filter(spikes_of(ours).float(), TAU_S), ours)  # spikes_of recovers our output spikes
    agreement = accuracy_of(theirs.argmax(-1), predict(ours))
    report(
        record_property,
        snntorch_same_class=agreement,
        tssl_accuracy=accuracy_of(predict(ours), digits.test_y),
        snntorch_accuracy=accuracy_of(theirs.argmax(-1), digits.test_y),
        snntorch_same_output_spikes=(spikes.bool() == spikes_of(ours)).all(0).all(-1).double().mean().item(),
        snntorch_spike_count_same_class=accuracy_of(spikes.sum(0).argmax(-1), predict(ours)),
    )
    assert agreement >= AGREEMENT_FLOOR


def snntorch_network(weights, tau_m: float, tau_s: float):
    """Our MLP as snnTorch's own modules: Linear + Synaptic. Its synapse adds the input unscaled where ours adds
    input / tau_s, so its weights are ours / tau_s."""
    import snntorch as snn

    def synaptic(size: int, **options):
        # Per-neuron constants: snnTorch 1.0 exports a scalar one as a shapeless CubaLIF that NIR's type
        # inference refuses (snntorch issue 410).
        return snn.Synaptic(alpha=torch.full((size,), 1 - 1 / tau_s), beta=torch.full((size,), 1 - 1 / tau_m),
                            threshold=torch.ones(size), reset_mechanism="zero", reset_delay=False, init_hidden=True,
                            **options)

    layers: list[torch.nn.Module] = [torch.nn.Flatten()]
    for index, weight in enumerate(weights):
        linear = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        linear.weight.data = weight.detach().clone() / tau_s
        layers += [linear, synaptic(weight.shape[0], output=index == len(weights) - 1)]
    return torch.nn.Sequential(*layers)


@needs_nir
@pytest.mark.filterwarnings("ignore:nirtorch.extract_nir_graph is being deprecated:DeprecationWarning")
def test_a_graph_snntorch_exports_imports_into_our_engine(trained_mlp, digits, tmp_path, record_property):
    import nir
    import snntorch.utils
    from snntorch.export_nir import export_to_nir

    theirs = snntorch_network([layer.weight for layer in trained_mlp.layers], TAU_M, TAU_S)
    with torch.no_grad():
        snntorch.utils.reset(theirs)
        spikes = torch.stack([theirs(digits.test_x)[0] for _ in range(STEPS)])
    their_classes = output_scores(spikes, TAU_S).argmax(-1)
    graph = export_to_nir(theirs, digits.test_x[:1], ignore_dims=[0])  # NIR types have no batch dimension
    nir.write(tmp_path / "snntorch_mlp.nir", graph)
    imported = load_nir(tmp_path / "snntorch_mlp.nir", steps=STEPS).eval()
    # snnTorch writes float32 constants: tau_s = 3.0000001 steps here, the same network to float32 precision.
    assert imported.spec.tau_s == pytest.approx(TAU_S, rel=1e-6)
    assert imported.spec.tau_m == pytest.approx(TAU_M, rel=1e-6)
    classes = predict(outputs(imported, digits.test_x))
    agreement = accuracy_of(classes, their_classes)
    report(record_property, imported_same_class_as_snntorch=agreement,
           imported_accuracy=accuracy_of(classes, digits.test_y),
           snntorch_accuracy=accuracy_of(their_classes, digits.test_y))
    assert agreement >= AGREEMENT_FLOOR
    assert accuracy_of(classes, digits.test_y) >= 0.85


# --- refusals ------------------------------------------------------------------------------------------------


def _cuba(size: int, tau_syn=3e-4, tau_mem=5e-4, **fields):
    import nir

    values = {"tau_syn": tau_syn, "tau_mem": tau_mem, "r": 5.0, "v_leak": 0.0, "v_threshold": 1.0, "v_reset": 0.0,
              "w_in": 1.0, **fields}
    return nir.CubaLIF(**{k: np.broadcast_to(np.asarray(v, dtype=np.float64), (size,)).copy()
                          for k, v in values.items()})


def _graph(nodes: dict, edges: list | None = None):
    import nir

    edges = edges if edges is not None else list(pairwise(nodes))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"steps": STEPS, "dt": 1e-4}, type_check=False)


def _weights(rows: int, columns: int):
    return np.ones((rows, columns), dtype=np.float32) / columns


def _refused_graphs():
    import nir

    start = {"input": nir.Input(input_type=np.array([4]))}
    end = {"output": nir.Output(output_type=np.array([3]))}
    fc = nir.Linear(weight=_weights(3, 4))
    image = {"input": nir.Input(input_type=np.array([1, 4, 4]))}
    conv = nir.Conv2d(input_shape=(4, 4), weight=np.ones((2, 1, 3, 3), np.float32), stride=1, padding=1,
                      dilation=1, groups=1, bias=np.zeros(2, np.float32))
    tail = {"flat": nir.Flatten(input_type=np.array([2, 4, 4])), "fc": nir.Linear(weight=_weights(3, 32)),
            "lif_out": _cuba(3), **end}
    recurrent = nir.NIRGraph(nodes={"in": nir.Input(np.array([3])), "lif": _cuba(3), "out": nir.Output(np.array([3]))},
                             edges=[("in", "lif"), ("lif", "out")], type_check=False)
    return {
        "LIF without a synapse": (_graph({**start, "fc": fc, "lif": nir.LIF(
            tau=np.full(3, 5e-4), r=np.full(3, 5.0), v_leak=np.zeros(3), v_threshold=np.ones(3)), **end}),
            "lif", "is a LIF, which our engine cannot represent"),
        "bias": (_graph({**start, "fc": nir.Affine(weight=_weights(3, 4), bias=np.full(3, 0.5)), "lif": _cuba(3),
                         **end}), "fc", "nonzero bias"),
        "leak voltage": (_graph({**start, "fc": fc, "lif": _cuba(3, v_leak=0.1), **end}), "lif", "v_leak = 0.1"),
        "per-neuron tau": (_graph({**start, "fc": fc, "lif": _cuba(3, tau_syn=[3e-4, 3e-4, 4e-4]), **end}),
                           "lif", "tau_syn differs between neurons"),
        "two taus": (_graph({**start, "fc": fc, "lif": _cuba(3), "fc2": nir.Linear(weight=_weights(3, 3)),
                             "lif2": _cuba(3, tau_mem=8e-4), **end}), "lif2", "one tau_m and one tau_s"),
        "no neuron between weights": (_graph({**start, "fc": fc, "fc2": nir.Linear(weight=_weights(3, 3)),
                                              "lif": _cuba(3), **end}), "fc2", "no CubaLIF between them"),
        "neuron without weights": (_graph({"input": nir.Input(np.array([3])), "lif": _cuba(3), **end}), "lif",
                                   "no Conv2d or Linear weights before it"),
        "grouped conv": (_graph({**image, "conv": nir.Conv2d(
            input_shape=(4, 4), weight=np.ones((2, 1, 3, 3), np.float32), stride=1, padding=1, dilation=1, groups=2,
            bias=np.zeros(2, np.float32)), "lif": _cuba(32), **tail}), "conv", "groups = 1"),
        "overlapping pool": (_graph({**image, "conv": conv, "lif": _cuba(32), "pool": nir.SumPool2d(
            kernel_size=np.array([2, 2]), stride=np.array([1, 1]), padding=np.array([0, 0])), **tail}), "pool",
            "do not overlap"),
        "branch": (_graph({**start, "fc": fc, "lif": _cuba(3), **end, "fc_side": nir.Linear(weight=_weights(3, 4))},
                          [("input", "fc"), ("input", "fc_side"), ("fc", "lif"), ("lif", "output")]),
                   "input", "joins or splits"),
        "recurrent subgraph": (_graph({**start, "fc": fc, "rnn": recurrent, **end}), "rnn", "subgraph"),
        "readout without neuron": (_graph({**start, "fc": fc, "lif": _cuba(3),
                                           "readout": nir.Linear(weight=_weights(3, 3)), **end}), "readout",
                                   "reach the Output with no CubaLIF"),
    }


@needs_nir
@pytest.mark.parametrize("case", ["LIF without a synapse", "bias", "leak voltage", "per-neuron tau", "two taus",
                                  "no neuron between weights", "neuron without weights", "grouped conv",
                                  "overlapping pool", "branch", "recurrent subgraph", "readout without neuron"])
def test_load_refuses_what_our_engine_cannot_represent_naming_the_node(case):
    graph, node, reason = _refused_graphs()[case]
    with pytest.raises(NIRError) as refused:
        load_nir(graph)
    message = str(refused.value)
    assert f"node {node!r}" in message and reason in message and "\n" not in message, message


@needs_nir
def test_load_asks_for_what_the_graph_does_not_state(trained_cnn, tmp_path):
    import nir

    bare = _graph({"input": nir.Input(np.array([4])), "fc": nir.Linear(weight=_weights(3, 4)), "lif": _cuba(3),
                   "output": nir.Output(np.array([3]))})
    bare.metadata = {}
    with pytest.raises(NIRError, match="does not state its number of time steps; pass steps="):
        load_nir(bare)
    assert load_nir(bare, steps=7).steps == 7  # dt defaults to snnTorch's 1e-4 s: tau_s = 3 steps
    with pytest.raises(NIRError, match=r"tau_syn / dt = 0.3 and tau_mem / dt = 0.5 steps at dt = 0.001 s"):
        load_nir(bare, steps=7, dt=1e-3)
    graph = export_nir(trained_cnn)
    with pytest.raises(NIRError, match=r"dt=0.001 was given, but the graph states dt = 0.0001 s"):
        load_nir(graph, dt=1e-3)
    assert load_nir(graph, steps=10).steps == 10  # T is how long a static input is shown: any T runs the graph
    with pytest.raises(NIRError, match="no such NIR file"):
        load_nir(tmp_path / "missing.nir")


# --- a finished run's final weights ----------------------------------------------------------------------------


@needs_nir
def test_export_run_rebuilds_the_run_and_exports_it(trained_cnn, digits_run, digits, tmp_path):
    run_dir = tmp_path / "runs" / digits_run.run_id
    run_dir.mkdir(parents=True)
    written = save_final_weights(trained_cnn, digits_run.config, INPUT_SHAPE, CLASSES, run_dir)
    assert written == run_dir / "final.pt" and not list(run_dir.glob("*.partial"))
    graph = export_run(run_dir, tmp_path / "run.nir")
    assert json.loads(graph.metadata["tssl_run_config"]) == json.loads(json.dumps(digits_run.config))
    loaded = load_nir(tmp_path / "run.nir").eval()
    assert torch.equal(outputs(loaded, digits.test_x), outputs(trained_cnn, digits.test_x))
    export_run(written, tmp_path / "from_file.nir", pooling="avg")  # the file itself, and the other pooling form
    assert (tmp_path / "from_file.nir").is_file()


@needs_nir
def test_export_run_refuses_runs_it_cannot_export(trained_cnn, digits_run, tmp_path):
    baseline = {**digits_run.config, "method": "snntorch"}
    save_final_weights(trained_cnn, baseline, INPUT_SHAPE, CLASSES, tmp_path / "baseline.pt")
    with pytest.raises(NIRError, match="method is 'snntorch'; NIR export covers the native engine's runs"):
        export_run(tmp_path / "baseline.pt", tmp_path / "out.nir")
    torch.save({"model": trained_cnn.state_dict(), "optimizer": {}}, tmp_path / "checkpoint.pt")
    with pytest.raises(NIRError, match="not a tssl-final-weights file"):
        export_run(tmp_path / "checkpoint.pt", tmp_path / "out.nir")
    other = {**digits_run.config, "architecture": "8C3-P2-64"}
    save_final_weights(trained_cnn, other, INPUT_SHAPE, CLASSES, tmp_path / "other.pt")
    with pytest.raises(NIRError, match="the weights do not fit the network the run config describes"):
        export_run(tmp_path / "other.pt", tmp_path / "out.nir")
    with pytest.raises(NIRError, match="no final weights here"):
        export_run(tmp_path / "empty", tmp_path / "out.nir")
    assert not (tmp_path / "out.nir").exists()


def test_saving_final_weights_needs_no_nir(tmp_path):
    """The runner keeps every run's weights: that must work where the nir extra is not installed."""
    script = textwrap.dedent(
        f"""
        import importlib.abc
        import sys


        class NoNIR(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "nir" or name.startswith(("nir.", "nirtorch")):
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
                return None


        sys.meta_path.insert(0, NoNIR())
        from tssl.compat.nir import export_nir, save_final_weights
        from tssl.engine.network import build_network

        net = build_network("4", (3,), 2, 5)
        save_final_weights(net, {{"method": "tssl", "architecture": "4", "steps": 5}}, (3,), 2, {str(tmp_path)!r})
        try:
            export_nir(net)
        except ImportError as error:
            print("refused:", error)
        """
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "final.pt").is_file()
    assert "refused: NIR export and import need the nir package: pip install 'tssl-bench[nir]'" in done.stdout
