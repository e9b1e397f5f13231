//! The bench's own network namespaces (`keb-<pid>-…`), node mount namespaces and scratch
//! directory, all removed when the [`Workspace`] is dropped — also after a failure.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use kube_encrypt_tests::lab::sys::{self, cmd, ip, run};

/// Where userspace WireGuard keeps its sockets (private per node).
pub const WIREGUARD_RUN_DIR: &str = "/var/run/wireguard";
/// The hub's bridge address: the API emulator listens here.
pub const HUB_ADDR: &str = "192.0.2.1";

/// Everything one bench run creates on the host.
#[derive(Debug)]
pub struct Workspace {
    prefix: String,
    /// Scratch files: logs, emulator state, agent state dirs.
    pub dir: PathBuf,
    /// Bind-mounted private, holds the node mount namespace files.
    mount_dir: PathBuf,
    mount_files: Vec<PathBuf>,
    netns: Vec<String>,
    created_run_dir: bool,
}

/// One node: a network namespace with its own mount namespace.
#[derive(Clone, Debug)]
pub struct BenchNode {
    pub index: u8,
    pub netns: String,
    pub mntns: PathBuf,
    /// The node's underlay address.
    pub addr: String,
}

impl BenchNode {
    /// A command run inside the node's network and mount namespaces.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--mount={}", self.mntns.display()))
            .arg(format!("--net=/run/netns/{}", self.netns))
            .arg("--")
            .args(args);
        command
    }

    /// Runs `args` inside the node and returns its output; fails unless it exits 0.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<Output> {
        Ok(run(&mut self.command(args))?)
    }

    /// stdout of `args` run inside the node.
    pub fn stdout(&self, args: &[&str]) -> anyhow::Result<String> {
        Ok(String::from_utf8_lossy(&self.run(args)?.stdout).into_owned())
    }
}

impl Workspace {
    /// A fresh workspace named after this process.
    pub fn new(bench: &str) -> anyhow::Result<Self> {
        let pid = std::process::id();
        let dir = std::env::temp_dir().join(format!("keb-{pid}-{bench}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        Ok(Self {
            prefix: format!("keb-{pid}"),
            mount_dir: PathBuf::from(format!("/run/keb-{pid}-mnt")),
            dir,
            mount_files: Vec::new(),
            netns: Vec::new(),
            created_run_dir: false,
        })
    }

    /// `keb-<pid>-<suffix>`.
    pub fn name(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.prefix)
    }

    /// Creates a network namespace (recorded for removal) with `lo` up.
    pub fn add_netns(&mut self, suffix: &str) -> anyhow::Result<String> {
        let name = self.name(suffix);
        run(&mut cmd("ip", ["netns", "add", &name]))?;
        self.netns.push(name.clone());
        ip(&name, &["link", "set", "lo", "up"])?;
        Ok(name)
    }

    /// The hub: a namespace with bridge `br0` holding [`HUB_ADDR`]/24.
    pub fn add_hub(&mut self) -> anyhow::Result<String> {
        let hub = self.add_netns("hub")?;
        ip(&hub, &["link", "add", "br0", "type", "bridge"])?;
        ip(
            &hub,
            &["addr", "add", &format!("{HUB_ADDR}/24"), "dev", "br0"],
        )?;
        ip(&hub, &["link", "set", "br0", "up"])?;
        Ok(hub)
    }

    /// Node `index`: namespace, underlay veth `eth0` (192.0.2.1<index>/24, MTU 1500) to the
    /// hub's bridge, forwarding on, and a private mount namespace for WireGuard's sockets.
    pub fn add_node(&mut self, hub: &str, index: u8) -> anyhow::Result<BenchNode> {
        let netns = self.add_netns(&format!("n{index}"))?;
        let peer = format!("n{index}");
        run(&mut cmd(
            "ip",
            [
                "link", "add", "eth0", "netns", &netns, "mtu", "1500", "type", "veth", "peer",
                "name", &peer, "netns", hub, "mtu", "1500",
            ],
        ))?;
        ip(hub, &["link", "set", &peer, "master", "br0", "up"])?;
        let addr = format!("192.0.2.1{index}");
        ip(
            &netns,
            &["addr", "add", &format!("{addr}/24"), "dev", "eth0"],
        )?;
        ip(&netns, &["link", "set", "eth0", "up"])?;
        sys::sysctl(&netns, "net.ipv4.ip_forward", "1")?;
        let mntns = self.add_mount_ns(&netns)?;
        Ok(BenchNode {
            index,
            netns,
            mntns,
            addr,
        })
    }

    /// A pod behind node `node`: `pod0` 198.18.<i>.1/24 on the node, `eth0` 198.18.<i>.2/24
    /// in the pod with its default route via the node. Returns the pod's namespace.
    pub fn add_pod(&mut self, node: &BenchNode) -> anyhow::Result<String> {
        let i = node.index;
        let pod = self.add_netns(&format!("p{i}"))?;
        run(&mut cmd(
            "ip",
            [
                "link",
                "add",
                "pod0",
                "netns",
                &node.netns,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &pod,
            ],
        ))?;
        ip(
            &node.netns,
            &["addr", "add", &format!("198.18.{i}.1/24"), "dev", "pod0"],
        )?;
        ip(&node.netns, &["link", "set", "pod0", "up"])?;
        ip(
            &pod,
            &["addr", "add", &format!("198.18.{i}.2/24"), "dev", "eth0"],
        )?;
        ip(&pod, &["link", "set", "eth0", "up"])?;
        ip(
            &pod,
            &["route", "add", "default", "via", &format!("198.18.{i}.1")],
        )?;
        Ok(pod)
    }

    /// A persisted private mount namespace with its own tmpfs on /var/run/wireguard, so
    /// userspace WireGuard sockets of different nodes never meet.
    fn add_mount_ns(&mut self, netns: &str) -> anyhow::Result<PathBuf> {
        if self.mount_files.is_empty() {
            self.prepare_mount_dir()?;
        }
        let file = self.mount_dir.join(netns);
        File::create(&file).with_context(|| format!("create {}", file.display()))?;
        let text = file.display().to_string();
        run(&mut cmd(
            "unshare",
            [
                &format!("--mount={text}"),
                "--propagation",
                "private",
                "true",
            ],
        ))?;
        self.mount_files.push(file.clone());
        run(&mut cmd(
            "nsenter",
            [
                &format!("--mount={text}"),
                "--",
                "mount",
                "-t",
                "tmpfs",
                "-o",
                "mode=0755",
                "tmpfs",
                WIREGUARD_RUN_DIR,
            ],
        ))?;
        Ok(file)
    }

    fn prepare_mount_dir(&mut self) -> anyhow::Result<()> {
        if !Path::new(WIREGUARD_RUN_DIR).is_dir() {
            std::fs::create_dir_all(WIREGUARD_RUN_DIR)?;
            self.created_run_dir = true;
        }
        std::fs::create_dir_all(&self.mount_dir)?;
        let dir = self.mount_dir.display().to_string();
        run(&mut cmd("mount", ["--bind", &dir, &dir]))?;
        run(&mut cmd("mount", ["--make-private", &dir]))?;
        Ok(())
    }

    /// Moves the calling thread into `netns`. Call it before building the tokio runtime:
    /// threads started later inherit it, so the emulator listens inside the hub.
    pub fn enter(&self, netns: &str) -> anyhow::Result<()> {
        let file = File::open(format!("/run/netns/{netns}"))
            .with_context(|| format!("open /run/netns/{netns}"))?;
        nix::sched::setns(&file, CloneFlags::CLONE_NEWNET)
            .with_context(|| format!("enter network namespace {netns}"))?;
        Ok(())
    }

    fn cleanup(&mut self) {
        for netns in self.netns.iter().rev() {
            stop_what_runs_in(netns);
        }
        for file in self.mount_files.drain(..) {
            let _ = run(&mut cmd("umount", ["-l".as_ref(), file.as_os_str()]));
            let _ = std::fs::remove_file(&file);
        }
        if self.mount_dir.exists() {
            let _ = run(&mut cmd(
                "umount",
                ["-l".as_ref(), self.mount_dir.as_os_str()],
            ));
            let _ = std::fs::remove_dir(&self.mount_dir);
        }
        for netns in self.netns.drain(..).rev() {
            if let Err(e) = run(&mut cmd("ip", ["netns", "del", &netns])) {
                eprintln!("cleanup: {e}");
            }
        }
        if self.created_run_dir {
            let _ = std::fs::remove_dir(WIREGUARD_RUN_DIR);
        }
        if std::env::var_os("KEB_KEEP_LOGS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("logs kept in {}", self.dir.display());
        }
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// Deletes every link of `netns` except `lo` (a userspace WireGuard daemon exits when its
/// TUN device goes), then stops what still runs in the namespace: only processes this bench
/// started can be inside a namespace it created.
fn stop_what_runs_in(netns: &str) {
    let links = ip(netns, &["-o", "link", "show"])
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default();
    for line in links.lines() {
        let Some(name) = line.split(':').nth(1).map(|n| n.trim()) else {
            continue;
        };
        let name = name.split('@').next().unwrap_or(name);
        if name != "lo" {
            let _ = ip(netns, &["link", "del", name]);
        }
    }
    for signal in [Signal::SIGTERM, Signal::SIGKILL] {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let pids = pids_in(netns);
            if pids.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                for pid in pids {
                    let _ = kill(Pid::from_raw(pid), signal);
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The processes inside `netns`, except this bench (which may live in its hub).
fn pids_in(netns: &str) -> Vec<i32> {
    let own = std::process::id() as i32;
    run(&mut cmd("ip", ["netns", "pids", netns]))
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .filter(|pid| *pid != own)
                .collect()
        })
        .unwrap_or_default()
}
