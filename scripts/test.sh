#!/usr/bin/env bash
# The project's test command (README): installs the real test peers if missing, starts the long-running
# ones (etcd + kube-apiserver + kube-controller-manager), runs every test of the workspace, and stops the
# peers again if it was the one that started them.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/peers.sh install
# Captured first: `grep -q` closing the pipe early would fail the pipeline under pipefail.
peer_status=$(scripts/peers.sh status)
if grep -Eq '^kube-apiserver +running' <<<"$peer_status"; then
    echo "test.sh: using the already running kube peers (left running afterwards)" >&2
else
    scripts/peers.sh start
    trap 'scripts/peers.sh stop' EXIT
fi

cargo test --workspace --no-fail-fast "$@"
