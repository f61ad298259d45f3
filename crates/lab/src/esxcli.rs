//! esxcli over `ExecuteSoap`: the namespaces the product uses, answered from the simulated host state.
