//! Every integration test of this crate, linked into one test binary: one binary per test file
//! carried its own copy of every dependency and together filled a CI machine's disk. A new test
//! file is declared here (co-testpeers' `suite_layout` checks that none is left out); its
//! tests are named `<file>::<test>`, e.g. `cargo test -p <crate> --test suite <file>::`.

mod support;

mod ansible_playbook;
mod forklift_line;
mod host_keys;
mod hostile_commands;
mod hostile_inputs;
mod ssh_method;
mod vib_method;
mod vib_package;
mod wrapper_footprint;
mod wrapper_placement;
