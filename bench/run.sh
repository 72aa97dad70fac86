#!/usr/bin/env bash
# bench/run.sh: paypath against the limits of its own dependencies, measured in the same run on the same
# machine, written to bench/results.md. `make bench` runs it; see bench/README.md for what each figure is.
#
#   bash bench/run.sh [--smoke] [--out FILE] [--build-dir DIR] [--no-build]
#
#   --smoke       a few seconds per figure (about 45 s in total): checks that the benchmark still runs;
#                 its figures mean nothing and it writes to --out (default: a temp file), never results.md
#   --out FILE    where to write the report (default bench/results.md)
#   --build-dir   the CMake build directory holding paypath and the bench tools (default $BUILD or build)
#   --no-build    do not run `cmake --build` first (the smoke test: ctest has built everything)
#
# Uses the private stack (scripts/stack): PAYPATH_PG_URL, PAYPATH_REDIS_URL, the per-role AMQP URLs from the
# environment, or `scripts/stack up` when they are not set. Never stops the servers: other suites share them.
# Everything it creates is private to the run and removed on exit (trap): databases pp_bench_<id>_*, queues
# pp_bench_<id>_* (and their .dlq/.dlx), Redis keys of those databases, child processes, temp files.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=$ROOT/bench
BUILD_DIR=${BUILD:-build}
OUT=""
SMOKE=0
NO_BUILD=0
while (($#)); do
    case $1 in
        --smoke) SMOKE=1 ;;
        --out) OUT=$2; shift ;;
        --build-dir) BUILD_DIR=$2; shift ;;
        --no-build) NO_BUILD=1 ;;
        *) echo "usage: bench/run.sh [--smoke] [--out FILE] [--build-dir DIR] [--no-build]" >&2; exit 2 ;;
    esac
    shift
done
[[ "$BUILD_DIR" == /* ]] || BUILD_DIR=$ROOT/$BUILD_DIR

# --- What is measured, and for how long. Short runs keep `make bench` under ~10 minutes; each figure is
# a ratio of two measurements taken minutes apart on the same (shared, noisy) machine.
if ((SMOKE)); then
    DUR=2               # seconds per closed-loop measurement
    CONCS="8"           # concurrency levels for new charges and replays
    BACKLOG=2000        # outbox rows for the relay, queued events for the consumer
    REPLAY_KEYS=200
    E2E_RATE=200        # offered charges/s end to end
    E2E_LOW_RATE=50
    E2E_DUR=3
    MICRO_MIN_TIME=0.01
    NOGC_CONC=8         # clients for the --no-group-commit comparison
else
    DUR=${BENCH_DURATION:-10}
    CONCS=${BENCH_CONCURRENCY:-"8 32 64"}
    BACKLOG=20000
    REPLAY_KEYS=1000
    E2E_RATE=${BENCH_E2E_RATE:-1000}
    # A second end-to-end run well below saturation, to separate the design's own latency from queueing.
    E2E_LOW_RATE=${BENCH_E2E_LOW_RATE:-200}
    E2E_DUR=${BENCH_E2E_DURATION:-15}
    MICRO_MIN_TIME=0.2
    NOGC_CONC=${BENCH_NOGC_CONCURRENCY:-32}
fi
# The duplicate storm: this many concurrent requests with one key, released together.
STORM_N=64
# "A handful" of statements, for the verdict: one lone charge's own statements plus a few for the
# duplicates that reach PostgreSQL before the gate's marker is set (bench/README.md).
STORM_TARGET=${BENCH_STORM_TARGET:-10}
# The relay's --batch (100) is also the plain publisher's confirm window: the same amount in flight.
RELAY_WINDOW=100
# Handler threads of the api under test (the shipped default, src/api/command.cc).
API_THREADS=${BENCH_API_THREADS:-4}
API_KEY=sk_test_tenant_a
# Every wait has a deadline, in seconds.
START_DEADLINE=30
DRAIN_DEADLINE=300

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- tools -------------------------------------------------------------------------------------------
PGBENCH=$(command -v pgbench || true)
[[ -n "$PGBENCH" ]] || PGBENCH=/usr/lib/postgresql/15/bin/pgbench
[[ -x "$PGBENCH" ]] || die "pgbench not found (Debian package postgresql-15)"
for t in wrk psql curl awk sort; do command -v $t >/dev/null || die "$t not found (scripts/deps.sh installs it)"; done

if ((!NO_BUILD)); then
    if [[ ! -f "$BUILD_DIR/CMakeCache.txt" ]]; then
        log "configuring $BUILD_DIR"
        cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    fi
    log "building paypath and the bench tools in $BUILD_DIR"
    cmake --build "$BUILD_DIR" -j"${JOBS:-2}" --target paypath pp_micro_bench pp_bench_mq pp_bench_load >/dev/null \
        || die "build failed (is add_subdirectory(bench) in CMakeLists.txt?)"
fi
find_bin() {
    local f
    for f in "$BUILD_DIR/bench/$1" "$BUILD_DIR/$1"; do [[ -x "$f" ]] && { echo "$f"; return; }; done
    die "$1 not found under $BUILD_DIR (build it: cmake --build $BUILD_DIR --target $1)"
}
PAYPATH=$(find_bin paypath)
MICRO=$(find_bin pp_micro_bench)
MQ=$(find_bin pp_bench_mq)
LOAD=$(find_bin pp_bench_load)

# --- stack ---------------------------------------------------------------------------------------------
if [[ -z "${PAYPATH_PG_URL:-}" || -z "${PAYPATH_RELAY_AMQP_URL:-}" || -z "${PAYPATH_REDIS_URL:-}" ]]; then
    log "starting the stack (scripts/stack up)"
    eval "$("$ROOT/scripts/stack" up)"
fi
PG_ADMIN_URL=$PAYPATH_PG_URL
PG_BASE=${PAYPATH_PG_URL%/*}
# The api, relay and consumer under test get their settings from flags, except the secrets (Redis and AMQP
# URLs, API keys), which they read from the environment so that no password shows on a command line (ps).
# Nothing else in the environment may override the flags, and no failpoint may be armed.
unset PAYPATH_FAILPOINTS PAYPATH_LISTEN PAYPATH_METRICS_LISTEN PAYPATH_LEDGER_PG_URL
# redis-cli as Redis' admin (scan, del, info): the password goes through REDISCLI_AUTH, not argv.
REDIS_ADMIN=${PAYPATH_REDIS_ADMIN_URL#redis://*:}
REDIS_ADMIN_PW=${REDIS_ADMIN%%@*}
REDIS_HOSTPORT=${REDIS_ADMIN#*@}
REDIS_HOSTPORT=${REDIS_HOSTPORT%%/*}
rcli() { REDISCLI_AUTH=$REDIS_ADMIN_PW redis-cli --no-auth-warning -h "${REDIS_HOSTPORT%:*}" -p "${REDIS_HOSTPORT##*:}" "$@"; }

ID=pp_bench_$(date +%s)_$$
DB_CH=${ID}_charges
DB_MQ=${ID}_mq
DB_E2E=${ID}_e2e
# Ledger queues are named paypath.<name>: the consumer's broker user may read no other (scripts/stack).
Q_RELAY=paypath.${ID}_relay
Q_PLAIN=paypath.${ID}_plain
Q_E2E=paypath.${ID}_e2e
TMP=$(mktemp -d /tmp/pp_bench.XXXXXX)
[[ -n "$OUT" ]] || { ((SMOKE)) && OUT=$TMP/results-smoke.md || OUT=$BENCH_DIR/results.md; }
PIDS=()
DBS=()
QUEUES=()
OK=0

cleanup() {
    local rc=$?
    set +e
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    for q in "${QUEUES[@]}"; do "$PAYPATH" broker delete --queue "$q" >/dev/null 2>&1; done
    for db in "${DBS[@]}"; do
        psql -X -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1
        if command -v redis-cli >/dev/null; then
            rcli --scan --pattern "pp:idem:$db:*" 2>/dev/null | while read -r k; do echo "DEL $k"; done \
                | rcli >/dev/null 2>&1
        fi
    done
    if ((OK)); then
        rm -rf "$TMP"
    else
        log "failed (exit $rc); logs kept in $TMP"
        for f in "$TMP"/*.log; do [[ -f "$f" ]] && { echo "--- $f" >&2; grep -v charge_created "$f" | tail -n 15 >&2; }; done
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- helpers -------------------------------------------------------------------------------------------
sql() {  # sql DB STATEMENT: one value per line, unaligned
    psql -X -q -At -v ON_ERROR_STOP=1 "$PG_BASE/$1" -c "$2"
}
create_db() {
    DBS+=("$1")
    psql -X -q -v ON_ERROR_STOP=1 "$PG_ADMIN_URL" -c "CREATE DATABASE \"$1\"" >/dev/null
    "$PAYPATH" migrate --pg-url "$PG_BASE/$1" >"$TMP/migrate-$1.log" 2>&1 || die "migrate $1 failed"
}
# A ledger database (the consumer's own): created empty; the consumer applies its schema at start.
create_ledger_db() {
    DBS+=("$1")
    psql -X -q -v ON_ERROR_STOP=1 "$PG_ADMIN_URL" -c "CREATE DATABASE \"$1\"" >/dev/null
}
# copy_ledger_side LEDGER_DB API_DB: the ledger's debit postings and inbox rows as tables in the api's
# database (bench_debits, bench_inbox), so one query can join them with charges and outbox.
copy_ledger_side() {
    sql "$2" "DROP TABLE IF EXISTS bench_debits, bench_inbox;
              CREATE TABLE bench_debits (charge_id text, created_at timestamptz);
              CREATE TABLE bench_inbox (charge_id text, received_at timestamptz)" >/dev/null || return 1
    psql -X -q -v ON_ERROR_STOP=1 "$PG_BASE/$1" \
        -c "COPY (SELECT charge_id, created_at FROM ledger_entries WHERE direction = 'debit') TO STDOUT" \
        | psql -X -q -v ON_ERROR_STOP=1 "$PG_BASE/$2" -c "COPY bench_debits FROM STDIN" || return 1
    psql -X -q -v ON_ERROR_STOP=1 "$PG_BASE/$1" -c "COPY (SELECT charge_id, received_at FROM inbox) TO STDOUT" \
        | psql -X -q -v ON_ERROR_STOP=1 "$PG_BASE/$2" -c "COPY bench_inbox FROM STDIN" || return 1
}
# start NAME CMD...: runs CMD in the background, logging to $TMP/NAME.log; sets PID_NAME.
start() {
    local name=$1; shift
    "$@" >"$TMP/$name.log" 2>&1 &
    PIDS+=($!)
    printf -v "PID_$name" '%s' "$!"
}
# wait_port NAME MSG: the port a process logged in its MSG line (e.g. api_listening), within the deadline.
wait_port() {
    local name=$1 msg=$2 pidvar="PID_$1" port=""
    for _ in $(seq $((START_DEADLINE * 10))); do
        port=$(grep -o "\"msg\":\"$msg\".*\"port\":[0-9]*" "$TMP/$name.log" 2>/dev/null | head -n1 | grep -o '[0-9]*$' || true)
        [[ -n "$port" ]] && { echo "$port"; return 0; }
        kill -0 "${!pidvar}" 2>/dev/null || die "$name exited during start-up"
        sleep 0.1
    done
    die "$name did not log $msg within ${START_DEADLINE}s"
}
wait_http_ok() {  # wait_http_ok URL
    for _ in $(seq $((START_DEADLINE * 10))); do
        curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    die "$1 not ready within ${START_DEADLINE}s"
}
# stop NAME: SIGTERM, then SIGKILL after 10 s.
stop() {
    local pidvar="PID_$1" pid p keep=()
    pid=${!pidvar}
    if kill -TERM "$pid" 2>/dev/null; then
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    for p in "${PIDS[@]}"; do [[ "$p" == "$pid" ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}
# Peak resident set (VmHWM) of a running process, in MiB.
hwm_mib() {
    local pidvar="PID_$1"
    awk '/^VmHWM:/ {printf "%.1f", $2 / 1024}' "/proc/${!pidvar}/status"
}
# CPU seconds (user + system) a process has used so far.
cpu_s() {
    local pidvar="PID_$1"
    awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/${!pidvar}/stat"
}
# Machine-wide "busy idle" jiffies from /proc/stat, for the busy share of all cores over an interval.
cpu_snapshot() { awk '/^cpu / {busy = $2 + $3 + $4 + $7 + $8 + $9; idle = $5 + $6; print busy, idle; exit}' /proc/stat; }
# CPU per unit of work, from /proc, in clock ticks (utime + stime; CLK_TCK per second).
HZ=$(getconf CLK_TCK)
# proc_ticks PID [WITH_CHILDREN]: a live process's ticks (all its threads); with a second argument 1, plus
# cutime + cstime (its children that exited and were waited for). 0 if the process is not visible.
proc_ticks() {
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    s=${s##*) }  # the fields after "pid (comm) ": state is $1, utime $12, stime $13, cutime $14, cstime $15
    awk -v w="${2:-0}" '{print $12 + $13 + (w ? $14 + $15 : 0)}' <<<"$s"
}
# PostgreSQL's processes: the postmaster is the parent of the checkpointer (found through
# pg_stat_activity, so no superuser file access is needed). Empty when PostgreSQL runs elsewhere (no
# /proc entry): the PostgreSQL CPU figures are then n/a.
pg_postmaster() {
    local ck pm
    ck=$(sql "$(basename "$PG_ADMIN_URL")" "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'" 2>/dev/null) || return 0
    pm=$(awk '/^PPid:/ {print $2}' "/proc/$ck/status" 2>/dev/null) || return 0
    [[ -n "$pm" && "$(cat "/proc/$pm/comm" 2>/dev/null)" == postgres* ]] && echo "$pm"
    return 0
}
# pg_ticks: every PostgreSQL process's ticks: the live children of the postmaster (backends, walwriter,
# checkpointer, ...) plus the postmaster's own and its cutime + cstime, where the kernel adds a backend's
# ticks once it has exited and been reaped. The delta over an interval therefore counts backends that
# lived through it, started in it, or ended in it (pgbench's own connections end with its run).
pg_ticks() {
    [[ -n "$PG_PM" ]] || { echo n/a; return; }
    local t=0 c
    for c in $(pgrep -P "$PG_PM"); do t=$((t + $(proc_ticks "$c"))); done
    echo $((t + $(proc_ticks "$PG_PM" 1)))
}
redis_pid() {
    local p
    p=$(rcli INFO server 2>/dev/null | awk -F: '/^process_id/ {print $2}' | tr -d '\r')
    [[ -n "$p" && "$(cat "/proc/$p/comm" 2>/dev/null)" == redis* ]] && echo "$p"
    return 0
}
# redis_ticks: redis-server's ticks plus its reaped children's (background saves). Its pid is read again
# each time: other suites restart Redis (the measurement is then repeated anyway).
redis_ticks() {
    local p
    p=$(redis_pid)
    [[ -n "$p" ]] || { echo n/a; return; }
    proc_ticks "$p" 1
}
# cpu_mark APINAME: "api pg redis" ticks now (api 0 when APINAME is empty).
cpu_mark() {
    local pidvar="PID_$1" api=0
    [[ -n "$1" ]] && api=$(proc_ticks "${!pidvar}")
    echo "$api $(pg_ticks) $(redis_ticks)"
}
# us_per MARK0 MARK1 LOAD_TICKS N: "api pg redis load total" µs of CPU per unit of work (N units) between
# two marks; n/a for a process that could not be seen.
us_per() {
    awk -v a="$1" -v b="$2" -v l="$3" -v n="$4" -v hz="$HZ" 'BEGIN {
        split(a, x, " "); split(b, y, " "); x[4] = 0; y[4] = l; total = 0; out = ""
        for (i = 1; i <= 4; i++) {
            if (x[i] == "n/a" || y[i] == "n/a" || y[i] == "" || n <= 0) { v = "n/a" }
            else { d = (y[i] - x[i]) * 1e6 / hz / n; total += d; v = sprintf("%.0f", d) }
            out = out v " " }
        printf "%s%.0f\n", out, total }'
}
# settled DB: waits (deadline 10 s) until the charge count stops moving: requests a load tool left in flight
# when it stopped still commit. Echoes the count.
settled() {
    local n0 n1 deadline=$((SECONDS + 10))
    n0=$(sql "$1" "SELECT count(*) FROM charges")
    while :; do
        sleep 0.2
        n1=$(sql "$1" "SELECT count(*) FROM charges")
        [[ "$n1" == "$n0" ]] && break
        ((SECONDS < deadline)) || break
        n0=$n1
    done
    echo "$n1"
}
start_api() {  # start_api NAME DB [--no-redis] [FLAGS...]: starts `paypath api` on a free port; sets PORT_NAME
    local name=$1 db=$2 port pre=()
    shift 2
    # --no-redis: the api without its hot tier and SETNX gate (no PAYPATH_REDIS_URL in its environment).
    if [[ "${1:-}" == --no-redis ]]; then pre=(env -u PAYPATH_REDIS_URL); shift; fi
    start "$name" "${pre[@]}" "$PAYPATH" api --pg-url "$PG_BASE/$db" \
        --listen 127.0.0.1:0 --threads "$API_THREADS" --retention-s 3600 --no-migrate "$@"
    port=$(wait_port "$name" api_listening)
    wait_http_ok "http://127.0.0.1:$port/readyz"
    printf -v "PORT_$name" '%s' "$port"
}
# field LINE KEY: the value of key=value in a line of "k=v k=v" output.
field() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k {print $2; exit}'; }
# p50 and p99 (nearest rank) of the numbers on stdin, divided by DIV.
percentiles() {
    sort -n | awk -v div="${1:-1}" '{a[NR] = $1} END {
        if (NR == 0) { print "0 0"; exit }
        i50 = int(0.50 * (NR - 1) + 0.5) + 1; i99 = int(0.99 * (NR - 1) + 0.5) + 1
        printf "%.3f %.3f\n", a[i50] / div, a[i99] / div }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
verdict() {  # verdict VALUE OP LIMIT -> met/MISSED
    awk -v v="$1" -v l="$3" -v op="$2" 'BEGIN {
        ok = (op == ">=") ? (v >= l) : (v < l); if (v == "n/a") ok = 0; print ok ? "met" : "**missed**" }'
}
metric() {  # metric URL NAME_WITH_LABELS: the value of one series in a /metrics page
    curl -fsS --max-time 5 "$1" | awk -v n="$2" '$1 == n {print $2; exit}'
}
# histogram_quantile NAME Q [LABEL] [SCALE] [LOW]: quantile Q of a Prometheus histogram from its cumulative
# buckets, interpolating linearly within the bucket (as histogram_quantile does), times SCALE (default
# 1000: seconds to ms), one decimal. LABEL (e.g. phase="claim") selects one series; LOW is the lower edge of
# the first bucket (default 0; 1 for batch sizes, which are never below 1). Reads the /metrics page (or a
# metrics_delta page) on stdin.
histogram_quantile() {
    awk -v name="$1" -v q="$2" -v label="${3:-}" -v scale="${4:-1000}" -v low="${5:-0}" '
        index($1, name "_bucket{") == 1 && index($1, label) > 0 {
            match($1, /le="[^"]*"/); le = substr($1, RSTART + 4, RLENGTH - 5)
            n++; les[n] = (le == "+Inf") ? 1e30 : le + 0; cum[n] = $2 + 0 }
        END {
            if (n == 0 || cum[n] == 0) { print "n/a"; exit }
            rank = q * cum[n]; prev_le = low; prev = 0
            for (i = 1; i <= n; i++) {
                if (cum[i] >= rank) {
                    if (les[i] >= 1e30) { printf "%.1f\n", prev_le * scale; exit }
                    v = prev_le + (les[i] - prev_le) * ((cum[i] > prev) ? (rank - prev) / (cum[i] - prev) : 1)
                    printf "%.1f\n", v * scale; exit }
                prev_le = les[i]; prev = cum[i] }
        }'
}
# metrics_delta BEFORE AFTER: the AFTER /metrics page with every series' value minus its BEFORE value (the
# counts a histogram gained between two scrapes).
metrics_delta() {
    awk 'NR == FNR { if ($1 !~ /^#/) b[$1] = $2; next } $1 ~ /^#/ { next } { print $1, $2 - b[$1] }' "$1" "$2"
}
# hist_mean NAME LABELS SCALE: sum / count of one histogram series on a (delta) page on stdin.
hist_mean() {
    awk -v s="$1_sum$2" -v c="$1_count$2" -v scale="$3" '$1 == s {sum = $2} $1 == c {n = $2}
        END { if (n > 0) printf "%.1f\n", sum / n * scale; else print "n/a" }'
}
# batch_stats BEFORE AFTER: per phase (claim, complete): "batches mean p50 p99" of the batch sizes, then
# "mean p50 p99" of the queue waits in µs: 14 fields.
batch_stats() {
    local d=$TMP/metrics_delta.txt ph out=""
    metrics_delta "$1" "$2" >"$d"
    for ph in claim complete; do
        out+="$(awk -v c="paypath_group_commit_batch_size_count{phase=\"$ph\"}" '$1 == c {n = $2} END {printf "%d", n}' "$d") "
        out+="$(hist_mean paypath_group_commit_batch_size "{phase=\"$ph\"}" 1 <"$d") "
        out+="$(histogram_quantile paypath_group_commit_batch_size 0.5 "phase=\"$ph\"" 1 1 <"$d") "
        out+="$(histogram_quantile paypath_group_commit_batch_size 0.99 "phase=\"$ph\"" 1 1 <"$d") "
    done
    for ph in claim complete; do
        out+="$(hist_mean paypath_group_commit_wait_seconds "{phase=\"$ph\"}" 1e6 <"$d") "
        out+="$(histogram_quantile paypath_group_commit_wait_seconds 0.5 "phase=\"$ph\"" 1e6 <"$d") "
        out+="$(histogram_quantile paypath_group_commit_wait_seconds 0.99 "phase=\"$ph\"" 1e6 <"$d") "
    done
    echo "$out"
}
checkpoint() { psql -X -q "$PG_ADMIN_URL" -c CHECKPOINT >/dev/null 2>&1 || true; }

# wrk_run NAME CONNS SCRIPT URL: closed loop for DUR seconds; echoes the script's BENCH line. Non-zero
# (the measurement is invalid) if wrk failed or any request got an error or a non-2xx answer.
wrk_run() {
    local name=$1 conns=$2 script=$3 url=$4 threads=2 line errs
    ((conns < threads)) && threads=$conns
    # In a subshell of its own, which then reads its children's CPU (cutime + cstime): wrk's, in
    # $TMP/NAME.ticks.
    (
        me=$BASHPID
        BENCH_DIR=$BENCH_DIR BENCH_API_KEY=$API_KEY wrk -t"$threads" -c"$conns" -d"${DUR}s" --timeout 10s \
            -s "$BENCH_DIR/$script" "$url" >"$TMP/$name.out" 2>&1
        rc=$?
        proc_ticks "$me" 1 >"$TMP/$name.ticks"
        exit $rc
    ) || { log "wrk $name failed: $(tail -n 2 "$TMP/$name.out")"; return 1; }
    line=$(grep '^BENCH ' "$TMP/$name.out") || { log "wrk $name printed no BENCH line"; return 1; }
    errs=$(( $(field "$line" non2xx) + $(field "$line" connect_err) + $(field "$line" read_err) + $(field "$line" write_err) + $(field "$line" timeouts) ))
    ((errs == 0)) || { log "wrk $name: $errs failed requests"; return 1; }
    echo "$line"
}
# pgbench_run NAME DB SCRIPT CLIENTS: echoes "tps p50_ms p99_ms" (percentiles from the per-transaction log).
# Non-zero if pgbench failed or any transaction failed.
pgbench_run() {
    local name=$1 db=$2 script=$3 clients=$4 threads=2 tps failed pct
    ((clients < threads)) && threads=$clients
    rm -f "$TMP"/pgb_"$name".*
    # pgbench's own CPU goes to $TMP/NAME.ticks, as wrk_run does for wrk.
    (
        me=$BASHPID
        cd "$TMP" && "$PGBENCH" -n -M prepared -c "$clients" -j "$threads" -T "$DUR" -f "$BENCH_DIR/$script" \
            -l --log-prefix="pgb_$name" "$PG_BASE/$db"
        rc=$?
        proc_ticks "$me" 1 >"$TMP/$name.ticks"
        exit $rc
    ) >"$TMP/$name.out" 2>&1 \
        || { log "pgbench $name failed: $(grep -m2 -i error "$TMP/$name.out")"; return 1; }
    tps=$(awk '/^tps = / {print $3; exit}' "$TMP/$name.out")
    failed=$(awk '/number of failed transactions:/ {print $5; exit}' "$TMP/$name.out")
    [[ "${failed:-0}" == 0 ]] || { log "pgbench $name: $failed failed transactions"; return 1; }
    pct=$(cat "$TMP"/pgb_"$name".* | awk '{print $3}' | percentiles 1000)
    rm -f "$TMP"/pgb_"$name".*
    printf '%.1f %s\n' "$tps" "$pct"
}

# --- interruptions ---------------------------------------------------------------------------------------
# Other suites stop and restart these servers to test outages (scripts/stack stop|start). A measurement
# during which a server went away is worthless, so each one is checked and repeated.
AMQP_HOSTPORT=${PAYPATH_RELAY_AMQP_URL#*@}
AMQP_HOSTPORT=${AMQP_HOSTPORT%%/*}
INTERRUPTIONS=0
pg_up() { psql -X -q -At "$PG_ADMIN_URL" -c "SELECT 1" >/dev/null 2>&1; }
redis_up() { [[ "$(rcli ping 2>/dev/null)" == PONG ]]; }
amqp_up() { (exec 3<>"/dev/tcp/${AMQP_HOSTPORT%:*}/${AMQP_HOSTPORT##*:}") 2>/dev/null; }
# Changes whenever PostgreSQL or Redis restarts (RabbitMQ restarts show up as reconnects in the logs).
stack_fp() {
    printf '%s/%s' "$(psql -X -q -At "$PG_ADMIN_URL" -c 'SELECT pg_postmaster_start_time()' 2>/dev/null || echo down)" \
        "$(rcli INFO server 2>/dev/null | awk -F: '/^run_id/ {print $2}' | tr -d '\r')"
}
wait_stack() {
    local deadline=$((SECONDS + 300)) said=0
    until pg_up && redis_up && amqp_up; do
        ((said)) || { log "waiting for the servers to come back (another suite's outage test?)"; said=1; }
        ((SECONDS < deadline)) || die "servers still down after 300 s"
        sleep 1
    done
    ((said)) && sleep 3  # let the restarted server settle (RabbitMQ accepts TCP before it serves)
    return 0
}
# measure WHAT FUNCTION ARGS...: runs FUNCTION (non-zero = its measurement is invalid) with every server
# up; repeats it, up to 4 attempts, when it failed or a server restarted meanwhile.
measure() {
    local what=$1 try fp0; shift
    for try in 1 2 3 4; do
        wait_stack
        fp0=$(stack_fp)
        if "$@" && [[ "$(stack_fp)" == "$fp0" ]] && pg_up && redis_up && amqp_up; then return 0; fi
        INTERRUPTIONS=$((INTERRUPTIONS + 1))
        log "$what: invalid (errors, or a server went away meanwhile); repeating ($try/4)"
        sleep 2
    done
    die "$what: no valid measurement in 4 attempts"
}
# Log lines that mean a worker lost a server during a measurement.
# Prints how many; logs the first.
TROUBLE='"msg":"(relay_batch_failed|relay_broker_lost|consumer_batch_failed|claim_failed|charge_failed)"'
worker_trouble() {
    local first
    first=$(grep -hE -m1 "$TROUBLE" "$@" 2>/dev/null | head -n1 || true)
    [[ -z "$first" ]] || log "worker trouble: ${first:0:300}"
    grep -cE "$TROUBLE" "$@" 2>/dev/null | awk -F: '{s += $NF} END {print s + 0}'
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
STARTED=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
T0=$SECONDS
log "run $ID ($( ((SMOKE)) && echo smoke || echo full)), report -> $OUT"

# ======================================================================================================
# 0. Micro-benchmarks (first, while nothing else of ours is running).
log "micro-benchmarks"
"$MICRO" --benchmark_min_time="$MICRO_MIN_TIME" --benchmark_format=console >"$TMP/micro.out" 2>"$TMP/micro.err" \
    || die "pp_micro_bench failed: $(tail -n 3 "$TMP/micro.err")"
MICRO_TABLE=$(awk '/^Benchmark/ {on = 1} on && NF' "$TMP/micro.out" | grep -v '^---')

# ======================================================================================================
# 1. New charges: pgbench (the service's charge SQL in ONE transaction: the best one commit per request can
# do) vs paypath over HTTP (group commit), same concurrency, same database.
wait_stack
create_db "$DB_CH"
start_api api "$DB_CH"
API_URL=http://127.0.0.1:$PORT_api
PG_PM=$(pg_postmaster)
[[ -n "$PG_PM" ]] || log "PostgreSQL's processes are not visible in /proc: its CPU figures will be n/a"
[[ -n "$(redis_pid)" ]] || log "Redis' process is not visible in /proc: its CPU figures will be n/a"
# CH_*: "rate p50 p99"; CPU_*: "api pg redis load total" µs per charge committed (us_per); BATCH: batch_stats.
declare -A CH_PGB CH_PP RP_HZ RP_PP RP_HITS CPU_PGB CPU_PP BATCH
m_charges_pgbench() {
    local n0 n1 m0 m1 r
    checkpoint
    n0=$(settled "$DB_CH"); m0=$(cpu_mark "")
    r=$(pgbench_run "charges_c$1" "$DB_CH" charge_one_tx.sql "$1") || return 1
    n1=$(settled "$DB_CH"); m1=$(cpu_mark "")
    CH_PGB[$1]=$r
    # Every pgbench transaction commits one charge; the api and Redis take no part (their columns: n/a).
    CPU_PGB[$1]=$(us_per "$m0" "$m1" "$(cat "$TMP/charges_c$1.ticks")" $((n1 - n0)) | awk '{$1 = "n/a"; $3 = "n/a"; $5 = ($2 == "n/a") ? "n/a" : $2 + $4; print}')
}
# m_charges_api API URL NAME CONNS: wrk with fresh keys against one api; sets LAST_CH ("rate p50 p99"),
# LAST_CPU (us_per over the charges the database gained) and LAST_BATCH (batch_stats from its /metrics).
m_charges_api() {
    local api=$1 url=$2 name=$3 conns=$4 line n0 n1 m0 m1
    checkpoint
    curl -fsS --max-time 5 "$url/metrics" >"$TMP/$name.metrics0" || return 1
    n0=$(settled "$DB_CH"); m0=$(cpu_mark "$api")
    line=$(BENCH_NONCE="$name-$RANDOM-$ID" wrk_run "$name" "$conns" charge_new.lua "$url") || return 1
    n1=$(settled "$DB_CH"); m1=$(cpu_mark "$api")
    curl -fsS --max-time 5 "$url/metrics" >"$TMP/$name.metrics1" || return 1
    # Every request wrk counted got a 201 (wrk_run checks), so the database gained at least that many.
    (( n1 - n0 >= $(field "$line" requests) )) || { log "$name: $((n1 - n0)) charges committed for $(field "$line" requests) requests"; return 1; }
    LAST_CH="$(field "$line" rps) $(field "$line" p50_ms) $(field "$line" p99_ms)"
    LAST_CPU=$(us_per "$m0" "$m1" "$(cat "$TMP/$name.ticks")" $((n1 - n0)))
    LAST_BATCH=$(batch_stats "$TMP/$name.metrics0" "$TMP/$name.metrics1")
}
m_charges_paypath() {
    m_charges_api api "$API_URL" "new_c$1" "$1" || return 1
    CH_PP[$1]=$LAST_CH; CPU_PP[$1]=$LAST_CPU; BATCH[$1]=$LAST_BATCH
}
# Before and after group commit, in the same minute: the same api with --no-group-commit (one statement or
# transaction per claim and per completion, the path kept for comparison), its own process, same database.
m_charges_nogc() {
    m_charges_api api_nogc "http://127.0.0.1:$PORT_api_nogc" "nogc_c$1" "$1" || return 1
    CH_NOGC=$LAST_CH; CPU_NOGC=$LAST_CPU
}
for c in $CONCS; do
    log "new charges, $c clients: pgbench"
    measure "pgbench charges, $c clients" m_charges_pgbench "$c"
    log "new charges, $c clients: paypath (wrk)"
    measure "paypath charges, $c clients" m_charges_paypath "$c"
done
log "new charges, $NOGC_CONC clients: paypath --no-group-commit (wrk)"
start_api api_nogc "$DB_CH" --no-group-commit
measure "paypath --no-group-commit charges, $NOGC_CONC clients" m_charges_nogc "$NOGC_CONC"
stop api_nogc

# ======================================================================================================
# 2. Replays (Redis hot tier) vs /healthz on the same api process.
log "replays: seeding $REPLAY_KEYS completed keys"
m_seed() {
    "$LOAD" seed --url "$API_URL" --api-key "$API_KEY" --prefix "rp-$ID" --count "$REPLAY_KEYS" --workers 8 >"$TMP/seed.out" 2>&1
}
measure "seeding replay keys" m_seed
m_healthz() {
    local line
    line=$(wrk_run "healthz_c$1" "$1" healthz.lua "$API_URL") || return 1
    RP_HZ[$1]="$(field "$line" rps) $(field "$line" p50_ms) $(field "$line" p99_ms)"
}
# Valid only if every replay was a hot-tier hit: after a Redis flush or restart (other suites do both)
# replays fall through to PostgreSQL and would measure something else.
m_replay() {
    local line h0 h1 n
    h0=$(metric "$API_URL/metrics" 'paypath_idempotency_cache_total{result="hit"}')
    line=$(BENCH_REPLAY_PREFIX="rp-$ID" BENCH_REPLAY_KEYS=$REPLAY_KEYS wrk_run "replay_c$1" "$1" charge_replay.lua "$API_URL") || return 1
    h1=$(metric "$API_URL/metrics" 'paypath_idempotency_cache_total{result="hit"}')
    n=$(field "$line" requests)
    # wrk counts only completed requests; a few more may have been answered as it stopped.
    ((${h1%.*} - ${h0%.*} >= n)) || { log "replays: $((${h1%.*} - ${h0%.*})) hot-tier hits for $n requests"; return 1; }
    RP_PP[$1]="$(field "$line" rps) $(field "$line" p50_ms) $(field "$line" p99_ms)"
}
# wait_drained NAME DB SQL: polls SQL (rows done so far) until it reaches $BACKLOG, while worker NAME
# (started with `start`) stays alive; stops the worker and fails after $DRAIN_DEADLINE seconds.
wait_drained() {
    local name=$1 db=$2 query=$3 done_n deadline=$((SECONDS + DRAIN_DEADLINE)) pid_var="PID_$1"
    while :; do
        # The consumer applies the ledger's schema as it starts: until then its tables do not exist yet.
        done_n=$(sql "$db" "$query" 2>/dev/null) || done_n=0
        ((done_n >= BACKLOG)) && return 0
        ((SECONDS < deadline)) || { log "$name did $done_n of $BACKLOG after ${DRAIN_DEADLINE}s"; stop "$name"; return 1; }
        kill -0 "${!pid_var}" 2>/dev/null || { log "$name exited"; return 1; }
        sleep 0.1
    done
}

# batch_span_rate DB TABLE COLUMN: rows per second from a batch timestamp column. COLUMN = now() is the
# start of each batch's transaction, so between the first and the last batch's start every batch but the
# last one ran: (all rows - the last batch) over that span. Start-up is excluded.
batch_span_rate() {
    local db=$1 table=$2 col=$3
    sql "$db" "
      WITH b AS (SELECT $col, count(*) AS n FROM $table GROUP BY $col)
      SELECT round(((SELECT sum(n) FROM b) - (SELECT n FROM b ORDER BY $col DESC LIMIT 1))
             / NULLIF(extract(epoch FROM max($col) - min($col)), 0), 1) FROM b"
}

for c in $CONCS; do
    log "replays, $c connections: /healthz"
    measure "/healthz, $c connections" m_healthz "$c"
    log "replays, $c connections: replay"
    if ! m_replay "$c"; then
        # Redis lost the keys (flushed or restarted under us): replaying them once through PostgreSQL
        # refills the hot tier, then measure again.
        measure "re-seeding replay keys" m_seed
        measure "replays, $c connections" m_replay "$c"
    fi
done
# ======================================================================================================
# 2b. Duplicate storm: STORM_N concurrent requests with ONE key, against the api above (Redis SETNX gate
# on) and against one without Redis, counting the PostgreSQL statements each caused (pg_stat_statements,
# which the stack preloads with track = all: statements inside functions count too, and so do BEGIN and
# COMMIT). A lone request with a fresh key is counted the same way, for what one charge costs by itself.
# The counters are reset for the bench's database only (other suites may count their own).
sql "$DB_CH" "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null || die "CREATE EXTENSION pg_stat_statements failed"
# The view errors unless the server preloads the library (a stack started before it did: down, then up).
sql "$DB_CH" "SELECT count(*) FROM pg_stat_statements" >/dev/null 2>&1 \
    || die "PostgreSQL does not preload pg_stat_statements (scripts/stack down, then up, starts it with it)"
PSS_DB="(SELECT oid FROM pg_database WHERE datname = current_database())"
pss_reset() { sql "$DB_CH" "SELECT pg_stat_statements_reset(0, $PSS_DB, 0)" >/dev/null; }
# pss_count FILE: the statements run in the bench database since the reset (the bench's own queries on
# pg_stat_statements excluded); the per-statement breakdown goes to FILE.
pss_count() {
    sql "$DB_CH" "SELECT calls || ' ' || regexp_replace(left(query, 70), '\s+', ' ', 'g') FROM pg_stat_statements
                  WHERE dbid = $PSS_DB AND query NOT ILIKE '%pg_stat_statements%' ORDER BY calls DESC" >"$1"
    awk '{n += $1} END {print n + 0}' "$1"
}
# m_storm API URL TAG: sets STORM_<TAG> ("statements created replayed 409s other failed charges").
m_storm() {
    local api=$1 url=$2 tag=$3 key="storm-$3-$RANDOM-$ID" line stmts charges
    pss_reset || return 1
    line=$("$LOAD" storm --url "$url" --api-key "$API_KEY" --prefix "$key" --count "$STORM_N" 2>&1) \
        || { log "storm $tag: $line"; return 1; }
    stmts=$(pss_count "$TMP/storm_$tag.pss") || return 1
    charges=$(sql "$DB_CH" "SELECT count(*) FROM charges WHERE idem_key = '$key'")
    ((charges == 1 && $(field "$line" created) == 1)) || { log "storm $tag: $charges charges, $line"; return 1; }
    printf -v "STORM_$tag" '%s' "$stmts $(field "$line" created) $(field "$line" replayed) $(field "$line" status_409) $(field "$line" other) $(field "$line" failed) $charges"
}
m_lone() {
    local line
    pss_reset || return 1
    line=$("$LOAD" storm --url "$API_URL" --api-key "$API_KEY" --prefix "lone-$RANDOM-$ID" --count 1 2>&1) \
        || { log "lone charge: $line"; return 1; }
    ((  $(field "$line" created) == 1 )) || { log "lone charge: $line"; return 1; }
    STORM_LONE=$(pss_count "$TMP/storm_lone.pss")
}
log "duplicate storm: $STORM_N requests with one key, Redis gate on"
measure "one lone charge" m_lone
measure "duplicate storm, Redis on" m_storm api "$API_URL" REDIS
log "duplicate storm: $STORM_N requests with one key, no Redis"
start_api api_noredis "$DB_CH" --no-redis
measure "duplicate storm, no Redis" m_storm api_noredis "http://127.0.0.1:$PORT_api_noredis" NOREDIS
stop api_noredis

RSS_API=$(hwm_mib api)
stop api

# ======================================================================================================
# 3 + 4. Relay and consumer. Each attempt uses a fresh database and queue, so an interrupted attempt
# leaves nothing behind for the next.
m_relay_consumer() {
    local attempt=$1 db=${DB_MQ}_$1 ldb=${DB_MQ}_$1_ledger q=${Q_RELAY}_$1 qp=${Q_PLAIN}_$1 deadline left done_n line t0 depth
    create_db "$db"
    create_ledger_db "$ldb"
    QUEUES+=("$q" "$qp")
    log "relay: seeding $BACKLOG outbox rows"
    # Rows shaped like the api's (outbox::Append with the payload of events::EncodePayload, version 1): one
    # tenant, 1,000 customer accounts.
    sql "$db" "
      INSERT INTO outbox (message_id, tenant, aggregate_id, event_type, payload)
      SELECT m, 'tenant_a', 'ch_seed_' || i, 'charge.succeeded',
             jsonb_build_object('type', 'charge.succeeded', 'version', 1, 'message_id', m,
                                'charge_id', 'ch_seed_' || i, 'tenant', 'tenant_a', 'account_id', 'acct_' || (i % 1000),
                                'amount', 2500, 'currency', 'EUR',
                                'created_at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))
      FROM (SELECT gen_random_uuid() AS m, i FROM generate_series(1, $BACKLOG) AS i) s" >/dev/null || return 1
    sql "$db" "VACUUM ANALYZE outbox" >/dev/null || return 1

    log "relay: plain publisher-confirms loop ($BACKLOG messages, window $RELAY_WINDOW)"
    "$PAYPATH" broker declare --queue "$q" --queue "$qp" >/dev/null || return 1
    line=$("$MQ" publish --queue "$qp" --count "$BACKLOG" --window "$RELAY_WINDOW" 2>"$TMP/plain.err") \
        || { log "plain publisher failed: $(cat "$TMP/plain.err")"; return 1; }
    PLAIN_RATE=$(field "$line" rate)
    "$PAYPATH" broker delete --queue "$qp" >/dev/null 2>&1 || true

    log "relay: paypath relay, rate limit off"
    t0=$(date +%s.%N)
    start relay "$PAYPATH" relay --pg-url "$PG_BASE/$db" --queue "$q" \
        --rate 1e9 --burst 1e9 --batch "$RELAY_WINDOW" --metrics-listen 127.0.0.1:0
    wait_drained relay "$db" "SELECT $BACKLOG - count(*) FROM outbox WHERE published_at IS NULL" || return 1
    RELAY_WALL=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
    RELAY_RATE=$(batch_span_rate "$db" outbox published_at)
    RSS_RELAY=$(hwm_mib relay)
    stop relay
    (($(worker_trouble "$TMP/relay.log") == 0)) || { log "the relay lost a server during the drain"; return 1; }

    depth=$("$MQ" depth --queue "$q") || return 1
    ((depth >= BACKLOG)) || { log "queue $q holds $depth messages, expected $BACKLOG"; return 1; }
    log "consumer: draining $depth queued events"
    t0=$(date +%s.%N)
    start consumer "$PAYPATH" consumer --ledger-pg-url "$PG_BASE/$ldb" --queue "$q" \
        --metrics-listen 127.0.0.1:0
    wait_drained consumer "$ldb" "SELECT count(*) FROM inbox" || return 1
    CONS_WALL=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
    CONS_RATE=$(batch_span_rate "$ldb" inbox received_at)
    CONS_BATCH=$(sql "$ldb" "SELECT round(avg(n), 1) FROM (SELECT count(*) AS n FROM inbox GROUP BY received_at) s")
    RSS_CONSUMER=$(hwm_mib consumer)
    stop consumer
    "$PAYPATH" broker delete --queue "$q" >/dev/null 2>&1 || true
    (($(worker_trouble "$TMP/consumer.log") == 0)) || { log "the consumer lost a server during the drain"; return 1; }
    MQ_DB=$db
    MQ_LEDGER_DB=$ldb
}
MQ_ATTEMPT=0
m_relay_consumer_next() { MQ_ATTEMPT=$((MQ_ATTEMPT + 1)); m_relay_consumer "$MQ_ATTEMPT"; }
measure "relay and consumer" m_relay_consumer_next

m_consumer_pgbench() {
    local r
    checkpoint
    r=$(pgbench_run "consumer_c$1" "$MQ_LEDGER_DB" consumer_apply.sql "$1") || return 1
    printf -v "CONS_PGB$1" '%s' "$r"
}
log "consumer: pgbench with the apply SQL, 1 client (the consumer's one connection)"
measure "pgbench consumer, 1 client" m_consumer_pgbench 1
log "consumer: pgbench with the apply SQL, 8 clients"
measure "pgbench consumer, 8 clients" m_consumer_pgbench 8
CONS_PGB_BEST=$(awk -v a="${CONS_PGB1%% *}" -v b="${CONS_PGB8%% *}" 'BEGIN { print (a > b) ? a : b }')

# The relay's database work alone (context for the relay figure, not a target): its claim + mark + COMMIT
# per batch, one client, over the same backlog made unpublished again.
m_relay_sql() {
    local r
    sql "$MQ_DB" "UPDATE outbox SET published_at = NULL" >/dev/null || return 1
    sql "$MQ_DB" "VACUUM ANALYZE outbox" >/dev/null || return 1
    checkpoint
    (cd "$TMP" && "$PGBENCH" -n -M prepared -c 1 -j 1 -t $((BACKLOG / RELAY_WINDOW)) -D batch="$RELAY_WINDOW" \
        -f "$BENCH_DIR/relay_sql.sql" "$PG_BASE/$MQ_DB") >"$TMP/relay_sql.out" 2>&1 \
        || { log "pgbench relay SQL failed: $(grep -m2 -i error "$TMP/relay_sql.out")"; return 1; }
    r=$(awk '/^tps = / {print $3; exit}' "$TMP/relay_sql.out")
    RELAY_SQL_RATE=$(awk -v t="$r" -v b="$RELAY_WINDOW" 'BEGIN { printf "%.1f", t * b }')
    left=$(sql "$MQ_DB" "SELECT count(*) FROM outbox WHERE published_at IS NULL")
    ((left == 0)) || { log "relay SQL left $left rows unpublished"; return 1; }
}
log "relay: pgbench with the relay's SQL alone (claim + mark, batches of $RELAY_WINDOW, 1 client)"
measure "pgbench relay SQL" m_relay_sql
# If the relay's database and broker halves run one after the other (they do: PublishBatch waits for
# the confirms, then marks and commits), its rate is 1 / (1/db + 1/broker).
RELAY_SERIAL=$(awk -v a="$RELAY_SQL_RATE" -v b="$PLAIN_RATE" 'BEGIN { if (a > 0 && b > 0) printf "%.1f", 1 / (1 / a + 1 / b); else print "n/a" }')

# ======================================================================================================
# 5. End to end at a fixed offered load: api -> outbox -> relay -> RabbitMQ -> consumer -> ledger.
m_e2e() {
    # The relay's --rate is twice the offered load, so the token bucket is not what is measured.
    local attempt=$1 rate=$2 relay_rate=$(($2 * 2)) db=${DB_E2E}_$1 ldb=${DB_E2E}_$1_ledger q=${Q_E2E}_$1 cons_mport
    local charges applied deadline snap0 snap1 api0 relay0 cons0
    create_db "$db"
    create_ledger_db "$ldb"
    QUEUES+=("$q")
    "$PAYPATH" broker declare --queue "$q" >/dev/null || return 1
    start_api e2e_api "$db"
    start e2e_relay "$PAYPATH" relay --pg-url "$PG_BASE/$db" --queue "$q" \
        --rate "$relay_rate" --burst "$relay_rate" --metrics-listen 127.0.0.1:0
    start e2e_consumer "$PAYPATH" consumer --ledger-pg-url "$PG_BASE/$ldb" --queue "$q" \
        --metrics-listen 127.0.0.1:0
    wait_port e2e_relay metrics_listening >/dev/null
    cons_mport=$(wait_port e2e_consumer metrics_listening)
    for _ in $(seq $((START_DEADLINE * 10))); do
        grep -q consumer_connected "$TMP/e2e_consumer.log" && grep -q relay_connected "$TMP/e2e_relay.log" && break
        sleep 0.1
    done
    log "end to end: $rate charges/s for ${E2E_DUR}s (open loop)"
    snap0=$(cpu_snapshot); api0=$(cpu_s e2e_api); relay0=$(cpu_s e2e_relay); cons0=$(cpu_s e2e_consumer)
    E2E_LINE=$("$LOAD" open --url "http://127.0.0.1:$PORT_e2e_api" --api-key "$API_KEY" --prefix "e2e-$attempt-$ID" \
        --rate "$rate" --duration "$E2E_DUR" --workers 64 2>&1)
    local load_rc=$?
    snap1=$(cpu_snapshot)
    # Where the CPU went during the load: the whole machine (all cores), and paypath's three processes.
    E2E_CPU=$(awk -v a="$snap0" -v b="$snap1" -v n="$(nproc)" 'BEGIN { split(a, x, " "); split(b, y, " ");
        busy = y[1] - x[1]; idle = y[2] - x[2]; printf "%.0f%% of %d cores busy", 100 * busy / (busy + idle), n }')
    E2E_CPU_PROCS=$(awk -v a="$(cpu_s e2e_api)" -v a0="$api0" -v r="$(cpu_s e2e_relay)" -v r0="$relay0" \
        -v c="$(cpu_s e2e_consumer)" -v c0="$cons0" -v d="$E2E_DUR" 'BEGIN {
        printf "api %.0f%%, relay %.0f%%, consumer %.0f%% of one core", 100 * (a - a0) / d, 100 * (r - r0) / d, 100 * (c - c0) / d }')
    charges=$(sql "$db" "SELECT count(*) FROM charges")
    deadline=$((SECONDS + 60))
    while :; do
        applied=$(sql "$ldb" "SELECT count(*) FROM inbox") || break
        ((applied >= charges)) && break
        ((SECONDS < deadline)) || { log "end to end: $applied of $charges charges applied 60 s after the load stopped"; break; }
        sleep 0.2
    done
    # The ledger's side, copied next to the charges so the two can be joined.
    copy_ledger_side "$ldb" "$db" || return 1
    # Commit-to-apply from the database: charges.created_at (the api's clock just before its COMMIT) to the
    # debit posting's created_at (the consumer transaction's start). The first second is warm-up.
    read -r E2E_DB_P50 E2E_DB_P99 E2E_DB_MAX E2E_DB_N < <(sql "$db" "
      SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY d)::numeric, 1),
             round(percentile_cont(0.99) WITHIN GROUP (ORDER BY d)::numeric, 1), round(max(d)::numeric, 1), count(*)
      FROM (SELECT extract(epoch FROM l.created_at - c.created_at) * 1000 AS d
            FROM charges c JOIN bench_debits l ON l.charge_id = c.id
            WHERE c.created_at >= (SELECT min(created_at) FROM charges) + interval '1 second') s" | tr '|' ' ')
    # Where the time goes, per charge: api transaction start -> relay claim (outbox.created_at is the api
    # transaction's start, published_at the relay transaction's start: the api's commit plus the relay's
    # idle poll), then relay claim -> consumer transaction start (publish, confirms, the relay's mark and
    # COMMIT, delivery, the consumer's wait for a batch).
    read -r E2E_R_P50 E2E_R_P99 E2E_C_P50 E2E_C_P99 < <(sql "$db" "
      SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY r)::numeric, 1),
             round(percentile_cont(0.99) WITHIN GROUP (ORDER BY r)::numeric, 1),
             round(percentile_cont(0.5) WITHIN GROUP (ORDER BY b)::numeric, 1),
             round(percentile_cont(0.99) WITHIN GROUP (ORDER BY b)::numeric, 1)
      FROM (SELECT extract(epoch FROM o.published_at - o.created_at) * 1000 AS r,
                   extract(epoch FROM i.received_at - o.published_at) * 1000 AS b
            FROM outbox o JOIN bench_inbox i ON i.charge_id = o.aggregate_id
            WHERE o.created_at >= (SELECT min(created_at) FROM outbox) + interval '1 second') s" | tr '|' ' ')
    # The consumer's own histogram (charge created_at to after the ledger COMMIT), all charges, interpolated.
    curl -fsS --max-time 5 "http://127.0.0.1:$cons_mport/metrics" >"$TMP/e2e_consumer.metrics" || true
    E2E_H_P50=$(histogram_quantile paypath_ledger_apply_delay_seconds 0.5 <"$TMP/e2e_consumer.metrics")
    E2E_H_P99=$(histogram_quantile paypath_ledger_apply_delay_seconds 0.99 <"$TMP/e2e_consumer.metrics")
    E2E_BATCH=$(sql "$db" "SELECT round(avg(n), 1) FROM (SELECT count(*) AS n FROM outbox GROUP BY published_at) s")
    RSS_E2E_API=$(hwm_mib e2e_api)
    RSS_E2E_RELAY=$(hwm_mib e2e_relay)
    RSS_E2E_CONSUMER=$(hwm_mib e2e_consumer)
    stop e2e_api
    stop e2e_relay
    stop e2e_consumer
    "$PAYPATH" broker delete --queue "$q" >/dev/null 2>&1 || true
    ((load_rc == 0)) || { log "open-loop load saw errors: $E2E_LINE"; return 1; }
    ((applied >= charges)) || return 1
    (($(worker_trouble "$TMP/e2e_api.log" "$TMP/e2e_relay.log" "$TMP/e2e_consumer.log") == 0)) \
        || { log "a worker lost a server during the end-to-end run"; return 1; }
    [[ -n "$E2E_DB_P99" ]]
}
E2E_ATTEMPT=0
m_e2e_next() { E2E_ATTEMPT=$((E2E_ATTEMPT + 1)); m_e2e "$E2E_ATTEMPT" "$1"; }
# First below saturation (what the pipeline's own design costs), then the target load.
measure "end to end at $E2E_LOW_RATE/s" m_e2e_next "$E2E_LOW_RATE"
for v in LINE DB_P50 DB_P99 DB_MAX DB_N R_P50 R_P99 C_P50 C_P99 H_P50 H_P99 BATCH CPU CPU_PROCS; do
    n=E2E_$v
    printf -v "E2E_LOW_$v" '%s' "${!n}"
done
measure "end to end at $E2E_RATE/s" m_e2e_next "$E2E_RATE"

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$((SECONDS - T0))
log "measured in ${ELAPSED}s; writing $OUT"

# ======================================================================================================
# Report.
col() { echo "$1" | awk -v i="$2" '{print $i}'; }
{
    echo "# paypath benchmark results"
    echo
    if ((SMOKE)); then
        echo "**SMOKE RUN** (\`bench/run.sh --smoke\`): a few seconds per figure to check the benchmark runs."
        echo "These figures are not measurements; see bench/results.md for a full run."
        echo
    fi
    echo "Written by \`make bench\` (bench/run.sh) on $STARTED in ${ELAPSED} s. Each ratio compares paypath"
    echo "with the limit measured minutes earlier or later in the same run, on the same machine and servers."
    echo "The machine has $(nproc) cores shared by the load generator, paypath, PostgreSQL, Redis and RabbitMQ"
    echo "(and by other engineers' test runs): figures move by 10-20% between runs; ratios less."
    echo "Load average (1/5/15 min) at start: $LOAD_START; at end: $LOAD_END. Every measurement is checked"
    echo "(no failed request or transaction, no server restarted under it: other suites run outage tests on the"
    echo "same servers) and repeated if not; $INTERRUPTIONS measurement(s) were repeated in this run."
    echo
    echo "## Summary"
    echo
    echo "| figure | paypath | limit | ratio | target | verdict |"
    echo "|---|---|---|---|---|---|"
    # Issue 11's targets apply at 32 and 64 clients (new charges) and 64 connections (replays); the other
    # concurrencies are shown for the trend.
    for c in $CONCS; do
        r=$(ratio "$(col "${CH_PP[$c]}" 1)" "$(col "${CH_PGB[$c]}" 1)")
        v="(no target at $c)"; ((c == 32 || c == 64)) && v=$(verdict "$r" ">=" 2.0)
        echo "| new charges, $c clients | $(col "${CH_PP[$c]}" 1)/s | pgbench $(col "${CH_PGB[$c]}" 1)/s | $r | >= 2.0 at 32 and 64 | $v |"
    done
    for c in $CONCS; do
        r=$(ratio "$(col "${CH_PP[$c]}" 1)" "$(col "${CH_PGB[$c]}" 1)")
        echo "| CPU per new charge, $c clients (api + PostgreSQL + Redis + load tool) | $(col "${CPU_PP[$c]}" 5) µs | pgbench $(col "${CPU_PGB[$c]}" 5) µs (PostgreSQL + pgbench) | $(ratio "$(col "${CPU_PP[$c]}" 5)" "$(col "${CPU_PGB[$c]}" 5)") | informational | - |"
    done
    echo "| new charges, $NOGC_CONC clients, group commit vs \`--no-group-commit\` | $(col "${CH_PP[$NOGC_CONC]:-n/a}" 1)/s | one at a time $(col "$CH_NOGC" 1)/s | $(ratio "$(col "${CH_PP[$NOGC_CONC]:-0}" 1)" "$(col "$CH_NOGC" 1)") | informational | - |"
    for c in $CONCS; do
        r=$(ratio "$(col "${RP_PP[$c]}" 1)" "$(col "${RP_HZ[$c]}" 1)")
        v="(no target at $c)"; ((c == 64)) && v=$(verdict "$r" ">=" 0.7)
        echo "| replays, $c connections | $(col "${RP_PP[$c]}" 1)/s | /healthz $(col "${RP_HZ[$c]}" 1)/s | $r | >= 0.7 at 64 | $v |"
    done
    echo "| duplicate storm, $STORM_N requests with one key: PostgreSQL statements | $(col "$STORM_REDIS" 1) (one lone charge: $STORM_LONE) | no Redis: $(col "$STORM_NOREDIS" 1) | | a handful (<= $STORM_TARGET) | $(verdict "$(col "$STORM_REDIS" 1)" "<" $((STORM_TARGET + 1))) |"
    r=$(ratio "$RELAY_RATE" "$PLAIN_RATE")
    echo "| relay, $BACKLOG-row backlog | $RELAY_RATE/s | plain confirms loop $PLAIN_RATE/s | $r | >= 0.5 | $(verdict "$r" ">=" 0.5) |"
    r=$(ratio "$CONS_RATE" "$CONS_PGB_BEST")
    echo "| consumer, $BACKLOG events | $CONS_RATE/s | pgbench apply SQL $CONS_PGB_BEST/s | $r | >= 0.5 | $(verdict "$r" ">=" 0.5) |"
    echo "| end to end at $E2E_RATE charges/s, commit to apply | p50 $E2E_DB_P50 ms, p99 $E2E_DB_P99 ms | | | p99 < 50 ms | $(verdict "$E2E_DB_P99" "<" 50) |"
    RSS_MAX=$(awk -v a="$RSS_API" -v b="$RSS_E2E_API" 'BEGIN { print (a > b) ? a : b }')
    echo "| api peak RSS (VmHWM), all its runs (section 6) | $RSS_MAX MiB | | | < 64 MiB | $(verdict "$RSS_MAX" "<" 64) |"
    echo
    echo "Analysis of the misses and what would close them: [below](#analysis)."
    echo
    echo "## 1. New charges"
    echo
    echo "Limit: pgbench running paypath's charge SQL in one transaction ([charge_one_tx.sql](charge_one_tx.sql): BEGIN,"
    echo "the claim INSERT, UPDATE idempotency_keys + INSERT charges + INSERT outbox, COMMIT: the best a design"
    echo "with one commit per request can do) with fresh keys, \`-M prepared\`,"
    echo "2 threads. paypath: wrk ([charge_new.lua](charge_new.lua)) posting fresh keys over keep-alive"
    echo "connections to one \`paypath api\` ($API_THREADS handler threads, group commit with its defaults, Redis hot tier on). Closed loop, ${DUR} s each,"
    echo "same database, CHECKPOINT before each. Latency: pgbench per transaction (its -l log), wrk per request."
    echo
    echo "| clients | pgbench tx/s | p50 ms | p99 ms | paypath charges/s | p50 ms | p99 ms | ratio |"
    echo "|---|---|---|---|---|---|---|---|"
    for c in $CONCS; do
        echo "| $c | $(col "${CH_PGB[$c]}" 1) | $(col "${CH_PGB[$c]}" 2) | $(col "${CH_PGB[$c]}" 3) | $(col "${CH_PP[$c]}" 1) | $(col "${CH_PP[$c]}" 2) | $(col "${CH_PP[$c]}" 3) | $(ratio "$(col "${CH_PP[$c]}" 1)" "$(col "${CH_PGB[$c]}" 1)") |"
    done
    echo
    echo "### CPU per new charge"
    echo
    echo "From /proc (utime + stime, $HZ ticks/s) before and after each run above, divided by the charges the"
    echo "database gained (counted in \`charges\` once the count stopped moving, not from the load tool). api: the"
    echo "\`paypath api\` process. PostgreSQL: all its processes: the live children of the postmaster (backends,"
    echo "walwriter, checkpointer, ...) plus the postmaster's own ticks and its cutime + cstime, where a backend's"
    echo "ticks go when it exits (pgbench's connections end with its run). Redis: \`redis-server\` (plus reaped"
    echo "children). Load tool: wrk or pgbench (its parent subshell's cutime + cstime). µs of CPU per charge;"
    echo "other suites' work on the same servers, if any, counts in the PostgreSQL and Redis columns."
    echo
    echo "| run | clients | rate | api µs | PostgreSQL µs | Redis µs | load tool µs | total µs |"
    echo "|---|---|---|---|---|---|---|---|"
    for c in $CONCS; do
        set -- ${CPU_PP[$c]}
        echo "| paypath (group commit), wrk | $c | $(col "${CH_PP[$c]}" 1)/s | $1 | $2 | $3 | $4 | $5 |"
    done
    set -- $CPU_NOGC
    echo "| paypath \`--no-group-commit\`, wrk | $NOGC_CONC | $(col "$CH_NOGC" 1)/s | $1 | $2 | $3 | $4 | $5 |"
    for c in $CONCS; do
        set -- ${CPU_PGB[$c]}
        echo "| pgbench one-transaction SQL | $c | $(col "${CH_PGB[$c]}" 1)/s | - | $2 | - | $4 | $5 |"
    done
    echo
    echo "### Before and after group commit ($NOGC_CONC clients, same run, same database)"
    echo
    echo "The same binary with \`--no-group-commit\` (one statement or transaction per claim and per completion,"
    echo "the path kept for comparison), a process of its own, measured right after the group-commit runs."
    echo
    echo "| api | charges/s | p50 ms | p99 ms | api µs/charge | PostgreSQL µs | Redis µs | wrk µs | total µs |"
    echo "|---|---|---|---|---|---|---|---|---|"
    if [[ -n "${CH_PP[$NOGC_CONC]:-}" ]]; then
        set -- ${CPU_PP[$NOGC_CONC]}
        echo "| group commit (default) | $(col "${CH_PP[$NOGC_CONC]}" 1) | $(col "${CH_PP[$NOGC_CONC]}" 2) | $(col "${CH_PP[$NOGC_CONC]}" 3) | $1 | $2 | $3 | $4 | $5 |"
    fi
    set -- $CPU_NOGC
    echo "| \`--no-group-commit\` | $(col "$CH_NOGC" 1) | $(col "$CH_NOGC" 2) | $(col "$CH_NOGC" 3) | $1 | $2 | $3 | $4 | $5 |"
    echo
    echo "### Batch sizes and waits actually seen"
    echo
    echo "From the api's /metrics scraped before and after each group-commit run above (the histograms' growth"
    echo "over the run): \`paypath_group_commit_batch_size\` (items per batch; buckets 1, 2, 4, 8, 16, 32, 64 ...)"
    echo "and \`paypath_group_commit_wait_seconds\` (each item's time in the queue before its batch left), per"
    echo "phase. Mean = sum / count; p50 and p99 interpolated within the buckets, as histogram_quantile does."
    echo
    echo "| clients | claim batches | claim items/batch mean | p50 | p99 | complete batches | complete items/batch mean | p50 | p99 |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for c in $CONCS; do
        set -- ${BATCH[$c]}
        echo "| $c | $1 | $2 | $3 | $4 | $5 | $6 | $7 | $8 |"
    done
    echo
    echo "| clients | claim wait mean µs | p50 µs | p99 µs | complete wait mean µs | p50 µs | p99 µs |"
    echo "|---|---|---|---|---|---|---|"
    for c in $CONCS; do
        set -- ${BATCH[$c]}
        echo "| $c | $9 | ${10} | ${11} | ${12} | ${13} | ${14} |"
    done
    echo
    echo "## 2. Replays"
    echo
    echo "Ceiling: wrk on \`GET /healthz\` of the same api process. paypath: wrk ([charge_replay.lua](charge_replay.lua))"
    echo "posting $REPLAY_KEYS completed keys at random (created beforehand by \`pp_bench_load seed\`), so each"
    echo "request is validated, fingerprinted and answered from the hot tier: the api's in-process cache of completed"
    echo "responses, else Redis (each run is checked to be 100% hot-tier hits: \`paypath_idempotency_cache_total{result=\"hit\"}\`"
    echo "grew by at least the number of requests). wrk formats the 1000 requests once per thread and picks one per"
    echo "request, as it sends /healthz's one static request: the Lua work per request would otherwise load the shared cores."
    echo
    echo "| connections | /healthz req/s | p50 ms | p99 ms | replays/s | p50 ms | p99 ms | ratio |"
    echo "|---|---|---|---|---|---|---|---|"
    for c in $CONCS; do
        echo "| $c | $(col "${RP_HZ[$c]}" 1) | $(col "${RP_HZ[$c]}" 2) | $(col "${RP_HZ[$c]}" 3) | $(col "${RP_PP[$c]}" 1) | $(col "${RP_PP[$c]}" 2) | $(col "${RP_PP[$c]}" 3) | $(ratio "$(col "${RP_PP[$c]}" 1)" "$(col "${RP_HZ[$c]}" 1)") |"
    done
    echo
    echo "## 2b. Duplicate storm"
    echo
    echo "\`pp_bench_load storm\` ([load.cc](load.cc)): $STORM_N connections opened first, then $STORM_N POSTs with ONE"
    echo "fresh Idempotency-Key and the same body released together (a barrier). PostgreSQL statements from"
    echo "pg_stat_statements (preloaded by the stack, track = all, so BEGIN/COMMIT and statements inside functions"
    echo "count), reset for the bench's database just before, summed over that database after (the bench's own"
    echo "queries on pg_stat_statements excluded). Checked: exactly one charge for the key, exactly one 201 that"
    echo "is not a replay, no other status, no failed request. \"No Redis\": a second api on the same database"
    echo "without PAYPATH_REDIS_URL (no hot tier, no SETNX gate). For scale: one lone request with a fresh key"
    echo "caused $STORM_LONE statements."
    echo
    echo "| api | PostgreSQL statements | 201 created | 201 replayed | 409 | other | failed | charges for the key |"
    echo "|---|---|---|---|---|---|---|---|"
    set -- $STORM_REDIS
    echo "| Redis gate on (default) | $1 | $2 | $3 | $4 | $5 | $6 | $7 |"
    set -- $STORM_NOREDIS
    echo "| no Redis | $1 | $2 | $3 | $4 | $5 | $6 | $7 |"
    echo
    echo "Statements by text (calls, first 70 characters), Redis gate on:"
    echo
    echo '```'
    cat "$TMP/storm_REDIS.pss"
    echo '```'
    echo
    echo "No Redis:"
    echo
    echo '```'
    cat "$TMP/storm_NOREDIS.pss"
    echo '```'
    echo
    echo "## 3. Relay"
    echo
    echo "A $BACKLOG-row outbox (rows shaped like the api's) drained by \`paypath relay --rate 1e9 --burst 1e9\`"
    echo "(batch $RELAY_WINDOW), against \`pp_bench_mq publish\` ([plain_publisher.cc](plain_publisher.cc)): the same"
    echo "client code, message shape, quorum-queue topology and confirm window ($RELAY_WINDOW), without PostgreSQL."
    echo "Relay rate from the database: rows published between the first and the last batch's transaction start"
    echo "(published_at) over that span; start-up excluded. Wall clock from process start to an empty backlog:"
    echo "${RELAY_WALL} s."
    echo
    echo "| | messages/s |"
    echo "|---|---|"
    echo "| plain publisher-confirms loop, window $RELAY_WINDOW | $PLAIN_RATE |"
    echo "| paypath relay | $RELAY_RATE |"
    echo "| ratio | $(ratio "$RELAY_RATE" "$PLAIN_RATE") |"
    echo "| context: the relay's SQL alone ([relay_sql.sql](relay_sql.sql): claim + mark + COMMIT per $RELAY_WINDOW rows, pgbench, 1 client) | $RELAY_SQL_RATE |"
    echo "| context: database and broker halves one after the other, 1 / (1/SQL + 1/plain) | $RELAY_SERIAL |"
    echo
    echo "## 4. Consumer"
    echo
    echo "The $BACKLOG events the relay queued (consumer stopped meanwhile), drained by \`paypath consumer\`"
    echo "(defaults: prefetch 200, batch 50; mean events per transaction: $CONS_BATCH). Rate from inbox.received_at"
    echo "(each batch's transaction start), as for the relay; wall clock from start to the last apply: ${CONS_WALL} s."
    echo "Limit: pgbench running the consumer's apply SQL ([consumer_apply.sql](consumer_apply.sql): inbox insert,"
    echo "2 postings, 2 balance upserts, one event per transaction) with fresh ids, at 1 client (the consumer's"
    echo "single connection) and 8 clients; the ratio uses the better of the two."
    echo
    echo "| | events/s | p50 ms | p99 ms |"
    echo "|---|---|---|---|"
    echo "| pgbench apply SQL, 1 client | $(col "$CONS_PGB1" 1) | $(col "$CONS_PGB1" 2) | $(col "$CONS_PGB1" 3) |"
    echo "| pgbench apply SQL, 8 clients | $(col "$CONS_PGB8" 1) | $(col "$CONS_PGB8" 2) | $(col "$CONS_PGB8" 3) |"
    echo "| paypath consumer | $CONS_RATE | | |"
    echo "| ratio (vs the better pgbench) | $(ratio "$CONS_RATE" "$CONS_PGB_BEST") | | |"
    echo
    echo "## 5. End to end"
    echo
    echo "One api, one relay (\`--rate\` and \`--burst\` at twice the offered load, so the token bucket is not what is"
    echo "measured), one consumer (defaults), fresh database and queue per run. \`pp_bench_load open\`"
    echo "([load.cc](load.cc)) offers a fixed rate for ${E2E_DUR} s, open loop (each request due at a fixed time,"
    echo "latency counted from then), fresh keys, 64 workers each on a keep-alive connection. Two runs: the target load, and"
    echo "$E2E_LOW_RATE charges/s, well below saturation, which shows the latency the pipeline's design itself costs."
    echo
    echo "| | $E2E_LOW_RATE charges/s (below saturation) | $E2E_RATE charges/s (the target load) |"
    echo "|---|---|---|"
    echo "| load generator (latency from each request's due time) | $E2E_LOW_LINE | $E2E_LINE |"
    echo "| **commit to apply**, from the database (charge created_at to debit posting created_at), first second excluded | p50 $E2E_LOW_DB_P50 ms, p99 $E2E_LOW_DB_P99 ms, max $E2E_LOW_DB_MAX ms over $E2E_LOW_DB_N charges | p50 $E2E_DB_P50 ms, p99 $E2E_DB_P99 ms, max $E2E_DB_MAX ms over $E2E_DB_N charges |"
    echo "| commit to apply, consumer histogram \`paypath_ledger_apply_delay_seconds\` (interpolated in buckets 5/10/25/50/100 ms ...) | p50 $E2E_LOW_H_P50 ms, p99 $E2E_LOW_H_P99 ms | p50 $E2E_H_P50 ms, p99 $E2E_H_P99 ms |"
    echo "| of which api transaction start to relay claim (outbox created_at to published_at) | p50 $E2E_LOW_R_P50 ms, p99 $E2E_LOW_R_P99 ms | p50 $E2E_R_P50 ms, p99 $E2E_R_P99 ms |"
    echo "| of which relay claim to consumer transaction start (published_at to inbox received_at) | p50 $E2E_LOW_C_P50 ms, p99 $E2E_LOW_C_P99 ms | p50 $E2E_C_P50 ms, p99 $E2E_C_P99 ms |"
    echo "| relay: mean rows per batch | $E2E_LOW_BATCH | $E2E_BATCH |"
    echo "| CPU during the load: machine | $E2E_LOW_CPU | $E2E_CPU |"
    echo "| CPU during the load: paypath processes | $E2E_LOW_CPU_PROCS | $E2E_CPU_PROCS |"
    echo
    echo "## 6. Peak memory (VmHWM) under load"
    echo
    echo "Target (issue 11): the api below 64 MiB."
    echo
    echo "| process | load | peak RSS MiB |"
    echo "|---|---|---|"
    echo "| paypath api | new charges, replays and the duplicate storm, up to $(echo $CONCS $STORM_N | tr ' ' '\n' | sort -n | tail -n1) connections | $RSS_API |"
    echo "| paypath relay | $BACKLOG-row backlog, rate limit off | $RSS_RELAY |"
    echo "| paypath consumer | $BACKLOG queued events | $RSS_CONSUMER |"
    echo "| paypath api | end to end, $E2E_RATE charges/s | $RSS_E2E_API |"
    echo "| paypath relay | end to end | $RSS_E2E_RELAY |"
    echo "| paypath consumer | end to end | $RSS_E2E_CONSUMER |"
    echo
    echo "## Micro-benchmarks (Google Benchmark, [micro_bench.cc](micro_bench.cc))"
    echo
    echo '```'
    echo "$MICRO_TABLE"
    echo '```'
    echo
    echo "## Machine and versions"
    echo
    echo "- CPU: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(nproc) cores; memory $(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
    echo "- OS: Debian $(cat /etc/debian_version 2>/dev/null || echo '?'), kernel $(uname -r)"
    echo "- paypath: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$( [[ -n "$(git -C "$ROOT" status --porcelain -- . ':!bench/results.md' ':!bench/analysis.md' 2>/dev/null)" ]] && echo ' with uncommitted changes'), build type $(awk -F= '/^CMAKE_BUILD_TYPE:/ {print $2}' "$BUILD_DIR/CMakeCache.txt" 2>/dev/null), $(c++ --version | head -n1)"
    echo "- PostgreSQL $(sql "$(basename "$PG_ADMIN_URL")" "SHOW server_version") (fsync=$(sql "$(basename "$PG_ADMIN_URL")" "SHOW fsync"), synchronous_commit=$(sql "$(basename "$PG_ADMIN_URL")" "SHOW synchronous_commit"), shared_buffers=$(sql "$(basename "$PG_ADMIN_URL")" "SHOW shared_buffers"))"
    echo "- $(dpkg-query -W -f='${Package} ${Version}, ' redis-server rabbitmq-server wrk libbenchmark-dev librabbitmq-dev 2>/dev/null | sed 's/, $//')"
    echo "- pgbench: $("$PGBENCH" --version)"
    echo
    echo "## Reproduce"
    echo
    echo '```'
    echo "make bench                        # the whole run (bench/run.sh), about $((ELAPSED / 60 + 1)) minutes"
    echo "bash bench/run.sh --smoke --out /tmp/smoke.md   # the 1-minute check that make test runs"
    echo '```'
    echo
    echo "<a id=\"analysis\"></a>"
    if [[ -f "$BENCH_DIR/analysis.md" ]]; then
        cat "$BENCH_DIR/analysis.md"
    fi
} >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"

# The summary, for the terminal.
sed -n '/^## Summary/,/^Analysis of the misses/p' "$OUT" | grep '^|' >&2
OK=1
log "done: $OUT"
