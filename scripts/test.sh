#!/usr/bin/env bash
# The project's test command (README): installs the real test peers if missing, starts the long-running
# ones (etcd + kube-apiserver + kube-controller-manager), runs every test of the workspace, and stops the
# peers again if it was the one that started them.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/peers.sh install
if scripts/peers.sh status | grep -Eq '^kube-apiserver +running'; then
    echo "test.sh: using the already running kube peers (left running afterwards)" >&2
else
    scripts/peers.sh start
    trap 'scripts/peers.sh stop' EXIT
fi

cargo test --workspace --no-fail-fast "$@"
