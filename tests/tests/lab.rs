//! The lab itself (root, network namespaces): lifecycle, bad input, rollback, the objects it
//! registers in the emulator, the agent supervisor; and the agents end to end in it: dual
//! stack, faults, bad data, MTU; and the soak harness for a minute. Tests hold the lab test
//! lock, so they run one lab at a time, also across test binaries and with other users of
//! the machine.

mod lab {
    pub mod agents;
    pub mod baddata;
    pub mod capture;
    pub mod cluster;
    pub mod control_plane;
    pub mod dualstack;
    pub mod encryption;
    pub mod faults;
    pub mod hostile;
    pub mod inspect;
    pub mod lifecycle;
    pub mod mtu;
    pub mod plugin;
    pub mod pmtu;
    pub mod soak;
    pub mod support;
    pub mod webhook;
}
