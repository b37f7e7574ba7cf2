#!/usr/bin/env bash
# The GPU check, at most 8 minutes on one GPU (the device machine when a session has one):
#   1. decode: our generate vs transformers' batched generate, greedy, same prompts (identical outputs counted);
#   2. step profile: decode ms/step (cuDNN attention excluded vs allowed, HF generate) and bf16 SFT
#      tokens/s with gradient checkpointing on and off;
#   3. a single-GPU `accelerate launch` of `spillover train sft` with the shipped single_gpu config.
# Each writes JSON with the machine. Models are random weights of the embedded model's shape, so only
# its config and tokenizer travel (pass them as SHAPE=DIR; default: the converted embedded model).
#   bash benchmarks/gpu_check.sh [RESULT_DIR]      (default benchmarks/results/gpu)
set -uo pipefail
cd "$(dirname "$0")"
dest=$(realpath -m "${1:-results/gpu}")
shape=${SHAPE:-embedded}
mkdir -p "$dest"
export PYTHONPATH="$(realpath ../src)${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
status=0
nvidia-smi > "$dest/nvidia-smi.txt" 2>&1 || echo "no nvidia-smi" > "$dest/nvidia-smi.txt"
run() { local limit=$1; shift; echo "== $* (limit ${limit}s)"; timeout "$limit" python3 "$@" || { echo "!! failed ($?): $*"; status=1; }; }
run 120 decode_vs_generate.py --model "$shape" --random-weights --out "$dest/decode_vs_generate-cuda.json"
run 240 step_profile.py --shape "$shape" --out "$dest/step_profile-cuda.json"
run 90 train_launch.py --shape "$shape" --config single_gpu --out "$dest/train_launch-cuda.json"
exit $status
