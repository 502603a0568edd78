#!/usr/bin/env bash
# The main job: install everything, build the echo example, apply it on this machine
# (manager, proxy and engine under supervisord) and invoke it through the proxy.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
WRCTL=.venv/bin/wrctl
EXAMPLE=examples/echo

echo "==> building the echo and caller components"
$WRCTL build "$EXAMPLE/echo" -o "$EXAMPLE/build/echo.wasm"
$WRCTL build "$EXAMPLE/caller" -o "$EXAMPLE/build/caller.wasm"

echo "==> wrctl apply $EXAMPLE/cluster.toml --auto-approve"
$WRCTL apply "$EXAMPLE/cluster.toml" --auto-approve

echo "==> wrctl invoke example.caller/run"
$WRCTL invoke example.caller/run

cat <<TXT

The cluster keeps running (state and logs under $EXAMPLE/.wruntime/). Try:
  $WRCTL status -c $EXAMPLE/cluster.toml
  $WRCTL invoke -c $EXAMPLE/cluster.toml example.echo/echo.EchoService/Echo --data '{"message": "hi"}'
  $WRCTL plan $EXAMPLE/cluster.toml
  $WRCTL destroy $EXAMPLE/cluster.toml --auto-approve
TXT
