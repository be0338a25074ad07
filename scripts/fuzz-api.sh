#!/usr/bin/env bash
# Hostile input: schemathesis (PyPI) against /openapi.json of a real server,
# a bounded number of examples per operation, every check (--checks all: status
# codes, schemas, positive and negative data; the statuses that depend on the
# server's state are listed in scripts/fuzz/schemathesis.toml). Fails on any 5xx, any error
# answer without the {"Error","Message"} shape, or a panic in the server log.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
EXAMPLES=${FUZZ_EXAMPLES:-30}
SCHEMATHESIS_VERSION=4.32.5

if ! python3 -c "import schemathesis, sys; sys.exit(0 if schemathesis.__version__ == '${SCHEMATHESIS_VERSION}' else 1)" 2>/dev/null; then
  echo "==> pip install schemathesis==${SCHEMATHESIS_VERSION}"
  python3 -m pip install --quiet --disable-pip-version-check "schemathesis==${SCHEMATHESIS_VERSION}"
fi

BIN="$ROOT/target/debug/rookery-server"
WORK=$(mktemp -d)
PORT=${FUZZ_PORT:-3241}
cleanup() { [ -n "${PID:-}" ] && kill -9 "$PID" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

ROOKERY_PASSWORD=fuzz-pw "$BIN" --data-dir "$WORK/data" --create-admin=fuzz >/dev/null
"$BIN" --data-dir "$WORK/data" --bind "127.0.0.1:$PORT" --durability os --max-failed-auth 1000000 >"$WORK/server.log" 2>&1 &
PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
AUTH="Basic $(printf 'fuzz:fuzz-pw' | base64)"
curl -sf -XPUT -H "Authorization: $AUTH" "http://127.0.0.1:$PORT/admin/databases/Walk" >/dev/null

status=0
PYTHONPATH="$ROOT/scripts/fuzz" SCHEMATHESIS_HOOKS=rookery_checks python3 -m schemathesis.cli --config-file "$ROOT/scripts/fuzz/schemathesis.toml" run "http://127.0.0.1:$PORT/openapi.json" \
  -H "Authorization: $AUTH" -n "$EXAMPLES" --generation-deterministic \
  --checks ${FUZZ_CHECKS:-all} --suppress-health-check=filter_too_much -w 1 >"$WORK/st.log" 2>&1 || true
# Show the summary (the full log is long).
cp "$WORK/st.log" "$ROOT/target/fuzz-schemathesis.log" 2>/dev/null || true
sed -n '/= SUMMARY =/,$p' "$WORK/st.log"
# A check that failed is the server's fault; a schemathesis-internal error is
# not (a network error would also show as the server dying, checked below).
if grep -q "^Failures:" "$WORK/st.log" || ! grep -q "generated" "$WORK/st.log"; then
  sed -n '/= FAILURES =/,/= SUMMARY =/p' "$WORK/st.log" | head -80 || true
  status=1
fi
if grep -q "^Errors:" "$WORK/st.log"; then
  echo "(schemathesis reported errors of its own; listed in its log, not counted against the server)"
  grep -E "Network Error|Connection" "$WORK/st.log" && status=1
fi

if grep -q "panicked" "$WORK/server.log"; then
  echo "the server panicked during the fuzz run:"; grep -A3 panicked "$WORK/server.log" | head -20 || true
  status=1
fi
if ! kill -0 "$PID" 2>/dev/null; then
  echo "the server died during the fuzz run"; status=1
fi
exit $status
