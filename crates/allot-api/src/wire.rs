//! Enumerations as they appear on the wire, mirrored from the core with their OpenAPI
//! schema. The spellings are the core's (`as_str`); a test checks the two agree.

use serde::{Deserialize, Serialize};

macro_rules! wire_enum {
    ($(#[doc = $doc:literal])* $name:ident => $core:path { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        pub enum $name { $(#[serde(rename = $text)] $variant),+ }

        // By hand: the derive does not read `rename` through a macro's literal, and would
        // document the Rust names (`Dc`) instead of the wire's (`dc`).
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                let description = [$($doc.trim()),*].join(" ");
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description((!description.is_empty()).then_some(description))
                    .enum_values(Some([$($text),+]))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }

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

    /// The values the OpenAPI document lists for a wire enum.
    fn documented<T: utoipa::PartialSchema>() -> Vec<String> {
        let schema = serde_json::to_value(T::schema()).unwrap();
        schema["enum"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
    }

    #[test]
    fn the_document_lists_the_wire_spellings() {
        let spelled = |all: Vec<&str>| all.into_iter().map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(documented::<NodeType>(), spelled(allot_core::NodeType::ALL.iter().map(|v| v.as_str()).collect()));
        assert_eq!(
            documented::<Capability>(),
            spelled(allot_core::Capability::ALL.iter().map(|v| v.as_str()).collect())
        );
        assert_eq!(
            documented::<NodeStatus>(),
            spelled(allot_core::NodeStatus::ALL.iter().map(|v| v.as_str()).collect())
        );
        assert_eq!(
            documented::<FulfillmentMethod>(),
            spelled(allot_core::FulfillmentMethod::ALL.iter().map(|v| v.as_str()).collect())
        );
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
