//! Command line and environment of the agent, parsed once into one validated [`Config`].

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// kube-encrypt node agent: keeps this node's WireGuard mesh in line with the cluster.
#[derive(Debug, Clone, Parser)]
#[command(name = "kube-encrypt-agent", version, about)]
pub struct Args {
    /// Name of the Kubernetes Node this agent runs on (downward API `spec.nodeName`).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: String,

    /// Kubeconfig file; in-cluster configuration when absent.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// Directory holding the private keys and what the agent manages (survives restarts).
    #[arg(long, default_value = "/var/lib/kube-encrypt")]
    pub state_dir: PathBuf,

    /// Address of the HTTP server for `/metrics`, `/healthz` and `/readyz`: `node:PORT` binds
    /// to this node's address (`--host-ip`, else its Node's first InternalIP), `IP:PORT` to
    /// exactly that (`0.0.0.0:9105` for every address of the host).
    #[arg(long, env = "METRICS_ADDR", default_value = "node:9105")]
    pub metrics_addr: MetricsAddr,

    /// This node's address, from the downward API (`status.hostIP`); where `--metrics-addr
    /// node:PORT` binds. When absent the agent reads its Node's InternalIP from the API server.
    #[arg(long, env = "HOST_IP")]
    pub host_ip: Option<IpAddr>,

    /// Export handshake age and bytes for every peer, labelled by node. Off by default: in an
    /// N-node cluster every agent would export 3·N series (3·N² in all).
    #[arg(long, env = "PER_PEER_METRICS")]
    pub per_peer_metrics: bool,

    /// Root of the sysctl tree the agent writes (`net.ipv4.conf.all.src_valid_mark` with host
    /// encryption). In a pod the container's own `/proc/sys` is read-only: mount the host's
    /// `/proc/sys/net` (hostPath) below this directory instead.
    #[arg(long, default_value = "/proc/sys")]
    pub sysctl_dir: PathBuf,

    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Userspace WireGuard program used when the kernel has no WireGuard module, or `none`
    /// when this node has no usable WireGuard (it then reports Unsupported and its peers
    /// reach it unencrypted).
    #[arg(long, default_value = "wireguard-go")]
    pub userspace_implementation: String,

    /// Reconcile at least this often even when nothing changed (such as `60s`, `5m`).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub resync_interval: Duration,

    /// Wait this long after a change for more changes before reconciling (such as `50ms`).
    #[arg(long, default_value = "50ms", value_parser = parse_duration)]
    pub debounce: Duration,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where the metrics server listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsAddr {
    /// `node:PORT`: the node's own address on this port.
    Node(u16),
    /// `IP:PORT`: exactly this address.
    Fixed(SocketAddr),
}

impl FromStr for MetricsAddr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if let Some(port) = text.strip_prefix("node:") {
            return port
                .parse()
                .map(MetricsAddr::Node)
                .map_err(|_| format!("{text:?}: node:PORT needs a port number such as node:9105"));
        }
        text.parse().map(MetricsAddr::Fixed).map_err(|_| {
            format!("{text:?} is not node:PORT or IP:PORT (such as node:9105 or 0.0.0.0:9105)")
        })
    }
}

impl std::fmt::Display for MetricsAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetricsAddr::Node(port) => write!(f, "node:{port}"),
            MetricsAddr::Fixed(addr) => write!(f, "{addr}"),
        }
    }
}

/// The agent's settings after validation; shared read-only by every part of the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub node_name: String,
    pub kubeconfig: Option<PathBuf>,
    pub state_dir: PathBuf,
    pub metrics_addr: MetricsAddr,
    /// The node's address when the downward API gave it.
    pub host_ip: Option<IpAddr>,
    pub per_peer_metrics: bool,
    pub sysctl_dir: PathBuf,
    pub userspace: Userspace,
    pub resync_interval: Duration,
    pub debounce: Duration,
}

impl Config {
    /// The metrics server's address when it is known without the API server.
    pub fn known_metrics_addr(&self) -> Option<SocketAddr> {
        match self.metrics_addr {
            MetricsAddr::Fixed(addr) => Some(addr),
            MetricsAddr::Node(port) => self.host_ip.map(|ip| SocketAddr::new(ip, port)),
        }
    }
}

/// The userspace WireGuard implementation this node may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Userspace {
    /// Disabled with `--userspace-implementation none`.
    None,
    /// The program, resolved to a path when it was found on `PATH`.
    Program(PathBuf),
    /// Asked for but not found: the node behaves as if it had none.
    Missing(String),
}

impl Userspace {
    /// The program to start, when there is one.
    pub fn program(&self) -> Option<&Path> {
        match self {
            Userspace::Program(path) => Some(path),
            Userspace::None | Userspace::Missing(_) => None,
        }
    }
}

/// Why the arguments were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgsError {
    #[error("--node-name (or NODE_NAME) is empty; set it to this node's name, e.g. from the downward API spec.nodeName")]
    EmptyNodeName,
    #[error("--resync-interval must be at least 1s, got {0:?}")]
    ResyncTooShort(Duration),
    #[error("--debounce ({debounce:?}) must be shorter than --resync-interval ({resync:?})")]
    DebounceTooLong {
        debounce: Duration,
        resync: Duration,
    },
}

impl Args {
    /// Validates the arguments and resolves the userspace program on `path_var` (`$PATH`).
    pub fn into_config(self, path_var: Option<&std::ffi::OsStr>) -> Result<Config, ArgsError> {
        let node_name = self.node_name.trim().to_owned();
        if node_name.is_empty() {
            return Err(ArgsError::EmptyNodeName);
        }
        if self.resync_interval < Duration::from_secs(1) {
            return Err(ArgsError::ResyncTooShort(self.resync_interval));
        }
        if self.debounce >= self.resync_interval {
            return Err(ArgsError::DebounceTooLong {
                debounce: self.debounce,
                resync: self.resync_interval,
            });
        }
        Ok(Config {
            node_name,
            kubeconfig: self.kubeconfig.filter(|p| !p.as_os_str().is_empty()),
            state_dir: self.state_dir,
            metrics_addr: self.metrics_addr,
            host_ip: self.host_ip,
            per_peer_metrics: self.per_peer_metrics,
            sysctl_dir: self.sysctl_dir,
            userspace: resolve_userspace(&self.userspace_implementation, path_var),
            resync_interval: self.resync_interval,
            debounce: self.debounce,
        })
    }
}

/// `none` → [`Userspace::None`]; a path → itself when it exists; a bare name → searched on PATH.
pub fn resolve_userspace(text: &str, path_var: Option<&std::ffi::OsStr>) -> Userspace {
    let text = text.trim();
    if text.is_empty() || text.eq_ignore_ascii_case("none") {
        return Userspace::None;
    }
    let candidate = Path::new(text);
    if candidate.components().count() > 1 {
        return if candidate.is_file() {
            Userspace::Program(candidate.to_path_buf())
        } else {
            Userspace::Missing(text.to_owned())
        };
    }
    let found = path_var
        .into_iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(text))
        .find(|path| path.is_file());
    match found {
        Some(path) => Userspace::Program(path),
        None => Userspace::Missing(text.to_owned()),
    }
}

/// Parses `250ms`, `30s`, `5m`, `1h` (a bare number means seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 200ms, 60s or 5m"))?;
    let duration = match unit {
        "ms" => Duration::from_millis(value),
        "" | "s" => Duration::from_secs(value),
        "m" => Duration::from_secs(value * 60),
        "h" => Duration::from_secs(value * 3600),
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?}; use ms, s, m or h"
            ))
        }
    };
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Result<Config, String> {
        let mut argv = vec!["kube-encrypt-agent", "--node-name", "node-a"];
        argv.extend_from_slice(extra);
        let args = Args::try_parse_from(argv).map_err(|e| e.to_string())?;
        args.into_config(None).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_follow_the_spec() {
        let config = parse(&["--userspace-implementation", "none"]).unwrap();
        assert_eq!(config.state_dir, PathBuf::from("/var/lib/kube-encrypt"));
        assert_eq!(config.metrics_addr, MetricsAddr::Node(9105));
        assert!(!config.per_peer_metrics, "per-peer series are opt-in");
        assert_eq!(config.sysctl_dir, PathBuf::from("/proc/sys"));
        assert_eq!(config.resync_interval, Duration::from_secs(60));
        assert_eq!(config.debounce, Duration::from_millis(50));
        assert_eq!(config.userspace, Userspace::None);
    }

    #[test]
    fn refuses_bad_values_with_the_reason() {
        let cases: &[(&[&str], &str)] = &[
            (&["--resync-interval", "500ms"], "at least 1s"),
            (&["--debounce", "2m"], "shorter than --resync-interval"),
            (&["--resync-interval", "ten"], "not a duration"),
            (&["--debounce", "5d"], "unknown unit"),
            (&["--log-format", "xml"], "invalid value"),
            (&["--metrics-addr", "nowhere"], "invalid value"),
        ];
        for (extra, reason) in cases {
            let err = parse(extra).unwrap_err();
            assert!(err.contains(reason), "{extra:?}: {err}");
        }
    }

    #[test]
    fn the_metrics_address_is_the_nodes_unless_given() {
        let cases: [(&[&str], Option<&str>); 4] = [
            (&[], None),
            (&["--host-ip", "192.0.2.11"], Some("192.0.2.11:9105")),
            (
                &["--host-ip", "2001:db8::11", "--metrics-addr", "node:9200"],
                Some("[2001:db8::11]:9200"),
            ),
            (
                &["--host-ip", "192.0.2.11", "--metrics-addr", "0.0.0.0:9105"],
                Some("0.0.0.0:9105"),
            ),
        ];
        for (extra, want) in cases {
            let mut argv = vec!["--userspace-implementation", "none"];
            argv.extend_from_slice(extra);
            let config = parse(&argv).unwrap();
            let want = want.map(|a| a.parse().unwrap());
            assert_eq!(config.known_metrics_addr(), want, "{extra:?}");
        }
        for bad in ["node:", "node:http", "localhost:9105"] {
            let err = parse(&["--metrics-addr", bad]).unwrap_err();
            assert!(err.contains("node:9105"), "{bad}: {err}");
        }
        assert_eq!(MetricsAddr::Node(9105).to_string(), "node:9105");
    }

    #[test]
    fn empty_node_name_says_what_to_set() {
        let args = Args::try_parse_from(["x", "--node-name", " "]).unwrap();
        assert_eq!(args.into_config(None), Err(ArgsError::EmptyNodeName));
    }

    #[test]
    fn durations_parse_in_every_unit() {
        let cases = [
            ("200ms", Duration::from_millis(200)),
            ("45", Duration::from_secs(45)),
            ("60s", Duration::from_secs(60)),
            ("5m", Duration::from_secs(300)),
            ("1h", Duration::from_secs(3600)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn userspace_program_is_found_on_path_or_reported_missing() {
        let dir = std::env::temp_dir().join(format!("ke-args-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("fake-wg"), "").unwrap();
        let path_var = std::env::join_paths([&dir]).unwrap();
        let cases = [
            ("none", Userspace::None),
            ("fake-wg", Userspace::Program(dir.join("fake-wg"))),
            ("absent-wg", Userspace::Missing("absent-wg".into())),
            (
                "/nonexistent/wg",
                Userspace::Missing("/nonexistent/wg".into()),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(resolve_userspace(text, Some(&path_var)), want, "{text}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
