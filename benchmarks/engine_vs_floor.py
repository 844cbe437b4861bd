"""Training-step time and saved activations of the native engine against its floor, on three paper networks.

    python benchmarks/engine_vs_floor.py [--nets mnist,fmnist,cifar10] [--rounds 7] [--cifar-batch 4] [--compile]

One step = forward, kernel loss, backward, grad-norm clip, AdamW, weight clamp (tssl.engine.train.train_step), T = 5.
Contenders: ``tssl`` (TSSL-BP backward), ``tssl-surrogate`` and ``floor`` (the same network with every neuron
replaced by ``x * 1.0``, tssl.measure.floor). All run in this process on the same inputs and weights, alternating in
rounds; the table gives median ms and the ratio to the floor, so it means something on a loaded machine where
absolute times do not. Saved activations are bytes kept by autograd per sample (tssl.measure.memory), next to the
authors' layout computed from the architecture. ``--compile`` adds the two rules again with the neuron
compiled by torch.compile (``TSSL_NEURON_COMPILE=1``, tssl.engine.neuron_compiled) and prints the compile times.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from dataclasses import dataclass

import torch

from tssl.engine.losses import KernelLoss
from tssl.engine.network import build_network
from tssl.engine.neuron_compiled import COMPILE_ENV, COMPILE_SECONDS
from tssl.engine.recipe import make_optimizer
from tssl.engine.train import train_step
from tssl.harness import cpu_allocator
from tssl.measure.floor import floor_network
from tssl.measure.memory import authors_layout_bytes, saved_activation_bytes

STEPS = 5
TAU_S = 3.0
COMPILED = " (compiled)"  # suffix of the contenders run with TSSL_NEURON_COMPILE=1


@dataclass(frozen=True)
class Bench:
    name: str
    architecture: str
    input_shape: tuple[int, int, int]
    batch: int
    options: dict


NETS = {
    "mnist": Bench("MNIST 15C5-P2-40C5-P2-300", "15C5-P2-40C5-P2-300", (1, 28, 28), 50, {}),
    "fmnist": Bench("F-MNIST 784-400-400", "400-400", (1, 28, 28), 100, {}),
    "cifar10": Bench(
        "CIFAR-10 CNN1",
        "96C3-256C3-P2-384C3-P2-384C3-256C3-1024-1024",
        (3, 32, 32),
        4,
        {"padding": 1, "conv_weight_scale": 5.0, "dropout": 0.2},
    ),
}


def make_contenders(
    bench: Bench, batch: int, compiled: bool = False
) -> tuple[dict[str, torch.nn.Module], torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    net = build_network(bench.architecture, bench.input_shape, 10, STEPS, tau_s=TAU_S, **bench.options)
    surrogate = copy.deepcopy(net)
    surrogate.set_grad_rule("surrogate")
    contenders = {"tssl": net, "tssl-surrogate": surrogate, "floor": floor_network(net)}
    if compiled:
        contenders["tssl" + COMPILED] = copy.deepcopy(net)
        contenders["tssl-surrogate" + COMPILED] = copy.deepcopy(surrogate)
    inputs = (torch.rand(batch, *bench.input_shape) - 0.13) / 0.31
    labels = torch.randint(0, 10, (batch,))
    return contenders, inputs, labels


def time_steps(bench: Bench, batch: int, rounds: int, compiled: bool, lr: float = 5e-4) -> dict[str, list[float]]:
    contenders, inputs, labels = make_contenders(bench, batch, compiled)
    loss_fn = KernelLoss(STEPS, TAU_S)
    optimizers = {name: make_optimizer(model.parameters(), lr) for name, model in contenders.items()}
    params = {name: [p for p in model.parameters() if p.requires_grad] for name, model in contenders.items()}
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for round_index in range(rounds + 1):  # round 0 warms up (first-call allocations, optimiser state)
        for name, model in contenders.items():
            os.environ[COMPILE_ENV] = "1" if name.endswith(COMPILED) else "0"
            start = time.perf_counter()
            train_step(model, loss_fn, optimizers[name], params[name], inputs, labels)
            elapsed = time.perf_counter() - start
            if round_index:
                times[name].append(elapsed * 1e3)
    return times


def saved_bytes(bench: Bench, batch: int) -> dict[str, float]:
    contenders, inputs, labels = make_contenders(bench, batch)
    loss_fn = KernelLoss(STEPS, TAU_S)
    result = {name: saved_activation_bytes(model, inputs, labels, loss_fn) for name, model in contenders.items()}
    result["authors"] = authors_layout_bytes(contenders["tssl"], inputs)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nets", default="mnist,fmnist,cifar10", help=f"comma-separated, from {', '.join(NETS)}")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds after one warm-up round")
    parser.add_argument("--cifar-batch", type=int, default=4)
    parser.add_argument("--compile", action="store_true", help="also time the neuron compiled by torch.compile")
    args = parser.parse_args()
    allocator = cpu_allocator.tune()  # as `tssl` commands run (docs/engine-performance.md)
    names = [n.strip() for n in args.nets.split(",") if n.strip()]
    unknown = [n for n in names if n not in NETS]
    if unknown:
        parser.error(f"--nets: unknown network(s) {', '.join(unknown)}; allowed: {', '.join(NETS)}")

    load = os.getloadavg()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32, T={STEPS}, {args.rounds} rounds, "
        f"CPU allocator: {allocator}; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs"
    )
    print(
        f"{'network (batch)':<34} {'tssl ms':>9} {'surr. ms':>9} {'floor ms':>9} {'tssl/floor':>10} {'surr/floor':>10}"
    )
    memory_rows = []
    for name in names:
        bench = NETS[name]
        batch = args.cifar_batch if name == "cifar10" else bench.batch
        times = time_steps(bench, batch, args.rounds, args.compile)
        med = {k: statistics.median(v) for k, v in times.items()}
        label = f"{bench.name} ({batch})"
        for suffix in ("", COMPILED) if args.compile else ("",):
            tssl, surrogate, floor = med["tssl" + suffix], med["tssl-surrogate" + suffix], med["floor"]
            print(
                f"{label + suffix:<34} {tssl:>9.1f} {surrogate:>9.1f} {floor:>9.1f} "
                f"{tssl / floor:>10.2f} {surrogate / floor:>10.2f}",
                flush=True,
            )
        memory_rows.append((label, saved_bytes(bench, batch)))
    os.environ[COMPILE_ENV] = "0"
    if args.compile:
        spent = ", ".join(f"{key} {seconds:.1f} s" for key, seconds in COMPILE_SECONDS.items()) or "none"
        print(f"compile time (first call of each compiled function, in the warm-up round): {spent}")
    print()
    print("saved activations per sample (autograd saved tensors, each storage once, parameters excluded)")
    header = f"{'tssl':>10} {'surrogate':>10} {'floor':>10} {'authors':>10} {'/floor':>7} {'/authors':>8}"
    print(f"{'network (batch)':<34} {header}")
    for label, mem in memory_rows:
        print(
            f"{label:<34} {_mb(mem['tssl']):>10} {_mb(mem['tssl-surrogate']):>10} {_mb(mem['floor']):>10} "
            f"{_mb(mem['authors']):>10} {mem['tssl'] / mem['floor']:>7.2f} {mem['tssl'] / mem['authors']:>8.2f}"
        )


def _mb(value: float) -> str:
    return f"{value / 1e6:.3f} MB"


if __name__ == "__main__":
    main()
