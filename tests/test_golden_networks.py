"""Whole networks against tensors dumped from the authors' code (tests/golden/README.md): one official
training step per case, in float32 and float64, at the README's tolerances."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tssl.compat import official
from tssl.engine.neuron import neuron_forward
from tssl.engine.neuron_compiled import COMPILE_ENV
from tssl.engine.recipe import clip_and_step, make_optimizer

GOLDEN = Path(__file__).parent / "golden"
CASES = ("v1", "v2", "v3")
# (relative tolerance on tensors, relative tolerance on scalars, absolute tolerance on the stepped weights)
TOLERANCES = {torch.float32: (1e-5, 1e-5, 1e-6), torch.float64: (1e-9, 1e-9, 1e-12)}


def time_first(t: torch.Tensor) -> torch.Tensor:
    """Official (N, C, H, W, T) -> ours [T, N, C, H, W]; FC activations (N, out, 1, 1, T) -> [T, N, out]."""
    t = t.movedim(-1, 0)
    if t.dim() == 5 and t.shape[-2:] == (1, 1):
        t = t[..., 0, 0]
    return t


def assert_close_to_max(got: torch.Tensor, ref: torch.Tensor, rtol: float, what: str) -> None:
    ref = ref.to(got.dtype)
    assert got.shape == ref.shape, f"{what}: shape {tuple(got.shape)} != {tuple(ref.shape)}"
    scale = ref.abs().max().item()
    bound = rtol * scale if scale > 0 else 1e-7
    err = (got - ref).abs().max().item()
    assert err <= bound, f"{what}: max |got - ref| = {err:.3g} > {bound:.3g}"


@pytest.fixture(scope="module", params=CASES)
def case(request):
    return request.param, torch.load(GOLDEN / f"{request.param}.pt", weights_only=True)


def run_official_step(golden: dict, dtype: torch.dtype):
    """Build the network from the case's YAML and weights, run one training step and record everything."""
    ref = golden if dtype == torch.float32 else golden["f64"]
    state = {name: w.to(dtype) for name, w in zip(golden["weight_names"], ref["weights"], strict=True)}
    input_shape = tuple(golden["input"].shape[1:4])
    net, loss_fn = official.build(golden["config_yaml"], state_dict=state, input_shape=input_shape)
    net.to(dtype)
    x = ref["input"].to(dtype)
    if x.dim() == 5:  # event frames (N, C, H, W, T) -> [T, N, C, H, W]
        x = x.movedim(-1, 0)

    outputs: list[torch.Tensor] = []
    currents: list[torch.Tensor] = []

    def keep_output(_module, _inputs, out):
        out.retain_grad()
        outputs.append(out)

    hooks = [layer.register_forward_hook(keep_output) for layer in net.layers]
    hooks += [n.register_forward_hook(lambda m, i, o: currents.append(i[0].detach())) for _, n in net.spiking_neurons()]
    input_psp = net.input_filter(x)
    out = net(x)
    loss = loss_fn(out, golden["labels"])
    out.retain_grad()
    loss.backward()
    for hook in hooks:
        hook.remove()
    grads = [p.grad.clone() for p in net.parameters()]
    params = list(net.parameters())
    total_norm = clip_and_step(params, make_optimizer(params, golden["network_config"]["lr"]))
    return {
        "net": net,
        "loss_fn": loss_fn,
        "input_psp": input_psp,
        "outputs": outputs,
        "currents": currents,
        "out": out,
        "loss": loss.item(),
        "grads": grads,
        "grad_total_norm": total_norm.item(),
        "grads_clipped": [p.grad for p in params],
        "weights_after_step": [p.detach() for p in params],
    }


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("neuron_path", ["eager", "compiled"])
def test_official_training_step(case, dtype, neuron_path, monkeypatch):
    if neuron_path == "compiled":  # the opt-in fused CPU path (TSSL_NEURON_COMPILE=1) against the same goldens
        if os.environ.get("TSSL_TEST_COMPILE") != "1":
            pytest.skip("compiling takes tens of seconds; TSSL_TEST_COMPILE=1 (set by tox -e test) runs it")
        monkeypatch.setenv(COMPILE_ENV, "1")
    else:
        monkeypatch.setenv(COMPILE_ENV, "0")
    name, golden = case
    rtol, scalar_rtol, weight_atol = TOLERANCES[dtype]
    ref = golden if dtype == torch.float32 else golden["f64"]
    got = run_official_step(golden, dtype)

    assert [f"my_parameters.{i}" for i in range(len(got["grads"]))] == golden["weight_names"]
    if dtype == torch.float32:
        assert_close_to_max(got["input_psp"], time_first(golden["input_psp"]), rtol, f"{name} input_psp")
    for i, layer in enumerate(golden["layer_names"]):
        assert_close_to_max(got["outputs"][i], time_first(ref["layer_outputs"][i]), rtol, f"{name} {layer} output")
    assert_close_to_max(got["out"], time_first(ref["output"]), rtol, f"{name} output")
    assert torch.equal(got["out"].sum(0).argmax(-1), ref["predictions"]), f"{name} predictions"
    assert got["loss"] == pytest.approx(ref["loss"], rel=scalar_rtol), f"{name} loss"
    assert_close_to_max(got["out"].grad, time_first(ref["delta"]), rtol, f"{name} delta = dL/d(output)")
    if "target_psp" in ref:
        target = got["loss_fn"].target(got["out"], golden["labels"])
        assert_close_to_max(target, time_first(ref["target_psp"]), rtol, f"{name} target_psp")
    for i, (grad, ref_grad) in enumerate(zip(got["grads"], ref["grads"], strict=True)):
        assert_close_to_max(grad, ref_grad.reshape(grad.shape), rtol, f"{name} grad {i}")

    step = ref["train_step"]
    assert got["grad_total_norm"] == pytest.approx(step["grad_total_norm"], rel=scalar_rtol)
    for i, (grad, ref_grad) in enumerate(zip(got["grads_clipped"], step["grads_clipped"], strict=True)):
        assert_close_to_max(grad, ref_grad.reshape(grad.shape), rtol, f"{name} clipped grad {i}")
    for i, (w, ref_w) in enumerate(zip(got["weights_after_step"], step["weights_after_step"], strict=True)):
        err = (w - ref_w.reshape(w.shape).to(dtype)).abs().max().item()
        assert err <= weight_atol, f"{name} weight {i} after the AdamW step: max abs error {err:.3g}"


def test_layer_gradients_spikes_and_membrane(case):
    """float32 only: the golden files hold these for the float32 run (spikes are identical in float64)."""
    name, golden = case
    got = run_official_step(golden, torch.float32)
    for i, layer in enumerate(golden["layer_names"]):
        ref_grad = time_first(golden["layer_output_grads"][i])
        assert_close_to_max(got["outputs"][i].grad, ref_grad, 1e-5, f"{name} {layer} dL/d(output)")
    spiking = list(got["net"].spiking_neurons())
    assert len(spiking) == len(golden["spiking_layer_names"])
    for (_, neuron), current, layer, ref_u, ref_s, threshold in zip(
        spiking,
        got["currents"],
        golden["spiking_layer_names"],
        golden["u"],
        golden["spikes"],
        golden["thresholds"],
        strict=True,
    ):
        assert neuron.threshold == threshold
        _, membrane, spikes = neuron_forward(current, neuron.tau_m, neuron.tau_s, neuron.threshold)
        assert torch.equal(spikes.to(torch.uint8), time_first(ref_s)), f"{name} {layer} spikes"
        assert_close_to_max(membrane, time_first(ref_u), 1e-5, f"{name} {layer} membrane u")


def test_five_dimensional_and_squeezed_checkpoints_agree():
    golden = torch.load(GOLDEN / "v2.pt", weights_only=True)
    five_d = dict(zip(golden["weight_names"], golden["weights"], strict=True))
    four_d = dict(zip(golden["weight_names"], golden["weights_2d"], strict=True))
    net5, _ = official.build(golden["config_yaml"], five_d, input_shape=(1, 8, 8))
    net4, _ = official.build(golden["config_yaml"], four_d, input_shape=(1, 8, 8))
    for p5, p4 in zip(net5.parameters(), net4.parameters(), strict=True):
        assert torch.equal(p5, p4)
