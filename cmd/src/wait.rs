//! `--wait`: follow the NodeEncryption objects until every node concerned has a final state,
//! bounded by `--timeout`. A progress bar on a terminal, one plain line per change otherwise.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use anyhow::anyhow;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kube::runtime::{watcher, WatchStreamExt};
use kube_encrypt_api::crd::{
    EncryptionConfig, EncryptionState, NodeEncryption, NodeEncryptionStatus,
};
use kube_encrypt_api::net::Family;

use crate::cluster::{Cluster, NodeScope};
use crate::fleet::Fleet;
use crate::style::{Paint, Style};
use crate::{Exit, Ui};

/// `--wait` and `--timeout`.
#[derive(clap::Args, Debug, Clone)]
pub struct WaitArgs {
    /// Wait until every node concerned reports a final state
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits, such as 90s, 5m or 1h
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// A duration as people write it: `90s`, `5m`, `1h30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let parsed: jiff::SignedDuration = text
        .parse()
        .map_err(|e| format!("{text:?} is not a duration such as 90s, 5m or 1h30m: {e}"))?;
    Duration::try_from(parsed).map_err(|_| format!("{text:?} is negative"))
}

/// What the nodes must reach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Goal {
    /// Every participating node: these families Encrypted (Unsupported and Error are final
    /// too, but degrade the result).
    Encrypted(Vec<Family>),
    /// Every node: these families no longer carried (Disabled, or not reported).
    Disabled(Vec<Family>),
}

/// Where one node stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pending(String),
    Done,
    /// Final but not what was asked for: why.
    Failed(String),
}

impl Goal {
    /// The verdict on one node's report.
    pub fn judge(&self, report: Option<&NodeEncryptionStatus>) -> Verdict {
        let families = match self {
            Goal::Encrypted(f) | Goal::Disabled(f) => f,
        };
        let mut verdict = Verdict::Done;
        for family in families {
            let status = report.and_then(|r| match family {
                Family::V4 => r.ipv4.as_ref(),
                Family::V6 => r.ipv6.as_ref(),
            });
            let state = status.map(|s| s.state);
            let describe = || match status {
                Some(s) if !s.message.is_empty() => {
                    format!("{family} {:?}: {}", s.state, s.message)
                }
                Some(s) => format!("{family} {:?}", s.state),
                None => format!("{family} not reported"),
            };
            let next = match (self, state) {
                (Goal::Encrypted(_), Some(EncryptionState::Encrypted)) => Verdict::Done,
                (
                    Goal::Encrypted(_),
                    Some(EncryptionState::Unsupported | EncryptionState::Error),
                ) => Verdict::Failed(describe()),
                (Goal::Encrypted(_), _) => Verdict::Pending(describe()),
                (Goal::Disabled(_), Some(EncryptionState::Error)) => Verdict::Failed(describe()),
                (Goal::Disabled(_), Some(EncryptionState::Encrypted)) => {
                    Verdict::Pending(describe())
                }
                (Goal::Disabled(_), _) => Verdict::Done,
            };
            verdict = worse(verdict, next);
        }
        verdict
    }

    fn word(&self) -> &'static str {
        match self {
            Goal::Encrypted(_) => "encrypted",
            Goal::Disabled(_) => "disabled",
        }
    }
}

/// Pending outranks Failed outranks Done: a node is final only when every family is.
fn worse(a: Verdict, b: Verdict) -> Verdict {
    match (&a, &b) {
        (Verdict::Pending(_), _) => a,
        (_, Verdict::Pending(_)) => b,
        (Verdict::Failed(_), _) => a,
        _ => b,
    }
}

/// Follows the NodeEncryptions of the nodes `config` selects (every node for
/// [`Goal::Disabled`]) until each is final or `timeout` passes.
pub async fn follow(
    cluster: &Cluster,
    config: &EncryptionConfig,
    goal: Goal,
    timeout: Duration,
    ui: Ui,
    out: &mut dyn Write,
) -> anyhow::Result<Exit> {
    let nodes = cluster.nodes(NodeScope::All).await?;
    let fleet = Fleet::new(Some(config), &nodes, &[]);
    let names: Vec<String> = match goal {
        Goal::Encrypted(_) => fleet.participants().map(|m| m.name().to_owned()).collect(),
        Goal::Disabled(_) => fleet.members.iter().map(|m| m.name().to_owned()).collect(),
    };
    let mut progress = Progress::new(&goal, names, ui, out);
    let stream = watcher(cluster.encryptions_api(), watcher::Config::default())
        .default_backoff()
        .applied_objects();
    let followed = tokio::time::timeout(timeout, async {
        let mut stream = std::pin::pin!(stream);
        if progress.finished() {
            return Ok(());
        }
        while let Some(object) = stream.next().await {
            let object: NodeEncryption =
                object.map_err(|e| anyhow!("watching NodeEncryptions: {e}"))?;
            progress.update(&object)?;
            if progress.finished() {
                return Ok(());
            }
        }
        Err(anyhow!("the watch on NodeEncryptions ended"))
    })
    .await;
    match followed {
        Ok(result) => result.and_then(|()| progress.finish()),
        Err(_) => Err(anyhow!(progress.timed_out(timeout))),
    }
}

/// The verdicts so far and how they are shown.
struct Progress<'a> {
    goal: Goal,
    verdicts: BTreeMap<String, Verdict>,
    bar: Option<ProgressBar>,
    style: Style,
    out: &'a mut dyn Write,
}

impl<'a> Progress<'a> {
    fn new(goal: &Goal, names: Vec<String>, ui: Ui, out: &'a mut dyn Write) -> Self {
        let verdicts: BTreeMap<String, Verdict> = names
            .into_iter()
            .map(|n| (n, Verdict::Pending("no report yet".into())))
            .collect();
        let bar = ui.terminal.then(|| progress_bar(goal, ui.style));
        if let Some(bar) = &bar {
            bar.set_length(verdicts.len() as u64);
        }
        let mut progress = Self {
            goal: goal.clone(),
            verdicts,
            bar,
            style: ui.style,
            out,
        };
        progress.redraw();
        progress
    }

    fn finished(&self) -> bool {
        !self
            .verdicts
            .values()
            .any(|v| matches!(v, Verdict::Pending(_)))
    }

    fn final_count(&self) -> usize {
        self.verdicts
            .values()
            .filter(|v| !matches!(v, Verdict::Pending(_)))
            .count()
    }

    fn update(&mut self, object: &NodeEncryption) -> anyhow::Result<()> {
        let Some(name) = object.metadata.name.as_deref() else {
            return Ok(());
        };
        let verdict = self.goal.judge(object.status.as_ref());
        let Some(slot) = self.verdicts.get_mut(name) else {
            return Ok(());
        };
        if *slot == verdict {
            return Ok(());
        }
        *slot = verdict.clone();
        if self.bar.is_none() {
            self.plain_line(name, &verdict)?;
        }
        self.redraw();
        Ok(())
    }

    fn plain_line(&mut self, name: &str, verdict: &Verdict) -> std::io::Result<()> {
        let (done, total) = (self.final_count(), self.verdicts.len());
        let text = match verdict {
            Verdict::Done => self.style.paint(Paint::Good, self.goal.word()),
            Verdict::Failed(why) => self.style.paint(Paint::Bad, why),
            Verdict::Pending(why) => why.clone(),
        };
        writeln!(self.out, "{name}: {text} ({done}/{total} final)")
    }

    fn redraw(&mut self) {
        let Some(bar) = &self.bar else { return };
        bar.set_position(self.final_count() as u64);
        let waiting = self.verdicts.iter().find_map(|(name, v)| match v {
            Verdict::Pending(why) => Some(format!("waiting for {name} ({why})")),
            _ => None,
        });
        bar.set_message(waiting.unwrap_or_default());
    }

    /// The summary; `Degraded` when a node ended in a state other than the goal.
    fn finish(self) -> anyhow::Result<Exit> {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        let failed: Vec<String> = self
            .verdicts
            .iter()
            .filter_map(|(name, v)| match v {
                Verdict::Failed(why) => Some(format!("{name} ({why})")),
                _ => None,
            })
            .collect();
        let total = self.verdicts.len();
        let good = total - failed.len();
        let word = self.goal.word();
        if failed.is_empty() {
            let text = format!("{good}/{total} nodes {word}");
            writeln!(self.out, "{} {text}", self.style.mark(true))?;
            return Ok(Exit::Done);
        }
        writeln!(
            self.out,
            "{} {good}/{total} nodes {word}; not {word}: {}",
            self.style.mark(false),
            failed.join(", ")
        )?;
        writeln!(self.out, "kubectl encrypt status shows the details")?;
        Ok(Exit::Degraded)
    }

    fn timed_out(&self, timeout: Duration) -> String {
        if let Some(bar) = &self.bar {
            bar.abandon();
        }
        let pending: Vec<String> = self
            .verdicts
            .iter()
            .filter_map(|(name, v)| match v {
                Verdict::Pending(why) => Some(format!("{name} ({why})")),
                _ => None,
            })
            .take(5)
            .collect();
        format!(
            "timed out after {:?}: {}/{} nodes final; still waiting for {}; `kubectl encrypt status` shows why",
            timeout,
            self.final_count(),
            self.verdicts.len(),
            pending.join(", ")
        )
    }
}

fn progress_bar(goal: &Goal, style: Style) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout());
    let template = if style.is_colored() {
        "{bar:30.green/white} {pos}/{len} nodes final ({prefix}) {wide_msg}"
    } else {
        "{bar:30} {pos}/{len} nodes final ({prefix}) {wide_msg}"
    };
    let bar_style = ProgressStyle::with_template(template)
        .expect("the progress template is valid")
        .progress_chars("=> ");
    bar.set_style(bar_style);
    bar.set_prefix(goal.word());
    bar
}

#[cfg(test)]
mod tests {
    use kube_encrypt_api::crd::FamilyStatus;

    use super::*;

    fn report(v4: Option<EncryptionState>, v6: Option<EncryptionState>) -> NodeEncryptionStatus {
        let family = |s: Option<EncryptionState>| {
            s.map(|state| FamilyStatus {
                state,
                ..Default::default()
            })
        };
        NodeEncryptionStatus {
            ipv4: family(v4),
            ipv6: family(v6),
            ..Default::default()
        }
    }

    #[test]
    fn verdicts_per_goal() {
        use EncryptionState::*;
        let both = vec![Family::V4, Family::V6];
        let cases = [
            (
                Goal::Encrypted(both.clone()),
                Some(report(Some(Encrypted), Some(Encrypted))),
                "done",
            ),
            (
                Goal::Encrypted(both.clone()),
                Some(report(Some(Encrypted), Some(Disabled))),
                "pending",
            ),
            (
                Goal::Encrypted(both.clone()),
                Some(report(Some(Encrypted), Some(Unsupported))),
                "failed",
            ),
            (
                Goal::Encrypted(both.clone()),
                Some(report(Some(Error), None)),
                "pending",
            ),
            (Goal::Encrypted(both.clone()), None, "pending"),
            (
                Goal::Disabled(both.clone()),
                Some(report(Some(Disabled), Some(Unsupported))),
                "done",
            ),
            (
                Goal::Disabled(both.clone()),
                Some(report(Some(Encrypted), Some(Disabled))),
                "pending",
            ),
            (Goal::Disabled(both.clone()), None, "done"),
            (
                Goal::Disabled(vec![Family::V6]),
                Some(report(Some(Encrypted), Some(Error))),
                "failed",
            ),
        ];
        for (goal, report, want) in cases {
            let got = match goal.judge(report.as_ref()) {
                Verdict::Done => "done",
                Verdict::Pending(_) => "pending",
                Verdict::Failed(_) => "failed",
            };
            assert_eq!(got, want, "{goal:?} {report:?}");
        }
    }

    #[test]
    fn durations_as_people_write_them() {
        let cases = [
            ("90s", Some(90)),
            ("5m", Some(300)),
            ("1h30m", Some(5400)),
            ("soon", None),
        ];
        for (text, want) in cases {
            assert_eq!(
                parse_duration(text).ok().map(|d| d.as_secs()),
                want,
                "{text}"
            );
        }
    }
}
