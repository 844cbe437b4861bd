"""Mixed precision: the ``precision`` key validates, bf16 autocast keeps the neuron state float32 (native engine
and baselines), bf16 training learns, and records say which precision ran."""

from __future__ import annotations

import typing

import pytest
import torch
from pydantic import ValidationError
from tiny_suites import digits_suite
from torch.utils.data import DataLoader, TensorDataset

from tssl.cli import main
from tssl.data.digits import CLASSES, INPUT_SHAPE, load_digits_split
from tssl.engine.losses import make_loss
from tssl.engine.network import build_network
from tssl.engine.neuron import tsslbp_neuron
from tssl.engine.precision import PRECISIONS, PrecisionError, autocast, check_precision, math_mode
from tssl.engine.recipe import make_optimizer
from tssl.engine.train import evaluate, fit
from tssl.harness.runner import RunOptions, run_suite
from tssl.harness.suites import OMITTED_AT_DEFAULT, TaskConfig, load_suite
from tssl.methods import ModelConfig, get_method
from tssl.records.store import read_records

SUITE = digits_suite("prectest")

TASK = dict(name="t", dataset="digits", architecture="8C3-16", steps=5, epochs=1, batch_size=8, lr=1e-3,
            loss="kernel", methods=["tssl"], seeds=[0])


def test_precision_key_validates_and_keeps_run_ids():
    assert TaskConfig(**TASK).precision == "fp32"
    assert set(typing.get_args(TaskConfig.model_fields["precision"].annotation)) == set(PRECISIONS)
    with pytest.raises(ValidationError, match="fp32"):
        TaskConfig(**TASK, precision="fp16")
    assert "precision" in OMITTED_AT_DEFAULT
    assert "precision" not in TaskConfig(**TASK).run_config()  # fp32: the published hashes do not move
    assert TaskConfig(**TASK, precision="bf16").run_config()["precision"] == "bf16"


def test_tf32_is_refused_on_cpu_and_unknown_names_everywhere():
    assert check_precision("bf16", "cpu") == "bf16"
    with pytest.raises(PrecisionError, match="needs a CUDA device"):
        check_precision("tf32", "cpu")
    with pytest.raises(PrecisionError, match="allowed: fp32, tf32, bf16"):
        check_precision("half")
    with pytest.raises(PrecisionError), math_mode("tf32", "cpu"):
        pass


def test_tf32_run_on_cpu_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "prectest.yaml").write_text(SUITE)
    assert main(["run", "prectest", "precision=tf32", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "tf32" in err and "CUDA" in err
    assert not (tmp_path / "results").exists()  # refused before any run


def test_native_neuron_state_is_float32_under_bf16_autocast():
    torch.manual_seed(0)
    net = build_network("4C3-P2-8", (1, 8, 8), 3, 4, padding=1)
    seen: list[torch.dtype] = []
    for _, neuron in net.spiking_neurons():
        neuron.register_forward_hook(lambda _m, args, out: seen.extend([args[0].dtype, out.dtype]))
    with autocast("bf16", "cpu"):
        output = net(torch.rand(2, 1, 8, 8))
    # The conv / linear currents really are bfloat16 (autocast is on), the neurons' outputs float32.
    assert seen[0::2] == [torch.bfloat16] * 3 and seen[1::2] == [torch.float32] * 3
    assert output.dtype == torch.float32
    output.sum().backward()
    assert all(p.grad.dtype == torch.float32 for p in net.parameters())


def test_neuron_keeps_float32_state_for_a_bf16_current():
    current = torch.randn(5, 3, 7, dtype=torch.bfloat16).mul(2).requires_grad_()
    saved: list[torch.dtype] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.dtype) or t, lambda t: t), \
            autocast("bf16", "cpu"):
        trace = tsslbp_neuron(current, 5.0, 3.0, 1.0)
    assert trace.dtype == torch.float32 and saved and set(saved) == {torch.float32}
    trace.sum().backward()
    assert current.grad.dtype == torch.bfloat16 and torch.isfinite(current.grad.float()).all()
    assert tsslbp_neuron(current.detach().double(), 5.0, 3.0, 1.0).dtype == torch.float64  # no autocast: as given


@pytest.mark.parametrize("name", ["snntorch", "spikingjelly"])
def test_baseline_neuron_state_is_float32_under_bf16_autocast(name):
    from tssl_baselines.common import BaselineNeuron

    method = get_method(name)
    model = method.build(ModelConfig("4C3-8", (1, 6, 6), 3, 4, padding=1))
    lif_inputs: list[torch.dtype] = []
    for module in model.modules():
        if isinstance(module, BaselineNeuron):
            module.lif.register_forward_hook(lambda _m, args, _out: lif_inputs.append(args[0].dtype))
    method.reset(model)
    with autocast("bf16", "cpu"):
        output = model(torch.rand(2, 1, 6, 6))
    assert lif_inputs == [torch.float32] * 3 and output.dtype == torch.float32
    output.sum().backward()
    if name == "spikingjelly":  # the float32-only fused op still runs
        assert method.provenance(model)["path"].startswith("fused op")


def test_bf16_training_learns_digits():
    digits = load_digits_split()
    torch.manual_seed(0)
    net = build_network("16C3-P2-64", INPUT_SHAPE, CLASSES, 5, padding=1)
    generator = torch.Generator().manual_seed(0)
    train = TensorDataset(digits.train_x, digits.train_y)
    test = TensorDataset(digits.test_x, digits.test_y)
    test_batches = lambda: DataLoader(test, batch_size=500)  # noqa: E731
    before = evaluate(net, test_batches(), precision="bf16")
    history = fit(
        net,
        make_loss("kernel", 5, 3.0),
        make_optimizer(net.parameters(), 5e-3),
        lambda: DataLoader(train, batch_size=32, shuffle=True, generator=generator),
        test_batches,
        epochs=4,
        progress=False,
        precision="bf16",
    )
    assert before < 0.3
    assert history[-1].test_accuracy >= 0.85, [round(r.test_accuracy, 3) for r in history]
    assert all(p.dtype == torch.float32 for p in net.parameters())


def test_record_says_which_precision_ran(tmp_path):
    path = tmp_path / "prectest.yaml"
    path.write_text(SUITE)
    suite = load_suite(str(path), ["precision=bf16"])
    opts = RunOptions(tmp_path / "results", tmp_path / "runs", "cpu", limit_batches=2, progress=False)
    outcome = run_suite(suite, opts, log=lambda _: None)
    assert outcome.ran and not outcome.failed
    (record,) = read_records(tmp_path / "results" / "prectest.jsonl")
    assert record["precision"] == "bf16"
    assert record["provenance"]["config"]["precision"] == "bf16"
    assert record["deviations"] == {"precision": {"suite": "fp32", "run": "bf16"}}


def test_math_mode_sets_and_restores_the_cuda_tf32_flags():
    # The flags are process settings that exist without a GPU; a CPU device leaves them alone.
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    before = (matmul.allow_tf32, cudnn.allow_tf32)
    with math_mode("tf32", "cuda"):
        assert (matmul.allow_tf32, cudnn.allow_tf32) == (True, True)
        assert matmul.fp32_precision == "tf32" and cudnn.conv.fp32_precision == "tf32"
    for precision in ("fp32", "bf16"):
        with math_mode(precision, "cuda:0"):
            assert (matmul.allow_tf32, cudnn.allow_tf32) == (False, False)
            assert torch.get_float32_matmul_precision() == "highest"
    with math_mode("fp32", "cpu"):
        assert (matmul.allow_tf32, cudnn.allow_tf32) == before
    assert (matmul.allow_tf32, cudnn.allow_tf32) == before
