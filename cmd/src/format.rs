//! Small human formats shared by the tables: ages, byte counts, short keys, and printing a
//! report as JSON or YAML.

use std::io::Write;

use serde::Serialize;

use crate::cli::OutputFormat;

/// `45s`, `3m05s`, `2h10m`, `3d4h`.
pub fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86400, s % 86400 / 3600),
    }
}

/// `512 B`, `1.5 KiB`, `3.0 MiB`, `2.1 GiB`.
pub fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    let n = n.max(0);
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// The first 8 characters of a base64 key and `…`, enough to tell keys apart.
pub fn short_key(key: &str) -> String {
    match key.char_indices().nth(8) {
        Some((end, _)) => format!("{}…", &key[..end]),
        None => key.to_owned(),
    }
}

/// Writes `report` as JSON or YAML; false for the table formats, which the caller renders.
pub fn write_structured<T: Serialize>(
    report: &T,
    output: OutputFormat,
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    match output {
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, report)?;
            writeln!(out)?;
        }
        OutputFormat::Yaml => write!(out, "{}", serde_yaml::to_string(report)?)?,
        OutputFormat::Table | OutputFormat::Wide => return Ok(false),
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        let cases = [
            (0, "0s"),
            (59, "59s"),
            (65, "1m05s"),
            (3600, "1h00m"),
            (90061, "1d1h"),
            (-3, "0s"),
        ];
        for (seconds, want) in cases {
            assert_eq!(age(seconds), want, "{seconds}");
        }
    }

    #[test]
    fn byte_counts() {
        let cases = [
            (0, "0 B"),
            (1023, "1023 B"),
            (1536, "1.5 KiB"),
            (3 << 20, "3.0 MiB"),
            (5 << 40, "5.0 TiB"),
        ];
        for (n, want) in cases {
            assert_eq!(bytes(n), want, "{n}");
        }
    }

    #[test]
    fn short_keys() {
        assert_eq!(
            short_key("Jq2M3x0aBCDEFGHIJKLMNOPQRSTUVWXYZ0123456789="),
            "Jq2M3x0a…"
        );
        assert_eq!(short_key("abc"), "abc");
    }
}
