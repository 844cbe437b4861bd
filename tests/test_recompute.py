"""recompute: a layer keeps only its input and recomputes current and membrane in the backward. Gradients must
be those of the kept path, saved activations the floor's; the suite key and the bench variant reach it."""

from __future__ import annotations

import copy
import os

import pytest
import torch
from tiny_suites import digits_suite

from tssl.engine.losses import KernelLoss
from tssl.engine.network import build_network
from tssl.engine.neuron_compiled import COMPILE_ENV
from tssl.measure.floor import floor_network
from tssl.measure.memory import saved_activation_bytes
from tssl.methods import ModelConfig, get_method

STEPS = 5


def network(grad="tsslbp", dtype=torch.float32):
    torch.manual_seed(0)
    net = build_network(
        "6C3-8C3-P2-5C3-P2-12", (2, 10, 10), 4, STEPS, padding=1, conv_weight_scale=5.0, dropout=0.2, grad=grad
    )
    return net.to(dtype)


def grads(net, x, labels, autocast: bool = False):
    torch.manual_seed(1)  # the same dropout masks in every run
    net.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = net(x)
        loss = KernelLoss(STEPS, 3.0)(out.float(), labels)
    loss.backward()
    return out.detach(), [p.grad.clone() for p in net.parameters()]


def kept_and_recomputed(grad="tsslbp", dtype=torch.float32):
    kept = network(grad, dtype)
    recomputed = copy.deepcopy(kept)
    recomputed.set_recompute(True)
    assert recomputed.recompute and not kept.recompute
    x, labels = torch.randn(3, 2, 10, 10, dtype=dtype), torch.tensor([0, 3, 1])
    return kept, recomputed, x, labels


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("grad", ["tsslbp", "surrogate"])
def test_recomputed_layers_give_bit_identical_gradients(grad, dtype):
    kept, recomputed, x, labels = kept_and_recomputed(grad, dtype)
    out_kept, grads_kept = grads(kept, x, labels)
    out_recomputed, grads_recomputed = grads(recomputed, x, labels)
    assert torch.equal(out_kept, out_recomputed)
    assert all(g.abs().sum() > 0 for g in grads_kept)
    for a, b in zip(grads_kept, grads_recomputed, strict=True):
        assert torch.equal(a, b)


def test_under_bf16_autocast_the_replay_uses_the_same_casts():
    kept, recomputed, x, labels = kept_and_recomputed()
    out_kept, grads_kept = grads(kept, x, labels, autocast=True)
    out_recomputed, grads_recomputed = grads(recomputed, x, labels, autocast=True)
    assert torch.equal(out_kept, out_recomputed)
    for a, b in zip(grads_kept, grads_recomputed, strict=True):
        assert torch.equal(a, b)


def test_saved_activations_are_the_floors_and_less_than_the_membranes():
    kept, recomputed, x, labels = kept_and_recomputed()
    loss = KernelLoss(STEPS, 3.0)
    floor = floor_network(recomputed)
    assert not any(getattr(m, "recompute", False) for m in floor.layers)  # the floor is the plain network
    saved = {name: saved_activation_bytes(net, x, labels, loss) for name, net in
             (("kept", kept), ("recomputed", recomputed), ("floor", floor))}
    assert saved["recomputed"] == saved["floor"] < saved["kept"]


def test_without_autograd_nothing_changes():
    kept, recomputed, x, _ = kept_and_recomputed()
    kept.eval(), recomputed.eval()
    with torch.no_grad():
        assert torch.equal(kept(x), recomputed(x))


@pytest.mark.skipif(os.environ.get("TSSL_TEST_COMPILE") != "1", reason="compiling takes tens of seconds")
def test_recompute_with_the_compiled_neuron(monkeypatch):
    monkeypatch.setenv(COMPILE_ENV, "1")
    kept, recomputed, x, labels = kept_and_recomputed()
    _, grads_kept = grads(kept, x, labels)
    _, grads_recomputed = grads(recomputed, x, labels)
    for a, b in zip(grads_kept, grads_recomputed, strict=True):
        assert torch.equal(a, b)


def test_the_method_builds_it_from_the_config_and_says_so():
    config = ModelConfig("4C3-P2-10", (1, 8, 8), 3, STEPS, recompute=True)
    method = get_method("tssl")
    model = method.build(config)
    assert model.recompute and method.provenance(model)["recompute"] is True
    assert method.provenance(method.build(ModelConfig("4C3-P2-10", (1, 8, 8), 3, STEPS)))["recompute"] is False


def test_bench_variants_parse_and_run(tmp_path):
    from tssl.harness.bench import BenchError, BenchOptions, resolve_methods, run_bench

    cpu = torch.device("cpu")
    assert resolve_methods(["tssl[recompute]", "tssl-surrogate[compiled+recompute]"], cpu) == [
        "tssl[recompute]", "tssl-surrogate[compiled+recompute]"
    ]
    for bad in ("tssl[lean]", "tssl[recompute+recompute]", "tssl[+]"):
        with pytest.raises(BenchError, match="variants are compiled, recompute"):
            resolve_methods([bad], cpu)
    records = run_bench(["4C3-P2-16"], ["tssl", "tssl[recompute]", "floor"], device="cpu", input_shape="1,8,8",
                        batch=4, options=BenchOptions(iters=1, warmup=1), results_dir=tmp_path, log=lambda _: None)
    by_method = {r["method"]: r for r in records}
    assert by_method["tssl[recompute]"]["implementation"]["recompute"] is True
    assert by_method["tssl"]["implementation"]["recompute"] is False
    saved = {m: r["saved_activation_bytes_per_sample"] for m, r in by_method.items()}
    assert saved["tssl[recompute]"] == saved["floor"] < saved["tssl"]


SUITE = digits_suite("recomputetest")


def test_suite_key_keeps_run_ids_at_its_default_and_is_recorded(tmp_path):
    from tssl.harness.runner import RunOptions, run_suite
    from tssl.harness.suites import OMITTED_AT_DEFAULT, load_suite
    from tssl.records.store import read_records

    path = tmp_path / "recomputetest.yaml"
    path.write_text(SUITE)
    assert "recompute" in OMITTED_AT_DEFAULT
    assert "recompute" not in load_suite(str(path)).tasks[0].run_config()
    suite = load_suite(str(path), ["recompute=true"])
    assert suite.tasks[0].run_config()["recompute"] is True
    opts = RunOptions(tmp_path / "results", tmp_path / "runs", "cpu", limit_batches=2, progress=False)
    outcome = run_suite(suite, opts, log=lambda _: None)
    assert outcome.ran and not outcome.failed
    (record,) = read_records(tmp_path / "results" / "recomputetest.jsonl")
    assert record["provenance"]["implementation"]["recompute"] is True
    assert record["deviations"] == {"recompute": {"suite": False, "run": True}}


def test_recompute_with_a_baseline_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    from tssl.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "recomputetest.yaml").write_text(digits_suite("recomputetest", methods=("tssl", "snntorch")))
    assert main(["run", "recomputetest", "recompute=true", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "recompute applies to the native engine only (tssl, tssl-surrogate)" in err and "snntorch" in err
    assert not (tmp_path / "results").exists()  # refused before any run
