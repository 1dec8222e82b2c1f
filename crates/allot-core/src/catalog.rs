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

    /// A carrier or courier takes the units to the customer's address (ship, same_day):
    /// the line needs the address's coordinates, and a service level and a delivery
    /// promise apply to it.
    pub fn ships_to_customer(self) -> bool {
        match self {
            FulfillmentMethod::Ship | FulfillmentMethod::SameDay => true,
            FulfillmentMethod::Pickup | FulfillmentMethod::Curbside | FulfillmentMethod::ShipToStore => false,
        }
    }

    /// The customer collects the units at a store, inside or at the curb (pickup,
    /// curbside): a pickup promise covers the line, and its work is a pickup fulfillment
    /// order ([`crate::FoKind::Pickup`]).
    pub fn at_counter(self) -> bool {
        match self {
            FulfillmentMethod::Pickup | FulfillmentMethod::Curbside => true,
            FulfillmentMethod::Ship | FulfillmentMethod::SameDay | FulfillmentMethod::ShipToStore => false,
        }
    }

    /// The line names the store it goes to (`pickup_node_id`): pickup, curbside and
    /// ship_to_store.
    pub fn needs_node(self) -> bool {
        match self {
            FulfillmentMethod::Pickup | FulfillmentMethod::Curbside | FulfillmentMethod::ShipToStore => true,
            FulfillmentMethod::Ship | FulfillmentMethod::SameDay => false,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FoKind;

    #[test]
    fn each_method_says_where_its_units_go() {
        use FulfillmentMethod as M;
        // (method, ships_to_customer, at_counter, needs_node)
        for (method, ships, counter, node) in [
            (M::Ship, true, false, false),
            (M::SameDay, true, false, false),
            (M::Pickup, false, true, true),
            (M::Curbside, false, true, true),
            (M::ShipToStore, false, false, true),
        ] {
            assert_eq!(
                (method.ships_to_customer(), method.at_counter(), method.needs_node()),
                (ships, counter, node),
                "{method}"
            );
        }
    }

    #[test]
    fn a_line_goes_to_the_customer_or_names_its_store_never_both() {
        for method in FulfillmentMethod::ALL.iter().copied() {
            assert_ne!(method.ships_to_customer(), method.needs_node(), "{method}");
            if method.at_counter() {
                assert!(method.needs_node(), "{method}");
            }
        }
    }

    #[test]
    fn counter_lines_are_exactly_the_ones_served_by_pickup_fulfillment_orders() {
        for method in FulfillmentMethod::ALL.iter().copied() {
            assert_eq!(method.at_counter(), FoKind::of(method) == FoKind::Pickup, "{method}");
        }
    }
}
