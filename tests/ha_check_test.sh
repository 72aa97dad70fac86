#!/usr/bin/env bash
# The short HA check inside `make test` (issue 12): the clustered stack (scripts/stack-ha: 3 RabbitMQ nodes,
# PostgreSQL under Patroni with two standbys, 3 etcd members; its own port base and data dir, so a stack of
# `make prove-ha` is left alone), then a proof run at 50 charges/s through two api processes, two relays and
# two consumers while the node leading the run's quorum queue and the PostgreSQL primary are SIGKILLed. The
# verdict must be exact (every operation once in both databases, audit clean, DLQ empty) and both failovers
# must name a new leader; the data is then re-checked here without the prover. The stack is purged at the
# end whatever happened. Usage: ha_check_test.sh BUILD_DIR
set -euo pipefail
BUILD=$(cd "$1" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export PAYPATH_HA_PORT_BASE=${PAYPATH_HA_CHECK_PORT_BASE:-27000}
export PAYPATH_HA_DIR=${PAYPATH_HA_CHECK_DIR:-/tmp/paypath-ha-check}
HA="$ROOT/scripts/stack-ha"
REPORT=${PAYPATH_HA_CHECK_REPORT:-/tmp/paypath-ha-check-report}
if [[ "${PAYPATH_SKIP_HA_CHECK:-0}" == 1 ]]; then echo "ha_check: skipped (PAYPATH_SKIP_HA_CHECK=1)"; exit 77; fi
fail() { echo "ha_check: FAIL: $*" >&2; exit 1; }
cleanup() { "$HA" purge >/dev/null 2>&1 || true; }
trap cleanup EXIT
trap 'exit 143' INT TERM

t0=$SECONDS
# The single-node stack's settings (make test's environment) must not leak into this run.
for v in $(compgen -e | grep '^PAYPATH_' | grep -v '^PAYPATH_HA_'); do unset "$v"; done
env_out=$("$HA" up) || fail "scripts/stack-ha up"
eval "$env_out"
up_s=$((SECONDS - t0))
"$BUILD/paypath" broker declare >/dev/null || fail "broker declare on the cluster"

t1=$SECONDS
set +e
"$BUILD/paypath" prove --scenario ha --ha-faults queue-leader,pg-primary --ha-rate 50 --ha-tail 3 \
    --database paypath_prove_hacheck --report "$REPORT" >"$REPORT.out" 2>"$REPORT.err"
rc=$?
set -e
run_s=$((SECONDS - t1))
grep -v '^{' "$REPORT.out" || true
((rc == 0)) || { tail -40 "$REPORT.err" >&2; fail "the HA proof run exited $rc"; }
v=$(cat "$REPORT/verdict.json")
grep -q '"pass":true' <<<"$v" || fail "verdict: $v"
for kind in queue-leader pg-primary; do
    grep -qE "\"kind\":\"$kind\",\"victim\":\"[a-z]+[0-9]\",\"new_leader\":\"[a-z]+[0-9]\",\"failover_s\":[0-9.]+,\"ok\":true" <<<"$v" \
        || fail "fault $kind not shown with its old and new leader: $v"
done

# The data, without the prover: one debit and one credit per charge in the run's ledger database.
# The password goes to psql through its environment, never its command line.
[[ "$PAYPATH_PG_ADMIN_URL" =~ ^postgresql://([^:@]+):([^@]*)@(.*)/postgres\?(.*)$ ]] || fail "unexpected admin URL shape"
export PGPASSWORD=${BASH_REMATCH[2]}
url="postgresql://${BASH_REMATCH[1]}@${BASH_REMATCH[3]}/paypath_prove_hacheck?${BASH_REMATCH[4]}"
charges=$(psql "$url" -Atc "SELECT count(*) FROM charges")
posted=$(psql "${url/paypath_prove_hacheck?/paypath_prove_hacheck_ledger?}" -Atc \
    "SELECT count(*) FROM (SELECT charge_id FROM ledger_entries GROUP BY charge_id HAVING count(*) FILTER (WHERE direction='debit') = 1 AND count(*) FILTER (WHERE direction='credit') = 1) x")
[[ "$charges" -gt 0 && "$charges" == "$posted" ]] || fail "charges $charges, charges posted once $posted"
grep -q "\"charges_in_db\":$charges," <<<"$v" || fail "the verdict's charge count differs from the database's ($charges)"
echo "ha_check: PASS: $charges charges each posted once; cluster up in ${up_s}s, proof run ${run_s}s, total $((SECONDS - t0))s"
