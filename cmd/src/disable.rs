//! `kubectl encrypt disable`: turn one family or all off (server-side apply as
//! `kubectl-encrypt`); the agents remove interfaces, routes, rules and firewall tables.

use std::io::Write;

use anyhow::bail;
use kube_encrypt_api::net::Family;

use crate::apply::DryRun;
use crate::cluster::Cluster;
use crate::enable::{refuse_gitops_config, write};
use crate::intent::{intent, Set};
use crate::preflight::Preflight;
use crate::wait::{self, Goal, WaitArgs};
use crate::{Exit, Ui};

#[derive(clap::Args, Debug, Clone)]
#[command(group = clap::ArgGroup::new("families").multiple(false))]
pub struct DisableArgs {
    /// Turn IPv4 encryption off
    #[arg(long, group = "families")]
    pub ipv4: bool,
    /// Turn IPv6 encryption off
    #[arg(long, group = "families")]
    pub ipv6: bool,
    /// Turn both off (the default)
    #[arg(long, group = "families")]
    pub all: bool,
    /// Show the change without making it: client (send nothing) or server (validate only)
    #[arg(long, value_enum, value_name = "MODE", num_args = 0..=1, require_equals = true, default_missing_value = "client")]
    pub dry_run: Option<DryRun>,
    /// Write even when Argo CD or Flux manages the config
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub wait: WaitArgs,
}

impl DisableArgs {
    pub fn families(&self) -> Vec<Family> {
        match (self.ipv4, self.ipv6) {
            (true, _) => vec![Family::V4],
            (_, true) => vec![Family::V6],
            _ => Family::ALL.to_vec(),
        }
    }
}

pub async fn run(
    cluster: &Cluster,
    args: &DisableArgs,
    ui: Ui,
    out: &mut dyn Write,
) -> anyhow::Result<Exit> {
    let (config, pools) = tokio::try_join!(cluster.config(), cluster.pools())?;
    let Some(live) = config else {
        writeln!(
            out,
            "no EncryptionConfig \"default\": encryption is already off"
        )?;
        return Ok(Exit::Done);
    };
    refuse_gitops_config(Some(&live), args.force)?;
    let families = args.families();
    let sets: Vec<Set> = families.iter().map(|f| Set::Enabled(*f, false)).collect();
    let intent = intent(Some(&live), &sets);
    let preflight = Preflight::evaluate(&intent.spec, &pools, Vec::new());
    if !preflight.passed() {
        preflight.write(ui.style, out)?;
        out.flush()?;
        bail!(preflight.refusal("disable", false));
    }
    let written = write(cluster, &intent, &preflight, args.dry_run, args.force, out).await?;
    match (written, args.wait.wait) {
        (Some(config), true) => {
            wait::follow(
                cluster,
                &config,
                Goal::Disabled(families),
                args.wait.timeout,
                ui,
                out,
            )
            .await
        }
        _ => Ok(Exit::Done),
    }
}
