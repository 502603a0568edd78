#!/usr/bin/env bash
# The whole test job: install everything, lint, type-check, run the test suite.
# Extra arguments go to pytest (e.g. `scripts/test.sh tests/unit -x`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/install-test-deps.sh
bash scripts/install-docker-deps.sh

echo "==> ruff check"; .venv/bin/ruff check .
echo "==> ruff format --check"; .venv/bin/ruff format --check .
echo "==> mypy (strict on wrctl/ and runtime/)"; .venv/bin/mypy
# Two workers (pytest-xdist): most tests wait on processes, SSH and health gates, so two run
# side by side in about 0.6x the time of one on 2 cores. WRTEST_WORKERS=0 runs in-process.
# Tests that share this machine's one Docker daemon stay on one worker (xdist_group).
workers="${WRTEST_WORKERS:-2}"
echo "==> pytest (${workers} workers, random order: the seed is in the header)"
set +e
if [ "$workers" = 0 ]; then
  .venv/bin/pytest "$@"
else
  .venv/bin/pytest -n "$workers" --dist loadgroup "$@"
fi
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure, not a pass" >&2
  exit 1
fi
exit "$rc"
