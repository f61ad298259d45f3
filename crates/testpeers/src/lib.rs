//! Test-only helpers that start the real test peers (vcsim, OpenSSH sshd) on loopback, run govc, and
//! connect to the long-running ones started by `scripts/peers.sh` (etcd + kube-apiserver). Used as a dev-dependency only.
//!
//! Every peer is a real program installed by `scripts/peers.sh install`; when one is missing, the
//! function that needs it fails with a message naming the install command, so a test can never pass
//! without its peer. Paths follow the script's defaults (`COPY_OFFLOAD_PEERS_CACHE`,
//! `COPY_OFFLOAD_PEERS_DIR`), so tests need nothing sourced.

mod eventually;
mod go_peer;
mod govc;
mod kube_peer;
mod kube_scratch;
mod layout;
mod process;
mod pyvmomi;
mod refusing_port;
mod sshd;
mod vcsim;
mod vendor_clients;
pub mod vendor_matrix;
mod venv;

pub use eventually::eventually;
pub use govc::{GovcTarget, govc, govc_binary};
pub use kube_peer::{kube_client, kubeconfig_path};
pub use kube_scratch::{
    client_as_account, create_scratch_namespace, delete_cluster_role, install_crd,
    shipped_cluster_role_rules,
};
pub use layout::{cache_dir, state_dir};
pub use pyvmomi::python_with_pyvmomi;
pub use refusing_port::RefusingPort;
pub use sshd::Sshd;
pub use vcsim::{Vcsim, vcsim_binary};
pub use vendor_clients::VendorClient;
