//! The status report as people read it: the config summary, the pools with NAT outgoing per
//! family, one row per node, warnings and skipped peers.

use std::io::{self, Write};

use kube_encrypt_api::crd::{EncryptionState, FamilyStatus};
use kube_encrypt_api::net::Family;

use super::model::{family_of, ConfigSummary, FamilyConfig, NodeSummary, StatusReport};
use crate::format::{age, bytes, short_key};
use crate::style::{Paint, Style};
use crate::table::{Cell, Table};

/// How many warnings and skipped peers the table lists before summing up the rest (`-o json`
/// has them all).
pub const LISTED: usize = 20;

/// Writes the report; `wide` adds MTU, port and interface.
pub fn write(
    report: &StatusReport,
    wide: bool,
    style: Style,
    out: &mut dyn Write,
) -> io::Result<()> {
    write_config(&report.config, style, out)?;
    write_pools(report, style, out)?;
    write_nodes(report, wide, style, out)?;
    write_warnings(report, style, out)?;
    write_skipped(report, style, out)?;
    write_verdict(report, style, out)
}

fn heading(style: Style, text: &str, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out)?;
    writeln!(out, "{}", style.paint(Paint::Strong, text))
}

fn write_config(config: &ConfigSummary, style: Style, out: &mut dyn Write) -> io::Result<()> {
    if !config.present {
        return writeln!(
            out,
            "Config:      no EncryptionConfig \"default\": encryption is off (kubectl encrypt enable)"
        );
    }
    writeln!(out, "Config:      EncryptionConfig \"default\"")?;
    writeln!(out, "  IPv4:      {}", family_line(&config.ipv4, style))?;
    writeln!(out, "  IPv6:      {}", family_line(&config.ipv6, style))?;
    let host = if config.host_encryption { "on" } else { "off" };
    writeln!(
        out,
        "  Options:   host encryption {host}, route source {}, backend {}",
        config.route_source, config.backend
    )?;
    let nodes = config.node_selector.as_deref().unwrap_or("all nodes");
    writeln!(out, "  Nodes:     {nodes}")?;
    if let Some(ready) = &config.ready {
        let paint = if ready == "True" {
            Paint::Good
        } else {
            Paint::Warn
        };
        writeln!(out, "  Ready:     {}", style.paint(paint, ready))?;
    }
    for counts in &config.counts {
        let done = counts.encrypted == counts.participating;
        let text = format!("{}/{} nodes", counts.encrypted, counts.participating);
        let paint = if done { Paint::Good } else { Paint::Bad };
        writeln!(
            out,
            "  Encrypted: {} {}",
            counts.family,
            style.paint(paint, &text)
        )?;
    }
    Ok(())
}

fn family_line(family: &FamilyConfig, style: Style) -> String {
    if !family.enabled {
        return style.paint(Paint::Dim, "off");
    }
    let mtu = match family.mtu {
        0 => "auto".to_owned(),
        mtu => mtu.to_string(),
    };
    format!(
        "{} (port {}, MTU {mtu}, interface {})",
        style.paint(Paint::Good, "on"),
        family.port,
        family.interface_name
    )
}

fn write_pools(report: &StatusReport, style: Style, out: &mut dyn Write) -> io::Result<()> {
    heading(style, "IP pools:", out)?;
    if report.pools.is_empty() {
        return writeln!(
            out,
            "  none (create IPPools with natOutgoing: true before enabling)"
        );
    }
    let mut table = Table::new(["NAME", "CIDR", "FAMILY", "NAT OUTGOING", "DISABLED"]);
    for pool in &report.pools {
        let family = pool.family.map_or("invalid", Family::name);
        let nat_ok = pool.nat_outgoing || pool.disabled;
        table.row(vec![
            pool.name.as_str().into(),
            pool.cidr.as_str().into(),
            family.into(),
            Cell::new(
                mark(pool.nat_outgoing),
                if nat_ok { Paint::Good } else { Paint::Bad },
            ),
            if pool.disabled { "yes" } else { "no" }.into(),
        ]);
    }
    table.write(style, "  ", out)
}

fn mark(ok: bool) -> &'static str {
    if ok {
        "✓"
    } else {
        "✗"
    }
}

/// The families with columns: those enabled, else both (states only).
fn shown_families(report: &StatusReport) -> Vec<Family> {
    let enabled: Vec<Family> = report.config.counts.iter().map(|c| c.family).collect();
    if enabled.is_empty() {
        Family::ALL.to_vec()
    } else {
        enabled
    }
}

fn write_nodes(
    report: &StatusReport,
    wide: bool,
    style: Style,
    out: &mut dyn Write,
) -> io::Result<()> {
    heading(style, "Nodes:", out)?;
    if report.nodes.is_empty() {
        return writeln!(out, "  none");
    }
    let families = shown_families(report);
    let mut header: Vec<String> = vec!["NODE".into()];
    header.extend(families.iter().map(|f| f.name().to_uppercase()));
    header.extend(["BACKEND".into(), "KEY".into()]);
    header.extend(
        families
            .iter()
            .map(|f| format!("PEERS {}", f.name().to_uppercase())),
    );
    header.extend(["OLDEST HANDSHAKE".into(), "RX".into(), "TX".into()]);
    if wide {
        header.extend(["MTU".into(), "PORT".into(), "INTERFACE".into()]);
    }
    let mut table = Table::new(header);
    for node in &report.nodes {
        table.row(node_row(node, &families, wide));
    }
    table.write(style, "  ", out)
}

fn node_row(node: &NodeSummary, families: &[Family], wide: bool) -> Vec<Cell> {
    let statuses: Vec<Option<&FamilyStatus>> =
        families.iter().map(|f| family_of(node, *f)).collect();
    let present = || statuses.iter().flatten();
    let mut row = vec![Cell::plain(node.name.clone())];
    row.extend(statuses.iter().map(|s| state_cell(node, *s)));
    row.push(joined(present().filter_map(|s| {
        s.backend.map(|b| format!("{b:?}").to_lowercase())
    })));
    row.push(joined(
        present().filter_map(|s| s.public_key.as_deref().map(short_key)),
    ));
    row.extend(statuses.iter().map(|s| peers_cell(*s)));
    let oldest = present().filter_map(|s| s.oldest_handshake_seconds).max();
    row.push(Cell::plain(oldest.map_or("-".into(), age)));
    let active: Vec<&FamilyStatus> = present()
        .copied()
        .filter(|s| s.state == EncryptionState::Encrypted)
        .collect();
    let (rx, tx): (i64, i64) = active
        .iter()
        .fold((0, 0), |(r, t), s| (r + s.rx_bytes, t + s.tx_bytes));
    let counted = !active.is_empty();
    row.push(Cell::plain(if counted { bytes(rx) } else { "-".into() }));
    row.push(Cell::plain(if counted { bytes(tx) } else { "-".into() }));
    if wide {
        row.push(joined(
            present().filter_map(|s| s.mtu.map(|m| m.to_string())),
        ));
        row.push(joined(
            present().filter_map(|s| s.listen_port.map(|p| p.to_string())),
        ));
        row.push(joined(present().filter_map(|s| s.interface.clone())));
    }
    row
}

/// Values of the shown families joined with `/`, or `-`.
fn joined(values: impl Iterator<Item = String>) -> Cell {
    let values: Vec<String> = values.collect();
    let mut unique = values.clone();
    unique.dedup();
    match unique.len() {
        0 => Cell::plain("-"),
        1 => Cell::plain(unique.remove(0)),
        _ => Cell::plain(values.join("/")),
    }
}

fn state_cell(node: &NodeSummary, status: Option<&FamilyStatus>) -> Cell {
    if !node.participating {
        let why = if node.opted_out {
            "opted out"
        } else {
            "not selected"
        };
        return Cell::new(why, Paint::Dim);
    }
    let Some(status) = status else {
        let paint = if node.degraded {
            Paint::Bad
        } else {
            Paint::Dim
        };
        return Cell::new(if node.reported { "-" } else { "no report" }, paint);
    };
    let paint = match status.state {
        EncryptionState::Encrypted => Paint::Good,
        EncryptionState::Disabled => Paint::Dim,
        EncryptionState::Unsupported => Paint::Warn,
        EncryptionState::Error => Paint::Bad,
    };
    Cell::new(format!("{:?}", status.state), paint)
}

fn peers_cell(status: Option<&FamilyStatus>) -> Cell {
    let Some(status) = status.filter(|s| s.state == EncryptionState::Encrypted) else {
        return Cell::plain("-");
    };
    let peers = &status.peers;
    let paint = if peers.handshaken == peers.configured {
        Paint::Plain
    } else {
        Paint::Warn
    };
    Cell::new(format!("{}/{}", peers.handshaken, peers.configured), paint)
}

fn write_warnings(report: &StatusReport, style: Style, out: &mut dyn Write) -> io::Result<()> {
    if report.warnings.is_empty() {
        return Ok(());
    }
    heading(style, "Warnings:", out)?;
    for warning in report.warnings.iter().take(LISTED) {
        let (paint, sign) = if warning.degrades {
            (Paint::Bad, "✗")
        } else {
            (Paint::Warn, "!")
        };
        let subject = warning
            .node
            .as_deref()
            .map(|n| format!("{n}: "))
            .unwrap_or_default();
        writeln!(
            out,
            "  {} {subject}{}",
            style.paint(paint, sign),
            warning.message
        )?;
    }
    more(report.warnings.len(), "warnings", out)
}

fn more(total: usize, what: &str, out: &mut dyn Write) -> io::Result<()> {
    if total > LISTED {
        writeln!(
            out,
            "  … and {} more {what} (-o json lists them all)",
            total - LISTED
        )?;
    }
    Ok(())
}

fn write_skipped(report: &StatusReport, style: Style, out: &mut dyn Write) -> io::Result<()> {
    if report.skipped_peers.is_empty() {
        return Ok(());
    }
    heading(style, "Skipped peers:", out)?;
    let mut table = Table::new(["NODE", "FAMILY", "PEER", "REASON"]);
    for s in report.skipped_peers.iter().take(LISTED) {
        table.row(vec![
            s.node.as_str().into(),
            s.family.name().into(),
            s.peer.as_str().into(),
            s.reason.as_str().into(),
        ]);
    }
    table.write(style, "  ", out)?;
    more(report.skipped_peers.len(), "skipped peers", out)
}

fn write_verdict(report: &StatusReport, style: Style, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out)?;
    if report.degraded {
        let n = report.warnings.iter().filter(|w| w.degrades).count();
        let text = format!("Degraded ({n} problem{})", if n == 1 { "" } else { "s" });
        writeln!(out, "Status: {}", style.paint(Paint::Bad, &text))
    } else {
        writeln!(out, "Status: {}", style.paint(Paint::Good, "Healthy"))
    }
}
