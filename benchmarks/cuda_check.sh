#!/usr/bin/env bash
# The GPU half of the speed work in one short run, for a machine with one CUDA GPU (issue 7's CUDA targets):
#   1. the Triton kernels against the PyTorch path on the GPU (tests/test_triton_neuron.py, CUDA tests only);
#   2. `tssl bench --device cuda` on the paper's nets (CIFAR-10 CNN1 at batch 50, T = 5: within 1.2x of the
#      floor? faster than SpikingJelly's fastest path?), then the projected 150-epoch CIFAR-10 CNN1 run.
# Records go to $OUT/bench (or results/bench-cuda), to be appended to results/bench/bench.jsonl and committed.
#
#   bash benchmarks/cuda_check.sh              # in the repository root; about 5 minutes on an H200
#
# The package must be importable: `pip install -e .` where pip can reach its dependencies, or, on a machine with
# no network, wheels carried in .whl/ (pydantic, snntorch, spikingjelly, ...) installed with --no-deps first.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-results/bench-cuda}"
mkdir -p "$out/bench"
export PYTHONUNBUFFERED=1
python3 - <<'EOF'
import torch
assert torch.cuda.is_available(), "no CUDA device: this script measures the GPU path"
print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}")
EOF
# A failing kernel test must not cost the bench: device time is scarce, so record the failure and go on.
tests_rc=0
python3 -m pytest -q -p no:cacheprovider tests/test_triton_neuron.py -k cuda 2>&1 | tee "$out/cuda-tests.log" \
    || tests_rc=$?
python3 -m tssl.cli bench --device cuda --iters 20 --warmup 5 --net cifar10-cnn1,mnist,fmnist-mlp \
    --results-dir "$out/bench" 2>&1 | tee "$out/bench.log"
python3 - "$out/bench/bench.jsonl" <<'EOF'
import json, sys
records = [json.loads(line) for line in open(sys.argv[1])]
by = {(r["net"]["name"], r["method"]): r for r in records if r.get("status") == "ok"}
tssl = by.get(("cifar10-cnn1", "tssl"))
if tssl:
    epoch_s = 50000 / tssl["samples_per_second"]
    print(f"CIFAR-10 CNN1, batch {tssl['batch']}: tssl / floor {tssl['time_ratio_to_floor']:.2f} (target 1.2); "
          f"projected epoch {epoch_s:.0f} s, 150 epochs {150 * epoch_s / 60:.1f} min (target 30, training steps only)")
    sj = [r for (net, m), r in by.items() if net == "cifar10-cnn1" and m.startswith("spikingjelly")]
    for r in sj:
        print(f"  {r['method']}: {r['time_ratio_to_tssl']:.2f}x tssl's step time")
EOF
exit "$tests_rc"
