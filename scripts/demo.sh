#!/usr/bin/env bash
# The main job: install everything, then run the echo demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
echo "==> the echo demo is not wired up yet; the installed runtime version is:"
.venv/bin/python -c "from runtime.version import __version__; print('wruntime', __version__)"
