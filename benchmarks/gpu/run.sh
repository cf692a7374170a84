#!/usr/bin/env bash
# The GPU path measured on a bare GPU machine, from the repository root:
#   bash benchmarks/gpu/run.sh
# Uses the machine's own python3 and torch (PYTHON=... to choose another) with PYTHONPATH=src; never
# installs from a registry: wheels carried in .whl/ (benchmarks/gpu/fetch-wheels.sh .whl 3.12) are
# installed into /tmp/site with --no-index.  Two phases, each with its own time budget, then the
# results are packed; the whole run stops itself within GPU_CHECK_LIMIT_S (default 400 s):
#   1. python -m ssimrecon_bench.gpu: the gpu-check rows (GPU_CHECK_BUDGET_S, default 170 s);
#   2. python -m ssimrecon_bench.gpu_demo: the demo pipeline with the paper's U-Net trained
#      GPU_DEMO_TRAIN_S seconds per network (default 75), Table 1, Figure 2, training curves.
# Writes to $OUT when set (the lent machine's folder that comes back), else results/bench:
#   gpu.csv, gpu.json (phase 1), table1.md, figure2.png, gpu_demo.json (phase 2), run.log and
#   gpu-demo.tar.gz (every small file of the demo's results folder; no weights, shards or volumes).
# Without CUDA the same phases run on the CPU; GPU_DEMO_OVERLAY (a config merged last) and
# GPU_CHECK_ARGS make them tiny (the CPU rehearsal in tests/bench/test_gpu_rehearsal.py); GPU-only rows say "no CUDA".
set -uo pipefail
cd "$(dirname "$0")/../.."
started=$SECONDS
out="${OUT:-results/bench}"
python="${PYTHON:-python3}"
limit_s="${GPU_CHECK_LIMIT_S:-400}"
bench_s="${GPU_CHECK_BUDGET_S:-170}"
train_s="${GPU_DEMO_TRAIN_S:-75}"
demo_dir="${GPU_DEMO_RESULTS:-results/gpu-demo}"
mkdir -p "$out"
exec > >(tee "$out/run.log") 2>&1
echo "run.sh: $(date -u +%FT%TZ), limit ${limit_s}s, gpu-check ${bench_s}s, training ${train_s}s per network"

wheels="${GPU_CHECK_WHEELS:-.whl}"
site="${GPU_CHECK_SITE:-/tmp/site}"
if compgen -G "$wheels/*.whl" >/dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" "$wheels"/*.whl || { echo "run.sh: installing $wheels/ failed"; exit 1; }
  export PYTHONPATH="$site"
fi
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
"$python" -c 'import sys, torch; print(f"python {sys.version.split()[0]}, torch {torch.__version__}, CUDA {torch.cuda.is_available()}")'

left() { echo $(( limit_s - (SECONDS - started) )); }
status=0
# shellcheck disable=SC2086  # GPU_CHECK_ARGS and GPU_DEMO_OVERLAY are lists of words
timeout -s TERM -k 10 "$(( bench_s + 30 ))" "$python" -m ssimrecon_bench.gpu --output "$out" \
  --budget-s "$bench_s" ${GPU_CHECK_ARGS:-} || { echo "run.sh: gpu-check exited $?"; status=1; }

demo_limit=$(( $(left) - 15 ))
echo "run.sh: $(( SECONDS - started ))s spent; the demo gets at most ${demo_limit}s"
rm -rf "$demo_dir"
timeout -s TERM -k 10 "$demo_limit" "$python" -m ssimrecon_bench.gpu_demo --results "$demo_dir" \
  --overlay config.demo.yaml benchmarks/gpu/config.gpu-demo.yaml ${GPU_DEMO_OVERLAY:-} --train-s "$train_s" \
  || { echo "run.sh: gpu_demo exited $?"; status=1; }

for f in table1.md gpu_demo.json figures/figure2.png; do
  [ -f "$demo_dir/$f" ] && cp "$demo_dir/$f" "$out/"
done
tar -czf "$out/gpu-demo.tar.gz" --exclude='*.pt' --exclude='*.h5' --exclude='*.nii*' \
  --exclude='*.tar' --exclude='*.npz' -C "$(dirname "$demo_dir")" "$(basename "$demo_dir")"
echo "run.sh: done in $(( SECONDS - started ))s, status $status; results in $out"
exit "$status"
