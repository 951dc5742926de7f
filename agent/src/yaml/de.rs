//! A serde `Deserializer` over the tree ([`Node`]): gives the tree the caller's type,
//! positioning each error at the node it is about.

use serde::de::value::U64Deserializer;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess,
    SeqAccess, Unexpected, VariantAccess, Visitor,
};

use super::scalar::{parse_i64, parse_u64, plain_token_at, yaml_bool};
use super::spanned::SPANNED;
use super::tree::{Kind, Node};
use super::{Error, Location};

/// What every node of one document shares while it is typed.
struct Ctx<'t> {
    /// The source, to give a string field the text of a plain scalar the parser typed.
    text: &'t str,
    /// Whether a boolean field reads YAML 1.1's yes/no/on/off.
    yaml11_booleans: bool,
}

/// `root` (`None`: an empty document, read as null) typed as `T`.
pub(super) fn type_tree<T: DeserializeOwned>(
    root: Option<Node>,
    text: &str,
    yaml11_booleans: bool,
) -> Result<T, Error> {
    let ctx = Ctx {
        text,
        yaml11_booleans,
    };
    let node = root.unwrap_or(Node {
        kind: Kind::Null,
        referenced: Location::new(1, 1),
        defined: Location::new(1, 1),
    });
    T::deserialize(De { node, ctx: &ctx })
}

struct De<'c, 't> {
    node: Node,
    ctx: &'c Ctx<'t>,
}

impl<'c, 't> De<'c, 't> {
    fn at(&self) -> Location {
        self.node.referenced
    }

    fn unexpected(&self) -> Unexpected<'_> {
        match &self.node.kind {
            Kind::Null => Unexpected::Unit,
            Kind::Bool(b) => Unexpected::Bool(*b),
            Kind::U64(v) => Unexpected::Unsigned(*v),
            Kind::I64(v) => Unexpected::Signed(*v),
            Kind::F64(v) => Unexpected::Float(*v),
            Kind::Str(s) => Unexpected::Str(s),
            Kind::Seq(_) => Unexpected::Seq,
            Kind::Map(_) => Unexpected::Map,
        }
    }

    fn invalid_type(&self, exp: &dyn de::Expected) -> Error {
        de::Error::invalid_type(self.unexpected(), exp)
    }

    /// The scalar's text as written: a string's value, else the plain scalar at the
    /// node's position in the source when it reads back as the value the parser found
    /// (`1.10`, `010`, `True`), else the value printed.
    fn scalar_text(&self) -> Option<String> {
        let typed = match &self.node.kind {
            Kind::Str(s) => return Some(s.clone()),
            Kind::Bool(b) => b.to_string(),
            Kind::U64(v) => v.to_string(),
            Kind::I64(v) => v.to_string(),
            Kind::F64(v) => v.to_string(),
            Kind::Null | Kind::Seq(_) | Kind::Map(_) => return None,
        };
        let raw = plain_token_at(self.ctx.text, self.node.defined);
        let same = raw.is_some_and(|raw| match &self.node.kind {
            Kind::Bool(b) => raw.eq_ignore_ascii_case(&b.to_string()),
            Kind::U64(v) => parse_u64(raw) == Some(*v),
            Kind::I64(v) => parse_i64(raw) == Some(*v),
            Kind::F64(v) => raw.parse::<f64>().ok() == Some(*v),
            _ => false,
        });
        Some(match raw {
            Some(raw) if same => raw.to_string(),
            _ => typed,
        })
    }
}

/// A number of at most 64 bits (the width serde's integer visitors check against theirs),
/// read from a typed node or a string's text.
enum Num {
    U(u64),
    I(i64),
    F(f64),
}

impl<'c, 't> De<'c, 't> {
    fn number(&self) -> Option<Num> {
        match &self.node.kind {
            Kind::U64(v) => Some(Num::U(*v)),
            Kind::I64(v) => Some(Num::I(*v)),
            Kind::F64(v) => Some(Num::F(*v)),
            Kind::Str(s) => {
                let t = s.trim();
                parse_u64(t)
                    .map(Num::U)
                    .or_else(|| parse_i64(t).map(Num::I))
                    .or_else(|| t.parse::<f64>().ok().map(Num::F))
            }
            _ => None,
        }
    }

    fn integer<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let at = self.at();
        match self.number() {
            Some(Num::U(v)) => visitor.visit_u64(v),
            Some(Num::I(v)) => visitor.visit_i64(v),
            _ => Err(self.invalid_type(&visitor)),
        }
        .map_err(|e| e.at(at))
    }

    fn float<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let at = self.at();
        match self.number() {
            Some(Num::U(v)) => visitor.visit_f64(v as f64),
            Some(Num::I(v)) => visitor.visit_f64(v as f64),
            Some(Num::F(v)) => visitor.visit_f64(v),
            None => Err(self.invalid_type(&visitor)),
        }
        .map_err(|e| e.at(at))
    }

    fn string<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let at = self.at();
        match self.scalar_text() {
            Some(s) => visitor.visit_string(s),
            None => Err(self.invalid_type(&visitor)),
        }
        .map_err(|e| e.at(at))
    }
}

/// `fn deserialize_x(self, v) { self.how(v) }` for each method named after `how:`.
macro_rules! forward_to {
    ($($how:ident: $($method:ident)+;)+) => {
        $($(
            fn $method<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
                self.$how(v)
            }
        )+)+
    };
}

impl<'de, 'c, 't> Deserializer<'de> for De<'c, 't> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let at = self.at();
        let ctx = self.ctx;
        match self.node.kind {
            Kind::Null => visitor.visit_unit(),
            Kind::Bool(b) => visitor.visit_bool(b),
            Kind::U64(v) => visitor.visit_u64(v),
            Kind::I64(v) => visitor.visit_i64(v),
            Kind::F64(v) => visitor.visit_f64(v),
            Kind::Str(s) => visitor.visit_string(s),
            Kind::Seq(items) => visit_seq(items, ctx, at, visitor),
            Kind::Map(entries) => visit_map(entries, ctx, visitor),
        }
        .map_err(|e| e.at(at))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let at = self.at();
        let b = match &self.node.kind {
            Kind::Bool(b) => Some(*b),
            Kind::Str(s) => yaml_bool(s.trim(), self.ctx.yaml11_booleans),
            _ => None,
        };
        match b {
            Some(b) => visitor.visit_bool(b),
            None => Err(self.invalid_type(&visitor)),
        }
        .map_err(|e| e.at(at))
    }

    forward_to! {
        integer: deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
            deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64;
        float: deserialize_f32 deserialize_f64;
        string: deserialize_char deserialize_str deserialize_string deserialize_identifier
            deserialize_bytes deserialize_byte_buf;
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let at = self.at();
        match self.node.kind {
            Kind::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
        .map_err(|e| e.at(at))
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let at = self.at();
        match self.node.kind {
            Kind::Null => visitor.visit_unit(),
            _ => Err(self.invalid_type(&visitor)),
        }
        .map_err(|e| e.at(at))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        if name == SPANNED {
            let at = self.at();
            return visitor
                .visit_seq(SpannedParts {
                    parts: [
                        self.node.referenced.line(),
                        self.node.referenced.column(),
                        self.node.defined.line(),
                        self.node.defined.column(),
                    ],
                    next: 0,
                    de: Some(self),
                })
                .map_err(|e| e.at(at));
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let at = self.at();
        match self.node.kind {
            Kind::Seq(items) => visit_seq(items, self.ctx, at, visitor),
            // `key:` with nothing after it: an empty list, as serde-saphyr reads it.
            Kind::Null => visit_seq(Vec::new(), self.ctx, at, visitor),
            _ => Err(self.invalid_type(&visitor)),
        }
        .map_err(|e| e.at(at))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, v: V) -> Result<V::Value, Error> {
        self.deserialize_seq(v)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        v: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(v)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let at = self.at();
        match self.node.kind {
            Kind::Map(entries) => visit_map(entries, self.ctx, visitor),
            // `key:` with nothing after it: an empty mapping, as serde-saphyr reads it.
            Kind::Null => visit_map(Vec::new(), self.ctx, visitor),
            _ => Err(self.invalid_type(&visitor)),
        }
        .map_err(|e| e.at(at))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let at = self.at();
        let ctx = self.ctx;
        match self.node.kind {
            Kind::Str(s) => visitor.visit_enum(IntoDeserializer::<Error>::into_deserializer(s)),
            Kind::Map(entries) if entries.len() == 1 => {
                let mut entries = entries;
                match entries.pop() {
                    Some((key, value)) => visitor.visit_enum(Variant { key, value, ctx }),
                    None => Err(de::Error::invalid_length(0, &"a mapping with one key")),
                }
            }
            Kind::Map(entries) => Err(de::Error::invalid_length(
                entries.len(),
                &"a mapping with exactly one key, the variant's name",
            )),
            _ => Err(self.invalid_type(&visitor)),
        }
        .map_err(|e| e.at(at))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

fn visit_seq<'de, V: Visitor<'de>>(
    items: Vec<Node>,
    ctx: &Ctx<'_>,
    at: Location,
    visitor: V,
) -> Result<V::Value, Error> {
    let len = items.len();
    let mut access = Seq {
        items: items.into_iter(),
        ctx,
    };
    let value = visitor.visit_seq(&mut access)?;
    if access.items.len() > 0 {
        return Err(<Error as de::Error>::invalid_length(len, &"fewer elements").at(at));
    }
    Ok(value)
}

fn visit_map<'de, V: Visitor<'de>>(
    entries: Vec<(Node, Node)>,
    ctx: &Ctx<'_>,
    visitor: V,
) -> Result<V::Value, Error> {
    visitor.visit_map(Map {
        entries: entries.into_iter(),
        value: None,
        ctx,
    })
}

struct Seq<'c, 't> {
    items: std::vec::IntoIter<Node>,
    ctx: &'c Ctx<'t>,
}

impl<'de, 'c, 't> SeqAccess<'de> for &mut Seq<'c, 't> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        match self.items.next() {
            Some(node) => seed
                .deserialize(De {
                    node,
                    ctx: self.ctx,
                })
                .map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct Map<'c, 't> {
    entries: std::vec::IntoIter<(Node, Node)>,
    value: Option<Node>,
    ctx: &'c Ctx<'t>,
}

impl<'de, 'c, 't> MapAccess<'de> for Map<'c, 't> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.entries.next() {
            Some((key, value)) => {
                self.value = Some(value);
                seed.deserialize(De {
                    node: key,
                    ctx: self.ctx,
                })
                .map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, Error> {
        match self.value.take() {
            Some(node) => seed.deserialize(De {
                node,
                ctx: self.ctx,
            }),
            None => Err(de::Error::custom("a mapping value was read before its key")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// An enum written as a mapping of one key: `restartUnit: {unit: kubelet.service}`.
struct Variant<'c, 't> {
    key: Node,
    value: Node,
    ctx: &'c Ctx<'t>,
}

impl<'de, 'c, 't> EnumAccess<'de> for Variant<'c, 't> {
    type Error = Error;
    type Variant = De<'c, 't>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, De<'c, 't>), Error> {
        let v = seed.deserialize(De {
            node: self.key,
            ctx: self.ctx,
        })?;
        Ok((
            v,
            De {
                node: self.value,
                ctx: self.ctx,
            },
        ))
    }
}

impl<'de, 'c, 't> VariantAccess<'de> for De<'c, 't> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        match self.node.kind {
            Kind::Null => Ok(()),
            _ => Err(self
                .invalid_type(&"a variant without a value")
                .at(self.at())),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, v: V) -> Result<V::Value, Error> {
        self.deserialize_seq(v)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_map(v)
    }
}

/// A node's four position numbers, then the node.
struct SpannedParts<'c, 't> {
    parts: [u64; 4],
    next: usize,
    de: Option<De<'c, 't>>,
}

impl<'de, 'c, 't> SeqAccess<'de> for SpannedParts<'c, 't> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        if let Some(&n) = self.parts.get(self.next) {
            self.next += 1;
            return seed.deserialize(U64Deserializer::<Error>::new(n)).map(Some);
        }
        match self.de.take() {
            Some(de) => seed.deserialize(de).map(Some),
            None => Ok(None),
        }
    }
}
