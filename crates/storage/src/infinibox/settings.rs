//! Infinidat InfiniBox reads no keys of its own.

crate::settings::settings_without_keys!(InfiniBox);
