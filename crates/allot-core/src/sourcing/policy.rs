//! Routing policies: an ordered list of rules, each with a condition (`when`), eligibility
//! filters, hard constraints and a cost model; the first rule whose condition matches an
//! order is used, else the fallback.
//!
//! Every field has a default (see [`Filters::default`], [`Constraints::default`],
//! [`CostModel::default`]), so a policy states only what differs. [`Policy::validate`]
//! names every offending field by its path (`rules[1].cost.shipping_zones[0].max_km`).

use crate::catalog::FulfillmentMethod;
use crate::ids::{ChannelId, NodeId};
use crate::network::NodeType;

/// Most rules a policy may have (a named limit).
pub const RULES_MAX: usize = 100;
/// Most shipping zones a rule may have.
pub const ZONES_MAX: usize = 50;
/// Longest `accept_within_minutes` accepted (a week).
pub const ACCEPT_WITHIN_MINUTES_MAX: u32 = 7 * 24 * 60;
/// Largest `max_nodes` accepted.
pub const MAX_NODES_LIMIT: u32 = 10;
/// Most hold rules a policy may have.
pub const HOLD_RULES_MAX: usize = 50;
/// Units one order line may ask for unless the policy says otherwise: an order for a
/// billion units is a mistake or an attack, never a sale.
pub const DEFAULT_MAX_UNITS_PER_LINE: u64 = 10_000;
/// The largest per-line or per-order unit limit a policy may set.
pub const UNITS_LIMIT_MAX: u64 = 1_000_000_000;

/// When a rule applies. Every given list must contain the order's value; absent lists
/// match anything; `{}` matches every order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Condition {
    pub customer_tier: Option<Vec<String>>,
    pub channel: Option<Vec<ChannelId>>,
    /// Matches if any line of the order uses one of these methods.
    pub method: Option<Vec<FulfillmentMethod>>,
    /// Matches if any line asks for one of these service levels.
    pub service_level: Option<Vec<String>>,
    pub country: Option<Vec<String>>,
    pub region: Option<Vec<String>>,
    pub order_value_min_minor: Option<i64>,
    pub order_value_max_minor: Option<i64>,
    /// `Some(true)`: only orders with a hazmat line; `Some(false)`: only orders without.
    pub any_hazmat: Option<bool>,
    /// `Some(true)`: only orders shipped to another country than they are billed in (an
    /// order without a billing country never matches); `Some(false)`: only the others.
    pub ship_to_not_billing: Option<bool>,
    /// `Some(true)`: only the customer's first order (no earlier order with their e-mail;
    /// an order without one counts as a first order). Hold rules only: sourcing does not
    /// look up a customer's history.
    pub first_order: Option<bool>,
}

/// Which nodes may serve.
#[derive(Debug, Clone, PartialEq)]
pub struct Filters {
    /// Node types allowed; `None` = all.
    pub node_types: Option<Vec<NodeType>>,
    /// Furthest a shipping node may be from the destination; `None` = no limit (the last
    /// shipping zone still bounds it).
    pub max_distance_km: Option<f64>,
    pub exclude_nodes: Vec<NodeId>,
    /// A store never goes below this ATP of a SKU through ship-type lines of this rule.
    pub store_protection_units: u64,
    /// Drop nodes whose daily order capacity is used up; cap units by daily unit capacity.
    pub respect_capacity: bool,
    /// Node types that may ship hazmat items. Default: DCs only.
    pub hazmat_node_types: Vec<NodeType>,
}

impl Filters {
    /// Units of a SKU a node of `node_type` keeps back from ship-type lines of this rule:
    /// `store_protection_units` at stores, none elsewhere (the engine and availability both
    /// read it from here).
    #[inline(always)]
    pub fn protected_units(&self, node_type: NodeType) -> u64 {
        if node_type == NodeType::Store { self.store_protection_units } else { 0 }
    }

    /// Whether the rule lets a node serve at all (not excluded, of an allowed type).
    pub fn admits(&self, node: &crate::network::Node) -> bool {
        !self.exclude_nodes.contains(&node.id) && self.node_types.as_ref().is_none_or(|t| t.contains(&node.node_type))
    }
}

impl Default for Filters {
    fn default() -> Filters {
        Filters {
            node_types: None,
            max_distance_km: None,
            exclude_nodes: Vec::new(),
            store_protection_units: 0,
            respect_capacity: true,
            hazmat_node_types: vec![NodeType::Dc],
        }
    }
}

/// Hard limits on a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Constraints {
    /// Most nodes a destination's shipment may come from. Default 3.
    pub max_nodes: u32,
    /// May an order ship while some units are not allocated? Default true. When false, an
    /// order that cannot be filled completely is not allocated at all.
    pub allow_partial: bool,
    /// May units that cannot be allocated be backordered (for lines that allow it)?
    /// Default true.
    pub allow_backorder: bool,
    /// Only nodes that can deliver by the promised date may ship a promised order (the
    /// promise engine says which). Default false: late nodes cost
    /// `late_penalty_minor_per_day` per day instead.
    pub must_meet_promise: bool,
}

impl Default for Constraints {
    fn default() -> Constraints {
        Constraints { max_nodes: 3, allow_partial: true, allow_backorder: true, must_meet_promise: false }
    }
}

/// One distance band of the shipping rate card.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShippingZone {
    pub max_km: f64,
    pub base_minor: i64,
    pub per_kg_minor: i64,
}

/// The terms that rank plans. All money in minor units of the order's currency.
#[derive(Debug, Clone, PartialEq)]
pub struct CostModel {
    /// Ascending by `max_km`; a node beyond the last zone cannot ship to the destination.
    pub shipping_zones: Vec<ShippingZone>,
    pub split_penalty_minor: i64,
    pub capacity_penalty_minor: i64,
    pub backorder_penalty_minor: i64,
    pub unfilled_penalty_minor: i64,
    /// Per day later than the promised date (takes effect with the promise engine).
    pub late_penalty_minor_per_day: i64,
    pub emissions_minor_per_kg_co2: i64,
    pub co2_g_per_kg_km: i64,
    /// Subtracted per unit drawn from stock flagged as aging.
    pub aging_bonus_minor: i64,
}

impl Default for CostModel {
    /// A US parcel rate card: 4 bands up to 5,000 km.
    fn default() -> CostModel {
        CostModel {
            shipping_zones: vec![
                ShippingZone { max_km: 150.0, base_minor: 500, per_kg_minor: 50 },
                ShippingZone { max_km: 600.0, base_minor: 700, per_kg_minor: 80 },
                ShippingZone { max_km: 1500.0, base_minor: 900, per_kg_minor: 120 },
                ShippingZone { max_km: 5000.0, base_minor: 1200, per_kg_minor: 160 },
            ],
            split_penalty_minor: 300,
            capacity_penalty_minor: 0,
            backorder_penalty_minor: 4000,
            unfilled_penalty_minor: 10000,
            late_penalty_minor_per_day: 0,
            emissions_minor_per_kg_co2: 0,
            co2_g_per_kg_km: 0,
            aging_bonus_minor: 0,
        }
    }
}

/// What a rule (or the fallback) decides with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleBody {
    pub filters: Filters,
    pub constraints: Constraints,
    pub cost: CostModel,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub when: Condition,
    pub body: RuleBody,
}

/// What the jeopardy sweep does, besides raising `order.at_risk` / `order.late`, when a
/// promised line falls into jeopardy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum JeopardyAction {
    /// Events only (the default).
    #[default]
    NotifyOnly,
    /// Work not yet accepted by its node is taken away and re-sourced elsewhere (the
    /// node is excluded for the order, as after a rejection).
    RerouteIfNotAccepted,
    /// Units not yet shipped move up one service level (standard → express → next_day).
    UpgradeService,
}

impl JeopardyAction {
    pub const ALL: [JeopardyAction; 3] =
        [JeopardyAction::NotifyOnly, JeopardyAction::RerouteIfNotAccepted, JeopardyAction::UpgradeService];

    pub fn as_str(self) -> &'static str {
        match self {
            JeopardyAction::NotifyOnly => "notify_only",
            JeopardyAction::RerouteIfNotAccepted => "reroute_if_not_accepted",
            JeopardyAction::UpgradeService => "upgrade_service",
        }
    }

    pub fn parse(text: &str) -> Option<JeopardyAction> {
        JeopardyAction::ALL.into_iter().find(|a| a.as_str() == text)
    }
}

/// Where promised transit times come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TransitSource {
    /// The carrier's transit table (the default).
    #[default]
    Table,
    /// The 90th percentile of the transit days observed on the lane (origin node →
    /// destination region, carrier service) once it has [`OBSERVED_MIN_DELIVERIES`]
    /// deliveries; the table before that.
    ObservedP90,
}

/// Deliveries a lane needs before its observed transit times are used.
pub const OBSERVED_MIN_DELIVERIES: u32 = 30;

impl TransitSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TransitSource::Table => "table",
            TransitSource::ObservedP90 => "observed_p90",
        }
    }

    pub fn parse(text: &str) -> Option<TransitSource> {
        [TransitSource::Table, TransitSource::ObservedP90].into_iter().find(|t| t.as_str() == text)
    }
}

/// The next faster service level of an upgrade (`None`: already the fastest shipped
/// level, or not a level this upgrade knows): [`crate::ServiceLevel::upgrade`] by name.
pub fn upgraded_service_level(level: &str) -> Option<&'static str> {
    crate::ServiceLevel::parse(level)?.upgrade().map(crate::ServiceLevel::as_str)
}

/// A named routing policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub name: String,
    pub rules: Vec<Rule>,
    /// Used when no rule matches. Default: all defaults.
    pub fallback: RuleBody,
    /// A node that has not accepted a released fulfillment order within this many minutes
    /// is treated as having rejected it (the work is re-sourced). `None` (the default):
    /// no timeout.
    pub accept_within_minutes: Option<u32>,
    /// What the jeopardy sweep does for lines at risk or late.
    pub jeopardy_action: JeopardyAction,
    /// Where promised transit times come from.
    pub transit: TransitSource,
    /// Holds placed on an order at capture: every matching rule places its hold.
    pub holds: Vec<HoldRule>,
    /// What happens to the units of a rejected fulfillment order, by the node's reason
    /// (exact match); reasons not listed fall back to [`RejectStock::default_for`].
    pub reject_reasons: std::collections::BTreeMap<String, RejectStock>,
    /// What one order may ask for.
    pub limits: OrderLimits,
}

/// What a rejection does with the units the node held for the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectStock {
    /// Back to ATP: the node simply will not do the work (closed, too busy).
    Release,
    /// Off the books: the units are not there (on hand and allocated both go down).
    WriteOff,
    /// Kept out of ATP until the inventory feed says otherwise: the units are damaged.
    Quarantine,
}

impl RejectStock {
    pub const ALL: [RejectStock; 3] = [RejectStock::Release, RejectStock::WriteOff, RejectStock::Quarantine];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectStock::Release => "release",
            RejectStock::WriteOff => "write_off",
            RejectStock::Quarantine => "quarantine",
        }
    }

    pub fn parse(text: &str) -> Option<RejectStock> {
        RejectStock::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// Without a policy entry: `not_found` writes the units off, `damaged` quarantines
    /// them, any other reason gives them back — selling units a node just said it cannot
    /// find is how DOMs oversell.
    pub fn default_for(reason: &str) -> RejectStock {
        match reason {
            "not_found" => RejectStock::WriteOff,
            "damaged" => RejectStock::Quarantine,
            _ => RejectStock::Release,
        }
    }
}

/// A hold the policy places on matching orders at capture (e.g. `fraud_review` for a
/// first order over a value, or one shipped abroad from a domestic card).
#[derive(Debug, Clone, PartialEq)]
pub struct HoldRule {
    pub name: String,
    pub hold: crate::HoldKind,
    /// Shown with the hold (who placed it is `policy:<policy name>/<rule name>`).
    pub reason: String,
    pub when: Condition,
}

/// Units one order may ask for: beyond them it is refused (422) before any sourcing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderLimits {
    /// Units of one line. Default [`DEFAULT_MAX_UNITS_PER_LINE`].
    pub max_units_per_line: u64,
    /// Units of all lines together; `None`: only the per-line limit.
    pub max_units_per_order: Option<u64>,
}

impl Default for OrderLimits {
    fn default() -> OrderLimits {
        OrderLimits { max_units_per_line: DEFAULT_MAX_UNITS_PER_LINE, max_units_per_order: None }
    }
}

impl OrderLimits {
    /// Every problem of an order's quantities against the limits, each with its field
    /// path (`lines[2].quantity`, `lines`).
    pub fn check(&self, quantities: &[u64]) -> Vec<PolicyProblem> {
        let mut problems = Vec::new();
        for (i, q) in quantities.iter().enumerate() {
            if *q > self.max_units_per_line {
                let max = self.max_units_per_line;
                problems.push((
                    format!("lines[{i}].quantity"),
                    format!("at most {max} units per line (the policy's limit)"),
                ));
            }
        }
        let total = quantities.iter().fold(0u64, |a, q| a.saturating_add(*q));
        if let Some(max) = self.max_units_per_order
            && total > max
        {
            problems.push((
                "lines".to_owned(),
                format!("{total} units in all; at most {max} per order (the policy's limit)"),
            ));
        }
        problems
    }
}

impl Policy {
    /// The same policy with `nodes` excluded by every rule and the fallback: re-sourcing
    /// after a node rejected or came up short never sends the work back there.
    pub fn excluding(&self, nodes: &[NodeId]) -> Policy {
        let mut p = self.clone();
        let bodies = p.rules.iter_mut().map(|r| &mut r.body).chain(std::iter::once(&mut p.fallback));
        for body in bodies {
            for n in nodes {
                if !body.filters.exclude_nodes.contains(n) {
                    body.filters.exclude_nodes.push(n.clone());
                }
            }
        }
        p
    }
}

impl Default for Policy {
    /// The built-in policy used until one is activated: no rules, default fallback.
    fn default() -> Policy {
        Policy {
            name: "builtin".to_owned(),
            rules: Vec::new(),
            fallback: RuleBody::default(),
            accept_within_minutes: None,
            jeopardy_action: JeopardyAction::NotifyOnly,
            transit: TransitSource::Table,
            holds: Vec::new(),
            reject_reasons: Default::default(),
            limits: OrderLimits::default(),
        }
    }
}

/// One validation finding: the field's path and what is wrong.
pub type PolicyProblem = (String, String);

impl Policy {
    /// Checks every rule; lists every problem with its path.
    pub fn validate(&self) -> Result<(), Vec<PolicyProblem>> {
        let mut problems = Vec::new();
        if self.name.trim().is_empty() || self.name.len() > 64 {
            problems.push(("name".to_owned(), "must be 1–64 characters".to_owned()));
        }
        if self.rules.len() > RULES_MAX {
            problems.push(("rules".to_owned(), format!("at most {RULES_MAX} rules")));
        }
        if self.accept_within_minutes.is_some_and(|m| !(1..=ACCEPT_WITHIN_MINUTES_MAX).contains(&m)) {
            problems
                .push(("accept_within_minutes".to_owned(), format!("must be 1–{ACCEPT_WITHIN_MINUTES_MAX} (a week)")));
        }
        for (i, rule) in self.rules.iter().enumerate() {
            let at = format!("rules[{i}]");
            if rule.name.trim().is_empty() {
                problems.push((format!("{at}.name"), "must not be empty".to_owned()));
            }
            if self.rules[..i].iter().any(|r| r.name == rule.name) {
                problems.push((format!("{at}.name"), format!("duplicate rule name {:?}", rule.name)));
            }
            if let (Some(lo), Some(hi)) = (rule.when.order_value_min_minor, rule.when.order_value_max_minor)
                && lo > hi
            {
                problems.push((format!("{at}.when.order_value_min_minor"), "must not exceed the max".to_owned()));
            }
            if rule.when.first_order.is_some() {
                let why = "hold rules only: sourcing does not look up the customer's history";
                problems.push((format!("{at}.when.first_order"), why.to_owned()));
            }
            validate_body(&rule.body, &at, &mut problems);
        }
        validate_body(&self.fallback, "fallback", &mut problems);
        if self.holds.len() > HOLD_RULES_MAX {
            problems.push(("holds".to_owned(), format!("at most {HOLD_RULES_MAX} hold rules")));
        }
        for (i, rule) in self.holds.iter().enumerate() {
            let at = format!("holds[{i}]");
            if rule.name.trim().is_empty() || rule.name.chars().count() > 64 {
                problems.push((format!("{at}.name"), "must be 1–64 characters".to_owned()));
            }
            if self.holds[..i].iter().any(|r| r.name == rule.name) {
                problems.push((format!("{at}.name"), format!("duplicate hold rule name {:?}", rule.name)));
            }
            if rule.reason.trim().is_empty() || rule.reason.chars().count() > 200 {
                problems.push((format!("{at}.reason"), "must be 1–200 characters".to_owned()));
            }
            if let (Some(lo), Some(hi)) = (rule.when.order_value_min_minor, rule.when.order_value_max_minor)
                && lo > hi
            {
                problems.push((format!("{at}.when.order_value_min_minor"), "must not exceed the max".to_owned()));
            }
        }
        let l = &self.limits;
        if !(1..=UNITS_LIMIT_MAX).contains(&l.max_units_per_line) {
            problems.push(("limits.max_units_per_line".to_owned(), format!("must be 1–{UNITS_LIMIT_MAX}")));
        }
        if l.max_units_per_order.is_some_and(|m| !(1..=UNITS_LIMIT_MAX).contains(&m)) {
            problems.push(("limits.max_units_per_order".to_owned(), format!("must be 1–{UNITS_LIMIT_MAX}")));
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    /// The rule used for an order: the first matching rule, else the fallback. Returns the
    /// rule's name (`None` for the fallback) and its body.
    pub fn select(&self, facts: &OrderFacts) -> (Option<&Rule>, &RuleBody) {
        match self.rules.iter().find(|r| r.when.matches(facts)) {
            Some(rule) => (Some(rule), &rule.body),
            None => (None, &self.fallback),
        }
    }

    /// What a rejection for `reason` does with the node's units.
    pub fn stock_after_reject(&self, reason: &str) -> RejectStock {
        self.reject_reasons.get(reason).copied().unwrap_or_else(|| RejectStock::default_for(reason))
    }

    /// Whether a hold rule asks whether the order is the customer's first (the caller
    /// looks it up only then).
    pub fn holds_need_history(&self) -> bool {
        self.holds.iter().any(|r| r.when.first_order.is_some())
    }

    /// The hold rules an order matches, one per kind of hold (the first rule of a kind).
    pub fn holds_for(&self, facts: &OrderFacts) -> Vec<&HoldRule> {
        let mut found: Vec<&HoldRule> = Vec::new();
        for rule in self.holds.iter().filter(|r| r.when.matches(facts)) {
            if !found.iter().any(|f| f.hold == rule.hold) {
                found.push(rule);
            }
        }
        found
    }
}

fn validate_body(body: &RuleBody, at: &str, problems: &mut Vec<PolicyProblem>) {
    let mut push = |field: &str, msg: String| problems.push((format!("{at}.{field}"), msg));
    if let Some(d) = body.filters.max_distance_km
        && !(d.is_finite() && d > 0.0)
    {
        push("filters.max_distance_km", "must be a positive number".to_owned());
    }
    if body.filters.store_protection_units > 1_000_000_000 {
        push("filters.store_protection_units", "must be at most 1000000000".to_owned());
    }
    let c = &body.constraints;
    if c.max_nodes == 0 || c.max_nodes > MAX_NODES_LIMIT {
        push("constraints.max_nodes", format!("must be 1–{MAX_NODES_LIMIT}"));
    }
    let cost = &body.cost;
    if cost.shipping_zones.is_empty() {
        push("cost.shipping_zones", "must have at least one zone".to_owned());
    }
    if cost.shipping_zones.len() > ZONES_MAX {
        push("cost.shipping_zones", format!("at most {ZONES_MAX} zones"));
    }
    let mut last = 0.0;
    for (i, z) in cost.shipping_zones.iter().enumerate() {
        if !(z.max_km.is_finite() && z.max_km > last) {
            push(&format!("cost.shipping_zones[{i}].max_km"), "must be finite and ascending".to_owned());
        }
        last = z.max_km;
        if !(0..=MONEY_TERM_MAX).contains(&z.base_minor) {
            push(&format!("cost.shipping_zones[{i}].base_minor"), format!("must be 0–{MONEY_TERM_MAX}"));
        }
        if !(0..=MONEY_TERM_MAX).contains(&z.per_kg_minor) {
            push(&format!("cost.shipping_zones[{i}].per_kg_minor"), format!("must be 0–{MONEY_TERM_MAX}"));
        }
    }
    for (name, v) in [
        ("split_penalty_minor", cost.split_penalty_minor),
        ("capacity_penalty_minor", cost.capacity_penalty_minor),
        ("backorder_penalty_minor", cost.backorder_penalty_minor),
        ("unfilled_penalty_minor", cost.unfilled_penalty_minor),
        ("late_penalty_minor_per_day", cost.late_penalty_minor_per_day),
        ("emissions_minor_per_kg_co2", cost.emissions_minor_per_kg_co2),
        ("co2_g_per_kg_km", cost.co2_g_per_kg_km),
        ("aging_bonus_minor", cost.aging_bonus_minor),
    ] {
        if !(0..=MONEY_TERM_MAX).contains(&v) {
            push(&format!("cost.{name}"), format!("must be 0–{MONEY_TERM_MAX}"));
        }
    }
}

/// Largest value of any single cost term in a policy (10^9 minor units); keeps every plan
/// cost far inside `i64`.
pub const MONEY_TERM_MAX: i64 = 1_000_000_000;

/// What rule conditions look at.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrderFacts {
    pub customer_tier: Option<String>,
    pub channel: Option<ChannelId>,
    pub methods: Vec<FulfillmentMethod>,
    pub service_levels: Vec<String>,
    pub country: Option<String>,
    pub region: Option<String>,
    pub order_value_minor: i64,
    pub any_hazmat: bool,
    /// The order has a billing country and ships to another one.
    pub ship_to_not_billing: bool,
    /// The customer has no earlier order (looked up for hold rules only; false otherwise).
    pub first_order: bool,
}

impl OrderFacts {
    /// The facts of an order (`any_hazmat`: whether a line's item is hazmat, which the
    /// order itself does not say).
    pub fn of(order: &crate::sourcing::OrderToSource, any_hazmat: bool) -> OrderFacts {
        OrderFacts {
            customer_tier: order.customer_tier.clone(),
            channel: order.channel.clone(),
            methods: order.lines.iter().map(|l| l.method).collect(),
            service_levels: order.lines.iter().filter_map(|l| l.service_level.clone()).collect(),
            country: order.country.clone(),
            region: order.region.clone(),
            order_value_minor: order
                .lines
                .iter()
                .map(|l| l.unit_price_minor.saturating_mul(l.quantity.get() as i64))
                .fold(0i64, i64::saturating_add),
            any_hazmat,
            ship_to_not_billing: order
                .billing_country
                .as_ref()
                .is_some_and(|b| order.country.as_ref().is_none_or(|c| !c.eq_ignore_ascii_case(b))),
            first_order: false,
        }
    }
}

impl Condition {
    pub fn matches(&self, o: &OrderFacts) -> bool {
        fn has<T: PartialEq>(list: &Option<Vec<T>>, v: Option<&T>) -> bool {
            match list {
                None => true,
                Some(list) => v.is_some_and(|v| list.contains(v)),
            }
        }
        fn any<T: PartialEq>(list: &Option<Vec<T>>, vs: &[T]) -> bool {
            match list {
                None => true,
                Some(list) => vs.iter().any(|v| list.contains(v)),
            }
        }
        has(&self.customer_tier, o.customer_tier.as_ref())
            && has(&self.channel, o.channel.as_ref())
            && any(&self.method, &o.methods)
            && any(&self.service_level, &o.service_levels)
            && has(&self.country, o.country.as_ref())
            && has(&self.region, o.region.as_ref())
            && self.order_value_min_minor.is_none_or(|min| o.order_value_minor >= min)
            && self.order_value_max_minor.is_none_or(|max| o.order_value_minor <= max)
            && self.any_hazmat.is_none_or(|h| h == o.any_hazmat)
            && self.ship_to_not_billing.is_none_or(|d| d == o.ship_to_not_billing)
            && self.first_order.is_none_or(|f| f == o.first_order)
    }

    /// Human-readable reasons the condition matched (for the explanation).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(v) = &self.customer_tier {
            parts.push(format!("customer_tier in {v:?}"));
        }
        if let Some(v) = &self.channel {
            parts.push(format!("channel in {:?}", v.iter().map(|c| c.as_str()).collect::<Vec<_>>()));
        }
        if let Some(v) = &self.method {
            parts.push(format!("a line's method in {:?}", v.iter().map(|m| m.as_str()).collect::<Vec<_>>()));
        }
        if let Some(v) = &self.service_level {
            parts.push(format!("a line's service_level in {v:?}"));
        }
        if let Some(v) = &self.country {
            parts.push(format!("country in {v:?}"));
        }
        if let Some(v) = &self.region {
            parts.push(format!("region in {v:?}"));
        }
        if let Some(v) = self.order_value_min_minor {
            parts.push(format!("order value >= {v}"));
        }
        if let Some(v) = self.order_value_max_minor {
            parts.push(format!("order value <= {v}"));
        }
        if let Some(v) = self.any_hazmat {
            parts.push(format!("any_hazmat = {v}"));
        }
        if let Some(v) = self.ship_to_not_billing {
            parts.push(format!("ship_to_not_billing = {v}"));
        }
        if let Some(v) = self.first_order {
            parts.push(format!("first_order = {v}"));
        }
        if parts.is_empty() { "matches every order".to_owned() } else { parts.join(" and ") }
    }
}
