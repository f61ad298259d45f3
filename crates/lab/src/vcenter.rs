//! The simulated vCenter/ESXi VIM SOAP endpoint and `/folder` file transfer.
