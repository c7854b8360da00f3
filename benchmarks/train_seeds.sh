#!/usr/bin/env bash
# Trains every seed architecture on CASIA and RAVDESS, speaker-independent (every fold) and, for
# comparison with the papers, one labelled random split (fold 1 of a seeded stratified 5-fold, i.e.
# 80/20 with speakers shared), then rebuilds benchmarks/results/training.md. Resumable: rerun it and
# finished folds are skipped, an interrupted fold continues from its last epoch.
#   bash benchmarks/train_seeds.sh [EPOCHS]        (RUNS=runs/ holds the runs, DATA=../shared/datasets)
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${1:-12}
runs=${RUNS:-runs}
data=${DATA:-../shared/datasets}
archs="pcnn_gender pcnn audio_resnet spectrogram_resnet"
train() {
  edge-ser train --dataset "$1" --data "$data/$1" --epochs "$epochs" --patience 6 --threads 2 --no-progress \
    --resume "${@:2}"
}
for corpus in casia ravdess; do
  for arch in $archs; do
    train "$corpus" --model "$arch" --out "$runs/$corpus-$arch"
  done
done
for corpus in casia ravdess; do
  for arch in $archs; do
    train "$corpus" --model "$arch" --protocol random --folds 0 --out "$runs/$corpus-random-$arch"
  done
done
python benchmarks/training_results.py "$runs"/*/ --out benchmarks/results/training.md
