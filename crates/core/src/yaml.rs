//! YAML in and out, with the budgets that keep hostile documents cheap.
//!
//! Every document is parsed under serde-saphyr's own per-document budget (events, nodes,
//! depth, aliases), which bounds the parser. That budget counts an alias as one event,
//! so a 6 KiB scalar aliased ten thousand times passes it and then expands to 60 MiB.
//! What a document *expands to* is therefore measured first, against a [`YamlBudget`] that
//! a caller shares between documents: one archive's Chart.yaml, values.yaml and
//! requirements.yaml files, of the chart and of every subchart, draw from one budget, so
//! subcharts do not multiply it. Only a document that fits is then deserialized.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Serialize, de::DeserializeOwned};

use crate::RegistryError;
use crate::error::bounded;

/// How much parsed YAML may expand to: nodes (scalars, sequences, mappings, each key
/// counted) and bytes of scalar text, aliases counted at their expanded size.
#[derive(Debug, Clone)]
pub struct YamlBudget {
    nodes_left: u64,
    bytes_left: u64,
    max_nodes: u64,
    max_bytes: u64,
    exceeded: bool,
}

impl YamlBudget {
    pub fn new(max_nodes: u64, max_bytes: u64) -> Self {
        Self { nodes_left: max_nodes, bytes_left: max_bytes, max_nodes, max_bytes, exceeded: false }
    }

    /// Nodes spent so far.
    pub fn nodes_used(&self) -> u64 {
        self.max_nodes - self.nodes_left
    }

    /// Scalar bytes spent so far.
    pub fn bytes_used(&self) -> u64 {
        self.max_bytes - self.bytes_left
    }

    /// Spends one node with `bytes` of text; `false` (and the budget marked exceeded) when
    /// there is not enough left.
    pub fn spend(&mut self, bytes: u64) -> bool {
        if self.exceeded || self.nodes_left == 0 || self.bytes_left < bytes {
            self.exceeded = true;
            return false;
        }
        self.nodes_left -= 1;
        self.bytes_left -= bytes;
        true
    }

    /// Spends `nodes` nodes holding `bytes` of text at once (a copy of a parsed value).
    pub fn spend_many(&mut self, nodes: u64, bytes: u64) -> bool {
        if self.exceeded || self.nodes_left < nodes || self.bytes_left < bytes {
            self.exceeded = true;
            return false;
        }
        self.nodes_left -= nodes;
        self.bytes_left -= bytes;
        true
    }

    /// Whether a spend failed.
    pub fn is_exceeded(&self) -> bool {
        self.exceeded
    }

    /// What the budget allows, for messages.
    pub fn describe(&self) -> String {
        format!("{} nodes and {} bytes of text", self.max_nodes, self.max_bytes)
    }
}

impl Default for YamlBudget {
    /// The budget of one stand-alone document.
    fn default() -> Self {
        Self::new(1_000_000, 64 * 1024 * 1024)
    }
}

fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_nodes: 1_000_000,
            max_depth: 50,
            max_aliases: 10_000,
            max_documents: 1,
        },
    }
}

/// Parses one YAML document from a chart file under its own budget.
pub fn from_yaml<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, RegistryError> {
    from_yaml_within(bytes, what, &mut YamlBudget::default())
}

/// Parses one YAML document, spending what it expands to from `budget`.
pub fn from_yaml_within<T: DeserializeOwned>(
    bytes: &[u8],
    what: &str,
    budget: &mut YamlBudget,
) -> Result<T, RegistryError> {
    let not_yaml = |e: serde_saphyr::Error| {
        RegistryError::invalid(format!("{what} is not valid YAML: {}", first_line(&bounded(&e, 512))))
    };
    let measured = serde_saphyr::with_deserializer_from_slice_with_options(bytes, options(), |de| {
        Measure { budget: &mut *budget, depth: 0 }.deserialize(de)
    });
    if budget.is_exceeded() {
        return Err(RegistryError::invalid(format!(
            "{what} is too large: YAML may expand to at most {}, aliases counted at their expanded size (one \
             budget covers every YAML file of a chart archive, subcharts included)",
            budget.describe()
        )));
    }
    measured.map_err(not_yaml)?;
    serde_saphyr::from_slice_with_options(bytes, options()).map_err(not_yaml)
}

/// Writes YAML; strings a YAML 1.1 reader would take for another type are quoted.
pub fn to_yaml<T: Serialize>(value: &T) -> Result<String, RegistryError> {
    serde_saphyr::to_string(value).map_err(RegistryError::internal)
}

fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or(message)
}

/// Walks a document as the deserializer expands it (aliases and merge keys replayed),
/// spending one node per scalar, sequence and mapping and the bytes of every string,
/// and stops at the first overrun without keeping anything.
struct Measure<'b> {
    budget: &'b mut YamlBudget,
    depth: usize,
}

/// The serde-saphyr depth budget bounds nesting long before this; it only keeps the
/// walk itself from recursing without end.
const MAX_MEASURE_DEPTH: usize = 256;

impl Measure<'_> {
    fn spend<E: de::Error>(&mut self, bytes: usize) -> Result<(), E> {
        if self.budget.spend(bytes as u64) { Ok(()) } else { Err(E::custom("YAML budget exceeded")) }
    }

    fn child(&mut self) -> Measure<'_> {
        Measure { budget: &mut *self.budget, depth: self.depth + 1 }
    }
}

impl<'de> DeserializeSeed<'de> for Measure<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        if self.depth > MAX_MEASURE_DEPTH {
            return Err(de::Error::custom("YAML nests too deep"));
        }
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Measure<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(mut self, _: bool) -> Result<(), E> {
        self.spend(0)
    }

    fn visit_i64<E: de::Error>(mut self, _: i64) -> Result<(), E> {
        self.spend(0)
    }

    fn visit_i128<E: de::Error>(mut self, _: i128) -> Result<(), E> {
        self.spend(0)
    }

    fn visit_u64<E: de::Error>(mut self, _: u64) -> Result<(), E> {
        self.spend(0)
    }

    fn visit_u128<E: de::Error>(mut self, _: u128) -> Result<(), E> {
        self.spend(0)
    }

    fn visit_f64<E: de::Error>(mut self, _: f64) -> Result<(), E> {
        self.spend(0)
    }

    fn visit_char<E: de::Error>(mut self, c: char) -> Result<(), E> {
        self.spend(c.len_utf8())
    }

    fn visit_str<E: de::Error>(mut self, value: &str) -> Result<(), E> {
        self.spend(value.len())
    }

    fn visit_bytes<E: de::Error>(mut self, value: &[u8]) -> Result<(), E> {
        self.spend(value.len())
    }

    fn visit_none<E: de::Error>(mut self) -> Result<(), E> {
        self.spend(0)
    }

    fn visit_unit<E: de::Error>(mut self) -> Result<(), E> {
        self.spend(0)
    }

    fn visit_some<D: Deserializer<'de>>(mut self, deserializer: D) -> Result<(), D::Error> {
        self.child().deserialize(deserializer)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(mut self, deserializer: D) -> Result<(), D::Error> {
        self.child().deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        self.spend::<A::Error>(0)?;
        while seq.next_element_seed(self.child())?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        self.spend::<A::Error>(0)?;
        while map.next_key_seed(self.child())?.is_some() {
            map.next_value_seed(self.child())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    fn aliases_count_at_their_expanded_size() {
        // One 1 KiB scalar, aliased 99 times: 2 KiB of input, 100 KiB expanded.
        let mut yaml = format!("big: &big \"{}\"\nlist:\n", "x".repeat(1024));
        for _ in 0..99 {
            yaml.push_str("- *big\n");
        }
        let mut roomy = YamlBudget::new(1000, 200 * 1024);
        from_yaml_within::<Value>(yaml.as_bytes(), "values.yaml", &mut roomy).unwrap();
        assert!(roomy.bytes_used() >= 100 * 1024, "{}", roomy.bytes_used());

        let mut tight = YamlBudget::new(1000, 50 * 1024);
        let error = from_yaml_within::<Value>(yaml.as_bytes(), "values.yaml", &mut tight).unwrap_err();
        assert!(error.to_string().contains("may expand to at most"), "{error}");
    }

    #[test]
    fn one_budget_spans_documents() {
        let yaml = format!("a: \"{}\"\n", "y".repeat(600));
        let mut budget = YamlBudget::new(1000, 1000);
        from_yaml_within::<Value>(yaml.as_bytes(), "first", &mut budget).unwrap();
        let error = from_yaml_within::<Value>(yaml.as_bytes(), "second", &mut budget).unwrap_err();
        assert!(error.to_string().starts_with("second is too large"), "{error}");
    }
}
