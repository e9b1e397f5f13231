//! `kubectl encrypt status`: the config, the pools, every node's encryption, warnings and
//! skipped peers; exit 2 when degraded. `--watch` reprints on every change.

pub mod model;
pub mod table;

#[cfg(test)]
mod tests;

use std::io::Write;
use std::time::Duration;

use futures::{stream, StreamExt};
use k8s_openapi::api::core::v1::Node;
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;

use crate::cluster::{Cluster, NodeScope};
use crate::format::write_structured;
use crate::{Exit, Ui};

pub use model::{build, StatusReport};

#[derive(clap::Args, Debug, Clone, Default)]
pub struct StatusArgs {
    /// Show only this node
    #[arg(long, value_name = "NODE")]
    pub node: Option<String>,
    /// Keep running and print the status again whenever it changes (Ctrl-C ends)
    #[arg(short = 'w', long)]
    pub watch: bool,
}

/// Changes arriving within this window are shown together.
const SETTLE: Duration = Duration::from_millis(200);

pub async fn run(
    cluster: &Cluster,
    args: &StatusArgs,
    ui: Ui,
    out: &mut dyn Write,
) -> anyhow::Result<Exit> {
    let scope = args.node.as_deref().map_or(NodeScope::All, NodeScope::One);
    let report = build(&cluster.snapshot(scope).await?);
    print(&report, ui, out)?;
    if !args.watch {
        return Ok(Exit::degraded_if(report.degraded));
    }
    watch(cluster, scope, report, ui, out).await
}

/// Writes one report in the chosen format.
pub fn print(report: &StatusReport, ui: Ui, out: &mut dyn Write) -> anyhow::Result<()> {
    if !write_structured(report, ui.output, out)? {
        let wide = ui.output == crate::cli::OutputFormat::Wide;
        table::write(report, wide, ui.style, out)?;
    }
    out.flush()?;
    Ok(())
}

/// Reprints whenever a config, pool, node or NodeEncryption changes, until Ctrl-C.
async fn watch(
    cluster: &Cluster,
    scope: NodeScope<'_>,
    mut last: StatusReport,
    ui: Ui,
    out: &mut dyn Write,
) -> anyhow::Result<Exit> {
    let mut changes = changes(cluster);
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        // Biased: Ctrl-C is polled first, so its handler is installed on the first turn
        // (the future installs it when first polled; a ready change would otherwise win
        // every turn and leave SIGINT to kill the process without the verdict's exit code).
        tokio::select! {
            biased;
            _ = &mut interrupted => return Ok(Exit::degraded_if(last.degraded)),
            change = changes.next() => {
                if change.is_none() {
                    anyhow::bail!("the watch on the cluster ended");
                }
            }
        }
        settle(&mut changes).await;
        let report = build(&cluster.snapshot(scope).await?);
        if report != last {
            separate(ui, out)?;
            print(&report, ui, out)?;
            last = report;
        }
    }
}

/// Drains the changes that arrive within [`SETTLE`].
async fn settle(changes: &mut (impl stream::Stream + Unpin)) {
    let deadline = tokio::time::Instant::now() + SETTLE;
    while tokio::time::timeout_at(deadline, changes.next())
        .await
        .is_ok_and(|c| c.is_some())
    {}
}

/// A terminal is cleared; anything else gets a dated separator.
fn separate(ui: Ui, out: &mut dyn Write) -> std::io::Result<()> {
    if ui.terminal && ui.output.is_table() {
        write!(out, "\x1b[2J\x1b[H")
    } else if ui.output.is_table() {
        writeln!(
            out,
            "\n--- {}",
            jiff::Zoned::now().strftime("%Y-%m-%d %H:%M:%S")
        )
    } else if ui.output == crate::cli::OutputFormat::Yaml {
        writeln!(out, "---")
    } else {
        Ok(())
    }
}

/// One item per event of the watched kinds (errors included: the next snapshot shows them).
fn changes(cluster: &Cluster) -> impl stream::Stream<Item = ()> + Unpin {
    let client = cluster.client().clone();
    let config = watcher::Config::default();
    let nodes: Api<Node> = Api::all(client);
    stream::select_all([
        watcher(cluster.configs(), config.clone())
            .default_backoff()
            .map(|_| ())
            .boxed(),
        watcher(cluster.pools_api(), config.clone())
            .default_backoff()
            .map(|_| ())
            .boxed(),
        watcher(cluster.encryptions_api(), config.clone())
            .default_backoff()
            .map(|_| ())
            .boxed(),
        watcher(nodes, config).default_backoff().map(|_| ()).boxed(),
    ])
}
