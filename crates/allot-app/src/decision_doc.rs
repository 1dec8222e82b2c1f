//! A sourcing decision as orders and re-sourcing attempts keep it in the database, and as
//! it reads back.
//!
//! What it owns: the stored form — a quote's plan, explanation and policy stamp, with each
//! explanation candidate as a row `[node_id, kept, reason, distance_km, usable_units,
//! chosen]` under `candidate_rows` (the candidates are most of a decision, and a decision
//! most of what placing an order writes; rows are about half the bytes) — and reading it
//! back into the quote's form (`candidates` as objects), also for decisions stored in
//! that object form before rows existed. What it must never do: know HTTP; the API shows
//! what this module reads.
//!
//! Version: the stored text has no version field (adding one would change every answer);
//! the form is told by its keys — `candidate_rows` (version 2) or `candidates` (version
//! 1). A new form must be told apart the same way, and read by [`decision_json`].

use allot_core::sourcing::{LineQty, PackageKind};
use serde::Serialize;

use crate::Quote;

/// `[node_id, kept, reason, distance_km, usable_units, chosen]`.
type CandidateRow = (String, bool, Option<&'static str>, Option<f64>, u64, bool);

#[derive(Serialize)]
struct StoredDecision<'a> {
    plan: StoredPlan<'a>,
    explanation: StoredExplanation<'a>,
    policy: StoredStamp<'a>,
}

#[derive(Serialize)]
struct StoredLine<'a> {
    line_id: &'a str,
    sku: &'a str,
    quantity: u64,
}

impl<'a> From<&'a LineQty> for StoredLine<'a> {
    fn from(l: &'a LineQty) -> StoredLine<'a> {
        StoredLine { line_id: &l.line_id, sku: l.sku.as_str(), quantity: l.quantity.get() }
    }
}

#[derive(Serialize)]
struct StoredCost {
    shipping: i64,
    handling: i64,
    split_penalty: i64,
    capacity: i64,
    emissions: i64,
    aging_bonus: i64,
    late: i64,
    total: i64,
}

#[derive(Serialize)]
struct StoredPackage<'a> {
    node_id: &'a str,
    kind: &'static str,
    lines: Vec<StoredLine<'a>>,
    weight_g: u64,
    cost_minor: StoredCost,
}

#[derive(Serialize)]
struct StoredPlan<'a> {
    packages: Vec<StoredPackage<'a>>,
    backordered: Vec<StoredLine<'a>>,
    unfilled: Vec<StoredLine<'a>>,
    backorder_penalty_minor: i64,
    unfilled_penalty_minor: i64,
    total_cost_minor: i64,
    plan_is_optimal: bool,
    gap_minor: i64,
}

#[derive(Serialize)]
struct StoredAlternative<'a> {
    nodes: Vec<&'a str>,
    total_cost_minor: i64,
    allocated_units: u64,
}

#[derive(Serialize)]
struct StoredExplanation<'a> {
    rule: &'a Option<String>,
    rule_reason: &'a str,
    candidate_rows: Vec<CandidateRow>,
    alternatives: Vec<StoredAlternative<'a>>,
    sets_evaluated: u32,
    budget_exhausted: bool,
}

#[derive(Serialize)]
struct StoredStamp<'a> {
    name: &'a str,
    version: i64,
    hash: &'a str,
}

/// A package kind as stored (and shown).
pub fn package_kind(kind: PackageKind) -> &'static str {
    match kind {
        PackageKind::Ship => "ship",
        PackageKind::ShipAlone => "ship_alone",
        PackageKind::Pickup => "pickup",
    }
}

/// The stored text of a decision (the current form: candidate rows).
pub fn stored_decision(q: &Quote) -> String {
    let p = &q.decision.plan;
    let x = &q.decision.explanation;
    let stored = StoredDecision {
        plan: StoredPlan {
            packages: p
                .packages
                .iter()
                .map(|pk| StoredPackage {
                    node_id: pk.node_id.as_str(),
                    kind: package_kind(pk.kind),
                    lines: pk.lines.iter().map(Into::into).collect(),
                    weight_g: pk.weight_g,
                    cost_minor: StoredCost {
                        shipping: pk.cost.shipping,
                        handling: pk.cost.handling,
                        split_penalty: pk.cost.split_penalty,
                        capacity: pk.cost.capacity,
                        emissions: pk.cost.emissions,
                        aging_bonus: pk.cost.aging_bonus,
                        late: pk.cost.late,
                        total: pk.cost.total,
                    },
                })
                .collect(),
            backordered: p.backordered.iter().map(Into::into).collect(),
            unfilled: p.unfilled.iter().map(Into::into).collect(),
            backorder_penalty_minor: p.backorder_penalty_minor,
            unfilled_penalty_minor: p.unfilled_penalty_minor,
            total_cost_minor: p.total_cost_minor,
            plan_is_optimal: p.plan_is_optimal,
            gap_minor: p.gap_minor,
        },
        explanation: StoredExplanation {
            rule: &x.rule,
            rule_reason: &x.rule_reason,
            candidate_rows: x
                .candidates
                .iter()
                .map(|c| {
                    (
                        c.node_id.to_string(),
                        c.kept,
                        c.reason.map(|r| r.as_str()),
                        c.distance_km,
                        c.usable_units,
                        c.chosen,
                    )
                })
                .collect(),
            alternatives: x
                .alternatives
                .iter()
                .map(|a| StoredAlternative {
                    nodes: a.nodes.iter().map(|n| n.as_str()).collect(),
                    total_cost_minor: a.total_cost_minor,
                    allocated_units: a.allocated_units,
                })
                .collect(),
            sets_evaluated: x.sets_evaluated,
            budget_exhausted: x.budget_exhausted,
        },
        policy: StoredStamp { name: &q.policy.name, version: q.policy.version, hash: &q.policy.hash },
    };
    // Plain data with string keys: serializing cannot fail; `null` reads back as no
    // decision rather than a wrong one.
    serde_json::to_string(&stored).unwrap_or_else(|_| "null".to_owned())
}

/// A stored decision in the quote's form. Decisions kept in the object form (written
/// before rows) read as they are; anything unreadable reads as null.
pub fn decision_json(stored: &str) -> serde_json::Value {
    let mut v = serde_json::from_str(stored).unwrap_or(serde_json::Value::Null);
    expand_candidates(&mut v);
    v
}

/// A stored re-sourcing attempt in the form shown: each planning round's decision under
/// `sourcing` expanded as [`decision_json`] does.
pub fn attempt_json(stored: &str) -> serde_json::Value {
    let mut v = serde_json::from_str(stored).unwrap_or(serde_json::Value::Null);
    if let Some(rounds) = v.get_mut("sourcing").and_then(serde_json::Value::as_array_mut) {
        rounds.iter_mut().for_each(expand_candidates);
    }
    v
}

/// A stored decision that serializes in the quote's form ([`decision_json`]'s value)
/// straight from the stored text: everything but the candidate rows is copied through as
/// written, and each row is written as its candidate object. Placing an order answers its
/// decision, and building that answer as a `serde_json::Value` tree (a map and six keys
/// per candidate) was a tenth of a request handler's time. Text in another form
/// (decisions stored before rows, anything unreadable) goes through [`decision_json`], so
/// both give the same JSON value (the text differs: objects inside keep their stored key
/// order, numbers their stored form).
#[derive(Debug)]
pub struct DecisionJson(String);

impl DecisionJson {
    pub fn new(stored: String) -> DecisionJson {
        DecisionJson(stored)
    }
}

impl Serialize for DecisionJson {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match RowDecision::read(&self.0) {
            Some(d) => d.serialize(s),
            None => decision_json(&self.0).serialize(s),
        }
    }
}

type RawFields<'a> = std::collections::BTreeMap<&'a str, &'a serde_json::value::RawValue>;

/// A decision with candidate rows, borrowed from its stored text: its top-level fields,
/// and its explanation's fields with the rows taken out.
struct RowDecision<'a> {
    top: RawFields<'a>,
    explanation: RawFields<'a>,
    rows: Vec<Vec<&'a serde_json::value::RawValue>>,
}

impl<'a> RowDecision<'a> {
    fn read(stored: &'a str) -> Option<RowDecision<'a>> {
        let mut top: RawFields<'a> = serde_json::from_str(stored).ok()?;
        let mut explanation: RawFields<'a> = serde_json::from_str(top.remove("explanation")?.get()).ok()?;
        let rows = serde_json::from_str(explanation.remove("candidate_rows")?.get()).ok()?;
        Some(RowDecision { top, explanation, rows })
    }
}

/// Stored fields with one more entry (`key`, `value`) in its place by key order (as a
/// `Value` map has them), a stored field of that name giving way to it; the values inside
/// keep the order they were stored in.
struct WithEntry<'b, V> {
    fields: &'b RawFields<'b>,
    key: &'static str,
    value: V,
}

impl<V: Serialize> Serialize for WithEntry<'_, V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        let mut written = false;
        for (k, v) in self.fields.iter().filter(|(k, _)| **k != self.key) {
            if !written && *k > self.key {
                m.serialize_entry(self.key, &self.value)?;
                written = true;
            }
            m.serialize_entry(k, v)?;
        }
        if !written {
            m.serialize_entry(self.key, &self.value)?;
        }
        m.end()
    }
}

impl Serialize for RowDecision<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Candidates<'b>(&'b [Vec<&'b serde_json::value::RawValue>]);
        impl Serialize for Candidates<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.iter().map(|cells| Candidate(cells)))
            }
        }
        /// A row `[node_id, kept, reason, distance_km, usable_units, chosen]` as its
        /// object, keys in order; a missing cell is null.
        struct Candidate<'b>(&'b [&'b serde_json::value::RawValue]);
        impl Serialize for Candidate<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap;
                const KEYS: [(&str, usize); 6] = [
                    ("chosen", 5),
                    ("distance_km", 3),
                    ("kept", 1),
                    ("node_id", 0),
                    ("reason", 2),
                    ("usable_units", 4),
                ];
                let mut m = s.serialize_map(Some(KEYS.len()))?;
                for (key, cell) in KEYS {
                    m.serialize_entry(key, &self.0.get(cell))?;
                }
                m.end()
            }
        }
        // A stored `candidates` (never written beside rows) gives way to the rows, as in
        // [`decision_json`].
        let explanation = WithEntry { fields: &self.explanation, key: "candidates", value: Candidates(&self.rows) };
        WithEntry { fields: &self.top, key: "explanation", value: explanation }.serialize(s)
    }
}

fn expand_candidates(decision: &mut serde_json::Value) {
    use serde_json::Value;
    let Some(x) = decision.get_mut("explanation").and_then(Value::as_object_mut) else { return };
    let Some(Value::Array(rows)) = x.remove("candidate_rows") else { return };
    let candidates = rows
        .into_iter()
        .map(|row| match row {
            Value::Array(cells) => {
                let mut cells = cells.into_iter();
                let mut next = || cells.next().unwrap_or(Value::Null);
                serde_json::json!({
                    "node_id": next(), "kept": next(), "reason": next(),
                    "distance_km": next(), "usable_units": next(), "chosen": next(),
                })
            }
            other => other,
        })
        .collect();
    x.insert("candidates".to_owned(), Value::Array(candidates));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored decision as [`stored_decision`] writes it: rows with a reason and without,
    /// a distance and none, fields before and after `candidate_rows` and `explanation`.
    const ROWS: &str = r#"{"plan":{"packages":[{"node_id":"DC-1","kind":"ship","lines":[{"line_id":"1","sku":"S","quantity":2}],"weight_g":900,"cost_minor":{"shipping":812,"total":1012}}],"backordered":[],"total_cost_minor":1012,"plan_is_optimal":true,"gap_minor":0},"explanation":{"rule":null,"rule_reason":"no rule matched: \"default\" fallback","candidate_rows":[["DC-1",true,null,412.25,10,true],["ST-\u00e9",false,"no_stock",3.0000000000000004,0,false],["DC-2",false,"beyond_radius",null,4,false]],"alternatives":[{"nodes":["DC-2"],"total_cost_minor":1200,"allocated_units":2}],"sets_evaluated":7,"budget_exhausted":false},"policy":{"name":"default","version":3,"hash":"ab12"}}"#;

    #[test]
    fn a_stored_decision_reads_as_the_api_shows_it_without_a_value_tree() {
        assert!(RowDecision::read(ROWS).is_some(), "the row form takes the direct path");
        let direct = serde_json::to_value(DecisionJson::new(ROWS.to_owned())).unwrap();
        assert_eq!(direct, decision_json(ROWS));
        let c = &direct["explanation"]["candidates"];
        assert_eq!(c[1]["node_id"], "ST-é");
        assert_eq!(c[1]["reason"], "no_stock");
        assert_eq!(c[2]["distance_km"], serde_json::Value::Null);
        assert!(direct["explanation"].get("candidate_rows").is_none());
    }

    #[test]
    fn decisions_in_other_forms_read_as_before() {
        let object_form = r#"{"plan":{"packages":[]},"explanation":{"candidates":[{"node_id":"DC-1"}],"rule":null}}"#;
        let short_row = r#"{"explanation":{"candidate_rows":[["DC-1",true]]}}"#;
        let both = r#"{"explanation":{"candidates":[{"node_id":"OLD"}],"candidate_rows":[["DC-1",true,null,1.5,2,true,"extra"]]}}"#;
        for stored in [object_form, short_row, both, "null", "not json", r#"{"explanation":3}"#, ""] {
            let direct = serde_json::to_value(DecisionJson::new(stored.to_owned())).unwrap();
            assert_eq!(direct, decision_json(stored), "{stored}");
        }
        let text = serde_json::to_string(&DecisionJson::new(both.to_owned())).unwrap();
        assert_eq!(text.matches("\"candidates\"").count(), 1, "{text}");
        let short = serde_json::to_value(DecisionJson::new(short_row.to_owned())).unwrap();
        assert_eq!(short["explanation"]["candidates"][0]["chosen"], serde_json::Value::Null);
        assert_eq!(short["explanation"]["candidates"][0]["kept"], true);
    }
}
