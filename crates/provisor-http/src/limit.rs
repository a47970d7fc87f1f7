//! Failure limits for guessable secrets (provisioning codes, and the softphone logins
//! that share this limiter): after `failures` failures within `window`, a key (a source
//! IP, a domain, or the whole installation) is locked for `lockout`. Kept in memory on a
//! single node (SQLite), and in the database (`Store::with_limits`, rows held for the
//! change) where several nodes share one PostgreSQL, so an attacker gains nothing by
//! spreading guesses over nodes.
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
use std::sync::{Arc, Mutex};
use std::time::Duration;

use provisor_store::{LimitRow, Store};

/// How many failures a key may have in a window before it is locked, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub failures: u32,
    pub window: Duration,
    pub lockout: Duration,
}

/// Keys beyond which entries whose window has passed are dropped (in memory).
const PRUNE_AT: usize = 100_000;

/// Where the counts are kept.
enum Counts {
    Memory(Mutex<HashMap<String, LimitRow>>),
    Shared(Arc<dyn Store>),
}

pub struct Limiter {
    counts: Counts,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.counts {
            Counts::Memory(_) => "Limiter(memory)",
            Counts::Shared(_) => "Limiter(shared)",
        })
    }
}

impl Default for Limiter {
    fn default() -> Self {
        Self::new()
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// How much longer `row` is locked at `now`, if it is.
fn remaining(row: &LimitRow, now: i64) -> Option<Duration> {
    (row.locked_until > now).then(|| Duration::from_millis((row.locked_until - now) as u64))
}

/// Counts a failure of `row`; true if it is now locked.
fn count(row: &mut LimitRow, limit: Limit, now: i64) -> bool {
    if now - row.since >= ms(limit.window) && row.locked_until <= now {
        row.since = now;
        row.failures = 0;
        row.locked_until = 0;
    }
    row.failures += 1;
    if row.failures >= limit.failures {
        row.locked_until = now.saturating_add(ms(limit.lockout));
        row.failures = 0;
        row.since = now;
        true
    } else {
        false
    }
}

fn fresh(key: &str, now: i64) -> LimitRow {
    LimitRow {
        key: key.to_owned(),
        since: now,
        failures: 0,
        locked_until: 0,
    }
}

impl Limiter {
    /// Counts in this process's memory (one node).
    pub fn new() -> Self {
        Self {
            counts: Counts::Memory(Mutex::new(HashMap::new())),
        }
    }

    /// Counts in the database, shared by every node on it.
    pub fn shared(store: Arc<dyn Store>) -> Self {
        Self {
            counts: Counts::Shared(store),
        }
    }

    /// The rows of `keys` changed by `change` (under one lock, or one transaction); what
    /// `change` returns, or none if the database could not be reached.
    async fn with<R: Send>(
        &self,
        keys: &[String],
        change: impl FnOnce(&mut [LimitRow], i64) -> R + Send,
    ) -> Option<R> {
        let now = now_ms();
        match &self.counts {
            Counts::Memory(map) => {
                let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
                if map.len() >= PRUNE_AT {
                    // A day is longer than any window or lockout the configuration allows.
                    map.retain(|_, r| now - r.since < 86_400_000 || r.locked_until > now);
                }
                let mut rows: Vec<LimitRow> = keys
                    .iter()
                    .map(|k| map.get(k).cloned().unwrap_or_else(|| fresh(k, now)))
                    .collect();
                let out = change(&mut rows, now);
                for r in rows {
                    // (A key read but never counted is not kept.)
                    if r.failures > 0 || r.locked_until > now || map.contains_key(&r.key) {
                        map.insert(r.key.clone(), r);
                    }
                }
                Some(out)
            }
            Counts::Shared(store) => {
                let mut change = Some(change);
                let mut out = None;
                let mut apply = |rows: &mut [LimitRow]| {
                    if let Some(f) = change.take() {
                        out = Some(f(rows, now));
                    }
                };
                match store.with_limits(keys, &mut apply).await {
                    Ok(()) => out,
                    Err(e) => {
                        tracing::warn!(error = %e, "failure limits could not be read or counted");
                        None
                    }
                }
            }
        }
    }

    /// How much longer `key` is locked, if it is. (Locked, briefly, when the shared counts
    /// cannot be read: failing closed.)
    pub async fn locked(&self, key: &str) -> Option<Duration> {
        self.with(&[key.to_owned()], |rows, now| remaining(&rows[0], now))
            .await
            .unwrap_or(Some(Duration::from_secs(1)))
    }

    /// Counts a failure of `key`; true if it is now locked.
    pub async fn fail(&self, key: &str, limit: Limit) -> bool {
        self.with(&[key.to_owned()], |rows, now| {
            count(&mut rows[0], limit, now)
        })
        .await
        .unwrap_or(false)
    }

    /// An attempt that counts against every key ahead of its check: all keys checked and
    /// counted under one lock (one transaction), so attempts at the same moment cannot
    /// slip past together, on this node or another. The lockout left if a key is locked
    /// (nothing counted then), else what each `fail` returned (for `refund`).
    pub async fn attempt(&self, keys: &[(String, Limit)]) -> Result<Vec<bool>, Duration> {
        let names: Vec<String> = keys.iter().map(|(k, _)| k.clone()).collect();
        self.with(&names, |rows, now| {
            if let Some(wait) = rows.iter().find_map(|r| remaining(r, now)) {
                return Err(wait);
            }
            Ok(rows
                .iter_mut()
                .zip(keys)
                .map(|(r, (_, l))| count(r, *l, now))
                .collect())
        })
        .await
        .unwrap_or(Err(Duration::from_secs(1)))
    }

    /// Remembers `key` for `ttl` (a peer that proved itself, say); `remembered` tells.
    /// Shares the counts (and their pruning) with the failures; use keys of their own.
    pub async fn remember(&self, key: &str, ttl: Duration) {
        self.with(&[key.to_owned()], |rows, now| {
            rows[0] = LimitRow {
                key: key.to_owned(),
                since: now,
                failures: 0,
                locked_until: now.saturating_add(ms(ttl)),
            };
        })
        .await;
    }

    pub async fn remembered(&self, key: &str) -> bool {
        self.with(&[key.to_owned()], |rows, now| {
            remaining(&rows[0], now).is_some()
        })
        .await
        .unwrap_or(false)
    }

    /// Takes back a failure counted ahead (`fail` before a slow check that then
    /// succeeded); `locking`: what that `fail` returned.
    pub async fn refund(&self, key: &str, limit: Limit, locking: bool) {
        self.with(&[key.to_owned()], |rows, _| {
            let r = &mut rows[0];
            if locking {
                r.locked_until = 0;
                r.failures = limit.failures.saturating_sub(1);
            } else {
                r.failures = r.failures.saturating_sub(1);
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn locks_after_the_failures_of_a_window() {
        let l = Limiter::new();
        let limit = Limit {
            failures: 3,
            window: Duration::from_secs(60),
            lockout: Duration::from_millis(200),
        };
        assert!(!l.fail("ip:a", limit).await);
        assert!(!l.fail("ip:a", limit).await);
        assert!(l.locked("ip:a").await.is_none());
        assert!(l.fail("ip:a", limit).await);
        assert!(l.locked("ip:a").await.is_some());
        assert!(l.locked("ip:b").await.is_none(), "keys are separate");
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(l.locked("ip:a").await.is_none(), "the lockout ends");
        assert!(!l.fail("ip:a", limit).await, "and counting starts again");
        // A failure counted ahead and taken back, also the one that locked.
        l.refund("ip:a", limit, false).await;
        assert!(!l.fail("ip:a", limit).await);
        assert!(!l.fail("ip:a", limit).await);
        assert!(l.fail("ip:a", limit).await);
        l.refund("ip:a", limit, true).await;
        assert!(l.locked("ip:a").await.is_none());
        assert!(
            l.fail("ip:a", limit).await,
            "and the next failure locks again"
        );
    }
}
