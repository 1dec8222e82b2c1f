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
//! 2. *Bounds*: a kept candidate has an entry cost (handling per order, capacity pressure,
//!    and one package's base rate and split penalty) and, per line, a linear lower bound
//!    of its unit cost (shipping weight un-rounded). A node set's admissible lower bound is
//!    its nodes' entries plus, per line, the cheapest units among them (the rest at the
//!    line's penalty), with packages accounted exactly: a node's entry pays for one
//!    package, its regular one or one ship-alone unit. A bound on the supersets of a set
//!    adds the nodes still to come as one option per line (their cheapest unit) and the
//!    entries of the cheapest nodes able to serve the lines they would take.
//! 3. *Single-node plans*, cheapest bound first, then a few *seed* multi-node plans (the
//!    best candidates greedily extended by the cheapest holders of each line), so that the
//!    threshold starts low. The threshold is the third best plan: the explanation's two
//!    runners-up (distinct node sets) are exact too.
//! 4. *Multi-node sets* (size ≤ `max_nodes`): candidates that cannot be in a top-three set
//!    are left out — those whose entry plus the cheapest conceivable rest exceeds the
//!    threshold, and those with `max_nodes + 2` dominators (candidates that can take any
//!    allocation they can take, for no more; swapping one in gives a set that ranks
//!    before). A candidate with r ≥ 3 dominators only goes into sets holding r − 2 of them.
//!    The others are bounded in any multi-node set and searched depth first in order of
//!    that bound; a branch ends where the superset bound over the candidates left exceeds
//!    the threshold.
//! 5. *Allocation within a set*: depth first over lines (regular lines first, heaviest
//!    first), enumerating each line's split across the set's nodes within stock and
//!    capacity, pruned by the relaxed cost so far, the relaxation of the lines left and
//!    the billed weight already certain. Every node of the set must receive units (smaller
//!    sets are their own branches). Nodes of the same profile are interchangeable: their
//!    mirror allocations are skipped, and sets of the same profiles are solved once.
//!
//! When the search exceeds its budget ([`SearchOptions`]) it stops, returns the best plan
//! found, `plan_is_optimal = false`, and the gap to the lowest bound still open.
//!
//! Determinism: the search order depends only on the inputs; ties between plans of equal
//! cost go to the plan whose sorted node ids compare lowest.

mod batch;
mod engine;
mod memory;
pub mod policy;
mod table;

pub use batch::{BATCH_IMPROVEMENT_ROUNDS, BATCH_PAIR_EXCHANGES, source_batch, source_one_by_one};
pub use engine::{
    CandidateView, Candidates, CandidatesIter, CostBreakdown, Decision, DropReason, Explanation, Holding, LineQty,
    LineToSource, NodeState, OrderToSource, Package, PackageKind, Plan, PlanSummary, PromiseTerms, SearchOptions,
    SourcingNetwork, source,
};
pub use memory::MemoryNetwork;
pub use policy::{
    Condition, Constraints, CostModel, Filters, HoldRule, JeopardyAction, OBSERVED_MIN_DELIVERIES, OrderFacts,
    OrderLimits, Policy, RejectStock, Rule, RuleBody, ShippingZone, TransitSource, upgraded_service_level,
};
pub use table::NodeTable;
