#!/usr/bin/env bash
# Multi-task ablation (issue 7): edge_cnn on CASIA and RAVDESS speaker-independent folds, seeds 0-2,
# emotion only vs. + each auxiliary task vs. all of them. Every run uses --pad zero and a training
# crop that holds ~97% of the corpus' utterances whole (CASIA 3.5 s, RAVDESS 4.5 s): CTC heads need
# whole utterances; the emotion-only runs use the same crop, so only the heads differ. A
# finished run is recorded under benchmarks/results/mtl/ (report only, no export) and the table
# benchmarks/results/mtl_ablation.md is rebuilt. Resumable across sessions like train_seeds.sh.
#   bash benchmarks/mtl_ablation.sh            (RUNS=runs DATA=../shared/datasets THREADS=2 SEEDS="0 1 2")
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-runs}
data=${DATA:-../shared/datasets}
threads=${THREADS:-2}
seeds=${SEEDS:-0 1 2}
corpora=${CORPORA:-casia ravdess}
records=benchmarks/results/mtl
weights="gender=0.3 speaker=0.1 chars=0.3 syllables=0.3"
aux() {  # corpus config -> --aux arguments
  case $2 in
    none) ;;
    all) if [ "$1" = casia ]; then echo "$weights"; else echo "${weights% syllables=*}"; fi ;;
    *) for w in $weights; do [ "${w%%=*}" = "$2" ] && echo "$w"; done ;;
  esac
}
for seed in $seeds; do
  for corpus in $corpora; do
    crop=3.5
    [ "$corpus" = ravdess ] && crop=4.5
    configs="none gender speaker chars"
    [ "$corpus" = casia ] && configs="$configs syllables"
    for config in $configs all; do
      name="$corpus-mtl-$config-s$seed"
      if [ -f "$records/$name.json" ]; then echo "$name: recorded, skipped"; continue; fi
      # shellcheck disable=SC2046
      edge-ser train --model edge_cnn --dataset "$corpus" --data "$data/$corpus" --epochs 20 --patience 8 \
        --time-mask 20 --freq-mask 8 --label-smoothing 0.1 --pad zero --crop "$crop" --seed "$seed" --threads "$threads" \
        --no-progress --resume --out "$runs/$name" --aux $(aux "$corpus" "$config")
      python benchmarks/results.py --record-only --no-export --records "$records" "$runs/$name"
      python benchmarks/mtl_table.py "$records"/*.json --out benchmarks/results/mtl_ablation.md
    done
  done
done
