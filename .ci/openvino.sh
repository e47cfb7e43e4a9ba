#!/usr/bin/env bash
# OpenVINO execution provider checks, in their own environment.
#
# onnxruntime-openvino ships its own `onnxruntime` module and cannot share an environment with
# the plain onnxruntime wheel, so it gets .venv-openvino: the runtime dependencies first, then
# lulc-edge itself with --no-deps (its onnxruntime requirement is what onnxruntime-openvino
# provides). Then the tests marked `openvino` (those of OpenVINO's own runtime skip here: that
# one is tested in the main environment, where it installs beside plain onnxruntime).
#
# Usage: bash .ci/openvino.sh [pytest args...]   (LULC_EDGE_OV_VENV overrides the env folder)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${LULC_EDGE_OV_VENV:-.venv-openvino}"
PY="${PYTHON:-python3}"
t0=$(date +%s)
rm -rf "$VENV"
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check \
    "onnxruntime-openvino>=1.24" "numpy>=1.24" "rasterio>=1.3.9" "click>=8.1" \
    "pytest>=8" "onnx>=1.16" 2>&1 | grep -v "^WARNING: Location" || true
"$VENV/bin/pip" install -q --disable-pip-version-check --no-deps -e . 2>&1 \
    | grep -v "^WARNING: Location" || true
"$VENV/bin/python" - <<'PY'
import onnxruntime as ort
have = ort.get_available_providers()
print(f"onnxruntime {ort.__version__} providers: {', '.join(have)}")
assert "OpenVINOExecutionProvider" in have, "onnxruntime-openvino did not install its provider"
PY
echo "openvino env ready in $(( $(date +%s) - t0 )) s"
export LULC_EDGE_CACHE_DIR="${LULC_EDGE_CACHE_DIR:-$(mktemp -d)}"
# only the files that hold openvino tests: the others import the extras this env lacks
mapfile -t FILES < <(grep -l 'mark.openvino' tests/*.py)
"$VENV/bin/python" -m pytest -q -m openvino -rs "${FILES[@]}" "$@"
