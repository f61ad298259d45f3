//! The lab inventory (hosts, datastores, VMs, disks, arrays) from a small YAML scenario file.
