//! The fulfillment network: nodes (DCs, stores, drop-ship vendors, …), what they can do,
//! whether they are open for work, their capacity and their handling costs.
//!
//! A node's local time exists only through its IANA time zone ([`TimeZoneName`]).

use crate::geo::GeoPoint;
use crate::ids::NodeId;
use crate::money::Currency;

/// Declares a closed set of values with one stable wire/storage spelling each. The same
/// spellings appear in the API, in the database `CHECK` constraints and in the docs.
/// Variants may carry doc comments.
macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$variant_doc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$variant_doc])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the wire spelling; `None` for anything else.
            pub fn parse(text: &str) -> Option<$name> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }

            /// The accepted spellings, for error messages.
            pub fn expected() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use wire_enum;

wire_enum!(
    /// What kind of place a node is.
    NodeType {
        Dc => "dc",
        Store => "store",
        DarkStore => "dark_store",
        Dropship => "dropship",
        ThirdPartyLogistics => "3pl",
        Locker => "locker",
        ReturnCenter => "return_center",
    }
);

wire_enum!(
    /// What a node can do.
    Capability {
        Ship => "ship",
        Pickup => "pickup",
        Curbside => "curbside",
        SameDay => "same_day",
        ShipToStore => "ship_to_store",
        Returns => "returns",
    }
);

wire_enum!(
    /// Whether a node takes new work. Paused and closed nodes contribute nothing to ATP.
    NodeStatus {
        Active => "active",
        Paused => "paused",
        Closed => "closed",
    }
);

/// An IANA time zone name that the bundled time zone database knows.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TimeZoneName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name:?} is not an IANA time zone name")]
pub struct UnknownTimeZone {
    pub name: String,
}

impl TimeZoneName {
    pub fn parse(name: &str) -> Result<TimeZoneName, UnknownTimeZone> {
        // `get` accepts "UTC" and "Etc/…" too; it is a pure lookup in the bundled tzdb.
        match jiff::tz::TimeZone::get(name) {
            Ok(_) if !name.is_empty() && name.len() <= 64 => Ok(TimeZoneName(name.to_owned())),
            _ => Err(UnknownTimeZone { name: name.to_owned() }),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Daily limits of a node; `None` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeCapacity {
    pub orders_per_day: Option<u32>,
    pub units_per_day: Option<u32>,
}

/// What handling an order at the node costs, in minor units of the node's currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeCosts {
    pub per_order_minor: i64,
    pub per_unit_minor: i64,
    pub currency: Currency,
}

/// Longest node name accepted, in characters.
pub const NODE_NAME_MAX_CHARS: usize = 200;

/// A fulfillment node as configured by the retailer.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub id: NodeId,
    pub node_type: NodeType,
    pub name: String,
    pub location: GeoPoint,
    pub time_zone: TimeZoneName,
    /// Sorted and without duplicates.
    pub capabilities: Vec<Capability>,
    pub status: NodeStatus,
    pub capacity: NodeCapacity,
    pub costs: NodeCosts,
}

impl Node {
    pub fn has(&self, capability: Capability) -> bool {
        self.capabilities.contains(&capability)
    }

    /// Whether the node's stock counts towards availability at all.
    pub fn is_active(&self) -> bool {
        self.status == NodeStatus::Active
    }
}

/// Sorts and de-duplicates a capability list (the canonical form stored and compared).
pub fn canonical_capabilities(mut capabilities: Vec<Capability>) -> Vec<Capability> {
    capabilities.sort();
    capabilities.dedup();
    capabilities
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_spellings_round_trip() {
        for t in NodeType::ALL {
            assert_eq!(NodeType::parse(t.as_str()), Some(*t));
        }
        for c in Capability::ALL {
            assert_eq!(Capability::parse(c.as_str()), Some(*c));
        }
        assert_eq!(NodeType::parse("3pl"), Some(NodeType::ThirdPartyLogistics));
        assert_eq!(NodeType::parse("DC"), None);
        assert_eq!(NodeStatus::expected(), "active, paused, closed");
    }

    #[test]
    fn time_zones_must_exist_in_the_bundled_database() {
        assert!(TimeZoneName::parse("America/Chicago").is_ok());
        assert!(TimeZoneName::parse("Pacific/Honolulu").is_ok());
        assert!(TimeZoneName::parse("Mars/Olympus_Mons").is_err());
        assert!(TimeZoneName::parse("").is_err());
    }
}
