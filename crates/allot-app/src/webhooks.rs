//! Webhooks: endpoints subscribe to event types; a background relay delivers the outbox
//! to them at least once, signed per the Standard Webhooks spec.
//!
//! What it owns: endpoint validation (https only, or `http://127.0.0.1`/`localhost` with
//! `allow_insecure`), the relay loop (fan-out → claim with a lease → send → record), the
//! retry schedule (capped exponential backoff with jitter, persisted as the delivery's next
//! attempt time so a restart loses no retry) and the dead-letter state after
//! [`WebhookOptions::max_attempts`] failures (re-drivable). What it must never do: block
//! a request on an endpoint, or send an event that did not commit (it reads only the
//! outbox, through the same visibility rule as pull consumers).
//!
//! Per endpoint, events of one order are delivered in `seq` order: a delivery waits while
//! an earlier one of the same order is pending (dead ones do not block; a redrive may then
//! deliver them after later events, which the receiver sees by `seq` in the payload).
//!
//! The retry schedule is computed here rather than with `backon`: retries are not a loop
//! in one process but rows with a due time that any replica may pick up.

use std::time::Duration;

use allot_store::{DeliveryCounts, DeliveryRow, StoredEvent, StoredWebhook};
use base64::Engine;
use hmac::{KeyInit, Mac};
use serde_json::json;

use crate::egress::{self, CheckedResolver, EgressRules};
use crate::{App, AppError, FieldError, Result};

/// Longest endpoint URL accepted.
pub const WEBHOOK_URL_MAX: usize = 2000;
/// Most event types one endpoint may list.
pub const WEBHOOK_TYPES_MAX: usize = 100;

/// How the relay behaves. Defaults suit production; tests shorten the times.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookOptions {
    /// Accept `http://127.0.0.1`, `http://[::1]` and `http://localhost` endpoints (tests,
    /// local use; the loopback range must also be in `egress.allow_private`). Otherwise
    /// only `https`.
    pub allow_insecure: bool,
    /// Which addresses deliveries may reach (public ones, plus ranges an operator allows).
    pub egress: EgressRules,
    /// How long one request may take (then it counts as a failure).
    pub timeout: Duration,
    /// Pause between relay passes when there was nothing to do.
    pub poll: Duration,
    /// First retry delay; doubles per failure up to `backoff_cap`.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Failures after which a delivery is dead (kept, re-drivable).
    pub max_attempts: i64,
    /// Deliveries sent per pass, concurrently.
    pub batch: i64,
    /// Events fanned out per endpoint per pass.
    pub fan_out_batch: i64,
}

impl Default for WebhookOptions {
    fn default() -> WebhookOptions {
        WebhookOptions {
            allow_insecure: false,
            egress: EgressRules::default(),
            timeout: Duration::from_secs(10),
            poll: Duration::from_millis(250),
            backoff_base: Duration::from_secs(5),
            backoff_cap: Duration::from_secs(3600),
            max_attempts: 12,
            batch: 32,
            fan_out_batch: 500,
        }
    }
}

/// What an endpoint wants.
#[derive(Debug, Clone)]
pub struct WebhookInput {
    pub url: String,
    /// Event types (`order.created`, …) or `*`.
    pub event_types: Vec<String>,
    /// `whsec_` followed by the base64 of a 24–64 byte key.
    pub secret: String,
}

/// An endpoint as shown (never with its secret) and its delivery counts.
#[derive(Debug, Clone)]
pub struct WebhookInfo {
    pub webhook: StoredWebhook,
    pub counts: DeliveryCounts,
}

/// The key bytes of a `whsec_<base64>` secret.
fn secret_key(secret: &str) -> Option<Vec<u8>> {
    let b64 = secret.strip_prefix("whsec_")?;
    let key = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    (24..=64).contains(&key.len()).then_some(key)
}

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` (Standard Webhooks).
pub fn sign(secret: &str, msg_id: &str, timestamp_s: i64, body: &str) -> Option<String> {
    let key = secret_key(secret)?;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).ok()?;
    mac.update(format!("{msg_id}.{timestamp_s}.{body}").as_bytes());
    Some(format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())))
}

fn check_url(url: &str, opts: &WebhookOptions) -> std::result::Result<(), String> {
    if url.len() > WEBHOOK_URL_MAX {
        return Err(format!("at most {WEBHOOK_URL_MAX} characters"));
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    egress::check_endpoint(&parsed, &opts.egress, opts.allow_insecure)
}

/// The delay before retry number `failures` (1 = after the first failure): base × 2^(n−1),
/// capped, minus up to a quarter at random so endpoints recovering together are not hit
/// by every retry at once.
fn backoff_ms(failures: i64, base: Duration, cap: Duration) -> i64 {
    let base = i64::try_from(base.as_millis()).unwrap_or(i64::MAX);
    let cap = i64::try_from(cap.as_millis()).unwrap_or(i64::MAX);
    let exp = u32::try_from(failures.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let full = base.saturating_mul(1_i64 << exp).min(cap).max(1);
    let mut r = [0u8; 8];
    let jitter = match getrandom::fill(&mut r) {
        Ok(()) => (u64::from_le_bytes(r) % (full as u64 / 4 + 1)) as i64,
        Err(_) => 0,
    };
    full - jitter
}

/// The Standard Webhooks payload of an event.
pub(crate) fn payload(e: &StoredEvent) -> String {
    let at = jiff::Timestamp::from_millisecond(e.at_ms).map(|t| t.to_string()).unwrap_or_default();
    json!({
        "type": e.event_type,
        "timestamp": at,
        "id": e.event_id,
        "seq": e.seq,
        "order_id": e.order_id,
        "node_id": e.node_id,
        "actor": e.actor,
        "version": e.version,
        "data": serde_json::from_str::<serde_json::Value>(&e.data).unwrap_or(serde_json::Value::Null),
    })
    .to_string()
}

impl App {
    pub fn set_webhook_options(&self, options: WebhookOptions) {
        if let Ok(mut o) = self.inner.webhooks.write() {
            *o = options;
        }
    }

    pub(crate) fn webhook_options(&self) -> WebhookOptions {
        self.inner.webhooks.read().map(|o| o.clone()).unwrap_or_default()
    }

    /// Creates or replaces an endpoint. A new endpoint receives events from now on (its
    /// cursor starts at the newest event); replacing keeps its cursor and queue.
    pub async fn put_webhook(&self, id: &str, input: WebhookInput) -> Result<(WebhookInfo, bool)> {
        let mut errors = Vec::new();
        if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            errors.push(FieldError::new("webhook_id", "1–64 characters of A–Z, a–z, 0–9, - _ ."));
        }
        if let Err(m) = check_url(&input.url, &self.webhook_options()) {
            errors.push(FieldError::new("url", m));
        }
        if input.event_types.is_empty() || input.event_types.len() > WEBHOOK_TYPES_MAX {
            errors.push(FieldError::new("event_types", format!("1–{WEBHOOK_TYPES_MAX} event types, or [\"*\"]")));
        }
        let known = crate::events::event_types();
        for (i, t) in input.event_types.iter().enumerate() {
            if t != "*" && !known.contains(t) {
                errors.push(FieldError::new(
                    format!("event_types[{i}]"),
                    format!("{t:?} is not an event type Allot writes; one of: *, {}", known.join(", ")),
                ));
            }
        }
        if secret_key(&input.secret).is_none() {
            errors.push(FieldError::new("secret", "whsec_ followed by the base64 of a 24–64 byte key"));
        }
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        let now = self.now_ms();
        let horizon = self.inner.store.event_horizon().await?;
        let mut types = input.event_types.clone();
        types.sort();
        types.dedup();
        let w = StoredWebhook {
            webhook_id: id.to_owned(),
            url: input.url,
            event_types: types,
            secret: input.secret,
            cursor: horizon,
            created_at_ms: now,
            updated_at_ms: now,
        };
        let mut tx = self.inner.store.begin().await?;
        let created = tx.put_webhook(&w).await?;
        tx.commit().await?;
        Ok((self.webhook(id).await?, created))
    }

    /// Every endpoint with its delivery counts, by id.
    pub async fn webhooks(&self) -> Result<Vec<WebhookInfo>> {
        let mut out = Vec::new();
        for webhook in self.inner.store.webhooks().await? {
            let counts = self.inner.store.delivery_counts(&webhook.webhook_id).await?;
            out.push(WebhookInfo { webhook, counts });
        }
        Ok(out)
    }

    /// Deletes an endpoint and its queue of deliveries (404 when there is none).
    pub async fn delete_webhook(&self, id: &str) -> Result<()> {
        let mut tx = self.inner.store.begin().await?;
        if !tx.delete_webhook(id).await? {
            tx.rollback().await?;
            return Err(AppError::NotFound { what: "webhook", id: id.to_owned() });
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn webhook(&self, id: &str) -> Result<WebhookInfo> {
        let webhook = self
            .inner
            .store
            .webhook(id)
            .await?
            .ok_or_else(|| AppError::NotFound { what: "webhook", id: id.to_owned() })?;
        let counts = self.inner.store.delivery_counts(id).await?;
        Ok(WebhookInfo { webhook, counts })
    }

    /// An endpoint's deliveries (optionally of one status), oldest first.
    pub async fn webhook_deliveries(
        &self,
        id: &str,
        status: Option<&str>,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>> {
        self.webhook(id).await?;
        Ok(self.inner.store.deliveries(id, status, after_seq, limit).await?)
    }

    /// Dead deliveries are tried again from scratch. Answers how many.
    pub async fn redrive_webhook(&self, id: &str) -> Result<u64> {
        self.webhook(id).await?;
        let mut tx = self.inner.store.begin().await?;
        let n = tx.redrive_deliveries(id, self.now_ms()).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// One relay pass: fan new events out to every endpoint, then send one batch of due
    /// deliveries. Answers how many deliveries were attempted.
    pub async fn relay_webhooks_once(&self, client: &reqwest::Client) -> Result<usize> {
        let opts = self.webhook_options();
        let hooks = self.inner.store.webhooks().await?;
        if hooks.is_empty() {
            return Ok(0);
        }
        for w in &hooks {
            self.fan_out(w, &opts).await?;
        }
        let now = self.now_ms();
        let lease_ms = i64::try_from(opts.timeout.as_millis()).unwrap_or(i64::MAX / 2).saturating_mul(2) + 1000;
        let lease_until = now + lease_ms;
        let mut tx = self.inner.store.begin().await?;
        let claimed = tx.claim_deliveries(now, lease_until, opts.batch).await?;
        tx.commit().await?;
        if claimed.is_empty() {
            return Ok(0);
        }
        let seqs: Vec<i64> = claimed.iter().map(|d| d.seq).collect();
        let events = self.inner.store.events_by_seq(&seqs).await?;
        let mut sends = tokio::task::JoinSet::new();
        for d in claimed {
            let Some(w) = hooks.iter().find(|w| w.webhook_id == d.webhook_id).cloned() else { continue };
            let Some(e) = events.iter().find(|e| e.seq == d.seq).cloned() else { continue };
            let (client, timeout, rules) = (client.clone(), opts.timeout, opts.egress.clone());
            sends.spawn(async move {
                let outcome = send(&client, &w, &e, timeout, &rules).await;
                (d, outcome)
            });
        }
        let mut attempted = 0;
        while let Some(joined) = sends.join_next().await {
            let Ok((mut d, outcome)) = joined else { continue };
            attempted += 1;
            let now = self.now_ms();
            d.attempts += 1;
            match outcome {
                Ok(()) => {
                    d.status = "delivered".to_owned();
                    d.delivered_at_ms = Some(now);
                    d.last_error = None;
                }
                Err(error) => {
                    d.last_error = Some(error);
                    if d.attempts >= opts.max_attempts {
                        d.status = "dead".to_owned();
                    } else {
                        d.next_attempt_at_ms = now + backoff_ms(d.attempts, opts.backoff_base, opts.backoff_cap);
                    }
                }
            }
            let mut tx = self.inner.store.begin().await?;
            tx.finish_delivery(&d, lease_until).await?;
            tx.commit().await?;
        }
        Ok(attempted)
    }

    /// Queues an endpoint's new events (visible ones only, as pull consumers see them).
    async fn fan_out(&self, w: &StoredWebhook, opts: &WebhookOptions) -> Result<()> {
        let filter = allot_store::EventFilter { after: w.cursor, limit: opts.fan_out_batch, ..Default::default() };
        let events = self.inner.store.events(&filter).await?;
        let Some(last) = events.last().map(|e| allot_store::EventCursor { tx: e.tx, seq: e.seq }) else {
            return Ok(());
        };
        let all = w.event_types.iter().any(|t| t == "*");
        let rows: Vec<(i64, String, String)> = events
            .iter()
            .filter(|e| all || w.event_types.contains(&e.event_type))
            .map(|e| (e.seq, e.event_id.clone(), e.order_id.clone().unwrap_or_else(|| e.event_id.clone())))
            .collect();
        let mut tx = self.inner.store.begin().await?;
        tx.insert_deliveries(&w.webhook_id, &rows, self.now_ms()).await?;
        tx.advance_webhook_cursor(&w.webhook_id, last).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// The relay's HTTP client: connects only to addresses the egress rules permit (through
/// [`CheckedResolver`]), follows no redirects and uses no proxy from the environment.
pub(crate) fn relay_client(opts: &WebhookOptions) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(std::sync::Arc::new(CheckedResolver::new(opts.egress.clone())))
        .build()
}

/// Installs ring as the process's TLS crypto provider (reqwest is built without one, to
/// keep aws-lc's C build out). Every process that builds an HTTP client calls this first;
/// later calls do nothing.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// What a failed delivery shows: never why a connection failed (that would let an admin
/// probe which internal ports are open), only the HTTP status when there was one.
const DELIVERY_FAILED: &str = "delivery failed";

/// One signed POST; `Err` with the shown reason unless the endpoint answered 2xx in time.
/// The detailed cause is logged at debug level.
async fn send(
    client: &reqwest::Client,
    w: &StoredWebhook,
    e: &StoredEvent,
    timeout: Duration,
    rules: &EgressRules,
) -> std::result::Result<(), String> {
    let url = reqwest::Url::parse(&w.url).map_err(|_| DELIVERY_FAILED.to_owned())?;
    // The client asks the resolver for names only; an address literal is checked here.
    if let Some(ip) = egress::literal_address(&url)
        && !rules.permits(ip)
    {
        tracing::debug!(webhook = %w.webhook_id, "delivery refused: the endpoint's address is not permitted");
        return Err(DELIVERY_FAILED.to_owned());
    }
    let body = payload(e);
    let ts = jiff::Timestamp::now().as_second();
    let signature = sign(&w.secret, &e.event_id, ts, &body).ok_or("the endpoint's secret is unusable")?;
    let resp = client
        .post(url)
        .timeout(timeout)
        .header("content-type", "application/json")
        .header("webhook-id", &e.event_id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await
        .map_err(|err| {
            tracing::debug!(webhook = %w.webhook_id, error = ?err, "delivery failed");
            DELIVERY_FAILED.to_owned()
        })?;
    if resp.status().is_success() { Ok(()) } else { Err(format!("{DELIVERY_FAILED}: HTTP {}", resp.status().as_u16())) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification (its reference libraries'
        // test vector).
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
        assert_eq!(sign("whsec_c2hvcnQ=", "m", 1, "b"), None, "a key under 24 bytes is refused");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_bounded_jitter() {
        let (base, cap) = (Duration::from_secs(5), Duration::from_secs(60));
        for (n, full) in [(1, 5_000), (2, 10_000), (3, 20_000), (4, 40_000), (5, 60_000), (30, 60_000)] {
            let d = backoff_ms(n, base, cap);
            assert!(d <= full && d >= full - full / 4, "failure {n}: {d} not in [{}, {full}]", full - full / 4);
        }
    }
}
