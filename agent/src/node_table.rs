//! The Nodes as the agent keeps them between rounds: every Node is converted once, when the
//! watch delivers it, into the planner's [`NodeView`] (the one conversion,
//! [`NodeView::from_node`], so each Node is still validated as untrusted input), and only the
//! view is kept; of the Node objects themselves only the agent's own stays (its annotations
//! and uid are what the agent writes against).
//!
//! A round then plans from the views as they are, instead of converting thousands of Nodes
//! again, and a Node change the planner cannot see (a heartbeat, another annotation) is told
//! apart by comparing views. A view is a few hundred bytes where the Node object with its
//! maps and nested options is several KiB: at 15,000 nodes the difference is most of the
//! agent's memory.
//!
//! The views are shared with the snapshots (copy on write): changes are collected as they
//! come and merged, in one pass, into the sorted views when the next snapshot is taken.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use kube::runtime::watcher::Event;
use kube_encrypt_api::node::NodeView;

/// Every node's view, sorted by name, and the agent's own Node.
#[derive(Debug)]
pub struct NodeTable {
    own_name: String,
    /// Sorted by name; shared with the snapshots taken.
    views: Arc<Vec<NodeView>>,
    /// Changes not merged into `views` yet: the new view, or `None` for a deleted node.
    pending: BTreeMap<String, Option<NodeView>>,
    own: Option<Arc<Node>>,
    /// A list in progress (the first one, or a relist after the watch expired).
    relist: Option<Listed>,
    synced: bool,
}

/// What a list delivered so far.
#[derive(Debug, Default)]
struct Listed {
    views: Vec<NodeView>,
    own: Option<Arc<Node>>,
}

/// What a snapshot holds of the nodes.
#[derive(Clone, Debug, Default)]
pub struct NodeSnapshot {
    /// Every node's view, sorted by name.
    pub views: Arc<Vec<NodeView>>,
    /// The agent's own Node, when it exists.
    pub own: Option<Arc<Node>>,
}

impl NodeTable {
    /// An empty table for the agent of node `own_name`.
    pub fn new(own_name: impl Into<String>) -> Self {
        Self {
            own_name: own_name.into(),
            views: Arc::default(),
            pending: BTreeMap::new(),
            own: None,
            relist: None,
            synced: false,
        }
    }

    /// Whether a first list completed.
    pub fn synced(&self) -> bool {
        self.synced
    }

    /// Takes one watch event; true when what a round reads changed: a node's view, the
    /// agent's own Node, the set of nodes — and always at the end of the first list.
    pub fn apply(&mut self, event: Event<Node>) -> bool {
        match event {
            Event::Init => {
                self.relist = Some(Listed::default());
                false
            }
            Event::InitApply(node) => {
                let listed = self.relist.get_or_insert_with(Listed::default);
                let view = NodeView::from_node(&node);
                if view.name == self.own_name {
                    listed.own = Some(Arc::new(node));
                }
                listed.views.push(view);
                false
            }
            Event::InitDone => self.finish_list(),
            Event::Apply(node) => self.upsert(node),
            Event::Delete(node) => self.delete(node.metadata.name.as_deref().unwrap_or_default()),
        }
    }

    /// The views (merging the changes collected since the last snapshot) and the own Node.
    pub fn snapshot(&mut self) -> NodeSnapshot {
        self.merge_pending();
        NodeSnapshot {
            views: self.views.clone(),
            own: self.own.clone(),
        }
    }

    fn upsert(&mut self, node: Node) -> bool {
        let view = NodeView::from_node(&node);
        let own_changed = view.name == self.own_name && self.own.as_deref() != Some(&node);
        if own_changed {
            self.own = Some(Arc::new(node));
        }
        let view_changed = self.current(&view.name) != Some(&view);
        if view_changed {
            self.pending.insert(view.name.clone(), Some(view));
        }
        view_changed || own_changed
    }

    fn delete(&mut self, name: &str) -> bool {
        let own_gone = name == self.own_name && self.own.take().is_some();
        let known = self.current(name).is_some();
        if known {
            self.pending.insert(name.to_owned(), None);
        }
        known || own_gone
    }

    /// The end of a list: the listed nodes replace the table.
    fn finish_list(&mut self) -> bool {
        let listed = self.relist.take().unwrap_or_default();
        let mut views = listed.views;
        views.sort_by(|a, b| a.name.cmp(&b.name));
        // A name listed twice keeps its last view, as a store keyed by name would.
        views.reverse();
        views.dedup_by(|later, earlier| later.name == earlier.name);
        views.reverse();
        self.merge_pending();
        let first = !std::mem::replace(&mut self.synced, true);
        let changed = *self.views != views || self.own != listed.own;
        self.views = Arc::new(views);
        self.own = listed.own;
        changed || first || self.views.is_empty()
    }

    /// The node's view as the table holds it now, pending changes included.
    fn current(&self, name: &str) -> Option<&NodeView> {
        match self.pending.get(name) {
            Some(pending) => pending.as_ref(),
            None => self
                .views
                .binary_search_by(|v| v.name.as_str().cmp(name))
                .ok()
                .map(|i| &self.views[i]),
        }
    }

    /// Merges the pending changes into the sorted views in one pass (the views are copied
    /// first only when a snapshot still holds them).
    fn merge_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        let views = Arc::try_unwrap(std::mem::take(&mut self.views))
            .unwrap_or_else(|shared| shared.as_ref().clone());
        let mut merged = Vec::with_capacity(views.len() + pending.len());
        let mut changes = pending.into_iter().peekable();
        for view in views {
            while let Some((_, change)) = changes.next_if(|(name, _)| *name < view.name) {
                merged.extend(change);
            }
            match changes.next_if(|(name, _)| *name == view.name) {
                Some((_, change)) => merged.extend(change),
                None => merged.push(view),
            }
        }
        merged.extend(changes.filter_map(|(_, change)| change));
        self.views = Arc::new(merged);
    }
}

#[cfg(test)]
mod tests;
