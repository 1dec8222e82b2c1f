//! The sourcing engine: given an order, the network, stock and a policy, decide which
//! node(s) fulfil which quantities of each line — and say why.
//!
//! One engine for every harness: the server's quote and order endpoints, the simulator and
//! the benchmarks call [`source`]. It never fails: the result is a plan plus the units it
//! could not place (backordered or unfilled) and an explanation.
//!
//! Search (per destination group of ship-type lines):
//!
//! 1. *Eligibility*: every node is a candidate; it is dropped with the first failing reason
//!    (excluded, node type, not active, capacity full, beyond radius or rate card, then per
//!    line: capability, item method, hazmat, protected or no stock).
//! 2. *Branch and bound over node sets* (size ≤ `max_nodes`), candidates ordered by what
//!    they could save alone. A set's subtree is pruned when its admissible lower bound
//!    (fixed costs of the set, split penalties, and a linear relaxation of unit costs with
//!    shipping weight un-rounded) cannot beat the third best plan found (so the two
//!    runners-up in the explanation are exact too).
//! 3. *Allocation within a set*: depth-first over lines, enumerating each line's split
//!    across the set's nodes within stock and capacity, with the same bound; every node of
//!    the set must receive units (smaller sets are their own branches).
//!
//! When the search exceeds its budget ([`SearchOptions`]) it stops, returns the best plan
//! found, `plan_is_optimal = false`, and the gap to the lowest bound still open.
//!
//! Determinism: candidates are ordered by (score, node id); ties between plans of equal
//! cost go to the plan whose sorted node ids compare lowest.

mod batch;
mod engine;
mod memory;
pub mod policy;

pub use batch::{BATCH_IMPROVEMENT_ROUNDS, source_batch, source_one_by_one};
pub use engine::{
    CandidateView, CostBreakdown, Decision, DropReason, Explanation, Holding, LineQty, LineToSource, NodeState,
    OrderToSource, Package, PackageKind, Plan, PlanSummary, SearchOptions, SourcingNetwork, source,
};
pub use memory::MemoryNetwork;
pub use policy::{Condition, Constraints, CostModel, Filters, OrderFacts, Policy, Rule, RuleBody, ShippingZone};
