//! Facts about the machine a bench runs on, read from the OS at run time.

use super::schema::Machine;

/// The 1/5/15 minute load averages and the runnable/total field of `/proc/loadavg`.
pub fn load() -> (Vec<f64>, String) {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    parse_loadavg(&text)
}

fn parse_loadavg(text: &str) -> (Vec<f64>, String) {
    let fields: Vec<&str> = text.split_whitespace().collect();
    let averages: Option<Vec<f64>> = fields.iter().take(3).map(|f| f.parse().ok()).collect();
    let averages = averages.filter(|a| a.len() == 3).unwrap_or_default();
    (averages, fields.get(3).unwrap_or(&"").to_string())
}

pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

pub fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| k.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

pub fn memory_mib() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024)
}

/// The machine now; `load_after` is filled in by [`finish`] when the bench is done.
pub fn start() -> Machine {
    let (load_before, procs_before) = load();
    Machine {
        cpus: cpus(),
        kernel: kernel(),
        memory_mib: memory_mib(),
        load_before,
        load_after: Vec::new(),
        procs_before,
        procs_after: String::new(),
    }
}

pub fn finish(machine: &mut Machine) {
    (machine.load_after, machine.procs_after) = load();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_loadavg() {
        let cases = [
            ("0.52 0.41 0.30 2/517 12345\n", [0.52, 0.41, 0.30], "2/517"),
            ("3.78 2.60 1.88 5/600 1", [3.78, 2.60, 1.88], "5/600"),
        ];
        for (text, averages, procs) in cases {
            assert_eq!(
                parse_loadavg(text),
                (averages.to_vec(), procs.to_string()),
                "{text}"
            );
        }
    }

    #[test]
    fn unreadable_loadavg_is_empty() {
        for text in ["", "garbage here", "1.0 2.0"] {
            assert_eq!(parse_loadavg(text).0, Vec::<f64>::new(), "{text}");
        }
    }
}
