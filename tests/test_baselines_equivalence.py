"""The snntorch and SpikingJelly neurons against the native engine (docs/baselines.md, "Where the models agree
and differ").

Agree: with decay 1 - 1/tau_m, threshold V, hard reset to zero and the same currents, both frameworks' LIF
give the native neuron's spikes exactly and its membranes (before and after reset) to float tolerance, in
float32 and float64, in one layer and in whole networks with copied weights. With the matched recipe the
whole network's output traces are the native ones, and snntorch's gradients are tssl-surrogate's.

Differ (each pinned below): SpikingJelly fires at u == V (native and snntorch need u > V); SpikingJelly's
Sigmoid surrogate is not clamped (gradients differ where |u - V| > 1.6); SpikingJelly needs tau_m > 1;
snntorch's own sigmoid surrogate is NaN in float32 far below threshold; neither framework has the PSP
synapse (the baseline applies it outside the framework neuron).
"""

from __future__ import annotations

import pytest
import torch

from tssl.data.digits import load_digits_split
from tssl.engine.losses import make_loss
from tssl.engine.neuron import neuron_forward, psp_filter, tsslbp_neuron
from tssl.engine.neuron_base import SURROGATE_ARG_CLAMP, SURROGATE_WIDTH
from tssl.methods import ModelConfig, get_method
from tssl_baselines import snntorch_backend, spikingjelly_backend
from tssl_baselines.common import copy_weights

BACKENDS = {"snntorch": snntorch_backend, "spikingjelly": spikingjelly_backend}
TAU_S = 3.0
# Membrane tolerance (absolute, membranes are O(1)); spikes must be equal exactly.
MEMBRANE_ATOL = {torch.float32: 2e-6, torch.float64: 1e-12}


def currents(shape, dtype, low=-0.4, high=1.2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=generator, dtype=torch.float64) * (high - low) + low).to(dtype)


def assert_same_sequences(got, ref, dtype, what):
    assert torch.equal(got.spikes, ref.spikes), f"{what}: {int((got.spikes != ref.spikes).sum())} spikes differ"
    atol = MEMBRANE_ATOL[dtype]
    torch.testing.assert_close(got.membrane, ref.membrane, rtol=0, atol=atol, msg=f"{what}: membrane before reset")
    after = ref.membrane.masked_fill(ref.spikes, 0.0)
    torch.testing.assert_close(got.after_reset, after, rtol=0, atol=atol, msg=f"{what}: membrane after reset")


# --- one layer ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("recipe", ["matched", "native"])
@pytest.mark.parametrize(("tau_m", "threshold"), [(5.0, 1.0), (8.0, 0.7)])
@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_lif_sequences_equal_the_native_neuron(backend, tau_m, threshold, recipe, dtype):
    x = currents((40, 6, 50), dtype)
    ref = neuron_forward(x, tau_m, TAU_S, threshold)
    got = BACKENDS[backend].lif_sequences(x, tau_m, threshold, recipe)
    assert ref.spikes.any() and (~ref.spikes).any()
    assert_same_sequences(got, ref, dtype, f"{backend} ({recipe}, {dtype})")


def test_snntorch_reset_delay_does_not_delay_the_spike():
    """snntorch's docstring says reset_delay=True returns the spike a step late; in 1.0 it does not: only the
    zeroing of the stored membrane moves to the next step. Both settings give the native spikes."""
    x = currents((30, 4, 40), torch.float64)
    ref = neuron_forward(x, 5.0, TAU_S, 1.0)
    delayed_spikes, delayed_mem = snntorch_backend.SnntorchLIF(5.0, 1.0, reset_delay=True).run(x)
    same_step_spikes, same_step_mem = snntorch_backend.SnntorchLIF(5.0, 1.0, reset_delay=False).run(x)
    assert torch.equal(delayed_spikes.bool(), ref.spikes)
    assert torch.equal(same_step_spikes.bool(), ref.spikes)
    torch.testing.assert_close(delayed_mem, ref.membrane)  # returned before the reset
    torch.testing.assert_close(same_step_mem, ref.membrane.masked_fill(ref.spikes, 0.0))  # after it


# --- whole networks with copied weights --------------------------------------------------------------------


def record_layers(model, modules):
    """Forward hooks that keep each module's input current and output."""
    records = []

    def hook(_module, args, output):
        records.append((args[0].detach().clone(), output.detach().clone()))

    handles = [m.register_forward_hook(hook) for m in modules]
    return records, handles


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("architecture", ["16C3-P2-64", "8C3-12C3-P2-32-D0.2-24"])
@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_network_layers_equal_the_native_network(backend, architecture, dtype):
    config = ModelConfig(architecture, (1, 8, 8), 10, 5, padding=1)
    torch.manual_seed(0)
    native = get_method("tssl").build(config).to(dtype).eval()
    torch.manual_seed(1)  # different initial weights, then the native ones copied in
    method = get_method(backend)
    baseline = method.build(config).to(dtype).eval()
    copy_weights(native, baseline)
    x = load_digits_split().test_x[:48].to(dtype)

    native_neurons = [module for _, module in native.spiking_neurons()]
    lifs = [module for _, module in baseline.lif_layers()]
    assert len(native_neurons) == len(lifs) == len([p for p in native.parameters()])
    native_records, h1 = record_layers(native, native_neurons)
    baseline_records, h2 = record_layers(baseline, lifs)
    method.reset(baseline)
    with torch.no_grad():
        native_out, baseline_out = native(x), baseline(x)
    for handle in h1 + h2:
        handle.remove()

    for index, ((native_current, _), (current, spikes)) in enumerate(
        zip(native_records, baseline_records, strict=True)
    ):
        what = f"{backend} layer {index + 1} ({dtype})"
        torch.testing.assert_close(current, native_current, rtol=0, atol=MEMBRANE_ATOL[dtype], msg=what)
        ref = neuron_forward(native_current, 5.0, TAU_S, 1.0)
        assert torch.equal(spikes.bool(), ref.spikes), f"{what}: spikes differ"
        assert_same_sequences(BACKENDS[backend].lif_sequences(native_current, 5.0, 1.0), ref, dtype, what)
    assert baseline_out.shape == native_out.shape == (5, 48, 10)
    torch.testing.assert_close(baseline_out, native_out, rtol=0, atol=MEMBRANE_ATOL[dtype])


def test_seeded_builds_draw_the_native_initial_weights():
    config = ModelConfig("8C3-P2-32", (1, 8, 8), 10, 5, padding=1, conv_weight_scale=2.0)
    built = []
    for name in ("tssl", "snntorch", "spikingjelly"):
        torch.manual_seed(7)
        built.append(list(get_method(name).build(config).parameters()))
    for params in built[1:]:
        assert all(torch.equal(a, b) for a, b in zip(built[0], params, strict=True))


# --- gradients ---------------------------------------------------------------------------------------------


def neuron_gradient(lif_forward, x, g):
    x = x.clone().requires_grad_(True)
    (psp_filter(lif_forward(x), TAU_S) * g).sum().backward()
    return x.grad


def native_gradient(x, g):
    x = x.clone().requires_grad_(True)
    (tsslbp_neuron(x, 5.0, TAU_S, 1.0, "surrogate") * g).sum().backward()
    return x.grad


def test_snntorch_matched_gradient_is_the_native_surrogate_gradient():
    """reset_delay=False + the native surrogate through custom_surrogate: the native grad="surrogate"
    backward, including far below threshold and through the reset. snntorch's spikes are float32 whatever the
    input dtype, so the gradient through them carries float32 rounding even in a float64 run."""
    x = currents((25, 5, 30), torch.float64, low=-3.0, high=1.5)
    g = currents((25, 5, 30), torch.float64, low=-1.0, high=1.0, seed=1)
    lif = snntorch_backend.SnntorchLIF(5.0, 1.0, "matched")
    torch.testing.assert_close(neuron_gradient(lif, x, g), native_gradient(x, g), rtol=1e-4, atol=1e-9)


def test_spikingjelly_matched_gradient_equals_native_where_the_clamp_is_idle():
    """Sigmoid(alpha=5) is the native surrogate; detach_reset=False keeps the reset path. Equal wherever
    |u - V| <= 1.6 (here every membrane stays in [0, 1.5])."""
    x = currents((25, 5, 30), torch.float64, low=0.0, high=0.6)
    g = currents((25, 5, 30), torch.float64, low=-1.0, high=1.0, seed=1)
    assert neuron_forward(x, 5.0, TAU_S, 1.0).membrane.sub(1.0).abs().max() <= 8 * SURROGATE_WIDTH
    lif = spikingjelly_backend.SpikingJellyLIF(5.0, 1.0, "matched")
    torch.testing.assert_close(neuron_gradient(lif, x, g), native_gradient(x, g), rtol=1e-10, atol=1e-12)


def test_spikingjelly_sigmoid_is_not_clamped_far_from_threshold():
    """Difference: the native surrogate clamps (u - V)/0.2 to [-8, 8]; SpikingJelly's Sigmoid does not, so for
    a membrane 3 below threshold its gradient is e**-7 (about 1e-3) x the native one."""
    x = torch.full((1, 1), -2.0, dtype=torch.float64)  # u = -2, |u - V| = 3 > 1.6
    g = torch.ones(1, 1, dtype=torch.float64)
    ours = neuron_gradient(spikingjelly_backend.SpikingJellyLIF(5.0, 1.0, "matched"), x, g)
    native = native_gradient(x, g)
    sig = torch.sigmoid(torch.tensor(-SURROGATE_ARG_CLAMP, dtype=torch.float64))
    assert native.item() == pytest.approx((sig * (1 - sig) / SURROGATE_WIDTH / TAU_S).item())
    sig = torch.sigmoid(torch.tensor(-3.0 / SURROGATE_WIDTH, dtype=torch.float64))
    assert ours.item() == pytest.approx((sig * (1 - sig) / SURROGATE_WIDTH / TAU_S).item())
    assert ours.item() < 2e-3 * native.item()


def test_network_gradients_against_tssl_surrogate():
    """snntorch (matched) reproduces tssl-surrogate's weight gradients; SpikingJelly (matched) only up to the
    unclamped surrogate, which here moves them by well under 1%."""
    config = ModelConfig("16C3-P2-64", (1, 8, 8), 10, 5, padding=1)
    data = load_digits_split()
    x, y = data.test_x[:64].double(), data.test_y[:64]
    loss = make_loss("kernel", 5, TAU_S)
    grads = {}
    for name in ("tssl-surrogate", "snntorch", "spikingjelly"):
        torch.manual_seed(0)
        method = get_method(name)
        model = method.build(config).double()
        method.reset(model)
        loss(model(x), y).backward()
        grads[name] = [p.grad for p in model.parameters()]
    for ref, got in zip(grads["tssl-surrogate"], grads["snntorch"], strict=True):  # float32 spikes, see above
        assert (got - ref).abs().max() <= 1e-5 * ref.abs().max()
    for ref, got in zip(grads["tssl-surrogate"], grads["spikingjelly"], strict=True):
        assert 0 < (got - ref).abs().max() <= 1e-2 * ref.abs().max()


# --- where the models differ -------------------------------------------------------------------------------


def test_spikingjelly_fires_on_reaching_the_threshold_native_and_snntorch_do_not():
    """Difference: SpikingJelly's spike test is h >= V, TSSL-BP's and snntorch's u > V."""
    x = torch.tensor([[1.0], [0.0]])  # u[0] = 1.0 exactly
    assert not neuron_forward(x, 5.0, TAU_S, 1.0).spikes.any()
    assert not snntorch_backend.lif_sequences(x, 5.0, 1.0).spikes.any()
    assert spikingjelly_backend.lif_sequences(x, 5.0, 1.0).spikes.flatten().tolist() == [True, False]


def test_spikingjelly_default_decay_input_scales_the_input_by_one_over_tau():
    """Why decay_input=False: LIFNode's default charge v + (x - v)/tau is the native neuron fed x / tau."""
    from spikingjelly.activation_based import neuron

    x = currents((30, 4, 40), torch.float64, low=0.0, high=6.0)
    node = neuron.LIFNode(tau=5.0, v_reset=0.0, step_mode="m")  # decay_input=True
    assert torch.equal(node(x).bool(), neuron_forward(x / 5.0, 5.0, TAU_S, 1.0).spikes)
    assert not torch.equal(node.v, torch.zeros_like(node.v))


def test_spikingjelly_needs_tau_m_above_one():
    """Difference: the native engine takes tau_m = 1 (decay 0); LIFNode asserts tau > 1, reported clearly."""
    x = currents((5, 3), torch.float64)
    neuron_forward(x, 1.0, TAU_S, 1.0)
    snntorch_backend.lif_sequences(x, 1.0, 1.0)
    with pytest.raises(ValueError, match="tau > 1"):
        spikingjelly_backend.SpikingJellyLIF(1.0, 1.0)


def test_snntorch_sigmoid_surrogate_is_nan_far_below_threshold_in_float32():
    """Why the matched snntorch recipe wraps the native surrogate in custom_surrogate instead of using
    snntorch.surrogate.sigmoid(slope=5): in float32 the latter's gradient is NaN once 5 (u - V) < -88."""
    from snntorch import surrogate

    shifted = torch.tensor([-20.0, -1.0, 0.5], requires_grad=True)
    surrogate.sigmoid(slope=5)(shifted).sum().backward()
    assert shifted.grad[0].isnan() and shifted.grad[1:].isfinite().all()

    shifted = torch.tensor([-20.0, -1.0, 0.5], requires_grad=True)
    snntorch_backend.tssl_surrogate()(shifted).sum().backward()
    z = (shifted.detach() / SURROGATE_WIDTH).clamp(-SURROGATE_ARG_CLAMP, SURROGATE_ARG_CLAMP)
    torch.testing.assert_close(shifted.grad, torch.sigmoid(z) * (1 - torch.sigmoid(z)) / SURROGATE_WIDTH)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_psp_synapse_is_applied_outside_the_framework_neuron(backend):
    """Neither framework's LIF has TSSL-BP's PSP synapse. Matched: the baseline filters the input and every
    layer's spikes with it, so layers pass traces; native: spikes pass and the input is the raw current."""
    config = ModelConfig("8C3-16", (1, 8, 8), 10, 5, padding=1)
    x = load_digits_split().test_x[:16]
    for recipe, synapse in (("matched", "psp"), ("native", "spike")):
        torch.manual_seed(0)
        method = get_method(backend, recipe=recipe)
        model = method.build(config)
        assert model.synapse == synapse
        lif = [m for _, m in model.lif_layers()]
        records, handles = record_layers(model, [model.encoder, *lif])
        method.reset(model)
        with torch.no_grad():
            out = model(x)
        for handle in handles:
            handle.remove()
        encoded = records[0][1]
        output_spikes = records[-1][1]
        if synapse == "psp":
            torch.testing.assert_close(encoded, psp_filter(x.expand(5, *x.shape), TAU_S))
            torch.testing.assert_close(out, psp_filter(output_spikes, TAU_S))
        else:
            assert torch.equal(encoded, x.expand(5, *x.shape))
            assert torch.equal(out, output_spikes)
            assert set(out.unique().tolist()) <= {0.0, 1.0}
