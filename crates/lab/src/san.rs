//! The SAN model shared by all simulated arrays: volumes, initiator groups, LUN mappings, clone counters.
