#!/usr/bin/env bash
# A distributed run of object storage backups: a three-node Garage cluster on
# loopback ports (replication factor 3), a Rookery server backing up into it
# under a write load, one Garage node stopped in the middle of the backup, then
# a restore from the cluster, verified. `make test-s3-cluster` runs it.
#
# Garage comes from the Rust registry (`cargo install garage --locked`, about
# nine minutes on two cores, cached in ~/.cargo/bin). Everything listens on
# 127.0.0.1 only and lives in a temp folder removed at the end.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
GARAGE_VERSION=2.5.0
DOCS=${DOCS:-20000}
SERVER_BIN=${SERVER_BIN:-$ROOT/target/debug/rookery-server}
BACKUP_BIN=${BACKUP_BIN:-$ROOT/target/debug/rookery-backup}

if ! command -v garage >/dev/null 2>&1 || ! garage --version 2>/dev/null | grep -q "$GARAGE_VERSION"; then
  echo "==> cargo install garage ${GARAGE_VERSION} (once; about nine minutes on two cores)"
  cargo install garage --locked --version "$GARAGE_VERSION"
fi
if [ ! -x "$SERVER_BIN" ] || [ ! -x "$BACKUP_BIN" ]; then
  echo "==> cargo build (rookery-server with failpoints, rookery-backup)"
  cargo build -p server --features failpoints --bin rookery-server --bin rookery-backup
fi

WORK=$(mktemp -d /tmp/rookery-s3-cluster.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
say() { printf '\n== %s\n' "$*"; }

SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
declare -a RPC S3 GPID
for n in 1 2 3; do
  RPC[$n]=$(free_port); S3[$n]=$(free_port)
  mkdir -p "$WORK/g$n/meta" "$WORK/g$n/data"
  cat > "$WORK/g$n.toml" <<EOF
metadata_dir = "$WORK/g$n/meta"
data_dir = "$WORK/g$n/data"
db_engine = "sqlite"
replication_factor = 3
rpc_bind_addr = "127.0.0.1:${RPC[$n]}"
rpc_public_addr = "127.0.0.1:${RPC[$n]}"
rpc_secret = "$SECRET"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:${S3[$n]}"
root_domain = ".s3.garage.localhost"
EOF
  garage -c "$WORK/g$n.toml" server > "$WORK/g$n.log" 2>&1 &
  GPID[$n]=$!; PIDS+=("${GPID[$n]}")
done
g() { garage -c "$WORK/g1.toml" "$@"; }
for _ in $(seq 100); do g status >/dev/null 2>&1 && break; sleep 0.2; done

say "Garage: three nodes, replication factor 3"
for n in 2 3; do
  id=$(garage -c "$WORK/g$n.toml" node id -q 2>/dev/null | cut -d@ -f1)
  g node connect "$id@127.0.0.1:${RPC[$n]}" >/dev/null
done
for n in 1 2 3; do
  id=$(garage -c "$WORK/g$n.toml" node id -q 2>/dev/null | cut -c1-16)
  g layout assign -z "dc$n" -c 1G "$id" >/dev/null
done
g layout apply --version 1 >/dev/null
g bucket create rookery >/dev/null
KEYS=$(g key create rookery-key)
KEY_ID=$(echo "$KEYS" | awk -F': *' '/Key ID/ {print $2; exit}')
KEY_SECRET=$(echo "$KEYS" | awk -F': *' '/Secret key/ {print $2; exit}')
g bucket allow --read --write --owner rookery --key rookery-key >/dev/null
g status | sed 's/^/  /'

say "Rookery: a server that backs up into s3://rookery (through node 1)"
export AWS_ACCESS_KEY_ID=$KEY_ID AWS_SECRET_ACCESS_KEY=$KEY_SECRET AWS_REGION=garage
export AWS_ENDPOINT_URL=http://127.0.0.1:${S3[1]} AWS_ALLOW_HTTP=true
PORT=$(free_port)
URL=http://127.0.0.1:$PORT
# Each data file, once uploaded, pauses the backup for 2 s (a failpoint of the
# test build), so that node 3 surely stops in the middle of the set.
ROOKERY_FAILPOINTS=backup.after_data_file=sleep:2000 \
  "$SERVER_BIN" --data-dir "$WORK/data" --bind "127.0.0.1:$PORT" --durability os --backup-root s3://rookery > "$WORK/server.out" 2> "$WORK/server.log" &
PIDS+=("$!")
for _ in $(seq 100); do curl -fs "$URL/health" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs -X PUT "$URL/admin/databases/Orders" >/dev/null

echo "  loading $DOCS documents"
python3 - "$URL" "$DOCS" <<'EOF'
import json, sys, urllib.request
url, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    body = json.dumps({"Customer": f"customers/{i % 500}", "Lines": [{"Product": f"products/{(i * 7 + k) % 900}", "Quantity": k + 1} for k in range(8)], "Note": "x" * 600}).encode()
    req = urllib.request.Request(f"{url}/databases/Orders/docs/orders/{i}", data=body, method="PUT")
    urllib.request.urlopen(req).read()
EOF

say "A backup under write load; node 3 stops in the middle of it"
python3 - "$URL" > "$WORK/writes.log" 2>&1 <<'EOF' &
import json, sys, time, urllib.request
url, i, ok = sys.argv[1], 0, 0
end = time.time() + 30
while time.time() < end:
    req = urllib.request.Request(f"{url}/databases/Orders/docs/live/{i}", data=json.dumps({"n": i}).encode(), method="PUT")
    try:
        urllib.request.urlopen(req).read(); ok += 1
    except Exception as e:
        print("write failed:", e)
    i += 1
print(f"{ok} writes acknowledged during the backup window")
EOF
WRITER=$!; PIDS+=("$WRITER")
curl -fs -X POST "$URL/databases/Orders/admin/backup" -d '{"BackupLocation": "s3://rookery/orders"}' >/dev/null
# Node 3 stops as soon as the set's first file is in the cluster (the set is then "unfinished").
for _ in $(seq 400); do
  curl -fs "$URL/admin/backup/sets?location=s3://rookery/orders&verify=false" | grep -q '"Unfinished":\["' && break
  sleep 0.05
done
kill "${GPID[3]}"; echo "  the first file of the set is uploaded: stopped Garage node 3 (pid ${GPID[3]})"
STATUS=""
for _ in $(seq 1200); do
  STATUS=$(curl -fs "$URL/databases/Orders/docs/Raven/Backup/Status")
  echo "$STATUS" | grep -q '"IsRunning":false' && break
  sleep 0.25
done
echo "$STATUS" | python3 -c 'import json,sys; s=json.load(sys.stdin); print("  backup:", "Succeeded" if s["Success"] else "FAILED", s.get("SetId"), s.get("ErrorCode") or "", s.get("Error") or ""); [print("   ", m["Timestamp"], m["Severity"], m["Message"]) for m in s["Messages"]]'
wait "$WRITER" || true
sed 's/^/  /' "$WORK/writes.log" | tail -3

say "Restore from the cluster (node 3 still down)"
"$BACKUP_BIN" --verify --dest=s3://rookery/orders | sed 's/^/  /'
RESTORE=$(curl -fs -X POST "$URL/admin/restore" -d '{"BackupLocation": "s3://rookery/orders", "DatabaseName": "OrdersRestored"}')
for _ in $(seq 1200); do
  RSTATUS=$(curl -fs "$URL/docs/Raven/Restore/Status")
  echo "$RSTATUS" | grep -q '"IsRunning":false' && break
  sleep 0.25
done
echo "$RSTATUS" | python3 -c 'import json,sys; s=json.load(sys.stdin); print("  restore:", "Succeeded" if s["Success"] else "FAILED", s.get("ErrorCode") or "", s.get("Error") or "")'
EXPECTED=$(echo "$STATUS" | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["Progress"]["DocumentsDone"])')
GOT=$(curl -fs "$URL/databases?includeSystem=false" | python3 -c 'import json,sys; print(next(d["DocumentCount"] for d in json.load(sys.stdin) if d["Name"]=="OrdersRestored"))')
echo "  documents in the set: $EXPECTED; in the restored database: $GOT"
if echo "$STATUS" | grep -q '"Success":true' && echo "$RSTATUS" | grep -q '"Success":true' && [ "$EXPECTED" = "$GOT" ]; then
  say "OK: backed up under load with a node stopped, verified, restored"
else
  say "FAILED (logs in $WORK are removed on exit; rerun with KEEP=1 to keep them)"
  [ "${KEEP:-}" = 1 ] && trap - EXIT
  exit 1
fi
