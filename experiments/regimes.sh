#!/usr/bin/env bash
# The regime map: where, if anywhere, a selector beats both uniform DPO and the SFT-only control. Three regimes,
# each a `sage-nb compare` with paired arms (same pairs, same starting adapter per seed) and an SFT-only control:
#   data-rich clean     the fair preset (experiments/fair.json: ~2.65 candidate pairs per pair-update)
#   data-rich noisy     the same with a seeded 20% of the training labels flipped (never the evaluation)
#   data-limited clean  experiments/data_limited.json (~0.6 candidates per pair-update: uniform DPO sees each pair
#                       about 1.5 times, so the question is what a selector does once its pool runs dry)
# then writes $ROOT/regime_map.md. Finished arms are reused and stopped ones resumed.
#
#   bash experiments/regimes.sh                                   # the embedded model, SEEDS=4, NOISY_SEEDS=3
#   RICH_CONFIG=mine.json LIMITED_CONFIG=mine_small.json bash experiments/regimes.sh   # your model and data
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-4}; NOISY_SEEDS=${NOISY_SEEDS:-3}; ROOT=${ROOT:-runs/regimes}
RICH_CONFIG=${RICH_CONFIG:-experiments/fair.json}; LIMITED_CONFIG=${LIMITED_CONFIG:-experiments/data_limited.json}
ARMS=${ARMS:-sage,uniform,margin_greedy,sage_robust}
SAGE_NB=${SAGE_NB:-.venv/bin/sage-nb}; PY=${PY:-.venv/bin/python}
"$SAGE_NB" compare --config "$RICH_CONFIG" --root "$ROOT/rich" --selectors "$ARMS,sage_no_curriculum" --seeds "$SEEDS"
"$SAGE_NB" compare --config "$RICH_CONFIG" --root "$ROOT/rich-noisy" --label-noise 0.2 --clean-root "$ROOT/rich" \
                   --selectors "$ARMS" --seeds "$NOISY_SEEDS"
"$SAGE_NB" compare --config "$LIMITED_CONFIG" --root "$ROOT/limited" --selectors "$ARMS" --seeds "$SEEDS"
"$PY" - "$ROOT" <<'PYEOF'
import sys
from pathlib import Path
from sage_nb.compare import regime_map, regime_markdown, beats_both
root = Path(sys.argv[1])
t = regime_map({"data-rich clean": root/"rich", "data-rich noisy": root/"rich-noisy", "data-limited clean": root/"limited"})
wins = beats_both(t)
text = regime_markdown(t) + "\n\nBeats both uniform DPO and SFT-only (95% interval above zero against each): " + \
       (", ".join(f"{a} ({r})" for r, a in wins) if wins else "nowhere") + "\n"
(root/"regime_map.md").write_text(text); print(text)
PYEOF
