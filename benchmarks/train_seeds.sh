#!/usr/bin/env bash
# Trains every seed architecture on CASIA and RAVDESS, speaker-independent and (labelled) random
# split, then rebuilds benchmarks/results/training.md. Resumable: rerun it and finished folds are
# skipped, an interrupted fold continues from its last epoch. RUNS (default runs/) holds the runs.
#   bash benchmarks/train_seeds.sh [EPOCHS]
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${1:-30}
runs=${RUNS:-runs}
data=${DATA:-../shared/datasets}
for corpus in casia ravdess; do
  for protocol in default random; do
    for arch in pcnn_gender pcnn audio_resnet spectrogram_resnet; do
      edge-ser train --model "$arch" --dataset "$corpus" --data "$data/$corpus" --protocol "$protocol" \
        --epochs "$epochs" --patience 8 --no-progress --resume --out "$runs/$corpus-$protocol-$arch"
    done
  done
done
python benchmarks/training_results.py "$runs"/*/ --out benchmarks/results/training.md
