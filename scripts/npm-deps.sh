#!/usr/bin/env bash
# Install the npm tooling of the operations checks (ops/package.json: @redocly/cli for the OpenAPI lint,
# yaml for the conformance checker) exactly as locked in ops/package-lock.json.
# Idempotent and cheap: `npm ci` runs only when ops/node_modules is missing or was installed from a
# different lockfile (a stamp holds the lockfile's hash), so `make deps` can call it every time.
set -euo pipefail

OPS=$(cd "$(dirname "${BASH_SOURCE[0]}")/../ops" && pwd)
LOCK=$OPS/package-lock.json
STAMP=$OPS/node_modules/.paypath-lock.sha256
# @redocly/cli 2.x declares node >=20.19 (<21) or >=22.12.
NODE_MIN_MAJOR=20
NODE_MIN_MINOR=19

command -v node >/dev/null && command -v npm >/dev/null \
    || { echo "npm-deps: node and npm are required (node >= ${NODE_MIN_MAJOR}.${NODE_MIN_MINOR})" >&2; exit 1; }
IFS=. read -r major minor _ <<<"$(node --version | tr -d v)"
if (( major < NODE_MIN_MAJOR || (major == NODE_MIN_MAJOR && minor < NODE_MIN_MINOR) )); then
    echo "npm-deps: node $(node --version) is too old (need >= ${NODE_MIN_MAJOR}.${NODE_MIN_MINOR})" >&2
    exit 1
fi

# Two test suites may call this at once: one npm ci at a time.
exec 9>"${TMPDIR:-/tmp}/paypath-npm-deps.lock"
flock -w 300 9 || { echo "npm-deps: could not take the lock" >&2; exit 1; }

want=$(sha256sum "$LOCK" | cut -d' ' -f1)
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" && -x "$OPS/node_modules/.bin/redocly" ]]; then
    echo "npm-deps: up to date"
    exit 0
fi

# No audit/fund chatter, no update notices; the registry is the only network access.
(cd "$OPS" && npm ci --no-audit --no-fund --loglevel=error --prefer-offline >/dev/null)
echo "$want" >"$STAMP"
echo "npm-deps: installed ops/node_modules from ops/package-lock.json"
