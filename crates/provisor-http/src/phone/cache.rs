//! What a node keeps between phones' fetches, so that a boot storm costs neither a
//! database read nor a rendering per request: devices by the digest of their token and by
//! MAC (and that a MAC has none, so a known and an unknown MAC cost alike), and the files
//! made for them (and the files without secrets anyone gets).
//!
//! Each entry belongs to the `Changes` generation current before it was read; a later
//! generation makes it a miss, so a change (through any node or the CLI) costs no
//! re-rendering until a phone asks again. While changes cannot be heard there is no
//! generation and nothing is read from or put in the cache. Bounded in bytes, evicting the
//! least useful (quick_cache's S3-FIFO).

use std::sync::Arc;

use axum::body::Bytes;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use provisor_domain::Mac;
use provisor_domain::phone::PhoneDevice;
use provisor_store::Changes;
use quick_cache::Weighter;
use quick_cache::sync::Cache;

/// A file as it is sent: body, ETag, content type.
#[derive(Debug)]
pub struct Made {
    pub body: Bytes,
    pub etag: String,
    pub xml: bool,
}

impl Made {
    pub fn new(body: String, template: &str) -> Self {
        let etag = format!("\"{}\"", &provisor_domain::token::digest(&body)[..32]);
        Made {
            body: Bytes::from(body),
            etag,
            xml: template.ends_with(".xml") || template.ends_with(".htm"),
        }
    }
}

/// Which file: for whom (the device's token digest; empty for a common file), from which
/// vendor's template, for the model and firmware the file is made for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FileKey {
    pub device: String,
    pub vendor: String,
    pub template: String,
    pub mac: Option<Mac>,
    pub model: String,
    pub firmware: String,
}

/// How a device is looked up.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DeviceKey {
    /// The SHA-256 digest of its token.
    Token(String),
    Mac(Mac),
}

#[derive(Clone, Debug)]
struct Entry<T> {
    generation: u64,
    /// Bytes it holds, about: reckoned once, when it is put in.
    weight: u64,
    value: T,
}

#[derive(Clone)]
struct ByWeight;

impl<K, T> Weighter<K, Arc<Entry<T>>> for ByWeight {
    fn weight(&self, _key: &K, entry: &Arc<Entry<T>>) -> u64 {
        entry.weight
    }
}

type Bounded<K, T> = Cache<K, Arc<Entry<T>>, ByWeight>;

/// A device, or that there is none.
pub type Found = Option<Arc<PhoneDevice>>;

/// A lookup in the cache, for `provisor_phone_cache_lookups_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Lookup {
    /// `device` or `file`.
    pub kind: &'static str,
    /// `hit` or `miss`.
    pub result: &'static str,
}

pub type Lookups = Family<Lookup, Counter>;

pub struct PhoneCache {
    changes: Arc<Changes>,
    devices: Option<Bounded<DeviceKey, Found>>,
    files: Option<Bounded<FileKey, Arc<Made>>>,
    lookups: Lookups,
}

impl PhoneCache {
    /// A cache of at most about `bytes` (none at all with 0), valid for `changes`.
    pub fn new(changes: Arc<Changes>, bytes: u64) -> Self {
        if bytes == 0 {
            return Self::off(changes);
        }
        // About 8 KiB a device with its files: half the bytes for devices, half for files.
        let items = (bytes / 8192).max(16) as usize;
        PhoneCache {
            changes,
            devices: Some(Cache::with_weighter(items, bytes / 2, ByWeight)),
            files: Some(Cache::with_weighter(items * 2, bytes / 2, ByWeight)),
            lookups: Lookups::default(),
        }
    }

    /// No cache: every fetch reads the database and renders.
    pub fn off(changes: Arc<Changes>) -> Self {
        PhoneCache {
            changes,
            devices: None,
            files: None,
            lookups: Lookups::default(),
        }
    }

    pub fn changes(&self) -> &Arc<Changes> {
        &self.changes
    }

    pub fn lookups(&self) -> &Lookups {
        &self.lookups
    }

    /// What `cache` holds of `key` for the current generation, counted.
    fn look<K: std::hash::Hash + Eq, T: Clone>(
        &self,
        kind: &'static str,
        cache: Option<&Bounded<K, T>>,
        key: &K,
    ) -> Option<T> {
        let (cache, now) = (cache?, self.changes.current()?);
        let found = cache
            .get(key)
            .and_then(|entry| (entry.generation == now).then(|| entry.value.clone()));
        let result = if found.is_some() { "hit" } else { "miss" };
        self.lookups.get_or_create(&Lookup { kind, result }).inc();
        found
    }

    /// The generation to read under now: `None` when nothing may be cached.
    pub fn generation(&self) -> Option<u64> {
        self.devices.as_ref().and(self.changes.current())
    }

    /// What is known of the device `key` finds: `None` if nothing, `Some(None)` that there
    /// is none.
    pub fn device(&self, key: &DeviceKey) -> Option<Found> {
        self.look("device", self.devices.as_ref(), key)
    }

    /// Keeps what `key` found (`found`), read under `generation`.
    pub fn keep_device(&self, generation: Option<u64>, key: DeviceKey, found: Found) {
        let (Some(devices), Some(generation)) = (&self.devices, generation) else {
            return;
        };
        let weight = found.as_deref().map_or(64, device_weight);
        devices.insert(
            key,
            Arc::new(Entry {
                generation,
                weight,
                value: found,
            }),
        );
    }

    /// Forgets a device (it changed in a way this node made itself).
    pub fn forget_device(&self, device: &PhoneDevice) {
        if let Some(devices) = &self.devices {
            devices.remove(&DeviceKey::Mac(device.mac));
            devices.remove(&DeviceKey::Token(provisor_domain::token::digest(
                device.token.expose(),
            )));
        }
    }

    pub fn file(&self, key: &FileKey) -> Option<Arc<Made>> {
        self.look("file", self.files.as_ref(), key)
    }

    pub fn keep_file(&self, generation: Option<u64>, key: FileKey, made: Arc<Made>) {
        let (Some(files), Some(generation)) = (&self.files, generation) else {
            return;
        };
        let weight = (made.body.len() + made.etag.len() + 256) as u64;
        files.insert(
            key,
            Arc::new(Entry {
                generation,
                weight,
                value: made,
            }),
        );
    }
}

/// After a write through the API or the console this node's cache is out of date at once
/// (other nodes hear of it from the database).
pub async fn note_writes(
    axum::extract::State(st): axum::extract::State<crate::AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::Method;
    let writes = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let response = next.run(request).await;
    if writes {
        st.phones.cache().changes().changed();
    }
    response
}

/// About the bytes a device holds: its stored templates, lines and settings.
fn device_weight(d: &PhoneDevice) -> u64 {
    let templates: usize = d.templates.iter().map(|t| t.source.len() + 128).sum();
    let settings: usize = d
        .layers
        .iter()
        .map(|l| serde_json::to_vec(l).map_or(0, |v| v.len()))
        .sum();
    (1024 + templates + settings + d.lines.len() * 256) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(device: &str) -> FileKey {
        FileKey {
            device: device.into(),
            vendor: "yealink".into(),
            template: "mac.cfg".into(),
            mac: None,
            model: "T54W".into(),
            firmware: String::new(),
        }
    }

    #[test]
    fn an_entry_read_before_a_change_is_a_miss_after_it() {
        let changes = Arc::new(Changes::heard());
        let cache = PhoneCache::new(changes.clone(), 1 << 20);
        let read_under = cache.generation();
        cache.keep_file(
            read_under,
            key("a"),
            Arc::new(Made::new("x=1".into(), "mac.cfg")),
        );
        assert_eq!(&cache.file(&key("a")).expect("kept").body[..], b"x=1");
        assert!(cache.file(&key("b")).is_none());
        changes.changed();
        assert!(cache.file(&key("a")).is_none(), "stale after a change");
    }

    #[test]
    fn nothing_is_kept_or_served_while_changes_go_unheard() {
        let changes = Arc::new(Changes::heard());
        let cache = PhoneCache::new(changes.clone(), 1 << 20);
        let mac = DeviceKey::Mac(Mac::parse("001565000001").unwrap());
        cache.keep_device(cache.generation(), mac.clone(), None);
        assert!(
            matches!(cache.device(&mac), Some(None)),
            "known to have none"
        );
        changes.hearing(false);
        assert_eq!(cache.generation(), None);
        assert!(cache.device(&mac).is_none());
        cache.keep_device(cache.generation(), mac.clone(), None);
        changes.hearing(true);
        assert!(
            cache.device(&mac).is_none(),
            "what was read unheard is not kept"
        );
    }

    #[test]
    fn bounded_in_bytes() {
        let cache = PhoneCache::new(Arc::new(Changes::heard()), 64 * 1024);
        let generation = cache.generation();
        for i in 0..1000 {
            let made = Arc::new(Made::new("x".repeat(1000), "mac.cfg"));
            cache.keep_file(generation, key(&i.to_string()), made);
        }
        let kept = (0..1000)
            .filter(|i| cache.file(&key(&i.to_string())).is_some())
            .count();
        assert!(kept < 40, "{kept} files of 1.2 KB kept in 32 KB");
        assert!(kept > 0);
    }

    #[test]
    fn off_keeps_nothing() {
        let cache = PhoneCache::new(Arc::new(Changes::heard()), 0);
        assert_eq!(cache.generation(), None);
        cache.keep_file(Some(0), key("a"), Arc::new(Made::new("x".into(), "a.cfg")));
        assert!(cache.file(&key("a")).is_none());
    }
}
