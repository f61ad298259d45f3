//! Dell PowerStore reads no keys of its own.

crate::settings::settings_without_keys!(PowerStore);
