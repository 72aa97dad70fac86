#!/usr/bin/env bash
# Install the Debian packages paypath needs to build, test and run its local stack.
# Idempotent: when everything is already installed it touches nothing (no apt-get
# update), so it is cheap to call from CI or other scripts.
set -euo pipefail

PACKAGES="build-essential cmake pkg-config g++ libboost1.81-dev libboost-json1.81-dev \
libboost-url1.81-dev libpq-dev libhiredis-dev librabbitmq-dev libssl-dev libcli11-dev \
libgtest-dev libgmock-dev libbenchmark-dev postgresql-15 postgresql-client-15 redis-server \
rabbitmq-server prometheus wrk curl jq procps"

missing=()
for pkg in $PACKAGES; do
    # dpkg-query exits nonzero for unknown packages; treat that as "missing".
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done

if (( ${#missing[@]} == 0 )); then
    echo "deps: all present"
    exit 0
fi

# apt needs root; fail clearly instead of half-way through.
if (( EUID != 0 )); then
    echo "deps: missing ${missing[*]} (run as root to install)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: installed ${missing[*]}"
