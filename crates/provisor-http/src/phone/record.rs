//! Contacts and refusals are written in batches by one background task, so a phone's
//! answer never waits for them. The queue is bounded: when the database cannot keep up
//! (or a scanner floods the server), records are dropped and counted, never queued without
//! limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use provisor_domain::phone::{Contact, Refusal};
use provisor_store::Store;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Records waiting for the writer; beyond this they are dropped.
const QUEUE: usize = 8192;
/// Most records one write takes.
const BATCH: usize = 512;

enum Record {
    Contact(Contact),
    Refusal(Refusal),
}

/// The sending side, shared by every request.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Record>,
    dropped: Arc<AtomicU64>,
}

/// The writer task; `finish` writes what is queued and ends it.
pub struct RecorderTask {
    handle: JoinHandle<()>,
}

impl Recorder {
    pub fn spawn(store: Arc<dyn Store>) -> (Recorder, RecorderTask) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let handle = tokio::spawn(write_batches(store, rx));
        (
            Recorder {
                tx,
                dropped: Arc::default(),
            },
            RecorderTask { handle },
        )
    }

    pub fn contact(&self, contact: Contact) {
        self.send(Record::Contact(contact));
    }

    pub fn refusal(&self, refusal: Refusal) {
        self.send(Record::Refusal(refusal));
    }

    /// Records dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn send(&self, record: Record) {
        if self.tx.try_send(record).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl RecorderTask {
    /// Waits (up to `limit`) for the writer to finish once every `Recorder` is gone.
    pub async fn finish(self, limit: Duration) {
        if tokio::time::timeout(limit, self.handle).await.is_err() {
            tracing::warn!("contact records still being written at shutdown; some are lost");
        }
    }
}

async fn write_batches(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Record>) {
    let mut contacts = Vec::with_capacity(BATCH);
    let mut refusals = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(record) = next.take() {
            match record {
                Record::Contact(c) => contacts.push(c),
                Record::Refusal(r) => refusals.push(r),
            }
            if contacts.len() + refusals.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        if let Err(e) = store.record_contacts(&contacts).await {
            tracing::warn!(error = %e, count = contacts.len(), "could not record phone contacts");
        }
        if let Err(e) = store.record_refusals(&refusals).await {
            tracing::warn!(error = %e, count = refusals.len(), "could not record refused fetches");
        }
        contacts.clear();
        refusals.clear();
    }
}
