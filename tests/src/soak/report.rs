//! The soak's report: `soak.json` (everything, samples included), `soak.md` (the tables a
//! reviewer reads), `soak-rss.svg` (RSS over time per process) and a terminal summary.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use super::logs::Group;
use super::sample::{Growth, Sample, GROWTH_TARGET_PCT, WARM_UP_FRACTION};
use super::schedule::Action;
use crate::bench_report::markdown::number;
use crate::bench_report::plot::{time_series_svg, Series};
use crate::bench_report::schema::Machine;

pub const MARKDOWN: &str = "soak.md";
pub const JSON: &str = "soak.json";
pub const PLOT: &str = "soak-rss.svg";

/// How one planned action went.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Seconds since the churn started.
    pub t: f64,
    pub action: Action,
    /// `done`, `refused` (by admission) or `failed`.
    pub result: &'static str,
    pub detail: String,
}

/// Planned, done, refused and failed actions of one kind.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionCount {
    pub action: Action,
    pub planned: usize,
    pub done: usize,
    pub refused: usize,
    pub failed: usize,
    /// Not started before the churn's end (an earlier action ran late).
    pub skipped: usize,
}

/// The end of the run: the cluster settled, then the flow matrix.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ending {
    pub converged: bool,
    pub convergence_seconds: f64,
    pub convergence_detail: String,
    pub flows_total: usize,
    pub flows_as_expected: usize,
    /// The flow lines as `kube-encrypt-lab flows` prints them.
    pub flow_lines: Vec<String>,
}

impl Ending {
    pub fn flows_passed(&self) -> bool {
        self.flows_total > 0 && self.flows_as_expected == self.flows_total
    }
}

/// Everything a soak run measured.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SoakReport {
    /// When the churn started (RFC 3339, UTC).
    pub date: String,
    pub planned_minutes: f64,
    pub churn_seconds: f64,
    pub machine: Machine,
    pub lab: String,
    pub seed: u64,
    pub actions: Vec<ActionCount>,
    pub events: Vec<Event>,
    pub ending: Ending,
    pub processes: Vec<Growth>,
    pub logs: Vec<Group>,
    /// What made the run fail (empty: it passed; a missed growth target is not a failure).
    pub failures: Vec<String>,
    pub samples: Vec<Sample>,
}

impl SoakReport {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// Writes soak.md, soak.json and soak-rss.svg into `dir`; returns their paths.
    pub fn write(&self, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let json = serde_json::to_string_pretty(self).context("serialize the soak report")?;
        let mut files = vec![(MARKDOWN, markdown(self)), (JSON, json)];
        if let Some(svg) = rss_svg(self) {
            files.push((PLOT, svg));
        }
        let mut written = Vec::new();
        for (name, text) in files {
            let path = dir.join(name);
            std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
            written.push(path);
        }
        Ok(written)
    }
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("–".into(), |k| number(k as f64 / 1024.0))
}

fn load(values: &[f64]) -> String {
    let text: Vec<String> = values.iter().map(|v| format!("{v:.2}")).collect();
    if text.is_empty() {
        "unknown".into()
    } else {
        text.join(" ")
    }
}

/// The header: date, machine, load, lab, and the run's verdict.
fn header(report: &SoakReport) -> String {
    let m = &report.machine;
    let verdict = if report.passed() {
        "PASSED".to_string()
    } else {
        format!("FAILED: {}", report.failures.join("; "))
    };
    format!(
        "# Soak run\n\n\
         - date: {} · churn {:.1} min (planned {}) · seed {}\n\
         - machine: {} CPUs, {} MiB, Linux {} · load average before {} · after {}\n\
         - lab: {}\n\
         - result: **{verdict}**\n",
        report.date,
        report.churn_seconds / 60.0,
        number(report.planned_minutes),
        report.seed,
        m.cpus,
        m.memory_mib,
        m.kernel,
        load(&m.load_before),
        load(&m.load_after),
        report.lab,
    )
}

fn processes_table(report: &SoakReport) -> String {
    let mut out = format!(
        "\n## Memory and CPU\n\nRSS after warm-up (the first {:.0} % of the run, or of a restarted \
         agent's last process) and at the end, medians of 5 samples each; target: growth under \
         {} % after warm-up. CPU over every process the role had.\n\n\
         | process | PIDs (restarts) | RSS after warm-up | RSS at end | peak | growth | target | verdict | CPU s/min |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        WARM_UP_FRACTION * 100.0,
        number(GROWTH_TARGET_PCT),
    );
    for g in &report.processes {
        let pids: Vec<String> = g.pids.iter().map(u32::to_string).collect();
        let growth = g.growth_pct.map_or("–".into(), |p| format!("{p:+.1} %"));
        let _ = writeln!(
            out,
            "| {} | {} ({}) | {} MiB | {} MiB | {} MiB | {growth} | < {} % | {} | {:.2} |",
            g.role,
            pids.join(", "),
            g.pids.len().saturating_sub(1),
            mib(g.rss_warm_kib),
            mib(g.rss_end_kib),
            mib(Some(g.rss_peak_kib)),
            number(GROWTH_TARGET_PCT),
            g.verdict.label(),
            g.cpu_s_per_min,
        );
    }
    for g in &report.processes {
        if let super::sample::Verdict::NotJudged(why) = &g.verdict {
            let _ = writeln!(out, "\n{} not judged: {why}.", g.role);
        }
    }
    out
}

fn actions_table(report: &SoakReport) -> String {
    let mut out = String::from(
        "\n## Disturbances\n\n| action | planned | done | refused | failed | skipped |\n|---|---|---|---|---|---|\n",
    );
    for a in &report.actions {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            a.action.describe(),
            a.planned,
            a.done,
            a.refused,
            a.failed,
            a.skipped
        );
    }
    let faults = report
        .events
        .iter()
        .filter(|e| e.action != Action::NodeChurn);
    out.push_str("\nEvery action but node churn (node churn is in soak.json):\n\n");
    for e in faults {
        let _ = writeln!(
            out,
            "- {:>6.1} s {} — {}: {}",
            e.t,
            e.action.describe(),
            e.result,
            e.detail.replace('\n', " ")
        );
    }
    out
}

fn logs_table(report: &SoakReport) -> String {
    let total: usize = report.logs.iter().map(|g| g.count).sum();
    let unexpected: usize = report.logs.iter().map(|g| g.count - g.expected).sum();
    let mut out = format!(
        "\n## ERROR and WARN lines\n\n{total} lines in {} messages; {unexpected} not explained by an injected fault \
         (a line is expected when logged during a fault or up to 30 s after it, or when it names a fake Node).\n\n\
         | source | level | count | expected | causes | message |\n|---|---|---|---|---|---|\n",
        report.logs.len()
    );
    for g in &report.logs {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | `{}` |",
            g.source,
            g.level,
            g.count,
            g.expected,
            g.causes.join("; "),
            g.message.replace('|', "\\|").replace('`', "'"),
        );
    }
    out
}

fn ending(report: &SoakReport) -> String {
    let e = &report.ending;
    format!(
        "\n## End of the run\n\n- convergence: {} in {:.1} s ({})\n- flows: {} of {} as expected\n\n```\n{}\n```\n",
        if e.converged { "reached" } else { "NOT reached" },
        e.convergence_seconds,
        e.convergence_detail,
        e.flows_as_expected,
        e.flows_total,
        e.flow_lines.join("\n"),
    )
}

pub fn markdown(report: &SoakReport) -> String {
    let mut out = header(report);
    out.push_str(&processes_table(report));
    let _ = writeln!(out, "\n![RSS over time]({PLOT})");
    out.push_str(&actions_table(report));
    out.push_str(&logs_table(report));
    out.push_str(&ending(report));
    out
}

/// The header, the memory table and the counts, for the terminal (flows were printed live).
pub fn summary(report: &SoakReport) -> String {
    let mut out = header(report);
    out.push_str(&processes_table(report));
    let total: usize = report.logs.iter().map(|g| g.count).sum();
    let unexpected: usize = report.logs.iter().map(|g| g.count - g.expected).sum();
    let _ = writeln!(
        out,
        "\nERROR/WARN lines: {total}, of which {unexpected} not explained by a fault (see soak.md)"
    );
    let e = &report.ending;
    let _ = writeln!(
        out,
        "convergence {} in {:.1} s; flows {} of {} as expected",
        if e.converged {
            "reached"
        } else {
            "NOT reached"
        },
        e.convergence_seconds,
        e.flows_as_expected,
        e.flows_total
    );
    out
}

/// RSS in MiB over minutes, one line per process, restarts circled.
pub fn rss_svg(report: &SoakReport) -> Option<String> {
    let series: Vec<Series> = report
        .processes
        .iter()
        .map(|g| {
            let mine: Vec<&Sample> = report.samples.iter().filter(|s| s.role == g.role).collect();
            let marks = mine
                .windows(2)
                .filter(|w| w[0].pid != w[1].pid)
                .map(|w| w[1].t / 60.0)
                .collect();
            Series {
                name: format!("{} ({})", g.role, g.verdict.label()),
                points: mine
                    .iter()
                    .map(|s| (s.t / 60.0, s.rss_kib as f64 / 1024.0))
                    .collect(),
                marks,
            }
        })
        .collect();
    time_series_svg(
        "RSS per process during the soak (circles: restarts)",
        "minutes",
        "MiB",
        &series,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soak::sample::growth;

    /// A report of a 100 s run: node-1's agent leaks and was restarted once, the webhook is
    /// flat; `flows_as_expected` of 4 flows.
    fn report(flows_as_expected: usize) -> SoakReport {
        let mut samples = Vec::new();
        for i in 0..50u32 {
            let t = f64::from(i) * 2.0;
            let pid = if i < 10 { 100 } else { 101 };
            samples.push(Sample {
                t,
                role: "agent-node-1".into(),
                pid,
                rss_kib: 10_240 + u64::from(i) * 200,
                cpu_ms: u64::from(i) * 10,
            });
            samples.push(Sample {
                t,
                role: "webhook".into(),
                pid: 7,
                rss_kib: 20_480,
                cpu_ms: 0,
            });
        }
        let processes = ["agent-node-1", "webhook"]
            .map(|r| growth(r, &samples, 100.0))
            .to_vec();
        let ending = Ending {
            converged: true,
            convergence_seconds: 1.5,
            convergence_detail: "settled".into(),
            flows_total: 4,
            flows_as_expected,
            flow_lines: vec!["IPv4 pod-1-1 → pod-2-1 works yes encrypted yes".into()],
        };
        let actions = vec![ActionCount {
            action: Action::AgentKill,
            planned: 1,
            done: 1,
            refused: 0,
            failed: 0,
            skipped: 0,
        }];
        SoakReport {
            date: "2026-12-02T05:00:00Z".into(),
            planned_minutes: 100.0 / 60.0,
            churn_seconds: 100.0,
            machine: crate::bench_report::machine::start(),
            lab: "3 nodes".into(),
            seed: 7,
            failures: crate::soak::run::failures(&actions, &ending),
            actions,
            events: vec![Event {
                t: 20.0,
                action: Action::AgentKill,
                result: "done",
                detail: "node-1".into(),
            }],
            ending,
            processes,
            logs: Vec::new(),
            samples,
        }
    }

    #[test]
    fn a_leak_is_missed_without_failing_the_run_and_a_bad_flow_fails_it() {
        let good = report(4);
        assert!(good.passed(), "{:?}", good.failures);
        let text = markdown(&good);
        assert!(text.contains("| agent-node-1 | 100, 101 (1) |"), "{text}");
        assert!(text.contains("| MISSED |"), "{text}");
        assert!(text.contains("| webhook | 7 (0) |"), "{text}");
        assert!(text.contains("4 of 4 as expected"), "{text}");
        let bad = report(3);
        assert!(!bad.passed());
        assert!(markdown(&bad).contains("FAILED: 1 of 4 flows not as expected"));
    }

    #[test]
    fn writes_the_three_files_and_circles_the_restart() {
        let dir = std::env::temp_dir().join(format!("ke-soak-report-{}", std::process::id()));
        let written = report(4).write(&dir).unwrap();
        assert_eq!(written.len(), 3, "{written:?}");
        let svg = std::fs::read_to_string(dir.join(PLOT)).unwrap();
        assert_eq!(svg.matches("<circle").count(), 1, "{svg}");
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(JSON)).unwrap()).unwrap();
        assert_eq!(json["processes"][0]["verdict"]["verdict"], "missed");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
