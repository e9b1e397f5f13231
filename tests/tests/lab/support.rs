//! Helpers: the lab binary, residue checks.

use std::process::Output;

use kube_encrypt_tests::lab::process::ProcessRecord;
use kube_encrypt_tests::lab::state::{Paths, Store, DEFAULT_STATE_DIR};
use kube_encrypt_tests::lab::supervisor::AgentRecord;
use kube_encrypt_tests::lab::testing::LabSession;
use kube_encrypt_tests::lab::topology::{LabSpec, Topology, MAX_NODES};

pub use kube_encrypt_tests::lab::testing::text;

pub fn session() -> LabSession {
    LabSession::acquire(env!("CARGO_BIN_EXE_kube-encrypt-lab"))
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

/// Every process the lab recorded (services and agents), read while it is up.
pub fn recorded_processes() -> Vec<ProcessRecord> {
    let paths = Paths::new(DEFAULT_STATE_DIR);
    let store = Store::load(&paths).unwrap().expect("a lab is up");
    let mut processes = store.state.processes.clone();
    for node in store.state.topology().nodes {
        processes.extend(AgentRecord::load(&paths, &node.name).map(|a| a.process));
    }
    processes
}

/// Every network namespace name a lab of the largest size could have.
fn lab_netns_names() -> Vec<String> {
    Topology::new(LabSpec::new(MAX_NODES, false, 1500, &[]).unwrap()).netns_names()
}

/// Fails when anything of a lab is left: namespaces, mounts, state, the given processes.
pub fn assert_no_residue(processes: &[ProcessRecord]) {
    let listed = String::from_utf8(
        std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let names = lab_netns_names();
    let left: Vec<&str> = listed
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| names.iter().any(|name| name == n))
        .collect();
    assert!(left.is_empty(), "lab namespaces left: {left:?}");
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let lab_mounts: Vec<&str> = mounts
        .lines()
        .filter(|l| l.contains(DEFAULT_STATE_DIR))
        .collect();
    assert!(lab_mounts.is_empty(), "lab mounts left: {lab_mounts:?}");
    assert!(
        !std::path::Path::new(DEFAULT_STATE_DIR).exists(),
        "{DEFAULT_STATE_DIR} left"
    );
    let alive: Vec<_> = processes.iter().filter(|p| p.is_alive()).collect();
    assert!(alive.is_empty(), "lab processes left: {alive:?}");
}

/// The report line of the `family` flow from `src` to `dst` (such as "IPv4", "pod-1-1", "pod-2-1").
pub fn flow_line<'a>(report: &'a str, family: &str, src: &str, dst: &str) -> &'a str {
    let route = format!("{src} → {dst} ");
    report
        .lines()
        .find(|l| l.contains(&format!(" {family} ")) && l.contains(&route))
        .unwrap_or_else(|| panic!("no {family} flow {src} → {dst} in:\n{report}"))
}

/// The agent binary `cargo build --workspace` put next to the lab binary.
pub fn agent_bin() -> String {
    let agent = std::path::Path::new(env!("CARGO_BIN_EXE_kube-encrypt-lab"))
        .with_file_name("kube-encrypt-agent");
    assert!(
        agent.is_file(),
        "{} is missing: build the workspace first (`cargo build --workspace`)",
        agent.display()
    );
    agent.to_string_lossy().into_owned()
}

/// The lab's kubectl (`$KUBECTL`, the control plane's build, or `kubectl` on `PATH`).
pub fn kubectl_bin() -> String {
    kube_encrypt_tests::lab::control_plane::kubectl()
        .expect("kubectl is not installed: run `make deps`")
        .to_string_lossy()
        .into_owned()
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A kube-rs client on the lab's host kubeconfig.
pub async fn client(kubeconfig: &std::path::Path) -> kube::Client {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(kubeconfig).unwrap(),
        &KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// IPPools with natOutgoing for both families, and an EncryptionConfig enabling IPv4 (and
/// IPv6 when `ipv6`).
pub async fn enable_encryption_for(client: &kube::Client, ipv6: bool) {
    let mut spec = kube_encrypt_api::crd::EncryptionConfigSpec::default();
    spec.ipv4.enabled = true;
    spec.ipv6.enabled = ipv6;
    enable_encryption_spec(client, spec).await
}

/// IPPools with natOutgoing for both families, and the EncryptionConfig `spec`.
pub async fn enable_encryption_spec(
    client: &kube::Client,
    spec: kube_encrypt_api::crd::EncryptionConfigSpec,
) {
    use kube::api::{Api, PostParams};
    use kube_encrypt_api::crd::{EncryptionConfig, IPPool, IPPoolSpec};
    let pools: Api<IPPool> = Api::all(client.clone());
    for (name, cidr) in [("v4", "198.18.0.0/16"), ("v6", "2001:db8:1::/48")] {
        let spec = IPPoolSpec {
            cidr: cidr.into(),
            nat_outgoing: true,
            disabled: false,
        };
        pools
            .create(&PostParams::default(), &IPPool::new(name, spec))
            .await
            .unwrap_or_else(|e| panic!("create IPPool {cidr}: {e}"));
    }
    Api::<EncryptionConfig>::all(client.clone())
        .create(
            &PostParams::default(),
            &EncryptionConfig::new("default", spec),
        )
        .await
        .unwrap_or_else(|e| panic!("create EncryptionConfig: {e}"));
}

/// Waits (at most a minute) until every one of `nodes` reports IPv4 Encrypted.
pub async fn wait_ipv4_encrypted(client: &kube::Client, nodes: &[&str]) {
    let encrypted: Vec<_> = nodes
        .iter()
        .map(|n| (*n, kube_encrypt_api::crd::EncryptionState::Encrypted))
        .collect();
    let family = kube_encrypt_api::net::Family::V4;
    wait_family_states(
        client,
        family,
        &encrypted,
        std::time::Duration::from_secs(60),
    )
    .await;
}

/// Waits until each node's NodeEncryption shows the wanted state for `family`.
pub async fn wait_family_states(
    client: &kube::Client,
    family: kube_encrypt_api::net::Family,
    want: &[(&str, kube_encrypt_api::crd::EncryptionState)],
    timeout: std::time::Duration,
) {
    use kube::api::{Api, ListParams};
    use kube_encrypt_api::crd::NodeEncryption;
    use kube_encrypt_api::net::Family;
    let api: Api<NodeEncryption> = Api::all(client.clone());
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let list = api
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        let status = |node: &str| {
            let status = list
                .iter()
                .find(|ne| ne.metadata.name.as_deref() == Some(node))?
                .status
                .as_ref()?;
            match family {
                Family::V4 => status.ipv4.clone(),
                Family::V6 => status.ipv6.clone(),
            }
        };
        if want
            .iter()
            .all(|(node, s)| status(node).is_some_and(|st| st.state == *s))
        {
            return;
        }
        let seen: Vec<_> = want
            .iter()
            .map(|(node, _)| {
                let st = status(node);
                (node, st.as_ref().map(|s| s.state), st.map(|s| s.message))
            })
            .collect();
        assert!(
            std::time::Instant::now() < deadline,
            "{family} NodeEncryption states not reached in {timeout:?}: want {want:?}, have {seen:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}

/// Polls `check` every 250 ms until it returns `Ok`, or panics after `timeout` with `what`
/// and the last error (which should carry the command output that shows why).
pub fn wait_until<T>(
    what: &str,
    timeout: std::time::Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match check() {
            Ok(value) => return value,
            Err(last) if std::time::Instant::now() >= deadline => {
                panic!("{what}: not reached within {timeout:?}; last seen:\n{last}")
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(250)),
        }
    }
}

/// `restarts` of each node's agent as the supervisor recorded them.
pub fn agent_restarts(nodes: &[&str]) -> Vec<(String, u32, u32)> {
    use kube_encrypt_tests::lab::state::{Paths, DEFAULT_STATE_DIR};
    let paths = Paths::new(DEFAULT_STATE_DIR);
    nodes
        .iter()
        .map(|node| {
            let record = AgentRecord::load(&paths, node)
                .unwrap_or_else(|| panic!("no agent record for {node}"));
            (node.to_string(), record.process.pid, record.restarts)
        })
        .collect()
}

/// The last `lines` lines of the log of `node`'s agent, for failure messages.
pub fn agent_log_tail(node: &str, lines: usize) -> String {
    use kube_encrypt_tests::lab::state::{Paths, DEFAULT_STATE_DIR};
    let path = Paths::new(DEFAULT_STATE_DIR).log(&format!("agent-{node}"));
    let log =
        std::fs::read_to_string(&path).unwrap_or_else(|e| format!("({}: {e})", path.display()));
    let all: Vec<&str> = log.lines().collect();
    let tail = all[all.len().saturating_sub(lines)..].join("\n");
    format!("--- last {lines} lines of {}\n{tail}", path.display())
}
