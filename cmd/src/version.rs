//! `kubectl encrypt version`: the plugin's version, offline.

use std::io::Write;

use serde::Serialize;

use crate::format::write_structured;
use crate::{Exit, Ui};

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
struct Version {
    client_version: &'static str,
}

pub fn run(ui: Ui, out: &mut dyn Write) -> anyhow::Result<Exit> {
    let version = Version {
        client_version: concat!("v", env!("CARGO_PKG_VERSION")),
    };
    if !write_structured(&version, ui.output, out)? {
        writeln!(out, "kubectl-encrypt {}", version.client_version)?;
    }
    Ok(Exit::Done)
}
