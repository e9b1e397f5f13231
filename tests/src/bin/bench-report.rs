//! Aggregates the run files of `scripts/bench.sh` (`make bench`) into `report.md`,
//! `report.json` and the SVG plots, and prints the Markdown report.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Parser;
use kube_encrypt_tests::bench_report::aggregate::{aggregate, Report};
use kube_encrypt_tests::bench_report::schema::RunFile;
use kube_encrypt_tests::bench_report::{markdown, plot};

/// Reads every `<bench>-<run>.json` in `--runs` and writes the aggregated report to `--out`.
#[derive(Parser)]
#[command(name = "bench-report")]
struct Args {
    /// The directory the benches wrote their run files to (KUBE_ENCRYPT_BENCH_OUT).
    #[arg(long, default_value = "target/bench/runs")]
    runs: PathBuf,
    /// Where report.md, report.json and the SVG plots go.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// A bench or figure not measured in this run, and why (repeatable).
    #[arg(long = "not-measured")]
    not_measured: Vec<String>,
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn write_plots(report: &Report, out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let plots = [
        ("throughput.svg", plot::throughput_svg(&report.figures)),
        ("agent-scale.svg", plot::scale_svg(&report.figures)),
    ];
    let mut written = Vec::new();
    for (name, svg) in plots {
        let path = out.join(name);
        match svg {
            Some(svg) => {
                write(&path, &svg)?;
                written.push(path);
            }
            // A stale plot from an earlier run would contradict this report.
            None => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    Ok(written)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runs = RunFile::read_dir(&args.runs)?;
    if runs.is_empty() {
        bail!(
            "no run files in {}: run the benches with KUBE_ENCRYPT_BENCH_OUT={} (scripts/bench.sh does)",
            args.runs.display(),
            args.runs.display()
        );
    }
    let date = jiff::Timestamp::now()
        .round(jiff::Unit::Second)?
        .to_string();
    let mut report = aggregate(&runs, &date);
    report.not_measured = args.not_measured;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut text = markdown::render(&report);
    let plots = write_plots(&report, &args.out)?;
    for path in &plots {
        text.push_str(&format!("\nPlot: `{}`\n", path.display()));
    }
    write(&args.out.join("report.md"), &text)?;
    write(
        &args.out.join("report.json"),
        &serde_json::to_string_pretty(&report)?,
    )?;
    println!("{text}");
    println!(
        "written: {}, {}",
        args.out.join("report.md").display(),
        args.out.join("report.json").display()
    );
    Ok(())
}
