//! `flows`: the flow matrix of SPEC §4.2 between the lab's pods, nodes and `ke-ext`, judged
//! against the live configuration.
//!
//! ```text
//!  emulator ─► live::read ─► ClusterView ─┐
//!  Topology ─► matrix::plan ─► flows ─────┼─► matrix::expect ─┐
//!                                          └─► probe (ping + tcpdump on the underlay) ─► report
//! ```

pub mod live;
pub mod matrix;
pub mod pcap;
pub mod probe;
pub mod report;

use matrix::{ClusterView, Expectation, Flow};
use probe::Observation;

use super::cluster;
use super::signals;
use super::state::Store;

/// One probed flow.
#[derive(Clone, Debug)]
pub struct FlowResult {
    pub flow: Flow,
    pub expected: Expectation,
    pub observed: Observation,
}

impl FlowResult {
    pub fn works(&self) -> bool {
        self.observed.works()
    }

    pub fn encrypted(&self) -> bool {
        self.observed.verdict.encrypted()
    }

    /// Observed as expected.
    pub fn as_expected(&self) -> bool {
        self.works() == self.expected.works
            && self
                .expected
                .encrypted
                .is_none_or(|e| e == self.encrypted())
    }
}

/// Reads the live view and probes every flow, printing each line as it is done.
pub fn run(
    store: &Store,
    rt: &tokio::runtime::Runtime,
    style: report::Style,
) -> anyhow::Result<Vec<FlowResult>> {
    let topo = store.state.topology();
    let kubeconfig = store.paths.kubeconfig();
    let view: ClusterView = rt.block_on(async {
        let client = cluster::client(&kubeconfig).await?;
        live::read(&client, &topo).await
    })?;
    super::say(report::header(&topo, &view, style).trim_end())?;
    let ports = [view.ports.v4, view.ports.v6];
    let mut results = Vec::new();
    for flow in matrix::plan(&topo) {
        signals::check()?;
        let expected = matrix::expect(&topo, &view, &flow);
        let observed = probe::probe(&topo, &flow, &ports)?;
        let result = FlowResult {
            flow,
            expected,
            observed,
        };
        super::say(report::line(&result, style))?;
        results.push(result);
    }
    super::say(report::summary(&results, style))?;
    Ok(results)
}
