#!/usr/bin/env bash
# Installs what building and testing Rookery needs, skipping what is already
# present at the right version. Safe to run again; used by `make run` and `make test`.
#
#   install-tools.sh                 build tools: the wasm target, wasm-bindgen-cli, cargo-leptos
#   install-tools.sh --with-browser  and what the tests need: Chromium and Prometheus (apt), the
#                                    Playwright packages (npm), moto and schemathesis (PyPI, in .tools/venv)
#   install-tools.sh --python        only the Python tools (.tools/venv)
#   install-tools.sh --release       and npm's binaryen (wasm-opt) in .tools/
#
# What it assumes and does not install itself: rustup and cargo (https://rustup.rs).
# What it installs with apt when missing (as root, or through sudo): curl,
# python3 with its venv module, node and npm, chromium, prometheus. Without root it stops
# with one line naming what is missing.
set -euo pipefail

WASM_BINDGEN_VERSION=0.2.130
CARGO_LEPTOS_VERSION=0.3.10
MOTO_VERSION=5.2.1
SCHEMATHESIS_VERSION=4.32.5
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV="$ROOT/.tools/venv"
MODE=${1:-}

need_cmd() { command -v "$1" >/dev/null 2>&1; }
can_root() { [ "$(id -u)" -eq 0 ] || sudo -n true 2>/dev/null; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi; }

# Prerequisites: each missing one is a Debian package; install them together, or stop naming them.
missing=()
if ! need_cmd rustup || ! need_cmd cargo; then
  echo "install-tools: rustup and cargo are missing: install Rust from https://rustup.rs, then run this again" >&2
  exit 1
fi
need_cmd curl || missing+=(curl)
if [ "$MODE" = "--with-browser" ] || [ "$MODE" = "--python" ]; then
  need_cmd python3 || missing+=(python3)
  python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
fi
if [ "$MODE" = "--with-browser" ] || [ "$MODE" = "--release" ]; then
  need_cmd node || missing+=(nodejs)
  need_cmd npm || missing+=(npm)
fi
if [ "$MODE" = "--with-browser" ] && [ ! -x /usr/bin/chromium ]; then
  missing+=(chromium)
fi
# Prometheus and promtool (the alert rules' tests, and a real scrape in the integration tests).
if [ "$MODE" = "--with-browser" ] && { ! need_cmd promtool || ! need_cmd prometheus; }; then
  missing+=(prometheus)
fi
if [ ${#missing[@]} -gt 0 ]; then
  if ! need_cmd apt-get || ! can_root; then
    echo "install-tools: missing ${missing[*]}: install them (apt-get install ${missing[*]}) as root, then run this again" >&2
    exit 1
  fi
  echo "==> apt-get install ${missing[*]}"
  as_root apt-get update -qq
  others=()
  for p in "${missing[@]}"; do [ "$p" = prometheus ] || others+=("$p"); done
  if [ ${#others[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${others[@]}" >/dev/null
  fi
  if [[ " ${missing[*]} " == *" prometheus "* ]]; then
    # Only its binaries are used (on loopback ports, by the tests): no exporter, and no service left running.
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    if command -v systemctl >/dev/null 2>&1; then as_root systemctl disable --now prometheus >/dev/null 2>&1 || true; fi
  fi
fi

# Python tools in a virtual environment (a stock Debian refuses pip into the system Python).
python_tools() {
  if [ ! -x "$VENV/bin/python3" ]; then
    echo "==> python3 -m venv .tools/venv"
    mkdir -p "$ROOT/.tools"
    python3 -m venv "$VENV"
  fi
  if ! "$VENV/bin/python3" -c "import moto.server, sys; sys.exit(0 if moto.__version__ == '${MOTO_VERSION}' else 1)" 2>/dev/null; then
    echo "==> pip install moto[server]==${MOTO_VERSION} (into .tools/venv)"
    "$VENV/bin/python3" -m pip install --quiet --disable-pip-version-check "moto[server]==${MOTO_VERSION}"
  fi
  if ! "$VENV/bin/python3" -c "import schemathesis, sys; sys.exit(0 if schemathesis.__version__ == '${SCHEMATHESIS_VERSION}' else 1)" 2>/dev/null; then
    echo "==> pip install schemathesis==${SCHEMATHESIS_VERSION} (into .tools/venv)"
    "$VENV/bin/python3" -m pip install --quiet --disable-pip-version-check "schemathesis==${SCHEMATHESIS_VERSION}"
  fi
}

if [ "$MODE" = "--python" ]; then
  python_tools
  exit 0
fi

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

if [ "$MODE" = "--release" ]; then
  # wasm-opt for release builds: npm's binaryen (Debian's wasm-opt 108 makes
  # wasm that does not hydrate). Kept in .tools/, put on PATH by the Makefile.
  if [ ! -x "$ROOT/.tools/node_modules/.bin/wasm-opt" ]; then
    echo "==> npm install binaryen (wasm-opt) into .tools/"
    mkdir -p "$ROOT/.tools"
    (cd "$ROOT/.tools" && npm install --no-audit --no-fund --no-save binaryen@132.0.0 >/dev/null)
  fi
fi

if [ "$MODE" = "--with-browser" ]; then
  # A real S3 server for the object storage tests (integration and Playwright), and the API fuzzer.
  python_tools
  if [ ! -d "$ROOT/end2end/node_modules/@playwright/test" ] || [ ! -d "$ROOT/end2end/node_modules/@axe-core/playwright" ]; then
    echo "==> npm install (end2end)"
    (cd "$ROOT/end2end" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund)
  fi
fi
