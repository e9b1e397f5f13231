//! Report rows: measured value, target, ratio and verdict (`ok` or `MISSED`), printed as a
//! table. Missing a target never fails a bench; the row says MISSED.

use std::fmt::Write;

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
            note: String::new(),
        }
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
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

    fn target_text(&self) -> String {
        match self.goal {
            Goal::AtMost(t) => format!("≤ {} {}", number(t), self.unit),
            Goal::AtLeast(t) => format!("≥ {} {}", number(t), self.unit),
            Goal::Info => "-".into(),
        }
    }

    fn ratio_text(&self) -> String {
        match self.goal {
            Goal::AtMost(t) | Goal::AtLeast(t) if t != 0.0 => format!("{:.2}", self.value / t),
            _ => "-".into(),
        }
    }
}

fn number(value: f64) -> String {
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

/// Renders the rows under `title`; the ratio is measured / target.
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
        "  {:<width$}  {:>14}  {:>14}  {:>6}  verdict",
        "metric", "measured", "target", "ratio"
    );
    for row in rows {
        let verdict = match row.met() {
            Some(true) => "ok",
            Some(false) => "MISSED",
            None => "info",
        };
        let measured = format!("{} {}", number(row.value), row.unit);
        let _ = write!(
            out,
            "  {:<width$}  {:>14}  {:>14}  {:>6}  {verdict}",
            row.name,
            measured,
            row.target_text(),
            row.ratio_text()
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
