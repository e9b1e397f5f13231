//! What the kubelets and the workload controllers of a real cluster would write about
//! kube-encrypt's own pods: the lab runs the agents and the webhook as its own processes, so it
//! marks their Pods Running and Ready once they answer `/readyz`, and reports the DaemonSet
//! and the Deployment rolled out (one webhook replica: the lab runs one). `kubectl encrypt
//! check` and `kubectl encrypt install` read exactly these.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use serde_json::json;

use super::cluster::{api_err, ClusterError, INSTALL_NAMESPACE};
use super::identities::{agent_pod_name, AGENT_DAEMONSET};
use super::sys;
use super::topology::{NodePlan, Topology};
use super::webhook;

/// The agents' metrics port (their `/readyz`).
const AGENT_PORT: u16 = 9105;
const READY_WAIT: Duration = Duration::from_secs(30);

/// Waits (bounded) for the running agents to answer `/readyz`, then writes the agent Pods'
/// and the DaemonSet's status; and the webhook's Pod and Deployment when it runs.
pub async fn report(
    client: &Client,
    topo: &Topology,
    agents: bool,
    webhook_runs: bool,
) -> Result<(), ClusterError> {
    let ready = if agents {
        ready_agents(topo).await
    } else {
        Vec::new()
    };
    for node in topo.nodes.iter().filter(|n| ready.contains(&n.index)) {
        mark_running(client, &agent_pod_name(&node.name), &node.v4.to_string()).await?;
    }
    report_daemonset(client, topo.nodes.len(), ready.len()).await?;
    if webhook_runs {
        let ip = super::topology::webhook_addr().ip().to_string();
        mark_running(client, webhook::POD, &ip).await?;
        report_deployment(client).await?;
    }
    Ok(())
}

/// Indexes of the nodes whose agent answers `/readyz` within [`READY_WAIT`].
async fn ready_agents(topo: &Topology) -> Vec<u8> {
    let deadline = Instant::now() + READY_WAIT;
    let mut ready = Vec::new();
    for node in &topo.nodes {
        while !agent_ready(node) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if agent_ready(node) {
            ready.push(node.index);
        }
    }
    ready
}

fn agent_ready(node: &NodePlan) -> bool {
    let url = format!("http://{}:{AGENT_PORT}/readyz", node.v4);
    let mut cmd = sys::in_netns(
        &node.netns,
        &[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "1",
            &url,
        ],
    );
    sys::run(&mut cmd)
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "200")
        .unwrap_or(false)
}

async fn mark_running(client: &Client, pod: &str, ip: &str) -> Result<(), ClusterError> {
    let now = super::cluster::now_rfc3339();
    let status = json!({"status": {
        "phase": "Running",
        "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": ip,
        "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
        ],
    }});
    Api::<Pod>::namespaced(client.clone(), INSTALL_NAMESPACE)
        .patch_status(pod, &PatchParams::default(), &Patch::Merge(status))
        .await
        .map_err(api_err(format!("report pod {pod} running")))?;
    Ok(())
}

async fn report_daemonset(client: &Client, nodes: usize, ready: usize) -> Result<(), ClusterError> {
    let api: Api<DaemonSet> = Api::namespaced(client.clone(), INSTALL_NAMESPACE);
    let generation = api
        .get(AGENT_DAEMONSET)
        .await
        .map_err(api_err("read the agent DaemonSet"))?
        .metadata
        .generation;
    let status = json!({"status": {
        "observedGeneration": generation,
        "desiredNumberScheduled": nodes, "currentNumberScheduled": nodes,
        "updatedNumberScheduled": nodes, "numberMisscheduled": 0,
        "numberReady": ready, "numberAvailable": ready,
    }});
    api.patch_status(
        AGENT_DAEMONSET,
        &PatchParams::default(),
        &Patch::Merge(status),
    )
    .await
    .map_err(api_err("report the agent DaemonSet"))?;
    Ok(())
}

async fn report_deployment(client: &Client) -> Result<(), ClusterError> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), INSTALL_NAMESPACE);
    let one = json!({"spec": {"replicas": 1}});
    let scaled = api
        .patch(webhook::NAME, &PatchParams::default(), &Patch::Merge(one))
        .await
        .map_err(api_err(
            "scale the webhook Deployment to the lab's one replica",
        ))?;
    let status = json!({"status": {
        "observedGeneration": scaled.metadata.generation,
        "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1,
        "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}],
    }});
    api.patch_status(
        webhook::NAME,
        &PatchParams::default(),
        &Patch::Merge(status),
    )
    .await
    .map_err(api_err("report the webhook Deployment"))?;
    Ok(())
}
