"""The engine's neuron (tssl/engine/neuron.py) against the slow per-neuron reference written from the spec.

Covers the spec's worked examples, random tensors, hand-built edge neurons, and the properties the spec lists
for the TSSL-BP rule (linear in g; zero after the last spike where a >= 1/(4 tau_s); dL/dx[t] depends on g[t:]
only), for both gradient rules, on CPU and (when available) CUDA.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest
import torch
from reference_loop import (
    reference_forward,
    reference_over_tensor,
    reference_surrogate_grad,
    reference_tsslbp_grad,
    reference_tsslbp_parts,
    sigmoid_surrogate,
)

from tssl.engine.neuron import neuron_forward, tsslbp_neuron

DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param(
        "cuda",
        id="cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available"),
    ),
]
DTYPES = [pytest.param(torch.float32, id="f32"), pytest.param(torch.float64, id="f64")]
RULES = ["tsslbp", "surrogate"]
T_VALUES = [1, 2, 5, 10, 30]
SETTINGS = [(5.0, 3.0, 1.0), (8.0, 4.0, 1.0), (4.0, 2.0, 0.8)]  # (tau_m, tau_s, V)
REL_TOL = {torch.float32: 1e-5, torch.float64: 1e-10}  # of the reference's max-abs

EXAMPLE_G = [0.1, -0.2, 0.3, 0.05, -0.1]
EXAMPLE_1_X = [0.6, 0.7, 0.2, 1.1, 0.3]
EXAMPLE_1 = {
    "u": ([0.6, 1.18, 0.2, 1.26, 0.3], 2),  # (printed values, printed decimals)
    "s": ([0, 1, 0, 1, 0], 0),
    "a": ([0.0, 0.333333, 0.222222, 0.481481, 0.320988], 6),
    "grad": ([0.016635, -0.005963, -0.004193, -0.005241, 0.0], 6),
}
EXAMPLE_2_X = [1.5, 0.2, 0.3, 1.2, 0.1]
EXAMPLE_2_GRAD = [0.0204830315, -0.0032089852, -0.0040112314, -0.0050140393, 0.0]


# ----------------------------------------------------------------------------------------------- helpers


def run_engine(x: torch.Tensor, g: torch.Tensor, tau_m: float, tau_s: float, threshold: float, rule: str):
    """Engine forward + backward: returns (trace, grad_x), both detached."""
    x = x.detach().clone().requires_grad_(True)
    trace = tsslbp_neuron(x, tau_m, tau_s, threshold, grad=rule)
    trace.backward(g)
    return trace.detach(), x.grad.detach()


def assert_close_to_max_abs(got, expected, rel: float, what: str, context: str = "") -> None:
    """max|got - expected| <= rel * max|expected| (exact match required when expected is all zero)."""
    got_np = got.detach().cpu().double().numpy() if isinstance(got, torch.Tensor) else np.asarray(got, float)
    exp_np = np.asarray(expected, dtype=np.float64)
    assert got_np.shape == exp_np.shape, f"{what}: shape {got_np.shape} != {exp_np.shape}"
    assert np.all(np.isfinite(got_np)), f"{what}: non-finite values {got_np} {context}"
    err = np.abs(got_np - exp_np)
    scale = float(np.max(np.abs(exp_np))) if exp_np.size else 0.0
    if float(err.max(initial=0.0)) > rel * scale:
        worst = np.unravel_index(int(np.argmax(err)), err.shape)
        raise AssertionError(
            f"{what}: max err {err.max():.3e} > {rel:.0e} * max-abs {scale:.3e} at index {worst}: "
            f"got {got_np[worst]!r}, expected {exp_np[worst]!r} {context}"
        )


def make_generator(*key) -> torch.Generator:
    gen = torch.Generator()
    gen.manual_seed(_stable_seed(key))  # not hash(): string hashing is salted per process
    return gen


def _stable_seed(key) -> int:
    seed = 1469598103
    for ch in repr(key):
        seed = (seed * 1099511 + ord(ch)) % (2**31 - 1)
    return seed


def _neuron_margins_ok(ref: dict, tau_s: float, threshold: float) -> np.ndarray:
    """Per neuron: |u - V| >= 1e-4, |du| >= 1e-4, and a exactly at or >= 1e-6 away from 1/(4 tau_s)."""
    steps = ref["membrane"].shape[0]
    u = ref["membrane"].reshape(steps, -1)
    du = ref["du"].reshape(steps, -1)
    a = ref["trace"].reshape(steps, -1)
    switch = 1.0 / (4.0 * tau_s)
    a_gap = np.abs(a - switch)
    ok = (np.abs(u - threshold) >= 1e-4) & (np.abs(du) >= 1e-4) & ((a_gap == 0.0) | (a_gap >= 1e-6))
    return ok.all(axis=0)


def random_inputs(steps: int, tau_m: float, tau_s: float, threshold: float, dtype, key, shape=(3, 16)):
    """Random currents ``[steps, *shape]`` in ``dtype``; float32/64 rounding cannot flip a spike or a branch.

    Per-neuron mean current spans silent to bursting neurons; neurons too close to a decision are resampled.
    """
    gen = make_generator("x", steps, tau_m, tau_s, threshold, str(dtype), key)
    n_neurons = int(np.prod(shape))

    def draw(count: int) -> torch.Tensor:
        mean = (torch.rand(count, generator=gen, dtype=torch.float64) * 1.1 - 0.35) * threshold * 5.0 / tau_m
        noise = torch.randn(steps, count, generator=gen, dtype=torch.float64) * 0.45 * threshold
        return (mean + noise).to(dtype)

    x = draw(n_neurons)
    for _ in range(200):
        ref = reference_over_tensor(x, tau_m=tau_m, tau_s=tau_s, threshold=threshold)
        bad = np.flatnonzero(~_neuron_margins_ok(ref, tau_s, threshold))
        if bad.size == 0:
            break
        x[:, torch.as_tensor(bad)] = draw(int(bad.size))
    else:  # pragma: no cover - would mean the generator above is broken
        raise RuntimeError("could not draw inputs with safe margins")
    return x.reshape(steps, *shape)


def random_grads(steps: int, dtype, key, shape=(3, 16)) -> torch.Tensor:
    gen = make_generator("g", steps, str(dtype), key)
    return torch.randn(steps, *shape, generator=gen, dtype=torch.float64).to(dtype)


@cache
def random_case(steps: int, setting: tuple, dtype, key: str = "main"):
    """Inputs, upstream grad and the reference (forward + both rules) for one random configuration."""
    tau_m, tau_s, threshold = setting
    x = random_inputs(steps, tau_m, tau_s, threshold, dtype, key)
    g = random_grads(steps, dtype, key)
    ref = {
        rule: reference_over_tensor(x, g, tau_m=tau_m, tau_s=tau_s, threshold=threshold, grad=rule)
        for rule in RULES
    }
    return x, g, ref


# ------------------------------------------------------------------------------------ spec worked examples


def _assert_printed(got, printed, decimals, what):
    tol = 0.5 * 10.0 ** (-decimals) + 1e-12
    for t, (value, want) in enumerate(zip(got, printed, strict=True)):
        assert abs(float(value) - want) <= tol, f"{what}[{t}] = {float(value)!r}, spec prints {want}"


def test_spec_example_reference():
    u, du, s, a = reference_forward(EXAMPLE_1_X, 5, 3, 1)
    grad = reference_tsslbp_grad(EXAMPLE_1_X, EXAMPLE_G, 5, 3, 1)
    for name, values in (("u", u), ("s", s), ("a", a), ("grad", grad)):
        _assert_printed(values, *EXAMPLE_1[name], what=name)
    assert du == pytest.approx([0.6, 0.58, 0.2, 1.06, 0.3], abs=1e-12)
    grad2 = reference_tsslbp_grad(EXAMPLE_2_X, EXAMPLE_G, 5, 3, 1)
    assert grad2 == pytest.approx(EXAMPLE_2_GRAD, abs=1e-9)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_spec_example_engine(device, dtype):
    x = torch.tensor(EXAMPLE_1_X, dtype=dtype, device=device)
    g = torch.tensor(EXAMPLE_G, dtype=dtype, device=device)
    state = neuron_forward(x, 5, 3, 1)
    trace, grad = run_engine(x, g, 5, 3, 1, "tsslbp")
    assert torch.equal(trace, state.trace)
    _assert_printed(state.membrane.cpu().tolist(), *EXAMPLE_1["u"], what="u")
    _assert_printed(state.spikes.cpu().int().tolist(), *EXAMPLE_1["s"], what="s")
    _assert_printed(trace.cpu().tolist(), *EXAMPLE_1["a"], what="a")
    _assert_printed(grad.cpu().tolist(), *EXAMPLE_1["grad"], what="dL/dx")

    x2 = torch.tensor(EXAMPLE_2_X, dtype=dtype, device=device)
    _, grad2 = run_engine(x2, g, 5, 3, 1, "tsslbp")
    tol = 1e-9 if dtype == torch.float64 else 1e-7
    assert grad2.cpu().double().tolist() == pytest.approx(EXAMPLE_2_GRAD, abs=tol)


# ------------------------------------------------------------- the surrogate reference against autograd


class _StraightThroughSpike(torch.autograd.Function):
    """H(u - V) forward; sigma'(clamp((u-V)/0.2, -8, 8))/0.2 backward."""

    @staticmethod
    def forward(ctx, u, threshold):
        ctx.save_for_backward(u)
        ctx.threshold = threshold
        return (u > threshold).to(u.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        (u,) = ctx.saved_tensors
        z = ((u - ctx.threshold) / 0.2).clamp(-8.0, 8.0)
        sig = torch.sigmoid(z)
        return grad_out * sig * (1 - sig) / 0.2, None


def _autograd_surrogate_grad(x: torch.Tensor, g: torch.Tensor, tau_m: float, tau_s: float, threshold: float):
    x = x.detach().double().clone().requires_grad_(True)
    am, a_s = 1 - 1 / tau_m, 1 - 1 / tau_s
    m = torch.zeros_like(x[0])
    a = torch.zeros_like(x[0])
    traces = []
    for t in range(x.shape[0]):
        u = am * m + x[t]
        s = _StraightThroughSpike.apply(u, threshold)
        m = u * (1 - s)
        a = a_s * a + s / tau_s
        traces.append(a)
    (torch.stack(traces) * g.double()).sum().backward()
    return x.grad


@pytest.mark.parametrize("setting", SETTINGS, ids=str)
@pytest.mark.parametrize("steps", [1, 5, 30])
def test_surrogate_reference_matches_autograd(steps, setting):
    x, g, ref = random_case(steps, setting, torch.float64)
    expected = _autograd_surrogate_grad(x, g, *setting)
    assert_close_to_max_abs(ref["surrogate"]["grad_x"], expected.numpy(), 1e-12, "reference surrogate grad")


# ------------------------------------------------------------------------------- random tensors vs reference


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: "tm{:g}-ts{:g}-V{:g}".format(*s))
@pytest.mark.parametrize("steps", T_VALUES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_random_matches_reference(device, dtype, steps, setting, rule):
    x, g, ref_all = random_case(steps, setting, dtype)
    ref = ref_all[rule]
    rel = REL_TOL[dtype]
    state = neuron_forward(x.to(device), *setting)
    trace, grad = run_engine(x.to(device), g.to(device), *setting, rule)
    assert trace.dtype == dtype and grad.dtype == dtype
    assert torch.equal(state.spikes.cpu(), torch.from_numpy(ref["spikes"]))
    assert_close_to_max_abs(state.membrane, ref["membrane"], rel, "membrane")
    assert_close_to_max_abs(state.trace, ref["trace"], rel, "trace (neuron_forward)")
    assert_close_to_max_abs(trace, ref["trace"], rel, "trace (tsslbp_neuron)")
    assert_close_to_max_abs(grad, ref["grad_x"], rel, f"grad_x ({rule})")


def test_random_cases_exercise_both_branches():
    """The random inputs above reach silent and spiking neurons, both TSSL branches and the 1/du clamp."""
    seen = {"silent_neuron": 0, "spiking_neuron": 0, "surrogate": 0, "tssl": 0, "clamp8": 0, "burst": 0}
    for setting in SETTINGS:
        _, _, ref = random_case(30, setting, torch.float64)
        tau_s = setting[1]
        spikes = ref["tsslbp"]["spikes"].reshape(30, -1)
        seen["silent_neuron"] += int((~spikes.any(axis=0)).sum())
        seen["spiking_neuron"] += int(spikes.any(axis=0).sum())
        seen["burst"] += int((spikes[1:] & spikes[:-1]).sum())
        low = ref["tsslbp"]["trace"] < 1 / (4 * tau_s)
        seen["surrogate"] += int(low.sum())
        seen["tssl"] += int((~low).sum())
        du = ref["tsslbp"]["du"].reshape(30, -1)
        seen["clamp8"] += int((spikes & (du < 1 / 8)).sum())
    assert all(count > 0 for count in seen.values()), seen


# ------------------------------------------------------------------------------------------ edge neurons


def _spike_at(steps, times, base=0.1, value=1.5):
    x = [base] * steps
    for t in times:
        x[t] = value
    return x


def _edge_cases():
    """name -> (setting, min T, x builder(T), expected spike times builder(T) or None)."""
    default = (5.0, 3.0, 1.0)
    return {
        "no_spike_zero_input": (default, 1, lambda n: [0.0] * n, lambda n: []),
        "u_equals_V_no_spike": (default, 1, lambda n: [1.0] + [0.0] * (n - 1), lambda n: []),  # strict '>'
        "constant_subthreshold": (default, 1, lambda n: [0.15] * n, lambda n: []),
        "strongly_negative": (default, 1, lambda n: [-5.0] * n, lambda n: []),
        "spike_first_only": (default, 1, lambda n: _spike_at(n, [0]), lambda n: [0]),
        "spike_last_only": (default, 1, lambda n: _spike_at(n, [n - 1]), lambda n: [n - 1]),
        "spike_first_and_last": (default, 2, lambda n: _spike_at(n, [0, n - 1]), lambda n: [0, n - 1]),
        "spike_every_step": (default, 1, lambda n: [1.5] * n, lambda n: list(range(n))),
        "tiny_du_clamped": (default, 2, lambda n: [0.99, 0.218] + [0.1] * (n - 2), lambda n: [1]),
        "spike_gap_spike": (
            default,
            5,
            lambda n: [1.5, 0.3, 0.3, 0.3, 0.6] + [0.05] * (n - 5),
            lambda n: [0, 4],
        ),
        "periodic": (default, 3, lambda n: [0.5] * n, lambda n: list(range(2, n, 3))),
        "mixed_silent_and_spiking_negative_inputs": (
            (8.0, 4.0, 1.0),
            5,
            lambda n: [1.2, -0.4, 0.9, 0.4, -2.0] * (n // 5) + [0.0] * (n % 5),
            lambda n: None,
        ),
        # Negative threshold: a spiking step can have du == 0 (P = 8) or du < 0 (P = 0).
        "negative_V_spiking_du_zero": ((5.0, 3.0, -0.5), 1, lambda n: [0.0] * n, lambda n: list(range(n))),
        "negative_V_spiking_du_negative": (
            (5.0, 3.0, -0.5),
            1,
            lambda n: [-0.3] * n,
            lambda n: list(range(n)),
        ),
        # tau_s = 2: a == 1/(4 tau_s) = 0.125 exactly at t = 2, two steps after the lone spike at t = 0.
        "switch_tie_exact": (
            (5.0, 2.0, 1.0),
            4,
            lambda n: [1.5, 0.2, 0.2, 1.5] + [0.1] * (n - 4),
            lambda n: [0, 3],
        ),
    }


EDGE_CASES = _edge_cases()


def _edge_inputs(name: str, steps: int):
    setting, min_steps, build_x, build_spikes = EDGE_CASES[name]
    if steps < min_steps:
        pytest.skip(f"{name} needs T >= {min_steps}")
    x = build_x(steps)
    g = random_grads(steps, torch.float64, ("edge", name), shape=(1,)).reshape(-1).tolist()
    return setting, x, g, build_spikes(steps)


# Only the (case, T) pairs the case fits in: a spike-gap-spike pattern does not exist at T = 2.
EDGE_PAIRS = [(name, steps) for name in EDGE_CASES for steps in T_VALUES if steps >= EDGE_CASES[name][1]]


@pytest.mark.parametrize(("name", "steps"), EDGE_PAIRS, ids=[f"{n}-T{t}" for n, t in EDGE_PAIRS])
@pytest.mark.parametrize("device", DEVICES)
def test_edge_neurons_match_reference(device, steps, name):
    setting, x, g, spike_times = _edge_inputs(name, steps)
    tau_m, tau_s, threshold = setting
    parts = reference_tsslbp_parts(x, g, tau_m, tau_s, threshold)
    if spike_times is not None:  # the case builds what its name says
        assert [t for t in range(steps) if parts["s"][t]] == spike_times
    expected = {"tsslbp": parts["grad"], "surrogate": reference_surrogate_grad(x, g, tau_m, tau_s, threshold)}
    for dtype in (torch.float32, torch.float64):
        # Two neurons: the edge input with the random g and with g = 1 everywhere.
        x_t = torch.tensor([x, x], dtype=dtype, device=device).T.contiguous()
        g_t = torch.tensor([g, [1.0] * steps], dtype=dtype, device=device).T.contiguous()
        ref = reference_over_tensor(x_t, g_t, tau_m=tau_m, tau_s=tau_s, threshold=threshold, grad="tsslbp")
        state = neuron_forward(x_t, *setting)
        assert torch.equal(state.spikes.cpu(), torch.from_numpy(ref["spikes"]))
        assert_close_to_max_abs(state.membrane, ref["membrane"], REL_TOL[dtype], "membrane", name)
        assert_close_to_max_abs(state.trace, ref["trace"], REL_TOL[dtype], "trace", name)
        for rule in RULES:
            _, grad = run_engine(x_t, g_t, *setting, rule)
            assert torch.isfinite(grad).all(), f"{name} {rule} {dtype}: non-finite grad {grad}"
            assert_close_to_max_abs(grad[:, 0], expected[rule], REL_TOL[dtype], f"{name} grad ({rule})")
            ref_rule = reference_over_tensor(
                x_t, g_t, tau_m=tau_m, tau_s=tau_s, threshold=threshold, grad=rule
            )["grad_x"]
            assert_close_to_max_abs(grad, ref_rule, REL_TOL[dtype], f"{name} grad ({rule}, both neurons)")


@pytest.mark.parametrize("steps", T_VALUES)
def test_edge_reference_semantics(steps):
    """What the spec's rule says on specific edge neurons, checked on the reference itself."""
    if steps >= 1:
        _, x, g, _ = _edge_inputs("no_spike_zero_input", steps)
        p = reference_tsslbp_parts(x, g, 5, 3, 1)
        assert p["du"] == [0.0] * steps and p["P"] == [8.0] * steps and p["D"] == [0.0] * steps
        assert all(p["surrogate"])  # a = 0 everywhere: surrogate branch, sigma'(-5)/0.2 * K
        assert p["grad"] == pytest.approx([sigmoid_surrogate(0.0, 1.0) * k for k in p["K"]], abs=1e-15)

        _, x, g, _ = _edge_inputs("strongly_negative", steps)
        p = reference_tsslbp_parts(x, g, 5, 3, 1)
        clamped = math.exp(-8) / (1 + math.exp(-8)) ** 2 / 0.2  # sigma'(-8)/0.2: the argument is clamped
        assert p["grad"] == pytest.approx([clamped * k for k in p["K"]], rel=1e-12, abs=0)

        _, x, g, _ = _edge_inputs("negative_V_spiking_du_negative", steps)
        p = reference_tsslbp_parts(x, g, 5, 3, -0.5)
        assert p["P"] == [0.0] * steps and p["grad"] == [0.0] * steps  # a >= 1/12: TSSL branch, D = 0

        _, x, g, _ = _edge_inputs("negative_V_spiking_du_zero", steps)
        p = reference_tsslbp_parts(x, g, 5, 3, -0.5)
        assert p["du"] == [0.0] * steps and p["P"] == [8.0] * steps and not any(p["surrogate"])

        _, x, g, _ = _edge_inputs("spike_first_only", steps)
        p = reference_tsslbp_parts(x, g, 5, 3, 1)
        assert p["grad"][0] == pytest.approx(p["K"][0] / 1.5, rel=1e-14)
        for t in range(1, min(steps, 4)):  # a = (1/3)(2/3)^(t) >= 1/12 for t <= 3 and no later spike
            assert p["grad"][t] == 0.0
    if steps >= 2:
        _, x, g, _ = _edge_inputs("tiny_du_clamped", steps)
        p = reference_tsslbp_parts(x, g, 5, 3, 1)
        assert 1 / p["du"][1] > 8 and p["P"][1] == 8.0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("steps", [5, 10, 30])
@pytest.mark.parametrize("device", DEVICES)
def test_switch_tie_takes_tssl_branch(device, steps, dtype):
    """tau_s = 2: a[2] == 0.125 == 1/(4 tau_s) exactly; strict '<' means the TSSL value, not the surrogate."""
    setting, x, g, _ = _edge_inputs("switch_tie_exact", steps)
    p = reference_tsslbp_parts(x, g, *setting)
    assert p["a"][1] == 0.25 and p["a"][2] == 0.125 and not p["surrogate"][2] and p["s"][3] == 1
    tssl_value, surrogate_value = p["D"][2], p["surrogate_value"][2]
    assert abs(tssl_value - surrogate_value) > 1e-3 * max(abs(tssl_value), abs(surrogate_value))
    x_t = torch.tensor(x, dtype=dtype, device=device)
    g_t = torch.tensor(g, dtype=dtype, device=device)
    state = neuron_forward(x_t, *setting)
    assert state.trace[2].item() == 0.125
    _, grad = run_engine(x_t, g_t, *setting, "tsslbp")
    got = grad[2].item()
    tol = 1e-6 * abs(tssl_value) if dtype == torch.float32 else 1e-12 * abs(tssl_value)
    assert abs(got - tssl_value) <= tol, f"engine {got!r}, TSSL {tssl_value!r}, surrogate {surrogate_value!r}"


# ------------------------------------------------------------------------------------------- properties


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_grad_is_linear_in_g(device, dtype, rule):
    for steps in (1, 5, 30):
        for setting in SETTINGS:
            x, g1, _ = random_case(steps, setting, dtype)
            g2 = random_grads(steps, dtype, "second")
            alpha, beta = 0.7, -1.3
            x, g1, g2 = x.to(device), g1.to(device), g2.to(device)
            _, grad1 = run_engine(x, g1, *setting, rule)
            _, grad2 = run_engine(x, g2, *setting, rule)
            _, grad12 = run_engine(x, alpha * g1 + beta * g2, *setting, rule)
            combined = (alpha * grad1.double() + beta * grad2.double()).cpu().numpy()
            assert_close_to_max_abs(grad12, combined, 10 * REL_TOL[dtype], f"linearity T={steps} {setting}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_grad_zero_after_last_spike_where_trace_high(device, dtype):
    checked = 0
    for steps in (5, 10, 30):
        for setting in SETTINGS:
            tau_s = setting[1]
            x, _, ref = random_case(steps, setting, dtype)
            spikes = ref["tsslbp"]["spikes"].reshape(steps, -1)
            trace = ref["tsslbp"]["trace"].reshape(steps, -1)
            time = np.arange(steps)[:, None]
            last = np.where(spikes.any(axis=0), steps - 1 - np.argmax(spikes[::-1], axis=0), steps)
            mask = (time > last[None, :]) & (trace >= 1 / (4 * tau_s))
            checked += int(mask.sum())
            for key in range(3):
                g = random_grads(steps, dtype, ("zero-after-last", key)) * 10.0**key
                _, grad = run_engine(x.to(device), g.to(device), *setting, "tsslbp")
                grad = grad.cpu().reshape(steps, -1).numpy()
                assert np.all(grad[mask] == 0.0), f"T={steps} {setting}: {grad[mask]}"
    assert checked > 0


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_grad_at_t_depends_only_on_future_g(device, dtype, rule):
    """dL/dx[t] depends on g[t:] only (K[t] is a future window; D[t] reads D[n] with n > t)."""
    for steps in (2, 5, 10):
        for setting in SETTINGS:
            x, g, _ = random_case(steps, setting, dtype)
            x, g = x.to(device), g.to(device)
            _, base = run_engine(x, g, *setting, rule)
            noise = random_grads(steps, dtype, ("causal", steps)).to(device) * 5.0
            for cut in range(1, steps):
                perturbed = g.clone()
                perturbed[:cut] += noise[:cut]
                _, grad = run_engine(x, perturbed, *setting, rule)
                assert torch.equal(grad[cut:], base[cut:]), f"T={steps} {setting} cut={cut}"
                assert not torch.equal(grad[:cut], base[:cut])  # g before the cut does matter somewhere


def test_reference_grad_at_t_depends_only_on_future_g():
    setting = (5.0, 3.0, 1.0)
    x, g, _ = random_case(10, setting, torch.float64)
    x_col, g_col = x[:, 0, 0].tolist(), g[:, 0, 0].tolist()
    base = reference_tsslbp_grad(x_col, g_col, *setting)
    for cut in range(1, 10):
        perturbed = [v + 3.0 if t < cut else v for t, v in enumerate(g_col)]
        assert reference_tsslbp_grad(x_col, perturbed, *setting)[cut:] == base[cut:]


def test_bogus_grad_rule_raises():
    x = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="tsslbp") as info:
        tsslbp_neuron(x, 5, 3, 1, grad="bogus")
    assert "surrogate" in str(info.value) and "bogus" in str(info.value)
