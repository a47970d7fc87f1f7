//! Contacts and refusals are written in batches by one background task, so a phone's
//! answer never waits for them. The queue is bounded: when the database cannot keep up
//! (or a scanner floods the server), records are dropped and counted, never queued without
//! limit. The fetches of one phone in one batch (a phone asks for two to four files as it
//! boots) are written as one contact, and a phone that tells nothing new (same address,
//! firmware, vendor and model, no job, nothing first) is written at most once per
//! `every` (60 s by default): `last_contact` has that resolution, and a boot storm's
//! repeated fetches cost no writes.

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
    /// A writer that writes a phone that tells nothing new at most once per `every`.
    pub fn spawn(store: Arc<dyn Store>, every: Duration) -> (Recorder, RecorderTask) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let handle = tokio::spawn(write_batches(store, rx, every));
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

async fn write_batches(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Record>, every: Duration) {
    let mut written = Written::default();
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
        coalesce(&mut contacts);
        let now = std::time::Instant::now();
        contacts.retain(|c| written.news(c, now, every));
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

/// Phones remembered (beyond it, all are forgotten: they are then written once more).
const REMEMBERED: usize = 200_000;

/// What was last written of each phone, and when.
#[derive(Default)]
struct Written(
    std::collections::HashMap<(Option<i64>, provisor_domain::Mac), (std::time::Instant, Told)>,
);

struct Told {
    ip: std::net::IpAddr,
    vendor: String,
    model: String,
    firmware: String,
    provisioned: bool,
}

impl Written {
    /// Whether `c` is to be written: it tells something new (an address, a vendor, model
    /// or firmware it did not tell, a device file for the first time, a job), or what it
    /// tells was last written `every` ago or longer.
    fn news(&mut self, c: &Contact, now: std::time::Instant, every: Duration) -> bool {
        let key = (c.device_id, c.mac);
        let as_before = |kept: &str, told: &str| told.is_empty() || kept == told;
        let last = self.0.get(&key);
        let known = last.is_some_and(|(at, t)| {
            now.duration_since(*at) < every
                && t.ip == c.ip
                && as_before(&t.vendor, &c.vendor)
                && as_before(&t.model, &c.model)
                && as_before(&t.firmware, &c.firmware)
                && (t.provisioned || !c.provisioned)
        });
        if known && c.jobs.is_empty() {
            return false;
        }
        let or_kept = |told: &str, kept: Option<&String>| match (told.is_empty(), kept) {
            (true, Some(k)) => k.clone(),
            _ => told.to_owned(),
        };
        let last = last.map(|(_, t)| t);
        let told = Told {
            ip: c.ip,
            vendor: or_kept(&c.vendor, last.map(|t| &t.vendor)),
            model: or_kept(&c.model, last.map(|t| &t.model)),
            firmware: or_kept(&c.firmware, last.map(|t| &t.firmware)),
            provisioned: c.provisioned || last.is_some_and(|t| t.provisioned),
        };
        if self.0.len() >= REMEMBERED {
            self.0.clear();
        }
        self.0.insert(key, (now, told));
        true
    }
}

/// Merges the contacts of each phone (device, or MAC without one) into its first, in
/// order: the latest time and address, the latest vendor, model and firmware it told, every
/// job its files carried, and provisioned if any fetch was.
fn coalesce(contacts: &mut Vec<Contact>) {
    let mut first = std::collections::HashMap::new();
    let mut merged: Vec<Contact> = Vec::with_capacity(contacts.len());
    for c in contacts.drain(..) {
        let Some(&i) = first.get(&(c.device_id, c.mac)) else {
            first.insert((c.device_id, c.mac), merged.len());
            merged.push(c);
            continue;
        };
        let m: &mut Contact = &mut merged[i];
        m.at = m.at.max(c.at);
        m.ip = c.ip;
        m.provisioned |= c.provisioned;
        for job in c.jobs {
            if !m.jobs.contains(&job) {
                m.jobs.push(job);
            }
        }
        for (kept, told) in [
            (&mut m.vendor, c.vendor),
            (&mut m.model, c.model),
            (&mut m.firmware, c.firmware),
        ] {
            if !told.is_empty() {
                *kept = told;
            }
        }
    }
    *contacts = merged;
}

#[cfg(test)]
mod tests {
    use super::*;
    use provisor_domain::Mac;

    fn contact(mac: &str, device: Option<i64>, file: (&str, bool), at: i64) -> Contact {
        Contact {
            mac: Mac::parse(mac).unwrap(),
            device_id: device,
            jobs: Vec::new(),
            vendor: "yealink".into(),
            model: String::new(),
            firmware: file.0.into(),
            ip: "192.0.2.1".parse().unwrap(),
            at: chrono::DateTime::from_timestamp_millis(at).unwrap(),
            provisioned: file.1,
        }
    }

    #[test]
    fn one_contact_per_phone_and_batch_with_all_it_told() {
        let mut batch = vec![
            contact("001565000001", Some(1), ("", false), 10),
            contact("001565000002", None, ("", false), 11),
            contact("001565000001", Some(1), ("96.86.0.100", true), 12),
            contact("001565000001", Some(1), ("", false), 13),
            contact("001565000002", None, ("2.1", false), 14),
        ];
        batch[0].jobs = vec![7];
        batch[3].jobs = vec![7, 8];
        coalesce(&mut batch);
        assert_eq!(batch.len(), 2);
        let (one, two) = (&batch[0], &batch[1]);
        assert_eq!(one.device_id, Some(1));
        assert_eq!(one.at.timestamp_millis(), 13);
        assert_eq!(one.firmware, "96.86.0.100");
        assert!(one.provisioned);
        assert_eq!(one.jobs, [7, 8]);
        assert_eq!((two.device_id, two.firmware.as_str()), (None, "2.1"));
        assert_eq!(two.at.timestamp_millis(), 14);
    }

    #[test]
    fn a_phone_telling_nothing_new_is_written_once_per_interval() {
        let mut written = Written::default();
        let every = Duration::from_secs(60);
        let t0 = std::time::Instant::now();
        let c = contact("001565000001", Some(1), ("96.86.0.100", true), 10);
        assert!(written.news(&c, t0, every), "the first");
        assert!(
            !written.news(&c, t0 + Duration::from_secs(5), every),
            "nothing new"
        );
        let mut common = c.clone();
        (common.provisioned, common.firmware) = (false, String::new());
        assert!(
            !written.news(&common, t0 + Duration::from_secs(5), every),
            "nothing new"
        );
        let mut moved = c.clone();
        moved.ip = "192.0.2.9".parse().unwrap();
        assert!(
            written.news(&moved, t0 + Duration::from_secs(6), every),
            "a new address"
        );
        let mut upgraded = moved.clone();
        upgraded.firmware = "96.86.0.120".into();
        assert!(
            written.news(&upgraded, t0 + Duration::from_secs(7), every),
            "new firmware"
        );
        let mut checking_in = upgraded.clone();
        checking_in.jobs = vec![3];
        assert!(
            written.news(&checking_in, t0 + Duration::from_secs(8), every),
            "a job"
        );
        assert!(!written.news(&upgraded, t0 + Duration::from_secs(9), every));
        assert!(
            written.news(&upgraded, t0 + Duration::from_secs(70), every),
            "an interval on"
        );
        assert!(
            written.news(&upgraded, t0 + Duration::from_secs(71), Duration::ZERO),
            "every time"
        );
    }
}
