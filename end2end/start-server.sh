#!/usr/bin/env bash
# Starts a fresh Kefu for the browser tests: its own database, a known admin, the demo site.
set -euo pipefail
cd "$(dirname "$0")/.."
run=end2end/.run
rm -rf "$run"
mkdir -p "$run"
export KEFU__STORAGE__URL="sqlite://$run/kefu.db"
export KEFU__SERVER__LISTEN="127.0.0.1:${KEFU_E2E_PORT:-8849}"
export KEFU__BOOTSTRAP__DISABLED=true
export LEPTOS_SITE_ROOT=target/site
bin=target/release/kefu
"$bin" site add --name "Tea & Co." >/dev/null
# A second site with the bot on, shown at /demo?site=<its key> (the tests find it by name).
bot_key=$("$bin" site add --name "Tea & Co. bot")
"$bin" site bot --key "$bot_key" --enable --packs ecommerce,general --name "Tea bot" \
  --welcome "Hi! I'm the shop assistant. Ask me anything." >/dev/null
"$bin" user add --email admin@example.com --password e2e-password-123 --name "Alice" --role admin >/dev/null
exec "$bin" serve
