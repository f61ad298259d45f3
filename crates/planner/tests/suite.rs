//! Every integration test of this crate, linked into one test binary: one binary per test file
//! carried its own copy of every dependency and together filled a CI machine's disk. A new test
//! file is declared here (co-testpeers' `suite_layout` checks that none is left out); its
//! tests are named `<file>::<test>`, e.g. `cargo test -p <crate> --test suite <file>::`.

mod plan_objects;
mod support;

mod gather_inventory;
mod plan_offload;
mod planner_rbac;
mod provider_keys;
mod ssh_readiness;
mod storage_map_checks;
