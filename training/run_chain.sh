#!/usr/bin/env bash
# The whole BrainVis training chain on a prepared data folder:
#   time-pretrain -> time-finetune (optional) -> freq -> timefreq -> clip-targets -> align
# Usage: training/run_chain.sh DATA_DIR OUTPUT_DIR [PRESET] [extra accelerate launch args...]
#   PRESET: paper (default) or tiny (seconds on a CPU, with synthetic data)
# Example (4 GPUs): training/run_chain.sh data/eeg_imagenet runs paper --config_file training/accelerate_configs/multi_gpu.yaml
set -euo pipefail
DATA=${1:?data folder}; OUT=${2:?output folder}; PRESET=${3:-paper}; shift $(( $# < 3 ? $# : 3 ))
LAUNCH=(accelerate launch "$@" "$(dirname "$0")/train.py")

"${LAUNCH[@]}" time-pretrain --data "$DATA" --output "$OUT/time_encoder" --preset "$PRESET"
"${LAUNCH[@]}" freq          --data "$DATA" --output "$OUT/freq_encoder" --preset "$PRESET"
"${LAUNCH[@]}" timefreq      --data "$DATA" --output "$OUT/timefreq"     --preset "$PRESET" \
    --init "$OUT/time_encoder" --init "$OUT/freq_encoder"
if [ ! -f "$DATA/clip_targets/index.json" ]; then
  brainvis data clip-targets --data "$DATA"   # openai/clip-vit-large-patch14 + Salesforce/blip2-opt-2.7b
fi
"${LAUNCH[@]}" align         --data "$DATA" --output "$OUT/align"        --preset "$PRESET" --init "$OUT/timefreq"
