//! Every integration test of this crate, linked into one test binary: one binary per test file
//! carried its own copy of every dependency and together filled a CI machine's disk. A new test
//! file is declared here (co-testpeers' `suite_layout` checks that none is left out); its
//! tests are named `<file>::<test>`, e.g. `cargo test -p <crate> --test suite <file>::`.

mod kube_smoke;
mod pyvmomi_smoke;
mod script_contract;
mod sshd_smoke;
mod suite_layout;
mod vcsim_smoke;
