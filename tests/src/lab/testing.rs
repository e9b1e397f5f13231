//! For tests that run labs: one lab at a time on a machine (tests, CI and people share it),
//! commands run on the real `kube-encrypt-lab` binary, and a lab that is always taken down.
//!
//! ```no_run
//! use kube_encrypt_tests::lab::testing::LabSession;
//! let session = LabSession::acquire("target/debug/kube-encrypt-lab");
//! let lab = session.up(&["--nodes", "2", "--no-agents"]);
//! assert!(lab.session().run(&["flows"]).status.success());
//! // dropping `lab` runs `kube-encrypt-lab down`
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use super::state::{LabLock, Paths, DEFAULT_STATE_DIR};

/// Held by a test for the whole life of its lab (the lab's own lock is per command).
pub const TEST_LOCK: &str = "/run/kube-encrypt-lab.tests.lock";
const WAIT_FOR_LOCK: Duration = Duration::from_secs(15 * 60);
const WAIT_FOR_OTHER_LAB: Duration = Duration::from_secs(5 * 60);

/// The right to run a lab, until dropped.
#[derive(Debug)]
pub struct LabSession {
    bin: PathBuf,
    _lock: LabLock,
}

impl LabSession {
    /// Waits for other lab tests, then for a lab someone else has up to go away. Panics
    /// (never skips silently) when not root or when waiting takes too long.
    pub fn acquire(bin: impl Into<PathBuf>) -> Self {
        assert!(
            nix::unistd::Uid::effective().is_root(),
            "lab tests need root (network namespaces, mounts): run them as root, e.g. `sudo make test`"
        );
        let lock = LabLock::acquire_at(Path::new(TEST_LOCK), WAIT_FOR_LOCK)
            .unwrap_or_else(|e| panic!("cannot get the lab test lock {TEST_LOCK}: {e}"));
        wait_for_no_lab();
        Self {
            bin: bin.into(),
            _lock: lock,
        }
    }

    /// Runs `kube-encrypt-lab ARGS…` and returns its output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()))
    }

    /// A command for `kube-encrypt-lab ARGS…` (to add env or stdin).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args).env("NO_COLOR", "1");
        cmd
    }

    /// `up ARGS…`, which must succeed; the lab is taken down when the result is dropped.
    pub fn up(&self, args: &[&str]) -> RunningLab<'_> {
        let mut full = vec!["up"];
        full.extend_from_slice(args);
        let output = self.run(&full);
        let lab = RunningLab { session: self };
        assert!(
            output.status.success(),
            "`kube-encrypt-lab {}` failed:\n{}",
            full.join(" "),
            text(&output)
        );
        lab
    }
}

/// A lab that is up; `down` on drop (also when the test panics).
#[derive(Debug)]
pub struct RunningLab<'a> {
    session: &'a LabSession,
}

impl RunningLab<'_> {
    pub fn session(&self) -> &LabSession {
        self.session
    }

    pub fn paths(&self) -> Paths {
        Paths::new(DEFAULT_STATE_DIR)
    }

    /// The kubeconfig for clients on the host.
    pub fn kubeconfig(&self) -> PathBuf {
        self.paths().kubeconfig()
    }
}

impl Drop for RunningLab<'_> {
    fn drop(&mut self) {
        let output = self.session.run(&["down"]);
        if !output.status.success() {
            eprintln!("kube-encrypt-lab down failed:\n{}", text(&output));
        }
    }
}

/// stdout and stderr of a command, for assertion messages.
pub fn text(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn wait_for_no_lab() {
    let state = Paths::new(DEFAULT_STATE_DIR).state_file();
    let deadline = Instant::now() + WAIT_FOR_OTHER_LAB;
    let mut told = false;
    while state.exists() {
        if !told {
            eprintln!(
                "a lab is up ({}); waiting for it to go down",
                state.display()
            );
            told = true;
        }
        assert!(
            Instant::now() < deadline,
            "a lab has been up for {WAIT_FOR_OTHER_LAB:?} ({}): take it down with `kube-encrypt-lab down`",
            state.display()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}
