//! [`HostDriver`]: the real [`Driver`], acting on the network namespace it was created in
//! through rtnetlink (links, addresses, routes, rules), wireguard-control (devices, peers),
//! `nft -j` (the firewall table) and `/proc/sys` (sysctls).

use std::path::PathBuf;

use kube_encrypt_api::dataplane::{FirewallSpec, Route, RouteKind, RuleSpec};
use kube_encrypt_api::diff::Change;
use kube_encrypt_api::net::Family;
use rtnetlink::Handle;

use super::batch::LinkIndexes;
use super::deadline::{bounded, CHANGE_TIMEOUT, OBSERVE_TIMEOUT};
use super::error::{io_text, netlink_errno};
use super::events::SharedInterest;
use super::firewall::Firewall;
use super::interface::Interfaces;
use super::links::{self, Link};
use super::observe::{find_device, observe_family, routing_tables, FoundDevice};
use super::routing::{self, describe_route, describe_rule};
use super::state::StateDir;
use super::sysctl::Sysctls;
use super::{Driver, DriverError, Observed, PrivateKeys, Scope, Watch};

/// How the driver finds its tools and keeps its state.
#[derive(Clone, Debug)]
pub struct HostDriverConfig {
    /// Where the driver keeps what the kernel cannot tell it (created, mode 0700).
    pub state_dir: PathBuf,
    /// A userspace WireGuard implementation such as `/usr/bin/wireguard-go`; `None` when
    /// none is available (only the kernel backend can be used).
    pub userspace_implementation: Option<PathBuf>,
    /// The `nft` program.
    pub nft: PathBuf,
    /// Root of the sysctl tree.
    pub sysctl_root: PathBuf,
}

impl HostDriverConfig {
    /// `nft` from `PATH` and `/proc/sys`.
    pub fn new(state_dir: impl Into<PathBuf>, userspace_implementation: Option<PathBuf>) -> Self {
        Self {
            state_dir: state_dir.into(),
            userspace_implementation,
            nft: PathBuf::from("nft"),
            sysctl_root: PathBuf::from("/proc/sys"),
        }
    }
}

/// The driver of the host's real dataplane.
pub struct HostDriver {
    pub(super) config: HostDriverConfig,
    pub(super) state: StateDir,
    pub(super) handle: Handle,
    /// Whether the kernel can create `wireguard` links; probed once per driver.
    pub(super) kernel_wireguard: tokio::sync::OnceCell<bool>,
    /// The links whose events matter, kept up to date by observations and host facts.
    pub(super) interest: SharedInterest,
}

impl std::fmt::Debug for HostDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostDriver")
            .field("config", &self.config)
            .finish()
    }
}

impl HostDriver {
    /// Opens the state directory and an rtnetlink connection in the current network
    /// namespace. Must be called inside a tokio runtime (the connection runs as a task).
    pub fn new(config: HostDriverConfig) -> Result<Self, DriverError> {
        let state = StateDir::open(&config.state_dir)?;
        let (connection, handle, _) = rtnetlink::new_connection()
            .map_err(|e| DriverError::new("open rtnetlink socket", io_text(&e)))?;
        tokio::spawn(connection);
        Ok(Self {
            config,
            state,
            handle,
            kernel_wireguard: tokio::sync::OnceCell::new(),
            interest: SharedInterest::default(),
        })
    }

    pub fn config(&self) -> &HostDriverConfig {
        &self.config
    }

    pub(super) fn interfaces(&self) -> Interfaces<'_> {
        Interfaces {
            handle: &self.handle,
            userspace: self.config.userspace_implementation.as_deref(),
            state: &self.state,
        }
    }

    fn firewall(&self) -> Firewall<'_> {
        Firewall {
            nft: self.config.nft.as_os_str(),
            state: &self.state,
        }
    }

    fn sysctls(&self) -> Sysctls<'_> {
        Sysctls::new(&self.state, &self.config.sysctl_root)
    }

    async fn create_interface(
        &self,
        family: Family,
        spec: &kube_encrypt_api::dataplane::InterfaceSpec,
        keys: &PrivateKeys,
    ) -> Result<(), DriverError> {
        let key = keys.keys.get(family).as_ref().ok_or_else(|| {
            DriverError::new(
                format!("create WireGuard interface {}", spec.name),
                format!("no {family} private key was supplied"),
            )
        })?;
        self.interfaces().create(family, spec, key.expose()).await
    }

    pub(super) async fn add_route(
        &self,
        family: Family,
        route: &Route,
        indexes: &mut LinkIndexes,
    ) -> Result<(), DriverError> {
        let operation = format!("add route {}", describe_route(route));
        let oif = self
            .route_device(&operation, family, route, indexes)
            .await?;
        routing::add_route(&self.handle, route, oif)
            .await
            .map_err(|e| DriverError::netlink(operation, &e))
    }

    /// Deleting a route that is not there succeeds: the table already looks as wanted.
    pub(super) async fn delete_route(
        &self,
        family: Family,
        route: &Route,
        indexes: &mut LinkIndexes,
    ) -> Result<(), DriverError> {
        let operation = format!("delete route {}", describe_route(route));
        let oif = match self.route_device(&operation, family, route, indexes).await {
            Ok(oif) => oif,
            // Without its device the route cannot exist any more.
            Err(_) if matches!(route.kind, RouteKind::Device(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        match routing::delete_route(&self.handle, route, oif).await {
            Err(e) if netlink_errno(&e) == Some(libc::ESRCH) => Ok(()),
            result => result.map_err(|e| DriverError::netlink(operation, &e)),
        }
    }

    /// Checks the route's family and finds the index of its device, from `indexes` when it
    /// was looked up before.
    async fn route_device(
        &self,
        operation: &str,
        family: Family,
        route: &Route,
        indexes: &mut LinkIndexes,
    ) -> Result<Option<u32>, DriverError> {
        if Family::of_net(&route.destination) != family {
            return Err(DriverError::new(
                operation,
                format!("not an {family} route"),
            ));
        }
        let RouteKind::Device(name) = &route.kind else {
            return Ok(None);
        };
        if let Some(index) = indexes.get(name) {
            return Ok(Some(*index));
        }
        let link = links::link_by_name(&self.handle, name)
            .await
            .map_err(|e| DriverError::netlink(operation, &e))?
            .ok_or_else(|| DriverError::new(operation, format!("no interface named {name}")))?;
        indexes.insert(name.clone(), link.index);
        Ok(Some(link.index))
    }

    async fn add_rule(&self, rule: &RuleSpec) -> Result<(), DriverError> {
        routing::add_rule(&self.handle, rule)
            .await
            .map_err(|e| DriverError::netlink(format!("add rule {}", describe_rule(rule)), &e))
    }

    /// Deleting a rule that is not there succeeds.
    async fn delete_rule(&self, rule: &RuleSpec) -> Result<(), DriverError> {
        match routing::delete_rule(&self.handle, rule).await {
            Err(e) if netlink_errno(&e) == Some(libc::ENOENT) => Ok(()),
            result => result.map_err(|e| {
                DriverError::netlink(format!("delete rule {}", describe_rule(rule)), &e)
            }),
        }
    }
}

/// What an observation reads before it looks at each family: the devices, the routes and
/// rules, the nftables table.
struct Reads {
    devices: [(Family, FoundDevice); 2],
    routing: Vec<(Vec<Route>, Option<RuleSpec>)>,
    firewall: Option<FirewallSpec>,
}

impl HostDriver {
    /// Tells the link-event watch which interfaces are the agent's.
    fn note_managed(&self, scope: &Scope) {
        self.interest.lock().expect("interest lock").managed = scope
            .families
            .iter()
            .flat_map(|(_, entries)| entries.iter().map(|e| e.interface.clone()))
            .collect();
    }

    async fn links(&self) -> Result<Vec<Link>, DriverError> {
        bounded("list links", OBSERVE_TIMEOUT, async {
            links::all_links(&self.handle)
                .await
                .map_err(|e| DriverError::netlink("list links", &e))
        })
        .await
    }

    /// The devices (read through their own sockets), the netlink dumps (one after the other:
    /// one socket serves one dump at a time) and `nft`, read at once.
    async fn read_at_once(&self, scope: &Scope, links: &[Link]) -> Result<Reads, DriverError> {
        let scopes = |family: Family| scope.families.get(family).as_slice();
        let device = |family: Family| async move {
            let operation = format!("read the {family} WireGuard device");
            let found = bounded(
                operation,
                OBSERVE_TIMEOUT,
                find_device(scopes(family), links),
            );
            Ok::<_, DriverError>((family, found.await?))
        };
        let routing = async {
            let mut tables = Vec::with_capacity(Family::ALL.len());
            for family in Family::ALL {
                let dumps = routing_tables(&self.handle, family, scopes(family), links);
                let operation = format!("list the {family} routes and rules");
                tables.push(bounded(operation, OBSERVE_TIMEOUT, dumps).await?);
            }
            Ok::<_, DriverError>(tables)
        };
        let nft = self.firewall();
        let operation = format!("list nftables table inet {}", super::firewall::TABLE);
        let firewall = bounded(operation, OBSERVE_TIMEOUT, nft.observe());
        let (v4, v6, routing, firewall) =
            futures::try_join!(device(Family::V4), device(Family::V6), routing, firewall)?;
        Ok(Reads {
            devices: [v4, v6],
            routing,
            firewall,
        })
    }
}

impl Driver for HostDriver {
    async fn observe(&self, scope: &Scope) -> Result<Observed, DriverError> {
        self.note_managed(scope);
        let links = self.links().await?;
        let peer_names = self.state.peer_names()?;
        let reads = self.read_at_once(scope, &links).await?;
        let mut observed = Observed::default();
        for ((family, device), routing) in reads.devices.into_iter().zip(reads.routing) {
            let found = bounded(
                format!("observe the {family} dataplane"),
                OBSERVE_TIMEOUT,
                observe_family(&self.handle, family, device, routing, &peer_names),
            )
            .await?;
            *observed.dataplane.families.get_mut(family) = found.dataplane;
            *observed.device_keys.get_mut(family) = found.device_key;
            *observed.peer_stats.get_mut(family) = found.peer_stats;
        }
        observed.dataplane.firewall = reads.firewall;
        observed.dataplane.sysctls = self.sysctls().observe()?;
        self.state.retry_unsaved();
        observed.state_problems = self.state.unsaved();
        Ok(observed)
    }

    async fn apply(&self, change: &Change, keys: &PrivateKeys) -> Result<(), DriverError> {
        bounded(
            change.to_string(),
            CHANGE_TIMEOUT,
            self.apply_unbounded(change, keys),
        )
        .await
    }

    async fn watch(
        &self,
        changes: std::sync::Arc<tokio::sync::Notify>,
    ) -> Result<Option<Watch>, DriverError> {
        self.watch_links(changes).await.map(Some)
    }

    async fn apply_batch(
        &self,
        changes: &[Change],
        keys: &PrivateKeys,
    ) -> Vec<Result<(), DriverError>> {
        self.apply_changes(changes, keys).await
    }
}

impl HostDriver {
    /// One change, without a deadline (callers bound it).
    pub(super) async fn apply_unbounded(
        &self,
        change: &Change,
        keys: &PrivateKeys,
    ) -> Result<(), DriverError> {
        match change {
            Change::CreateInterface { family, spec } => {
                self.create_interface(*family, spec, keys).await
            }
            Change::UpdateInterface { family, from, to } => {
                self.interfaces().update(*family, from, to).await
            }
            Change::DeleteInterface { name, .. } => self.interfaces().delete(name).await,
            Change::AddPeer { .. } | Change::UpdatePeer { .. } | Change::RemovePeer { .. } => {
                self.apply_peer_changes(std::slice::from_ref(change)).await
            }
            Change::AddRoute { family, route } => {
                self.add_route(*family, route, &mut LinkIndexes::new())
                    .await
            }
            Change::DeleteRoute { family, route } => {
                self.delete_route(*family, route, &mut LinkIndexes::new())
                    .await
            }
            Change::AddRule(rule) => self.add_rule(rule).await,
            Change::DeleteRule(rule) => self.delete_rule(rule).await,
            Change::ReplaceFirewall(spec) => self.firewall().replace(spec).await,
            Change::DeleteFirewall => self.firewall().delete().await,
            Change::SetSysctl(sysctl) => self.sysctls().set(sysctl),
            Change::RestoreSysctl { key } => self.sysctls().restore(key),
        }
    }
}
