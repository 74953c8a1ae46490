#!/usr/bin/env bash
# The comparison of SAGE with uniform DPO that controls what a comparison must control (see the walkthrough's
# "A fair experiment" section): experiments/fair.json sizes it; this script runs every arm. Finished arms are
# reused and stopped ones resumed, so it can be run again after an interruption.
#
#   bash experiments/fair.sh                 # SEEDS=4 main arms, EXTRA_SEEDS=2 ablations, NOISY_SEEDS=3 noisy-label arms
#   SEEDS=1 EXTRA_SEEDS=0 NOISY_SEEDS=0 bash experiments/fair.sh   # a one-seed pilot of the main arms
#   PART=clean (main arms and ablations) or PART=noisy runs one table only
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-4}; EXTRA_SEEDS=${EXTRA_SEEDS:-2}; NOISY_SEEDS=${NOISY_SEEDS:-3}; ROOT=${ROOT:-runs/fair}
# The steps-to-target goal is fixed before the runs: uniform DPO's final accuracy on the learning-curve problems in
# the one-seed pilot of this preset (0.66), so no arm's own runs move the finish line.
TARGET=${TARGET:-0.66}
CMP=(.venv/bin/sage-nb compare --config experiments/fair.json --target "$TARGET")
PART=${PART:-all}
if [ "$PART" != noisy ]; then
# main arms: SAGE, uniform DPO, curriculum pools in random order (isolates the fine-level score), the SFT-only control
"${CMP[@]}" --root "$ROOT" --selectors sage,uniform,sage_random_order --seeds "$SEEDS"
if [ "$EXTRA_SEEDS" -gt 0 ]; then
  # ablations and the margin-greedy baseline, on the first seeds (paired with the same uniform runs)
  "${CMP[@]}" --root "$ROOT" --selectors sage_no_filter,sage_no_curriculum,margin_greedy --seeds "$EXTRA_SEEDS" --no-sft-control
fi
fi
if [ "$PART" != clean ] && [ "$NOISY_SEEDS" -gt 0 ]; then
  # noisy labels: a seeded 20% of the training pairs flipped (the same pairs in every arm of a seed; never the evaluation)
  "${CMP[@]}" --root "$ROOT-noisy" --label-noise 0.2 --clean-root "$ROOT" --selectors sage,uniform,margin_greedy,sage_no_filter --seeds "$NOISY_SEEDS" --no-sft-control
fi
