//! Every background task of a server, in one place, and the follow-ups that committed
//! changes ask for.
//!
//! What it owns: the loops (the sweeper — reservation expiry, release timeouts, work at
//! disrupted nodes, jeopardy, old idempotency keys —, the webhook relay, the NATS relay,
//! the node-load refresh, the change listener) and [`FollowUp`]: what must happen after a
//! use case commits (backorders to fill when stock rose, work to move off a node that
//! stopped, supply commitments to recompute). What it must never do: hold business rules —
//! each loop calls one use case per pass (`expire_reservations`, `relay_webhooks_once`,
//! `fill_backorders`, …), which tests call directly as the "run now" hooks.
//!
//! Use cases never call another use case after their commit: they return or hand over a
//! [`FollowUp`], and this module runs it — at once when the caller's answer depends on it
//! ([`App::follow_up_now`]), else in the background ([`App::follow_up_later`]; nothing
//! when background work is off, where tests drive every step themselves). Every loop
//! holds only a weak handle and ends when the app is dropped or its store closed.

use std::collections::BTreeSet;
use std::sync::Weak;
use std::sync::atomic::{AtomicBool, Ordering};

use allot_store::{CommitmentRow, FeedEvent};
use tracing::Instrument;

use crate::change_note::ChangeNote;
use crate::nats::{NatsOptions, NatsPass};
use crate::reservations::SWEEP_INTERVAL;
use crate::{App, Inner, Result};

/// Jeopardy moves by the day: the sweeper looks at it every this many sweeps (30 s).
const JEOPARDY_EVERY_SWEEPS: u64 = 60;
/// Old idempotency keys are purged every this many sweeps (an hour).
const IDEMPOTENCY_PURGE_EVERY_SWEEPS: u64 = 7200;

/// What must happen after a committed change.
#[derive(Debug, Default)]
#[must_use]
pub(crate) struct FollowUp {
    /// Orders whose backordered units should be sourced first (their supply arrived).
    pub orders_first: Vec<String>,
    /// SKUs whose stock rose: their backordered orders are sourced, the oldest promise
    /// first (`App::fill_backorders`).
    pub backorders: BTreeSet<String>,
    /// SKUs whose supply commitments are recomputed, with the commitments a closed supply
    /// released (`App::recommit_sku`).
    pub recommit: Vec<(String, Vec<CommitmentRow>)>,
    /// A node stopped being active: its open work moves elsewhere (one batch now, the
    /// sweeper does the rest).
    pub disrupted_nodes: bool,
}

/// The background side of follow-ups: SKUs queued for the backorder fill, and whether a
/// fill runs (one at a time: a burst of feed writes queues its SKUs for the running fill
/// instead of starting fills that would walk the same backlog side by side).
#[derive(Default)]
pub(crate) struct Workers {
    fill_queue: std::sync::Mutex<BTreeSet<String>>,
    fill_running: AtomicBool,
}

impl App {
    /// Runs a follow-up before answering: the caller's answer reflects it. An order that
    /// cannot be filled is logged and the rest goes on; a failed query fails the call.
    pub(crate) async fn follow_up_now(&self, f: FollowUp) -> Result<()> {
        for order_id in &f.orders_first {
            if let Err(e) = self.fill_backorder(order_id).await {
                tracing::warn!(order = %order_id, error = %ErrorChain(&e), "filling a backorder failed");
            }
        }
        if !f.backorders.is_empty() {
            self.fill_backorders(&f.backorders.into_iter().collect::<Vec<_>>()).await?;
        }
        for (sku, released) in &f.recommit {
            self.recommit_sku(sku, released).await?;
        }
        if f.disrupted_nodes {
            self.sweep_disrupted_nodes().await?;
        }
        Ok(())
    }

    /// Hands a follow-up to the background; nothing when background work is off (tests
    /// call the use cases themselves).
    pub(crate) fn follow_up_later(&self, f: FollowUp) {
        if !self.inner.background {
            return;
        }
        if f.disrupted_nodes {
            let app = self.clone();
            tokio::spawn(
                async move {
                    if let Err(e) = app.sweep_disrupted_nodes().await {
                        tracing::warn!(error = %ErrorChain(&e), "moving work off a disrupted node failed");
                    }
                }
                .instrument(tracing::info_span!("disruption")),
            );
        }
        let later = FollowUp { disrupted_nodes: false, ..f };
        if !later.orders_first.is_empty() || !later.recommit.is_empty() {
            let app = self.clone();
            tokio::spawn(
                async move {
                    if let Err(e) = app.follow_up_now(later).await {
                        tracing::warn!(error = %ErrorChain(&e), "a follow-up failed");
                    }
                }
                .instrument(tracing::info_span!("follow_up")),
            );
        } else if !later.backorders.is_empty() {
            self.queue_backorder_fill(later.backorders);
        }
    }

    /// Queues SKUs for the one running backorder fill, starting it when none runs.
    fn queue_backorder_fill(&self, skus: BTreeSet<String>) {
        let workers = &self.inner.workers;
        workers.fill_queue.lock().unwrap_or_else(|p| p.into_inner()).extend(skus);
        if workers.fill_running.swap(true, Ordering::AcqRel) {
            return;
        }
        let app = self.clone();
        tokio::spawn(
            async move {
                let workers = &app.inner.workers;
                loop {
                    let skus: Vec<String> =
                        std::mem::take(&mut *workers.fill_queue.lock().unwrap_or_else(|p| p.into_inner()))
                            .into_iter()
                            .collect();
                    if skus.is_empty() {
                        workers.fill_running.store(false, Ordering::Release);
                        // SKUs queued between the take and the store start the loop again.
                        let queued = !workers.fill_queue.lock().unwrap_or_else(|p| p.into_inner()).is_empty();
                        if queued && !workers.fill_running.swap(true, Ordering::AcqRel) {
                            continue;
                        }
                        break;
                    }
                    if let Err(e) = app.fill_backorders(&skus).await {
                        tracing::warn!(error = %ErrorChain(&e), "filling backorders failed");
                    }
                }
            }
            .instrument(tracing::info_span!("backorder_fill")),
        );
    }

    /// Starts the background loops of a serving process: the sweeper, the webhook relay
    /// and the node-load refresh (the NATS relay starts when configured:
    /// [`App::start_nats_relay`]).
    pub(crate) fn start_workers(&self) {
        tracing::debug!("background work started: sweeper, webhook relay, node-load refresh");
        self.start_sweeper();
        self.start_webhook_relay();
        self.start_node_load_refresher();
    }

    /// Every [`SWEEP_INTERVAL`]: reservations past their expiry expire, fulfillment orders
    /// not accepted in time and work at paused or closed nodes are re-sourced; every 30 s
    /// jeopardy is updated; every hour old idempotency keys are purged.
    fn start_sweeper(&self) {
        let weak = std::sync::Arc::downgrade(&self.inner);
        tokio::spawn(
            async move {
                let mut ticks: u64 = 0;
                loop {
                    tokio::time::sleep(SWEEP_INTERVAL).await;
                    let Some(app) = App::from_weak(&weak) else { break };
                    if let Err(e) = app.sweep_if_due().await {
                        tracing::warn!(error = %ErrorChain(&e), "reservation sweep failed");
                    }
                    if let Err(e) = app.sweep_release_timeouts().await {
                        tracing::warn!(error = %ErrorChain(&e), "fulfillment release-timeout sweep failed");
                    }
                    if let Err(e) = app.sweep_disrupted_nodes().await {
                        tracing::warn!(error = %ErrorChain(&e), "disrupted-node sweep failed");
                    }
                    if ticks.is_multiple_of(JEOPARDY_EVERY_SWEEPS)
                        && let Err(e) = app.sweep_jeopardy().await
                    {
                        tracing::warn!(error = %ErrorChain(&e), "jeopardy sweep failed");
                    }
                    ticks += 1;
                    if ticks % IDEMPOTENCY_PURGE_EVERY_SWEEPS == 1
                        && let Err(e) = app.purge_idempotency_keys().await
                    {
                        tracing::warn!(error = %ErrorChain(&e), "idempotency key purge failed");
                    }
                }
            }
            .instrument(tracing::info_span!("sweeper")),
        );
    }

    /// The webhook relay: passes back to back while there is work, else every `poll`. The
    /// HTTP client is rebuilt when the options change (its resolver holds the egress rules).
    fn start_webhook_relay(&self) {
        crate::webhooks::install_tls_provider();
        let weak: Weak<Inner> = std::sync::Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut current: Option<(crate::WebhookOptions, reqwest::Client)> = None;
            loop {
                let Some(app) = App::from_weak(&weak) else { break };
                let opts = app.webhook_options();
                if current.as_ref().is_none_or(|(o, _)| *o != opts) {
                    match crate::webhooks::relay_client(&opts) {
                        Ok(client) => current = Some((opts.clone(), client)),
                        Err(e) => {
                            tracing::error!(error = %ErrorChain(&e), "webhook relay cannot build its HTTP client; webhooks are not delivered");
                            return;
                        }
                    }
                }
                let Some((_, client)) = &current else { break };
                let busy = match app.relay_webhooks_once(client).await {
                    Ok(n) => n > 0,
                    Err(e) => {
                        tracing::warn!(error = %ErrorChain(&e), "webhook relay pass failed");
                        false
                    }
                };
                drop(app);
                if !busy {
                    tokio::time::sleep(opts.poll).await;
                }
            }
        }.instrument(tracing::info_span!("webhook_relay")));
    }

    /// Keeps each node's assignments of its local day fresh for sourcing, every
    /// [`crate::node_load::NODE_LOAD_REFRESH`].
    fn start_node_load_refresher(&self) {
        let weak = std::sync::Arc::downgrade(&self.inner);
        tokio::spawn(
            async move {
                loop {
                    let Some(app) = App::from_weak(&weak) else { break };
                    if let Err(e) = app.refresh_node_load().await {
                        tracing::warn!(error = %ErrorChain(&e), "node load refresh failed");
                    }
                    drop(app);
                    tokio::time::sleep(crate::node_load::NODE_LOAD_REFRESH).await;
                }
            }
            .instrument(tracing::info_span!("node_load")),
        );
    }

    /// Publishes the outbox to NATS JetStream in the background, from the relay's cursor.
    pub fn start_nats_relay(&self, opts: NatsOptions) {
        crate::webhooks::install_tls_provider();
        let weak: Weak<Inner> = std::sync::Arc::downgrade(&self.inner);
        tokio::spawn(
            async move {
                let mut js: Option<async_nats::jetstream::Context> = None;
                loop {
                    let Some(app) = App::from_weak(&weak) else { break };
                    let context = match &js {
                        Some(c) => c.clone(),
                        None => match crate::nats::connect(&opts).await {
                            Ok(c) => js.insert(c).clone(),
                            Err(e) => {
                                tracing::warn!(error = %e, "NATS relay cannot connect; retrying");
                                drop(app);
                                tokio::time::sleep(opts.poll).await;
                                continue;
                            }
                        },
                    };
                    let busy = match app.publish_to_nats_once(&context, &opts).await {
                        Ok(NatsPass { published, error: None }) => published > 0,
                        Ok(NatsPass { error: Some(e), .. }) => {
                            tracing::warn!(error = %e, "NATS relay pass stopped; retrying from its cursor");
                            false
                        }
                        Err(e) => {
                            tracing::warn!(error = %ErrorChain(&e), "NATS relay pass failed");
                            false
                        }
                    };
                    drop(app);
                    if !busy {
                        tokio::time::sleep(opts.poll).await;
                    }
                }
            }
            .instrument(tracing::info_span!("nats_relay")),
        );
    }

    /// Listens for other servers' change notes (PostgreSQL; nothing on SQLite) and applies
    /// them to the read model; a lost connection or an unreadable note reloads it whole.
    pub(crate) async fn start_change_listener(&self) -> Result<()> {
        let Some(mut feed) = self.inner.store.change_feed().await? else { return Ok(()) };
        let app = self.clone();
        tokio::spawn(async move {
            loop {
                match feed.next().await {
                    FeedEvent::Closed => break,
                    FeedEvent::Resync => {
                        if let Err(e) = app.refresh_all().await {
                            tracing::warn!(error = %ErrorChain(&e), "read model resync failed");
                        }
                    }
                    FeedEvent::Change(payload) => {
                        let Ok(note) = serde_json::from_str::<ChangeNote>(&payload) else {
                            tracing::warn!("unreadable change note; resynchronising");
                            let _ = app.refresh_all().await;
                            continue;
                        };
                        if note.src == app.inner.instance {
                            continue;
                        }
                        if let Err(e) = app.apply_note(&note).await {
                            tracing::warn!(error = %ErrorChain(&e), "applying a change note failed; resynchronising");
                            let _ = app.refresh_all().await;
                        }
                    }
                }
            }
        }.instrument(tracing::info_span!("change_listener")));
        Ok(())
    }
}

/// Displays an error with its whole source chain: a log line names the cause, not only
/// its kind ("storage failure: … connection refused").
pub struct ErrorChain<'a>(pub &'a dyn std::error::Error);

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}
