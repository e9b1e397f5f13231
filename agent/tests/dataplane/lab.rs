//! Two throwaway network namespaces joined by a veth underlay, each with a "pod" interface
//! holding the node's pod addresses. Everything is removed on drop, also when a test fails: WireGuard daemons
//! left in the namespaces are stopped by PID, then the namespaces and files are deleted.

use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Fails the test loudly when it cannot run here.
pub fn require_root_and_tools() {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        });
    assert_eq!(
        uid.as_deref(),
        Some("0"),
        "the dataplane tests create network namespaces and need root; run them as root"
    );
    for tool in [
        "ip",
        "unshare",
        "mount",
        "nft",
        "ping",
        "tcpdump",
        "kill",
        super::WIREGUARD_GO,
    ] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(found, "the dataplane tests need {tool} on PATH");
    }
}

/// Runs a command, failing the test with its output when it fails.
pub fn run(program: &str, args: &[&str]) -> Output {
    let output = try_run(program, args);
    assert!(
        output.status.success(),
        "{program} {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    output
}

pub fn try_run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// One side of the lab.
#[derive(Debug)]
pub struct Side {
    pub netns: String,
    /// Per-node files: `state/` (the driver's) and `wireguard/` (mounted on /run/wireguard).
    pub dir: PathBuf,
    pub underlay_v4: IpAddr,
    pub underlay_v6: IpAddr,
    pub pod_v4: IpAddr,
    pub pod_v6: IpAddr,
}

impl Side {
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    pub fn socket_dir(&self) -> PathBuf {
        self.dir.join("wireguard")
    }

    /// `ip netns exec <netns> <args>`.
    pub fn exec(&self, args: &[&str]) -> Output {
        let mut all = vec!["netns", "exec", self.netns.as_str()];
        all.extend_from_slice(args);
        try_run("ip", &all)
    }

    /// `ip -n <netns> <args>`, which must succeed.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", self.netns.as_str()];
        all.extend_from_slice(args);
        stdout(&run("ip", &all))
    }

    /// New links get usable IPv6 link-local addresses at once; with duplicate address
    /// detection running, the first neighbour solicitations of a fresh lab go nowhere and
    /// the first WireGuard handshake is only retried after 5 s.
    fn disable_dad(&self) {
        for scope in ["all", "default"] {
            let path = format!("/proc/sys/net/ipv6/conf/{scope}/accept_dad");
            let output = self.exec(&["sh", "-c", &format!("echo 0 > {path}")]);
            assert!(
                output.status.success(),
                "cannot write {path} in {}",
                self.netns
            );
        }
    }

    pub fn underlay(&self, v6: bool) -> IpAddr {
        if v6 {
            self.underlay_v6
        } else {
            self.underlay_v4
        }
    }

    pub fn pod(&self, v6: bool) -> IpAddr {
        if v6 {
            self.pod_v6
        } else {
            self.pod_v4
        }
    }

    /// Live (not zombie) wireguard-go processes inside this namespace.
    pub fn wireguard_go_pids(&self) -> Vec<u32> {
        let Ok(namespace) = std::fs::metadata(format!("/run/netns/{}", self.netns)) else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                let net = std::fs::metadata(format!("/proc/{pid}/ns/net"));
                comm.trim() == "wireguard-go"
                    && net.is_ok_and(|n| n.ino() == namespace.ino() && n.dev() == namespace.dev())
                    && !is_zombie(*pid)
            })
            .collect()
    }

    /// Waits up to `timeout` for the namespace's wireguard-go processes to be gone.
    pub fn wait_for_no_wireguard_go(&self, timeout: Duration) -> Vec<u32> {
        let deadline = Instant::now() + timeout;
        loop {
            let pids = self.wireguard_go_pids();
            if pids.is_empty() || Instant::now() >= deadline {
                return pids;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A "pod" in a namespace of its own behind its node (`<node netns>-pod`): the far end of the
/// node's `pod0` veth with the pod network's `.2` (and `::2`), routed through the node, which
/// forwards. Traffic from it is forwarded by the node, as a real pod's is. Removed on drop.
#[derive(Debug)]
pub struct PodNetns {
    pub netns: String,
    pub v4: IpAddr,
}

impl Side {
    /// Moves `pod0peer` into a new namespace and makes it a pod behind this node.
    pub fn attach_pod_netns(&self) -> PodNetns {
        let netns = format!("{}-pod", self.netns);
        let IpAddr::V4(gateway) = self.pod_v4 else {
            unreachable!("IPv4 pod address")
        };
        let [a, b, c, _] = gateway.octets();
        let v4: IpAddr = format!("{a}.{b}.{c}.2").parse().unwrap();
        run("ip", &["netns", "add", &netns]);
        let pod = PodNetns { netns, v4 };
        self.ip(&["link", "set", "pod0peer", "netns", &pod.netns]);
        let ip = |args: &[&str]| {
            let mut all = vec!["-n", pod.netns.as_str()];
            all.extend_from_slice(args);
            run("ip", &all);
        };
        ip(&["link", "set", "lo", "up"]);
        ip(&["address", "add", &format!("{v4}/24"), "dev", "pod0peer"]);
        ip(&["link", "set", "pod0peer", "up"]);
        ip(&["route", "add", "default", "via", &gateway.to_string()]);
        let forwarding = self.exec(&["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]);
        assert!(forwarding.status.success(), "ip_forward in {}", self.netns);
        pod
    }
}

impl PodNetns {
    /// `ip netns exec <pod> <args>`.
    pub fn exec(&self, args: &[&str]) -> Output {
        let mut all = vec!["netns", "exec", self.netns.as_str()];
        all.extend_from_slice(args);
        try_run("ip", &all)
    }
}

impl Drop for PodNetns {
    fn drop(&mut self) {
        let _ = try_run("ip", &["netns", "del", &self.netns]);
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// Two namespaces `ket-dp-<pid>-<tag>-a` / `-b`.
#[derive(Debug)]
pub struct Lab {
    pub a: Side,
    pub b: Side,
    dir: PathBuf,
}

impl Lab {
    pub fn new(tag: &str) -> Self {
        require_root_and_tools();
        let prefix = format!("ket-dp-{}-{tag}", std::process::id());
        let dir = std::env::temp_dir().join(&prefix);
        let _ = std::fs::remove_dir_all(&dir);
        let side = |name: &str, host: u8, pod: u8| Side {
            netns: format!("{prefix}-{name}"),
            dir: dir.join(name),
            underlay_v4: format!("192.0.2.{host}").parse().unwrap(),
            underlay_v6: format!("2001:db8::{host}").parse().unwrap(),
            pod_v4: format!("198.18.{pod}.1").parse().unwrap(),
            pod_v6: format!("2001:db8:{pod}::1").parse().unwrap(),
        };
        let lab = Lab {
            a: side("a", 1, 1),
            b: side("b", 2, 2),
            dir,
        };
        // From here on, Drop cleans up whatever was created.
        for side in [&lab.a, &lab.b] {
            std::fs::create_dir_all(side.socket_dir()).unwrap();
            std::fs::create_dir_all(side.state_dir()).unwrap();
            run("ip", &["netns", "add", &side.netns]);
            side.ip(&["link", "set", "lo", "up"]);
            side.disable_dad();
        }
        run(
            "ip",
            &[
                "-n",
                &lab.a.netns,
                "link",
                "add",
                "eth0",
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &lab.b.netns,
            ],
        );
        for side in [&lab.a, &lab.b] {
            lab.wire(side);
        }
        lab
    }

    fn wire(&self, side: &Side) {
        let v4 = format!("{}/24", side.underlay_v4);
        let v6 = format!("{}/64", side.underlay_v6);
        side.ip(&["address", "add", &v4, "dev", "eth0"]);
        side.ip(&["address", "add", &v6, "dev", "eth0", "nodad"]);
        side.ip(&["link", "set", "eth0", "up"]);
        // No dummy module on every kernel: a veth pair whose far end stays in the node.
        side.ip(&[
            "link", "add", "pod0", "type", "veth", "peer", "name", "pod0peer",
        ]);
        side.ip(&["link", "set", "pod0peer", "up"]);
        side.ip(&[
            "address",
            "add",
            &format!("{}/24", side.pod_v4),
            "dev",
            "pod0",
        ]);
        side.ip(&[
            "address",
            "add",
            &format!("{}/64", side.pod_v6),
            "dev",
            "pod0",
            "nodad",
        ]);
        side.ip(&["link", "set", "pod0", "up"]);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for side in [&self.a, &self.b] {
            for pid in side.wireguard_go_pids() {
                let _ = try_run("kill", &["-TERM", &pid.to_string()]);
            }
            if !side
                .wait_for_no_wireguard_go(Duration::from_secs(3))
                .is_empty()
            {
                for pid in side.wireguard_go_pids() {
                    let _ = try_run("kill", &["-KILL", &pid.to_string()]);
                }
            }
            if Path::new(&format!("/run/netns/{}", side.netns)).exists() {
                let _ = try_run("ip", &["netns", "del", &side.netns]);
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
