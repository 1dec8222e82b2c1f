//! The policy document: how teams write routing policies (JSON or TOML), and its one-time
//! parsing into the core's [`Policy`]. Every field is optional with the core's default;
//! unknown fields are rejected; every problem is reported with its path.
//!
//! The stored form is the canonical JSON of the parsed policy with every default written
//! out; its SHA-256 is the policy's content hash, stamped on every decision.

use allot_core::network::NodeType;
use allot_core::sourcing::{
    Condition, Constraints, CostModel, Filters, HoldRule, JeopardyAction, OrderLimits, Policy, RejectStock, Rule,
    RuleBody, ShippingZone, TransitSource,
};
use allot_core::{ChannelId, FulfillmentMethod, HoldKind, NodeId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::FieldError;

/// Largest policy document accepted, in bytes.
pub const POLICY_DOC_MAX_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDoc {
    /// Optional in the body of `PUT /v1/policies/{name}` (the path names it); if given it
    /// must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub rules: Vec<RuleDoc>,
    #[serde(default)]
    pub fallback: Option<BodyDoc>,
    /// Minutes a node has to accept released work before it is re-sourced; absent: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept_within_minutes: Option<u32>,
    /// What the jeopardy sweep does for promised lines at risk or late: `notify_only`
    /// (absent: the default), `reroute_if_not_accepted`, `upgrade_service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jeopardy_action: Option<String>,
    /// Where promised transit times come from: `table` (absent: the default) or
    /// `observed_p90` (a lane's learned 90th percentile once it has 30 deliveries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transit: Option<String>,
    /// Holds placed on matching orders at capture (each rule: `name`, `hold`, `reason`,
    /// `when` with the same conditions as a routing rule plus `ship_to_not_billing`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<HoldRuleDoc>,
    /// What a rejection does with the node's units, by reason: `release` (back to ATP),
    /// `write_off` or `quarantine`. Default: `not_found` → write_off, `damaged` →
    /// quarantine, anything else → release.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub reject_reasons: std::collections::BTreeMap<String, String>,
    /// Units one order may ask for (default: 10,000 per line, no order total).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsDoc>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldRuleDoc {
    pub name: String,
    /// fraud, fraud_review, payment, address, manual.
    pub hold: String,
    pub reason: String,
    #[serde(default)]
    pub when: ConditionDoc,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_units_per_line: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_units_per_order: Option<u64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDoc {
    pub name: String,
    #[serde(default)]
    pub when: ConditionDoc,
    #[serde(default)]
    pub filters: FiltersDoc,
    #[serde(default)]
    pub constraints: ConstraintsDoc,
    #[serde(default)]
    pub cost: CostDoc,
}

/// A rule without a condition (the fallback).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BodyDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub filters: FiltersDoc,
    #[serde(default)]
    pub constraints: ConstraintsDoc,
    #[serde(default)]
    pub cost: CostDoc,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_tier: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_level: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_value_min_minor: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_value_max_minor: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub any_hazmat: Option<bool>,
    /// `true`: only orders billed in another country than they ship to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ship_to_not_billing: Option<bool>,
    /// `true`: only the customer's first order (by e-mail). Hold rules only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_order: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FiltersDoc {
    /// Default: all node types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_types: Option<Vec<String>>,
    /// Default: none (the last shipping zone bounds distance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_distance_km: Option<f64>,
    #[serde(default)]
    pub exclude_nodes: Vec<String>,
    /// Default 0.
    #[serde(default)]
    pub store_protection_units: u64,
    /// Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub respect_capacity: Option<bool>,
    /// Default `["dc"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hazmat_node_types: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConstraintsDoc {
    /// Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_nodes: Option<u32>,
    /// Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_partial: Option<bool>,
    /// Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_backorder: Option<bool>,
    /// Only nodes that deliver by a promised date may ship a promised order. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub must_meet_promise: Option<bool>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneDoc {
    pub max_km: f64,
    #[serde(default)]
    pub base_minor: i64,
    #[serde(default)]
    pub per_kg_minor: i64,
}

/// Omitted terms take [`CostModel::default`]'s values.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostDoc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping_zones: Option<Vec<ZoneDoc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_penalty_minor: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_penalty_minor: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backorder_penalty_minor: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unfilled_penalty_minor: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_penalty_minor_per_day: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emissions_minor_per_kg_co2: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub co2_g_per_kg_km: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aging_bonus_minor: Option<i64>,
}

/// Refuses control characters (other than tab and line breaks) in every string and key
/// of a document, naming each offending field: text in documents is prose for people, and
/// NUL in particular cannot be stored by PostgreSQL.
pub fn check_document_text(value: &serde_json::Value) -> Result<(), Vec<FieldError>> {
    fn walk(v: &serde_json::Value, at: &str, errors: &mut Vec<FieldError>) {
        let field = |name: &str| if at.is_empty() { name.to_owned() } else { format!("{at}.{name}") };
        match v {
            serde_json::Value::String(s) => {
                if let Err(e) = allot_core::text::check_prose(s, usize::MAX) {
                    errors.push(FieldError::new(at, e.to_string()));
                }
            }
            serde_json::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, &format!("{at}[{i}]"), errors);
                }
            }
            serde_json::Value::Object(map) => {
                for (k, item) in map {
                    if let Err(e) = allot_core::text::check_prose(k, usize::MAX) {
                        errors.push(FieldError::new(field(k), e.to_string()));
                    }
                    walk(item, &field(k), errors);
                }
            }
            _ => {}
        }
    }
    let mut errors = Vec::new();
    walk(value, "", &mut errors);
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// The format of a policy document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocFormat {
    Json,
    Toml,
}

/// Parses a policy document (syntax and field names).
pub fn parse_doc(text: &str, format: DocFormat) -> Result<PolicyDoc, Vec<FieldError>> {
    if text.len() > POLICY_DOC_MAX_BYTES {
        return Err(vec![FieldError::new("", format!("policy larger than {POLICY_DOC_MAX_BYTES} bytes"))]);
    }
    let doc: PolicyDoc = match format {
        DocFormat::Json => {
            let de = &mut serde_json::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de)
                .map_err(|e| vec![FieldError::new(e.path().to_string(), e.into_inner().to_string())])?
        }
        DocFormat::Toml => toml::from_str::<PolicyDoc>(text).map_err(|e| {
            vec![FieldError::new(
                "",
                e.message().to_owned() + &e.span().map(|s| format!(" (at byte {})", s.start)).unwrap_or_default(),
            )]
        })?,
    };
    check_document_text(&serde_json::to_value(&doc).unwrap_or_default())?;
    Ok(doc)
}

fn enum_list<T>(
    errors: &mut Vec<FieldError>,
    at: &str,
    values: &[String],
    parse: impl Fn(&str) -> Option<T>,
    expected: &str,
) -> Vec<T> {
    values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| {
            let parsed = parse(v);
            if parsed.is_none() {
                errors.push(FieldError::new(format!("{at}[{i}]"), format!("{v:?} is not one of: {expected}")));
            }
            parsed
        })
        .collect()
}

fn body(doc: &BodyParts<'_>, at: &str, errors: &mut Vec<FieldError>) -> RuleBody {
    let f = doc.filters;
    let node_types = f
        .node_types
        .as_ref()
        .map(|v| enum_list(errors, &format!("{at}.filters.node_types"), v, NodeType::parse, &NodeType::expected()));
    let hazmat_node_types = match &f.hazmat_node_types {
        Some(v) => {
            enum_list(errors, &format!("{at}.filters.hazmat_node_types"), v, NodeType::parse, &NodeType::expected())
        }
        None => Filters::default().hazmat_node_types,
    };
    let exclude_nodes = f
        .exclude_nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| {
            NodeId::parse(n)
                .map_err(|e| errors.push(FieldError::new(format!("{at}.filters.exclude_nodes[{i}]"), e)))
                .ok()
        })
        .collect();
    let defaults = Constraints::default();
    let c = doc.constraints;
    let cd = CostModel::default();
    let k = doc.cost;
    RuleBody {
        filters: Filters {
            node_types,
            max_distance_km: f.max_distance_km,
            exclude_nodes,
            store_protection_units: f.store_protection_units,
            respect_capacity: f.respect_capacity.unwrap_or(true),
            hazmat_node_types,
        },
        constraints: Constraints {
            max_nodes: c.max_nodes.unwrap_or(defaults.max_nodes),
            allow_partial: c.allow_partial.unwrap_or(defaults.allow_partial),
            allow_backorder: c.allow_backorder.unwrap_or(defaults.allow_backorder),
            must_meet_promise: c.must_meet_promise.unwrap_or(defaults.must_meet_promise),
        },
        cost: CostModel {
            shipping_zones: match &k.shipping_zones {
                Some(z) => z
                    .iter()
                    .map(|z| ShippingZone { max_km: z.max_km, base_minor: z.base_minor, per_kg_minor: z.per_kg_minor })
                    .collect(),
                None => cd.shipping_zones,
            },
            split_penalty_minor: k.split_penalty_minor.unwrap_or(cd.split_penalty_minor),
            capacity_penalty_minor: k.capacity_penalty_minor.unwrap_or(cd.capacity_penalty_minor),
            backorder_penalty_minor: k.backorder_penalty_minor.unwrap_or(cd.backorder_penalty_minor),
            unfilled_penalty_minor: k.unfilled_penalty_minor.unwrap_or(cd.unfilled_penalty_minor),
            late_penalty_minor_per_day: k.late_penalty_minor_per_day.unwrap_or(cd.late_penalty_minor_per_day),
            emissions_minor_per_kg_co2: k.emissions_minor_per_kg_co2.unwrap_or(cd.emissions_minor_per_kg_co2),
            co2_g_per_kg_km: k.co2_g_per_kg_km.unwrap_or(cd.co2_g_per_kg_km),
            aging_bonus_minor: k.aging_bonus_minor.unwrap_or(cd.aging_bonus_minor),
        },
    }
}

struct BodyParts<'a> {
    filters: &'a FiltersDoc,
    constraints: &'a ConstraintsDoc,
    cost: &'a CostDoc,
}

/// A rule's condition (`at`: the rule's path, for errors).
fn condition(w: &ConditionDoc, at: &str, errors: &mut Vec<FieldError>) -> Condition {
    Condition {
        customer_tier: w.customer_tier.clone(),
        channel: w.channel.as_ref().map(|v| {
            v.iter()
                .enumerate()
                .filter_map(|(j, c)| {
                    ChannelId::parse(c)
                        .map_err(|e| errors.push(FieldError::new(format!("{at}.when.channel[{j}]"), e)))
                        .ok()
                })
                .collect()
        }),
        method: w.method.as_ref().map(|v| {
            enum_list(errors, &format!("{at}.when.method"), v, FulfillmentMethod::parse, &FulfillmentMethod::expected())
        }),
        service_level: w.service_level.clone(),
        country: w.country.clone(),
        region: w.region.clone(),
        order_value_min_minor: w.order_value_min_minor,
        order_value_max_minor: w.order_value_max_minor,
        any_hazmat: w.any_hazmat,
        ship_to_not_billing: w.ship_to_not_billing,
        first_order: w.first_order,
    }
}

/// The document form of a condition.
fn condition_doc(w: &Condition) -> ConditionDoc {
    ConditionDoc {
        customer_tier: w.customer_tier.clone(),
        channel: w.channel.as_ref().map(|v| v.iter().map(|c| c.to_string()).collect()),
        method: w.method.as_ref().map(|v| v.iter().map(|m| m.as_str().to_owned()).collect()),
        service_level: w.service_level.clone(),
        country: w.country.clone(),
        region: w.region.clone(),
        order_value_min_minor: w.order_value_min_minor,
        order_value_max_minor: w.order_value_max_minor,
        any_hazmat: w.any_hazmat,
        ship_to_not_billing: w.ship_to_not_billing,
        first_order: w.first_order,
    }
}

/// Turns a parsed document into a validated core policy named `name`.
pub fn to_policy(name: &str, doc: &PolicyDoc) -> Result<Policy, Vec<FieldError>> {
    let mut errors = Vec::new();
    if let Some(n) = &doc.name
        && n != name
    {
        errors.push(FieldError::new("name", format!("the document names {n:?} but is stored as {name:?}")));
    }
    let rules = doc
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let at = format!("rules[{i}]");
            let when = condition(&r.when, &at, &mut errors);
            let parts = BodyParts { filters: &r.filters, constraints: &r.constraints, cost: &r.cost };
            Rule { name: r.name.clone(), when, body: body(&parts, &at, &mut errors) }
        })
        .collect();
    let fallback_doc = doc.fallback.clone().unwrap_or_default();
    let parts =
        BodyParts { filters: &fallback_doc.filters, constraints: &fallback_doc.constraints, cost: &fallback_doc.cost };
    let fallback = body(&parts, "fallback", &mut errors);
    let jeopardy_action = match doc.jeopardy_action.as_deref() {
        None => JeopardyAction::NotifyOnly,
        Some(a) => JeopardyAction::parse(a).unwrap_or_else(|| {
            let known: Vec<&str> = JeopardyAction::ALL.iter().map(|a| a.as_str()).collect();
            errors.push(FieldError::new("jeopardy_action", format!("one of {}", known.join(", "))));
            JeopardyAction::NotifyOnly
        }),
    };
    let transit = match doc.transit.as_deref() {
        None => TransitSource::Table,
        Some(t) => TransitSource::parse(t).unwrap_or_else(|| {
            errors.push(FieldError::new("transit", "one of table, observed_p90"));
            TransitSource::Table
        }),
    };
    let holds = doc
        .holds
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let at = format!("holds[{i}]");
            let hold = HoldKind::parse(&h.hold).unwrap_or_else(|| {
                errors.push(FieldError::new(format!("{at}.hold"), format!("one of {}", HoldKind::expected())));
                HoldKind::Manual
            });
            HoldRule {
                name: h.name.clone(),
                hold,
                reason: h.reason.clone(),
                when: condition(&h.when, &at, &mut errors),
            }
        })
        .collect();
    let mut reject_reasons = std::collections::BTreeMap::new();
    for (reason, what) in &doc.reject_reasons {
        match RejectStock::parse(what) {
            Some(r) => {
                reject_reasons.insert(reason.clone(), r);
            }
            None => errors.push(FieldError::new(
                format!("reject_reasons.{reason}"),
                format!("one of {}", RejectStock::ALL.map(RejectStock::as_str).join(", ")),
            )),
        }
    }
    let limits_doc = doc.limits.clone().unwrap_or_default();
    let default_limits = OrderLimits::default();
    let limits = OrderLimits {
        max_units_per_line: limits_doc.max_units_per_line.unwrap_or(default_limits.max_units_per_line),
        max_units_per_order: limits_doc.max_units_per_order,
    };
    let policy = Policy {
        name: name.to_owned(),
        rules,
        fallback,
        accept_within_minutes: doc.accept_within_minutes,
        jeopardy_action,
        transit,
        holds,
        reject_reasons,
        limits,
    };
    if let Err(problems) = policy.validate() {
        errors.extend(problems.into_iter().map(|(f, m)| FieldError::new(f, m)));
    }
    if errors.is_empty() { Ok(policy) } else { Err(errors) }
}

fn body_doc(b: &RuleBody) -> (FiltersDoc, ConstraintsDoc, CostDoc) {
    let f = &b.filters;
    let c = &b.cost;
    (
        FiltersDoc {
            node_types: f.node_types.as_ref().map(|v| v.iter().map(|t| t.as_str().to_owned()).collect()),
            max_distance_km: f.max_distance_km,
            exclude_nodes: f.exclude_nodes.iter().map(|n| n.to_string()).collect(),
            store_protection_units: f.store_protection_units,
            respect_capacity: Some(f.respect_capacity),
            hazmat_node_types: Some(f.hazmat_node_types.iter().map(|t| t.as_str().to_owned()).collect()),
        },
        ConstraintsDoc {
            max_nodes: Some(b.constraints.max_nodes),
            allow_partial: Some(b.constraints.allow_partial),
            allow_backorder: Some(b.constraints.allow_backorder),
            // Written only when set, so policies stored before it existed keep their hash.
            must_meet_promise: b.constraints.must_meet_promise.then_some(true),
        },
        CostDoc {
            shipping_zones: Some(
                c.shipping_zones
                    .iter()
                    .map(|z| ZoneDoc { max_km: z.max_km, base_minor: z.base_minor, per_kg_minor: z.per_kg_minor })
                    .collect(),
            ),
            split_penalty_minor: Some(c.split_penalty_minor),
            capacity_penalty_minor: Some(c.capacity_penalty_minor),
            backorder_penalty_minor: Some(c.backorder_penalty_minor),
            unfilled_penalty_minor: Some(c.unfilled_penalty_minor),
            late_penalty_minor_per_day: Some(c.late_penalty_minor_per_day),
            emissions_minor_per_kg_co2: Some(c.emissions_minor_per_kg_co2),
            co2_g_per_kg_km: Some(c.co2_g_per_kg_km),
            aging_bonus_minor: Some(c.aging_bonus_minor),
        },
    )
}

/// The canonical document of a policy: every default written out.
pub fn canonical_doc(p: &Policy) -> PolicyDoc {
    PolicyDoc {
        name: Some(p.name.clone()),
        rules: p
            .rules
            .iter()
            .map(|r| {
                let (filters, constraints, cost) = body_doc(&r.body);
                RuleDoc { name: r.name.clone(), when: condition_doc(&r.when), filters, constraints, cost }
            })
            .collect(),
        fallback: Some({
            let (filters, constraints, cost) = body_doc(&p.fallback);
            BodyDoc { name: None, filters, constraints, cost }
        }),
        accept_within_minutes: p.accept_within_minutes,
        jeopardy_action: (p.jeopardy_action != JeopardyAction::NotifyOnly)
            .then(|| p.jeopardy_action.as_str().to_owned()),
        transit: (p.transit != TransitSource::Table).then(|| p.transit.as_str().to_owned()),
        // Written only when set, so policies stored before they existed keep their hash.
        holds: p
            .holds
            .iter()
            .map(|h| HoldRuleDoc {
                name: h.name.clone(),
                hold: h.hold.as_str().to_owned(),
                reason: h.reason.clone(),
                when: condition_doc(&h.when),
            })
            .collect(),
        reject_reasons: p.reject_reasons.iter().map(|(k, v)| (k.clone(), v.as_str().to_owned())).collect(),
        limits: (p.limits != OrderLimits::default()).then_some(LimitsDoc {
            max_units_per_line: Some(p.limits.max_units_per_line),
            max_units_per_order: p.limits.max_units_per_order,
        }),
    }
}

/// Canonical JSON text and its SHA-256 (hex).
pub fn canonical_json_and_hash(p: &Policy) -> (String, String) {
    let json = serde_json::to_string(&canonical_doc(p)).unwrap_or_default();
    let hash = hex::encode(Sha256::digest(json.as_bytes()));
    (json, hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{
      "name": "default",
      "rules": [
        { "name": "premium", "when": { "customer_tier": ["premium"] },
          "filters": { "node_types": ["dc", "store"], "max_distance_km": 1500.0, "store_protection_units": 2 },
          "constraints": { "max_nodes": 2 },
          "cost": { "shipping_zones": [ {"max_km": 150.0, "base_minor": 100, "per_kg_minor": 0},
                                        {"max_km": 5000.0, "base_minor": 900, "per_kg_minor": 100} ],
                    "split_penalty_minor": 300 } },
        { "name": "everyone", "when": {} }
      ],
      "fallback": { "constraints": { "allow_backorder": false } }
    }"#;

    #[test]
    fn json_and_toml_documents_give_the_same_policy_and_hash() {
        let json = to_policy("default", &parse_doc(EXAMPLE, DocFormat::Json).unwrap()).unwrap();
        let toml_text = r#"
            name = "default"
            [[rules]]
            name = "premium"
            when = { customer_tier = ["premium"] }
            filters = { node_types = ["dc", "store"], max_distance_km = 1500.0, store_protection_units = 2 }
            constraints = { max_nodes = 2 }
            cost = { split_penalty_minor = 300, shipping_zones = [ { max_km = 150.0, base_minor = 100, per_kg_minor = 0 }, { max_km = 5000.0, base_minor = 900, per_kg_minor = 100 } ] }
            [[rules]]
            name = "everyone"
            [fallback.constraints]
            allow_backorder = false
        "#;
        let toml = to_policy("default", &parse_doc(toml_text, DocFormat::Toml).unwrap()).unwrap();
        assert_eq!(json, toml);
        assert_eq!(canonical_json_and_hash(&json), canonical_json_and_hash(&toml));
        assert_eq!(json.rules[0].body.constraints.max_nodes, 2);
        assert_eq!(json.rules[1].body.constraints.max_nodes, 3, "defaults fill omitted fields");
        assert!(!json.fallback.constraints.allow_backorder);
        // The canonical document parses back to the same policy.
        let (canon, _) = canonical_json_and_hash(&json);
        assert_eq!(to_policy("default", &parse_doc(&canon, DocFormat::Json).unwrap()).unwrap(), json);
    }

    #[test]
    fn bad_policies_name_every_offending_path() {
        let unknown =
            parse_doc(r#"{"rules": [{"name": "a", "filters": {"colour": 1}}]}"#, DocFormat::Json).unwrap_err();
        assert_eq!(unknown[0].field, "rules[0].filters.colour");
        assert!(unknown[0].message.contains("unknown field `colour`"));

        let doc = parse_doc(
            r#"{"rules": [
                {"name": "a", "filters": {"node_types": ["dc", "warehouse"]}, "constraints": {"max_nodes": 0},
                 "cost": {"shipping_zones": [{"max_km": 500.0}, {"max_km": 100.0}], "split_penalty_minor": -5}},
                {"name": "a", "when": {"method": ["teleport"]}}
            ]}"#,
            DocFormat::Json,
        )
        .unwrap();
        let errors = to_policy("p", &doc).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "rules[0].filters.node_types[1]",
                "rules[1].when.method[0]",
                "rules[0].constraints.max_nodes",
                "rules[0].cost.shipping_zones[1].max_km",
                "rules[0].cost.split_penalty_minor",
                "rules[1].name",
            ]
        );
    }
}
