#!/usr/bin/env bash
# The bytes a browser downloads for the studio's first load (/studio and the
# files it links: CSS, JS, WASM), compressed as served (Accept-Encoding: gzip).
# Usage: scripts/first-load.sh SERVER_BINARY SITE_ROOT
set -euo pipefail
BIN=${1:?server binary}
SITE=${2:?site root}
WORK=$(mktemp -d)
PORT=${FIRST_LOAD_PORT:-3251}
cleanup() { [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
LEPTOS_SITE_ROOT="$SITE" "$BIN" --data-dir "$WORK/data" --bind "127.0.0.1:$PORT" >/dev/null 2>&1 &
PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
base="http://127.0.0.1:$PORT"
fetch() { curl -s -H 'Accept-Encoding: gzip' -o /dev/null -w '%{size_download}' "$base$1"; }
html=$(curl -s "$base/studio")
total=0
for path in /studio $(printf '%s' "$html" | grep -oE '(href|src)="/pkg/[^"]+"' | sed -E 's/.*="([^"]+)"/\1/' | sort -u); do
  bytes=$(fetch "$path")
  printf '%10d  %s\n' "$bytes" "$path"
  total=$((total + bytes))
done
printf '%10d  total (compressed as served)\n' "$total"
