#!/usr/bin/env bash
# Installs what a fresh machine lacks to build and test Kefu, and nothing that is already there.
# Every tool comes from a package registry (crates.io, npm, Debian): see docs/development.md.
#   scripts/bootstrap.sh          build tools (wasm target, cargo-leptos, wasm-bindgen, tailwind, wasm-opt)
#   scripts/bootstrap.sh --e2e    also Chromium and Playwright for the browser tests
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_LEPTOS_VERSION=0.3.10
say() { printf '\033[1;34m[bootstrap]\033[0m %s\n' "$*"; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

if ! cargo leptos --version 2>/dev/null | grep -q " $CARGO_LEPTOS_VERSION"; then
  say "installing cargo-leptos $CARGO_LEPTOS_VERSION (about 15 minutes, once per machine)"
  cargo install "cargo-leptos@$CARGO_LEPTOS_VERSION" --locked
fi

# wasm-bindgen-cli must match the wasm-bindgen crate in Cargo.lock exactly.
WB_VERSION=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/,""); print; exit}' Cargo.lock)
if ! wasm-bindgen --version 2>/dev/null | grep -q " $WB_VERSION"; then
  say "installing wasm-bindgen-cli $WB_VERSION"
  cargo info "wasm-bindgen-cli@$WB_VERSION" >/dev/null
  crate=$(ls -t "$HOME"/.cargo/registry/cache/*/"wasm-bindgen-cli-$WB_VERSION.crate" | head -1)
  work=$(mktemp -d)
  tar -xzf "$crate" -C "$work"
  (
    cd "$work/wasm-bindgen-cli-$WB_VERSION"
    # Its lock file pins a webpki-roots release the registry no longer serves.
    if grep -q 'name = "webpki-roots"' Cargo.lock; then
      cargo update -p webpki-roots --precise 1.0.10 2>/dev/null || cargo update -p webpki-roots
    fi
    cargo install --path . --locked
  )
  rm -rf "$work"
fi

if [ ! -x node_modules/.bin/tailwindcss ] || [ ! -x node_modules/.bin/wasm-opt ]; then
  say "installing tailwindcss and binaryen (wasm-opt) from npm"
  npm ci --no-audit --no-fund
fi

if [ "${1:-}" = "--e2e" ]; then
  if ! command -v chromium >/dev/null; then
    say "installing Chromium from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y chromium || { apt-get update && apt-get install -y chromium; }
  fi
  # A CJK font, so screenshots of the Chinese UI show characters rather than boxes.
  if ! fc-list 2>/dev/null | grep -qi "wenquanyi\|noto sans cjk"; then
    say "installing a CJK font for the browser tests"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y fonts-wqy-microhei || { apt-get update && apt-get install -y fonts-wqy-microhei; }
  fi
  if [ ! -d end2end/node_modules/@playwright/test ]; then
    say "installing Playwright (using Debian's Chromium, no browser download)"
    (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
  fi
fi
