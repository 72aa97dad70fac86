#!/usr/bin/env bash
# End-to-end demo of POST /v1/charges against the running stack: created, replayed, 409 while in flight,
# 422 for a changed body. Prints each exchange the way `curl -i` would. Usage: scripts/demo.sh PAYPATH_BIN
set -euo pipefail
bin=${1:?usage: demo.sh path/to/paypath}
: "${PAYPATH_PG_URL:?run through make prove (it exports the stack settings)}"
port=${PAYPATH_DEMO_PORT:-18480}
url=http://127.0.0.1:$port
api_key=${PAYPATH_API_KEYS%%:*}
log=$(mktemp /tmp/paypath-demo-api.XXXXXX.log)

# The first request after start holds its key for 2 s (failpoint api.after_claim=delay(2000)@1) so the
# demo can show a concurrent retry being told 409; every later request runs at full speed.
PAYPATH_FAILPOINTS='api.after_claim=delay(2000)@1' "$bin" api --listen "127.0.0.1:$port" >"$log" 2>&1 &
api_pid=$!
trap 'kill $api_pid 2>/dev/null; wait $api_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fsS "$url/readyz" >/dev/null 2>&1 && break
  kill -0 $api_pid 2>/dev/null || { echo "api did not start:"; cat "$log"; exit 1; }
  sleep 0.1
done
curl -fsS "$url/readyz" >/dev/null || { echo "api not ready:"; cat "$log"; exit 1; }

key="demo-$(date +%s)-$RANDOM"
body='{"account_id":"acct_42","amount":2500,"currency":"EUR","description":"demo"}'
post() {  # post KEY BODY
  curl -sS -i -X POST "$url/v1/charges" -H "Authorization: Bearer $api_key" -H "Idempotency-Key: $1" \
    -H 'Content-Type: application/json' --data "$2" | tr -d '\r'
}
show() { echo; echo "\$ curl -i -X POST $url/v1/charges -H 'Idempotency-Key: $2' -d '$3'   # $1"; }
status_of() { head -1 <<<"$1" | awk '{print $2}'; }

show "first request (held 2 s in flight)" "$key" "$body"
post "$key" "$body" >/tmp/paypath-demo-first.$$ &
first_pid=$!
# Wait until the first request holds the key, then send the same request again.
for _ in $(seq 1 100); do
  [ "$(psql "$PAYPATH_PG_URL" -Atc "SELECT count(*) FROM idempotency_keys WHERE idem_key='$key'")" = 1 ] && break
  sleep 0.05
done
show "same key while the first is in flight" "$key" "$body"
inflight=$(post "$key" "$body"); echo "$inflight"
wait $first_pid
echo; echo "# ...the first request finishes:"; first=$(cat /tmp/paypath-demo-first.$$); rm -f /tmp/paypath-demo-first.$$
echo "$first"
show "retry with the same key and body" "$key" "$body"
replay=$(post "$key" "$body"); echo "$replay"
changed='{"account_id":"acct_42","amount":9900,"currency":"EUR","description":"demo"}'
show "same key, changed amount" "$key" "$changed"
mismatch=$(post "$key" "$changed"); echo "$mismatch"

charges=$(psql "$PAYPATH_PG_URL" -Atc "SELECT count(*) FROM charges WHERE idem_key='$key'")
echo
echo "== verdict =="
printf '%-34s %s\n' "first request" "$(status_of "$first") (want 201)" \
  "concurrent duplicate" "$(status_of "$inflight") (want 409)" \
  "retry" "$(status_of "$replay") + Idempotent-Replayed (want 201 replay)" \
  "changed body" "$(status_of "$mismatch") (want 422)" \
  "charges in PostgreSQL for the key" "$charges (want 1)"
[ "$(status_of "$first")" = 201 ] && [ "$(status_of "$inflight")" = 409 ] && [ "$(status_of "$replay")" = 201 ] &&
  grep -qi '^idempotent-replayed: true' <<<"$replay" && [ "$(status_of "$mismatch")" = 422 ] && [ "$charges" = 1 ] ||
  { echo "DEMO FAILED"; exit 1; }
echo "demo passed: one charge, whatever was retried"
