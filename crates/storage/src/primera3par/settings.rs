//! HPE Primera / 3PAR reads no keys of its own.

crate::settings::settings_without_keys!(Primera3Par);
