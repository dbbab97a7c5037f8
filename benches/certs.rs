//! `make bench`: a certificate set with flowerbed against Flower's openssl recipe (RSA-4096
//! CA and server keys, a CSR, signing), and the whole-folder commands, in one run.
//!
//! Every figure is a whole command: process start-up, key generation, every file written
//! and fsynced. Each timed piece of work (a flowerbed command, or the recipe's five openssl
//! commands) starts after a `sync` (untimed), as in the ownership bench, so that its syncs
//! do not wait for what the work before it (or the build) wrote. Each of
//! `FLOWERBED_BENCH_ROUNDS` rounds (default 15) runs, back to back: the openssl recipe once,
//! flowerbed's default set (ECDSA P-256) five times, its rsa-4096 set once, then
//! `quickstart DIR`, `quickstart --supernode-auth DIR` and `check DIR` five times each. A
//! round counts the median of its five runs. A ratio is the median of the rounds' own
//! ratios (recipe time / flowerbed time in that round: paired, so that a slow spell of a
//! shared machine weighs on both sides alike); each line also shows the lowest and highest
//! single round. The time the host took from this (virtual) machine during the timed
//! commands (steal time) is printed too. Figures are printed, never asserted.
//!
//! Each round writes into a folder of its own, journals included (run as root, quickstart
//! hands folders over: a state folder per round holds some twenty journals by its end, as
//! on a host with a few deployments). Rounds' folders are all removed at the end, not after
//! each round: on ext4 without a journal, a file created within a minute of many deletions
//! in its block group waits while the allocator steps over every inode freed meanwhile
//! (`recently_deleted`), so a clean-up between rounds was measured in the next round's
//! commands.
//!
//! Targets from the certificates issue: the default set ≤ 5 ms and ≥ 300× faster than the
//! recipe; `quickstart DIR` (with and without `--supernode-auth`) and `check DIR` ≤ 10 ms.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::steal_ms;

const FLOWERBED: &str = env!("CARGO_BIN_EXE_flowerbed");
/// Runs per round of each command that takes milliseconds.
const SMALL_RUNS: usize = 5;

/// Flower's generate script, step by step (its certificate.conf SANs as an extension file).
fn openssl_recipe(dir: &Path) {
    std::fs::write(
        dir.join("certificate.conf"),
        "[req]\ndistinguished_name=dn\n[dn]\n[ext]\nsubjectAltName=DNS:localhost,IP:::1,IP:127.0.0.1\n",
    )
    .unwrap();
    let steps: [&[&str]; 5] = [
        &["genrsa", "-out", "ca.key", "4096"],
        &[
            "req",
            "-new",
            "-x509",
            "-key",
            "ca.key",
            "-sha256",
            "-subj",
            "/C=DE/ST=HH/O=Flower/CN=Flower CA",
            "-days",
            "365",
            "-out",
            "ca.crt",
        ],
        &["genrsa", "-out", "server.key", "4096"],
        &[
            "req",
            "-new",
            "-key",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/C=DE/ST=HH/O=Flower/CN=localhost",
            "-config",
            "certificate.conf",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "365",
            "-sha256",
            "-extfile",
            "certificate.conf",
            "-extensions",
            "ext",
        ],
    ];
    for args in steps {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap()
            .status;
        assert!(status.success(), "openssl {args:?}");
    }
}

/// Run `flowerbed -q ARGS DIR`. Journals (quickstart hands its folders to the container's
/// UID when run as root) go to the round's own state folder, never the system's.
fn flowerbed(args: &[&str], dir: &Path) {
    let round = dir.parent().expect("a round's folder");
    let out = Command::new(FLOWERBED)
        .env("FLOWERBED_STATE_DIR", round.join("state"))
        .args(["-q"])
        .args(args)
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "flowerbed {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One timed piece of work: wall time and the host's steal time meanwhile.
#[derive(Default)]
struct Series {
    times: Vec<Duration>,
    steal_ms: u64,
    /// CPU time (user + system) of the commands, all runs together.
    cpu: Duration,
    runs: u32,
}

impl Series {
    fn time(&mut self, work: impl FnOnce()) -> Duration {
        // Nothing left to write back (see the module's doc).
        nix::unistd::sync();
        let steal_before = steal_ms();
        let cpu_before = children_cpu();
        let started = Instant::now();
        work();
        let wall = started.elapsed();
        self.cpu += children_cpu().saturating_sub(cpu_before);
        self.runs += 1;
        self.steal_ms += steal_ms().saturating_sub(steal_before);
        wall
    }

    /// Time `work` once and record it.
    fn once(&mut self, work: impl FnOnce()) {
        let wall = self.time(work);
        self.times.push(wall);
    }

    /// Mean CPU time per command run.
    fn cpu_per_run(&self) -> Duration {
        self.cpu / self.runs.max(1)
    }

    /// Time `work` SMALL_RUNS times and record the median.
    fn small(&mut self, mut work: impl FnMut(usize)) {
        let mut runs: Vec<Duration> = (0..SMALL_RUNS).map(|run| self.time(|| work(run))).collect();
        runs.sort();
        self.times.push(runs[SMALL_RUNS / 2]);
    }
}

fn main() {
    // `cargo bench` passes --bench; a filter argument may follow. Nothing to parse.
    let rounds = std::env::var("FLOWERBED_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(15)
        .max(1);
    let work = tempfile::tempdir().unwrap();
    let (mut recipe, mut default_set, mut rsa_set) =
        (Series::default(), Series::default(), Series::default());
    let (mut quickstart, mut quickstart_auth, mut check) =
        (Series::default(), Series::default(), Series::default());
    for round in 0..rounds {
        eprintln!("round {} of {rounds}", round + 1);
        let dir = work.path().join(format!("round-{round}"));
        std::fs::create_dir(&dir).unwrap();
        let recipe_dir = dir.join("recipe");
        std::fs::create_dir(&recipe_dir).unwrap();
        recipe.once(|| openssl_recipe(&recipe_dir));
        default_set.small(|run| flowerbed(&["certs", "generate"], &dir.join(format!("set-{run}"))));
        rsa_set.once(|| flowerbed(&["certs", "generate", "--key-type", "rsa-4096"], &dir.join("rsa")));
        quickstart.small(|run| flowerbed(&["quickstart"], &dir.join(format!("qs-{run}"))));
        quickstart_auth.small(|run| {
            flowerbed(
                &["quickstart", "--supernode-auth"],
                &dir.join(format!("qs-auth-{run}")),
            );
        });
        check.small(|_| flowerbed(&["check"], &dir.join("qs-0")));
        // The rounds' folders are removed together at the end: see the module's doc.
    }

    println!(
        "certs generate against Flower's openssl recipe ({rounds} rounds, whole commands, paired ratios)"
    );
    println!(
        "  openssl recipe (RSA-4096, Flower's script)  {:>10.2?}   baseline (cpu {:.2?} per run)",
        median(&recipe.times),
        recipe.cpu_per_run()
    );
    let faster = |series: &Series| {
        let ratios: Vec<f64> = recipe
            .times
            .iter()
            .zip(&series.times)
            .map(|(base, time)| base.as_secs_f64() / time.as_secs_f64())
            .collect();
        let low = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let high = ratios.iter().copied().fold(0.0, f64::max);
        format!("{:.0}x faster (rounds {low:.0}x..{high:.0}x)", median_f64(ratios))
    };
    let default_median = median(&default_set.times);
    println!(
        "  flowerbed ecdsa-p256 (default set)          {default_median:>10.2?}   {} target >= 300x and <= 5 ms: {} (cpu {:.2?} per run)",
        faster(&default_set),
        verdict(default_median, 5),
        default_set.cpu_per_run()
    );
    println!(
        "  flowerbed rsa-4096                          {:>10.2?}   {} (cpu {:.2?} per run)",
        median(&rsa_set.times),
        faster(&rsa_set),
        rsa_set.cpu_per_run()
    );
    println!("whole folders (target <= 10 ms each)");
    for (label, series) in [
        ("quickstart DIR", &quickstart),
        ("quickstart --supernode-auth DIR", &quickstart_auth),
        ("check DIR (a quickstart folder)", &check),
    ] {
        let time = median(&series.times);
        let low = series.times.iter().min().unwrap();
        let high = series.times.iter().max().unwrap();
        println!(
            "  {label:<42}{time:>10.2?}   (rounds {low:.2?}..{high:.2?}) {} (cpu {:.2?} per run)",
            verdict(time, 10),
            series.cpu_per_run()
        );
    }
    println!(
        "  host steal time: recipe {} ms, default set {} ms, rsa-4096 {} ms, quickstart {} ms, quickstart --supernode-auth {} ms, check {} ms",
        recipe.steal_ms,
        default_set.steal_ms,
        rsa_set.steal_ms,
        quickstart.steal_ms,
        quickstart_auth.steal_ms,
        check.steal_ms
    );
}

fn verdict(time: Duration, target_ms: u64) -> &'static str {
    if time <= Duration::from_millis(target_ms) {
        "ok"
    } else {
        "OVER TARGET"
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

/// User plus system CPU time of every finished (reaped) child of this process so far.
fn children_cpu() -> Duration {
    // SAFETY: an all-zero rusage is valid; getrusage fills it.
    let mut usage: nix::libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { nix::libc::getrusage(nix::libc::RUSAGE_CHILDREN, &raw mut usage) };
    let time = |t: nix::libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}
