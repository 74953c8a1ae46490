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
if git rev-parse --git-dir >/dev/null 2>&1; then
  nbdev_clean
  nbdev_export
  if [ -n "$(git status --porcelain -- nbs sage_nb)" ]; then
    echo "nbdev_clean or nbdev_export changed tracked files: run them and commit the result."
    git status --porcelain -- nbs sage_nb; git diff --stat -- nbs sage_nb | tail -5
    exit 1
  fi
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
