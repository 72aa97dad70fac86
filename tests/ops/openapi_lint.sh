#!/usr/bin/env bash
# docs/openapi.yaml is a valid OpenAPI 3.1 document with no finding of Redocly's recommended rules
# (ops/redocly.yaml turns every warning into an error).
OPS_SUITE=ops_openapi_lint
source "$(dirname "$0")/lib.sh"

bash "$OPS_ROOT/scripts/npm-deps.sh" >/dev/null || fail "scripts/npm-deps.sh failed"
REDOCLY=$OPS_ROOT/ops/node_modules/.bin/redocly
# No telemetry or update checks: the test must not reach anything but loopback.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true
grep -q '^openapi: 3\.1\.' "$OPS_ROOT/docs/openapi.yaml" || fail "docs/openapi.yaml is not OpenAPI 3.1"
"$REDOCLY" lint --config "$OPS_ROOT/ops/redocly.yaml" "$OPS_ROOT/docs/openapi.yaml" \
    || fail "redocly lint found problems in docs/openapi.yaml"
