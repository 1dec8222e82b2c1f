//! The catalog: items (SKUs) with the attributes that matter to fulfillment.

use crate::ids::Sku;
use crate::network::wire_enum;

wire_enum!(
    /// How a line reaches the customer.
    FulfillmentMethod {
        Ship => "ship",
        Pickup => "pickup",
        Curbside => "curbside",
        ShipToStore => "ship_to_store",
        SameDay => "same_day",
    }
);

impl FulfillmentMethod {
    /// The node capability a node needs to fulfil a line by this method.
    pub fn required_capability(self) -> crate::network::Capability {
        use crate::network::Capability;
        match self {
            FulfillmentMethod::Ship => Capability::Ship,
            FulfillmentMethod::Pickup => Capability::Pickup,
            FulfillmentMethod::Curbside => Capability::Curbside,
            FulfillmentMethod::ShipToStore => Capability::ShipToStore,
            FulfillmentMethod::SameDay => Capability::SameDay,
        }
    }
}

/// Longest item name accepted, in characters.
pub const ITEM_NAME_MAX_CHARS: usize = 500;
/// Most substitutes an item may list.
pub const SUBSTITUTES_MAX: usize = 20;

/// A sellable item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub sku: Sku,
    pub name: String,
    pub weight_g: u32,
    /// Length, width, height in millimetres, when known.
    pub dims_mm: Option<[u32; 3]>,
    pub hazmat: bool,
    /// Must travel in a package of its own.
    pub ship_alone: bool,
    /// Methods by which the item may be fulfilled; sorted, no duplicates, never empty.
    pub methods: Vec<FulfillmentMethod>,
    /// Items that may replace this one when a customer allows it, in order of preference.
    pub substitutes: Vec<Sku>,
}

impl Item {
    pub fn allows(&self, method: FulfillmentMethod) -> bool {
        self.methods.contains(&method)
    }
}
