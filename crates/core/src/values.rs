//! Values: Helm's coalescing of a chart's defaults with its subcharts' defaults.

use serde_json::{Map, Value};

use crate::RegistryError;
use crate::archive::{Chart, Limits};
use crate::yaml::YamlBudget;

/// The values Helm would compute for the chart with no user overrides: the chart's own
/// `values.yaml`, with each subchart's coalesced values under the subchart's name (the
/// parent's settings win), and the parent's `global` passed down. A `null` in the parent
/// deletes the subchart's default, as in Helm.
///
/// Every subchart gets a copy of its parent's `global`, so the answer can be many times
/// larger than the values.yaml files it comes from. It is built under the same budget as
/// the chart's YAML ([`Limits::max_yaml_nodes`], [`Limits::max_yaml_bytes`]), copies
/// included, and refused once it would exceed it.
pub fn coalesce(chart: &Chart, limits: &Limits) -> Result<Value, RegistryError> {
    let mut budget = YamlBudget::new(limits.max_yaml_nodes, limits.max_yaml_bytes);
    coalesce_within(chart, &mut budget).map(Value::Object).ok_or_else(|| {
        RegistryError::invalid(format!(
            "the chart's values are too large: with every subchart's defaults and a copy of `global` for each \
             subchart they come to more than {}",
            budget.describe()
        ))
    })
}

fn coalesce_within(chart: &Chart, budget: &mut YamlBudget) -> Option<Map<String, Value>> {
    let (nodes, bytes) = map_cost(&chart.values);
    if !budget.spend_many(nodes, bytes) {
        return None;
    }
    let mut values = chart.values.clone();
    let parent_globals = values.get("global").and_then(Value::as_object).cloned();
    let globals_cost = parent_globals.as_ref().map(map_cost);
    for subchart in &chart.subcharts {
        let mut defaults = coalesce_within(subchart, budget)?;
        if let (Some(globals), Some((nodes, bytes))) = (&parent_globals, globals_cost) {
            if !budget.spend_many(nodes, bytes) {
                return None;
            }
            let entry = defaults.entry("global").or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(sub_globals) = entry {
                for (k, v) in globals {
                    sub_globals.insert(k.clone(), v.clone());
                }
            }
        }
        let name = subchart.metadata.name.clone();
        match values.get_mut(&name) {
            Some(Value::Object(overrides)) => merge_defaults(overrides, defaults),
            Some(_) => {} // a scalar set by the parent replaces the whole table
            None => {
                values.insert(name, Value::Object(defaults));
            }
        }
    }
    drop_nulls(&mut values);
    Some(values)
}

/// Nodes and text bytes of a table, counted as the YAML budget counts them.
fn map_cost(map: &Map<String, Value>) -> (u64, u64) {
    let mut cost = (1, 0);
    for (key, value) in map {
        let (nodes, bytes) = value_cost(value);
        cost = (cost.0 + 1 + nodes, cost.1 + key.len() as u64 + bytes);
    }
    cost
}

fn value_cost(value: &Value) -> (u64, u64) {
    match value {
        Value::String(s) => (1, s.len() as u64),
        Value::Array(items) => items.iter().map(value_cost).fold((1, 0), |a, b| (a.0 + b.0, a.1 + b.1)),
        Value::Object(map) => map_cost(map),
        _ => (1, 0),
    }
}

/// Applies user values over defaults, as `helm install --set`/`-f` do: tables merge key by
/// key, anything else replaces, and `null` deletes the default.
pub fn merge_overrides(values: &mut Map<String, Value>, overrides: &Map<String, Value>) {
    for (key, value) in overrides {
        match (values.get_mut(key), value) {
            (_, Value::Null) => {
                values.remove(key);
            }
            (Some(Value::Object(base)), Value::Object(more)) => merge_overrides(base, more),
            _ => {
                values.insert(key.clone(), value.clone());
            }
        }
    }
}

/// Fills `dst` with the keys of `defaults` it lacks, recursing into tables both have.
fn merge_defaults(dst: &mut Map<String, Value>, defaults: Map<String, Value>) {
    for (key, default) in defaults {
        match (dst.get_mut(&key), default) {
            (None, default) => {
                dst.insert(key, default);
            }
            (Some(Value::Object(d)), Value::Object(s)) => merge_defaults(d, s),
            (Some(_), _) => {}
        }
    }
}

fn drop_nulls(map: &mut Map<String, Value>) {
    map.retain(|_, v| !v.is_null());
    for v in map.values_mut() {
        if let Value::Object(inner) = v {
            drop_nulls(inner);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::metadata::ChartMetadata;

    fn chart(name: &str, values: Value, subcharts: Vec<Chart>) -> Chart {
        let metadata: ChartMetadata =
            serde_json::from_value(json!({"apiVersion":"v2","name":name,"version":"1.0.0"})).unwrap();
        Chart { metadata, values: values.as_object().unwrap().clone(), subcharts, unpacked_size: 0 }
    }

    #[test]
    fn parent_wins_and_defaults_are_kept() {
        let db = chart("db", json!({"port": 5432, "storage": {"size": "8Gi", "class": "std"}}), vec![]);
        let web = chart(
            "web",
            json!({"replicas": 2, "db": {"storage": {"size": "50Gi"}, "port": null}, "global": {"env": "prod"}}),
            vec![db],
        );
        assert_eq!(
            coalesce(&web, &Limits::default()).unwrap(),
            json!({"replicas": 2, "global": {"env": "prod"},
                   "db": {"storage": {"size": "50Gi", "class": "std"}, "global": {"env": "prod"}}})
        );
    }

    #[test]
    fn copies_of_global_count_against_the_budget() {
        // 10 KiB of globals, copied into 64 subcharts: 640 KiB coalesced.
        let subcharts = (0..64).map(|i| chart(&format!("s{i}"), json!({}), vec![])).collect();
        let parent = chart("p", json!({"global": {"blob": "g".repeat(10 * 1024)}}), subcharts);
        let roomy = Limits { max_yaml_bytes: 1024 * 1024, ..Limits::default() };
        assert_eq!(coalesce(&parent, &roomy).unwrap()["s63"]["global"]["blob"].as_str().unwrap().len(), 10 * 1024);
        let tight = Limits { max_yaml_bytes: 256 * 1024, ..Limits::default() };
        let error = coalesce(&parent, &tight).unwrap_err();
        assert!(error.to_string().contains("values are too large"), "{error}");
    }
}
