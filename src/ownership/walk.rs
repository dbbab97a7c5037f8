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

use std::cell::RefCell;
use std::collections::VecDeque;
use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

use anyhow::{Result, bail};
use nix::dir::{Dir, OwningIter, Type};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat};
use nix::unistd::{Gid, Uid, fchown, fchownat};

use super::interrupt;
use super::journal::{JournalWriter, RecordBatch, RecordRef, SealedBatch};
use super::report::{Progress, SkipReason, WalkReport, display_bytes};
use super::root::{Root, file_type, stat_at};

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
/// Directories a pending batch may keep open before it must be applied (fewer when the
/// open-file limit is low).
const MAX_BATCH_DIRS: usize = 256;
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
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, MAX_WORKERS);
    // Each worker holds one descriptor per level of its subtree plus the directories of its
    // pending batch; the queue holds a few per worker. Split what the limit allows.
    let queue_cap = workers * QUEUED_PER_WORKER;
    let budget = usize::try_from(fd_limit.saturating_sub(64))
        .unwrap_or(usize::MAX)
        .saturating_sub(queue_cap)
        / workers;
    let batch_dirs = (budget / 4 / (LAG + 1)).clamp(4, MAX_BATCH_DIRS);
    let max_depth = budget.saturating_sub(batch_dirs + 1).clamp(8, MAX_DEPTH);
    let shared = Shared {
        options,
        workers,
        queue_cap,
        root_dev: root.dev,
        root_mnt: root.mnt_id,
        root_id: (root.dev, root.ino),
        max_depth,
        batch_dirs,
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
    batch_dirs: usize,
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

/// Group commit for the journal: walkers queue sealed batches and walk on; one thread
/// appends whatever is queued with a single write and sync, then marks it durable. A walker
/// changes the entries of a batch only once it is durable.
#[derive(Default)]
struct Committer {
    state: Mutex<CommitState>,
    /// `CommitState::durable`, readable without the lock: walkers look at it between entries.
    durable_now: AtomicU64,
    queued: Condvar,
    durable: Condvar,
}

#[derive(Default)]
struct CommitState {
    batches: Vec<SealedBatch>,
    /// Batches handed in so far; a batch's ticket is the count after it.
    submitted: u64,
    /// Batches on disk so far.
    durable: u64,
    failed: Option<String>,
    closed: bool,
}

impl Committer {
    fn submit(&self, batch: SealedBatch) -> u64 {
        let mut state = self.state.lock().expect("journal lock");
        state.batches.push(batch);
        state.submitted += 1;
        let ticket = state.submitted;
        drop(state);
        self.queued.notify_one();
        ticket
    }

    fn is_durable(&self, ticket: u64) -> bool {
        self.durable_now.load(Ordering::Acquire) >= ticket
    }

    /// Block until the batch with `ticket` is on disk.
    fn wait(&self, ticket: u64) -> Result<()> {
        let mut state = self.state.lock().expect("journal lock");
        loop {
            if state.durable >= ticket {
                return Ok(());
            }
            if let Some(reason) = &state.failed {
                bail!("{reason}");
            }
            state = self.durable.wait(state).expect("journal lock");
        }
    }

    /// No more batches: the syncing thread ends once the queue is written.
    fn close(&self) {
        self.state.lock().expect("journal lock").closed = true;
        self.queued.notify_all();
    }

    fn failure(&self) -> Option<String> {
        self.state.lock().expect("journal lock").failed.clone()
    }

    fn fail(&self, err: &anyhow::Error, stop_walk: impl Fn()) {
        self.state.lock().expect("journal lock").failed = Some(format!("{err:#}"));
        self.durable.notify_all();
        stop_walk();
    }

    /// The syncing thread. It first makes the journal ready (reading an existing one back
    /// takes a few milliseconds, which the walk no longer waits for: nothing is changed
    /// before the first sync anyway). After a failure it stops the walk: the writer refuses
    /// more frames, and every batch still waiting reports the failure instead of being
    /// applied.
    fn run(&self, writer: &mut JournalWriter, stop_walk: impl Fn()) {
        if let Err(err) = writer.prepare() {
            return self.fail(&err, stop_walk);
        }
        let mut state = self.state.lock().expect("journal lock");
        loop {
            if state.batches.is_empty() {
                if state.closed {
                    return;
                }
                state = self.queued.wait(state).expect("journal lock");
                continue;
            }
            let batches = std::mem::take(&mut state.batches);
            let upto = state.submitted;
            drop(state);
            if let Err(err) = writer.commit_sealed(&batches) {
                return self.fail(&err, stop_walk);
            }
            state = self.state.lock().expect("journal lock");
            state.durable = upto;
            self.durable_now.store(upto, Ordering::Release);
            self.durable.notify_all();
        }
    }
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Handoff>,
    /// Workers currently walking (not waiting): the walk is over when none is and no
    /// directory is queued.
    busy: usize,
}

/// An opened, checked directory handed to another worker, which changes and walks it.
struct Handoff {
    fd: OwnedFd,
    stat: FileStat,
    path: Vec<u8>,
    depth: usize,
}

impl Shared<'_> {
    fn on_another_mount(&self, stat: &FileStat, mnt_id: u64) -> bool {
        stat.st_dev != self.root_dev || (self.root_mnt != 0 && mnt_id != 0 && mnt_id != self.root_mnt)
    }

    fn fail(&self) {
        self.failed.store(true, Ordering::SeqCst);
        self.wake.notify_all();
    }

    /// Queue `item` for another worker; gives it back when the queue already holds enough
    /// (a few directories per worker keep everyone busy without piling up descriptors).
    fn offer(&self, item: Handoff) -> Option<Handoff> {
        if self.workers == 1 {
            return Some(item);
        }
        let mut queue = self.queue.lock().expect("queue lock");
        if queue.items.len() >= self.queue_cap {
            return Some(item);
        }
        queue.items.push_back(item);
        drop(queue);
        self.wake.notify_one();
        None
    }

    /// A queued directory, if one is waiting right now.
    fn try_next_item(&self) -> Option<Handoff> {
        if self.failed.load(Ordering::SeqCst) {
            return None;
        }
        self.queue.lock().expect("queue lock").items.pop_front()
    }

    /// Block until a directory is queued (`Some`) or the walk is over (`None`).
    fn next_item(&self) -> Option<Handoff> {
        let mut queue = self.queue.lock().expect("queue lock");
        queue.busy -= 1;
        if queue.busy == 0 && queue.items.is_empty() {
            self.wake.notify_all();
            return None;
        }
        loop {
            if self.failed.load(Ordering::SeqCst) {
                return None;
            }
            if let Some(item) = queue.items.pop_front() {
                queue.busy += 1;
                return Some(item);
            }
            if queue.busy == 0 {
                self.wake.notify_all();
                return None;
            }
            queue = self.wake.wait(queue).expect("queue lock");
        }
    }
}

/// An open directory of the walk: its entry stream and the descriptor changes go through.
struct OpenDir {
    entries: RefCell<OwningIter>,
    /// Length of the relative path buffer up to and including this directory's name.
    path_len: usize,
    depth: usize,
}

impl OpenDir {
    fn fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the descriptor belongs to `entries`, which lives as long as `self`.
        unsafe { BorrowedFd::borrow_raw(self.entries.borrow().as_raw_fd()) }
    }
}

/// One level of a worker's walk: the directory, and the same as the parent of its entries
/// (made once per directory, not per entry).
#[derive(Clone)]
struct Level {
    dir: Rc<OpenDir>,
    as_parent: Rc<ParentDir>,
}

impl Level {
    fn new(dir: Rc<OpenDir>) -> Self {
        Self {
            as_parent: Rc::new(ParentDir::Walked(dir.clone())),
            dir,
        }
    }
}

/// Where a pending change is applied.
enum Handle {
    /// The directory itself, through its own descriptor.
    Dir(Rc<OpenDir>),
    /// A non-directory: a name (kept in the batch's bytes) in a directory.
    Child {
        parent: Rc<ParentDir>,
        dev: u64,
        ino: u64,
    },
}

/// A directory descriptor shared by the entries that sit in it.
enum ParentDir {
    Walked(Rc<OpenDir>),
    /// The directory holding the root entry.
    Base(OwnedFd),
}

impl ParentDir {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            ParentDir::Walked(dir) => dir.fd(),
            ParentDir::Base(fd) => fd.as_fd(),
        }
    }
}

/// One change to make once its record is on disk.
struct Pending {
    handle: Handle,
    /// Where, in the batch's bytes, its relative path starts; the path is followed by the
    /// entry's name and a NUL (for a child), up to `end`.
    start: usize,
    path_end: usize,
    end: usize,
}

/// A walker's changes in one journal frame, with the bytes their names and paths need:
/// one buffer for all of them, reused from batch to batch, so an entry costs no allocation.
#[derive(Default)]
struct Batch {
    records: RecordBatch,
    entries: Vec<Pending>,
    bytes: Vec<u8>,
    /// Directories its entries keep open.
    dirs: usize,
}

impl Batch {
    fn push(&mut self, handle: Handle, path: &[u8], name: Option<&CStr>) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(path);
        let path_end = self.bytes.len();
        if let Some(name) = name {
            self.bytes.extend_from_slice(name.to_bytes_with_nul());
        }
        if matches!(handle, Handle::Dir(_)) {
            self.dirs += 1;
        }
        self.entries.push(Pending {
            handle,
            start,
            path_end,
            end: self.bytes.len(),
        });
    }

    /// The name (for a child) and relative path that [`Self::push`] stored for `entry`.
    fn name_and_path(&self, entry: &Pending) -> (Option<&CStr>, &[u8]) {
        let name = (entry.end > entry.path_end).then(|| {
            CStr::from_bytes_with_nul(&self.bytes[entry.path_end..entry.end]).expect("a name and its NUL")
        });
        (name, &self.bytes[entry.start..entry.path_end])
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes.clear();
        self.dirs = 0;
    }
}

/// Non-directory entries of one directory as it listed them, names in one reused buffer.
#[derive(Default)]
struct Listing {
    entries: Vec<Listed>,
    names: Vec<u8>,
}

struct Listed {
    ino: u64,
    kind: Type,
    /// The name and its NUL in `Listing::names`.
    start: usize,
    end: usize,
}

impl Listing {
    fn push(&mut self, ino: u64, name: &CStr, kind: Type) {
        let start = self.names.len();
        self.names.extend_from_slice(name.to_bytes_with_nul());
        self.entries.push(Listed {
            ino,
            kind,
            start,
            end: self.names.len(),
        });
    }

    fn name(&self, listed: &Listed) -> &CStr {
        CStr::from_bytes_with_nul(&self.names[listed.start..listed.end]).expect("a name and its NUL")
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.names.clear();
    }
}

/// A batch whose records are queued for the journal; its entries change once it is synced.
struct InFlight {
    ticket: u64,
    batch: Batch,
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
            self.path = item.path;
            match self.adopt(item.fd, &item.stat, item.depth) {
                Ok(Some(dir)) => stack.push(Level::new(dir)),
                Ok(None) => {}
                Err(err) => return Err(self.abandon(err)),
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
                    self.visit_listed(&top, &as_parent)?;
                    stack.pop();
                }
                Some(Err(errno)) => {
                    self.visit_listed(&top, &as_parent)?;
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
                                self.visit_listed(&top, &as_parent)?;
                            }
                            continue;
                        }
                        // A directory (or an entry of unknown type) is looked at right away,
                        // after what is listed: the walk is about to go down into it.
                        _ => self.visit_listed(&top, &as_parent)?,
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

    /// Look at (and change) the listed entries of `dir`, in inode order.
    fn visit_listed(&mut self, dir: &OpenDir, as_parent: &Rc<ParentDir>) -> Result<()> {
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
            self.set_path(dir.path_len, name);
            // Listed as a non-directory, so never one to descend into (see `visit`).
            let descend = self.visit(
                as_parent,
                name,
                Some(listed.kind),
                Some(listed.ino),
                dir.depth + 1,
            )?;
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

    /// Look at one entry; returns the directory to descend into, if it is one.
    fn visit(
        &mut self,
        parent: &Rc<ParentDir>,
        name: &CStr,
        listed_type: Option<Type>,
        listed_ino: Option<u64>,
        depth: usize,
    ) -> Result<Option<Rc<OpenDir>>> {
        self.unreported += 1;
        if self.unreported >= PROGRESS_CHUNK {
            self.report_progress();
        }
        // A listed directory is opened straight away (no separate stat); anything else, or
        // an entry of unknown type, is looked at without following it first.
        let stat = if listed_type == Some(Type::Directory) {
            None
        } else {
            match stat_at(parent.fd(), name, false) {
                Ok(stat) => Some(stat),
                Err(Errno::ENOENT) => {
                    self.skip(&SkipReason::Vanished);
                    return Ok(None);
                }
                Err(errno) => {
                    self.skip(&SkipReason::Error(format!("cannot stat: {errno}")));
                    return Ok(None);
                }
            }
        };
        if let Some((stat, _)) = &stat {
            if depth == 0 && (stat.st_dev, stat.st_ino) != self.shared.root_id {
                bail!(
                    "{}: replaced since it was checked; nothing changed",
                    display_bytes(name.to_bytes())
                );
            }
        }
        let is_dir = stat.as_ref().is_none_or(|(s, _)| file_type(s) == SFlag::S_IFDIR);
        if is_dir && listed_type.is_some_and(|kind| kind != Type::Directory) {
            // Listed as something else, a directory now: replaced while we walk.
            self.skip(&SkipReason::ChangedDuringWalk);
            return Ok(None);
        }
        if is_dir {
            let expected_ino = stat.map_or(listed_ino, |(s, _)| Some(s.st_ino));
            return self.visit_dir(parent, name, expected_ino, depth);
        }
        let (stat, mnt_id) = stat.expect("non-directories were stat'ed");
        if self.shared.on_another_mount(&stat, mnt_id) {
            // A file bind-mounted here (from anywhere) is not the tree's.
            self.skip(&SkipReason::MountPoint);
            return Ok(None);
        }
        self.note_if_watched(&stat);
        if file_type(&stat) == SFlag::S_IFREG && stat.st_nlink > 1 && !self.shared.options.allow_hardlinks {
            self.skip(&SkipReason::HardLinked { links: stat.st_nlink });
            return Ok(None);
        }
        if self.already_right(&stat) {
            return Ok(None);
        }
        let handle = Handle::Child {
            parent: parent.clone(),
            dev: stat.st_dev,
            ino: stat.st_ino,
        };
        self.change(handle, Some(name), &stat);
        Ok(None)
    }

    fn visit_dir(
        &mut self,
        parent: &Rc<ParentDir>,
        name: &CStr,
        expected_ino: Option<u64>,
        depth: usize,
    ) -> Result<Option<Rc<OpenDir>>> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = match openat(parent.fd(), name, flags, Mode::empty()) {
            Ok(fd) => fd,
            // Replaced by a symlink or a file since it was listed: not ours to follow.
            Err(Errno::ELOOP | Errno::ENOTDIR) => {
                self.skip(&SkipReason::ChangedDuringWalk);
                return Ok(None);
            }
            Err(Errno::ENOENT) => {
                self.skip(&SkipReason::Vanished);
                return Ok(None);
            }
            Err(errno) => {
                self.skip(&SkipReason::Error(format!("cannot open directory: {errno}")));
                return Ok(None);
            }
        };
        let (stat, mnt_id) = stat_at(fd.as_fd(), c"", false)?;
        if depth == 0 && (stat.st_dev, stat.st_ino) != self.shared.root_id {
            bail!(
                "{}: replaced since it was checked; nothing changed",
                display_bytes(name.to_bytes())
            );
        }
        // Before the inode check: a folder mounted here has another inode than the one listed.
        if self.shared.on_another_mount(&stat, mnt_id) {
            self.skip(&SkipReason::MountPoint);
            return Ok(None);
        }
        if expected_ino.is_some_and(|ino| ino != stat.st_ino) {
            self.skip(&SkipReason::ChangedDuringWalk);
            return Ok(None);
        }
        if depth > 0 {
            let item = Handoff {
                fd,
                stat,
                path: self.path.clone(),
                depth,
            };
            return match self.shared.offer(item) {
                None => Ok(None),
                Some(item) => self.adopt(item.fd, &item.stat, depth),
            };
        }
        self.adopt(fd, &stat, depth)
    }

    /// Take an opened, checked directory into this worker: change it, and return it to be
    /// walked unless it is too deep.
    fn adopt(&mut self, fd: OwnedFd, stat: &FileStat, depth: usize) -> Result<Option<Rc<OpenDir>>> {
        let entries = Dir::from_fd(fd)?.into_iter();
        let dir = Rc::new(OpenDir {
            entries: RefCell::new(entries),
            path_len: self.path.len(),
            depth,
        });
        self.note_if_watched(stat);
        if !self.already_right(stat) {
            self.change(Handle::Dir(dir.clone()), None, stat);
        }
        if depth >= self.shared.max_depth {
            // Its own change (if any) still holds it open; its entries are not walked.
            self.skip(&SkipReason::TooDeep {
                limit: self.shared.max_depth,
            });
            return Ok(None);
        }
        Ok(Some(dir))
    }

    fn note_if_watched(&mut self, stat: &FileStat) {
        let watch = self.shared.watch;
        if !watch.is_empty() && watch.binary_search(&(stat.st_dev, stat.st_ino)).is_ok() {
            self.report.watched.push((stat.st_dev, stat.st_ino));
        }
    }

    fn already_right(&mut self, stat: &FileStat) -> bool {
        let target = self.shared.options.target;
        if stat.st_uid == target.uid && stat.st_gid == target.gid {
            self.report.already_right += 1;
            return true;
        }
        false
    }

    /// Journal the entry's current state and change it (now, or with its batch).
    fn change(&mut self, handle: Handle, name: Option<&CStr>, stat: &FileStat) {
        if matches!(file_type(stat), SFlag::S_IFCHR | SFlag::S_IFBLK) {
            // Whoever owns a device node can read or write the device: say so.
            self.report.device(&self.path);
        }
        if self.shared.options.dry_run {
            self.report
                .plan(&self.path, stat.st_uid, stat.st_gid, stat.st_mode);
            return;
        }
        if self.shared.committer.is_none() {
            apply(self.shared, &mut self.report, &handle, name, &self.path);
            return;
        }
        self.batch.records.push(RecordRef {
            dev: stat.st_dev,
            ino: stat.st_ino,
            uid: stat.st_uid,
            gid: stat.st_gid,
            mode: stat.st_mode,
            path: &self.path,
        });
        self.batch.push(handle, &self.path, name);
    }

    fn batch_full(&self) -> bool {
        self.batch.entries.len() >= BATCH_RECORDS
            || self.batch.dirs >= self.shared.batch_dirs
            || self.batch.bytes.len() >= BATCH_BYTES
            || self.batch.records.byte_len() >= BATCH_BYTES
    }

    /// Queue the batch for the journal, then change the entries of the oldest batches in
    /// flight (once synced) until at most [`LAG`] are left.
    fn seal_batch(&mut self) -> Result<()> {
        let Some(committer) = &self.shared.committer else {
            return Ok(());
        };
        if !self.batch.entries.is_empty() {
            let ticket = committer.submit(self.batch.records.seal());
            let next = self.spare.pop().unwrap_or_default();
            let batch = std::mem::replace(&mut self.batch, next);
            self.in_flight.push_back(InFlight { ticket, batch });
        }
        while self.in_flight.len() > LAG {
            self.apply_oldest(committer)?;
        }
        Ok(())
    }

    /// Journal and change everything still pending (before waiting for work, and at the end).
    fn drain(&mut self) -> Result<()> {
        self.seal_batch()?;
        if let Some(committer) = &self.shared.committer {
            while !self.in_flight.is_empty() {
                self.apply_oldest(committer)?;
            }
        }
        Ok(())
    }

    /// Change the entries of batches already on disk, without waiting for any.
    fn apply_durable(&mut self) -> Result<()> {
        if let (Some(committer), Some(oldest)) = (&self.shared.committer, self.in_flight.front()) {
            if committer.is_durable(oldest.ticket) {
                self.apply_oldest(committer)?;
            }
        }
        Ok(())
    }

    fn apply_oldest(&mut self, committer: &Committer) -> Result<()> {
        let InFlight { ticket, mut batch } = self.in_flight.pop_front().expect("a batch in flight");
        committer.wait(ticket)?;
        for entry in &batch.entries {
            // Stopping here leaves journaled entries unchanged, which undo handles.
            interrupt::check()?;
            let (name, path) = batch.name_and_path(entry);
            apply(self.shared, &mut self.report, &entry.handle, name, path);
        }
        batch.clear();
        self.spare.push(batch);
        Ok(())
    }
}

/// Change one entry. A child is opened (without following it) and changed through that
/// descriptor, once the descriptor is checked to be the inode that was stat'ed and journaled
/// (still with no other hard links): what is checked is what is changed, whatever is
/// renamed over the name meanwhile.
fn apply(shared: &Shared<'_>, report: &mut WalkReport, handle: &Handle, name: Option<&CStr>, path: &[u8]) {
    let target = shared.options.target;
    let uid = Some(Uid::from_raw(target.uid));
    let gid = Some(Gid::from_raw(target.gid));
    let result = match handle {
        Handle::Dir(dir) => fchown(dir.fd(), uid, gid),
        Handle::Child { parent, dev, ino } => {
            let name = name.expect("a child has a name");
            let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            let fd = match openat(parent.fd(), name, flags, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => {
                    report.skip(path, &SkipReason::Vanished);
                    return;
                }
                Err(errno) => {
                    report.skip(path, &SkipReason::Error(format!("cannot open: {errno}")));
                    return;
                }
            };
            match fstat(&fd) {
                Ok(now)
                    if now.st_dev == *dev
                        && now.st_ino == *ino
                        && (shared.options.allow_hardlinks
                            || file_type(&now) != SFlag::S_IFREG
                            || now.st_nlink == 1) => {}
                _ => {
                    report.skip(path, &SkipReason::ChangedDuringWalk);
                    return;
                }
            }
            fchownat(
                &fd,
                c"",
                uid,
                gid,
                AtFlags::AT_EMPTY_PATH | AtFlags::AT_SYMLINK_NOFOLLOW,
            )
        }
    };
    match result {
        Ok(()) => {
            report.changed += 1;
            if let Some(pause_after) = shared.pause_after {
                if shared.changed.fetch_add(1, Ordering::SeqCst) + 1 >= pause_after {
                    // Test hook: wait for a real signal (see `interrupt::check`).
                    interrupt::pause_for_test();
                }
            }
            if let Some(kill_after) = shared.kill_after {
                if shared.changed.fetch_add(1, Ordering::SeqCst) + 1 >= kill_after {
                    // Test hook: die the hardest way, mid-batch, with no cleanup.
                    // SAFETY: raise has no memory-safety preconditions.
                    unsafe { nix::libc::raise(nix::libc::SIGKILL) };
                }
            }
        }
        Err(errno) => report.skip(path, &SkipReason::Error(format!("cannot change owner: {errno}"))),
    }
}
