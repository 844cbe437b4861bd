"""The method registry and protocol: every method builds the same architecture, resets, reports provenance."""

from __future__ import annotations

import warnings

import pytest
import torch

from tssl.engine.losses import make_loss
from tssl.engine.recipe import make_optimizer
from tssl.methods import METHODS, ModelConfig, NativeMethod, get_method, training_recipe
from tssl_baselines import spikingjelly_backend
from tssl_baselines.common import BackendFallbackNotice, BackendUnavailableError

CONFIG = ModelConfig("16C3-P2-64", (1, 8, 8), 10, 5, padding=1)
STATEFUL = ("snntorch", "spikingjelly")


def batch(size=6, seed=0):
    return torch.randn(size, 1, 8, 8, generator=torch.Generator().manual_seed(seed)) * 2.0


def test_the_registry_holds_every_method():
    assert {"tssl", "tssl-surrogate", "snntorch", "spikingjelly"} <= set(METHODS)


def test_unknown_method_lists_the_allowed_ones():
    with pytest.raises(KeyError) as error:
        get_method("norse")
    for name in METHODS:
        assert name in str(error.value)


def test_unknown_option_and_recipe_are_refused_clearly():
    with pytest.raises(TypeError, match=r"no option backend; allowed: recipe, implementation"):
        get_method("spikingjelly", backend="cupy")
    with pytest.raises(ValueError, match="recipe 'paper' is unknown; allowed: matched, native"):
        get_method("snntorch", recipe="paper")
    with pytest.raises(ValueError, match="allowed: auto, cuda, triton, torch"):
        get_method("spikingjelly", implementation="cupy")
    assert get_method("spikingjelly").recipe == "matched"  # options never change the registered method


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_builds_the_architecture(name):
    method = get_method(name)
    torch.manual_seed(0)
    model = method.build(CONFIG)
    method.reset(model)
    assert model(batch()).shape == (5, 6, 10)
    method.reset(model)
    events = (torch.rand(5, 6, 1, 8, 8, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    assert model(events).shape == (5, 6, 10)
    with pytest.raises(ValueError, match="static"):
        model(torch.zeros(8, 8))


@pytest.mark.parametrize("name", sorted(METHODS))
def test_reset_makes_identical_batches_give_identical_outputs(name):
    method = get_method(name)
    torch.manual_seed(0)
    model = method.build(CONFIG).eval()
    x = batch()
    with torch.no_grad():
        method.reset(model)
        first = model(x)
        method.reset(model)
        second = model(x)
        assert torch.equal(first, second)
        if name in STATEFUL:  # the frameworks carry their membrane over when not reset
            carried = model(x)
            assert not torch.equal(first, carried)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_provenance_names_versions_and_what_ran(name):
    method = get_method(name)
    model = method.build(CONFIG)
    method.reset(model)
    model(batch())
    record = method.provenance(model)
    assert torch.__version__.startswith(record["torch"])
    assert record["recipe"] == "matched"
    if name == "snntorch":
        assert record["snntorch"] == "1.0.0"
        assert record["implementation"]
    if name == "spikingjelly":
        assert record["spikingjelly"] == "2.0.0"
        assert record["implementation"] == "torch-reference"  # CPU: the sj_lif op's Torch kernel
        assert record["path"] == spikingjelly_backend.FUSED_PATH
        assert record["requested_implementation"] == "auto"


def test_spikingjelly_provenance_before_a_forward_says_nothing_ran():
    method = get_method("spikingjelly")
    record = method.provenance(method.build(CONFIG))
    assert record["implementation"] is None and "not run" in record["note"]


def test_spikingjelly_float64_takes_the_reference_path():
    method = get_method("spikingjelly")
    model = method.build(CONFIG).double()
    model(batch().double())
    assert method.provenance(model)["path"] == spikingjelly_backend.REFERENCE_PATH


# --- recipes -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(METHODS))
def test_matched_recipe_is_tssl_bps(name):
    task_loss = make_loss("kernel", 5, 3.0)
    recipe = training_recipe(get_method(name), CONFIG, task_loss)
    assert recipe.name == "matched" and recipe.loss is task_loss and recipe.make_optimizer is make_optimizer
    assert "AdamW" in recipe.details["optimizer"]


@pytest.mark.parametrize("name", STATEFUL)
def test_native_recipe_is_the_frameworks_and_trains_one_step(name):
    method = get_method(name, recipe="native")
    task_loss = make_loss("kernel", 5, 3.0)
    recipe = training_recipe(method, CONFIG, task_loss)
    assert recipe.name == "native" and recipe.loss is not task_loss
    assert "http" in recipe.details["source"]
    assert isinstance(recipe.make_optimizer([torch.zeros(1)], 1e-3), torch.optim.Adam)
    torch.manual_seed(0)
    model = method.build(CONFIG)
    method.reset(model)
    loss = recipe.loss(model(batch()), torch.arange(6))
    assert loss.dim() == 0 and loss.item() > 0
    loss.backward()
    assert all(p.grad is not None and p.grad.isfinite().all() for p in model.parameters())
    assert method.provenance(model)["recipe"] == "native"


def test_native_engine_recipes_coincide():
    task_loss = make_loss("kernel", 5, 3.0)
    method = get_method("tssl", recipe="native")
    assert isinstance(method, NativeMethod) and method.provenance(None)["recipe"] == "native"
    assert training_recipe(method, CONFIG, task_loss).loss is task_loss


# --- SpikingJelly implementation choice --------------------------------------------------------------------


@pytest.mark.parametrize("forced", ["cuda", "triton"])
def test_forcing_a_gpu_implementation_on_cpu_is_a_clear_error(forced):
    method = get_method("spikingjelly", implementation=forced)
    model = method.build(CONFIG)
    with pytest.raises(BackendUnavailableError, match=f"{forced!r} was asked for.*runs only on CUDA"):
        model(batch())


def test_forcing_through_the_environment_variable(monkeypatch):
    monkeypatch.setenv(spikingjelly_backend.ENVIRONMENT_VARIABLE, "triton")
    model = get_method("spikingjelly").build(CONFIG)
    with pytest.raises(BackendUnavailableError, match="'triton' was asked for"):
        model(batch())
    monkeypatch.setenv(spikingjelly_backend.ENVIRONMENT_VARIABLE, "torch")
    method = get_method("spikingjelly")
    model = method.build(CONFIG)
    model(batch())
    assert method.provenance(model)["requested_implementation"] == "torch"
    monkeypatch.setenv(spikingjelly_backend.ENVIRONMENT_VARIABLE, "cupy")
    with pytest.raises(ValueError, match=r"\$SJ_LIF_CUDA_IMPLEMENTATION='cupy'"):
        get_method("spikingjelly").build(CONFIG)


@pytest.fixture
def fake_cuda_selection(monkeypatch):
    """SpikingJelly's CUDA selection as a GPU without the native build reports it (no GPU needed): the state
    that select_implementation changes is restored afterwards."""
    from spikingjelly._ops import lif as lif_ops

    monkeypatch.setattr(lif_ops._selection, "_requested", lif_ops._selection._requested)
    monkeypatch.setattr(spikingjelly_backend, "_notified", set())
    reason = "Native operators for spikingjelly._ops.lif were not built. Install from source with\nmore detail"

    def neuron_implementation(neuron_type, device, *, execution="eager"):
        assert neuron_type == "lif" and device.type == "cuda"
        requested = lif_ops._selection._requested
        if requested == "cuda":
            raise RuntimeError(f"No available sj_lif CUDA implementation. cuda: {reason}")
        if requested == "auto":
            return {"implementation": "triton", "unavailable": {"cuda": reason}}
        return {"implementation": requested, "unavailable": {}}

    monkeypatch.setattr(spikingjelly_backend.sj_functional, "neuron_implementation", neuron_implementation)
    return torch.device("cuda", 0)


def test_missing_native_cuda_degrades_with_one_line_notice(fake_cuda_selection):
    with pytest.warns(BackendFallbackNotice) as notices:
        info = spikingjelly_backend.select_implementation("auto", fake_cuda_selection, fused=True)
    assert info["implementation"] == "triton" and "cuda" in info["unavailable"]
    assert len(notices) == 1 and "\n" not in str(notices[0].message)
    assert "cuda unavailable" in str(notices[0].message) and "using triton" in str(notices[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per device, not once per batch
        spikingjelly_backend.select_implementation("auto", fake_cuda_selection, fused=True)


def test_forcing_an_unavailable_gpu_implementation_is_a_clear_error(fake_cuda_selection):
    with pytest.raises(BackendUnavailableError, match="'cuda' was asked for but is unavailable on cuda:0: No avail"):
        spikingjelly_backend.select_implementation("cuda", fake_cuda_selection, fused=True)
    with pytest.raises(BackendUnavailableError, match="Torch reference"):
        spikingjelly_backend.select_implementation("triton", fake_cuda_selection, fused=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        info = spikingjelly_backend.select_implementation("triton", fake_cuda_selection, fused=True)
    assert info["implementation"] == "triton" and info["requested"] == "triton"


@pytest.mark.parametrize("name", STATEFUL)
def test_runner_trains_the_native_recipe_and_records_it(name, tmp_path):
    """A suite task with `recipe: native` builds the method with that recipe; the record says which ran."""
    from tssl.harness.runner import RunOptions, run_suite
    from tssl.harness.suites import load_suite
    from tssl.records.store import read_records

    suite_file = tmp_path / "native.yaml"
    suite_file.write_text(
        "name: native\ntasks:\n  - {name: t, dataset: digits, architecture: 8C3-P2-16, padding: 1, steps: 5,\n"
        f"     epochs: 1, batch_size: 64, lr: 0.005, loss: kernel, methods: [{name}], seeds: [0],\n"
        "     recipe: native}\n"
    )
    options = RunOptions(tmp_path / "results", tmp_path / "runs", "cpu", limit_batches=3, progress=False)
    outcome = run_suite(load_suite(str(suite_file)), options, log=lambda _: None)
    assert outcome.ran and not outcome.failed
    (record,) = read_records(tmp_path / "results" / "native.jsonl")
    assert record["recipe"] == "native" and record["provenance"]["recipe"]["name"] == "native"
    assert record["provenance"]["implementation"]["recipe"] == "native"
    assert "Adam" in record["provenance"]["recipe"]["optimizer"]


def test_native_provenance_names_the_neuron_kernel_that_runs(monkeypatch):
    from tssl.methods import ModelConfig, build_native, get_method

    method = get_method("tssl")
    model = build_native(ModelConfig("16", (1, 8, 8), 10, 5), "tsslbp")
    monkeypatch.delenv("TSSL_NEURON_COMPILE", raising=False)
    monkeypatch.delenv("TSSL_NEURON_BACKEND", raising=False)
    assert method.provenance(model)["kernel"] == "torch"  # on a CPU
    monkeypatch.setenv("TSSL_NEURON_COMPILE", "1")
    assert method.provenance(model)["kernel"] == "torch.compile"
