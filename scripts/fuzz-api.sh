#!/usr/bin/env bash
# Hostile input: schemathesis (PyPI) against /openapi.json of a real server,
# a bounded number of examples per operation, every check (--checks all: status
# codes, schemas, positive and negative data; the statuses that depend on the
# server's state are listed in scripts/fuzz/schemathesis.toml). Fails on any 5xx, any error
# answer without the {"Error","Message"} shape, or a panic in the server log.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
EXAMPLES=${FUZZ_EXAMPLES:-40}
# A seeded run: random data, and the same data again for the same seed.
SEED=${FUZZ_SEED:-20261202}
# schemathesis lives in .tools/venv (scripts/install-tools.sh puts it there).
PYTHON="$ROOT/.tools/venv/bin/python3"
bash "$ROOT/scripts/install-tools.sh" --python

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
URL="http://127.0.0.1:$PORT"
# Fixtures, so that the operations reach past their 404s: a database with
# documents, backup sets in a location inside the backup roots, a task on
# each database, another user.
call() { curl -sf -o /dev/null -H "Authorization: $AUTH" "$@"; }
call -XPUT "$URL/admin/databases/Walk"
for i in 1 2 3; do
  for base in "" /databases/Walk; do
    call -XPUT "$URL$base/docs/orders/$i" -d "{\"Total\": $i}"
    call -XPUT "$URL$base/docs/order-$i" -d "{\"Total\": $i}"
  done
done
LOCATION="$WORK/backups/walk"
set_id() { "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["SetId"])'; }
FIRST_SET=$(curl -sf -H "Authorization: $AUTH" -XPOST "$URL/databases/Walk/admin/backup?wait=true" -d "{\"BackupLocation\": \"$LOCATION\"}" | set_id)
call -XPUT "$URL/databases/Walk/docs/orders/4" -d '{"Total": 4}'
SECOND_SET=$(curl -sf -H "Authorization: $AUTH" -XPOST "$URL/databases/Walk/admin/backup?incremental=true&wait=true" -d "{\"BackupLocation\": \"$LOCATION\"}" | set_id)
call -XPUT "$URL/databases/Walk/admin/backup/tasks/nightly" -d "{\"BackupLocation\": \"$LOCATION\", \"FullBackupFrequency\": \"0 2 * * *\"}"
call -XPUT "$URL/admin/backup/tasks/nightly" -d "{\"BackupLocation\": \"$WORK/backups/system\", \"FullBackupFrequency\": \"0 2 * * *\"}"
call -XPUT "$URL/databases/Walk/admin/backup/tasks/weekly" -d "{\"BackupLocation\": \"$LOCATION\", \"FullBackupFrequency\": \"0 3 * * 0\"}"
call -XPUT "$URL/admin/backup/tasks/weekly" -d "{\"BackupLocation\": \"$WORK/backups/system\", \"FullBackupFrequency\": \"0 3 * * 0\"}"
call -XPUT "$URL/admin/users/reader" -d '{"Password": "reader-pw", "Role": "ReadOnly"}'
call -XPUT "$URL/admin/notifications/ops" -d '{"Url": "http://127.0.0.1:9/hook", "Events": ["BackupFailed"], "Secret": "fuzz-secret-0123456789"}'
# A database large enough that a restore, a compaction, a copy or a restore of its
# documents outlasts the cancel the run sends it (scripts/fuzz/rookery_checks.py
# starts those jobs before each cancel): 30,000 documents of 2 KB that do not
# compress, a full set, and an incremental that changed one in 100 (so a
# compaction rewrites every frame).
BIG="$WORK/backups/big"
"$PYTHON" - "$WORK/big.ndjson" <<'PY'
import json, random, sys
rng = random.Random(20261204)
with open(sys.argv[1], "w") as out:
    out.write(json.dumps({"FormatVersion": 1, "ServerVersion": "0.1.0", "Database": "Big", "Exported": "2026-12-04T00:00:00.000Z"}) + "\n")
    for i in range(30000):
        document = {"n": i, "pad": "%02000x" % rng.getrandbits(8000)}
        out.write(json.dumps({"Id": f"big/{i:06d}", "Document": document, "Metadata": {"ETag": i + 1, "LastModified": "2026-12-04T00:00:00.000Z"}}) + "\n")
    out.write(json.dumps({"EndOfDump": True, "DocumentCount": 30000}) + "\n")
PY
call -XPUT "$URL/admin/databases/Big"
call -XPOST --data-binary @"$WORK/big.ndjson" "$URL/databases/Big/smuggler/import"
call -XPOST "$URL/databases/Big/admin/backup?wait=true" -d "{\"BackupLocation\": \"$BIG\"}"
for i in $(seq 0 300 29999); do call -XPUT "$URL/databases/Big/docs/big/$(printf %06d "$i")" -d '{"changed": true}'; done
call -XPOST "$URL/databases/Big/admin/backup?incremental=true&wait=true" -d "{\"BackupLocation\": \"$BIG\"}"
# A dump to import, and a folder for copies (scripts/fuzz/rookery_checks.py).
curl -sf -H "Authorization: $AUTH" "$URL/databases/Walk/smuggler/export" -o "$WORK/walk.dump"
mkdir -p "$WORK/backups/copies"
# The static configuration, and the values of this run's fixtures.
CONFIG="$WORK/schemathesis.toml"
cat "$ROOT/scripts/fuzz/schemathesis.toml" > "$CONFIG"
cat >> "$CONFIG" <<TOML

[dictionaries.locations]
values = ["$LOCATION", "$WORK/backups/system", "$WORK/backups/other"]

[parameters]
"path.db" = { dictionary = "databases", probability = 1.0 }
"path.id" = { dictionary = "documents", probability = 0.6 }
"path.name" = { dictionary = "names", probability = 0.6 }
"query.location" = { dictionary = "locations", probability = 0.6 }
"body.BackupLocation" = { dictionary = "locations", probability = 0.5 }
"body.FullBackupFrequency" = { dictionary = "crons", probability = 0.6 }
"body.IncrementalBackupFrequency" = { dictionary = "crons", probability = 0.3 }
"body.Url" = { dictionary = "urls", probability = 0.7 }
TOML

status=0
FUZZ_URL="$URL" FUZZ_HOLD_FAILURES="$WORK/hold-failures.txt" FUZZ_SYSTEM_LOCATION="$WORK/backups/system" FUZZ_BIG_LOCATION="$BIG" FUZZ_USER=fuzz FUZZ_PASSWORD=fuzz-pw FUZZ_LOCATION="$LOCATION" FUZZ_SCRATCH="$WORK/backups/copies" FUZZ_DUMP="$WORK/walk.dump" FUZZ_SETS="$FIRST_SET $SECOND_SET" PYTHONPATH="$ROOT/scripts/fuzz" SCHEMATHESIS_HOOKS=rookery_checks "$PYTHON" -m schemathesis.cli --config-file "$CONFIG" run "$URL/openapi.json" \
  -H "Authorization: $AUTH" -n "$EXAMPLES" --seed "$SEED" \
  --checks ${FUZZ_CHECKS:-all} --suppress-health-check=filter_too_much -w 1 \
  --report har --report-har-path "$WORK/requests.har" >"$WORK/st.log" 2>&1 || true
cp "$WORK/requests.har" "$ROOT/target/fuzz-requests.har" 2>/dev/null || true
# Show the summary (the full log is long).
cp "$WORK/st.log" "$ROOT/target/fuzz-schemathesis.log" 2>/dev/null || true
sed -n '/= SUMMARY =/,$p' "$WORK/st.log"
# A check that failed is the server's fault; a schemathesis-internal error is
# not (a network error would also show as the server dying, checked below).
if grep -q "^Failures:" "$WORK/st.log" || ! grep -q "generated" "$WORK/st.log"; then
  sed -n '/= FAILURES =/,/= SUMMARY =/p' "$WORK/st.log" | head -80 || true
  status=1
fi
# An operation that only ever got 401/403, only 404, or never a 2xx was not
# fuzzed at all (its work never ran). Cancels included: the hooks start a job
# before each one.
curl -sf "$URL/openapi.json" -o "$WORK/openapi.json"
unreached=$("$PYTHON" "$ROOT/scripts/fuzz/unreached.py" "$WORK/requests.har" "$WORK/openapi.json")
if [ -n "$unreached" ]; then
  echo "operations never reached (only 401/403, only 404, or never 2xx):"
  echo "$unreached"
  status=1
fi
if [ -s "$WORK/hold-failures.txt" ]; then
  echo "a job started before its cancel did not end as it should:"; cat "$WORK/hold-failures.txt"
  status=1
fi
# schemathesis's own word for the same: an operation whose valid requests
# all got 404 was not fuzzed.
if grep -q "Missing test data" "$WORK/st.log"; then
  echo "schemathesis: operations whose valid requests only got 404:"
  sed -n '/^Missing test data/,/^💡/p' "$WORK/st.log"
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
