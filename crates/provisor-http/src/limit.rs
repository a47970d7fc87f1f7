//! Failure limits for guessable secrets (provisioning codes, and the softphone logins
//! that share this limiter): after `failures` failures within `window`, a key (a source
//! IP, a domain, or the whole installation) is locked for `lockout`. Kept in memory, per
//! node.
//!
//! The arithmetic, with the defaults (10 failures per IP and 100 for the installation per
//! 10 minutes, then 15 minutes locked): whatever the number of source IPs, at most 100
//! wrong codes are tried per 10 minutes, 14,400 per day. A code is one of 10^12 values,
//! so with L live codes a day of guessing succeeds with a chance of at most
//! 14,400 × L / 10^12: 1.4 × 10^-6 for 100 live 10-minute codes, and for a rollout of
//! 10,000 codes valid 7 days, 7 × 1.44 × 10^-4 ≈ 0.1 % over its whole life. The price of
//! the installation-wide limit is that a flood of wrong codes makes everyone wait out the
//! lockout; operators who prefer otherwise raise `code_failures_total`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many failures a key may have in a window before it is locked, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub failures: u32,
    pub window: Duration,
    pub lockout: Duration,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    since: Instant,
    failures: u32,
    locked_until: Option<Instant>,
}

/// Keys beyond which entries whose window has passed are dropped.
const PRUNE_AT: usize = 100_000;

#[derive(Debug)]
pub struct Limiter {
    entries: Mutex<HashMap<String, Entry>>,
}

impl Default for Limiter {
    fn default() -> Self {
        Self::new()
    }
}

impl Limiter {
    pub fn new() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How much longer `key` is locked, if it is.
    pub fn locked(&self, key: &str) -> Option<Duration> {
        remaining(&self.entries(), key, Instant::now())
    }

    /// Counts a failure of `key`; true if it is now locked.
    pub fn fail(&self, key: &str, limit: Limit) -> bool {
        count(&mut self.entries(), key, limit, Instant::now())
    }
}

/// How much longer `key` is locked at `now`, if it is.
fn remaining(entries: &HashMap<String, Entry>, key: &str, now: Instant) -> Option<Duration> {
    entries
        .get(key)
        .and_then(|e| e.locked_until)
        .and_then(|until| until.checked_duration_since(now))
        .filter(|d| !d.is_zero())
}

fn count(entries: &mut HashMap<String, Entry>, key: &str, limit: Limit, now: Instant) -> bool {
    if entries.len() >= PRUNE_AT {
        entries.retain(|_, e| {
            now.duration_since(e.since) < limit.window || e.locked_until.is_some_and(|u| u > now)
        });
    }
    let e = entries.entry(key.to_owned()).or_insert(Entry {
        since: now,
        failures: 0,
        locked_until: None,
    });
    if now.duration_since(e.since) >= limit.window && e.locked_until.is_none_or(|u| u <= now) {
        *e = Entry {
            since: now,
            failures: 0,
            locked_until: None,
        };
    }
    e.failures += 1;
    if e.failures >= limit.failures {
        e.locked_until = Some(now + limit.lockout);
        e.failures = 0;
        e.since = now;
        true
    } else {
        false
    }
}

impl Limiter {
    /// An attempt that counts against every key ahead of its check: all keys checked and
    /// counted under one lock, so attempts at the same moment cannot slip past together.
    /// The lockout left if a key is locked (nothing counted then), else what each `fail`
    /// returned (for `refund`).
    pub fn attempt(&self, keys: &[(String, Limit)]) -> Result<Vec<bool>, Duration> {
        let now = Instant::now();
        let mut entries = self.entries();
        if let Some(wait) = keys.iter().find_map(|(k, _)| remaining(&entries, k, now)) {
            return Err(wait);
        }
        Ok(keys
            .iter()
            .map(|(k, l)| count(&mut entries, k, *l, now))
            .collect())
    }

    /// Remembers `key` for `ttl` (a peer that proved itself, say); `remembered` tells.
    /// Shares the map (and its pruning) with the failure counts; use keys of their own.
    pub fn remember(&self, key: &str, ttl: Duration) {
        let now = Instant::now();
        self.entries().insert(
            key.to_owned(),
            Entry {
                since: now,
                failures: 0,
                locked_until: Some(now + ttl),
            },
        );
    }

    pub fn remembered(&self, key: &str) -> bool {
        self.locked(key).is_some()
    }

    /// Takes back a failure counted ahead (`fail` before a slow check that then
    /// succeeded); `locking`: what that `fail` returned.
    pub fn refund(&self, key: &str, limit: Limit, locking: bool) {
        if let Some(e) = self.entries().get_mut(key) {
            if locking {
                e.locked_until = None;
                e.failures = limit.failures.saturating_sub(1);
            } else {
                e.failures = e.failures.saturating_sub(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_the_failures_of_a_window() {
        let l = Limiter::new();
        let limit = Limit {
            failures: 3,
            window: Duration::from_secs(60),
            lockout: Duration::from_millis(200),
        };
        assert!(!l.fail("ip:a", limit));
        assert!(!l.fail("ip:a", limit));
        assert!(l.locked("ip:a").is_none());
        assert!(l.fail("ip:a", limit));
        assert!(l.locked("ip:a").is_some());
        assert!(l.locked("ip:b").is_none(), "keys are separate");
        std::thread::sleep(Duration::from_millis(250));
        assert!(l.locked("ip:a").is_none(), "the lockout ends");
        assert!(!l.fail("ip:a", limit), "and counting starts again");
        // A failure counted ahead and taken back, also the one that locked.
        l.refund("ip:a", limit, false);
        assert!(!l.fail("ip:a", limit));
        assert!(!l.fail("ip:a", limit));
        assert!(l.fail("ip:a", limit));
        l.refund("ip:a", limit, true);
        assert!(l.locked("ip:a").is_none());
        assert!(l.fail("ip:a", limit), "and the next failure locks again");
    }
}
