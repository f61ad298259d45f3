//! Every integration test of this crate, linked into one test binary: one binary per test file
//! carried its own copy of every dependency and together filled a CI machine's disk. A new test
//! file is declared here (co-testpeers' `suite_layout` checks that none is left out); its
//! tests are named `<file>::<test>`, e.g. `cargo test -p <crate> --test suite <file>::`.

mod client_support;
mod support;

mod flashsystem_client;
mod flashsystem_facade;
mod govc_conformance;
mod infinibox_client;
mod infinibox_facade;
mod ontap_client;
mod ontap_contract;
mod ontap_facade;
mod powerflex_client;
mod powerflex_facade;
mod powerflex_sdc;
mod powermax_client;
mod powermax_facade;
mod powerstore_client;
mod powerstore_contract;
mod powerstore_facade;
mod primera3par_client;
mod primera3par_facade;
mod pure_client;
mod pure_contract;
mod pure_facade;
mod san_model;
mod ssh_address;
mod ssh_endpoint;
mod vantara_client;
mod vantara_facade;
mod vcenter_automation;
mod vcenter_esxcli;
mod vcenter_pyvmomi;
mod vmkfstools_clone;
mod vsphere_client;
mod wrapper_version;
