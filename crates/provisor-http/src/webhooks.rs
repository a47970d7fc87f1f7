//! Delivering events to webhooks: each webhook gets its domain's events POSTed one at a
//! time, in order, from its cursor (the last event it took). The cursor moves only after a
//! 2xx, in the store, so a restart (or a failed attempt) delivers the event again: at least
//! once, with the event id for de-duplication. Failures wait `retry_base` × 2^(n−1), at most
//! `retry_max`; every attempt is in the delivery log.
//!
//! The body is the event as JSON (`id`, `domain`, `kind`, `at`, `payload`). The header
//! `X-Provisor-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" under the
//! webhook's secret>` lets the receiver check it came from here and is fresh.
//!
//! With several nodes on one PostgreSQL, each webhook is delivered by one node at a time:
//! a node claims the webhooks that are due (`claim_webhooks`, a lease of `lease`), renews
//! the lease with each attempt it records, and gives it back after its round. A node that
//! dies holding a lease stops renewing it; when it runs out another node takes the webhook
//! over from its cursor, so an event whose delivery was cut short is sent again, with the
//! same event id.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac as _};
use provisor_store::{DueWebhook, Store, WebhookLease};
use sha2::Sha256;
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Clone, Copy, Debug)]
pub struct WebhookOptions {
    pub retry_base: Duration,
    pub retry_max: Duration,
    pub timeout: Duration,
    /// How often due webhooks are looked for.
    pub poll: Duration,
    /// How long a node's claim on a webhook lasts without an attempt (renewed by each).
    pub lease: Duration,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        Self {
            retry_base: Duration::from_secs(5),
            retry_max: Duration::from_secs(600),
            timeout: Duration::from_secs(10),
            poll: Duration::from_secs(1),
            lease: Duration::from_secs(60),
        }
    }
}

/// Events delivered to one webhook per round before the next webhook's turn.
const PER_ROUND: usize = 50;

/// `t=<timestamp>,v1=<hex HMAC-SHA256("<timestamp>.<body>")>`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as hmac::Mac>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// The delay after the `failures`-th failed attempt.
fn backoff(options: &WebhookOptions, failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    options
        .retry_base
        .saturating_mul(factor)
        .min(options.retry_max)
}

/// Delivers until `stopping` turns true, as node `node` (unique among the nodes sharing
/// the database).
pub fn spawn(
    store: Arc<dyn Store>,
    options: WebhookOptions,
    node: String,
    mut stopping: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let client = match reqwest::Client::builder()
            .timeout(options.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Provisor/", env!("CARGO_PKG_VERSION")))
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "no HTTP client for webhooks; none are delivered");
                return;
            }
        };
        let mut tick = tokio::time::interval(options.poll);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stopping.wait_for(|s| *s) => return,
            }
            let lease_ms = options.lease.as_millis() as i64;
            match store.claim_webhooks(&node, lease_ms, 100).await {
                Ok(due) => {
                    for hook in due {
                        if *stopping.borrow() {
                            // The rest are given back for another node.
                            let _ = store.release_webhook(hook.id, &node).await;
                            continue;
                        }
                        let id = hook.id;
                        let lease = WebhookLease {
                            webhook: id,
                            node: &node,
                            lease_ms,
                        };
                        deliver(store.as_ref(), &client, &options, lease, hook).await;
                        if let Err(e) = store.release_webhook(id, &node).await {
                            tracing::warn!(error = %e, webhook = id, "a webhook's lease could not be given back; it runs out");
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "webhooks could not be looked up"),
            }
        }
    })
}

/// Delivers the webhook's next events in order, stopping at the first failure.
async fn deliver(
    store: &dyn Store,
    client: &reqwest::Client,
    options: &WebhookOptions,
    lease: WebhookLease<'_>,
    hook: DueWebhook,
) {
    let events = match store
        .list_events(hook.domain, hook.cursor, PER_ROUND as u32)
        .await
    {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, webhook = hook.id, "events for a webhook could not be read");
            return;
        }
    };
    let mut failures = hook.failures;
    for event in events {
        let body = serde_json::to_vec(&event).unwrap_or_default();
        let now = chrono::Utc::now();
        let sent = client
            .post(&hook.url)
            .header("content-type", "application/json")
            .header("x-provisor-event", &event.kind)
            .header("x-provisor-event-id", event.id.to_string())
            .header("x-provisor-node", lease.node)
            .header(
                "x-provisor-signature",
                signature(hook.secret.expose(), now.timestamp(), &body),
            )
            .body(body)
            .send()
            .await;
        let (status, error) = match sent {
            Ok(r) if r.status().is_success() => (Some(r.status().as_u16()), String::new()),
            Ok(r) => (
                Some(r.status().as_u16()),
                format!("answered {}", r.status()),
            ),
            Err(e) => (None, e.to_string()),
        };
        let delivered = error.is_empty();
        let retry_at = (!delivered).then(|| {
            failures += 1;
            now.timestamp_millis() + backoff(options, failures).as_millis() as i64
        });
        match store
            .record_delivery(lease, event.id, status, &error, retry_at)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(
                    webhook = hook.id,
                    "a webhook was taken over by another node"
                );
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, webhook = hook.id, "a webhook delivery could not be recorded");
                return;
            }
        }
        if !delivered {
            tracing::info!(
                webhook = hook.id,
                event = event.id,
                error,
                "webhook delivery failed; retrying later"
            );
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_and_backoff() {
        // HMAC-SHA256("key", "1700000000.{}"), as any HMAC library computes it.
        let s = signature("key", 1_700_000_000, b"{}");
        assert!(s.starts_with("t=1700000000,v1="));
        assert_eq!(s.len(), "t=1700000000,v1=".len() + 64);
        assert_ne!(s, signature("other", 1_700_000_000, b"{}"));
        let o = WebhookOptions::default();
        assert_eq!(backoff(&o, 1), Duration::from_secs(5));
        assert_eq!(backoff(&o, 2), Duration::from_secs(10));
        assert_eq!(backoff(&o, 30), Duration::from_secs(600));
    }
}
