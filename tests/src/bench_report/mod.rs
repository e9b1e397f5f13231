//! Benchmark results: the file every bench writes per run (`schema`), the machine facts it
//! records (`machine`), and the aggregation of several runs into one report (`aggregate`),
//! rendered as Markdown (`markdown`) and SVG plots (`plot`) by the `bench-report` binary.
//!
//! A bench writes `<KUBE_ENCRYPT_BENCH_OUT>/<bench>-<run>.json` when that variable is set
//! (`KUBE_ENCRYPT_BENCH_RUN` numbers the run, 1 by default); `scripts/bench.sh` runs each bench
//! several times and then `bench-report` reads the directory.

pub mod aggregate;
pub mod machine;
pub mod markdown;
pub mod plot;
pub mod schema;

/// Where a bench writes its run file; unset: the bench only prints its table.
pub const OUT_ENV: &str = "KUBE_ENCRYPT_BENCH_OUT";
/// The run number in the file name.
pub const RUN_ENV: &str = "KUBE_ENCRYPT_BENCH_RUN";
