//! Whether what phones' files are made from may have changed since a node read it: the
//! generation a node's caches are valid for.
//!
//! The database tells every node of a change (migration 0015: on PostgreSQL a notification
//! at commit, on SQLite a counter the node polls), `BaseStore::follow_changes` moves the
//! generation on when it hears of one, and a node also moves it on itself after each write
//! it makes. While a node cannot hear of changes (its listening connection is down) it has
//! no generation, and caches nothing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Changes {
    generation: AtomicU64,
    heard: AtomicBool,
}

impl Changes {
    /// A node that is told of every change (a test's own store, or one process alone).
    pub fn heard() -> Self {
        let changes = Self::default();
        changes.hearing(true);
        changes
    }

    /// The generation what is read now belongs to; `None` while changes may go unheard.
    pub fn current(&self) -> Option<u64> {
        self.heard
            .load(Ordering::Acquire)
            .then(|| self.generation.load(Ordering::Acquire))
    }

    /// Something may have changed: everything read before is out of date.
    pub fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Whether changes are heard from now on. Either way everything read before is out of
    /// date: while they were not, some may have gone unheard.
    pub fn hearing(&self, heard: bool) {
        self.changed();
        self.heard.store(heard, Ordering::Release);
        self.changed();
    }
}

#[cfg(test)]
mod tests {
    use super::Changes;

    #[test]
    fn a_generation_only_while_changes_are_heard_and_a_new_one_after_each() {
        let changes = Changes::default();
        assert_eq!(changes.current(), None);
        changes.hearing(true);
        let first = changes.current().expect("heard");
        changes.changed();
        let second = changes.current().expect("heard");
        assert_ne!(first, second);
        changes.hearing(false);
        assert_eq!(changes.current(), None);
        changes.hearing(true);
        assert!(changes.current().is_some_and(|g| g != second));
    }
}
