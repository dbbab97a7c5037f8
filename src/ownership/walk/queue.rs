//! The hand-over queue: opened directories, and parts of a large directory's listing, that
//! a busy walker offers to idle ones.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;

use nix::sys::stat::FileStat;

use super::Shared;
use super::batch::Listing;

#[derive(Default)]
pub(super) struct Queue {
    pub(super) items: VecDeque<Work>,
    /// Workers currently walking (not waiting): the walk is over when none is and no
    /// directory is queued.
    pub(super) busy: usize,
}

/// What a walker hands over.
pub(super) enum Work {
    Dir(Handoff),
    Listed(ListedHandoff),
}

/// Non-directories a walker listed in a directory, for another walker to look at and
/// change (a single folder of many files is then not left to one walker).
pub(super) struct ListedHandoff {
    /// A descriptor of the directory of its own (a `dup` of the lister's).
    pub(super) dir: OwnedFd,
    pub(super) path: Vec<u8>,
    pub(super) depth: usize,
    pub(super) expects_changes: bool,
    pub(super) listing: Listing,
}

/// An opened, checked directory handed to another worker, which changes and walks it.
pub(super) struct Handoff {
    pub(super) fd: OwnedFd,
    pub(super) stat: FileStat,
    pub(super) path: Vec<u8>,
    pub(super) depth: usize,
}

impl Shared<'_> {
    /// Queue `item` for another worker; gives it back when the queue already holds enough
    /// (a few directories per worker keep everyone busy without piling up descriptors).
    pub(super) fn offer(&self, item: Handoff) -> Option<Handoff> {
        if self.workers == 1 {
            return Some(item);
        }
        let mut queue = self.queue.lock().expect("queue lock");
        if queue.items.len() >= self.queue_cap {
            return Some(item);
        }
        queue.items.push_back(Work::Dir(item));
        drop(queue);
        self.wake.notify_one();
        None
    }

    /// Queue listed entries for a walker that is waiting for work; gives them back when
    /// every walker is busy (then the lister looks at them itself, as soon).
    pub(super) fn offer_listing(&self, item: ListedHandoff) -> Option<ListedHandoff> {
        let mut queue = self.queue.lock().expect("queue lock");
        if queue.busy >= self.workers || queue.items.len() >= self.queue_cap {
            return Some(item);
        }
        queue.items.push_back(Work::Listed(item));
        drop(queue);
        self.wake.notify_one();
        None
    }

    /// Queued work, if some is waiting right now.
    pub(super) fn try_next_item(&self) -> Option<Work> {
        if self.failed.load(Ordering::SeqCst) {
            return None;
        }
        self.queue.lock().expect("queue lock").items.pop_front()
    }

    /// Block until work is queued (`Some`) or the walk is over (`None`).
    pub(super) fn next_item(&self) -> Option<Work> {
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
