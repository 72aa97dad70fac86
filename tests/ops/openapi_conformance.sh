#!/usr/bin/env bash
# Real responses of a running api against docs/openapi.yaml (openapi_conformance.mjs says what is checked).
# Two apis: one on its own database whose claims are delayed (so a concurrent request sees 409), and one
# whose PostgreSQL is unreachable (503s), which is how an outage looks without stopping the shared server.
#
#   openapi_conformance.sh PAYPATH_BINARY
OPS_SUITE=ops_openapi_conformance
source "$(dirname "$0")/lib.sh"

PAYPATH_BIN=${1:?usage: openapi_conformance.sh PAYPATH_BINARY}
require_env PAYPATH_PG_URL PAYPATH_API_KEYS
bash "$OPS_ROOT/scripts/npm-deps.sh" >/dev/null || fail "scripts/npm-deps.sh failed"

DB_URL=$(fresh_db pp_ops_openapi)
# Two tenants: the second tenant's key must not see the first tenant's charge.
IFS=, read -r first second _ <<<"$PAYPATH_API_KEYS"
KEY_A=${first%%:*}
KEY_B=${second%%:*}
[[ -n "$KEY_B" ]] || fail "PAYPATH_API_KEYS needs two key:tenant pairs"

# 1.5 s: long enough that a second request sent right after the first finds the key in flight.
start api env PAYPATH_FAILPOINTS='api.after_claim=delay(1500)' \
    "$PAYPATH_BIN" api --pg-url "$DB_URL" --listen 127.0.0.1:0 --no-migrate
# Port 1 on loopback: nothing listens there, so every connection to "PostgreSQL" is refused at once.
start api_down "$PAYPATH_BIN" api --pg-url postgresql://postgres@127.0.0.1:1/none --listen 127.0.0.1:0 --no-migrate
# One charge waiting for PostgreSQL at most: a concurrent new charge is shed (503 overloaded).
start api_busy env PAYPATH_FAILPOINTS='api.after_claim=delay(1500)' \
    "$PAYPATH_BIN" api --pg-url "$DB_URL" --listen 127.0.0.1:0 --no-migrate --max-pending 1
API_PORT=$(wait_port api api_listening)
DOWN_PORT=$(wait_port api_down api_listening)
BUSY_PORT=$(wait_port api_busy api_listening)
wait_until 20 scrape "http://127.0.0.1:$API_PORT/readyz" || fail "api not ready within 20 s"
wait_until 20 scrape "http://127.0.0.1:$BUSY_PORT/readyz" || fail "busy api not ready within 20 s"

node "$(dirname "$0")/openapi_conformance.mjs" "$OPS_ROOT/docs/openapi.yaml" \
    "http://127.0.0.1:$API_PORT" "http://127.0.0.1:$DOWN_PORT" "$KEY_A" "$KEY_B" "http://127.0.0.1:$BUSY_PORT" \
    || fail "responses do not conform to docs/openapi.yaml"
