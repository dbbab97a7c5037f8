//! What the benches share.

/// Time the host has taken from this (virtual) machine's CPUs so far, all CPUs together, in
/// milliseconds: the `steal` column of /proc/stat (0 where there is none).
pub fn steal_ms() -> u64 {
    let ticks = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|stat| {
            stat.lines()
                .next()?
                .split_whitespace()
                .nth(8)?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0);
    // SAFETY: sysconf has no memory-safety preconditions.
    let per_second = u64::try_from(unsafe { nix::libc::sysconf(nix::libc::_SC_CLK_TCK) })
        .unwrap_or(100)
        .max(1);
    ticks * 1000 / per_second
}
