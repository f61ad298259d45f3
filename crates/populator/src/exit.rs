//! Process exit codes: defined by the shared contract (`co_api::contract::exit`), re-exported
//! here for the populator's callers.

pub use co_api::contract::{ErrorClass, ExitCode};
