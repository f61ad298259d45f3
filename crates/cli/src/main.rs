//! The `copy-offload` binary: thin subcommands over the library crates.
fn main() {}
