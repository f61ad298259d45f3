#!/usr/bin/env bash
# The project's test command (README): installs the real test peers if missing, starts the long-running
# ones (etcd + kube-apiserver), runs every test of the workspace, and stops the peers again.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/peers.sh install
scripts/peers.sh start
trap 'scripts/peers.sh stop' EXIT

cargo test --workspace --no-fail-fast "$@"
