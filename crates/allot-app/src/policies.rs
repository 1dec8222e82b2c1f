//! Routing policies (versioned documents) and sourcing quotes.

use std::sync::Arc;

use allot_core::sourcing::{Decision, OrderToSource, Policy, SearchOptions, source};
use allot_store::{Store, StoredPolicy};

use crate::policy_doc::{DocFormat, canonical_json_and_hash, parse_doc, to_policy};
use crate::{App, AppError, FieldError, Result};

/// A stored policy version with its parsed form.
#[derive(Debug, Clone)]
pub struct LoadedPolicy {
    pub stored: StoredPolicy,
    pub policy: Policy,
}

/// Which policy made a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyStamp {
    pub name: String,
    /// 0 for the built-in policy used before any is activated.
    pub version: i64,
    pub hash: String,
}

/// A policy as shown to callers.
#[derive(Debug, Clone)]
pub struct PolicyInfo {
    pub stored: StoredPolicy,
    pub active: bool,
}

/// A sourcing decision with the stamp of the policy that made it.
#[derive(Debug, Clone)]
pub struct Quote {
    pub decision: Decision,
    pub policy: PolicyStamp,
}

fn parse_stored(stored: &StoredPolicy) -> Result<Policy> {
    let doc = parse_doc(&stored.document, DocFormat::Json).map_err(|e| corrupt(stored, &e))?;
    to_policy(&stored.name, &doc).map_err(|e| corrupt(stored, &e))
}

fn corrupt(stored: &StoredPolicy, e: &[FieldError]) -> AppError {
    AppError::Store(allot_store::StoreError::Corrupt {
        table: "policies",
        detail: format!("{} v{}: {:?}", stored.name, stored.version, e.first().map(|f| &f.message)),
    })
}

/// Every policy as the read model holds them: the latest version of each name, and the
/// active version.
#[derive(Default)]
pub(crate) struct PolicySet {
    pub latest: std::collections::HashMap<String, Arc<LoadedPolicy>>,
    pub active: Option<Arc<LoadedPolicy>>,
}

/// Reads and parses every policy (start-up, and a change note from another server).
pub(crate) async fn load(store: &Store) -> Result<PolicySet> {
    let mut set = PolicySet::default();
    for stored in store.latest_policies().await? {
        let policy = parse_stored(&stored)?;
        set.latest.insert(stored.name.clone(), Arc::new(LoadedPolicy { stored, policy }));
    }
    if let Some((name, version)) = store.active_policy().await?
        && let Some(stored) = store.policy(&name, Some(version)).await?
    {
        let policy = parse_stored(&stored)?;
        set.active = Some(Arc::new(LoadedPolicy { stored, policy }));
    }
    Ok(set)
}

/// The policy used when none is activated: no rules, every default. Built and hashed
/// once (hashing its canonical text on every quote was 7% of a quote's instructions).
fn builtin() -> &'static (Policy, PolicyStamp) {
    static BUILTIN: std::sync::LazyLock<(Policy, PolicyStamp)> = std::sync::LazyLock::new(|| {
        let policy = Policy::default();
        let (_, hash) = canonical_json_and_hash(&policy);
        let stamp = PolicyStamp { name: policy.name.clone(), version: 0, hash };
        (policy, stamp)
    });
    &BUILTIN
}

/// The name of the built-in default policy; no stored policy may take it.
pub const BUILTIN_POLICY: &str = "builtin";

fn check_name(name: &str) -> Result<()> {
    if name == BUILTIN_POLICY {
        return Err(AppError::invalid("name", "builtin is the built-in default policy's name"));
    }
    allot_core::ChannelId::parse(name).map(|_| ()).map_err(|e| AppError::invalid("name", format!("policy name {e}")))
}

impl App {
    /// Stores a policy document as a new version (or returns the latest version unchanged
    /// when the canonical content is identical). Returns it with `true` when a version was
    /// created.
    pub async fn put_policy(&self, name: &str, text: &str, format: DocFormat) -> Result<(PolicyInfo, bool)> {
        check_name(name)?;
        let doc = parse_doc(text, format).map_err(AppError::Invalid)?;
        let policy = to_policy(name, &doc).map_err(AppError::Invalid)?;
        let (document, hash) = canonical_json_and_hash(&policy);
        let mut tx = self.inner.store.begin().await?;
        let latest = tx.lock_latest_policy(name).await?;
        if let Some(latest) = latest.filter(|l| l.hash == hash) {
            tx.rollback().await?;
            let active = self.is_active(&latest);
            return Ok((PolicyInfo { stored: latest, active }, false));
        }
        let version = tx.lock_latest_policy(name).await?.map_or(1, |l| l.version + 1);
        let stored = StoredPolicy { name: name.to_owned(), version, document, hash, created_at_ms: self.now_ms() };
        tx.insert_policy(&stored).await?;
        self.notify(&mut tx, || crate::change_note::ChangeNote { policies: true, ..self.change() }).await?;
        tx.commit().await?;
        let loaded = Arc::new(LoadedPolicy { stored: stored.clone(), policy });
        self.inner.read.update(|m| {
            let newer = m.policies.get(name).is_none_or(|p| p.stored.version < version);
            if newer {
                m.policies.insert(name.to_owned(), loaded);
            }
        });
        let active = self.is_active(&stored);
        Ok((PolicyInfo { stored, active }, true))
    }

    fn is_active(&self, p: &StoredPolicy) -> bool {
        self.inner
            .read
            .read()
            .active_policy
            .as_ref()
            .is_some_and(|a| a.stored.name == p.name && a.stored.version == p.version)
    }

    /// A policy version (the latest when `version` is `None`).
    pub async fn policy(&self, name: &str, version: Option<i64>) -> Result<PolicyInfo> {
        let stored = self.inner.store.policy(name, version).await?.ok_or_else(|| AppError::NotFound {
            what: "policy",
            id: match version {
                Some(v) => format!("{name} version {v}"),
                None => name.to_owned(),
            },
        })?;
        let active = self.is_active(&stored);
        Ok(PolicyInfo { stored, active })
    }

    /// The latest version of every policy.
    pub fn policies(&self) -> Vec<PolicyInfo> {
        let read = self.inner.read.read();
        let mut list: Vec<PolicyInfo> = read
            .policies
            .values()
            .map(|p| PolicyInfo {
                stored: p.stored.clone(),
                active: read
                    .active_policy
                    .as_ref()
                    .is_some_and(|a| a.stored.name == p.stored.name && a.stored.version == p.stored.version),
            })
            .collect();
        list.sort_by(|a, b| a.stored.name.cmp(&b.stored.name));
        list
    }

    /// Whether `role` may source with the policy `name`: admins with any stored policy;
    /// channels with the active one only (a channel's own routing is a rule of the active
    /// policy whose `when` names the channel, which an admin writes).
    pub fn may_choose_policy(&self, role: &crate::Role, name: &str) -> Result<()> {
        match role {
            crate::Role::Admin => Ok(()),
            _ if self.inner.read.read().active_policy.as_ref().is_some_and(|a| a.stored.name == name) => Ok(()),
            _ => Err(AppError::Forbidden { action: "choose a routing policy other than the active one" }),
        }
    }

    /// The stamp of the policy orders and quotes use now: the active version, or the
    /// built-in default (version 0) when none is active.
    pub fn active_policy_stamp(&self) -> PolicyStamp {
        match &self.inner.read.read().active_policy {
            Some(a) => {
                PolicyStamp { name: a.stored.name.clone(), version: a.stored.version, hash: a.stored.hash.clone() }
            }
            None => builtin().1.clone(),
        }
    }

    /// Goes back to the built-in default policy: no stored policy is active. Answers the
    /// built-in policy as a version 0 document.
    pub async fn activate_builtin_policy(&self) -> Result<PolicyInfo> {
        let mut tx = self.inner.store.begin().await?;
        tx.clear_active_policy().await?;
        self.notify(&mut tx, || crate::change_note::ChangeNote { policies: true, ..self.change() }).await?;
        tx.commit().await?;
        self.inner.read.update(|m| m.active_policy = None);
        let (policy, stamp) = builtin();
        let (document, _) = canonical_json_and_hash(policy);
        let stored =
            StoredPolicy { name: stamp.name.clone(), version: 0, document, hash: stamp.hash.clone(), created_at_ms: 0 };
        Ok(PolicyInfo { stored, active: true })
    }

    /// Makes a policy version (the latest when `None`) the one orders and quotes use.
    pub async fn activate_policy(&self, name: &str, version: Option<i64>) -> Result<PolicyInfo> {
        let mut tx = self.inner.store.begin().await?;
        let stored = match version {
            Some(v) => tx.policy_version(name, v).await?,
            None => tx.lock_latest_policy(name).await?,
        };
        let Some(stored) = stored else {
            tx.rollback().await?;
            return Err(AppError::NotFound { what: "policy", id: name.to_owned() });
        };
        tx.set_active_policy(name, stored.version, self.now_ms()).await?;
        self.notify(&mut tx, || crate::change_note::ChangeNote { policies: true, ..self.change() }).await?;
        tx.commit().await?;
        let policy = parse_stored(&stored)?;
        let loaded = Arc::new(LoadedPolicy { stored: stored.clone(), policy });
        self.inner.read.update(|m| m.active_policy = Some(loaded));
        Ok(PolicyInfo { stored, active: true })
    }

    /// Sources an order without reserving anything: the plan orders would get now.
    /// `policy` names a stored policy (its latest version); else the active one; else the
    /// built-in default.
    /// A quote as the API asks for one: the order's limits and currency are checked
    /// first (placement checks them once per order, then plans with [`App::plan`]).
    pub fn quote(&self, order: &OrderToSource, policy: Option<&str>) -> Result<Quote> {
        self.check_limits(order, policy)?;
        self.check_currency(order)?;
        self.plan(order, policy)
    }

    /// The engine's plan for an order already checked (placement's attempts, promises,
    /// reservations, substitutes).
    pub(crate) fn plan(&self, order: &OrderToSource, policy: Option<&str>) -> Result<Quote> {
        self.quote_excluding(order, policy, &[])
    }

    /// A quote that may not use `excluded` nodes (re-sourcing after a node failed).
    /// The eligibility filters the engine would apply to an order of `channel` with
    /// `method` lines under the named policy (else the active one, else the built-in):
    /// what availability shows a channel must agree with what sourcing will sell it.
    pub(crate) fn selling_filters(
        &self,
        channel: Option<&allot_core::ChannelId>,
        policy: Option<&str>,
        method: allot_core::FulfillmentMethod,
    ) -> Result<allot_core::sourcing::Filters> {
        let read = self.inner.read.read();
        let chosen = match policy {
            Some(name) => Some(
                read.policies
                    .get(name)
                    .cloned()
                    .ok_or_else(|| AppError::invalid("policy", format!("unknown policy {name}")))?,
            ),
            None => read.active_policy.clone(),
        };
        let facts =
            allot_core::sourcing::OrderFacts { channel: channel.cloned(), methods: vec![method], ..Default::default() };
        Ok(match chosen {
            Some(p) => p.policy.select(&facts).1.filters.clone(),
            None => builtin().0.select(&facts).1.filters.clone(),
        })
    }

    pub(crate) fn quote_excluding(
        &self,
        order: &OrderToSource,
        policy: Option<&str>,
        excluded: &[allot_core::NodeId],
    ) -> Result<Quote> {
        let read = self.inner.read.read();
        let mut errors = Vec::new();
        for (i, line) in order.lines.iter().enumerate() {
            if read.item(line.sku.as_str()).is_none() {
                errors.push(FieldError::new(format!("lines[{i}].sku"), format!("unknown SKU {}", line.sku)));
            }
            if let Some(node) = &line.pickup_node {
                match read.node(node.as_str()) {
                    None => errors
                        .push(FieldError::new(format!("lines[{i}].pickup_node_id"), format!("unknown node {node}"))),
                    Some(n) if !n.node.has(line.method.required_capability()) => errors.push(FieldError::new(
                        format!("lines[{i}].pickup_node_id"),
                        format!("node {node} cannot do {}", line.method),
                    )),
                    Some(_) => {}
                }
            }
        }
        let chosen = match policy {
            Some(name) => match read.policies.get(name) {
                Some(p) => Some(p.clone()),
                None => {
                    errors.push(FieldError::new("policy", format!("unknown policy {name}")));
                    None
                }
            },
            None => read.active_policy.clone(),
        };
        if !errors.is_empty() {
            return Err(AppError::Invalid(errors));
        }
        // Borrowed, not cloned: a quote copies a policy only to exclude nodes from it.
        let (policy, stamp) = match &chosen {
            Some(p) => (
                &p.policy,
                PolicyStamp { name: p.stored.name.clone(), version: p.stored.version, hash: p.stored.hash.clone() },
            ),
            None => (&builtin().0, builtin().1.clone()),
        };
        let excluding;
        let policy = if excluded.is_empty() {
            policy
        } else {
            excluding = policy.excluding(excluded);
            &excluding
        };
        let decision = source(order, &*read, policy, &SearchOptions::default());
        Ok(Quote { decision, policy: stamp })
    }

    /// Runs `f` on the named policy (else the active one, else the built-in); an unknown
    /// name is a 422 on `policy`.
    fn with_policy<T>(
        &self,
        name: Option<&str>,
        f: impl FnOnce(&Policy, &crate::read_model::ReadModel) -> T,
    ) -> Result<T> {
        let read = self.inner.read.read();
        let chosen = match name {
            Some(n) => Some(
                read.policies
                    .get(n)
                    .cloned()
                    .ok_or_else(|| AppError::invalid("policy", format!("unknown policy {n}")))?,
            ),
            None => read.active_policy.clone(),
        };
        Ok(match chosen {
            Some(p) => f(&p.policy, &read),
            None => f(&builtin().0, &read),
        })
    }

    /// What a node's rejection for `reason` does with its units, by the active policy
    /// (like `accept_within_minutes`, the policy in force when the node acts).
    pub(crate) fn reject_stock(&self, reason: &str) -> allot_core::sourcing::RejectStock {
        self.with_policy(None, |p, _| p.stock_after_reject(reason))
            .unwrap_or_else(|_| allot_core::sourcing::RejectStock::default_for(reason))
    }

    /// Refuses (422) an order in a currency no node costs in: Allot does not convert
    /// currencies, and never adds costs in two of them (nodes in other currencies are left
    /// out of an order's sourcing as `other_currency`).
    pub(crate) fn check_currency(&self, order: &OrderToSource) -> Result<()> {
        let Some(currency) = order.currency else { return Ok(()) };
        let read = self.inner.read.read();
        if read.node_slots.is_empty() || read.node_slots.iter().any(|n| n.costs.currency == currency) {
            return Ok(());
        }
        let mut others: Vec<&str> = read.node_slots.iter().map(|n| n.costs.currency.code()).collect();
        others.sort_unstable();
        others.dedup();
        Err(AppError::invalid(
            "currency",
            format!(
                "no node costs in {}; nodes cost in {} (Allot does not convert currencies)",
                currency.code(),
                others.join(", ")
            ),
        ))
    }

    /// Refuses (422) an order that asks for more units than the policy allows
    /// (`limits`: 10,000 per line unless the policy says otherwise), before any sourcing.
    pub(crate) fn check_limits(&self, order: &OrderToSource, policy: Option<&str>) -> Result<()> {
        let quantities: Vec<u64> = order.lines.iter().map(|l| l.quantity.get()).collect();
        // An unknown policy is reported by the quote, with every other problem.
        let Ok(problems) = self.with_policy(policy, |p, _| p.limits.check(&quantities)) else { return Ok(()) };
        if problems.is_empty() {
            return Ok(());
        }
        Err(AppError::Invalid(problems.into_iter().map(|(f, m)| FieldError::new(f, m)).collect()))
    }

    /// Whether the policy's hold rules ask whether an order is the customer's first.
    pub(crate) fn holds_need_history(&self, policy: Option<&str>) -> Result<bool> {
        // An unknown policy is reported by the quote, with every other problem.
        Ok(self.with_policy(policy, |p, _| p.holds_need_history()).unwrap_or(false))
    }

    /// The holds the policy's hold rules place on this order at capture, each placed by
    /// `policy:<policy>/<rule>` with the rule's reason.
    pub(crate) fn policy_holds(
        &self,
        order: &OrderToSource,
        policy: Option<&str>,
        first_order: bool,
    ) -> Result<Vec<crate::HoldNote>> {
        // An unknown policy is reported by the quote, with every other problem.
        let holds = self.with_policy(policy, |p, read| {
            if p.holds.is_empty() {
                return Vec::new();
            }
            let hazmat = order.lines.iter().any(|l| read.item(l.sku.as_str()).is_some_and(|i| i.item.hazmat));
            let facts =
                allot_core::sourcing::OrderFacts { first_order, ..allot_core::sourcing::OrderFacts::of(order, hazmat) };
            p.holds_for(&facts)
                .into_iter()
                .map(|r| crate::HoldNote {
                    hold: r.hold,
                    reason: Some(r.reason.clone()),
                    placed_by: format!("policy:{}/{}", p.name, r.name),
                })
                .collect()
        });
        Ok(holds.unwrap_or_default())
    }
}
