//! When the soak does what: every kind of disturbance at a bounded rate, planned up front from
//! the run's length so a short run still gets at least one of each. Pure: no I/O, no clock.

use std::time::Duration;

/// One disturbance of the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// Add or remove a fake Node (which one is decided when it runs).
    NodeChurn,
    /// The next step of the EncryptionConfig change cycle.
    ConfigChange,
    /// Add the extra IPPool, or remove it when present.
    PoolChange,
    /// SIGKILL one node's agent (round robin); the lab's supervisor restarts it.
    AgentKill,
    /// `kube-encrypt-lab apiserver stop`, a pause, `apiserver start`.
    ApiserverRestart,
}

impl Action {
    pub const ALL: [Action; 5] = [
        Action::NodeChurn,
        Action::ConfigChange,
        Action::PoolChange,
        Action::AgentKill,
        Action::ApiserverRestart,
    ];

    pub fn describe(self) -> &'static str {
        match self {
            Action::NodeChurn => "fake Node added or removed",
            Action::ConfigChange => "EncryptionConfig change",
            Action::PoolChange => "extra IPPool added or removed",
            Action::AgentKill => "agent killed (SIGKILL)",
            Action::ApiserverRestart => "API server stopped and started",
        }
    }

    /// How often it happens, when it first does (capped by a fraction of the run), and the
    /// fraction of the run after which it no longer starts. Agents are only killed in the
    /// first half, so the last generation of every agent lives long enough to judge growth.
    fn cadence(self) -> Cadence {
        let (period, first, first_fraction, until) = match self {
            Action::NodeChurn => (5, 2, 1.0, 1.0),
            Action::ConfigChange => (60, 60, 0.15, 0.9),
            Action::PoolChange => (90, 90, 0.25, 0.9),
            Action::AgentKill => (120, 120, 0.2, 0.5),
            Action::ApiserverRestart => (300, 300, 0.35, 0.85),
        };
        Cadence {
            period: Duration::from_secs(period),
            first: Duration::from_secs(first),
            first_fraction,
            until,
        }
    }
}

struct Cadence {
    period: Duration,
    first: Duration,
    first_fraction: f64,
    until: f64,
}

/// An action and when it is due, from the start of the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Planned {
    pub at: Duration,
    pub action: Action,
}

/// Every action of a run of `length`, in time order.
pub fn plan(length: Duration) -> Vec<Planned> {
    let mut planned: Vec<Planned> = Action::ALL
        .into_iter()
        .flat_map(|action| times(action.cadence(), length).map(move |at| Planned { at, action }))
        .collect();
    planned.sort_by_key(|p| (p.at, p.action));
    planned
}

fn times(cadence: Cadence, length: Duration) -> impl Iterator<Item = Duration> {
    let first = cadence.first.min(length.mul_f64(cadence.first_fraction));
    let last = length.mul_f64(cadence.until);
    (0u32..)
        .map(move |i| first + cadence.period * i)
        .take_while(move |at| *at < last)
}

/// How many of each action a plan holds.
pub fn counts(plan: &[Planned]) -> Vec<(Action, usize)> {
    Action::ALL
        .into_iter()
        .map(|a| (a, plan.iter().filter(|p| p.action == a).count()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_length_gets_each_action_at_a_bounded_rate() {
        // (minutes, node churn, config, pool, agent kills, API server restarts)
        let cases = [
            (1.0, 12, 1, 1, 1, 1),
            (2.0, 24, 2, 1, 1, 1),
            (10.0, 120, 8, 5, 2, 1),
            (30.0, 360, 26, 17, 7, 5),
        ];
        for (minutes, nodes, config, pool, kills, restarts) in cases {
            let plan = plan(Duration::from_secs_f64(minutes * 60.0));
            let want = vec![
                (Action::NodeChurn, nodes),
                (Action::ConfigChange, config),
                (Action::PoolChange, pool),
                (Action::AgentKill, kills),
                (Action::ApiserverRestart, restarts),
            ];
            assert_eq!(counts(&plan), want, "{minutes} min");
        }
    }

    #[test]
    fn the_plan_is_in_time_order_and_inside_the_run() {
        let length = Duration::from_secs(600);
        let plan = plan(length);
        assert!(plan.windows(2).all(|w| w[0].at <= w[1].at));
        assert!(plan.iter().all(|p| p.at < length));
        let kills = plan.iter().filter(|p| p.action == Action::AgentKill);
        assert!(kills.into_iter().all(|p| p.at < length / 2));
    }
}
