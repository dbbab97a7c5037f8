//! The hand-over queue: opened directories a busy walker offers to idle ones.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;

use nix::sys::stat::FileStat;

use super::Shared;

#[derive(Default)]
pub(super) struct Queue {
    pub(super) items: VecDeque<Handoff>,
    /// Workers currently walking (not waiting): the walk is over when none is and no
    /// directory is queued.
    pub(super) busy: usize,
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
        queue.items.push_back(item);
        drop(queue);
        self.wake.notify_one();
        None
    }

    /// A queued directory, if one is waiting right now.
    pub(super) fn try_next_item(&self) -> Option<Handoff> {
        if self.failed.load(Ordering::SeqCst) {
            return None;
        }
        self.queue.lock().expect("queue lock").items.pop_front()
    }

    /// Block until a directory is queued (`Some`) or the walk is over (`None`).
    pub(super) fn next_item(&self) -> Option<Handoff> {
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
