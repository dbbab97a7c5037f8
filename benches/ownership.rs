//! `own` / `undo` against GNU `chown -R` on the same generated tree, in one run.
//!
//! Run as root: `make bench` (or `cargo bench --locked --bench ownership`).
//! Environment:
//! * `FLOWERBED_BENCH_ENTRIES`: tree size (default 200000).
//! * `FLOWERBED_BENCH_LARGE=1`: also measure peak RSS on a 2,000,000-entry tree, to show it
//!   does not grow with the tree (takes a few minutes and ~2M inodes).
//! * `FLOWERBED_BENCH_ROUNDS`: timed rounds (default 15). Each round times `chown -R`, then
//!   `own`, `own` again and `undo` on the same tree, seconds apart. A ratio is the median of
//!   the rounds' own ratios to that round's `chown -R` (paired, so that a slow spell of a
//!   shared machine weighs on both sides of a round alike); each line also shows the lowest
//!   and highest single round. On a virtual machine, the time the host took from it during
//!   the timed steps (steal time) is printed too: rounds with much of it measure the host.
//! * `FLOWERBED_BENCH_DIR`: where to build the trees (default: the system temp folder).
//! * `FLOWERBED_BENCH_FLAT`: files in the single-folder case (default 200000; 0 skips it),
//!   timed in at most 5 rounds. One folder that large is where a per-entry re-read of the
//!   folder (quadratic) would show.
//!
//! Targets from the performance issue: `own` ≤ 0.65× `chown -R` (at 200,000 and at
//! 2,000,000 entries), `own` again ≤ 0.25×, `undo` ≤ 0.7×, peak RSS flat and < 16 MiB.
//! Figures are printed, never asserted: timing depends on the machine. Each timed step
//! starts after a `sync`, so none pays for the writeback of the step before it. Run it on
//! an otherwise idle machine.
//!
//! Each round of a nested tree also times the floor (see [`floor`]): the same changes made
//! with the system calls alone, on every core, once by name (`chown -R`'s calls) and once
//! through `O_PATH` descriptors (the rule `own` and `undo` keep). Read `own` against the
//! second: what is above it is `own`'s journal and walk.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
mod floor;
use common::steal_ms;

const FLOWERBED: &str = env!("CARGO_BIN_EXE_flowerbed");
const FILES_PER_DIR: usize = 100;

fn main() {
    // `cargo bench` passes `--bench`; anything else (like a filter) we ignore.
    if !nix::unistd::geteuid().is_root() {
        eprintln!("ownership bench: needs root (it chowns); skipped");
        return;
    }
    let entries = env_usize("FLOWERBED_BENCH_ENTRIES", 200_000);
    let rounds = env_usize("FLOWERBED_BENCH_ROUNDS", 15).max(1);
    let base = std::env::var_os("FLOWERBED_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let work = tempfile::Builder::new()
        .prefix("flowerbed-bench-")
        .tempdir_in(&base)
        .expect("bench folder");

    println!("flowerbed {} vs {}", FLOWERBED, chown_version());
    let small = measure(work.path(), entries, rounds, Shape::Nested);
    small.print();
    let flat = env_usize("FLOWERBED_BENCH_FLAT", 200_000);
    if flat > 0 {
        measure(work.path(), flat, rounds.min(5), Shape::Flat).print();
    }
    if std::env::var_os("FLOWERBED_BENCH_LARGE").is_some_and(|v| v == "1") {
        let large = measure(work.path(), entries * 10, 1, Shape::Nested);
        large.print();
        println!(
            "peak RSS: own {} KiB at {} entries, {} KiB at {} entries (target: < 16384 KiB, flat)",
            small.own_rss_kib, small.entries, large.own_rss_kib, large.entries
        );
    }
}

/// How the bench tree is laid out.
#[derive(Clone, Copy)]
enum Shape {
    /// Folders of [`FILES_PER_DIR`] files, two levels deep.
    Nested,
    /// Every file in one folder.
    Flat,
}

struct Figures {
    entries: usize,
    shape: Shape,
    chown: Vec<Duration>,
    own: Vec<Duration>,
    own_again: Vec<Duration>,
    undo: Vec<Duration>,
    /// The system calls alone (see [`floor`]), by name and through descriptors (nested
    /// trees only: the floor shares out folders, and a flat tree is one).
    floor_by_name: Vec<Duration>,
    floor_descriptor: Vec<Duration>,
    own_rss_kib: i64,
    undo_rss_kib: i64,
    /// Steal time (ms) during all rounds of: chown -R, own, own again, undo.
    steal_ms: [u64; 4],
}

impl Figures {
    fn print(&self) {
        let ratio = |label: &str, times: &[Duration], target: &str| {
            let ratios: Vec<f64> = times
                .iter()
                .zip(&self.chown)
                .map(|(time, base)| time.as_secs_f64() / base.as_secs_f64())
                .collect();
            let low = ratios.iter().copied().fold(f64::INFINITY, f64::min);
            let high = ratios.iter().copied().fold(0.0, f64::max);
            format!(
                "  {label:<25} {:>8.3} s  {:.2}x chown -R  ({target}rounds {low:.2}x..{high:.2}x)",
                median(times).as_secs_f64(),
                median_f64(ratios),
            )
        };
        let line = |label: &str, times: &[Duration], target: f64| {
            ratio(label, times, &format!("target <= {target:.2}x, "))
        };
        let shape = match self.shape {
            Shape::Nested => "tree",
            Shape::Flat => "one folder",
        };
        println!("{shape}: {} entries, {} rounds", self.entries, self.chown.len());
        println!(
            "  chown -R 49999:49999      {:>8.3} s",
            median(&self.chown).as_secs_f64()
        );
        println!(
            "{}  peak RSS {} KiB",
            line("own (journaled)", &self.own, 0.65),
            self.own_rss_kib
        );
        println!("{}", line("own again (already owned)", &self.own_again, 0.25));
        println!(
            "{}  peak RSS {} KiB",
            line("undo", &self.undo, 0.7),
            self.undo_rss_kib
        );
        if !self.floor_by_name.is_empty() {
            println!("  floor: the system calls alone, on every core, nothing else");
            println!("{}", ratio("  stat + chown by name", &self.floor_by_name, ""));
            println!(
                "{}",
                ratio(
                    "  open, stat, chown, close",
                    &self.floor_descriptor,
                    "own's rule, "
                )
            );
        }
        let [chown, own, again, undo] = self.steal_ms;
        println!(
            "  host steal time in all rounds: chown -R {chown} ms, own {own} ms, own again {again} ms, undo {undo} ms"
        );
    }
}

fn measure(work: &Path, entries: usize, rounds: usize, shape: Shape) -> Figures {
    let tree = work.join(format!("tree-{entries}"));
    let state = work.join(format!("state-{entries}"));
    eprintln!("building {entries} entries in {} ...", tree.display());
    match shape {
        Shape::Nested => build_tree(&tree, entries),
        Shape::Flat => build_flat(&tree, entries),
    }
    let mut figures = Figures {
        entries,
        shape,
        chown: Vec::new(),
        own: Vec::new(),
        own_again: Vec::new(),
        undo: Vec::new(),
        floor_by_name: Vec::new(),
        floor_descriptor: Vec::new(),
        own_rss_kib: 0,
        undo_rss_kib: 0,
        steal_ms: [0; 4],
    };
    for round in 0..rounds {
        eprintln!("round {} of {rounds}", round + 1);
        let timed = run(Command::new("chown").args(["-R", "49999:49999"]).arg(&tree));
        figures.chown.push(timed.wall);
        figures.steal_ms[0] += timed.steal_ms;
        run(Command::new("chown").args(["-R", "0:0"]).arg(&tree));
        let flowerbed = |args: &[&str]| {
            let mut command = Command::new(FLOWERBED);
            command.args(args).arg(&tree).env("FLOWERBED_STATE_DIR", &state);
            run(&mut command)
        };
        let timed = flowerbed(&["-q", "own"]);
        figures.own.push(timed.wall);
        figures.own_rss_kib = figures.own_rss_kib.max(timed.rss_kib);
        figures.steal_ms[1] += timed.steal_ms;
        let timed = flowerbed(&["-q", "own"]);
        figures.own_again.push(timed.wall);
        figures.steal_ms[2] += timed.steal_ms;
        let timed = flowerbed(&["-q", "undo"]);
        figures.undo.push(timed.wall);
        figures.undo_rss_kib = figures.undo_rss_kib.max(timed.rss_kib);
        figures.steal_ms[3] += timed.steal_ms;
        if matches!(shape, Shape::Nested) {
            // undo gave everything back to root: from there, each rule's floor.
            for (rule, times) in [
                (floor::Rule::ByName, &mut figures.floor_by_name),
                (floor::Rule::Descriptor, &mut figures.floor_descriptor),
            ] {
                nix::unistd::sync();
                times.push(floor::measure(&tree, rule, 49_999, 49_999));
                run(Command::new("chown").args(["-R", "0:0"]).arg(&tree));
            }
        }
    }
    std::fs::remove_dir_all(&tree).expect("remove bench tree");
    let _ = std::fs::remove_dir_all(&state);
    figures
}

/// One finished command: wall time, the child's peak RSS, and the host's steal time meanwhile.
struct Timed {
    wall: Duration,
    rss_kib: i64,
    steal_ms: u64,
}

/// Run a command to completion: wall time and the child's peak RSS (KiB, from wait4).
// The child is reaped by wait4 (to read its rusage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn run(command: &mut Command) -> Timed {
    // Every tool starts from a clean page cache state: otherwise the metadata the previous
    // step left dirty is written back during (and billed to) the next one, and a journal
    // sync in `own` would pay for the untimed `chown -R 0:0` before it.
    nix::unistd::sync();
    let steal_before = steal_ms();
    let started = Instant::now();
    let child = command
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let pid = i32::try_from(child.id()).expect("pid");
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
    let mut usage: nix::libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { nix::libc::wait4(pid, &raw mut status, 0, &raw mut usage) };
    let wall = started.elapsed();
    let steal_ms = steal_ms().saturating_sub(steal_before);
    assert_eq!(waited, pid, "wait4 failed");
    assert!(
        nix::libc::WIFEXITED(status) && nix::libc::WEXITSTATUS(status) == 0,
        "{command:?} failed with status {status}"
    );
    Timed {
        wall,
        rss_kib: usage.ru_maxrss,
        steal_ms,
    }
}

/// `entries` entries: directories of FILES_PER_DIR empty files, two levels deep.
fn build_tree(root: &Path, entries: usize) {
    std::fs::create_dir(root).expect("tree root");
    let mut made = 1;
    let mut dir_index = 0;
    while made < entries {
        let group = root.join(format!("g{:04}", dir_index / 100));
        if dir_index % 100 == 0 {
            std::fs::create_dir(&group).expect("group dir");
            made += 1;
        }
        let dir = group.join(format!("d{dir_index:05}"));
        std::fs::create_dir(&dir).expect("dir");
        made += 1;
        for file in 0..FILES_PER_DIR.min(entries.saturating_sub(made)) {
            std::fs::File::create(dir.join(format!("f{file:03}"))).expect("file");
            made += 1;
        }
        dir_index += 1;
    }
}

/// `entries` entries: one folder holding `entries - 1` empty files.
fn build_flat(root: &Path, entries: usize) {
    std::fs::create_dir(root).expect("tree root");
    for file in 1..entries {
        std::fs::File::create(root.join(format!("f{file:07}"))).expect("file");
    }
}

fn median(values: &[Duration]) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

fn median_f64(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn chown_version() -> String {
    Command::new("chown")
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.lines().next().map(str::to_string))
        .unwrap_or_else(|| "chown".into())
}
