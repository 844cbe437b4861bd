"""Forward + backward time of the engine's neuron against the slow per-neuron reference loop of the tests.

    python benchmarks/neuron_vs_reference.py [--neurons 32768] [--repeats 3]

Both run in this process on the same inputs, alternating, so the ratio is meaningful on a noisy machine;
absolute times are not. The reference (tests/reference_loop.py) is plain Python written from the spec.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from tssl.engine.neuron import tsslbp_neuron

TESTS = Path(__file__).resolve().parents[1] / "tests"

TAU = {5: (5.0, 3.0), 30: (8.0, 4.0)}


def engine_step(x: torch.Tensor, g: torch.Tensor, tau_m: float, tau_s: float) -> None:
    x = x.detach().requires_grad_(True)
    tsslbp_neuron(x, tau_m, tau_s, 1.0).backward(g)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--neurons", type=int, default=32768)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(TESTS))
    from reference_loop import reference_over_tensor

    generator = torch.Generator().manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.neurons} neurons, float64")
    print(f"{'T':>3} {'engine ms':>10} {'reference ms':>13} {'ratio':>8}")
    for steps, (tau_m, tau_s) in TAU.items():
        x = (torch.rand(steps, args.neurons, generator=generator, dtype=torch.float64) * 1.5 - 0.4).contiguous()
        g = torch.randn(steps, args.neurons, generator=generator, dtype=torch.float64)
        engine_step(x, g, tau_m, tau_s)  # warm-up: first-call allocations are not part of the comparison
        engine, reference = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            engine_step(x, g, tau_m, tau_s)
            engine.append(time.perf_counter() - start)
            start = time.perf_counter()
            reference_over_tensor(x, g, tau_m=tau_m, tau_s=tau_s, threshold=1.0)
            reference.append(time.perf_counter() - start)
        e, r = statistics.median(engine) * 1e3, statistics.median(reference) * 1e3
        print(f"{steps:>3} {e:>10.2f} {r:>13.1f} {r / e:>7.0f}x")


if __name__ == "__main__":
    main()
