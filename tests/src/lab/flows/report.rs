//! The flow report: one line per flow, coloured only on a terminal and never with NO_COLOR.

use std::io::IsTerminal;

use owo_colors::OwoColorize;

use super::matrix::{ClusterView, Endpoint};
use super::FlowResult;
use crate::lab::topology::Topology;
use kube_encrypt_api::net::Family;

/// Whether to colour the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
}

impl Style {
    /// Colour when stdout is a terminal and NO_COLOR is unset or empty.
    pub fn detect() -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self {
            color: std::io::stdout().is_terminal() && !no_color,
        }
    }

    fn good(self, text: &str) -> String {
        if self.color {
            text.green().to_string()
        } else {
            text.to_string()
        }
    }

    fn bad(self, text: &str) -> String {
        if self.color {
            text.red().bold().to_string()
        } else {
            text.to_string()
        }
    }

    fn dim(self, text: &str) -> String {
        if self.color {
            text.dimmed().to_string()
        } else {
            text.to_string()
        }
    }
}

fn on_off(value: bool) -> &'static str {
    if value {
        "on"
    } else {
        "off"
    }
}

fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "no"
    }
}

/// The configuration the flows are judged against.
pub fn header(topo: &Topology, view: &ClusterView, style: Style) -> String {
    let families: Vec<String> = topo
        .families()
        .iter()
        .map(|f| format!("{} encryption {}", f.name(), on_off(*view.enabled.get(*f))))
        .collect();
    let mut out = format!(
        "flows: {}, host encryption {}\n",
        families.join(", "),
        on_off(view.host_encryption)
    );
    for (index, facts) in &view.nodes {
        if let Some(note) = &facts.note {
            out.push_str(&style.dim(&format!("  node-{index}: {note}\n")));
        }
    }
    out
}

/// The name of an endpoint as the report shows it.
pub fn endpoint_name(endpoint: Endpoint) -> String {
    match endpoint {
        Endpoint::Pod(i, j) => format!("pod-{i}-{j}"),
        Endpoint::Node(i) => format!("node-{i}"),
        Endpoint::Ext => "ke-ext".to_string(),
    }
}

/// One line: `✓ IPv4 pod → pod, other node  pod-1-1 → pod-2-1  works yes  encrypted no`.
pub fn line(result: &FlowResult, style: Style) -> String {
    let flow = &result.flow;
    let mark = if result.as_expected() {
        style.good("✓")
    } else {
        style.bad("✗")
    };
    let route = format!("{} → {}", endpoint_name(flow.src), endpoint_name(flow.dst));
    let works = verdict(
        yes_no(result.works()),
        Some(yes_no(result.expected.works)),
        result.works() == result.expected.works,
    );
    let encrypted_ok = result
        .expected
        .encrypted
        .is_none_or(|e| e == result.encrypted());
    let want = result.expected.encrypted.map(yes_no);
    let encrypted = match verdict(yes_no(result.encrypted()), want, encrypted_ok) {
        Verdict::Ok(got) if want.is_none() => Verdict::Unchecked(format!("{got} (not checked)")),
        other => other,
    };
    let (works, encrypted) = (works.render(3, style), encrypted.render(17, style));
    let seen = style.dim(&format!(
        "  [{}/{} replies, {} WireGuard, {} plaintext]",
        result.observed.replies,
        result.observed.sent,
        result.observed.verdict.wireguard,
        result.observed.verdict.plaintext
    ));
    format!(
        "{mark} {:<4} {:<22} {:<20} works {works} encrypted {encrypted}{seen}",
        family_short(flow.family),
        flow.kind.describe(),
        route
    )
}

fn family_short(family: Family) -> &'static str {
    match family {
        Family::V4 => "IPv4",
        Family::V6 => "IPv6",
    }
}

/// One column of a line: as expected, not checked, or wrong (with what was wanted).
enum Verdict {
    Ok(String),
    Unchecked(String),
    Wrong(String),
}

fn verdict(got: &str, want: Option<&str>, ok: bool) -> Verdict {
    match (ok, want) {
        (true, _) | (false, None) => Verdict::Ok(got.to_string()),
        (false, Some(want)) => Verdict::Wrong(format!("{got} (want {want})")),
    }
}

impl Verdict {
    /// Padded to `width` visible characters, then coloured (escape codes take no column).
    fn render(self, width: usize, style: Style) -> String {
        let (text, paint): (String, fn(Style, &str) -> String) = match self {
            Verdict::Ok(t) => (t, |_, t| t.to_string()),
            Verdict::Unchecked(t) => (t, Style::dim),
            Verdict::Wrong(t) => (t, Style::bad),
        };
        let pad = " ".repeat(width.saturating_sub(text.chars().count()));
        format!("{}{pad}", paint(style, &text))
    }
}

/// `14 flows, all as expected` or `14 flows, 2 NOT as expected`.
pub fn summary(results: &[FlowResult], style: Style) -> String {
    let bad = results.iter().filter(|r| !r.as_expected()).count();
    if bad == 0 {
        style.good(&format!("{} flows, all as expected", results.len()))
    } else {
        style.bad(&format!("{} flows, {bad} NOT as expected", results.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::matrix::{Expectation, Flow, FlowKind};
    use super::super::pcap::Verdict;
    use super::super::probe::Observation;
    use super::*;

    fn result(works: bool, wireguard: usize, want: Expectation) -> FlowResult {
        FlowResult {
            flow: Flow {
                family: Family::V4,
                kind: FlowKind::PodPodCrossNode,
                src: Endpoint::Pod(1, 1),
                dst: Endpoint::Pod(2, 1),
            },
            expected: want,
            observed: Observation {
                sent: 3,
                replies: if works { 3 } else { 0 },
                verdict: Verdict {
                    wireguard,
                    plaintext: 0,
                },
            },
        }
    }

    #[test]
    fn lines_say_what_was_seen_and_what_was_wanted() {
        let plain = Style { color: false };
        let ok = result(
            true,
            3,
            Expectation {
                works: true,
                encrypted: Some(true),
            },
        );
        let text = line(&ok, plain);
        assert!(text.starts_with("✓ IPv4 pod → pod, other node"), "{text}");
        assert!(text.contains("pod-1-1 → pod-2-1"), "{text}");
        assert!(
            text.contains("works yes") && text.contains("encrypted yes"),
            "{text}"
        );
        let leak = result(
            true,
            0,
            Expectation {
                works: true,
                encrypted: Some(true),
            },
        );
        let text = line(&leak, plain);
        assert!(
            text.starts_with('✗') && text.contains("encrypted no (want yes)"),
            "{text}"
        );
        assert!(
            !text.contains('\u{1b}'),
            "no colour codes without colour: {text}"
        );
        assert_eq!(summary(&[ok, leak], plain), "2 flows, 1 NOT as expected");
    }
}
