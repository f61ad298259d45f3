//! Every integration test of this crate, linked into one test binary: one binary per test file
//! carried its own copy of every dependency and together filled a CI machine's disk. A new test
//! file is declared here (co-testpeers' `suite_layout` checks that none is left out); its
//! tests are named `<file>::<test>`, e.g. `cargo test -p <crate> --test suite <file>::`.

// Helpers of other crates' suites: this crate uses only part of them.
#[allow(dead_code)]
#[path = "../../populator/tests/e2e_support/mod.rs"]
mod e2e_support;
#[allow(dead_code)]
#[path = "../../planner/tests/plan_objects/mod.rs"]
mod plan_objects;
#[allow(dead_code)]
#[path = "../../planner/tests/support/mod.rs"]
mod support;

mod bench_populate_rss;
mod demo_cancel;
mod demo_cluster;
mod demo_copy;
mod demo_serve;
mod plan_cli;
mod populate_cli;
mod populate_contract;
mod populate_sigkill;
mod preflight_cli;
mod preflight_cluster;
mod subcommands;
mod vib_cli;
