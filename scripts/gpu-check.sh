#!/usr/bin/env bash
# GPU check: on a machine with an NVIDIA GPU, install a CUDA build of torch (from the package registry) and mfal,
# then run scripts/gpu_check.py: model forward, one training epoch and one round of ensemble scoring on CUDA vs
# CPU (results must agree within float32 tolerance), with GPU/CPU and MF/CHGNet time ratios. Under 5 minutes.
# Without a GPU it says so in one line and exits 0.
#   bash scripts/gpu-check.sh            # uses the current python / pip
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu-check: no NVIDIA GPU on this machine (nvidia-smi finds none); nothing to check."
  exit 0
fi
nvidia-smi -L
if ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "+ installing a CUDA build of torch and mfal (package registry only)"
  "$PY" -m pip install -q --upgrade "torch>=2.1"      # PyPI's Linux wheels of torch are CUDA builds
  "$PY" -m pip install -q -e .
fi
"$PY" -c 'import torch, sys; print("torch", torch.__version__, "CUDA", torch.version.cuda, torch.cuda.get_device_name(0))'
exec "$PY" scripts/gpu_check.py "$@"
