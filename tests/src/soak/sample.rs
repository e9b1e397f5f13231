//! RSS and CPU of the agents and the webhook over the run, sampled from /proc in a thread of
//! its own, and what the samples say: growth after warm-up and CPU per minute per process.
//! A restarted agent is followed to its new PID; its growth is judged on its last process.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::lab::state::{Paths, Store};
use crate::lab::supervisor::AgentRecord;
use crate::lab::webhook::WEBHOOK;
use crate::procfs;

/// Growth of RSS after warm-up that a process must stay under, in percent.
pub const GROWTH_TARGET_PCT: f64 = 5.0;
/// The share of the run (and of a restarted process's life) that is warm-up.
pub const WARM_UP_FRACTION: f64 = 0.2;
/// RSS at a point is the median of this many samples from there, to ride out noise.
const POINT_SAMPLES: usize = 5;

/// One reading of one process.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    /// Seconds since the run started.
    pub t: f64,
    pub role: String,
    pub pid: u32,
    pub rss_kib: u64,
    pub cpu_ms: u64,
}

/// What is sampled: each node's agent (found through the supervisor's record) and the webhook.
#[derive(Clone, Debug)]
pub struct Watched {
    paths: Paths,
    nodes: Vec<String>,
}

impl Watched {
    pub fn new(paths: Paths, nodes: Vec<String>) -> Self {
        Self { paths, nodes }
    }

    pub fn roles(&self) -> Vec<String> {
        let mut roles: Vec<String> = self.nodes.iter().map(|n| agent_role(n)).collect();
        roles.push(WEBHOOK.to_owned());
        roles
    }

    /// `(role, pid)` of every watched process running now.
    fn running(&self) -> Vec<(String, u32)> {
        let agents = self.nodes.iter().filter_map(|node| {
            let record = AgentRecord::load(&self.paths, node)?;
            record
                .process
                .is_alive()
                .then(|| (agent_role(node), record.process.pid))
        });
        let webhook = Store::load(&self.paths).ok().flatten().and_then(|store| {
            let process = store.process(WEBHOOK)?;
            process
                .is_alive()
                .then(|| (WEBHOOK.to_owned(), process.pid))
        });
        agents.chain(webhook).collect()
    }
}

pub fn agent_role(node: &str) -> String {
    format!("agent-{node}")
}

/// The sampling thread; [`Sampler::finish`] stops it and returns the samples.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Sample>>,
}

impl Sampler {
    /// Samples every `every` from `start` until finished.
    pub fn start(watched: Watched, start: Instant, every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !flag.load(Ordering::SeqCst) {
                let t = start.elapsed().as_secs_f64();
                samples.extend(
                    watched
                        .running()
                        .into_iter()
                        .filter_map(|(role, pid)| read(&role, pid, t)),
                );
                sleep_unless_stopped(&flag, every);
            }
            samples
        });
        Self { stop, thread }
    }

    pub fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap_or_default()
    }
}

fn sleep_unless_stopped(stop: &AtomicBool, total: Duration) {
    let step = Duration::from_millis(100);
    let deadline = Instant::now() + total;
    while Instant::now() < deadline && !stop.load(Ordering::SeqCst) {
        std::thread::sleep(step);
    }
}

fn read(role: &str, pid: u32, t: f64) -> Option<Sample> {
    let (rss_kib, _) = procfs::rss_kib(pid).ok()?;
    let cpu = procfs::cpu_time(pid).ok()?;
    Some(Sample {
        t,
        role: role.to_owned(),
        pid,
        rss_kib,
        cpu_ms: cpu.as_millis() as u64,
    })
}

/// Whether a process stayed under the growth target.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "verdict", content = "why")]
pub enum Verdict {
    Ok,
    Missed,
    /// Its last process did not live past warm-up (or was never seen).
    NotJudged(String),
}

impl Verdict {
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Missed => "MISSED",
            Verdict::NotJudged(_) => "not judged",
        }
    }
}

/// What the samples of one process say.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Growth {
    pub role: String,
    /// Every PID it had, in order (a restart adds one).
    pub pids: Vec<u32>,
    pub samples: usize,
    /// RSS of its last process after warm-up, and at the end (KiB; medians of a few samples).
    pub rss_warm_kib: Option<u64>,
    pub rss_end_kib: Option<u64>,
    pub rss_peak_kib: u64,
    pub growth_pct: Option<f64>,
    pub verdict: Verdict,
    /// CPU seconds used per minute observed, over all its processes.
    pub cpu_s_per_min: f64,
}

/// The growth of `role` over a run of `length` seconds.
pub fn growth(role: &str, samples: &[Sample], length: f64) -> Growth {
    let mine: Vec<&Sample> = samples.iter().filter(|s| s.role == role).collect();
    let generations = generations(&mine);
    let pids = generations.iter().map(|g| g[0].pid).collect();
    let rss_peak_kib = mine.iter().map(|s| s.rss_kib).max().unwrap_or(0);
    let cpu_s_per_min = cpu_per_minute(&generations);
    let warm_up = length * WARM_UP_FRACTION;
    let last = generations.last().cloned().unwrap_or_default();
    let (rss_warm_kib, rss_end_kib, growth_pct, verdict) = judge(&last, warm_up);
    Growth {
        role: role.to_owned(),
        pids,
        samples: mine.len(),
        rss_warm_kib,
        rss_end_kib,
        rss_peak_kib,
        growth_pct,
        verdict,
        cpu_s_per_min,
    }
}

/// Consecutive runs of samples with the same PID.
fn generations<'a>(samples: &[&'a Sample]) -> Vec<Vec<&'a Sample>> {
    let mut out: Vec<Vec<&Sample>> = Vec::new();
    for sample in samples {
        match out.last_mut() {
            Some(g) if g[0].pid == sample.pid => g.push(sample),
            _ => out.push(vec![sample]),
        }
    }
    out
}

fn cpu_per_minute(generations: &[Vec<&Sample>]) -> f64 {
    let (mut cpu_ms, mut seconds) = (0u64, 0.0);
    for g in generations {
        let (first, last) = (g[0], g[g.len() - 1]);
        cpu_ms += last.cpu_ms.saturating_sub(first.cpu_ms);
        seconds += last.t - first.t;
    }
    if seconds <= 0.0 {
        return 0.0;
    }
    cpu_ms as f64 / 1000.0 / (seconds / 60.0)
}

type Judged = (Option<u64>, Option<u64>, Option<f64>, Verdict);

fn judge(last: &[&Sample], warm_up: f64) -> Judged {
    let Some(first) = last.first() else {
        return (None, None, None, Verdict::NotJudged("never sampled".into()));
    };
    let after: Vec<u64> = last
        .iter()
        .filter(|s| s.t >= first.t + warm_up)
        .map(|s| s.rss_kib)
        .collect();
    if after.len() < 2 * POINT_SAMPLES {
        let lived = last[last.len() - 1].t - first.t;
        let why = format!(
            "its last process was sampled for {lived:.0} s; judging needs the {warm_up:.0} s warm-up and {} samples after it",
            2 * POINT_SAMPLES
        );
        return (None, None, None, Verdict::NotJudged(why));
    }
    let warm = median(&after[..POINT_SAMPLES]);
    let end = median(&after[after.len() - POINT_SAMPLES..]);
    let pct = (end as f64 - warm as f64) / warm as f64 * 100.0;
    let verdict = if pct < GROWTH_TARGET_PCT {
        Verdict::Ok
    } else {
        Verdict::Missed
    };
    (Some(warm), Some(end), Some(pct), verdict)
}

fn median(values: &[u64]) -> u64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted[sorted.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Samples of `role` every 10 s: `(pid, rss_kib, cpu_ms)` each.
    fn series(role: &str, points: &[(u32, u64, u64)]) -> Vec<Sample> {
        points
            .iter()
            .enumerate()
            .map(|(i, &(pid, rss_kib, cpu_ms))| Sample {
                t: i as f64 * 10.0,
                role: role.into(),
                pid,
                rss_kib,
                cpu_ms,
            })
            .collect()
    }

    fn flat_then(pid: u32, n: usize, rss: impl Fn(usize) -> u64) -> Vec<(u32, u64, u64)> {
        (0..n).map(|i| (pid, rss(i), i as u64 * 100)).collect()
    }

    #[test]
    fn growth_is_judged_after_warm_up_against_the_target() {
        // (name, rss of sample i of 50 (10 s apart, run 500 s, warm-up 100 s), verdict, pct)
        type Case = (&'static str, fn(usize) -> u64, &'static str, f64);
        let cases: [Case; 4] = [
            ("flat", |_| 10_000, "ok", 0.0),
            (
                "warm-up growth is not counted",
                |i| if i < 10 { 5_000 } else { 10_000 },
                "ok",
                0.0,
            ),
            (
                "4 % is under the target",
                |i| if i < 30 { 10_000 } else { 10_400 },
                "ok",
                4.0,
            ),
            ("a leak", |i| 10_000 + i as u64 * 100, "MISSED", 31.25),
        ];
        for (name, rss, verdict, pct) in cases {
            let samples = series("agent-node-1", &flat_then(7, 50, rss));
            let g = growth("agent-node-1", &samples, 500.0);
            assert_eq!(g.verdict.label(), verdict, "{name}: {g:?}");
            let got = g.growth_pct.unwrap();
            assert!((got - pct).abs() < 0.5, "{name}: {got} vs {pct}");
        }
    }

    #[test]
    fn a_restart_resets_the_baseline_and_cpu_adds_up_over_processes() {
        let mut points = flat_then(1, 20, |_| 50_000);
        points.extend(flat_then(2, 30, |_| 10_000));
        let samples = series("agent-node-2", &points);
        let g = growth("agent-node-2", &samples, 500.0);
        assert_eq!(g.pids, vec![1, 2]);
        assert_eq!(g.verdict, Verdict::Ok, "{g:?}");
        assert_eq!(
            (g.rss_warm_kib, g.rss_end_kib),
            (Some(10_000), Some(10_000))
        );
        assert_eq!(g.rss_peak_kib, 50_000);
        // 1.9 s + 2.9 s of CPU over 190 s + 290 s observed.
        assert!(
            (g.cpu_s_per_min - 4.8 / 8.0).abs() < 1e-9,
            "{}",
            g.cpu_s_per_min
        );
    }

    #[test]
    fn a_process_restarted_late_or_never_seen_is_not_judged() {
        let mut points = flat_then(1, 45, |_| 10_000);
        points.extend(flat_then(2, 5, |_| 10_000));
        let g = growth("webhook", &series("webhook", &points), 500.0);
        assert!(matches!(g.verdict, Verdict::NotJudged(_)), "{g:?}");
        assert_eq!(g.growth_pct, None);
        let none = growth("webhook", &[], 500.0);
        assert_eq!(none.verdict, Verdict::NotJudged("never sampled".into()));
        assert_eq!(none.cpu_s_per_min, 0.0);
    }
}
