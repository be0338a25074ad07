#!/usr/bin/env bash
# The bench's object storage rows against Garage instead of moto: one Garage
# node on loopback ports (replication factor 1, its data in a temp folder),
# then `rookery-bench` with --s3-endpoint pointing at it and --s3-server-pid
# naming its process, so Garage's CPU is reported as moto's is (it shares the
# two cores with the bench). `make bench-garage` runs it.
#
# moto, the default, answers each request in about 5 ms (Python, one request
# at a time), which alone puts some rows out of reach (100 documents read
# from a chain in S3 take 100 ranged GETs). Garage is a production S3 server
# written in Rust: these rows then show what Rookery itself costs.
#
# Garage comes from the Rust registry (`cargo install garage --locked`, about
# nine minutes on two cores, once; cached in ~/.cargo/bin). The rows that do
# not touch object storage are left out (--skip), except the folder backup
# and restore the S3 rows are measured against, and the chains.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
GARAGE_VERSION=2.5.0
N=${N:-1000000}
OUT=${OUT:-$ROOT/docs/bench/runs}
BENCH=${BENCH:-$ROOT/target/release/rookery-bench}

if ! command -v garage >/dev/null 2>&1 || ! garage --version 2>/dev/null | grep -q "$GARAGE_VERSION"; then
  echo "==> cargo install garage ${GARAGE_VERSION} (once; about nine minutes on two cores)"
  cargo install garage --locked --version "$GARAGE_VERSION"
fi
if [ ! -x "$BENCH" ]; then
  (cd "$ROOT" && cargo build --release -p server --bin rookery-bench)
fi

WORK=$(mktemp -d /tmp/rookery-bench-garage.XXXXXX)
GARAGE_PID=""
cleanup() {
  if [ -n "$GARAGE_PID" ]; then kill "$GARAGE_PID" 2>/dev/null || true; wait "$GARAGE_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
RPC=$(free_port)
S3=$(free_port)
mkdir -p "$WORK/meta" "$WORK/data"
cat > "$WORK/garage.toml" <<EOF
metadata_dir = "$WORK/meta"
data_dir = "$WORK/data"
db_engine = "lmdb"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$RPC"
rpc_public_addr = "127.0.0.1:$RPC"
rpc_secret = "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$S3"
root_domain = ".s3.garage.localhost"
EOF
garage -c "$WORK/garage.toml" server > "$WORK/garage.log" 2>&1 &
GARAGE_PID=$!
g() { garage -c "$WORK/garage.toml" "$@"; }
for _ in $(seq 100); do g status >/dev/null 2>&1 && break; sleep 0.2; done
g layout assign -z dc1 -c 100G "$(g node id -q 2>/dev/null | cut -c1-16)" >/dev/null
g layout apply --version 1 >/dev/null
g bucket create rookery-bench >/dev/null
KEYS=$(g key create rookery-bench-key)
g bucket allow --read --write --owner rookery-bench --key rookery-bench-key >/dev/null
export AWS_ACCESS_KEY_ID=$(echo "$KEYS" | awk -F': *' '/Key ID/ {print $2; exit}')
export AWS_SECRET_ACCESS_KEY=$(echo "$KEYS" | awk -F': *' '/Secret key/ {print $2; exit}')
export AWS_REGION=garage
echo "==> Garage $GARAGE_VERSION at http://127.0.0.1:$S3 (pid $GARAGE_PID, data in $WORK)"

mkdir -p "$OUT"
"$BENCH" --documents "$N" --runs "${RUNS:-3}" \
  --s3-endpoint "http://127.0.0.1:$S3" --s3-server-pid "$GARAGE_PID" --s3-bucket rookery-bench \
  --skip writes,snapshots,smuggler,rest \
  --json "$OUT/$(date -u +%Y%m%dT%H%M%SZ)-$N-garage.json" "$@"
