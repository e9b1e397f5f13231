//! `soak`: the lab under churn and faults for a while, then memory growth, logged errors and
//! the flow matrix (`make soak`; see `kube_encrypt_tests::soak`). Needs root.
//!
//! Exit codes: 0 the run passed (a missed growth target is reported as MISSED, not a
//! failure), 1 a flow was not as expected, the cluster did not converge, an action failed,
//! or the harness itself failed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use kube_encrypt_tests::soak::report::{self, SoakReport};
use kube_encrypt_tests::soak::{run::run, Options};

/// The lab under node churn, config and pool changes, agent and API-server restarts.
#[derive(Parser)]
#[command(name = "soak")]
struct Args {
    /// Minutes of churn (fractions allowed: 0.5 is 30 s).
    #[arg(long, env = "SOAK_MINUTES", default_value_t = 30.0)]
    minutes: f64,
    /// Where soak.md, soak.json, soak-rss.svg and soak-logs/ go.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// The kube-encrypt-lab binary (default: next to this one).
    #[arg(long, env = "KE_LAB_BIN")]
    lab_bin: Option<PathBuf>,
    /// Seconds between /proc samples.
    #[arg(long, default_value_t = 2.0)]
    sample_seconds: f64,
    /// Seed of the node churn (default: from the clock; the report records it).
    #[arg(long, env = "SOAK_SEED")]
    seed: Option<u64>,
}

fn options(args: Args) -> anyhow::Result<Options> {
    anyhow::ensure!(
        args.minutes > 0.0 && args.minutes <= 24.0 * 60.0,
        "--minutes / SOAK_MINUTES={}: give a length between a fraction of a minute and 1440",
        args.minutes
    );
    anyhow::ensure!(
        (0.2..=60.0).contains(&args.sample_seconds),
        "--sample-seconds {}: give 0.2 to 60",
        args.sample_seconds
    );
    let lab_bin = match args.lab_bin {
        Some(path) => path,
        None => std::env::current_exe()
            .context("locate this binary")?
            .with_file_name("kube-encrypt-lab"),
    };
    anyhow::ensure!(
        lab_bin.is_file(),
        "{} is missing: build the lab first (`cargo build -p kube-encrypt-tests -p kube-encrypt-agent -p kube-encrypt-webhook`)",
        lab_bin.display()
    );
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs())
    });
    Ok(Options {
        length: Duration::from_secs_f64(args.minutes * 60.0),
        out: args.out,
        lab_bin,
        sample_every: Duration::from_secs_f64(args.sample_seconds),
        seed,
    })
}

fn publish(report: &SoakReport, out: &std::path::Path) -> anyhow::Result<()> {
    let written = report.write(out)?;
    println!("\n{}", report::summary(report));
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    let result = options(Args::parse()).and_then(|options| {
        let report = run(&options)?;
        publish(&report, &options.out)?;
        Ok(report.passed())
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("soak: {e:#}");
            ExitCode::FAILURE
        }
    }
}
