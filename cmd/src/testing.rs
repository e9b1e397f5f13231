//! Test helpers of this crate: golden files and a [`Ui`] for a chosen format.

use std::path::PathBuf;

use crate::cli::OutputFormat;
use crate::style::Style;
use crate::Ui;

pub fn ui(output: OutputFormat, style: Style) -> Ui {
    Ui {
        style,
        output,
        terminal: false,
    }
}

/// Compares `actual` with `cmd/tests/golden/<name>`; `UPDATE_GOLDEN=1` writes it instead.
pub fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run UPDATE_GOLDEN=1 cargo test -p kubectl-encrypt",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{name} differs from {}; if the change is deliberate, run UPDATE_GOLDEN=1 cargo test -p kubectl-encrypt\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}
