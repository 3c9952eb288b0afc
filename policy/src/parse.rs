//! YAML text → a located tree ([`Node`]) that validation walks by hand.
//!
//! Why not `#[serde(deny_unknown_fields)]` structs like the proxy config: serde stops at the
//! first unknown key, missing key, duplicate key or wrong type, and its message names neither the
//! order id nor the key path. A policy file is edited under a 30-minute legal deadline, so
//! `check` must list every mistake at once, each with its order id. So serde-saphyr (pure Rust,
//! bounded aliases and nesting) builds a small generic tree where every node keeps its line and
//! duplicate keys are passed through to us; `validate.rs` then reads that tree into the typed
//! structs of `model.rs` (struct literals, so a new field does not compile until it is read).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{DuplicateKeyPolicy, Spanned};

/// One YAML node and the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node<'t> {
    pub(crate) line: u32,
    pub(crate) value: Value<'t>,
}

/// A YAML value as inferred by serde-saphyr's core schema (YAML 1.1 booleans included, which is
/// exactly why a country list must refuse booleans rather than drop them).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value<'t> {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    /// Borrowed from the text where it can be (JSON strings without escapes): a million-host
    /// table is then not a million string copies made only to be validated and dropped.
    Str(Cow<'t, str>),
    Seq(Vec<Node<'t>>),
    /// Keys in file order, duplicates kept (validation reports them).
    Map(Vec<(Node<'t>, Node<'t>)>),
}

impl Value<'_> {
    /// What a value is, for "expected a string, found …" messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "a number",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// Parses YAML text into a located tree. Syntax errors, alias bombs and excessive nesting are
/// refused here (serde-saphyr's budget), with the line of the problem.
///
/// The budget's alias, anchor and depth limits stay at serde-saphyr's defaults; the node, event
/// and scalar limits are raised so a table of millions of hosts (five nodes and a dozen events
/// per `{ name: …, include_subdomains: … }` entry) loads.
pub(crate) fn parse_tree(text: &str) -> Result<Node<'static>, serde_saphyr::Error> {
    let options = serde_saphyr::options! {
        duplicate_keys: DuplicateKeyPolicy::PassThrough,
        budget: serde_saphyr::budget! {
            max_nodes: 64_000_000,
            max_events: 256_000_000,
            max_total_scalar_bytes: 1 << 30,
        },
    };
    serde_saphyr::from_str_with_options(text, options)
}

impl<'de> Deserialize<'de> for Node<'static> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Value<'static>>::deserialize(d)?;
        Ok(Node {
            line: u32::try_from(spanned.referenced.line()).unwrap_or(u32::MAX),
            value: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for Value<'static> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value<'static>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value<'static>, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value<'static>, E> {
        Ok(Value::Int(v.into()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value<'static>, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value<'static>, E> {
        Ok(Value::Int(v.into()))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value<'static>, E> {
        Ok(i128::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value<'static>, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value<'static>, E> {
        Ok(Value::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value<'static>, E> {
        Ok(Value::Str(Cow::Owned(v)))
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Value<'static>, E> {
        Err(E::custom("binary values are not allowed in a policy file"))
    }
    fn visit_none<E: de::Error>(self) -> Result<Value<'static>, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value<'static>, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value<'static>, D::Error> {
        Value::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value<'static>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node<'static>>()? {
            items.push(item);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value<'static>, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Node<'static>>()? {
            let value = map.next_value::<Node<'static>>()?;
            entries.push((key, value));
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(text: &str) -> Node<'static> {
        match parse_tree(text) {
            Ok(n) => n,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn keeps_lines_types_and_duplicates() {
        let t = tree("a: 1\nb: \"NO\"\nc: NO\nd: [x, 2]\na: ~\ne: '123'\n");
        let Value::Map(entries) = t.value else {
            panic!("not a map")
        };
        let got: Vec<(u32, &Value)> = entries.iter().map(|(k, v)| (k.line, &v.value)).collect();
        assert_eq!(got[0], (1, &Value::Int(1)));
        assert_eq!(got[1], (2, &Value::Str("NO".into())));
        assert_eq!(got[2], (3, &Value::Bool(false)));
        assert!(matches!(got[3], (4, Value::Seq(_))));
        assert_eq!(got[4], (5, &Value::Null));
        assert_eq!(got[5], (6, &Value::Str("123".into())));
    }

    #[test]
    fn refuses_broken_yaml() {
        assert!(parse_tree("a: [1, 2\n").is_err());
        assert!(parse_tree("a: *nope\n").is_err());
    }
}
