#!/usr/bin/env bash
# Starts api, fault proxy, relay and consumer (own database and queue, ports picked by the kernel), sends
# a created charge, a replay and a 422 through the proxy, waits until the consumer applied the effect, then
# for each process's real /metrics output:
#   - `promtool check metrics` passes (exposition format and naming lint);
#   - the contract metrics of docs/api.md / the runbook exist with the right TYPE, and the counts agree
#     with the traffic sent (one charge, one effect, one 422, at least one replay);
# and every paypath_* metric that alerts.yml and the Grafana dashboard query is exposed by some process
# (the client library's paypath_client_* are checked by metrics_client.sh against `paypath prove`).
#
#   metrics_check.sh PAYPATH_BINARY
OPS_SUITE=ops_metrics
source "$(dirname "$0")/lib.sh"

PAYPATH_BIN=${1:?usage: metrics_check.sh PAYPATH_BINARY}
require_env PAYPATH_PG_URL PAYPATH_RELAY_AMQP_URL PAYPATH_CONSUMER_AMQP_URL PAYPATH_ADMIN_AMQP_URL PAYPATH_API_KEYS
command -v promtool >/dev/null || fail "promtool not found"

DB_URL=$(fresh_db pp_ops_metrics)
LEDGER_URL=$(fresh_db pp_ops_metrics_ledger)  # the consumer's own database (it applies the ledger schema)
# paypath.<name>: the only queues the consumer's broker user may read. Declared (and deleted at the end) as
# the admin; the relay and consumer only verify it. Secrets (Redis and AMQP URLs) reach the processes
# through the environment.
QUEUE=paypath.ops_metrics
KEY=${PAYPATH_API_KEYS%%:*}
"$PAYPATH_BIN" broker declare --queue "$QUEUE" >/dev/null || fail "paypath broker declare --queue $QUEUE"
trap 'rc=$?; "$PAYPATH_BIN" broker delete --queue "$QUEUE" >/dev/null 2>&1; (exit $rc); ops_cleanup' EXIT

start api "$PAYPATH_BIN" api --pg-url "$DB_URL" --listen 127.0.0.1:0 --no-migrate
start relay "$PAYPATH_BIN" relay --pg-url "$DB_URL" --queue "$QUEUE" --metrics-listen 127.0.0.1:0
start consumer "$PAYPATH_BIN" consumer --ledger-pg-url "$LEDGER_URL" --queue "$QUEUE" --metrics-listen 127.0.0.1:0
API_PORT=$(wait_port api api_listening)
RELAY_PORT=$(wait_port relay metrics_listening)
CONSUMER_PORT=$(wait_port consumer metrics_listening)
start proxy "$PAYPATH_BIN" proxy --listen 127.0.0.1:0 --upstream "127.0.0.1:$API_PORT" --metrics-listen 127.0.0.1:0
PROXY_PORT=$(wait_port proxy proxy_started port)
PROXY_METRICS_PORT=$(wait_port proxy proxy_started metrics_port)
wait_until 20 scrape "http://127.0.0.1:$API_PORT/readyz" || fail "api not ready within 20 s"

# post KEY BODY: POST /v1/charges through the proxy; prints the status code.
post() {
    curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST "http://127.0.0.1:$PROXY_PORT/v1/charges" \
        -H "Authorization: Bearer $KEY" -H "Idempotency-Key: $1" -H 'Content-Type: application/json' -d "$2"
}
ikey=ops-metrics-$$-$RANDOM
[[ $(post "$ikey" '{"account_id":"acct_ops","amount":1234,"currency":"EUR"}') == 201 ]] || fail "first POST not 201"
[[ $(post "$ikey" '{"account_id":"acct_ops","amount":1234,"currency":"EUR"}') == 201 ]] || fail "replay not 201"
[[ $(post "$ikey" '{"account_id":"acct_ops","amount":9999,"currency":"EUR"}') == 422 ]] || fail "changed body not 422"

effect_applied() {
    scrape "http://127.0.0.1:$CONSUMER_PORT/metrics" >"$OPS_TMP/consumer.prom" || return 1
    [[ "$(metric_value "$OPS_TMP/consumer.prom" paypath_ledger_effects_applied_total)" == 1 ]]
}
wait_until 30 effect_applied || fail "the consumer did not apply the charge's effect within 30 s"

for p in api:$API_PORT relay:$RELAY_PORT consumer:$CONSUMER_PORT proxy:$PROXY_METRICS_PORT; do
    scrape "http://127.0.0.1:${p#*:}/metrics" >"$OPS_TMP/${p%%:*}.prom" || fail "GET /metrics of ${p%%:*} failed"
done

# expect PROCESS METRIC TYPE: the family is declared with that TYPE and has at least one sample.
expect() {
    grep -qxF "# TYPE $2 $3" "$OPS_TMP/$1.prom" || fail "$1 /metrics: no '# TYPE $2 $3'"
    grep -qE "^$2(_bucket|_count|_sum)?(\{| )" "$OPS_TMP/$1.prom" || fail "$1 /metrics: no sample of $2"
}
# equals PROCESS SAMPLE OP VALUE: numeric comparison (awk) of one sample's value.
check_value() {
    local v
    v=$(metric_value "$OPS_TMP/$1.prom" "$2")
    [[ -n "$v" ]] || fail "$1 /metrics: no sample $2"
    awk -v v="$v" -v w="$4" "BEGIN { exit !(v $3 w) }" || fail "$1 /metrics: $2 is $v, expected $3 $4"
}

for p in api relay consumer proxy; do
    promtool check metrics <"$OPS_TMP/$p.prom" >"$OPS_TMP/promtool-$p.out" 2>&1 \
        || { cat "$OPS_TMP/promtool-$p.out" >&2; fail "promtool check metrics: $p"; }
done

expect api paypath_idempotency_requests_total counter
for o in created replayed conflict mismatch rejected unavailable outcome_unknown; do
    grep -q "^paypath_idempotency_requests_total{outcome=\"$o\"} " "$OPS_TMP/api.prom" \
        || fail "api /metrics: no outcome=\"$o\" series"
done
expect api paypath_charges_created_total counter
expect api paypath_idempotency_in_doubt_pending gauge
expect api paypath_idempotency_cache_total counter
expect api paypath_idempotency_lease_takeovers_total counter
expect api paypath_idempotency_stale_owner_total counter
expect api paypath_http_request_duration_seconds histogram
check_value api paypath_charges_created_total == 1
check_value api 'paypath_idempotency_requests_total{outcome="created"}' == 1
check_value api 'paypath_idempotency_requests_total{outcome="replayed"}' '>=' 1
check_value api 'paypath_idempotency_requests_total{outcome="mismatch"}' == 1

expect relay paypath_outbox_backlog_rows gauge
expect relay paypath_outbox_oldest_age_seconds gauge
expect relay paypath_outbox_published_total counter
expect relay paypath_relay_publish_errors_total counter
expect relay paypath_relay_returned_total counter
check_value relay paypath_outbox_published_total '>=' 1

expect consumer paypath_ledger_effects_applied_total counter
expect consumer paypath_inbox_duplicates_total counter
expect consumer paypath_dlq_messages_total counter
expect consumer paypath_ledger_apply_delay_seconds histogram
check_value consumer paypath_ledger_apply_delay_seconds_count == 1

expect proxy paypath_proxy_requests_total counter
check_value proxy paypath_proxy_requests_total '>=' 3

# Every metric the alerts and the dashboard query exists (sample names, so histograms appear as _bucket).
cat "$OPS_TMP"/{api,relay,consumer,proxy}.prom | grep -v '^#' | sed -E 's/[{ ].*//' | sort -u >"$OPS_TMP/names"
missing=0
for m in $( (alert_metrics; dashboard_metrics) | sort -u | grep -v '^paypath_client_'); do
    grep -qxF "$m" "$OPS_TMP/names" || { ops_log "queried but not exposed by any process: $m"; missing=1; }
done
((missing == 0)) || fail "alerts.yml or ops/grafana/paypath.json query metrics that do not exist"

ops_log "ok: promtool check metrics passed for api, relay, consumer, proxy; $(wc -l <"$OPS_TMP/names") sample names"
