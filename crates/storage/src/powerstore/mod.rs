//! Dell PowerStore: the vendor's settings. Its plugin is not in this build yet: connecting fails with
//! "not implemented in this build yet" (see [`crate::vendor::connect`]).

mod settings;

pub use settings::*;
