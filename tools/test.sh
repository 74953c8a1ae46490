#!/usr/bin/env bash
# Every check of the project, in the order a reviewer would run them. Called by `make test` and CI.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH"
SLOW=0; [ "${1:-}" = "--slow" ] && SLOW=1

# Debian's chromium for the real-browser tests (browser downloads do not work offline).
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "== installing chromium for the browser tests"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "chromium could not be installed; browser tests will be skipped"
fi

echo "== the library is what the notebooks export, and the notebooks are clean"
# Compare the tree before and after nbdev_clean + nbdev_export: a developer's uncommitted notebook edits are
# fine, as long as the exported library and the cleaned notebooks already match them.
tree_sum() { find nbs sage_nb -type f \( -name '*.ipynb' -o -name '*.py' \) -not -path '*/.ipynb_checkpoints/*' -print0 \
             | sort -z | xargs -0 sha1sum; }
before=$(tree_sum)
nbdev_clean
nbdev_export
after=$(tree_sum)
if [ "$before" != "$after" ]; then
  echo "nbdev_clean or nbdev_export changed these files: run them (they just did) and look at the result."
  diff <(echo "$before") <(echo "$after") | grep '^[<>]' | awk '{print $3}' | sort -u
  exit 1
fi

echo "== model cache (converted once from the embedded GGUF)"
python -c "from sage_nb.models import default_model_path; print(default_model_path())"

echo "== notebooks (nbdev_test)"
flags=""; [ "$SLOW" = 1 ] && flags="--flags slow"
timeout 1200 nbdev_test --n_workers 2 --timing $flags

echo "== pytest"
set +e
timeout 1200 python -m pytest -q -p no:cacheprovider tests
rc=$?
set -e
[ $rc = 5 ] && { echo "pytest collected no tests"; exit 1; }
exit $rc
