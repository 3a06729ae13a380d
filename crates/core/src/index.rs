//! Helm repository indexes (`index.yaml`), rendered from stored version records.
//!
//! Helm parses indexes strictly: an unknown field or a duplicate key fails the whole
//! index. Entries therefore carry exactly Helm's `ChartVersion` fields, and chart names
//! are always quoted keys. Each entry is rendered once, as a YAML fragment, so that the
//! full document is assembled by concatenation rather than re-serialised.

use serde_json::{Map, Value};

use crate::RegistryError;
use crate::record::VersionRecord;

/// The relative URL of a version's archive inside its repository.
pub fn archive_url(chart: &str, version: &str) -> String {
    format!("charts/{chart}-{version}.tgz")
}

/// A version's entry in the index: its Chart.yaml fields, `urls`, `created`, `digest`.
pub fn entry(record: &VersionRecord, url: String) -> Map<String, Value> {
    let mut entry = match serde_json::to_value(&record.metadata) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    entry.insert("urls".into(), Value::from(vec![url]));
    entry.insert("created".into(), Value::from(record.created.clone()));
    entry.insert("digest".into(), Value::from(record.digest.clone()));
    entry
}

/// An entry as a YAML sequence item, indented to sit under its chart's key.
pub fn entry_yaml(entry: &Map<String, Value>) -> Result<String, RegistryError> {
    let yaml = crate::yaml::to_yaml(&[entry])?;
    let mut out = String::with_capacity(yaml.len() + 64);
    for line in yaml.lines() {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
    Ok(out)
}

/// An entry parsed back from its fragment (as [`entry_yaml`] wrote it), for the few
/// answers that need entries as JSON: indexes keep fragments only.
pub fn parse_entry_yaml(fragment: &str) -> Result<Map<String, Value>, RegistryError> {
    let mut yaml = String::with_capacity(fragment.len());
    for line in fragment.lines() {
        yaml.push_str(line.strip_prefix("  ").unwrap_or(line));
        yaml.push('\n');
    }
    let entries: Vec<Map<String, Value>> =
        serde_saphyr::from_str(&yaml).map_err(|e| RegistryError::internal(format!("index entry: {e}")))?;
    entries.into_iter().next().ok_or_else(|| RegistryError::internal("empty index entry"))
}

/// Assembles `index.yaml` from pre-rendered fragments: `charts` yields each chart name
/// with its entries' fragments, newest version first.
pub fn index_yaml<'a>(generated: &str, charts: impl Iterator<Item = (&'a str, Vec<&'a str>)>) -> String {
    let mut out = String::from("apiVersion: v1\nentries:\n");
    let mut empty = true;
    for (name, fragments) in charts {
        empty = false;
        // Names are [A-Za-z0-9_-]; quoting keeps `yes`, `null` or `1e3` a string.
        out.push_str(&format!("  \"{name}\":\n"));
        for fragment in fragments {
            out.push_str(fragment);
        }
    }
    if empty {
        out.truncate(out.len() - "entries:\n".len());
        out.push_str("entries: {}\n");
    }
    out.push_str(&format!("generated: \"{generated}\"\n"));
    out
}

/// The same index as JSON (Helm 3.13+ reads either).
pub fn index_json(generated: &str, charts: Vec<(String, Vec<Map<String, Value>>)>) -> Vec<u8> {
    let entries: Map<String, Value> = charts
        .into_iter()
        .map(|(name, versions)| (name, Value::Array(versions.into_iter().map(Value::Object).collect())))
        .collect();
    let index = serde_json::json!({ "apiVersion": "v1", "entries": entries, "generated": generated });
    serde_json::to_vec(&index).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::ChartMetadata;

    fn record(name: &str, version: &str, app_version: &str) -> VersionRecord {
        let metadata: ChartMetadata = serde_json::from_value(serde_json::json!({
            "apiVersion": "v2", "name": name, "version": version, "appVersion": app_version,
            "description": "on", "annotations": {"date": "2001-12-14"}
        }))
        .unwrap();
        VersionRecord {
            digest: "ab".repeat(32),
            size: 1,
            created: "2026-01-01T00:00:00Z".into(),
            metadata,
            subcharts: vec![],
            manifest: None,
            unpacked_size: None,
            provenance: None,
            writer: String::new(),
        }
    }

    #[test]
    fn index_quotes_ambiguous_strings_and_names() {
        let a = entry(&record("yes", "1.0.0", "1.10"), archive_url("yes", "1.0.0"));
        let fragment = entry_yaml(&a).unwrap();
        let yaml = index_yaml("2026-01-01T00:00:00Z", [("yes", vec![fragment.as_str()])].into_iter());
        assert!(yaml.contains("  \"yes\":\n  - "), "{yaml}");
        assert!(yaml.contains("appVersion: \"1.10\""), "{yaml}");
        assert!(yaml.contains("description: \"on\""), "{yaml}");
        assert!(yaml.contains("date: \"2001-12-14\""), "{yaml}");
        assert!(yaml.contains("- charts/yes-1.0.0.tgz"), "{yaml}");
        assert_eq!(parse_entry_yaml(&fragment).unwrap(), a);
        let empty = index_yaml("t", std::iter::empty());
        assert_eq!(empty, "apiVersion: v1\nentries: {}\ngenerated: \"t\"\n");
    }
}
