#!/usr/bin/env bash
# benchmarks/cuda_check.sh: the CUDA checks, on a machine with an NVIDIA GPU and onnxruntime-gpu.
#
#   bash benchmarks/cuda_check.sh [OUT_DIR]      (default benchmarks/results/cuda)
#
# CI has no GPU: there the `gpu` tests skip. This runs them for real, then the CLI on the
# example scene (cuda vs cpu), the parity benchmark, a CUDA throughput sweep and end to end
# against inference alone (benchmarks/cuda_e2e.py), the real-product benchmark with the reader
# alone (benchmarks/products.py --device cuda --reader), and keeps the
# logs and JSON/Markdown results in OUT_DIR. Each step has its own time limit so that a slow
# one still leaves the others' results.
set -u -o pipefail
out=${1:-benchmarks/results/cuda}
mkdir -p "$out"
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
step() { echo "== $1 ($(date +%T))"; }

step environment
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
"$py" -c 'import onnxruntime as o, sys, platform; print("onnxruntime", o.__version__, o.get_device(), o.get_available_providers(), "python", sys.version.split()[0], platform.processor() or platform.machine())'
grep -m1 "model name" /proc/cpuinfo; nproc

step "pytest: gpu-marked tests, then all backend and fp16 tests"
timeout 240 "$py" -m pytest -q -p no:cacheprovider -m gpu -rs tests/test_backends.py
timeout 240 "$py" -m pytest -q -p no:cacheprovider tests/test_backends.py tests/test_fp16.py

step "CLI on the example scene, cpu vs cuda (fp32)"
for dev in cpu cuda; do
  t0=$(date +%s%N)
  timeout 120 "$py" -m lulc_edge.cli run examples/data/example-scene.tif -o "$out/map-$dev.tif" \
    --device "$dev" --precision fp32 --overwrite --json >"$out/cli-$dev.json"
  echo "cli $dev rc=$? wall $(( ($(date +%s%N) - t0) / 1000000 )) ms"
done
"$py" - "$out" <<'PY'
import sys, numpy as np, rasterio
o = sys.argv[1]
a, b = (rasterio.open(f"{o}/map-{d}.tif").read(1) for d in ("cpu", "cuda"))
print(f"CLI maps cpu vs cuda: {np.mean(a == b) * 100:.4f} % equal pixels of {a.size}")
PY

step "parity (quick: synthetic scenes and shared/data when present)"
timeout 240 "$py" benchmarks/parity.py --quick --out "$out" --quiet
[ -f "$out/parity.md" ] && cat "$out/parity.md"

step "throughput on cuda (4096 px scene, seamless)"
timeout 300 "$py" benchmarks/throughput.py --devices cuda --size 4096 --tiles 512,1024 --no-window \
  --batches 1,4 --repeats 1 --keras-windows 0 --headline-size 0 \
  --out "$out" --quiet
[ -f "$out/throughput.md" ] && head -60 "$out/throughput.md"
step "end to end on a 4096 px scene, GDAL decoding on all cores vs one"
timeout 300 "$py" benchmarks/cuda_e2e.py --size 4096 | tee "$out/cuda_e2e.txt"
step "real products on cuda (issue 15: full-width strip, every form, the reader alone beside)"
timeout 480 "$py" benchmarks/products.py --quick --device cuda --precision fp32 --reader \
  --rounds 1 --data "${LULC_BENCH_DATA:-/tmp/lulc-edge-bench}" --out "$out/products" --quiet
[ -f "$out/products/products.md" ] && head -40 "$out/products/products.md"
step done
