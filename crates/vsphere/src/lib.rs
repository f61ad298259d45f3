//! VIM SOAP client for vCenter and ESXi: transport, session, faults, property collection,
//! typed inventory views, datastore file transfer and esxcli over the API.
