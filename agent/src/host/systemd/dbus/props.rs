//! The reply to `org.freedesktop.DBus.Properties.GetAll`, decoded into the nine
//! properties the agent reads and nothing else.
//!
//! Why (issue 15, docs/benchmarks.md pass 5): a unit's status was two `GetAll` calls
//! (the `Unit` and the `Service` interface), each decoded into a map of every property,
//! about 330 of them with their arrays and structures (`ExecStart`, the dependency
//! lists), all allocated and then dropped. The probes read two units every 10 s; on the
//! testbed that decoding and its `malloc` were the largest user-space cost of an idle
//! agent. Now one `GetAll("")` asks for every interface at once (sd-bus, systemd's bus
//! library since before 219: an empty interface name means all of them,
//! `object_find_and_run` in `bus-objects.c`), and this decoder keeps the nine
//! properties, skips every other value in place (`IgnoredAny`, no allocation) and
//! borrows the names from the message.
//!
//! A property of an unexpected type is skipped like an unknown one, so a systemd that
//! changed a type reads as the property missing (the same as `try_from` failing on the
//! map before), never as an error.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use zbus::OwnedVariant;
use zbus::wire::{Signature, Type};

/// The properties of one unit the agent uses; each `None` when systemd did not send it
/// (an older systemd, another unit type) or sent another type.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct UnitProps {
    pub id: Option<String>,
    pub load_state: Option<String>,
    pub active_state: Option<String>,
    pub sub_state: Option<String>,
    /// `InvocationID`: 16 bytes (systemd ≥ 232).
    pub invocation_id: Option<Vec<u8>>,
    /// µs since the epoch, 0 = never.
    pub active_enter_us: Option<u64>,
    pub inactive_exit_us: Option<u64>,
    /// `Service.MainPID`, 0 = none.
    pub main_pid: Option<u32>,
    /// `Service.NRestarts` (systemd ≥ 235).
    pub n_restarts: Option<u32>,
}

impl UnitProps {
    /// Fill what `self` lacks from `other` (the Service interface's reply after the
    /// Unit's, when they are read one interface at a time).
    pub fn merge(&mut self, other: UnitProps) {
        fn or<T>(a: &mut Option<T>, b: Option<T>) {
            if a.is_none() {
                *a = b;
            }
        }
        or(&mut self.id, other.id);
        or(&mut self.load_state, other.load_state);
        or(&mut self.active_state, other.active_state);
        or(&mut self.sub_state, other.sub_state);
        or(&mut self.invocation_id, other.invocation_id);
        or(&mut self.active_enter_us, other.active_enter_us);
        or(&mut self.inactive_exit_us, other.inactive_exit_us);
        or(&mut self.main_pid, other.main_pid);
        or(&mut self.n_restarts, other.n_restarts);
    }
}

/// The reply's body is `a{sv}`, the signature of the map it used to be decoded into.
impl Type for UnitProps {
    const SIGNATURE: &'static Signature =
        <std::collections::HashMap<String, OwnedVariant> as Type>::SIGNATURE;
}

impl<'de> serde::Deserialize<'de> for UnitProps {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(PropsVisitor)
    }
}

struct PropsVisitor;

impl<'de> Visitor<'de> for PropsVisitor {
    type Value = UnitProps;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of property names to variants")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UnitProps, A::Error> {
        let mut p = UnitProps::default();
        while let Some(name) = map.next_key::<Name<'de>>()? {
            match name.0 {
                "Id" => p.id = map.next_value_seed(Typed::new("s"))?,
                "LoadState" => p.load_state = map.next_value_seed(Typed::new("s"))?,
                "ActiveState" => p.active_state = map.next_value_seed(Typed::new("s"))?,
                "SubState" => p.sub_state = map.next_value_seed(Typed::new("s"))?,
                "InvocationID" => p.invocation_id = map.next_value_seed(Typed::new("ay"))?,
                "ActiveEnterTimestamp" => {
                    p.active_enter_us = map.next_value_seed(Typed::new("t"))?
                }
                "InactiveExitTimestamp" => {
                    p.inactive_exit_us = map.next_value_seed(Typed::new("t"))?
                }
                "MainPID" => p.main_pid = map.next_value_seed(Typed::new("u"))?,
                "NRestarts" => p.n_restarts = map.next_value_seed(Typed::new("u"))?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(p)
    }
}

/// A property name, borrowed from the message.
struct Name<'de>(&'de str);

impl<'de> serde::Deserialize<'de> for Name<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'de str>::deserialize(d).map(Name)
    }
}

/// A variant whose value is kept when its signature is `sig`, skipped otherwise.
struct Typed<T> {
    sig: &'static str,
    _t: std::marker::PhantomData<T>,
}

impl<T> Typed<T> {
    fn new(sig: &'static str) -> Self {
        Typed {
            sig,
            _t: std::marker::PhantomData,
        }
    }
}

impl<'de, T: serde::Deserialize<'de>> DeserializeSeed<'de> for Typed<T> {
    type Value = Option<T>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
        // zbus hands a variant over as a sequence: its signature, then its value.
        d.deserialize_seq(self)
    }
}

impl<'de, T: serde::Deserialize<'de>> Visitor<'de> for Typed<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a variant")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<T>, A::Error> {
        let Some(sig) = seq.next_element::<Name<'de>>()? else {
            return Err(de::Error::invalid_length(0, &self));
        };
        if sig.0 == self.sig {
            seq.next_element::<T>()
        } else {
            seq.next_element::<IgnoredAny>().map(|_| None)
        }
    }
}

#[cfg(test)]
mod tests;
