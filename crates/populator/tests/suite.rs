//! Every integration test of this crate, linked into one test binary: one binary per test file
//! carried its own copy of every dependency and together filled a CI machine's disk. A new test
//! file is declared here (co-testpeers' `suite_layout` checks that none is left out); its
//! tests are named `<file>::<test>`, e.g. `cargo test -p <crate> --test suite <file>::`.

mod e2e_support;
mod journal_support;
mod kube_support;

mod e2e_array_faults;
mod e2e_bench;
mod e2e_clone_window;
mod e2e_cluster;
mod e2e_copy;
mod e2e_disk_names;
mod e2e_fault_classes;
mod e2e_forklift_dropin;
mod e2e_host_keys;
mod e2e_interrupt;
mod e2e_journal;
mod e2e_lease;
mod e2e_metrics;
mod e2e_vendors;
mod host_key_record;
mod journal_file;
mod journal_kube;
mod lease_contention;
mod metrics_endpoint;
