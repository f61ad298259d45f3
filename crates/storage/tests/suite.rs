//! Every integration test of this crate, linked into one test binary: one binary per test file
//! carried its own copy of every dependency and together filled a CI machine's disk. A new test
//! file is declared here (co-testpeers' `suite_layout` checks that none is left out); its
//! tests are named `<file>::<test>`, e.g. `cargo test -p <crate> --test suite <file>::`.

mod support;

mod flashsystem_lab;
mod http_layer;
mod infinibox_lab;
mod ontap_lab;
mod powerflex_lab;
mod powermax_lab;
mod powerstore_lab;
mod primera3par_lab;
mod pure_lab;
mod vantara_lab;
