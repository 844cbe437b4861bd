#!/usr/bin/env bash
# The latency sweep's tssl and tssl-surrogate runs (suites/latency.yaml, 24 runs) on one machine with one CUDA
# GPU and many cores: every run is its own single-thread process on the GPU, up to JOBS at once, longest (T = 10)
# first, until DEADLINE seconds have passed. Finished runs' records go to $OUT/latency.jsonl (to be appended to
# results/latency.jsonl); an unfinished run's last checkpoint is packed into $OUT so it can be resumed elsewhere
# (`tssl run latency` picks a checkpoint up from runs/latency/<run id>/).
#
#   JOBS=16 DEADLINE=470 [SEEDS="3 4"] bash benchmarks/latency_device.sh    # about 8 minutes on an H200 with 16 cores
#
# Needs the package importable and Fashion-MNIST's four .gz files in $FMNIST_SOURCE (default .fmnist/), or
# already fetched under $TSSL_DATA. If a one-batch CUDA smoke run fails, every run goes to the CPU instead.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-results/latency-device}"; jobs="${JOBS:-16}"; deadline="${DEADLINE:-470}"
runs_dir="${RUNS_DIR:-/tmp/latency-runs}"
mkdir -p "$out" "$runs_dir" /tmp/latency-logs
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
if [ -d "${FMNIST_SOURCE:-.fmnist}" ]; then python3 -m tssl fetch-data fmnist --source "${FMNIST_SOURCE:-.fmnist}"; fi
device=cuda
if ! python3 -m tssl run latency --only fmnist-mlp-steps2 "methods=[tssl,tssl-surrogate]" --seeds 0 \
        --limit-batches 3 --device cuda --results-dir /tmp/latency-smoke --runs-dir /tmp/latency-smoke-runs \
        > /tmp/latency-logs/smoke.log 2>&1; then
    echo "CUDA smoke run failed; every run goes to the CPU:"; tail -n 20 /tmp/latency-logs/smoke.log; device=cpu
fi
echo "device $device, $jobs at once, deadline ${deadline}s, $(nproc --all) cores"
jobs_list=()
for steps in 10 5 3 2; do for method in tssl tssl-surrogate; do for seed in ${SEEDS:-0 1 2}; do
    jobs_list+=("fmnist-mlp-steps$steps $method $seed")
done; done; done
start=$(date +%s)
printf '%s\n' "${jobs_list[@]}" | timeout -s TERM "$deadline" xargs -P "$jobs" -L 1 bash -c '
    log=/tmp/latency-logs/$0.$1.s$2.log
    python3 -m tssl run latency --only "$0" "methods=[$1]" --seeds "$2" --device '"$device"' \
        --results-dir '"$out"'/store --runs-dir '"$runs_dir"' > "$log" 2>&1
    rc=$?
    echo "$(( $(date +%s) - '"$start"' ))s $0 $1 s$2 rc=$rc $(grep -h "final" "$log" | tail -n 1)"'
echo "sweep stopped after $(( $(date +%s) - start ))s"
sleep 5
cp "$out/store/latency.jsonl" "$out/latency.jsonl" 2>/dev/null; rm -rf "$out/store"
# Unfinished runs: their last checkpoint, two to a tar (the files that come back are limited in size and number).
python3 - "$out" "$runs_dir" <<'PY'
import json, sys, tarfile
from pathlib import Path
out, runs = Path(sys.argv[1]), Path(sys.argv[2]) / "latency"
store = out / "latency.jsonl"
done = {json.loads(line)["run_id"] for line in store.read_text().splitlines()} if store.exists() else set()
left = sorted(p for p in runs.glob("*/checkpoint.pt") if p.parent.name not in done) if runs.is_dir() else []
print(f"{len(done)} records; {len(left)} unfinished runs with a checkpoint: {[p.parent.name for p in left]}")
for index in range(0, min(len(left), 10), 2):
    with tarfile.open(out / f"checkpoints-{index // 2}.tar", "w") as tar:
        for path in left[index:index + 2]:
            tar.add(path, arcname=f"latency/{path.parent.name}/checkpoint.pt")
PY
tar -czf "$out/logs.tar.gz" -C /tmp latency-logs
ls -la "$out"
