//! Several runs of each bench into one figure per measured value: the median, the spread
//! (min–max), the target, the baseline measured in the same runs, their ratio and a verdict
//! on the median. A target is reported as the bench states it; nothing here relaxes it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::schema::{Goal, Machine, RunFile};

/// Whether the median meets the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ok,
    Missed,
    /// No target: shown for context.
    Info,
}

impl Verdict {
    pub fn judge(goal: Goal, target: Option<f64>, value: f64) -> Self {
        match (goal, target) {
            (Goal::AtMost, Some(t)) if value <= t => Self::Ok,
            (Goal::AtLeast, Some(t)) if value >= t => Self::Ok,
            (Goal::AtMost | Goal::AtLeast, Some(_)) => Self::Missed,
            _ => Self::Info,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Missed => "MISSED",
            Self::Info => "info",
        }
    }
}

/// One measured value over every run that reported it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Figure {
    pub bench: String,
    pub params: BTreeMap<String, String>,
    pub name: String,
    pub unit: String,
    pub goal: Goal,
    pub target: Option<f64>,
    pub values: Vec<f64>,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub baseline: Option<f64>,
    /// median / baseline.
    pub ratio: Option<f64>,
    pub verdict: Verdict,
    /// The note of the run closest to the median.
    pub note: String,
}

impl Figure {
    /// `bench` or `bench [nodes=5000]`.
    pub fn bench_label(&self) -> String {
        if self.params.is_empty() {
            return self.bench.clone();
        }
        let params: Vec<String> = self
            .params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("{} [{}]", self.bench, params.join(", "))
    }
}

/// What one bench's runs saw of the machine.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BenchRuns {
    pub bench: String,
    pub runs: usize,
    pub first: String,
    pub last: String,
    /// Highest 1-minute load average before or after any of its runs.
    pub load_max: Option<f64>,
    pub load_min: Option<f64>,
}

/// Everything a report shows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub date: String,
    pub cpus: Vec<usize>,
    pub kernels: Vec<String>,
    pub memory_mib: Vec<u64>,
    pub benches: Vec<BenchRuns>,
    pub figures: Vec<Figure>,
    /// What was not measured and why (a bench skipped or failed), as the caller says.
    pub not_measured: Vec<String>,
}

/// The median (the mean of the middle two for an even count); `None` for no values.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// (min, max).
pub fn spread(values: &[f64]) -> Option<(f64, f64)> {
    let min = values.iter().copied().min_by(f64::total_cmp)?;
    let max = values.iter().copied().max_by(f64::total_cmp)?;
    Some((min, max))
}

type Key = (String, BTreeMap<String, String>, String);

#[derive(Default)]
struct Samples {
    unit: String,
    goal: Option<Goal>,
    target: Option<f64>,
    values: Vec<f64>,
    baselines: Vec<f64>,
    notes: Vec<String>,
}

/// Aggregates run files into figures in the order they first appear (files sorted by bench,
/// params and run by the caller or by [`RunFile::read_dir`]).
pub fn aggregate(runs: &[RunFile], date: &str) -> Report {
    let mut order: Vec<Key> = Vec::new();
    let mut samples: BTreeMap<Key, Samples> = BTreeMap::new();
    for run in runs {
        for row in &run.rows {
            let key = (run.bench.clone(), run.params.clone(), row.name.clone());
            let entry = samples.entry(key.clone()).or_insert_with(|| {
                order.push(key);
                Samples::default()
            });
            entry.unit = row.unit.clone();
            entry.goal = Some(row.goal);
            entry.target = row.target;
            entry.values.push(row.value);
            entry.baselines.extend(row.baseline);
            entry.notes.push(row.note.clone());
        }
    }
    let figures = order
        .into_iter()
        .map(|key| {
            let s = samples.remove(&key).expect("every key has samples");
            figure(key, s)
        })
        .collect();
    Report {
        date: date.to_owned(),
        cpus: distinct(runs.iter().map(|r| r.machine.cpus)),
        kernels: distinct(runs.iter().map(|r| r.machine.kernel.clone())),
        memory_mib: distinct(runs.iter().map(|r| r.machine.memory_mib)),
        benches: bench_runs(runs),
        figures,
        not_measured: Vec::new(),
    }
}

fn figure((bench, params, name): Key, s: Samples) -> Figure {
    let median = median(&s.values).expect("a figure has at least one value");
    let (min, max) = spread(&s.values).expect("a figure has at least one value");
    let goal = s.goal.unwrap_or(Goal::Info);
    let baseline = self::median(&s.baselines);
    let closest = s
        .values
        .iter()
        .enumerate()
        .min_by(|a, b| (a.1 - median).abs().total_cmp(&(b.1 - median).abs()))
        .map_or(0, |(i, _)| i);
    Figure {
        bench,
        params,
        name,
        unit: s.unit,
        goal,
        target: s.target,
        median,
        min,
        max,
        ratio: baseline.filter(|b| *b != 0.0).map(|b| median / b),
        baseline,
        verdict: Verdict::judge(goal, s.target, median),
        note: s.notes.get(closest).cloned().unwrap_or_default(),
        values: s.values,
    }
}

fn distinct<T: PartialEq>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut out = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

fn bench_runs(runs: &[RunFile]) -> Vec<BenchRuns> {
    let mut out: Vec<BenchRuns> = Vec::new();
    for run in runs {
        let loads = one_minute_loads(&run.machine);
        let position = out.iter().position(|b| b.bench == run.bench);
        let entry = match position {
            Some(i) => &mut out[i],
            None => {
                out.push(BenchRuns {
                    bench: run.bench.clone(),
                    runs: 0,
                    first: run.date.clone(),
                    last: run.date.clone(),
                    load_max: None,
                    load_min: None,
                });
                out.last_mut().expect("just pushed")
            }
        };
        entry.runs += 1;
        entry.first = entry.first.clone().min(run.date.clone());
        entry.last = entry.last.clone().max(run.date.clone());
        for load in loads {
            entry.load_max = Some(entry.load_max.map_or(load, |m| m.max(load)));
            entry.load_min = Some(entry.load_min.map_or(load, |m| m.min(load)));
        }
    }
    out
}

fn one_minute_loads(machine: &Machine) -> Vec<f64> {
    [&machine.load_before, &machine.load_after]
        .iter()
        .filter_map(|l| l.first().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench_report::schema::{RowRecord, SCHEMA};

    pub(crate) fn row(name: &str, value: f64, goal: Goal, target: Option<f64>) -> RowRecord {
        RowRecord {
            name: name.into(),
            value,
            unit: "ms".into(),
            goal,
            target,
            baseline: None,
            note: format!("run value {value}"),
        }
    }

    pub(crate) fn run(bench: &str, n: u32, rows: Vec<RowRecord>) -> RunFile {
        RunFile {
            schema: SCHEMA,
            bench: bench.into(),
            run: n,
            title: String::new(),
            params: BTreeMap::new(),
            date: format!("2026-12-02T02:0{n}:00Z"),
            machine: Machine {
                cpus: 2,
                kernel: "6.8.0-test".into(),
                memory_mib: 24151,
                load_before: vec![f64::from(n), 1.0, 1.0],
                load_after: vec![f64::from(n) + 0.5, 1.0, 1.0],
                procs_before: "1/100".into(),
                procs_after: "2/100".into(),
            },
            rows,
        }
    }

    #[test]
    fn median_of_samples() {
        let cases: [(&[f64], Option<f64>); 6] = [
            (&[], None),
            (&[4.0], Some(4.0)),
            (&[3.0, 1.0, 2.0], Some(2.0)),
            (&[1.0, 10.0], Some(5.5)),
            (&[9.0, 1.0, 5.0, 3.0], Some(4.0)),
            (&[2.0, 2.0, 100.0], Some(2.0)),
        ];
        for (values, expected) in cases {
            assert_eq!(median(values), expected, "{values:?}");
        }
    }

    /// Samples and their expected (min, max).
    type SpreadCase = (&'static [f64], Option<(f64, f64)>);

    #[test]
    fn spread_of_samples() {
        let cases: [SpreadCase; 4] = [
            (&[], None),
            (&[4.0], Some((4.0, 4.0))),
            (&[3.0, 1.0, 2.0], Some((1.0, 3.0))),
            (&[-1.0, 10.0, 0.5], Some((-1.0, 10.0))),
        ];
        for (values, expected) in cases {
            assert_eq!(spread(values), expected, "{values:?}");
        }
    }

    #[test]
    fn verdicts() {
        let cases = [
            (Goal::AtMost, Some(2.0), 1.9, Verdict::Ok),
            (Goal::AtMost, Some(2.0), 2.0, Verdict::Ok),
            (Goal::AtMost, Some(2.0), 2.01, Verdict::Missed),
            (Goal::AtLeast, Some(0.95), 0.95, Verdict::Ok),
            (Goal::AtLeast, Some(0.95), 0.89, Verdict::Missed),
            (Goal::AtLeast, Some(0.95), 1.3, Verdict::Ok),
            (Goal::Info, None, 7.0, Verdict::Info),
            (Goal::AtMost, None, 7.0, Verdict::Info),
        ];
        for (goal, target, value, expected) in cases {
            assert_eq!(
                Verdict::judge(goal, target, value),
                expected,
                "{goal:?} {target:?} {value}"
            );
        }
    }

    #[test]
    fn figures_take_the_median_of_runs_and_judge_it() {
        let runs: Vec<RunFile> = [1.5, 2.5, 2.2]
            .iter()
            .zip(1..)
            .map(|(v, n)| run("webhook", n, vec![row("p99", *v, Goal::AtMost, Some(2.0))]))
            .collect();
        let report = aggregate(&runs, "now");
        let [figure] = report.figures.as_slice() else {
            panic!("one figure expected: {:?}", report.figures);
        };
        assert_eq!(figure.median, 2.2);
        assert_eq!((figure.min, figure.max), (1.5, 2.5));
        assert_eq!(figure.verdict, Verdict::Missed);
        assert_eq!(figure.note, "run value 2.2");
        assert_eq!(figure.values, vec![1.5, 2.5, 2.2]);
    }

    #[test]
    fn baseline_and_ratio_come_from_the_same_runs() {
        let with_baseline = |v: f64, b: f64| RowRecord {
            baseline: Some(b),
            ..row("throughput", v, Goal::Info, None)
        };
        let runs = vec![
            run("mesh", 1, vec![with_baseline(0.9, 1.0)]),
            run("mesh", 2, vec![with_baseline(1.8, 2.0)]),
            run("mesh", 3, vec![with_baseline(1.0, 1.2)]),
        ];
        let figure = &aggregate(&runs, "now").figures[0];
        assert_eq!(figure.median, 1.0);
        assert_eq!(figure.baseline, Some(1.2));
        assert!((figure.ratio.unwrap() - 1.0 / 1.2).abs() < 1e-12);
    }

    #[test]
    fn figures_keep_first_appearance_order_and_separate_params() {
        let mut small = run(
            "agent_scale",
            1,
            vec![row("programmed", 0.1, Goal::Info, None)],
        );
        small.params.insert("nodes".into(), "100".into());
        let mut large = run(
            "agent_scale",
            1,
            vec![row("programmed", 0.9, Goal::Info, None)],
        );
        large.params.insert("nodes".into(), "5000".into());
        let runs = vec![
            run(
                "webhook",
                1,
                vec![
                    row("b", 1.0, Goal::Info, None),
                    row("a", 2.0, Goal::Info, None),
                ],
            ),
            small,
            large,
            run("webhook", 2, vec![row("a", 4.0, Goal::Info, None)]),
        ];
        let report = aggregate(&runs, "now");
        let names: Vec<(String, &str, usize)> = report
            .figures
            .iter()
            .map(|f| (f.bench_label(), f.name.as_str(), f.values.len()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("webhook".to_string(), "b", 1),
                ("webhook".to_string(), "a", 2),
                ("agent_scale [nodes=100]".to_string(), "programmed", 1),
                ("agent_scale [nodes=5000]".to_string(), "programmed", 1),
            ]
        );
    }

    #[test]
    fn bench_runs_record_counts_dates_and_load() {
        let runs = vec![
            run("webhook", 1, vec![]),
            run("webhook", 3, vec![]),
            run("plugin", 2, vec![]),
        ];
        let report = aggregate(&runs, "now");
        assert_eq!(report.cpus, vec![2]);
        assert_eq!(report.kernels, vec!["6.8.0-test".to_string()]);
        let webhook = &report.benches[0];
        assert_eq!((webhook.bench.as_str(), webhook.runs), ("webhook", 2));
        assert_eq!(webhook.first, "2026-12-02T02:01:00Z");
        assert_eq!(webhook.last, "2026-12-02T02:03:00Z");
        assert_eq!((webhook.load_min, webhook.load_max), (Some(1.0), Some(3.5)));
        assert_eq!(report.benches[1].runs, 1);
    }
}
