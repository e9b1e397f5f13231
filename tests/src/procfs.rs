//! Memory and CPU of a process, read from /proc: what the benches and the soak sample.

use std::time::Duration;

/// /proc could not be read for a process (gone, or not ours to read).
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("cannot read /proc/{pid}/{file}: {source}")]
    Read {
        pid: u32,
        file: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("/proc/{pid}/{file} has no readable {field}")]
    Malformed {
        pid: u32,
        file: &'static str,
        field: &'static str,
    },
}

fn read(pid: u32, file: &'static str) -> Result<String, ProcError> {
    std::fs::read_to_string(format!("/proc/{pid}/{file}")).map_err(|source| ProcError::Read {
        pid,
        file,
        source,
    })
}

/// `(VmRSS, VmHWM)` of `pid` in KiB: resident memory now and its peak.
pub fn rss_kib(pid: u32) -> Result<(u64, u64), ProcError> {
    let status = read(pid, "status")?;
    let field = |name: &'static str| {
        status_field(&status, name).ok_or(ProcError::Malformed {
            pid,
            file: "status",
            field: name,
        })
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

fn status_field(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// User + system CPU time `pid` used so far.
pub fn cpu_time(pid: u32) -> Result<Duration, ProcError> {
    let stat = read(pid, "stat")?;
    let ticks = stat_cpu_ticks(&stat).ok_or(ProcError::Malformed {
        pid,
        file: "stat",
        field: "utime/stime",
    })?;
    Ok(Duration::from_millis(ticks * 1000 / clock_ticks()))
}

/// utime + stime (fields 14 and 15) of a /proc/<pid>/stat line.
fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces: count fields after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some(tick(11)? + tick(12)?)
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`, 100 when unknown).
pub fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_ticks_after_the_command_name() {
        let cases = [
            ("1 (agent) S 0 0 0 0 0 0 0 0 0 0 7 3 0 0", Some(10)),
            ("2 (a b) c) R 0 0 0 0 0 0 0 0 0 0 40 2 0 0", Some(42)),
            ("3 (short) S 0 0", None),
            ("no parenthesis", None),
        ];
        for (stat, want) in cases {
            assert_eq!(stat_cpu_ticks(stat), want, "{stat}");
        }
    }

    #[test]
    fn reads_status_fields_in_kib() {
        let status = "Name:\tagent\nVmHWM:\t  20480 kB\nVmRSS:\t  10240 kB\n";
        assert_eq!(status_field(status, "VmRSS:"), Some(10240));
        assert_eq!(status_field(status, "VmHWM:"), Some(20480));
        assert_eq!(status_field(status, "VmSwap:"), None);
    }

    #[test]
    fn this_process_has_memory_and_a_gone_one_says_which() {
        let (rss, peak) = rss_kib(std::process::id()).unwrap();
        assert!(rss > 0 && peak >= rss, "{rss} {peak}");
        cpu_time(std::process::id()).unwrap();
        let err = rss_kib(u32::MAX).unwrap_err().to_string();
        assert!(err.contains(&format!("/proc/{}/status", u32::MAX)), "{err}");
    }
}
