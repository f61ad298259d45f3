//! Kubernetes API types shared by every copy-offload component: the `VSphereXcopyVolumePopulator`
//! CRD (spec + status), the subsets of Forklift's `StorageMap`, `Provider` and `Plan` we read, and
//! the closed enums (`StorageVendorProduct`, `CloneMethod`). Pure data: no I/O.
