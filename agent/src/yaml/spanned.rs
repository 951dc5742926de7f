//! [`Spanned`]: a value with its position, asked of the tree through a newtype of a
//! private name (the tree's deserializer answers it with the node's four position numbers,
//! then the node: `de::SpannedParts`).

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

use super::Location;

/// The name by which [`Spanned`] asks the tree for a node's positions.
pub(super) const SPANNED: &str = "$nodewarden::yaml::Spanned";

/// A value and where it is in the YAML text, for messages that name file:line:column.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Spanned<T> {
    pub value: T,
    /// Where the value is used: an alias's own position.
    pub referenced: Location,
    /// Where the value was written: the anchored node's position (else as `referenced`).
    pub defined: Location,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Spanned<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_newtype_struct(SPANNED, SpannedVisitor(PhantomData))
    }
}

struct SpannedVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for SpannedVisitor<T> {
    type Value = Spanned<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a value read from nodewarden's YAML tree")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Spanned<T>, A::Error> {
        let mut n = [0u64; 4];
        for (i, slot) in n.iter_mut().enumerate() {
            *slot = seq
                .next_element()?
                .ok_or_else(|| de::Error::invalid_length(i, &self))?;
        }
        let value = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(4, &self))?;
        Ok(Spanned {
            value,
            referenced: Location::new(n[0], n[1]),
            defined: Location::new(n[2], n[3]),
        })
    }
}
