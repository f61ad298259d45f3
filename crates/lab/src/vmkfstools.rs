//! The simulated `vmkfstools` clone engine: VMDK descriptors in, bytes onto the target volume.
