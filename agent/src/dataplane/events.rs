//! Link events: the kernel reports every link that appears, changes or goes away
//! (`RTNLGRP_LINK`), so the loop runs a round within its debounce when a WireGuard interface
//! vanishes (its userspace daemon died) or the underlay's MTU or state changes, instead of
//! waiting for the resync.
//!
//! Only links the agent cares about count: the interfaces of its scope and the underlay
//! interfaces of the last host facts, both recorded by the driver as it works. Pods coming
//! and going (veth links) wake nothing.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use rtnetlink::packet_core::NetlinkPayload;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::MulticastGroup;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::error::io_text;
use super::links::{self, link_from_message, Link};
use super::{DriverError, HostDriver};

/// The link names whose events start a round.
#[derive(Debug, Default)]
pub(crate) struct Interest {
    /// WireGuard interfaces of the observed scope.
    pub(crate) managed: BTreeSet<String>,
    /// Interfaces carrying the node's addresses, from the last host facts.
    pub(crate) underlay: BTreeSet<String>,
}

impl Interest {
    fn contains(&self, name: &str) -> bool {
        self.managed.contains(name) || self.underlay.contains(name)
    }
}

/// One link notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LinkEvent {
    New(Link),
    Deleted(Link),
}

/// The links as last reported, by index, to tell a change from a repeat.
pub(crate) type KnownLinks = HashMap<u32, Link>;

/// Whether `event` matters to the agent; updates `known`. A link of interest matters when it
/// is deleted, appears, is renamed, or changes MTU or up state.
pub(crate) fn relevant(event: &LinkEvent, known: &mut KnownLinks, interest: &Interest) -> bool {
    match event {
        LinkEvent::Deleted(link) => {
            known.remove(&link.index);
            interest.contains(&link.name)
        }
        LinkEvent::New(link) => {
            let before = known.insert(link.index, link.clone());
            let changed = before.as_ref().is_none_or(|old| {
                old.name != link.name || old.mtu != link.mtu || old.up != link.up
            });
            let named = |l: &Link| interest.contains(&l.name);
            changed && (named(link) || before.as_ref().is_some_and(named))
        }
    }
}

/// A running watch of host events; stops when dropped.
#[derive(Debug)]
pub struct Watch {
    task: JoinHandle<()>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HostDriver {
    /// Subscribes to link events in the driver's namespace and notifies `changes` on every
    /// relevant one, until the returned guard is dropped.
    pub async fn watch_links(&self, changes: Arc<Notify>) -> Result<Watch, DriverError> {
        let operation = "subscribe to link events";
        let (connection, _, mut messages) =
            rtnetlink::new_multicast_connection(&[MulticastGroup::Link])
                .map_err(|e| DriverError::new(operation, io_text(&e)))?;
        let connection = tokio::spawn(connection);
        let mut known: KnownLinks = links::all_links(&self.handle)
            .await
            .map_err(|e| DriverError::netlink(operation, &e))?
            .into_iter()
            .map(|link| (link.index, link))
            .collect();
        let interest = self.interest.clone();
        let task = tokio::spawn(async move {
            while let Some((message, _)) = messages.next().await {
                let Some(event) = link_event(message.payload) else {
                    continue;
                };
                if relevant(&event, &mut known, &interest.lock().expect("interest lock")) {
                    tracing::debug!(?event, "link event; reconciling");
                    changes.notify_one();
                }
            }
            tracing::warn!("link events stopped; relying on the resync");
            connection.abort();
        });
        Ok(Watch { task })
    }
}

fn link_event(payload: NetlinkPayload<RouteNetlinkMessage>) -> Option<LinkEvent> {
    match payload {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(message)) => {
            link_from_message(&message).map(LinkEvent::New)
        }
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(message)) => {
            link_from_message(&message).map(LinkEvent::Deleted)
        }
        _ => None,
    }
}

/// Shared between the driver (which records what it manages) and the watch.
pub(crate) type SharedInterest = Arc<Mutex<Interest>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changes_of_managed_and_underlay_links_wake_the_loop() {
        let interest = Interest {
            managed: BTreeSet::from(["wg-encrypt".to_owned()]),
            underlay: BTreeSet::from(["eth0".to_owned()]),
        };
        let mut known = KnownLinks::from([
            (2, Link::test(2, "eth0", 1500, true)),
            (7, Link::test(7, "wg-encrypt", 1420, true)),
        ]);
        let cases = [
            (
                "a pod's veth appears",
                LinkEvent::New(Link::test(9, "veth1", 1500, true)),
                false,
            ),
            (
                "and goes",
                LinkEvent::Deleted(Link::test(9, "veth1", 1500, true)),
                false,
            ),
            (
                "eth0 repeated unchanged",
                LinkEvent::New(Link::test(2, "eth0", 1500, true)),
                false,
            ),
            (
                "the underlay MTU changes",
                LinkEvent::New(Link::test(2, "eth0", 9000, true)),
                true,
            ),
            (
                "the underlay goes down",
                LinkEvent::New(Link::test(2, "eth0", 9000, false)),
                true,
            ),
            (
                "the daemon dies",
                LinkEvent::Deleted(Link::test(7, "wg-encrypt", 1420, true)),
                true,
            ),
            (
                "the interface comes back",
                LinkEvent::New(Link::test(8, "wg-encrypt", 1420, false)),
                true,
            ),
            (
                "it is brought up",
                LinkEvent::New(Link::test(8, "wg-encrypt", 1420, true)),
                true,
            ),
            (
                "renamed away",
                LinkEvent::New(Link::test(8, "stolen", 1420, true)),
                true,
            ),
        ];
        for (name, event, wakes) in cases {
            assert_eq!(relevant(&event, &mut known, &interest), wakes, "{name}");
        }
    }
}
