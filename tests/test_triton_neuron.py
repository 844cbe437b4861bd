"""The Triton neuron kernels (tssl/engine/kernels/triton_neuron.py) against the PyTorch path and the spec's reference.

On a machine without a GPU the kernels run in Triton's CPU interpreter. ``triton.jit`` reads
``TRITON_INTERPRET`` when it wraps a function, and ``tssl.engine.kernels.triton_neuron`` wraps its kernels at first
launch (once per interpreter setting), so the ``interpreter`` fixture only has to set the variable before a
launch: the tests run the same whether or not pytest was started with ``TRITON_INTERPRET=1``.
The interpreter is slow (about 5 ms per kernel time step), so every case here is a few dozen neurons.
"""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest
import torch
from reference_loop import reference_over_tensor, reference_tsslbp_parts
from test_neuron_reference import (
    EDGE_CASES,
    EXAMPLE_1,
    EXAMPLE_1_X,
    EXAMPLE_2_GRAD,
    EXAMPLE_2_X,
    EXAMPLE_G,
    SETTINGS,
    T_VALUES,
    assert_close_to_max_abs,
    random_case,
    random_grads,
)

import tssl.engine.kernels
from tssl.engine.kernels import BACKEND_ENV, BackendError, neuron_backend, triton_available
from tssl.engine.neuron import BACKWARDS, neuron_forward, tsslbp_neuron
from tssl.engine.neuron_base import GRAD_RULES

# The dispatch tests that never import triton run everywhere; the rest need it.
needs_triton = pytest.mark.skipif(not triton_available(), reason="triton is not importable on this machine")

DTYPES = [pytest.param(torch.float32, id="f32"), pytest.param(torch.float64, id="f64")]
# Of the reference's max-abs. float32: the kernels round like the PyTorch path up to fused multiply-adds.
REL_TOL = {torch.float32: 1e-5, torch.float64: 1e-12}
GOLDEN_RTOL = {"float32": 1e-5, "float64": 1e-12}  # tests/golden/README.md, op file


@pytest.fixture
def interpreter(monkeypatch):
    """Triton's CPU interpreter on, for CPU tensors (read at the next launch)."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")


@pytest.fixture
def kernels(interpreter):
    if not triton_available():
        pytest.skip("triton is not importable on this machine")
    import tssl.engine.kernels.triton_neuron as module

    return module


def assert_same_as_torch(kernels, x, g, setting, what, both_spike_inputs=False):
    """One Triton forward, then both backward rules; each output as the PyTorch path's. Returns
    (trace, spikes, {rule: grad_x}).

    The backward takes spikes=None, as tssl.engine.neuron calls it (spikes recomputed as u > V in the kernel); with
    ``both_spike_inputs`` it also runs with the forward's spikes passed in, which must give the same bits.
    """
    trace, membrane, spikes = kernels.triton_neuron_forward(x, *setting)
    trace_only, membrane_only = kernels.triton_trace_and_membrane(x, *setting)
    assert torch.equal(trace_only, trace) and torch.equal(membrane_only, membrane), what
    ref = neuron_forward(x, *setting)
    assert (trace.dtype, membrane.dtype, spikes.dtype) == (ref.trace.dtype, ref.membrane.dtype, ref.spikes.dtype)
    assert trace.shape == membrane.shape == spikes.shape == x.shape
    assert torch.equal(spikes, ref.spikes), f"{what}: spikes differ"
    rel = REL_TOL[x.dtype]
    assert_close_to_max_abs(membrane, ref.membrane.double().numpy(), rel, "membrane", what)
    assert_close_to_max_abs(trace, ref.trace.double().numpy(), rel, "trace", what)
    grads = {}
    for rule in GRAD_RULES:
        grad = kernels.triton_neuron_backward(g, membrane, None, *setting, rule)
        ref_grad = BACKWARDS[rule](g.contiguous(), ref.membrane, ref.spikes, *setting)
        assert grad.dtype == ref_grad.dtype and grad.shape == x.shape
        assert_close_to_max_abs(grad, ref_grad.double().numpy(), rel, f"grad_x ({rule})", what)
        if both_spike_inputs:
            with_spikes = kernels.triton_neuron_backward(g, membrane, spikes, *setting, rule)
            assert torch.equal(with_spikes, grad), f"{what} {rule}: saved spikes vs u > V"
        grads[rule] = grad
    return trace, spikes, grads


# ------------------------------------------------------------------------------------ spec worked example


@pytest.mark.parametrize("dtype", DTYPES)
def test_spec_example(kernels, dtype):
    x = torch.tensor(EXAMPLE_1_X, dtype=dtype)
    g = torch.tensor(EXAMPLE_G, dtype=dtype)
    trace, membrane, spikes = kernels.triton_neuron_forward(x, 5, 3, 1)
    grad = kernels.triton_neuron_backward(g, membrane, spikes, 5, 3, 1, "tsslbp")
    for name, got in (("u", membrane), ("s", spikes.int()), ("a", trace), ("grad", grad)):
        printed, decimals = EXAMPLE_1[name]
        assert got.tolist() == pytest.approx(printed, abs=0.5 * 10.0**-decimals + 1e-12), name
    _, membrane2, spikes2 = kernels.triton_neuron_forward(torch.tensor(EXAMPLE_2_X, dtype=dtype), 5, 3, 1)
    grad2 = kernels.triton_neuron_backward(g, membrane2, spikes2, 5, 3, 1, "tsslbp")
    assert grad2.double().tolist() == pytest.approx(EXAMPLE_2_GRAD, abs=1e-9 if dtype == torch.float64 else 1e-7)


# ------------------------------------------------------------------------------- random tensors, both rules


@pytest.mark.parametrize("steps", T_VALUES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_random_matches_torch_and_reference(kernels, dtype, steps):
    for setting in SETTINGS:
        x, g, ref = random_case(steps, setting, dtype)  # [T, 3, 16], margins keep spikes and switches stable
        what = f"T={steps} {setting}"
        trace, spikes, grads = assert_same_as_torch(kernels, x, g, setting, what, both_spike_inputs=True)
        assert np.array_equal(spikes.numpy(), ref["tsslbp"]["spikes"]), what
        assert_close_to_max_abs(trace, ref["tsslbp"]["trace"], REL_TOL[dtype], "trace vs reference", what)
        for rule, grad in grads.items():
            assert_close_to_max_abs(grad, ref[rule]["grad_x"], REL_TOL[dtype], f"{rule} grad vs reference", what)


def test_many_blocks_and_odd_shapes(kernels):
    """More neurons than one program holds (a partial last block), a [T, B, C, H, W] shape, T = 3."""
    steps, shape = 3, (2, 3, 7, 13)  # 546 neurons: two programs of 512
    gen = torch.Generator().manual_seed(7)
    x = torch.rand(steps, *shape, generator=gen) * 1.6 - 0.2
    g = torch.randn(steps, *shape, generator=gen)
    assert_same_as_torch(kernels, x, g, (5.0, 3.0, 1.0), "546 neurons")
    # A non-contiguous input (time not outermost in memory) gives the same result as its contiguous copy.
    x_strided = x.transpose(1, 2).contiguous().transpose(1, 2)
    assert not x_strided.is_contiguous()
    assert torch.equal(
        kernels.triton_neuron_forward(x_strided, 5, 3, 1).trace, kernels.triton_neuron_forward(x, 5, 3, 1).trace
    )


# ------------------------------------------------------------------------------------------ edge neurons


def _edge_batches(steps: int):
    """Per setting: the edge neurons of tests/test_neuron_reference.py that fit in T steps, as columns.

    Each edge input appears twice: with its random g and with g = 1 everywhere.
    """
    groups: dict[tuple, list] = {}
    for name, (setting, min_steps, build_x, build_spikes) in EDGE_CASES.items():
        if steps >= min_steps:
            groups.setdefault(setting, []).append((name, build_x(steps), build_spikes(steps)))
    for setting, cases in groups.items():
        xs, gs, names, spike_times = [], [], [], []
        for name, x, times in cases:
            g = random_grads(steps, torch.float64, ("edge", name), shape=(1,)).reshape(-1).tolist()
            xs += [x, x]
            gs += [g, [1.0] * steps]
            names += [name, name]
            spike_times += [times, times]
        yield setting, np.array(xs).T, np.array(gs).T, names, spike_times


@pytest.mark.parametrize("steps", T_VALUES)
def test_edge_neurons(kernels, steps):
    checked = set()
    for setting, x_np, g_np, names, spike_times in _edge_batches(steps):
        tau_m, tau_s, threshold = setting
        for dtype in (torch.float32, torch.float64):
            x, g = torch.tensor(x_np, dtype=dtype), torch.tensor(g_np, dtype=dtype)
            what = f"T={steps} {setting} {dtype} neurons {names}"
            _, spikes, grads = assert_same_as_torch(kernels, x, g, setting, what)
            for rule, grad in grads.items():
                assert torch.isfinite(grad).all(), what
                ref = reference_over_tensor(x, g, tau_m=tau_m, tau_s=tau_s, threshold=threshold, grad=rule)
                assert np.array_equal(spikes.numpy(), ref["spikes"]), what
                for column, (name, times) in enumerate(zip(names, spike_times, strict=True)):
                    if times is not None:  # the case builds what its name says
                        assert spikes[:, column].nonzero().flatten().tolist() == times, name
                    assert_close_to_max_abs(
                        grad[:, column], ref["grad_x"][:, column], REL_TOL[dtype], f"{name} grad ({rule})", what
                    )
        checked.update(names)
    assert checked == {name for name, case in EDGE_CASES.items() if steps >= case[1]}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("steps", [5, 10])
def test_switch_tie_takes_tssl_branch(kernels, steps, dtype):
    """tau_s = 2: a[2] == 0.125 == 1/(4 tau_s) exactly; strict '<' means the TSSL value, not the surrogate."""
    setting, _, build_x, _ = EDGE_CASES["switch_tie_exact"]
    x_list = build_x(steps)
    g_list = random_grads(steps, torch.float64, ("edge", "switch_tie_exact"), shape=(1,)).reshape(-1).tolist()
    parts = reference_tsslbp_parts(x_list, g_list, *setting)
    assert parts["a"][2] == 0.125 and not parts["surrogate"][2]
    tssl_value, surrogate_value = parts["D"][2], parts["surrogate_value"][2]
    assert abs(tssl_value - surrogate_value) > 1e-3 * abs(tssl_value)
    trace, membrane, _ = kernels.triton_neuron_forward(torch.tensor(x_list, dtype=dtype), *setting)
    grad = kernels.triton_neuron_backward(torch.tensor(g_list, dtype=dtype), membrane, None, *setting, "tsslbp")
    assert trace[2].item() == 0.125
    tol = (1e-6 if dtype == torch.float32 else 1e-12) * abs(tssl_value)
    assert abs(grad[2].item() - tssl_value) <= tol, (grad[2].item(), tssl_value, surrogate_value)


@pytest.mark.parametrize("dtype", DTYPES)
def test_u_exactly_at_threshold_after_a_spike(kernels, dtype):
    """u == V at the last step, with the trace still >= 1/(4 tau_s) from an earlier spike: no spike (strict '>'),
    so D = 0 there. The backward recomputes spikes from u, and the last step's is the first it computes."""
    setting = (5.0, 3.0, 1.0)
    for x_list in ([1.5, 1.0], [1.5, 0.0, 1.0]):
        steps = len(x_list)
        x_col = torch.tensor(x_list, dtype=dtype).reshape(steps, 1)
        g_col = torch.ones_like(x_col)
        _, spikes, grads = assert_same_as_torch(kernels, x_col, g_col, setting, f"u == V at T={steps}")
        assert spikes.flatten().tolist() == [True] + [False] * (steps - 1)
        for rule, grad in grads.items():
            ref = reference_over_tensor(x_col, g_col, tau_m=5.0, tau_s=3.0, threshold=1.0, grad=rule)
            assert ref["membrane"][-1, 0] == 1.0 and ref["trace"][-1, 0] >= 1 / 12
            assert_close_to_max_abs(grad, ref["grad_x"], REL_TOL[dtype], f"{rule} grad, u == V", f"T={steps}")
        assert grads["tsslbp"][-1].item() == 0.0


# ------------------------------------------------------------------------------- golden op cases, via dispatch

GOLDEN_ENTRIES = torch.load(Path(__file__).parent / "golden" / "op_visible.pt", weights_only=True)["entries"]


@pytest.mark.parametrize("entry", GOLDEN_ENTRIES, ids=[f"{e['name']}-{e['dtype']}" for e in GOLDEN_ENTRIES])
def test_golden_op_entry_through_dispatch(kernels, monkeypatch, entry):
    """tsslbp_neuron with TSSL_NEURON_BACKEND=triton reproduces the authors' TSSLBP function."""
    monkeypatch.setenv(BACKEND_ENV, "triton")
    launched = []
    for name in ("triton_trace_and_membrane", "triton_neuron_backward"):
        real = getattr(kernels, name)
        monkeypatch.setattr(kernels, name, lambda *a, _real=real, _name=name: launched.append(_name) or _real(*a))

    def time_first(t: torch.Tensor) -> torch.Tensor:
        return t.movedim(-1, 0)

    def max_rel_error(got: torch.Tensor, ref: torch.Tensor) -> float:
        scale = ref.abs().max().item()
        return (got - ref).abs().max().item() / (scale if scale > 0 else 1.0)

    x = time_first(entry["x"]).clone().requires_grad_(True)
    trace = tsslbp_neuron(x, entry["tau_m"], entry["tau_s"], entry["threshold"])
    trace.backward(time_first(entry["g"]))
    assert launched == ["triton_trace_and_membrane", "triton_neuron_backward"]
    _, membrane, spikes = kernels.triton_neuron_forward(x.detach(), entry["tau_m"], entry["tau_s"], entry["threshold"])
    rtol = GOLDEN_RTOL[entry["dtype"]]
    assert torch.equal(spikes.to(torch.uint8), time_first(entry["spikes"]))
    assert max_rel_error(membrane, time_first(entry["u"])) <= rtol
    assert max_rel_error(trace.detach(), time_first(entry["a"])) <= rtol
    assert torch.isfinite(x.grad).all()
    assert max_rel_error(x.grad, time_first(entry["grad_x"])) <= rtol


# ------------------------------------------------------------------------------------ dtypes, saved tensors


def test_saved_membrane_interchangeable_with_torch_path(kernels):
    """Both paths keep only u for the backward; either backward accepts the other's u (spikes=None) and gives
    the same dL/dx."""
    setting = (5.0, 3.0, 1.0)
    x, g, _ = random_case(10, setting, torch.float32)
    _, membrane_triton = kernels.triton_trace_and_membrane(x, *setting)
    state = neuron_forward(x, *setting)
    assert membrane_triton.dtype == state.membrane.dtype
    for rule in GRAD_RULES:
        torch_on_triton = BACKWARDS[rule](g, membrane_triton, None, *setting)
        triton_on_torch = kernels.triton_neuron_backward(g, state.membrane, None, *setting, rule)
        reference = BACKWARDS[rule](g, state.membrane, None, *setting)
        for got in (torch_on_triton, triton_on_torch):
            assert_close_to_max_abs(got, reference.double().numpy(), REL_TOL[torch.float32], rule)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "f16"])
def test_half_inputs_keep_float32_state(kernels, dtype):
    """Half-precision currents: state and membrane float32, trace in the input dtype (the PyTorch path on the
    float32 copy of the input is the reference, as tsslbp_neuron casts under autocast)."""
    setting = (5.0, 3.0, 1.0)
    x32, g32, _ = random_case(5, setting, torch.float32)
    x = x32.to(dtype)
    trace, membrane, spikes = kernels.triton_neuron_forward(x, *setting)
    assert (trace.dtype, membrane.dtype, spikes.dtype) == (dtype, torch.float32, torch.bool)
    ref = neuron_forward(x.float(), *setting)
    assert torch.equal(spikes, ref.spikes)
    assert_close_to_max_abs(membrane, ref.membrane.double().numpy(), 1e-6, "half membrane")
    assert_close_to_max_abs(trace, ref.trace.to(dtype).double().numpy(), 1e-2, "half trace")  # 8-bit mantissa
    grad = kernels.triton_neuron_backward(g32.to(dtype), membrane, spikes, *setting, "tsslbp")
    expected = BACKWARDS["tsslbp"](g32.to(dtype).float(), ref.membrane, ref.spikes, *setting)
    assert grad.dtype == torch.float32
    assert_close_to_max_abs(grad, expected.double().numpy(), 1e-5, "half grad")


def test_bad_arguments(kernels):
    with pytest.raises(ValueError, match="tau_m and tau_s"):
        kernels.triton_neuron_forward(torch.zeros(3, 2), 0.5, 3, 1)
    with pytest.raises(TypeError, match="floating-point"):
        kernels.triton_neuron_forward(torch.zeros(3, 2, dtype=torch.int64), 5, 3, 1)
    with pytest.raises(ValueError, match="T >= 1"):
        kernels.triton_neuron_forward(torch.zeros(0, 2), 5, 3, 1)
    state = neuron_forward(torch.zeros(3, 2), 5, 3, 1)
    with pytest.raises(ValueError, match="bogus"):
        kernels.triton_neuron_backward(torch.zeros(3, 2), state.membrane, state.spikes, 5, 3, 1, "bogus")
    with pytest.raises(ValueError, match="one shape"):
        kernels.triton_neuron_backward(torch.zeros(3, 3), state.membrane, state.spikes, 5, 3, 1, "tsslbp")
    empty = kernels.triton_neuron_forward(torch.zeros(4, 0), 5, 3, 1)  # no neurons: no launch
    assert empty.trace.shape == empty.membrane.shape == empty.spikes.shape == (4, 0)


# ------------------------------------------------------------------------------------------------ dispatch

FAKE_CUDA = types.SimpleNamespace(is_cuda=True, device=torch.device("cuda", 0))


@pytest.mark.parametrize("value", [None, "", "auto", "AUTO", "torch"])
def test_cpu_tensors_default_to_torch(monkeypatch, value):
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # even with the interpreter on, auto never picks it
    if value is None:
        monkeypatch.delenv(BACKEND_ENV, raising=False)
    else:
        monkeypatch.setenv(BACKEND_ENV, value)
    assert neuron_backend(torch.zeros(2)) == "torch"


@needs_triton
def test_auto_picks_triton_for_cuda_tensors(monkeypatch):
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert neuron_backend(FAKE_CUDA) == "triton"
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert neuron_backend(FAKE_CUDA) == "torch"  # interpreting CUDA tensors would be far slower than torch
    monkeypatch.setenv(BACKEND_ENV, "torch")
    monkeypatch.delenv("TRITON_INTERPRET")
    assert neuron_backend(FAKE_CUDA) == "torch"


def test_without_triton(monkeypatch):
    """No importable triton: auto falls back to PyTorch on CUDA; a forced triton says what is wrong."""
    monkeypatch.setattr(tssl.engine.kernels, "triton_available", lambda: False)
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    assert neuron_backend(FAKE_CUDA) == "torch"
    monkeypatch.setenv(BACKEND_ENV, "triton")
    for x in (FAKE_CUDA, torch.zeros(2)):
        with pytest.raises(BackendError, match=f"{BACKEND_ENV}=triton, but `import triton` fails.*auto or torch"):
            neuron_backend(x)


@needs_triton
def test_forced_triton(monkeypatch):
    monkeypatch.setenv(BACKEND_ENV, "triton")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert neuron_backend(FAKE_CUDA) == "triton"
    with pytest.raises(BackendError, match=r"need a CUDA tensor .*cpu.*TRITON_INTERPRET=1"):
        neuron_backend(torch.zeros(2))
    with pytest.raises(BackendError, match="TRITON_INTERPRET=1"):  # the public entry point says the same
        tsslbp_neuron(torch.zeros(3, 2), 5, 3, 1)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert neuron_backend(torch.zeros(2)) == "triton"


def test_unknown_backend_value(monkeypatch):
    monkeypatch.setenv(BACKEND_ENV, "cuda")
    with pytest.raises(
        BackendError, match=f"{BACKEND_ENV}='cuda' is not a neuron backend; allowed: auto, torch, triton"
    ):
        neuron_backend(torch.zeros(2))


def test_backward_runs_on_the_forward_backend(kernels, monkeypatch):
    """The backend is chosen at forward time: changing the variable before backward changes nothing."""
    setting = (5.0, 3.0, 1.0)
    x, g, _ = random_case(5, setting, torch.float64)
    launched = []
    real = kernels.triton_neuron_backward
    monkeypatch.setattr(kernels, "triton_neuron_backward", lambda *a: launched.append(a[-1]) or real(*a))
    results = {}
    for backend, then in (("torch", "triton"), ("triton", "torch")):
        monkeypatch.setenv(BACKEND_ENV, backend)
        leaf = x.clone().requires_grad_(True)
        trace = tsslbp_neuron(leaf, *setting, grad="surrogate")
        monkeypatch.setenv(BACKEND_ENV, then)
        trace.backward(g)
        results[backend] = (trace.detach(), leaf.grad)
    assert launched == ["surrogate"]  # once, for the Triton forward
    for got, ref in zip(results["triton"], results["torch"], strict=True):
        assert_close_to_max_abs(got, ref.numpy(), REL_TOL[torch.float64], "triton vs torch via autograd")


# ------------------------------------------------------------------------------------------ compiled, on GPU


@needs_triton
@pytest.mark.parametrize(("tensor_type", "compute"), [("fp32", "float32"), ("fp64", "float64"), ("bf16", "float32")])
def test_kernels_compile_for_hopper_without_a_gpu(monkeypatch, tmp_path, tensor_type, compute):
    """The interpreter does not apply the compiler's rules (loop-carried types, constexpr branches, lowering):
    compile every kernel variant to an sm_90 cubin with Triton's bundled ptxas, which needs no GPU."""
    import triton
    import triton.backends
    import triton.language as tl
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    if "nvidia" not in triton.backends.backends:
        pytest.skip("this triton has no NVIDIA backend")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path))
    import tssl.engine.kernels.triton_neuron as module

    decays = {"MEM_DECAY": 0.8, "SYN_DECAY": 2 / 3, "INV_TAU_S": 1 / 3, "THRESHOLD": 1.0}
    common = {"COMPUTE": getattr(tl, compute), "BLOCK": module.BLOCK}
    tensor, state = f"*{tensor_type}", "*fp64" if compute == "float64" else "*fp32"  # pointer types
    forward_args = {"x_ptr": tensor, "trace_ptr": tensor, "membrane_ptr": state, "spikes_ptr": "*u8"}
    backward_args = {"grad_trace_ptr": tensor, "membrane_ptr": state, "spikes_ptr": "*u8"}
    backward_args |= {"low_trace_ptr": "*u8", "grad_x_ptr": state}
    backward_constants = {
        **decays,
        "INV_TAU_M": 0.2,
        "SWITCH": 1 / 12,
        "INV_DU_CLAMP": 8.0,
        "INV_WIDTH": 5.0,
        "ARG_CLAMP": 8.0,
        **common,
    }
    sizes = {"steps": "i32", "n_neurons": "i32"}
    variants = [
        (module._forward_kernel, {**forward_args, **sizes}, {**decays, "STORE_SPIKES": store, **common})
        for store in (True, False)
    ]
    for rule in (True, False):
        for has_spikes in (True, False):
            flags = {"TSSLBP": rule, "HAS_SPIKES": has_spikes}
            signature = {**backward_args, **sizes, "last_row": "i64"}
            variants.append((module._backward_kernel, signature, {**backward_constants, **flags}))
    for kernel, signature, constants in variants:
        compiled = triton.compile(
            ASTSource(triton.jit(kernel), signature | dict.fromkeys(constants, "constexpr"), constants),
            target=GPUTarget("cuda", 90, 32),
            options={"num_warps": module.NUM_WARPS},
        )
        assert compiled.asm["cubin"], f"{kernel.__name__} {constants}"
        if constants.get("TSSLBP") and compute == "float32":  # IEEE 1/du, as the PyTorch path rounds it
            assert "div.rn.f32" in compiled.asm["ptx"]


@needs_triton
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")
@pytest.mark.parametrize("dtype", DTYPES)
def test_compiled_kernels_on_cuda(monkeypatch, dtype):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    import tssl.engine.kernels.triton_neuron as module

    for steps in (1, 5, 30):
        for setting in SETTINGS:
            x, g, ref = random_case(steps, setting, dtype)
            x_cuda, g_cuda = x.cuda(), g.cuda()
            assert neuron_backend(x_cuda) == "triton"
            _, membrane, spikes = module.triton_neuron_forward(x_cuda, *setting)
            what = f"cuda T={steps} {setting}"
            assert np.array_equal(spikes.cpu().numpy(), ref["tsslbp"]["spikes"]), what
            for rule in GRAD_RULES:
                leaf = x_cuda.clone().requires_grad_(True)
                trace = tsslbp_neuron(leaf, *setting, grad=rule)  # auto dispatch: the compiled kernels
                trace.backward(g_cuda)
                with_spikes = module.triton_neuron_backward(g_cuda, membrane, spikes, *setting, rule)
                assert torch.equal(with_spikes, leaf.grad), f"{what} {rule}: saved spikes vs u > V"
                assert_close_to_max_abs(trace, ref[rule]["trace"], REL_TOL[dtype], "trace", what)
                assert_close_to_max_abs(leaf.grad, ref[rule]["grad_x"], REL_TOL[dtype], f"grad_x {rule}", what)
