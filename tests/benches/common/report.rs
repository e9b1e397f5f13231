//! Report rows: measured value, target, the baseline measured in the same run, and a verdict
//! (`ok` or `MISSED`), printed as a table; with `KUBE_ENCRYPT_BENCH_OUT=<dir>` also written
//! as `<dir>/<bench>-<run>.json` (`kube_encrypt_tests::bench_report::schema`) for
//! `make bench`. Missing a target never fails a bench; the row says MISSED.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::PathBuf;

use anyhow::Context;
use kube_encrypt_tests::bench_report::markdown::{number, target_text, with_unit};
use kube_encrypt_tests::bench_report::schema::{self, Machine, RowRecord, RunFile};
use kube_encrypt_tests::bench_report::{machine, OUT_ENV, RUN_ENV};

/// True when this bench runs without cargo's `--bench` flag: `cargo test --bench NAME`, as
/// `make test` runs every bench, once at a tiny size, to prove it still works. The numbers of
/// a tiny run mean nothing; `cargo bench` (and `make bench`) run the full size.
pub fn tiny() -> bool {
    !std::env::args().any(|arg| arg == "--bench")
}

/// `full` in a real run, `small` in a [`tiny`] one.
pub fn sized<T>(full: T, small: T) -> T {
    if tiny() {
        small
    } else {
        full
    }
}

/// `5000` → `5,000`, as figure names spell sizes.
pub fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// What a measured value must reach.
#[derive(Clone, Copy, Debug)]
pub enum Goal {
    AtMost(f64),
    AtLeast(f64),
    /// Shown for context, no target.
    Info,
}

/// One measured value.
#[derive(Clone, Debug)]
pub struct Row {
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
    pub goal: Goal,
    /// The same figure of the reference measured in the same run (a bare server, a
    /// hand-configured pair).
    pub baseline: Option<f64>,
    /// Shown after the verdict, such as how the value was measured.
    pub note: String,
}

impl Row {
    pub fn new(name: impl Into<String>, value: f64, unit: &'static str, goal: Goal) -> Self {
        Self {
            name: name.into(),
            value,
            unit,
            goal,
            baseline: None,
            note: String::new(),
        }
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }

    /// The reference's value of this figure, measured in the same run.
    pub fn baseline(mut self, baseline: f64) -> Self {
        self.baseline = Some(baseline);
        self
    }

    /// Appends to the note.
    pub fn note_more(mut self, more: &str) -> Self {
        if !self.note.is_empty() {
            self.note.push_str("; ");
        }
        self.note.push_str(more);
        self
    }

    /// `Some(true)` when the target is met, `None` without a target.
    pub fn met(&self) -> Option<bool> {
        match self.goal {
            Goal::AtMost(target) => Some(self.value <= target),
            Goal::AtLeast(target) => Some(self.value >= target),
            Goal::Info => None,
        }
    }

    fn goal_record(&self) -> (schema::Goal, Option<f64>) {
        match self.goal {
            Goal::AtMost(t) => (schema::Goal::AtMost, Some(t)),
            Goal::AtLeast(t) => (schema::Goal::AtLeast, Some(t)),
            Goal::Info => (schema::Goal::Info, None),
        }
    }

    fn record(&self) -> RowRecord {
        let (goal, target) = self.goal_record();
        RowRecord {
            name: self.name.clone(),
            value: self.value,
            unit: self.unit.to_owned(),
            goal,
            target,
            baseline: self.baseline,
            note: self.note.clone(),
        }
    }

    fn baseline_text(&self) -> (String, String) {
        match self.baseline {
            Some(b) if b != 0.0 => (with_unit(b, self.unit), format!("{:.2}", self.value / b)),
            Some(b) => (with_unit(b, self.unit), "-".into()),
            None => ("-".into(), "-".into()),
        }
    }
}

/// Renders the rows under `title`; `vs base` is measured / baseline.
pub fn render(title: &str, rows: &[Row]) -> String {
    let width = rows
        .iter()
        .map(|r| r.name.chars().count())
        .max()
        .unwrap_or(0)
        .max(6);
    let mut out = String::new();
    let _ = writeln!(out, "\n{title}");
    let _ = writeln!(
        out,
        "  {:<width$}  {:>14}  {:>14}  {:>14}  {:>7}  verdict",
        "metric", "measured", "target", "baseline", "vs base"
    );
    for row in rows {
        let verdict = match row.met() {
            Some(true) => "ok",
            Some(false) => "MISSED",
            None => "info",
        };
        let (goal, target) = row.goal_record();
        let (baseline, ratio) = row.baseline_text();
        let _ = write!(
            out,
            "  {:<width$}  {:>14}  {:>14}  {baseline:>14}  {ratio:>7}  {verdict}",
            row.name,
            format!("{} {}", number(row.value), row.unit),
            target_text(goal, target, row.unit),
        );
        if !row.note.is_empty() {
            let _ = write!(out, "  ({})", row.note);
        }
        out.push('\n');
    }
    let missed = rows.iter().filter(|r| r.met() == Some(false)).count();
    let targets = rows.iter().filter(|r| r.met().is_some()).count();
    let _ = writeln!(
        out,
        "  => {} of {targets} targets met{}",
        targets - missed,
        if missed > 0 {
            " (MISSED ones above)"
        } else {
            ""
        }
    );
    out
}

/// One run of a bench: the machine before it, then [`Session::publish`] at the end.
pub struct Session {
    bench: String,
    params: BTreeMap<String, String>,
    machine: Machine,
}

impl Session {
    /// Call first thing in `main`: records the load average before the bench.
    pub fn begin(bench: &str) -> Self {
        Self {
            bench: bench.to_owned(),
            params: BTreeMap::new(),
            machine: machine::start(),
        }
    }

    /// What the bench runs with (such as the cluster size); part of each figure's identity.
    pub fn param(mut self, key: &str, value: impl ToString) -> Self {
        self.params.insert(key.to_owned(), value.to_string());
        self
    }

    /// Prints the table and, with `KUBE_ENCRYPT_BENCH_OUT` set, writes the run file (never
    /// for a tiny run, whose numbers mean nothing).
    pub fn publish(mut self, title: &str, rows: &[Row]) -> anyhow::Result<()> {
        if tiny() {
            println!(
                "{}",
                render(
                    &format!("TINY RUN (works; numbers mean nothing) {title}"),
                    rows
                )
            );
            return Ok(());
        }
        println!("{}", render(title, rows));
        let Some(dir) = std::env::var_os(OUT_ENV).map(PathBuf::from) else {
            return Ok(());
        };
        machine::finish(&mut self.machine);
        let run = match std::env::var(RUN_ENV) {
            Ok(text) => text
                .parse()
                .with_context(|| format!("{RUN_ENV}={text} is not a run number"))?,
            Err(_) => 1,
        };
        let file = RunFile {
            schema: schema::SCHEMA,
            bench: self.bench,
            run,
            title: title.to_owned(),
            params: self.params,
            date: jiff::Timestamp::now()
                .round(jiff::Unit::Second)?
                .to_string(),
            machine: self.machine,
            rows: rows.iter().map(Row::record).collect(),
        };
        let path = file.write(&dir)?;
        println!("  written: {}", path.display());
        Ok(())
    }
}
