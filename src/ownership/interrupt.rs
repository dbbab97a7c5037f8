//! Ctrl-C and `kill`: `own`, `undo` and `release` stop at a consistent point.
//!
//! The handler only records the signal. The walkers look at it before every entry and
//! before every change of a synced batch; when it is set they stop, drop what they had
//! journaled but not yet changed (the journal lists it, `undo` finds it already right),
//! and the command exits with 128 + the signal number (130 for SIGINT, 143 for SIGTERM).
//! Every change made before that point is in a synced journal frame, as always.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

/// Test hook: `FLOWERBED_TEST_PAUSE_AFTER=K` makes `own` print a marker line after K changes
/// and wait (at most a minute) for a real signal, so the tests can interrupt it mid-walk.
/// Never set it otherwise.
pub const PAUSE_AFTER_ENV: &str = "FLOWERBED_TEST_PAUSE_AFTER";
/// The line the pause hook prints to stderr.
pub const PAUSE_MARKER: &str = "flowerbed: test pause: waiting for a signal";

static RECEIVED: AtomicI32 = AtomicI32::new(0);
static PAUSED: AtomicBool = AtomicBool::new(false);

extern "C" fn record_signal(signal: nix::libc::c_int) {
    // Only an atomic store: async-signal-safe.
    RECEIVED.store(signal, Ordering::SeqCst);
}

/// Route SIGINT and SIGTERM to the stop flag (instead of killing the process outright).
pub fn install() -> Result<()> {
    let action = SigAction::new(
        SigHandler::Handler(record_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores into an atomic.
        unsafe { sigaction(signal, &action) }.with_context(|| format!("cannot handle {signal}"))?;
    }
    Ok(())
}

/// A stop asked for by a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("interrupted by {}", signal_name(*.signal))]
pub struct Interrupted {
    pub signal: i32,
}

impl Interrupted {
    /// The conventional shell status: 128 + the signal number.
    pub fn exit_code(self) -> u8 {
        u8::try_from(128 + self.signal).unwrap_or(u8::MAX)
    }
}

fn signal_name(signal: i32) -> &'static str {
    Signal::try_from(signal).map_or("a signal", Signal::as_str)
}

/// `Err` once SIGINT or SIGTERM arrived. While the test pause is on, waits for one first.
pub fn check() -> Result<(), Interrupted> {
    if PAUSED.load(Ordering::Relaxed) {
        wait_for_signal();
    }
    match RECEIVED.load(Ordering::Relaxed) {
        0 => Ok(()),
        signal => Err(Interrupted { signal }),
    }
}

/// Test hook: turn the pause on (every walker then waits in [`check`]).
pub fn pause_for_test() {
    if !PAUSED.swap(true, Ordering::SeqCst) {
        eprintln!("{PAUSE_MARKER}");
    }
}

fn wait_for_signal() {
    let deadline = Instant::now() + Duration::from_secs(60);
    while RECEIVED.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The test pause threshold, if the hook is set.
pub fn pause_after() -> Option<u64> {
    std::env::var(PAUSE_AFTER_ENV).ok().and_then(|v| v.parse().ok())
}
