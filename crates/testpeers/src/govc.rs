//! govc, a second real vSphere client for the lab: our small govc over Debian's govmomi library, built
//! from `peers/govc` by `scripts/peers.sh install govc` (Debian ships the library, not govc itself).

use std::path::PathBuf;
use std::process::{Command, Output};

use anyhow::Context;

/// The govc binary: `$COPY_OFFLOAD_GOVC`, or the current build of `peers/govc`.
pub fn govc_binary() -> anyhow::Result<PathBuf> {
    crate::go_peer::binary("govc", "COPY_OFFLOAD_GOVC")
}

/// How govc reaches an endpoint, passed as govc's own environment variables.
#[derive(Debug, Clone)]
pub struct GovcTarget {
    /// `https://host:port/sdk`.
    pub url: String,
    pub username: String,
    pub password: String,
    /// A PEM file of the certificate to trust (`GOVC_TLS_CA_CERTS`).
    pub ca_file: PathBuf,
}

/// Runs `govc <args>` against `target` and returns its output, whatever the exit status.
pub fn govc(target: &GovcTarget, args: &[&str]) -> anyhow::Result<Output> {
    let binary = govc_binary()?;
    Command::new(&binary)
        .args(args)
        .env("GOVC_URL", &target.url)
        .env("GOVC_USERNAME", &target.username)
        .env("GOVC_PASSWORD", &target.password)
        .env("GOVC_TLS_CA_CERTS", &target.ca_file)
        .env_remove("GOVC_INSECURE")
        .output()
        .with_context(|| format!("running {}", binary.display()))
}
