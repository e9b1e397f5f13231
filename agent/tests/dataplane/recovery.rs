//! The userspace WireGuard daemon dies under traffic: the agent's real loop (link events,
//! planner, reconciler, host driver) must notice within its debounce, start a new daemon
//! and restore the tunnel within 2 s — and not one pod packet may leave in plaintext
//! meanwhile, although the main tables route the pod networks over the underlay (as a
//! host-gw CNI does) and would happily carry them.

use std::time::{Duration, SystemTime};

use wireguard_control::Key;

use super::agent::{install_key, two_node_cluster, AgentRun, ClusterNode};
use super::capture::Capture;
use super::lab::{stdout, try_run, Lab, Side};
use super::mesh::Mesh;
use super::node::{spawn_step_in, Op, RunningStep};

/// The target: from SIGKILL to the first echo reply through the new tunnel.
const RECOVERY_TARGET: Duration = Duration::from_secs(2);

#[test]
fn a_killed_userspace_daemon_is_replaced_within_2s_without_a_plaintext_packet() {
    let lab = Lab::new("kill");
    // The plaintext path a leak would take: pod networks routed over the underlay.
    lab.a
        .ip(&["route", "add", "198.18.2.0/24", "via", "192.0.2.2"]);
    lab.b
        .ip(&["route", "add", "198.18.1.0/24", "via", "192.0.2.1"]);
    let keys = [Key::generate_private(), Key::generate_private()];
    install_key(&lab.a, &keys[0]);
    install_key(&lab.b, &keys[1]);
    let (config, pools, nodes) = two_node_cluster([
        ClusterNode {
            name: "node-a",
            side: &lab.a,
            key: &keys[0],
        },
        ClusterNode {
            name: "node-b",
            side: &lab.b,
            key: &keys[1],
        },
    ]);
    let start = |side: &Side, name: &str, key: &Key| {
        let run = AgentRun {
            node_name: name.into(),
            config: config.clone(),
            pools: pools.clone(),
            nodes: nodes.clone(),
            // Only a link event can bring the tunnel back within the target.
            resync: Duration::from_secs(60),
            stop_file: side.dir.join("stop-agent"),
            limit: Duration::from_secs(90),
        };
        let mesh = Mesh::v4(kube_encrypt_api::crd::BackendKind::Userspace);
        let mut step = mesh.step(side, key, vec![Op::Agent(Box::new(run))]);
        step.scope = vec![];
        spawn_step_in(side, "agent", step)
    };
    let agents = [
        start(&lab.a, "node-a", &keys[0]),
        start(&lab.b, "node-b", &keys[1]),
    ];
    wait_for_tunnel(&lab, &agents);
    let daemons = lab.a.wireguard_go_pids();
    assert_eq!(daemons.len(), 1, "one daemon on node-a: {daemons:?}");

    let capture = Capture::start_with_limit(&lab.a, "eth0", "5000");
    let pinging = Pinging::start(&lab.a, "198.18.1.1", "198.18.2.1");
    std::thread::sleep(Duration::from_millis(1500));
    let killed_at = unix_now();
    try_run("kill", &["-KILL", &daemons[0].to_string()]);
    let replies = pinging.finish();
    let lines = capture.finish();

    let before = replies.iter().filter(|r| **r < killed_at).count();
    let first_after = replies.iter().copied().find(|r| *r > killed_at);
    assert!(
        before >= 5,
        "the tunnel carried pings before the kill: {replies:?}"
    );
    let recovered = first_after.map(|at| Duration::from_secs_f64(at - killed_at));
    println!("daemon killed; first echo reply through the new tunnel after {recovered:?}");
    assert!(
        recovered.is_some_and(|after| after <= RECOVERY_TARGET),
        "encryption restored after {recovered:?} (target {RECOVERY_TARGET:?})"
    );
    let daemons_now = lab.a.wireguard_go_pids();
    assert!(
        daemons_now.len() == 1 && daemons_now != daemons,
        "a new daemon replaced the killed one: {daemons:?} -> {daemons_now:?}"
    );
    let pod_packets: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains(" 198.18.1.1 ") || l.contains(" 198.18.2.1"))
        .collect();
    println!(
        "{} packets on node-a's underlay, {} with a pod address",
        lines.len(),
        pod_packets.len()
    );
    assert!(
        pod_packets.is_empty(),
        "pod traffic in plaintext on the underlay: {pod_packets:#?}"
    );

    let messages: Vec<Vec<String>> = agents
        .into_iter()
        .zip([&lab.a, &lab.b])
        .map(|(agent, side)| {
            std::fs::write(side.dir.join("stop-agent"), "").unwrap();
            agent.wait(Duration::from_secs(30)).agent_messages
        })
        .collect();
    let last = messages[0].last().cloned().unwrap_or_default();
    assert!(
        last.contains("vanished and was recreated once"),
        "node-a's status names the incident: {:#?}",
        messages[0]
    );
}

/// Waits (at most 30 s) until pod a reaches pod b through the agents' tunnel.
fn wait_for_tunnel(lab: &Lab, agents: &[RunningStep; 2]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ping = lab.a.exec(&[
            "ping",
            "-n",
            "-c",
            "1",
            "-W",
            "1",
            "-I",
            "198.18.1.1",
            "198.18.2.1",
        ]);
        let routed = stdout(&lab.a.exec(&["ip", "route", "show", "table", "51820"]));
        if ping.status.success() && routed.contains("dev wg-encrypt") {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the agents did not build the tunnel within 30 s:\n{routed}\n--- node-a\n{}\n--- node-b\n{}",
            agents[0].output(),
            agents[1].output()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A bounded ping stream (every 20 ms for 6 s) with reply timestamps.
struct Pinging {
    child: std::process::Child,
}

impl Pinging {
    fn start(side: &Side, source: &str, target: &str) -> Self {
        let child = std::process::Command::new("ip")
            .args(["netns", "exec", &side.netns])
            .args([
                "ping", "-D", "-n", "-i", "0.02", "-c", "300", "-W", "1", "-w", "12",
            ])
            .args(["-I", source, target])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start ping");
        Self { child }
    }

    /// The Unix times of the echo replies.
    fn finish(self) -> Vec<f64> {
        let output = self.child.wait_with_output().expect("ping finishes");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|l| l.contains("bytes from"))
            .filter_map(|l| l.strip_prefix('[')?.split(']').next()?.parse().ok())
            .collect()
    }
}
