#!/usr/bin/env bash
# Multi-task ablation (issue 7): edge_cnn on CASIA and RAVDESS speaker-independent folds.
#   1. Weight tuning (seed 0): each auxiliary task alone at loss weight 0.1, 0.3 and 1.0; the weight
#      with the best mean *validation* UA (never test) is chosen per corpus and task
#      (benchmarks/results/mtl_weights.json).
#   2. Ablation (seeds 0-2): emotion only, + each task at its chosen weight, and all tasks together.
#      Seed 0 of "+ task" is the tuning run at the chosen weight (same run): it is not trained twice.
# Every run uses edge_cnn's usual recipe (random 3 s excerpts, repeat padding, SpecAugment, label
# smoothing); a transcript (CTC) head trains on a second, whole-utterance view of each batch
# (models/data/batches.py WholeView), so only the heads differ between runs. A finished run is recorded
# under benchmarks/results/mtl/ (report only, no export) and benchmarks/results/mtl_ablation.md is
# rebuilt. Resumable across sessions; two queues (CORPORA=casia / CORPORA=ravdess, THREADS=1) can
# run side by side. The first version of this recipe (zero-padded whole-utterance crops for every
# head) was withdrawn: benchmarks/results/mtl-padding.md.
# ONLY=REGEX keeps the runs whose name matches it, so that two queues can share one seed's runs.
#   bash benchmarks/mtl_ablation.sh            (RUNS=runs DATA=../shared/datasets THREADS=2 SEEDS="0 1 2")
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-runs}
data=${DATA:-../shared/datasets}
threads=${THREADS:-2}
seeds=${SEEDS:-0 1 2}
corpora=${CORPORA:-casia ravdess}
only=${ONLY:-}
records=benchmarks/results/mtl
chosen=benchmarks/results/mtl_weights.json
tasks() { if [ "$1" = casia ]; then echo "gender speaker chars syllables"; else echo "gender speaker chars"; fi; }
run() {  # corpus name seed aux...
  local corpus=$1 name=$2 seed=$3
  if [ -f "$records/$name.json" ]; then echo "$name: recorded, skipped"; return; fi
  if [ -n "$only" ] && ! [[ $name =~ $only ]]; then return; fi
  edge-ser train --arch edge_cnn --dataset "$corpus" --data "$data/$corpus" --epochs 20 --patience 8 \
    --time-mask 20 --freq-mask 8 --label-smoothing 0.1 --seed "$seed" \
    --threads "$threads" --no-progress --resume --out "$runs/$name" --aux "${@:4}"
  python benchmarks/results.py "$runs/$name" --record-only --no-export --records "$records" --data-root "$data"
  python benchmarks/mtl_table.py "$records"/*.json --out benchmarks/results/mtl_ablation.md --weights "$chosen"
}
for corpus in $corpora; do
  for task in $(tasks "$corpus"); do
    for weight in 0.1 0.3 1.0; do
      run "$corpus" "$corpus-mtltune-$task-w$weight" 0 "$task=$weight"
    done
  done
done
for seed in $seeds; do
  for corpus in $corpora; do
    all=""
    run "$corpus" "$corpus-mtl-none-s$seed" "$seed"
    for task in $(tasks "$corpus"); do
      w=$(python -c "import json,sys; print(json.load(open('$chosen'))['$corpus']['$task'])")
      all="$all $task=$w"
      if [ "$seed" = 0 ]; then continue; fi  # = $corpus-mtltune-$task-w$w
      run "$corpus" "$corpus-mtl-$task-s$seed" "$seed" "$task=$w"
    done
    # shellcheck disable=SC2086
    run "$corpus" "$corpus-mtl-all-s$seed" "$seed" $all
  done
done
