#!/usr/bin/env bash
# Installs what building and testing Rookery needs, skipping what is already
# present at the right version. Safe to run again; used by `make run` and `make test`.
set -euo pipefail

WASM_BINDGEN_VERSION=0.2.130
CARGO_LEPTOS_VERSION=0.3.10
MOTO_VERSION=5.2.1
ROOT=$(cd "$(dirname "$0")/.." && pwd)

need_cmd() { command -v "$1" >/dev/null 2>&1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! rustup target list --installed | grep -q '^wasm32-unknown-unknown$'; then
  echo "==> rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

if ! need_cmd wasm-bindgen || ! wasm-bindgen --version | grep -q " ${WASM_BINDGEN_VERSION}"; then
  echo "==> cargo install wasm-bindgen-cli ${WASM_BINDGEN_VERSION}"
  cargo install wasm-bindgen-cli --version "${WASM_BINDGEN_VERSION}" --force
fi

if ! need_cmd cargo-leptos || ! cargo-leptos --version | grep -q " ${CARGO_LEPTOS_VERSION}"; then
  echo "==> cargo install cargo-leptos ${CARGO_LEPTOS_VERSION} (debug build: faster to install, same output)"
  cargo install cargo-leptos --locked --version "${CARGO_LEPTOS_VERSION}" --debug --force
fi

if [ "${1:-}" = "--release" ]; then
  # wasm-opt for release builds: npm's binaryen (Debian's wasm-opt 108 makes
  # wasm that does not hydrate). Kept in .tools/, put on PATH by the Makefile.
  if [ ! -x "$ROOT/.tools/node_modules/.bin/wasm-opt" ]; then
    echo "==> npm install binaryen (wasm-opt) into .tools/"
    mkdir -p "$ROOT/.tools"
    (cd "$ROOT/.tools" && npm install --no-audit --no-fund --no-save binaryen@132.0.0 >/dev/null)
  fi
fi

if [ "${1:-}" = "--with-browser" ]; then
  # A real S3 server for the object storage tests (unit and Playwright): moto's, from PyPI.
  if ! python3 -c "import moto.server, sys; sys.exit(0 if moto.__version__ == '${MOTO_VERSION}' else 1)" 2>/dev/null; then
    echo "==> pip install moto[server]==${MOTO_VERSION}"
    python3 -m pip install --quiet --disable-pip-version-check "moto[server]==${MOTO_VERSION}"
  fi
  if [ ! -x /usr/bin/chromium ]; then
    echo "==> apt-get install chromium"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium >/dev/null
  fi
  if [ ! -d "$ROOT/end2end/node_modules/@playwright/test" ] || [ ! -d "$ROOT/end2end/node_modules/@axe-core/playwright" ]; then
    echo "==> npm install (end2end)"
    (cd "$ROOT/end2end" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund)
  fi
fi
