#!/usr/bin/env bash
# Install uv if missing, then create .venv with the locked dependencies (uv.lock).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v uv >/dev/null 2>&1; then
  export PATH="$HOME/.local/bin:$PATH"
fi
if ! command -v uv >/dev/null 2>&1; then
  echo "==> installing uv (pip --user)"
  python3 -m pip install --quiet --user uv 2>/dev/null \
    || python3 -m pip install --quiet --user --break-system-packages uv
fi
echo "==> syncing .venv from uv.lock"
# --compile-bytecode: as pip does, so no command compiles its dependencies at start (wrctl
# --help would take three times as long where PYTHONDONTWRITEBYTECODE is set)
uv sync --frozen --extra dev --python "${WRUNTIME_PYTHON:-python3}" --compile-bytecode --quiet
