//! `own` / `undo` against GNU `chown -R` on the same generated tree, in one run.
//!
//! Run as root: `make bench` (or `cargo bench --locked --bench ownership`).
//! Environment:
//! * `FLOWERBED_BENCH_ENTRIES`: tree size (default 200000).
//! * `FLOWERBED_BENCH_LARGE=1`: also measure peak RSS on a 2,000,000-entry tree, to show it
//!   does not grow with the tree (takes a few minutes and ~2M inodes).
//! * `FLOWERBED_BENCH_ROUNDS`: timed rounds per tool, the median is reported (default 7: on a
//!   shared machine single rounds of the same build vary by several percent). Each line also
//!   shows the lowest and highest ratio of a single round to that round's `chown -R`.
//! * `FLOWERBED_BENCH_DIR`: where to build the trees (default: the system temp folder).
//!
//! Targets from the ownership issue: `own` ≤ 0.8× `chown -R`, `own` again ≤ 0.3×, `undo`
//! ≤ 1.0×, peak RSS < 64 MiB. Figures are printed, never asserted: timing depends on the
//! machine. Each timed step starts after a `sync`, so none pays for the writeback of the
//! step before it. Run it on an otherwise idle machine.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const FLOWERBED: &str = env!("CARGO_BIN_EXE_flowerbed");
const FILES_PER_DIR: usize = 100;

fn main() {
    // `cargo bench` passes `--bench`; anything else (like a filter) we ignore.
    if !nix::unistd::geteuid().is_root() {
        eprintln!("ownership bench: needs root (it chowns); skipped");
        return;
    }
    let entries = env_usize("FLOWERBED_BENCH_ENTRIES", 200_000);
    let rounds = env_usize("FLOWERBED_BENCH_ROUNDS", 7).max(1);
    let base = std::env::var_os("FLOWERBED_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let work = tempfile::Builder::new()
        .prefix("flowerbed-bench-")
        .tempdir_in(&base)
        .expect("bench folder");

    println!("flowerbed {} vs {}", FLOWERBED, chown_version());
    let small = measure(work.path(), entries, rounds);
    small.print();
    if std::env::var_os("FLOWERBED_BENCH_LARGE").is_some_and(|v| v == "1") {
        let large = measure(work.path(), entries * 10, 1);
        large.print();
        println!(
            "peak RSS: own {} KiB at {} entries, {} KiB at {} entries (target: < 65536 KiB, flat)",
            small.own_rss_kib, small.entries, large.own_rss_kib, large.entries
        );
    }
}

struct Figures {
    entries: usize,
    chown: Duration,
    own: Duration,
    own_again: Duration,
    undo: Duration,
    own_rss_kib: i64,
    undo_rss_kib: i64,
    /// Lowest and highest ratio to the same round's `chown -R`: own, own again, undo.
    spread: [(f64, f64); 3],
}

impl Figures {
    fn print(&self) {
        let ratio = |d: Duration| d.as_secs_f64() / self.chown.as_secs_f64();
        let rounds = |(low, high): (f64, f64)| format!("rounds {low:.2}x..{high:.2}x");
        println!("tree: {} entries", self.entries);
        println!("  chown -R 49999:49999      {:>8.3} s", self.chown.as_secs_f64());
        println!(
            "  own (journaled)           {:>8.3} s  {:.2}x chown -R  (target <= 0.80x, {})  peak RSS {} KiB",
            self.own.as_secs_f64(),
            ratio(self.own),
            rounds(self.spread[0]),
            self.own_rss_kib
        );
        println!(
            "  own again (already owned) {:>8.3} s  {:.2}x chown -R  (target <= 0.30x, {})",
            self.own_again.as_secs_f64(),
            ratio(self.own_again),
            rounds(self.spread[1])
        );
        println!(
            "  undo                      {:>8.3} s  {:.2}x chown -R  (target <= 1.00x, {})  peak RSS {} KiB",
            self.undo.as_secs_f64(),
            ratio(self.undo),
            rounds(self.spread[2]),
            self.undo_rss_kib
        );
    }
}

fn measure(work: &Path, entries: usize, rounds: usize) -> Figures {
    let tree = work.join(format!("tree-{entries}"));
    let state = work.join(format!("state-{entries}"));
    eprintln!("building {entries} entries in {} ...", tree.display());
    build_tree(&tree, entries);
    let mut chown = Vec::new();
    let mut own = Vec::new();
    let mut own_again = Vec::new();
    let mut undo = Vec::new();
    let mut own_rss = 0;
    let mut undo_rss = 0;
    for round in 0..rounds {
        eprintln!("round {} of {rounds}", round + 1);
        chown.push(run(Command::new("chown").args(["-R", "49999:49999"]).arg(&tree)).0);
        run(Command::new("chown").args(["-R", "0:0"]).arg(&tree));
        let flowerbed = |args: &[&str]| {
            let mut command = Command::new(FLOWERBED);
            command.args(args).arg(&tree).env("FLOWERBED_STATE_DIR", &state);
            run(&mut command)
        };
        let (time, rss) = flowerbed(&["-q", "own"]);
        own.push(time);
        own_rss = own_rss.max(rss);
        own_again.push(flowerbed(&["-q", "own"]).0);
        let (time, rss) = flowerbed(&["-q", "undo"]);
        undo.push(time);
        undo_rss = undo_rss.max(rss);
    }
    std::fs::remove_dir_all(&tree).expect("remove bench tree");
    let _ = std::fs::remove_dir_all(&state);
    let spread = [&own, &own_again, &undo].map(|times| spread(times, &chown));
    Figures {
        entries,
        spread,
        chown: median(chown),
        own: median(own),
        own_again: median(own_again),
        undo: median(undo),
        own_rss_kib: own_rss,
        undo_rss_kib: undo_rss,
    }
}

/// Run a command to completion: wall time and the child's peak RSS (KiB, from wait4).
// The child is reaped by wait4 (to read its rusage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn run(command: &mut Command) -> (Duration, i64) {
    // Every tool starts from a clean page cache state: otherwise the metadata the previous
    // step left dirty is written back during (and billed to) the next one, and a journal
    // sync in `own` would pay for the untimed `chown -R 0:0` before it.
    nix::unistd::sync();
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
    let elapsed = started.elapsed();
    assert_eq!(waited, pid, "wait4 failed");
    assert!(
        nix::libc::WIFEXITED(status) && nix::libc::WEXITSTATUS(status) == 0,
        "{command:?} failed with status {status}"
    );
    (elapsed, usage.ru_maxrss)
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

/// Lowest and highest of `times[i] / baseline[i]`: how much single rounds disagree.
fn spread(times: &[Duration], baseline: &[Duration]) -> (f64, f64) {
    times
        .iter()
        .zip(baseline)
        .map(|(time, base)| time.as_secs_f64() / base.as_secs_f64())
        .fold((f64::INFINITY, 0.0), |(low, high), r| (low.min(r), high.max(r)))
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
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
