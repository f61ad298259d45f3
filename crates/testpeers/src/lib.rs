//! Test-only helpers that start the real test peers (vcsim, OpenSSH sshd) on loopback and connect to the
//! long-running ones started by `scripts/peers.sh` (etcd + kube-apiserver). Used as a dev-dependency only.
