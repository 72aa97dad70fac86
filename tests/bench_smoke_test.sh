#!/usr/bin/env bash
# The benchmark still runs: bench/run.sh --smoke (a few seconds per figure, under a minute in all) must
# finish and write a report with every section. No figure is asserted: the machine is shared and the
# runs are seconds long; bench/results.md from `make bench` holds the real measurements.
#
#   tests/bench_smoke_test.sh BUILD_DIR      (ctest passes the build directory; PAYPATH_* from the stack)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${1:?usage: bench_smoke_test.sh BUILD_DIR}
OUT=$(mktemp /tmp/pp_bench_smoke.XXXXXX.md)
trap 'rm -f "$OUT"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

start=$SECONDS
# 120 s: the smoke run takes ~30-45 s; the margin is for a loaded machine, not for a slower benchmark.
timeout 120 bash "$ROOT/bench/run.sh" --smoke --no-build --build-dir "$BUILD_DIR" --out "$OUT" \
    || fail "bench/run.sh --smoke exited with $?"
echo "bench smoke run took $((SECONDS - start)) s"

[[ -s "$OUT" ]] || fail "no report written"
for section in "## Summary" "## 1. New charges" "### CPU per new charge" "### Batch sizes and waits actually seen" \
               "## 2. Replays" "## 2b. Duplicate storm" "## 3. Relay" "## 4. Consumer" \
               "## 5. End to end" "## 6. Peak memory" "## Micro-benchmarks" "## Machine and versions"; do
    grep -qF "$section" "$OUT" || fail "report lacks section '$section'"
done
# Every figure is present (a number, not an empty cell), whatever its value.
grep -Eq '^\| new charges, [0-9]+ clients \| [0-9.]+/s \| pgbench [0-9.]+/s \| [0-9.]+ ' "$OUT" || fail "no new-charges figure"
grep -Eq '^\| replays, [0-9]+ connections \| [0-9.]+/s \| /healthz [0-9.]+/s \| [0-9.]+ ' "$OUT" || fail "no replay figure"
grep -Eq '^\| relay, [0-9]+-row backlog \| [0-9.]+/s \| plain confirms loop [0-9.]+/s \| [0-9.]+ ' "$OUT" || fail "no relay figure"
grep -Eq '^\| consumer, [0-9]+ events \| [0-9.]+/s \| pgbench apply SQL [0-9.]+/s \| [0-9.]+ ' "$OUT" || fail "no consumer figure"
grep -Eq '^\| end to end at [0-9]+ charges/s, commit to apply \| p50 [0-9.]+ ms, p99 [0-9.]+ ms ' "$OUT" || fail "no end-to-end figure"
grep -Eq '^\| paypath (api|relay|consumer) \| .* \| [0-9.]+ \|$' "$OUT" || fail "no peak-memory figure"
grep -Eq '^\| api peak RSS \(VmHWM\), all its runs \(section 6\) \| [0-9.]+ MiB ' "$OUT" || fail "no api RSS summary row"
# Issue 11's added figures: CPU per charge (api, PostgreSQL, Redis, load tool, total; PostgreSQL and
# Redis n/a when their processes are not on this machine), the
# --no-group-commit comparison, batch sizes per phase, the duplicate storm with and without Redis.
grep -Eq '^\| paypath \(group commit\), wrk \| [0-9]+ \| [0-9.]+/s \| [0-9]+ \| ([0-9]+|n/a) \| ([0-9]+|n/a) \| [0-9]+ \| [0-9]+ \|$' "$OUT" \
    || fail "no CPU-per-charge figure for paypath"
grep -Eq '^\| pgbench one-transaction SQL \| [0-9]+ \| [0-9.]+/s \| - \| ([0-9]+|n/a) \| - \| [0-9]+ \| ([0-9]+|n/a) \|$' "$OUT" \
    || fail "no CPU-per-transaction figure for pgbench"
grep -Eq '^\| `--no-group-commit` \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| [0-9]+ \| ' "$OUT" || fail "no --no-group-commit figure"
grep -Eq '^\| [0-9]+ \| [0-9]+ \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| [0-9]+ \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \|$' "$OUT" \
    || fail "no batch-size figure"
grep -Eq '^\| Redis gate on \(default\) \| [0-9]+ \| 1 \| [0-9]+ \| [0-9]+ \| 0 \| 0 \| 1 \|$' "$OUT" || fail "no duplicate-storm figure (Redis on)"
grep -Eq '^\| no Redis \| [0-9]+ \| 1 \| [0-9]+ \| [0-9]+ \| 0 \| 0 \| 1 \|$' "$OUT" || fail "no duplicate-storm figure (no Redis)"
grep -q '^BM_Fingerprint' "$OUT" || fail "no micro-benchmark output"
echo "PASS: bench smoke report complete"
