//! A bounded tcpdump on one interface of a namespace, and the classification of what it
//! saw: WireGuard UDP, link-level control traffic (ARP, neighbour discovery, MLD), or
//! anything else (a failure: traffic in clear).

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::lab::{try_run, Side};

/// At most this many packets are captured.
const MAX_PACKETS: &str = "400";
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running capture; stopped (by PID) when finished or dropped.
pub struct Capture {
    child: Child,
    output: PathBuf,
}

impl Capture {
    /// Starts tcpdump on `interface` of `side` and waits until it listens.
    pub fn start(side: &Side, interface: &str) -> Self {
        Self::start_with_limit(side, interface, MAX_PACKETS)
    }

    /// [`Capture::start`] keeping at most `max_packets` packets.
    pub fn start_with_limit(side: &Side, interface: &str, max_packets: &str) -> Self {
        let output = side.dir.join(format!("capture-{interface}.txt"));
        let messages = side.dir.join(format!("capture-{interface}.log"));
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &side.netns,
                "tcpdump",
                "-n",
                "-l",
                "-i",
                interface,
                "-c",
                max_packets,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::from(File::create(&output).unwrap()))
            .stderr(Stdio::from(File::create(&messages).unwrap()))
            .spawn()
            .expect("start tcpdump");
        let mut capture = Capture { child, output };
        let deadline = Instant::now() + START_TIMEOUT;
        while !std::fs::read_to_string(&messages)
            .unwrap_or_default()
            .contains("listening on")
        {
            let exited = capture.child.try_wait().ok().flatten();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "tcpdump did not start listening: {}",
                std::fs::read_to_string(&messages).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        capture
    }

    /// Stops the capture and returns every packet line.
    pub fn finish(mut self) -> Vec<String> {
        // Let the last packets reach the line-buffered output before stopping.
        std::thread::sleep(Duration::from_millis(300));
        self.stop();
        let text = std::fs::read_to_string(&self.output).unwrap_or_default();
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect()
    }

    fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // `ip netns exec` exec'ed into tcpdump: this PID is tcpdump's.
            let _ = try_run("kill", &["-INT", &self.child.id().to_string()]);
            if !wait_exit(&mut self.child, Duration::from_secs(3)) {
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop();
    }
}

fn wait_exit(child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// What a capture contained.
#[derive(Debug, Default)]
pub struct Traffic {
    /// UDP packets whose source and destination port are the WireGuard port.
    pub wireguard: usize,
    /// ARP, neighbour discovery, router solicitations, MLD.
    pub link_control: usize,
    /// Everything else, verbatim.
    pub other: Vec<String>,
}

/// Sorts tcpdump lines (`... IP 192.0.2.1.51820 > 192.0.2.2.51820: UDP, length 148`).
pub fn classify(lines: &[String], port: u16) -> Traffic {
    let mut traffic = Traffic::default();
    for line in lines {
        if is_wireguard(line, port) {
            traffic.wireguard += 1;
        } else if is_link_control(line) {
            traffic.link_control += 1;
        } else {
            traffic.other.push(line.clone());
        }
    }
    traffic
}

fn is_wireguard(line: &str, port: u16) -> bool {
    let Some((addresses, rest)) = line.split_once(": ") else {
        return false;
    };
    let mut words = addresses.split_whitespace().rev();
    let (Some(destination), Some(">"), Some(source)) = (words.next(), words.next(), words.next())
    else {
        return false;
    };
    let suffix = format!(".{port}");
    rest.starts_with("UDP") && source.ends_with(&suffix) && destination.ends_with(&suffix)
}

fn is_link_control(line: &str) -> bool {
    [
        "ARP, ",
        "ICMP6, neighbor",
        "ICMP6, router solicitation",
        "multicast listener",
    ]
    .iter()
    .any(|marker| line.contains(marker))
}

#[test]
fn classifies_tcpdump_lines() {
    let lines: Vec<String> = [
        "10:00:00.000001 IP 192.0.2.1.51820 > 192.0.2.2.51820: UDP, length 148",
        "10:00:00.000002 IP6 2001:db8::2.51821 > 2001:db8::1.51821: UDP, length 92",
        "10:00:00.000003 ARP, Request who-has 192.0.2.2 tell 192.0.2.1, length 28",
        "10:00:00.000004 IP6 fe80::1 > ff02::1:ff00:2: ICMP6, neighbor solicitation, who has 2001:db8::2, length 32",
        "10:00:00.000005 IP 198.18.1.1 > 198.18.2.1: ICMP echo request, id 7, seq 1, length 64",
        "10:00:00.000006 IP 192.0.2.1.40000 > 192.0.2.2.51820: UDP, length 148",
    ]
    .map(String::from)
    .to_vec();
    let traffic = classify(&lines, 51820);
    assert_eq!((traffic.wireguard, traffic.link_control), (1, 2));
    assert_eq!(traffic.other.len(), 3, "{:?}", traffic.other);
    assert_eq!(classify(&lines, 51821).wireguard, 1);
}
