#!/usr/bin/env bash
# The stack's credentials (scripts/stack, docs/runbook.md "Rotating a credential"):
#   - the files holding them are 0600;
#   - no process on the machine shows a password on its command line, not even the short-lived
#     rabbitmqctl and redis-cli the stack runs while rotating (sampled from /proc all along);
#   - `scripts/stack rotate` changes a password on the running server: the old one is refused at once, the
#     new one works; each credential is rotated back to its original value (--stdin) at the end.
#
#   tests/stack_credentials_test.sh BUILD_DIR      (ctest passes the build directory; PAYPATH_* from the stack)
set -euo pipefail

BUILD_DIR=${1:?usage: stack_credentials_test.sh BUILD_DIR}
PAYPATH=$BUILD_DIR/paypath
fail() { echo "FAIL: $*" >&2; exit 1; }
for v in PAYPATH_STACK PAYPATH_STACK_DIR PAYPATH_OPERATOR_AMQP_URL PAYPATH_REDIS_URL; do
    [[ -n "${!v:-}" ]] || fail "$v is not set (run under make test)"
done
SECRETS=$PAYPATH_STACK_DIR/secrets.env

mode() { stat -c %a "$1"; }
for f in "$SECRETS" "$PAYPATH_STACK_DIR/redis/redis.conf" "$BUILD_DIR/stack.env"; do
    [[ -f "$f" ]] || continue
    [[ "$(mode "$f")" == 600 ]] || fail "$f has mode $(mode "$f"), want 600"
done
[[ -f "$SECRETS" ]] || fail "no $SECRETS"

secret() { grep "^PAYPATH_SECRET_$1=" "$SECRETS" | cut -d= -f2; }
ALL_SECRETS=()
for n in REDIS_API REDIS_ADMIN AMQP_RELAY AMQP_CONSUMER AMQP_OPERATOR AMQP_ADMIN; do ALL_SECRETS+=("$(secret "$n")"); done

# leaked PATTERN...: prints the first command line (of any process) that contains one of the patterns. The
# patterns go to grep through a 0600 file: on grep's own command line they would find themselves.
PATTERNS=$(mktemp)
trap 'rm -f "$PATTERNS"' EXIT
leaked() {
    local f
    printf '%s\n' "$@" >"$PATTERNS"
    f=$(grep -aFl -f "$PATTERNS" /proc/[0-9]*/cmdline 2>/dev/null | head -n1) || return 1
    [[ -n "$f" ]] || return 1
    tr '\0' ' ' <"$f"
    echo
}
if line=$(leaked "${ALL_SECRETS[@]}"); then fail "a password on a command line: $line"; fi

OLD_OPERATOR=$(secret AMQP_OPERATOR)
OLD_REDIS_API=$(secret REDIS_API)
NEW_OPERATOR=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
NEW_REDIS_API=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
restore() {
    rm -f "$PATTERNS"
    printf '%s\n' "$OLD_OPERATOR" | "$PAYPATH_STACK" rotate amqp-operator --stdin >/dev/null 2>&1 || true
    printf '%s\n' "$OLD_REDIS_API" | "$PAYPATH_STACK" rotate redis-api --stdin >/dev/null 2>&1 || true
}
trap restore EXIT

# rotate_watched NAME NEW: rotates NAME to NEW while sampling every command line for NEW and the old value.
rotate_watched() {
    local name=$1 new=$2 old=$3 seen
    seen=$(mktemp)
    printf '%s\n' "$new" | "$PAYPATH_STACK" rotate "$name" --stdin >/dev/null 2>"$seen.err" &
    local pid=$! samples=0
    while kill -0 "$pid" 2>/dev/null; do
        leaked "$new" "$old" >>"$seen" || true
        samples=$((samples + 1))
    done
    wait "$pid" || { cat "$seen.err" >&2; fail "stack rotate $name failed"; }
    [[ ! -s "$seen" ]] || fail "rotating $name showed a password on a command line: $(head -n1 "$seen")"
    echo "rotate $name: $samples samples of every command line, no password seen"
    rm -f "$seen" "$seen.err"
}

with_password() { local url=$1 pw=$2; printf '%s' "${url/:$3@/:$pw@}"; }

# AMQP: the operator lists the DLQ (its one read permission) with the old and the new password.
dlq_list_as() { PAYPATH_OPERATOR_AMQP_URL=$1 "$PAYPATH" dlq list --queue paypath.ledger --limit 1 >/dev/null 2>&1; }
dlq_list_as "$PAYPATH_OPERATOR_AMQP_URL" || fail "the operator cannot list the DLQ before rotating"
rotate_watched amqp-operator "$NEW_OPERATOR" "$OLD_OPERATOR"
[[ "$(secret AMQP_OPERATOR)" == "$NEW_OPERATOR" ]] || fail "secrets.env was not updated"
! dlq_list_as "$PAYPATH_OPERATOR_AMQP_URL" || fail "the old operator password still logs in"
dlq_list_as "$(with_password "$PAYPATH_OPERATOR_AMQP_URL" "$NEW_OPERATOR" "$OLD_OPERATOR")" \
    || fail "the new operator password does not log in"
"$PAYPATH_STACK" env 2>/dev/null | grep -q "paypath-operator:$NEW_OPERATOR@" || fail "stack env does not print the new URL"

# Redis: the api's user pings with the old and the new password.
redis_ping_as() {
    local hp=${PAYPATH_REDIS_URL#*@}
    hp=${hp%%/*}
    [[ "$(REDISCLI_AUTH=$1 redis-cli --no-auth-warning --user paypath-api -h "${hp%:*}" -p "${hp##*:}" ping 2>/dev/null)" == PONG ]]
}
redis_ping_as "$OLD_REDIS_API" || fail "the api's Redis user cannot log in before rotating"
# A connection that logged in before the rotation keeps working (the runbook's "restart afterwards, not
# before" relies on it). Plain RESP over bash's /dev/tcp: printf is a builtin, so nothing shows in ps.
hp=${PAYPATH_REDIS_URL#*@}; hp=${hp%%/*}
exec 7<>"/dev/tcp/${hp%:*}/${hp##*:}"
printf 'AUTH paypath-api %s\r\n' "$OLD_REDIS_API" >&7
IFS= read -r -t 5 reply <&7 && [[ "$reply" == +OK* ]] || fail "AUTH on the long-lived connection: $reply"
rotate_watched redis-api "$NEW_REDIS_API" "$OLD_REDIS_API"
printf 'PING\r\n' >&7
IFS= read -r -t 5 reply <&7 && [[ "$reply" == +PONG* ]] || fail "a connection opened before the rotation was dropped: $reply"
exec 7>&-
! redis_ping_as "$OLD_REDIS_API" || fail "the old Redis password still logs in"
redis_ping_as "$NEW_REDIS_API" || fail "the new Redis password does not log in"
grep -q "$(printf '%s' "$NEW_REDIS_API" | sha256sum | cut -d' ' -f1)" "$PAYPATH_STACK_DIR/redis/redis.conf" \
    || fail "redis.conf does not hold the new password's digest (a restart would revert it)"

restore
trap - EXIT
dlq_list_as "$PAYPATH_OPERATOR_AMQP_URL" || fail "the original operator password does not work after restoring it"
redis_ping_as "$OLD_REDIS_API" || fail "the original Redis password does not work after restoring it"
echo "PASS: credential files 0600, no password on any command line, rotation takes effect at once"
