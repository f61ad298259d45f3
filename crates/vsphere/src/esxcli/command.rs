//! The shape of a typed esxcli command.

use crate::error::Error;

use super::wire::EsxcliResponse;

/// One esxcli command as a value: the command line it runs and its typed answer.
pub trait Command {
    type Output;

    /// The command line, e.g. `["storage", "core", "device", "list", "-d", "naa.…"]`.
    fn argv(&self) -> Vec<String>;

    /// Reads the host's answer.
    fn output(&self, response: EsxcliResponse) -> Result<Self::Output, Error>;
}
