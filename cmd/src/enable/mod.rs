//! `kubectl encrypt enable`: run the shared rules against the live pools, explain every
//! failure with its fix (`--fix-nat-outgoing` for NAT outgoing), refuse GitOps-managed objects
//! unless `--force`, then apply server-side as `kubectl-encrypt` and optionally `--wait`.

pub mod nat;

use std::io::Write;

use anyhow::bail;
use kube_encrypt_api::crd::{EncryptionConfig, IPPool, RouteSource, SINGLETON_NAME};
use kube_encrypt_api::net::Family;

use crate::apply::{Apply, DryRun};
use crate::cluster::Cluster;
use crate::gitops;
use crate::intent::{intent, Intent, Set};
use crate::preflight::Preflight;
use crate::wait::{self, Goal, WaitArgs};
use crate::{Exit, Ui};

#[derive(clap::Args, Debug, Clone)]
pub struct EnableArgs {
    /// Encrypt IPv4 traffic (the default when neither --ipv4 nor --ipv6 is given)
    #[arg(long)]
    pub ipv4: bool,
    /// Encrypt IPv6 traffic (needs natOutgoing: true on every enabled IPv6 IPPool)
    #[arg(long)]
    pub ipv6: bool,
    /// Interface MTU of the families named here; 0 = automatic
    #[arg(long, value_name = "N")]
    pub mtu: Option<i64>,
    /// WireGuard UDP port of the families named here
    #[arg(long, value_name = "N")]
    pub port: Option<i64>,
    /// Also encrypt host-to-host traffic (--host-encryption=false turns it off)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub host_encryption: Option<bool>,
    /// Where nodes' allowed IPs come from
    #[arg(long, value_enum, value_name = "SOURCE")]
    pub route_source: Option<RouteSourceArg>,
    /// Show the change without making it: client (send nothing) or server (validate only)
    #[arg(long, value_enum, value_name = "MODE", num_args = 0..=1, require_equals = true, default_missing_value = "client")]
    pub dry_run: Option<DryRun>,
    /// Set natOutgoing: true on the enabled pools of the enabled families that lack it
    #[arg(long)]
    pub fix_nat_outgoing: bool,
    /// Write even when Argo CD or Flux manages the objects, and take fields other managers own
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// `spec.routeSource` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteSourceArg {
    /// The nodes' spec.podCIDRs
    #[value(name = "PodCIDRs", alias = "pod-cidrs")]
    PodCidrs,
    /// The IPs of each node's pods (Azure CNI, AWS VPC CNI)
    #[value(name = "WorkloadIPs", alias = "workload-ips")]
    WorkloadIps,
}

impl EnableArgs {
    /// The families this command enables.
    pub fn families(&self) -> Vec<Family> {
        match (self.ipv4, self.ipv6) {
            (false, false) | (true, false) => vec![Family::V4],
            (false, true) => vec![Family::V6],
            (true, true) => vec![Family::V4, Family::V6],
        }
    }

    /// The config fields this command sets.
    pub fn sets(&self) -> Vec<Set> {
        let mut sets = Vec::new();
        for family in self.families() {
            sets.push(Set::Enabled(family, true));
            sets.extend(self.mtu.map(|mtu| Set::Mtu(family, mtu)));
            sets.extend(self.port.map(|port| Set::Port(family, port)));
        }
        sets.extend(self.host_encryption.map(Set::HostEncryption));
        sets.extend(self.route_source.map(|s| {
            Set::RouteSource(match s {
                RouteSourceArg::PodCidrs => RouteSource::PodCidrs,
                RouteSourceArg::WorkloadIps => RouteSource::WorkloadIps,
            })
        }));
        sets
    }
}

pub async fn run(
    cluster: &Cluster,
    args: &EnableArgs,
    ui: Ui,
    out: &mut dyn Write,
) -> anyhow::Result<Exit> {
    let (config, pools) = tokio::try_join!(cluster.config(), cluster.pools())?;
    refuse_gitops_config(config.as_ref(), args.force)?;
    let intent = intent(config.as_ref(), &args.sets());
    let families = intent.spec.enabled_families();
    let fixes = match args.fix_nat_outgoing {
        true => nat::plan_fixes(&pools, &families),
        false => Vec::new(),
    };
    refuse_gitops_pools(fixes.iter().map(|f| &f.pool), args.force)?;
    let preflight = Preflight::evaluate(&intent.spec, &pools, fixes);
    preflight.write(ui.style, out)?;
    if !preflight.passed() {
        out.flush()?;
        bail!(preflight.refusal("enable", args.fix_nat_outgoing));
    }
    let written = write(cluster, &intent, &preflight, args.dry_run, args.force, out).await?;
    match (written, args.wait.wait) {
        (Some(config), true) => {
            let goal = Goal::Encrypted(families);
            wait::follow(cluster, &config, goal, args.wait.timeout, ui, out).await
        }
        _ => Ok(Exit::Done),
    }
}

/// Refuses a config that Argo CD or Flux manages, unless forced.
pub fn refuse_gitops_config(config: Option<&EncryptionConfig>, force: bool) -> anyhow::Result<()> {
    let Some(config) = config else { return Ok(()) };
    match gitops::owner(&config.metadata) {
        Some(owner) if !force => bail!(gitops::refusal("EncryptionConfig", SINGLETON_NAME, &owner)),
        _ => Ok(()),
    }
}

fn refuse_gitops_pools<'a>(
    pools: impl Iterator<Item = &'a IPPool>,
    force: bool,
) -> anyhow::Result<()> {
    for pool in pools {
        let name = pool.metadata.name.as_deref().unwrap_or_default();
        match gitops::owner(&pool.metadata) {
            Some(owner) if !force => bail!(gitops::refusal("IPPool", name, &owner)),
            _ => {}
        }
    }
    Ok(())
}

/// Applies the pool fixes, then the config. Returns the config as the server has it (`None`
/// for a client dry run, which only prints).
pub async fn write(
    cluster: &Cluster,
    intent: &Intent,
    preflight: &Preflight,
    dry_run: Option<DryRun>,
    force: bool,
    out: &mut dyn Write,
) -> anyhow::Result<Option<EncryptionConfig>> {
    let mut config_apply = Apply::new("EncryptionConfig", SINGLETON_NAME, intent.patch.clone());
    config_apply.force = force;
    if dry_run == Some(DryRun::Client) {
        print_client_dry_run(preflight, &config_apply, out)?;
        return Ok(None);
    }
    let server_dry_run = dry_run == Some(DryRun::Server);
    let suffix = if server_dry_run {
        " (server dry run)"
    } else {
        ""
    };
    for fix in &preflight.fixes {
        let mut apply = fix.apply();
        apply.dry_run = server_dry_run;
        apply.send(cluster, &cluster.pools_api()).await?;
        writeln!(
            out,
            "IPPool {:?} natOutgoing set to true{suffix}",
            fix.name()
        )?;
    }
    config_apply.dry_run = server_dry_run;
    let config = config_apply.send(cluster, &cluster.configs()).await?;
    writeln!(
        out,
        "EncryptionConfig {SINGLETON_NAME:?} applied: {}{suffix}",
        summary(&config)
    )?;
    Ok((!server_dry_run).then_some(config))
}

fn print_client_dry_run(
    preflight: &Preflight,
    config: &Apply,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    for fix in &preflight.fixes {
        writeln!(
            out,
            "---\n{}",
            serde_yaml::to_string(&fix.apply().patch)?.trim_end()
        )?;
    }
    writeln!(
        out,
        "---\n{}",
        serde_yaml::to_string(&config.patch)?.trim_end()
    )?;
    writeln!(out, "(client dry run: nothing was sent)")?;
    Ok(())
}

/// `IPv4 on, IPv6 off`.
pub fn summary(config: &EncryptionConfig) -> String {
    Family::ALL
        .iter()
        .map(|f| {
            let on = if config.spec.family(*f).enabled {
                "on"
            } else {
                "off"
            };
            format!("{f} {on}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}
