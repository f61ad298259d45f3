//! Storage-array REST facades over the shared SAN model, one module per vendor.
