//! Latency and fault injection per call site (SOAP method, esxcli command, array endpoint, SSH op).
