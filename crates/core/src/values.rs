//! Values: Helm's coalescing of a chart's defaults with its subcharts' defaults.

use serde_json::{Map, Value};

use crate::archive::Chart;

/// The values Helm would compute for the chart with no user overrides: the chart's own
/// `values.yaml`, with each subchart's coalesced values under the subchart's name (the
/// parent's settings win), and the parent's `global` passed down. A `null` in the parent
/// deletes the subchart's default, as in Helm.
pub fn coalesce(chart: &Chart) -> Value {
    let mut values = chart.values.clone();
    let parent_globals = values.get("global").and_then(Value::as_object).cloned();
    for subchart in &chart.subcharts {
        let mut defaults = match coalesce(subchart) {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        if let Some(globals) = &parent_globals {
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
    Value::Object(values)
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
        Chart { metadata, values: values.as_object().unwrap().clone(), subcharts }
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
            coalesce(&web),
            json!({"replicas": 2, "global": {"env": "prod"},
                   "db": {"storage": {"size": "50Gi", "class": "std"}, "global": {"env": "prod"}}})
        );
    }
}
