//! Group commit: walkers hand sealed journal batches to one syncing thread, and change a
//! batch's entries only once it is on disk.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

use anyhow::{Result, bail};
use nix::fcntl::AtFlags;
use nix::sys::stat::{FileStat, SFlag};
use nix::unistd::{Gid, Uid, fchown, fchownat};

use super::super::interrupt;
use super::super::journal::{JournalWriter, RecordRef, SealedBatch};
use super::super::report::{SkipReason, WalkReport};
use super::super::root::file_type;
use super::batch::{Handle, InFlight};
use super::{BATCH_BYTES, BATCH_RECORDS, LAG, Shared, Worker};

/// Group commit for the journal: walkers queue sealed batches and walk on; one thread
/// appends whatever is queued with a single write and sync, then marks it durable. A walker
/// changes the entries of a batch only once it is durable.
#[derive(Default)]
pub(super) struct Committer {
    pub(super) state: Mutex<CommitState>,
    /// `CommitState::durable`, readable without the lock: walkers look at it between entries.
    pub(super) durable_now: AtomicU64,
    pub(super) queued: Condvar,
    pub(super) durable: Condvar,
}

#[derive(Default)]
pub(super) struct CommitState {
    pub(super) batches: Vec<SealedBatch>,
    /// Batches handed in so far; a batch's ticket is the count after it.
    pub(super) submitted: u64,
    /// Batches on disk so far.
    pub(super) durable: u64,
    pub(super) failed: Option<String>,
    pub(super) closed: bool,
}

impl Committer {
    pub(super) fn submit(&self, batch: SealedBatch) -> u64 {
        let mut state = self.state.lock().expect("journal lock");
        state.batches.push(batch);
        state.submitted += 1;
        let ticket = state.submitted;
        drop(state);
        self.queued.notify_one();
        ticket
    }

    pub(super) fn is_durable(&self, ticket: u64) -> bool {
        self.durable_now.load(Ordering::Acquire) >= ticket
    }

    /// Block until the batch with `ticket` is on disk.
    pub(super) fn wait(&self, ticket: u64) -> Result<()> {
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
    pub(super) fn close(&self) {
        self.state.lock().expect("journal lock").closed = true;
        self.queued.notify_all();
    }

    pub(super) fn failure(&self) -> Option<String> {
        self.state.lock().expect("journal lock").failed.clone()
    }

    pub(super) fn fail(&self, err: &anyhow::Error, stop_walk: impl Fn()) {
        self.state.lock().expect("journal lock").failed = Some(format!("{err:#}"));
        self.durable.notify_all();
        stop_walk();
    }

    /// The syncing thread. It first makes the journal ready (reading an existing one back
    /// takes a few milliseconds, which the walk no longer waits for: nothing is changed
    /// before the first sync anyway). After a failure it stops the walk: the writer refuses
    /// more frames, and every batch still waiting reports the failure instead of being
    /// applied.
    pub(super) fn run(&self, writer: &mut JournalWriter, stop_walk: impl Fn()) {
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

impl Worker<'_, '_> {
    /// Journal the entry's current state and change it (now, or with its batch).
    pub(super) fn change(&mut self, handle: Handle, stat: &FileStat, capability: Option<&[u8]>) {
        if matches!(file_type(stat), SFlag::S_IFCHR | SFlag::S_IFBLK) {
            // Whoever owns a device node can read or write the device: say so.
            self.report.device(&self.path);
        }
        if capability.is_some() {
            self.report.capabilities += 1;
        }
        if self.shared.options.dry_run {
            self.report
                .plan(&self.path, stat.st_uid, stat.st_gid, stat.st_mode);
            return;
        }
        if self.shared.committer.is_none() {
            apply(self.shared, &mut self.report, &handle, &self.path);
            return;
        }
        let record = RecordRef {
            dev: stat.st_dev,
            ino: stat.st_ino,
            uid: stat.st_uid,
            gid: stat.st_gid,
            mode: stat.st_mode,
            path: &self.path,
        };
        match capability {
            Some(value) => self.batch.records.push_with_capability(record, value),
            None => self.batch.records.push(record),
        }
        self.batch.push(handle, &self.path);
    }

    pub(super) fn batch_full(&self) -> bool {
        self.batch.entries.len() >= BATCH_RECORDS
            || self.batch.fds >= self.shared.batch_fds
            || self.batch.bytes.len() >= BATCH_BYTES
            || self.batch.records.byte_len() >= BATCH_BYTES
    }

    /// Queue the batch for the journal, then change the entries of the oldest batches in
    /// flight (once synced) until at most [`LAG`] are left.
    pub(super) fn seal_batch(&mut self) -> Result<()> {
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
    pub(super) fn drain(&mut self) -> Result<()> {
        self.seal_batch()?;
        if let Some(committer) = &self.shared.committer {
            while !self.in_flight.is_empty() {
                self.apply_oldest(committer)?;
            }
        }
        Ok(())
    }

    /// Change the entries of batches already on disk, without waiting for any.
    pub(super) fn apply_durable(&mut self) -> Result<()> {
        if let (Some(committer), Some(oldest)) = (&self.shared.committer, self.in_flight.front()) {
            if committer.is_durable(oldest.ticket) {
                self.apply_oldest(committer)?;
            }
        }
        Ok(())
    }

    pub(super) fn apply_oldest(&mut self, committer: &Committer) -> Result<()> {
        let InFlight { ticket, mut batch } = self.in_flight.pop_front().expect("a batch in flight");
        committer.wait(ticket)?;
        for entry in &batch.entries {
            // Stopping here leaves journaled entries unchanged, which undo handles.
            interrupt::check()?;
            apply(self.shared, &mut self.report, &entry.handle, batch.path(entry));
        }
        batch.clear();
        self.spare.push(batch);
        Ok(())
    }
}

/// Change one entry, through the descriptor it was checked and journaled through (a
/// directory's own, a child's `O_PATH` one): what is checked is what is changed, whatever
/// is renamed over the name meanwhile. The descriptor holds the inode, so another hard link
/// made to it since is a link to the tree's own file, not an outside file swapped in.
pub(super) fn apply(shared: &Shared<'_>, report: &mut WalkReport, handle: &Handle, path: &[u8]) {
    let target = shared.options.target;
    let uid = Some(Uid::from_raw(target.uid));
    let gid = Some(Gid::from_raw(target.gid));
    let result = match handle {
        Handle::Dir(dir) => fchown(dir.fd(), uid, gid),
        Handle::Child(fd) => fchownat(
            fd,
            c"",
            uid,
            gid,
            AtFlags::AT_EMPTY_PATH | AtFlags::AT_SYMLINK_NOFOLLOW,
        ),
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
