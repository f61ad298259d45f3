//! The storage-array seam: the `StorageApi` trait every vendor implements, the shared HTTP layer,
//! NAA/WWN rules, and one module per vendor.
