//! Every call into the host is bounded in time: a netlink request, an `nft` run or a userspace
//! WireGuard daemon that never answers must not hang the reconcile loop. A call that takes too
//! long fails with the operation's name; the next round tries again.
//!
//! The work itself is abandoned, not killed: a blocked WireGuard UAPI call keeps its blocking
//! thread and a hung `nft` keeps running, but the loop goes on, reports the error and stays
//! healthy enough to be seen failing.

use std::future::Future;
use std::time::Duration;

use super::DriverError;

/// One change (or one batch of peer changes) may take this long. Starting a userspace daemon
/// is the slowest change: it has 10 s to start and 3 s to answer.
pub const CHANGE_TIMEOUT: Duration = Duration::from_secs(20);
/// Reading one part of the dataplane (links, one family, the firewall table) or the host facts.
pub const OBSERVE_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs `call`, failing with `operation` when it has not finished after `limit`.
pub async fn bounded<T>(
    operation: impl Into<String>,
    limit: Duration,
    call: impl Future<Output = Result<T, DriverError>>,
) -> Result<T, DriverError> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result,
        Err(_) => Err(DriverError::new(
            operation,
            format!(
                "no answer within {limit:?} (netlink, nft or the userspace WireGuard daemon hung); retried next round"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_call_that_never_answers_fails_with_its_operation() {
        let hung = bounded(
            "add route 198.18.2.0/24 dev wg0 table 51820",
            Duration::from_secs(5),
            std::future::pending::<Result<(), DriverError>>(),
        );
        let err = hung.await.unwrap_err().to_string();
        assert!(
            err.starts_with("add route 198.18.2.0/24 dev wg0 table 51820: no answer within 5s"),
            "{err}"
        );
        let quick = bounded("list links", Duration::from_secs(5), async { Ok(7) });
        assert_eq!(quick.await.unwrap(), 7);
    }
}
