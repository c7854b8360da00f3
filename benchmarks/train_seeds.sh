#!/usr/bin/env bash
# Trains every seed architecture on CASIA and RAVDESS, speaker-independent (every fold) and, for
# comparison with the papers, one labelled random split (fold 1 of a seeded stratified 5-fold, i.e.
# 80/20 with speakers shared). Each finished run is recorded by benchmarks/results.py (every fold
# exported and scored as FP32 and INT8 ONNX; record committed under benchmarks/results/runs/, no
# weights) and then rebuilds benchmarks/results/training.md. Resumable across sessions: a recorded
# run is skipped; an interrupted fold continues from its last epoch while runs/ survives.
#   bash benchmarks/train_seeds.sh [EPOCHS]   (RUNS=runs/ holds the runs, DATA=../shared/datasets, ARCHS= a subset,
#   PROTOCOLS="independent random" or either one)
# On 2 cores two single-threaded queues keep both cores busy through the single-threaded exports:
#   CORPORA=casia THREADS=1 bash benchmarks/train_seeds.sh & CORPORA=ravdess THREADS=1 bash benchmarks/train_seeds.sh
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${1:-12}
runs=${RUNS:-runs}
data=${DATA:-../shared/datasets}
threads=${THREADS:-2}
corpora=${CORPORA:-casia ravdess}
records=benchmarks/results/runs
archs=${ARCHS:-pcnn_gender pcnn audio_resnet spectrogram_resnet}
protocols=${PROTOCOLS:-independent random}
train() {  # corpus run-name extra-args...
  if [ -f "$records/$2.json" ]; then echo "$2: recorded, skipped"; return; fi
  edge-ser train --dataset "$1" --data "$data/$1" --epochs "$epochs" --patience 6 --threads "$threads" \
    --no-progress --resume --out "$runs/$2" "${@:3}"
  python benchmarks/results.py "$runs/$2" --record-only --reuse --data-root "$data"
  python benchmarks/training_results.py "$records"/*.json --out benchmarks/results/training.md
}
for protocol in $protocols; do
  for corpus in $corpora; do
    for arch in $archs; do
      case $protocol in
        independent) train "$corpus" "$corpus-$arch" --arch "$arch" ;;
        random) train "$corpus" "$corpus-random-$arch" --arch "$arch" --protocol random --folds 0 ;;
        *) echo "unknown protocol '$protocol' (independent, random)" >&2; exit 2 ;;
      esac
    done
  done
done
