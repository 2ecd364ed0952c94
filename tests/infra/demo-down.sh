#!/usr/bin/env bash
# `make demo-down`: remove the demo stack and stop its Pebble.
set -euo pipefail
cd "$(dirname "$0")/../.."
DEMO_DIR="${DEMO_DIR:-demo}"
if [ -f "$DEMO_DIR/stackgen.toml" ] && docker info >/dev/null 2>&1; then
  .venv/bin/stackgen down --dir "$DEMO_DIR"
fi
for side in edge home; do  # TARGET=edge-home: one stack per side
  if [ -f "$DEMO_DIR/$side/stackgen.toml" ] && docker info >/dev/null 2>&1; then
    .venv/bin/stackgen down --dir "$DEMO_DIR" --side "$side"
  fi
done
if [ -d .cache/demo-pebble ]; then
  .venv/bin/python -m stackgen.testing.pebble stop --state "$PWD/.cache/demo-pebble" || true
fi
if [ -d .cache/demo-bind9 ]; then
  .venv/bin/python -m tests.bind9 stop --state "$PWD/.cache/demo-bind9" || true
fi
rm -rf "$DEMO_DIR"
echo "demo removed" >&2
