//! How fast the artifact check reads bytes, apart from the file system and the network: the
//! first MIB MiB of an artifact, already in memory, fed to the streaming validator in the 1 MiB
//! chunks an upload uses, best of REPS rounds. `plain` runs the bare validator; `visitor` also
//! picks out what an upload needs (test outcomes from run_results.json, node files from the
//! manifest). scripts/bench-upload measures the whole command; this isolates the validator when
//! changing it (docs/performance.md).
//!
//! usage: cargo run --release --example scan_speed -- FILE [manifest|run_results] [plain|visitor] [MIB (256)] [REPS (5)]

use dbt_secoda::artifacts::outcomes::{ManifestVisitor, RunResultsVisitor, Wanted};
use dbt_secoda::artifacts::scan::{NoCapture, Scanner, Visitor};
use std::io::Read;

fn best_rate<V: Visitor>(data: &[u8], reps: usize, visitor: impl Fn() -> V) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..reps {
        let start = std::time::Instant::now();
        let mut scanner = Scanner::new(visitor());
        for chunk in data.chunks(dbt_secoda::artifacts::CHUNK) {
            if let Err(e) = scanner.feed(chunk) {
                eprintln!("scan_speed: not JSON: {e}");
                std::process::exit(3);
            }
        }
        std::hint::black_box(&scanner);
        best = best.min(start.elapsed().as_secs_f64());
    }
    data.len() as f64 / best / 1e9
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.into());
    let Some(path) = args.first() else {
        eprintln!("usage: scan_speed FILE [manifest|run_results] [plain|visitor] [MIB] [REPS]");
        std::process::exit(2);
    };
    let (kind, mode) = (arg(1, "manifest"), arg(2, "plain"));
    let mib: u64 = arg(3, "256").parse().expect("MIB is a number");
    let reps: usize = arg(4, "5").parse().expect("REPS is a number");
    let mut data = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(mib << 20).read_to_end(&mut data))
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let rate = match (kind.as_str(), mode.as_str()) {
        (_, "plain") => best_rate(&data, reps, || NoCapture),
        ("run_results", "visitor") => best_rate(&data, reps, RunResultsVisitor::new),
        ("manifest", "visitor") => {
            best_rate(&data, reps, || ManifestVisitor::new(Wanted::default()))
        }
        _ => {
            eprintln!("scan_speed: kind is manifest or run_results, mode plain or visitor");
            std::process::exit(2);
        }
    };
    println!(
        "{kind} {mode}: {:.2} GB/s over {} MiB",
        rate,
        data.len() >> 20
    );
}
