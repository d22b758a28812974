//! The names samplers give the orders (`permutation=`), written once: the table from a name to
//! the kind of order it stands for, the parsing of a name, and the lists messages show. Every
//! layer above (epochs, mixtures' sources, the bindings and so Python) reads names through it.

use crate::orders::torch::Generation;
use crate::util::error::{invalid, Error};

/// What an order name stands for, its keys (seed, epoch) aside.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrderKind {
    /// `torch.randperm` as the torch releases of the generation compute it.
    Torch(Generation),
    /// The keyed bijection of `orders::lazy::LazyPermutation`.
    Lazy,
    /// The identity (`shuffle=False`, the sequential sampler, a source's own order).
    Identity,
}

/// Every order name and its kind. `"torch"` is the order of torch 2.6 and later,
/// `"torch-legacy"` that of torch up to 2.5 (see `orders/torch.rs`).
const ORDERS: [(&str, OrderKind); 4] = [
    ("torch", OrderKind::Torch(Generation::Current)),
    ("torch-legacy", OrderKind::Torch(Generation::Legacy)),
    ("lazy", OrderKind::Lazy),
    ("identity", OrderKind::Identity),
];

/// The order names [`OrderKind::parse`] accepts, in the table's order.
pub const ORDER_NAMES: [&str; ORDERS.len()] = {
    let mut names = [""; ORDERS.len()];
    let mut i = 0;
    while i < ORDERS.len() {
        names[i] = ORDERS[i].0;
        i += 1;
    }
    names
};

impl OrderKind {
    /// The kind of the order named `name`; `ValueError` listing the names otherwise.
    pub fn parse(name: &str) -> Result<Self, Error> {
        Self::parse_among(name, |_| true)
    }

    /// The kind of the order named `name` if `accepted` takes it; `ValueError` listing the names
    /// it takes otherwise.
    pub fn parse_among(name: &str, accepted: impl Fn(OrderKind) -> bool) -> Result<Self, Error> {
        match ORDERS
            .iter()
            .find(|(n, kind)| *n == name && accepted(*kind))
        {
            Some(&(_, kind)) => Ok(kind),
            None => {
                let listed: Vec<String> = ORDERS
                    .iter()
                    .filter(|(_, kind)| accepted(*kind))
                    .map(|(n, _)| format!("'{n}'"))
                    .collect();
                Err(invalid(format!(
                    "permutation should be one of {}, got {name:?}",
                    listed.join(", ")
                )))
            }
        }
    }

    /// The torch generation named `name` (a torch order's name); `ValueError` otherwise.
    pub fn torch_generation(name: &str) -> Result<Generation, Error> {
        match Self::parse_among(name, |k| matches!(k, OrderKind::Torch(_)))? {
            OrderKind::Torch(generation) => Ok(generation),
            _ => unreachable!("only torch orders are accepted"),
        }
    }

    /// This kind's name.
    pub fn name(self) -> &'static str {
        ORDERS
            .iter()
            .find(|(_, kind)| *kind == self)
            .map(|(n, _)| *n)
            .expect("every kind is named")
    }

    /// Whether this order shuffles (every order but the identity).
    pub fn shuffles(self) -> bool {
        self != OrderKind::Identity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_to_its_kind_and_back() {
        for name in ORDER_NAMES {
            assert_eq!(OrderKind::parse(name).unwrap().name(), name);
        }
        assert_eq!(
            OrderKind::parse("torch-legacy"),
            Ok(OrderKind::Torch(Generation::Legacy))
        );
    }

    #[test]
    fn unknown_names_are_refused_with_the_accepted_ones() {
        let err = OrderKind::parse("random").unwrap_err();
        assert_eq!(
            err.to_string(),
            "permutation should be one of 'torch', 'torch-legacy', 'lazy', 'identity', got \"random\""
        );
        let err = OrderKind::torch_generation("lazy").unwrap_err();
        assert_eq!(
            err.to_string(),
            "permutation should be one of 'torch', 'torch-legacy', got \"lazy\""
        );
        assert_eq!(
            OrderKind::torch_generation("torch"),
            Ok(Generation::Current)
        );
        let err = OrderKind::parse_among("identity", OrderKind::shuffles).unwrap_err();
        assert_eq!(
            err.to_string(),
            "permutation should be one of 'torch', 'torch-legacy', 'lazy', got \"identity\""
        );
    }
}
