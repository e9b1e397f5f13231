//! Ctrl-C / SIGTERM during a lab command: noted, so a running `up` rolls back and `demo`
//! tears the lab down instead of leaving it half made.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The command was interrupted.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted;

/// Listens for SIGINT and SIGTERM on `rt` for the rest of the process.
pub fn install(rt: &tokio::runtime::Runtime) {
    rt.spawn(async {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        loop {
            tokio::select! {
                _ = int.recv() => {},
                _ = term.recv() => {},
            }
            eprintln!("kube-encrypt-lab: interrupted, cleaning up…");
            INTERRUPTED.store(true, Ordering::SeqCst);
        }
    });
}

/// Fails once the command was interrupted.
pub fn check() -> Result<(), Interrupted> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        Err(Interrupted)
    } else {
        Ok(())
    }
}
