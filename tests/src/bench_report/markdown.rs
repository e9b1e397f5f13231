//! The report as Markdown: a header with the date, the machine and the load each bench saw,
//! then one table row per figure.

use std::fmt::Write;

use super::aggregate::{Figure, Report, Verdict};
use super::schema::Goal;

/// A value with as many digits as its size deserves.
pub fn number(value: f64) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    if value == value.trunc() && value.abs() < 1e9 {
        format!("{value:.0}")
    } else if value.abs() >= 100.0 {
        format!("{value:.1}")
    } else if value.abs() >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

/// `1.5 ms`, or the bare number for a unitless value.
pub fn with_unit(value: f64, unit: &str) -> String {
    if unit.is_empty() {
        number(value)
    } else {
        format!("{} {unit}", number(value))
    }
}

/// `≤ 2 ms`, `≥ 0.95`, or `-` without a target.
pub fn target_text(goal: Goal, target: Option<f64>, unit: &str) -> String {
    match (goal, target) {
        (Goal::AtMost, Some(t)) => format!("≤ {}", with_unit(t, unit)),
        (Goal::AtLeast, Some(t)) => format!("≥ {}", with_unit(t, unit)),
        _ => "-".into(),
    }
}

fn spread_text(figure: &Figure) -> String {
    if figure.values.len() < 2 {
        return "-".into();
    }
    format!("{}–{}", number(figure.min), number(figure.max))
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn list<T: ToString>(items: &[T]) -> String {
    let items: Vec<String> = items.iter().map(T::to_string).collect();
    if items.is_empty() {
        "unknown".into()
    } else {
        items.join(" / ")
    }
}

fn header(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# kube-encrypt benchmarks\n");
    let _ = writeln!(out, "- date: {}", report.date);
    let _ = writeln!(
        out,
        "- machine: {} CPUs, Linux {}, {} MiB memory (as each bench read them from the OS)",
        list(&report.cpus),
        list(&report.kernels),
        list(&report.memory_mib)
    );
    let _ = writeln!(
        out,
        "- what else ran: 1-minute load average around each bench's runs (the machine is shared):"
    );
    for bench in &report.benches {
        let load = match (bench.load_min, bench.load_max) {
            (Some(min), Some(max)) => format!("load {min:.2}–{max:.2}"),
            _ => "load unknown".into(),
        };
        let _ = writeln!(
            out,
            "  - {}: {} run(s), {} to {}, {load}",
            bench.bench, bench.runs, bench.first, bench.last
        );
    }
    if !report.not_measured.is_empty() {
        let _ = writeln!(out, "- not measured in this run:");
        for line in &report.not_measured {
            let _ = writeln!(out, "  - {line}");
        }
    }
    out
}

fn table(figures: &[Figure]) -> String {
    let mut out = String::from(
        "| bench | figure | median | spread (min–max) | target | baseline | ratio | verdict | runs | note |\n\
         |---|---|---:|---:|---:|---:|---:|---|---:|---|\n",
    );
    for f in figures {
        let verdict = match f.verdict {
            Verdict::Missed => "**MISSED**".to_string(),
            v => v.label().to_string(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {verdict} | {} | {} |",
            cell(&f.bench_label()),
            cell(&f.name),
            with_unit(f.median, &f.unit),
            spread_text(f),
            target_text(f.goal, f.target, &f.unit),
            f.baseline.map_or("-".into(), |b| with_unit(b, &f.unit)),
            f.ratio.map_or("-".into(), |r| format!("{r:.2}")),
            f.values.len(),
            cell(&f.note),
        );
    }
    out
}

fn summary(figures: &[Figure]) -> String {
    let targets = figures
        .iter()
        .filter(|f| f.verdict != Verdict::Info)
        .count();
    let missed: Vec<String> = figures
        .iter()
        .filter(|f| f.verdict == Verdict::Missed)
        .map(|f| format!("{}: {}", f.bench_label(), f.name))
        .collect();
    let mut out = format!("{} of {targets} targets met.", targets - missed.len());
    if !missed.is_empty() {
        let _ = write!(out, " MISSED: {}.", missed.join("; "));
    }
    out.push('\n');
    out
}

/// The whole report. Median, spread and verdict are over the runs in `runs`; the ratio is
/// median / baseline (the reference measured in the same runs).
pub fn render(report: &Report) -> String {
    format!(
        "{}\n{}\n{}",
        header(report),
        table(&report.figures),
        summary(&report.figures)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench_report::aggregate::aggregate;
    use crate::bench_report::schema::{Machine, RowRecord, RunFile, SCHEMA};
    use std::collections::BTreeMap;

    #[test]
    fn numbers() {
        let cases = [
            (3.0, "3"),
            (1234.5678, "1234.6"),
            (12.345, "12.35"),
            (0.01234, "0.012"),
            (f64::NAN, "NaN"),
        ];
        for (value, text) in cases {
            assert_eq!(number(value), text, "{value}");
        }
    }

    #[test]
    fn targets() {
        let cases = [
            (Goal::AtMost, Some(2.0), "ms", "≤ 2 ms"),
            (Goal::AtLeast, Some(0.95), "", "≥ 0.950"),
            (Goal::Info, None, "s", "-"),
        ];
        for (goal, target, unit, text) in cases {
            assert_eq!(target_text(goal, target, unit), text);
        }
    }

    fn run(n: u32, rows: Vec<RowRecord>) -> RunFile {
        RunFile {
            schema: SCHEMA,
            bench: "webhook".into(),
            run: n,
            title: String::new(),
            params: BTreeMap::new(),
            date: format!("2026-12-02T02:0{n}:00Z"),
            machine: Machine {
                cpus: 2,
                kernel: "6.8.0".into(),
                memory_mib: 1024,
                load_before: vec![1.0, 1.0, 1.0],
                load_after: vec![2.0, 1.0, 1.0],
                ..Machine::default()
            },
            rows,
        }
    }

    fn rows(p99: f64, rate: f64) -> Vec<RowRecord> {
        vec![
            RowRecord {
                name: "p99 | TLS".into(),
                value: p99,
                unit: "ms".into(),
                goal: Goal::AtMost,
                target: Some(2.0),
                baseline: Some(0.5),
                note: "keep-alive".into(),
            },
            RowRecord {
                name: "throughput".into(),
                value: rate,
                unit: "req/s".into(),
                goal: Goal::Info,
                target: None,
                baseline: None,
                note: String::new(),
            },
        ]
    }

    #[test]
    fn renders_header_table_and_summary() {
        let runs = vec![
            run(1, rows(1.0, 900.0)),
            run(2, rows(3.0, 1000.0)),
            run(3, rows(2.5, 950.0)),
        ];
        let text = render(&aggregate(&runs, "2026-12-02T03:00:00Z"));
        let expected_lines = [
            "- date: 2026-12-02T03:00:00Z",
            "- machine: 2 CPUs, Linux 6.8.0, 1024 MiB memory (as each bench read them from the OS)",
            "  - webhook: 3 run(s), 2026-12-02T02:01:00Z to 2026-12-02T02:03:00Z, load 1.00–2.00",
            "| webhook | p99 \\| TLS | 2.50 ms | 1–3 | ≤ 2 ms | 0.500 ms | 5.00 | **MISSED** | 3 | keep-alive |",
            "| webhook | throughput | 950 req/s | 900–1000 | - | - | - | info | 3 |  |",
            "0 of 1 targets met. MISSED: webhook: p99 | TLS.",
        ];
        for line in expected_lines {
            assert!(
                text.lines().any(|l| l == line),
                "missing line {line:?} in:\n{text}"
            );
        }
    }

    #[test]
    fn lists_what_was_not_measured() {
        let mut report = aggregate(&[run(1, rows(1.0, 900.0))], "now");
        assert!(!render(&report).contains("not measured"));
        report.not_measured = vec!["agent_scale: needs root".into()];
        let text = render(&report);
        assert!(
            text.contains("- not measured in this run:\n  - agent_scale: needs root\n"),
            "{text}"
        );
    }

    #[test]
    fn a_single_run_has_no_spread_and_met_targets_say_ok() {
        let text = render(&aggregate(&[run(1, rows(1.0, 900.0))], "now"));
        assert!(
            text.contains(
                "| webhook | p99 \\| TLS | 1 ms | - | ≤ 2 ms | 0.500 ms | 2.00 | ok | 1 |"
            ),
            "{text}"
        );
        assert!(text.contains("1 of 1 targets met.\n"), "{text}");
    }
}
