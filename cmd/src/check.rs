//! `kubectl encrypt check`: every pre-flight and health check, each passed, warned or failed
//! with its fix. Exit 2 when a check fails. Rule checks are the shared admission rules.

mod health;
pub mod install;

#[cfg(test)]
mod tests;

use std::io::{self, Write};

use serde::Serialize;

use crate::cluster::{Cluster, NodeScope};
use crate::format::write_structured;
use crate::style::{Paint, Style};
use crate::{Exit, Ui};

#[derive(clap::Args, Debug, Clone, Default)]
pub struct CheckArgs {}

/// The outcome of one check.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    /// Worth a look; does not fail the run.
    Warn,
    Fail,
}

#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    pub name: String,
    pub outcome: Outcome,
    pub detail: String,
    /// What to do about a warning or failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl CheckResult {
    pub fn pass(name: &str, detail: impl Into<String>) -> Self {
        Self::new(name, Outcome::Pass, detail, None)
    }

    pub fn warn(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(name, Outcome::Warn, detail, Some(fix.into()))
    }

    pub fn fail(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(name, Outcome::Fail, detail, Some(fix.into()))
    }

    fn new(name: &str, outcome: Outcome, detail: impl Into<String>, fix: Option<String>) -> Self {
        Self {
            name: name.to_owned(),
            outcome,
            detail: detail.into(),
            fix,
        }
    }
}

#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CheckReport {
    pub checks: Vec<CheckResult>,
    /// No check failed.
    pub passed: bool,
}

impl CheckReport {
    pub fn new(checks: Vec<CheckResult>) -> Self {
        let passed = checks.iter().all(|c| c.outcome != Outcome::Fail);
        Self { checks, passed }
    }
}

pub async fn run(
    cluster: &Cluster,
    _args: &CheckArgs,
    ui: Ui,
    out: &mut dyn Write,
) -> anyhow::Result<Exit> {
    let report = CheckReport::new(collect(cluster).await?);
    if !write_structured(&report, ui.output, out)? {
        write_table(&report, ui.style, out)?;
    }
    Ok(Exit::degraded_if(!report.passed))
}

/// Installation checks first; the cluster checks only when the CRDs are there to be read.
async fn collect(cluster: &Cluster) -> anyhow::Result<Vec<CheckResult>> {
    let crds = install::crds(cluster).await?;
    let crds_ok = crds.outcome == Outcome::Pass;
    let mut checks = vec![crds];
    checks.push(install::agents(cluster).await?);
    checks.push(install::webhook(cluster).await?);
    if crds_ok {
        let snapshot = cluster.snapshot(NodeScope::All).await?;
        checks.extend(health::checks(&snapshot));
    }
    Ok(checks)
}

pub fn write_table(report: &CheckReport, style: Style, out: &mut dyn Write) -> io::Result<()> {
    let width = report
        .checks
        .iter()
        .map(|c| c.name.chars().count())
        .max()
        .unwrap_or(0);
    for check in &report.checks {
        let (paint, sign) = match check.outcome {
            Outcome::Pass => (Paint::Good, "✓"),
            Outcome::Warn => (Paint::Warn, "!"),
            Outcome::Fail => (Paint::Bad, "✗"),
        };
        let pad = " ".repeat(width - check.name.chars().count());
        writeln!(
            out,
            "{} {}{pad}   {}",
            style.paint(paint, sign),
            check.name,
            check.detail
        )?;
        if let Some(fix) = &check.fix {
            writeln!(
                out,
                "  {pad:width$}   {} {fix}",
                style.paint(Paint::Strong, "fix:"),
                pad = ""
            )?;
        }
    }
    let failed = report
        .checks
        .iter()
        .filter(|c| c.outcome == Outcome::Fail)
        .count();
    writeln!(out)?;
    match failed {
        0 => writeln!(out, "{} all checks passed", style.mark(true)),
        n => writeln!(
            out,
            "{} {n} check{} failed",
            style.mark(false),
            if n == 1 { "" } else { "s" }
        ),
    }
}
