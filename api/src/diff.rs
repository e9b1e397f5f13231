//! The difference between a desired and an observed [`Dataplane`] as an ordered list of
//! changes. Applying the changes in order turns the observed state into the desired one;
//! an empty list means there is nothing to do. Each change prints as one log line.

use crate::dataplane::{FirewallSpec, InterfaceSpec, PeerSpec, Route, RuleSpec, Sysctl};
use crate::key::WireGuardKey;
use crate::net::Family;

/// One step towards the desired dataplane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Create the WireGuard interface (with the agent's private key for the family), set its
    /// port, fwmark, MTU and address, and bring it up.
    CreateInterface {
        family: Family,
        spec: InterfaceSpec,
    },
    /// Change port, fwmark, MTU or address of an existing interface (same name).
    UpdateInterface {
        family: Family,
        from: InterfaceSpec,
        to: InterfaceSpec,
    },
    /// Remove the interface (and with it its peers and device routes).
    DeleteInterface {
        family: Family,
        name: String,
    },
    AddPeer {
        family: Family,
        interface: String,
        peer: PeerSpec,
    },
    /// Same public key, other endpoint, allowed IPs or keepalive.
    UpdatePeer {
        family: Family,
        interface: String,
        from: PeerSpec,
        to: PeerSpec,
    },
    RemovePeer {
        family: Family,
        interface: String,
        public_key: WireGuardKey,
        node: String,
    },
    AddRoute {
        family: Family,
        route: Route,
    },
    DeleteRoute {
        family: Family,
        route: Route,
    },
    AddRule(RuleSpec),
    DeleteRule(RuleSpec),
    /// Replace the agent's nftables table atomically (create it when absent).
    ReplaceFirewall(FirewallSpec),
    DeleteFirewall,
    /// Set a kernel setting (the agent remembers the value it replaced).
    SetSysctl(Sysctl),
    /// Put back the value a kernel setting had before the agent set it.
    RestoreSysctl {
        key: String,
    },
}
