//! The Kubernetes controllers behind `copy-offload controller` (volume populator, Provider SSH keys,
//! offload planner). Not built yet.
