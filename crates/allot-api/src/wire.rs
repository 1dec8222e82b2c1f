//! Enumerations as they appear on the wire, mirrored from the core with their OpenAPI
//! schema. The spellings are the core's (`as_str`); a test checks the two agree.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident => $core:path { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
        pub enum $name { $(#[serde(rename = $text)] $variant),+ }

        impl From<$name> for $core {
            fn from(v: $name) -> $core {
                match v { $($name::$variant => <$core>::$variant),+ }
            }
        }

        impl From<$core> for $name {
            fn from(v: $core) -> $name {
                match v { $(<$core>::$variant => $name::$variant),+ }
            }
        }
    };
}

wire_enum!(
    /// Kind of node.
    NodeType => allot_core::NodeType {
        Dc = "dc", Store = "store", DarkStore = "dark_store", Dropship = "dropship",
        ThirdPartyLogistics = "3pl", Locker = "locker", ReturnCenter = "return_center",
    }
);
wire_enum!(
    /// What a node can do.
    Capability => allot_core::Capability {
        Ship = "ship", Pickup = "pickup", Curbside = "curbside", SameDay = "same_day",
        ShipToStore = "ship_to_store", Returns = "returns",
    }
);
wire_enum!(
    /// Whether a node takes work; only active nodes count towards availability.
    NodeStatus => allot_core::NodeStatus { Active = "active", Paused = "paused", Closed = "closed" }
);
wire_enum!(
    /// How a line reaches the customer.
    FulfillmentMethod => allot_core::FulfillmentMethod {
        Ship = "ship", Pickup = "pickup", Curbside = "curbside", ShipToStore = "ship_to_store", SameDay = "same_day",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    fn spelling<T: Serialize>(v: T) -> String {
        serde_json::to_value(v).unwrap().as_str().unwrap().to_owned()
    }

    #[test]
    fn wire_spellings_are_the_core_spellings() {
        for v in allot_core::NodeType::ALL {
            assert_eq!(spelling(NodeType::from(*v)), v.as_str());
        }
        for v in allot_core::Capability::ALL {
            assert_eq!(spelling(Capability::from(*v)), v.as_str());
        }
        for v in allot_core::NodeStatus::ALL {
            assert_eq!(spelling(NodeStatus::from(*v)), v.as_str());
        }
        for v in allot_core::FulfillmentMethod::ALL {
            assert_eq!(spelling(FulfillmentMethod::from(*v)), v.as_str());
        }
    }
}
