#!/usr/bin/env bash
# The real-model pipeline (SmolLM2-135M-Instruct, LoRA, bf16) on one CUDA device, within 10 minutes: per-stage
# seconds and peak GPU memory, generation tokens/s, PPO's first-minibatch ratio and clip fraction.
# See bench/GPU.md for what the machine needs (wheels, the converted model folder).
#
#   bench/gpu_check.sh MODEL_DIR [OUT]      MODEL_DIR: the converted SmolLM2-135M-Instruct folder
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
model_dir="${1:-${RLHFKIT_SMOLLM2_DIR:-}}"
out="${2:-$root/runs/gpu_check}"
python="${PYTHON:-python3}"

if [ -z "$model_dir" ]; then
    echo "usage: bench/gpu_check.sh MODEL_DIR [OUT]   (MODEL_DIR: the converted SmolLM2-135M-Instruct folder;" >&2
    echo "       see bench/GPU.md)" >&2
    exit 2
fi
if [ ! -f "$model_dir/config.json" ]; then
    echo "gpu_check: $model_dir has no config.json: expected the converted SmolLM2-135M-Instruct folder" >&2
    exit 2
fi
# Fail fast, before anything loads, when there is no GPU or a package is missing.
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu_check: no NVIDIA GPU visible (nvidia-smi missing or failing): this check runs only on a CUDA machine" >&2
    exit 1
fi
"$python" - <<'PY'
import importlib.util, sys
missing = [m for m in ("torch", "transformers", "peft", "accelerate", "trl", "datasets", "pandas", "pyarrow",
                       "safetensors", "vaderSentiment", "plotly") if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"gpu_check: missing packages {missing}: install the wheels as bench/GPU.md says")
import torch
if not torch.cuda.is_available():
    sys.exit("gpu_check: torch.cuda.is_available() is False (a CPU build of torch, or no driver): no CUDA device")
PY

export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
export RLHFKIT_CACHE="${RLHFKIT_CACHE:-$root/.cache/rlhfkit}"
cd "$root"
exec timeout --signal=INT --kill-after=30 600 "$python" bench/gpu_check.py --model-dir "$model_dir" --out "$out" "${@:3}"
