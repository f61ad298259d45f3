#!/usr/bin/env bash
# The project's test command (README): installs the real test peers if missing, starts the long-running
# ones (etcd + kube-apiserver + kube-controller-manager), runs every test of the workspace, and stops the
# peers again if it was the one that started them. A whole-suite run (no arguments) then checks that the
# README's vendor table is what the tests just proved (scripts/vendor_matrix.py); with
# COPY_OFFLOAD_VENDOR_MATRIX_UPDATE=1 it rewrites the table instead.
set -euo pipefail
cd "$(dirname "$0")/.."

matrix=$(mktemp -d)
stop_peers=0
cleanup() {
    rm -rf "$matrix"
    if [ "$stop_peers" = 1 ]; then scripts/peers.sh stop; fi
}
trap cleanup EXIT

scripts/peers.sh install
# Captured first: `grep -q` closing the pipe early would fail the pipeline under pipefail.
peer_status=$(scripts/peers.sh status)
if grep -Eq '^kube-apiserver +running' <<<"$peer_status"; then
    echo "test.sh: using the already running kube peers (left running afterwards)" >&2
else
    scripts/peers.sh start
    stop_peers=1
fi

export COPY_OFFLOAD_VENDOR_MATRIX_DIR=$matrix
cargo test --workspace --no-fail-fast "$@"
if [ $# -eq 0 ]; then
    if [ "${COPY_OFFLOAD_VENDOR_MATRIX_UPDATE:-}" = 1 ]; then
        scripts/vendor_matrix.py update "$matrix" README.md
    else
        scripts/vendor_matrix.py check "$matrix" README.md
    fi
fi
