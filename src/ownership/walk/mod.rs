//! The re-owning walk behind `own` and `release`.
//!
//! Every step is relative to a directory file descriptor that was opened with
//! `O_NOFOLLOW | O_DIRECTORY` and whose inode was checked against the name it was opened
//! by, so a directory swapped for a symlink mid-walk is never entered and nothing outside
//! the tree is reached. Non-directories are changed with `fchownat(AT_SYMLINK_NOFOLLOW)`,
//! which re-owns a symlink itself, never its target.
//!
//! The walk streams: each worker thread holds one open directory per level of its current
//! subtree and a few small journal batches. Workers walk depth-first on their own and put
//! freshly opened directories in a small shared queue (a few per worker) that idle workers
//! take from, so memory and descriptors stay bounded while both cores of a small machine
//! are kept busy (a chown is mostly kernel time).
//!
//! Journal first: a worker seals its records into a frame and queues it; a committing thread
//! writes and syncs whatever is queued (one sync for the frames of every worker), and the
//! worker changes a frame's entries only once that frame is on disk. Meanwhile it walks on,
//! so the syncs overlap the walk; batches are small so that an entry is changed soon after
//! its stat, while the kernel's dentry and inode for it are still in the CPU caches.
//!
//! Inode order: a directory lists its names in the filesystem's order (on ext4, the order
//! of their hashes), while their inodes sit in the inode table in about the order they were
//! made. A worker lists the non-directories of a directory first, then looks at and changes
//! them by inode number, so that consecutive changes update neighbouring inodes, which share
//! inode-table blocks and memory. That alone made `own` about a tenth faster here.

use std::collections::VecDeque;
use std::ffi::CStr;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

use anyhow::{Result, bail};
use nix::dir::Type;
use nix::fcntl::OFlag;
use nix::sys::stat::{FileStat, Mode};

mod batch;
pub(crate) mod capability;
mod commit;
mod queue;
mod visit;

use self::batch::{Batch, InFlight, Level, Listing, OpenDir, ParentDir};
use self::commit::Committer;
use self::queue::{ListedHandoff, Queue, Work};
use super::interrupt;
use super::journal::JournalWriter;
use super::report::{Progress, SkipReason, WalkReport};
use super::root::Root;

/// Records per journal batch. Small, so that an entry is changed while what its stat
/// brought into the CPU caches is still there; the syncs this takes overlap the walk.
const BATCH_RECORDS: usize = 1_024;
/// A batch is sealed early once its names or its frame reach this many bytes (deep paths):
/// it bounds what a walker holds in memory, and keeps every frame far under the journal's
/// maximum.
const BATCH_BYTES: usize = 4 << 20;
/// The walk goes no deeper than this (relative paths stay within about 1 MiB), whatever the
/// open-file limit would allow: a tree's content can be written by the container.
pub(crate) const MAX_DEPTH: usize = 4_096;
/// Batches a walker keeps in flight (journaled, waiting for their sync) while it goes on.
const LAG: usize = 4;
/// Descriptors (of directories and of the entries to change) a pending batch may keep open
/// before it must be sealed: its records' count, unless the open-file limit is low.
const MAX_BATCH_FDS: usize = BATCH_RECORDS;
/// At most this many walker threads.
const MAX_WORKERS: usize = 4;
/// Opened directories the hand-over queue holds, per walker. A walker changing a synced
/// batch offers no work for a millisecond or two; with only one directory in reserve per
/// walker the others often ran out meanwhile and went idle (a score of times per 200,000
/// entries, against two or three with this reserve).
const QUEUED_PER_WORKER: usize = 8;
/// Non-directory entries a walker lists before it looks at them in inode order.
const LISTING_ENTRIES: usize = 4_096;

/// Test hook: `FLOWERBED_TEST_KILL_AFTER=K` makes `own` SIGKILL itself after K changes, so
/// the crash-safety tests can stop it at an exact point. Never set it otherwise.
pub const KILL_AFTER_ENV: &str = "FLOWERBED_TEST_KILL_AFTER";

/// What the walk gives every entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Target {
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone, Copy)]
pub struct WalkOptions {
    pub target: Target,
    /// Re-own regular files that have other hard links (which may live outside the tree).
    pub allow_hardlinks: bool,
    /// Look only: change nothing, journal nothing.
    pub dry_run: bool,
    /// Journal the capabilities of files that have some (`own`), rather than leave such
    /// files alone (`release`, which has no journal to put them back from).
    pub journal_capabilities: bool,
    /// Walks running at once in this process (each takes its share of the open-file limit).
    pub concurrent_walks: usize,
}

/// Walk `root` and give every entry to `options.target`, journaling first when `journal`
/// is given (then changes are applied in synced batches), otherwise changing inline.
/// Entries whose (device, inode) is in `watch` (sorted) are listed in the report's `watched`.
pub fn reown(
    root: &Root,
    options: WalkOptions,
    journal: Option<&mut JournalWriter>,
    progress: &Progress,
    watch: &[(u64, u64)],
) -> Result<WalkReport> {
    let fd_limit = super::root::raise_fd_limit();
    // A small folder of files gives the other walkers nothing to take: no thread for them.
    let workers = if root.small_leaf_dir { 1 } else { walkers() };
    // Each worker holds one descriptor per level of its subtree plus those of its pending
    // and in-flight batches; the queue holds a few per worker. Split what the limit allows:
    // half for the batches, half for the depth.
    let queue_cap = workers * QUEUED_PER_WORKER;
    let budget = usize::try_from(fd_limit.saturating_sub(64)).unwrap_or(usize::MAX)
        / options.concurrent_walks.max(1)
        / workers;
    let budget = budget.saturating_sub(QUEUED_PER_WORKER);
    let batch_fds = (budget / 2 / (LAG + 1)).clamp(4, MAX_BATCH_FDS);
    let max_depth = budget
        .saturating_sub(batch_fds * (LAG + 1) + 1)
        .clamp(8, MAX_DEPTH);
    if options.concurrent_walks <= 1 {
        grow_descriptor_table(walk_descriptors(workers, batch_fds));
    }
    let shared = Shared {
        options,
        workers,
        queue_cap,
        root_dev: root.dev,
        root_mnt: root.mnt_id,
        root_id: (root.dev, root.ino),
        max_depth,
        batch_fds,
        committer: journal.is_some().then(Committer::default),
        queue: Mutex::new(Queue::default()),
        wake: Condvar::new(),
        failed: AtomicBool::new(false),
        changed: AtomicU64::new(0),
        kill_after: std::env::var(KILL_AFTER_ENV).ok().and_then(|v| v.parse().ok()),
        pause_after: interrupt::pause_after(),
        progress,
        watch,
    };
    let base = Rc::new(ParentDir::Base(root.parent.try_clone()?));
    // Every worker counts as busy until it first asks for work.
    shared.queue.lock().expect("queue lock").busy = workers;
    let mut first = Worker::new(&shared);
    // The first worker starts on the root; the others wait for directories handed over.
    let start = first.visit(&base, &root.name, None, None, 0);
    let results: Vec<Result<WalkReport>> = std::thread::scope(|scope| {
        if let (Some(committer), Some(writer)) = (&shared.committer, journal) {
            let shared = &shared;
            scope.spawn(move || committer.run(writer, || shared.fail()));
        }
        let helpers: Vec<_> = (1..workers)
            .map(|_| scope.spawn(|| Worker::new(&shared).run(None)))
            .collect();
        let first_result = match start {
            Ok(start) => first.run(start),
            Err(err) => Err(first.abandon(err)),
        };
        let mut results = vec![first_result];
        results.extend(
            helpers
                .into_iter()
                .map(|h| h.join().expect("walker thread panicked")),
        );
        if let Some(committer) = &shared.committer {
            committer.close();
        }
        results
    });
    let mut report = WalkReport::default();
    for result in results {
        report.merge(result?);
    }
    // Walkers stopped by a journal failure end without an error of their own.
    if let Some(reason) = shared.committer.as_ref().and_then(Committer::failure) {
        bail!("{reason}");
    }
    Ok(report)
}

/// Walker threads: one per core, at most [`MAX_WORKERS`].
fn walkers() -> usize {
    crate::ownership::cores().clamp(1, MAX_WORKERS)
}

/// Descriptors one walk holds at most: each of its `workers` walkers with its batches
/// (pending and in flight) of up to `batch_fds`, its queued hand-overs, and a few levels.
fn walk_descriptors(workers: usize, batch_fds: usize) -> usize {
    workers * ((LAG + 1) * batch_fds + QUEUED_PER_WORKER + 64)
}

/// Before `walks` walks start at once: make room for all their descriptors (within
/// `fd_limit`) in one step, while no walker thread exists yet (see
/// [`grow_descriptor_table`]).
pub(crate) fn reserve_descriptors(walks: usize, fd_limit: usize) {
    grow_descriptor_table(
        fd_limit
            .saturating_sub(64)
            .min(walks.max(1) * walk_descriptors(walkers(), MAX_BATCH_FDS)),
    );
}

/// Grow the process's descriptor table once, up front, to hold about `count` descriptors.
/// The kernel doubles the table as descriptors are opened, and once threads share it each
/// growth waits for an RCU grace period (milliseconds), while every walker trying to open
/// a descriptor waits behind it: about a tenth of the walk's time in a 200,000-entry tree.
fn grow_descriptor_table(count: usize) {
    let Ok(at_least) = i32::try_from(count) else {
        return;
    };
    // F_DUPFD takes the lowest free number from `at_least` up, growing the table to fit it;
    // the table stays that size after the copy is closed. Past the limit it fails: then the
    // table grows as it did before.
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let Ok(any) = nix::fcntl::open("/", flags, Mode::empty()) else {
        return;
    };
    if let Ok(copy) = nix::fcntl::fcntl(&any, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(at_least)) {
        // SAFETY: `copy` is a descriptor this call just made and nothing else holds.
        drop(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(copy) });
    }
}

/// State all workers share.
struct Shared<'a> {
    options: WalkOptions,
    workers: usize,
    queue_cap: usize,
    root_dev: u64,
    /// The root's mount (0: unknown); an entry on another one is a mount point.
    root_mnt: u64,
    /// The root as resolved: the walk refuses to start on anything else.
    root_id: (u64, u64),
    max_depth: usize,
    batch_fds: usize,
    committer: Option<Committer>,
    queue: Mutex<Queue>,
    wake: Condvar,
    failed: AtomicBool,
    changed: AtomicU64,
    kill_after: Option<u64>,
    pause_after: Option<u64>,
    progress: &'a Progress,
    watch: &'a [(u64, u64)],
}

impl Shared<'_> {
    fn on_another_mount(&self, stat: &FileStat, mnt_id: u64) -> bool {
        stat.st_dev != self.root_dev || (self.root_mnt != 0 && mnt_id != 0 && mnt_id != self.root_mnt)
    }

    /// Whether a file's capabilities are journaled (or, in a dry run, would be).
    fn keeps_capabilities(&self) -> bool {
        self.options.journal_capabilities && (self.options.dry_run || self.committer.is_some())
    }

    fn fail(&self) {
        self.failed.store(true, Ordering::SeqCst);
        self.wake.notify_all();
    }
}

/// Entries a walker counts before it reports them to the shared progress counter.
const PROGRESS_CHUNK: u64 = 256;

/// One walker thread's state.
struct Worker<'s, 'a> {
    shared: &'s Shared<'a>,
    report: WalkReport,
    /// Relative path of the entry being visited (raw bytes).
    path: Vec<u8>,
    batch: Batch,
    in_flight: VecDeque<InFlight>,
    /// Emptied batches, for reuse.
    spare: Vec<Batch>,
    /// Entries seen and not yet reported to the progress counter.
    unreported: u64,
    /// Non-directories listed and not yet looked at.
    listing: Listing,
}

impl<'s, 'a> Worker<'s, 'a> {
    fn new(shared: &'s Shared<'a>) -> Self {
        Self {
            shared,
            report: WalkReport::default(),
            path: Vec::new(),
            batch: Batch::default(),
            in_flight: VecDeque::new(),
            spare: Vec::new(),
            unreported: 0,
            listing: Listing::default(),
        }
    }

    /// Walk the given directories, then whatever is handed over, until the walk is over.
    fn run(mut self, start: Option<Rc<OpenDir>>) -> Result<WalkReport> {
        let mut stack: Vec<Level> = start.map(Level::new).into_iter().collect();
        loop {
            if let Err(err) = self.walk(&mut stack) {
                return Err(self.abandon(err));
            }
            // Keep filling the batch while work is at hand; apply it before waiting, so no
            // change is held back (nor its directories kept open) while idle.
            let item = if let Some(item) = self.shared.try_next_item() {
                item
            } else {
                if let Err(err) = self.drain() {
                    return Err(self.abandon(err));
                }
                self.report_progress();
                match self.shared.next_item() {
                    Some(item) => item,
                    None => return Ok(self.report),
                }
            };
            match item {
                Work::Dir(item) => {
                    self.path = item.path;
                    match self.adopt(item.fd, &item.stat, item.depth) {
                        Ok(Some(dir)) => stack.push(Level::new(dir)),
                        Ok(None) => {}
                        Err(err) => return Err(self.abandon(err)),
                    }
                }
                Work::Listed(item) => {
                    if let Err(err) = self.visit_handed(item) {
                        return Err(self.abandon(err));
                    }
                }
            }
        }
    }

    /// Stop every worker after an error; nothing still pending is changed.
    fn abandon(&mut self, err: anyhow::Error) -> anyhow::Error {
        self.shared.fail();
        self.batch.clear();
        self.in_flight.clear();
        self.listing.clear();
        self.finish_idle();
        err
    }

    /// Leave the pool after a failure without waiting for work.
    fn finish_idle(&mut self) {
        let mut queue = self.shared.queue.lock().expect("queue lock");
        queue.busy = queue.busy.saturating_sub(1);
        queue.items.clear();
        drop(queue);
        self.shared.wake.notify_all();
    }

    fn report_progress(&mut self) {
        self.shared.progress.advance(std::mem::take(&mut self.unreported));
    }

    fn walk(&mut self, stack: &mut Vec<Level>) -> Result<()> {
        while let Some(Level { dir: top, as_parent }) = stack.last().cloned() {
            if self.shared.failed.load(Ordering::Relaxed) {
                stack.clear();
                self.listing.clear();
                return Ok(());
            }
            // A signal stops the walk between entries: nothing half-done.
            interrupt::check()?;
            let next = top.entries.borrow_mut().next();
            match next {
                None => {
                    self.visit_listed(top.path_len, top.depth, &as_parent)?;
                    stack.pop();
                }
                Some(Err(errno)) => {
                    self.visit_listed(top.path_len, top.depth, &as_parent)?;
                    self.path.truncate(top.path_len);
                    self.skip(&SkipReason::Error(format!("cannot read directory: {errno}")));
                    stack.pop();
                }
                Some(Ok(entry)) => {
                    let name = entry.file_name();
                    if name.to_bytes() == b"." || name.to_bytes() == b".." {
                        continue;
                    }
                    match entry.file_type() {
                        // Listed now, looked at in inode order.
                        Some(kind) if kind != Type::Directory => {
                            self.listing.push(entry.ino(), name, kind);
                            if self.listing.entries.len() >= LISTING_ENTRIES {
                                self.hand_over_listed(&top, &as_parent)?;
                            }
                            continue;
                        }
                        // A directory (or an entry of unknown type) is looked at right away,
                        // after what is listed: the walk is about to go down into it.
                        _ => self.visit_listed(top.path_len, top.depth, &as_parent)?,
                    }
                    self.set_path(top.path_len, name);
                    if let Some(child) = self.visit(
                        &as_parent,
                        name,
                        entry.file_type(),
                        Some(entry.ino()),
                        top.depth + 1,
                    )? {
                        stack.push(Level::new(child));
                    }
                }
            }
            self.between_entries()?;
        }
        Ok(())
    }

    /// After each entry: seal the batch once it is full, and change what is already on disk.
    fn between_entries(&mut self) -> Result<()> {
        if self.batch_full() {
            self.seal_batch()?;
        }
        self.apply_durable()
    }

    /// The relative path of `name` in the directory whose path is `dir_len` bytes long.
    fn set_path(&mut self, dir_len: usize, name: &CStr) {
        self.path.truncate(dir_len);
        if !self.path.is_empty() {
            self.path.push(b'/');
        }
        self.path.extend_from_slice(name.to_bytes());
    }

    /// Hand the listed entries of `dir` to a waiting walker, or (every walker busy) look
    /// at them here.
    fn hand_over_listed(&mut self, dir: &OpenDir, as_parent: &Rc<ParentDir>) -> Result<()> {
        if self.shared.workers > 1 && !self.shared.options.dry_run {
            let dup = nix::fcntl::fcntl(dir.fd(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(0))?;
            let item = ListedHandoff {
                // SAFETY: `dup` is a descriptor this call just made and nothing else holds.
                dir: unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(dup) },
                path: self.path[..dir.path_len].to_vec(),
                depth: dir.depth,
                expects_changes: dir.expects_changes,
                listing: std::mem::take(&mut self.listing),
            };
            match self.shared.offer_listing(item) {
                None => return Ok(()),
                Some(item) => self.listing = item.listing,
            }
        }
        self.visit_listed(dir.path_len, dir.depth, as_parent)
    }

    /// Look at (and change) entries another walker listed.
    fn visit_handed(&mut self, item: ListedHandoff) -> Result<()> {
        let parent = Rc::new(ParentDir::Handed {
            fd: item.dir,
            expects_changes: item.expects_changes,
        });
        self.path = item.path;
        self.listing = item.listing;
        self.visit_listed(self.path.len(), item.depth, &parent)
    }

    /// Look at (and change) the listed entries of the directory whose path is `path_len`
    /// bytes long and whose depth is `depth`, in inode order.
    fn visit_listed(&mut self, path_len: usize, depth: usize, as_parent: &Rc<ParentDir>) -> Result<()> {
        if self.listing.entries.is_empty() {
            return Ok(());
        }
        let mut listing = std::mem::take(&mut self.listing);
        listing.entries.sort_unstable_by_key(|listed| listed.ino);
        for listed in &listing.entries {
            if self.shared.failed.load(Ordering::Relaxed) {
                break;
            }
            interrupt::check()?;
            let name = listing.name(listed);
            self.set_path(path_len, name);
            // Listed as a non-directory, so never one to descend into (see `visit`).
            let descend = self.visit(as_parent, name, Some(listed.kind), Some(listed.ino), depth + 1)?;
            debug_assert!(descend.is_none());
            self.between_entries()?;
        }
        listing.clear();
        self.listing = listing;
        Ok(())
    }

    fn skip(&mut self, reason: &SkipReason) {
        self.report.skip(&self.path, reason);
    }
}
