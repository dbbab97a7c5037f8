//! `make bench`: wall time of `flowerbed render compose` (target: under 5 ms per run).
//!
//! Two figures: the whole command (process start-up, reading the folder and its saved
//! settings, checking mount sources, rendering, writing to a pipe), and the model build plus
//! Compose serialization alone, in process. Medians over many runs.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use flowerbed::deploy::{self, Isolation, Settings};
use flowerbed::render::compose;

fn median(runs: usize, mut work: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            work();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn render_command(dir: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_flowerbed"))
        .args(["render", "compose"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!out.stdout.is_empty());
}

fn main() {
    // `cargo bench` passes --bench; a filter argument may follow. Nothing to parse.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("deploy");
    let status = Command::new(env!("CARGO_BIN_EXE_flowerbed"))
        .args([
            "quickstart",
            "-q",
            "--isolation",
            "process",
            "--state",
            "--supernodes",
            "4",
        ])
        .arg(&dir)
        .output()
        .unwrap()
        .status;
    assert!(status.success());
    render_command(&dir);
    let command = median(101, || render_command(&dir));

    let mut settings = Settings::defaults(dir.clone());
    settings.superlink_isolation = Isolation::Process;
    settings.supernode_isolation = Isolation::Process;
    settings.supernodes = 4;
    let in_process = median(1001, || {
        let deployment = deploy::build(&settings).unwrap();
        std::hint::black_box(compose::render(&deployment).unwrap());
    });

    println!("render compose (median wall time; process isolation, 4 supernodes, 10 services)");
    println!(
        "  whole command `flowerbed render compose DIR`: {command:>10.2?}   {} (target < 5 ms)",
        if command < Duration::from_millis(5) {
            "ok"
        } else {
            "OVER TARGET"
        }
    );
    println!("  model + Compose serialization in process:    {in_process:>10.2?}");
}
