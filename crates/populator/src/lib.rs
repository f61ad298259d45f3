//! The copy engine behind `copy-offload populate`: argument contract, the copy state machine and
//! its journal, host lease, metrics endpoint.
