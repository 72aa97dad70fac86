#!/usr/bin/env bash
# The retrying client library's metrics, as exposed in-process by `paypath prove --metrics-listen`:
# scraped while a small proof run is driving charges, `promtool check metrics` passes, the contract
# families exist (with an attempt="3" series, which the third-attempt alert divides by attempt="1"),
# attempts were counted, and every paypath_client_* metric that alerts.yml and the Grafana dashboard
# query is exposed. Exit 77 (ctest: skipped) when the binary has no `prove` yet.
#
#   metrics_client.sh PAYPATH_BINARY
OPS_SUITE=ops_metrics_client
source "$(dirname "$0")/lib.sh"

PAYPATH_BIN=${1:?usage: metrics_client.sh PAYPATH_BINARY}
require_env PAYPATH_PG_ADMIN_URL PAYPATH_RELAY_AMQP_URL PAYPATH_API_KEYS
if ! "$PAYPATH_BIN" --help 2>/dev/null | grep -qE '^\s+prove\s'; then
    ops_log "SKIP: this paypath binary has no 'prove' subcommand (the client metrics live in it)"
    exit 77
fi

# prove takes a fixed host:port; ask the kernel for a free one.
PORT=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
# A small run without crashes: enough operations that the client is busy while we scrape it.
start prove "$PAYPATH_BIN" prove --database paypath_prove_ops_client --report "$OPS_TMP/report" --operations 300 \
    --concurrency 4 --no-relay-crash --no-consumer-crash --metrics-listen "127.0.0.1:$PORT"

attempts_counted() {
    scrape "http://127.0.0.1:$PORT/metrics" >"$OPS_TMP/client.prom.tmp" || return 1
    grep -qE '^paypath_client_attempts_total\{[^}]*attempt="1"[^}]*\} [1-9]' "$OPS_TMP/client.prom.tmp" || return 1
    mv "$OPS_TMP/client.prom.tmp" "$OPS_TMP/client.prom"
}
wait_until 90 attempts_counted || fail "no client attempts on http://127.0.0.1:$PORT/metrics within 90 s"

promtool check metrics <"$OPS_TMP/client.prom" || fail "promtool check metrics: client"
for m in paypath_client_attempts_total paypath_client_retry_budget_exhausted_total \
         paypath_client_outcomes_total paypath_client_retry_decisions_total; do
    grep -qxF "# TYPE $m counter" "$OPS_TMP/client.prom" || fail "client /metrics: no '# TYPE $m counter'"
done
# Series exist up to each call site's max attempts, so a site allowed 3+ attempts shows attempt="3" at 0.
grep -qE '^paypath_client_attempts_total\{[^}]*attempt="3"' "$OPS_TMP/client.prom" \
    || fail "client /metrics: no attempt=\"3\" series (the third-attempt alert needs it)"

grep -v '^#' "$OPS_TMP/client.prom" | sed -E 's/[{ ].*//' | sort -u >"$OPS_TMP/names"
for m in $( (alert_metrics; dashboard_metrics) | sort -u | grep '^paypath_client_'); do
    grep -qxF "$m" "$OPS_TMP/names" || fail "queried by alerts/dashboard but not exposed by the client: $m"
done

# Let the run finish on its own (it stops its api, relay, consumer and proxy); the trap kills it otherwise.
wait_until 120 bash -c "! kill -0 $PID_prove" || fail "prove did not finish within 120 s"
ops_log "ok: client metrics checked"
