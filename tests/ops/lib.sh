# Shared helpers of the operations suites (sourced, not run). Each suite gets a scratch folder, starts its
# processes in their own process groups, waits on conditions with deadlines and kills what it started at
# exit (also on failure, when it prints the tail of every process log).
set -euo pipefail

OPS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OPS_TMP=$(mktemp -d "${TMPDIR:-/tmp}/pp-ops.XXXXXX")
OPS_PGIDS=()   # process groups we started (each background process leads its own, via setsid)
OPS_FAILED=0

ops_log() { printf '%s: %s\n' "${OPS_SUITE:-ops}" "$*" >&2; }

fail() {
    OPS_FAILED=1
    ops_log "FAIL: $*"
    exit 1
}

ops_cleanup() {
    local rc=$?
    local pg child
    # A process may put its own children in new process groups (paypath prove does): take those too,
    # by pid, before their parent goes and they are reparented.
    for pg in "${OPS_PGIDS[@]}"; do
        for child in $(pgrep -P "$pg" 2>/dev/null); do OPS_PGIDS+=("$child"); done
    done
    for pg in "${OPS_PGIDS[@]}"; do kill -TERM -- "-$pg" 2>/dev/null || kill -TERM "$pg" 2>/dev/null || true; done
    # Give them 5 s to exit cleanly, then SIGKILL whatever is left of our own groups.
    local deadline=$((SECONDS + 5)) alive
    while :; do
        alive=0
        for pg in "${OPS_PGIDS[@]}"; do kill -0 "$pg" 2>/dev/null && alive=1; done
        ((alive == 0 || SECONDS >= deadline)) && break
        sleep 0.1
    done
    for pg in "${OPS_PGIDS[@]}"; do kill -KILL -- "-$pg" 2>/dev/null || kill -KILL "$pg" 2>/dev/null || true; done
    if ((rc != 0 || OPS_FAILED)); then
        local f
        for f in "$OPS_TMP"/*.log; do
            [[ -f "$f" ]] || continue
            ops_log "---- last lines of $(basename "$f")"
            tail -n 15 "$f" >&2 || true
        done
    fi
    rm -rf "$OPS_TMP"
    exit "$rc"
}
trap ops_cleanup EXIT

# wait_until SECS CMD...: poll CMD every 100 ms until it succeeds; non-zero once SECS have passed.
wait_until() {
    local secs=$1; shift
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

require_env() {
    local v
    for v in "$@"; do
        [[ -n "${!v:-}" ]] || fail "$v is not set (run under 'make test', or eval \"\$(scripts/stack up)\" first)"
    done
}

# start NAME CMD...: run CMD in the background in its own process group; output in $OPS_TMP/NAME.log.
start() {
    local name=$1; shift
    setsid "$@" >"$OPS_TMP/$name.log" 2>&1 </dev/null &
    OPS_PGIDS+=("$!")
    eval "PID_${name}=$!"
}

# log_field NAME MSG FIELD: FIELD of the first JSON log line of process NAME whose msg is MSG.
log_field() {
    local line
    line=$(grep -h "\"msg\":\"$2\"" "$OPS_TMP/$1.log" 2>/dev/null | head -n1) || return 1
    [[ -n "$line" ]] || return 1
    jq -er ".$3" <<<"$line"
}

# wait_port NAME MSG [FIELD]: the port a process logged (it was started with port 0), within 20 s.
wait_port() {
    local name=$1 msg=$2 field=${3:-port}
    wait_until 20 log_field "$name" "$msg" "$field" \
        || fail "$name did not log $msg within 20 s"
    log_field "$name" "$msg" "$field"
}

# scrape URL: the body of a 200 response, or non-zero.
scrape() { curl -sf --max-time 5 "$1"; }

# metric_value TEXT_FILE SAMPLE: the value of one sample (name plus rendered labels), or empty.
metric_value() { awk -v s="$2" '$1 == s { print $2; exit }' "$1"; }

# fresh_db NAME: drop and create database NAME on PAYPATH_PG_URL's server, apply the schema, print its URL.
fresh_db() {
    local name=$1 base=${PAYPATH_PG_URL%/*}
    psql "$PAYPATH_PG_URL" -X -q -v ON_ERROR_STOP=1 \
        -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" -c "CREATE DATABASE $name" >/dev/null 2>&1 \
        || fail "could not create database $name on $base"
    "$PAYPATH_BIN" migrate --pg-url "$base/$name" >"$OPS_TMP/migrate-$name.log" 2>&1 \
        || fail "paypath migrate failed for $name"
    echo "$base/$name"
}

# The metric names an alert rule file or a dashboard queries (paypath_* identifiers in its expressions).
alert_metrics() {
    sed 's/#.*$//' "$OPS_ROOT/ops/prometheus/alerts.yml" | grep -o 'paypath_[a-z0-9_]*' | sort -u
}
dashboard_metrics() {
    jq -r '.. | objects | .expr? // empty' "$OPS_ROOT/ops/grafana/paypath.json" | grep -o 'paypath_[a-z0-9_]*' | sort -u
}
