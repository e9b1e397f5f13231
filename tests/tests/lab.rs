//! The lab itself (root, network namespaces): lifecycle, bad input, rollback, the objects it
//! registers in the emulator, the agent supervisor. Tests hold the lab test lock, so they
//! run one lab at a time, also across test binaries and with other users of the machine.

mod lab {
    pub mod agents;
    pub mod cluster;
    pub mod encryption;
    pub mod lifecycle;
    pub mod support;
}
