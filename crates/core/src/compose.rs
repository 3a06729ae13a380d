//! Orchestration: composing a new chart from charts already in the registry, from the
//! seed's JSON config.
//!
//! ```json
//! {"save": {"chart": "shop", "version": "3.0.0", "description": "web shop stack"},
//!  "configs": {"package": {"independent": true, "space": "base", "chart": "web", "version": "1.0.0"},
//!              "_config": {"replicas": 5},
//!              "db": {"package": {...}, "_config": {...}, "child": {...}}}}
//! ```
//! Every node names the chart it starts from (`package`), its values (`_config`), and its
//! children, keyed by the name each gets in the new chart. This module parses the config
//! and builds the new chart's files; fetching the parts is the storage layer's job.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::RegistryError;
use crate::archive::{ChartFiles, Files, Limits};
use crate::error::{bounded, echo};
use crate::metadata::{API_VERSION_V2, Dependency};
use crate::names::{check_name, parse_version};

/// Most nodes (parts) one config may name, the root included.
pub const MAX_PARTS: usize = 64;
/// How deep nodes may nest.
pub const MAX_NODE_DEPTH: usize = 16;

/// Where the new chart goes and what it is called.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Save {
    #[serde(default)]
    pub chart: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub description: String,
    /// The seed's values layout: every part's defaults cleared, and the new chart's
    /// values.yaml holding the nested `_config` objects under their keys.
    #[serde(default)]
    pub legacy_values: bool,
}

/// The chart a node starts from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Package {
    /// A stored chart (`space/chart/version`); otherwise a subchart inside the parent's
    /// original archive, found by its chart name (and version).
    pub independent: bool,
    #[serde(default)]
    pub space: String,
    pub chart: String,
    #[serde(default)]
    pub version: String,
}

/// One node of the config tree.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The name the part gets in the new chart (the root's is `save.chart`).
    pub key: String,
    pub package: Package,
    /// The node's `_config`: values for this part.
    pub config: Map<String, Value>,
    pub children: Vec<Node>,
}

/// A parsed orchestration config.
#[derive(Debug, Clone, PartialEq)]
pub struct Composition {
    pub save: Save,
    pub root: Node,
}

impl Composition {
    /// Every stored chart the config names, `(space, chart, version)`, once per mention.
    pub fn stored_parts(&self) -> Vec<(String, String, String)> {
        fn walk(node: &Node, out: &mut Vec<(String, String, String)>) {
            let package = &node.package;
            if package.independent {
                out.push((package.space.clone(), package.chart.clone(), package.version.clone()));
            }
            for child in &node.children {
                walk(child, out);
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &mut out);
        out
    }
}

const PACKAGE: &str = "package";
const CONFIG: &str = "_config";

fn invalid(message: impl Into<String>) -> RegistryError {
    RegistryError::invalid(format!("orchestration config is invalid: {}", message.into()))
}

/// Parses and checks a config: its shape, names and versions.
pub fn parse(body: &[u8]) -> Result<Composition, RegistryError> {
    #[derive(Deserialize)]
    struct Raw {
        save: Option<Save>,
        configs: Option<Map<String, Value>>,
    }
    let raw: Raw =
        serde_json::from_slice(body).map_err(|e| invalid(format!("not a JSON config object: {}", bounded(&e, 512))))?;
    let save = raw.save.ok_or_else(|| invalid("save is required"))?;
    if save.chart.is_empty() {
        return Err(invalid("save.chart is required"));
    }
    if save.version.is_empty() {
        return Err(invalid("save.version is required"));
    }
    check_name("save.chart", &save.chart)?;
    parse_version(&save.version).map_err(|e| invalid(format!("save.version: {e}")))?;
    let configs = raw.configs.ok_or_else(|| invalid("configs is required"))?;
    let mut parts_left = MAX_PARTS;
    let root = parse_node(save.chart.clone(), configs, "configs", 0, &mut parts_left)?;
    if !root.package.independent {
        return Err(invalid("configs.package must be an independent (stored) chart"));
    }
    Ok(Composition { save, root })
}

fn parse_node(
    key: String,
    mut object: Map<String, Value>,
    path: &str,
    depth: usize,
    parts_left: &mut usize,
) -> Result<Node, RegistryError> {
    if depth > MAX_NODE_DEPTH {
        return Err(invalid(format!("{}: nodes nest deeper than {MAX_NODE_DEPTH}", echo(path))));
    }
    if *parts_left == 0 {
        return Err(invalid(format!("it names more than {MAX_PARTS} parts")));
    }
    *parts_left -= 1;
    let path = &echo(path).to_string();
    let package = object.remove(PACKAGE).ok_or_else(|| invalid(format!("{path}.package is required")))?;
    let package: Package =
        serde_json::from_value(package).map_err(|e| invalid(format!("{path}.package: {}", bounded(&e, 512))))?;
    check_name(&format!("{path}.package.chart"), &package.chart)?;
    if package.independent || !package.version.is_empty() {
        parse_version(&package.version).map_err(|e| invalid(format!("{path}.package.version: {e}")))?;
    }
    if package.independent {
        check_name(&format!("{path}.package.space"), &package.space)?;
    }
    let config = match object.remove(CONFIG) {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(config)) => config,
        Some(_) => return Err(invalid(format!("{path}._config must be an object"))),
    };
    let mut children = Vec::new();
    for (child_key, value) in object {
        check_name(&format!("{path}.* (a child's name)"), &child_key)?;
        let child_path = format!("{path}.{child_key}");
        let Value::Object(child) = value else {
            return Err(invalid(format!("{child_path} must be an object with a package")));
        };
        children.push(parse_node(child_key, child, &child_path, depth + 1, parts_left)?);
    }
    Ok(Node { key, package, config, children })
}

/// A node with the chart it starts from, fetched.
pub struct Part {
    pub key: String,
    /// Shared between the parts that name the same stored chart.
    pub files: Arc<ChartFiles>,
    /// Whether the chart was a subchart of the parent's original archive.
    pub from_parent: bool,
    pub config: Map<String, Value>,
    pub children: Vec<Part>,
}

/// The files of the new chart: the root part's files with its subcharts replaced by the
/// listed children (renamed to their keys), each part's values merged over its own
/// defaults (or the seed's legacy layout), and Chart.yaml dependencies that match
/// `charts/` exactly. The new chart must fit the upload limits: writing stops once its
/// files exceed `limits` (decompressed bytes, entries), before more is copied.
pub fn compose(save: &Save, root: &Part, limits: &Limits) -> Result<Files, RegistryError> {
    let mut out = Output { files: Files::new(), bytes: 0, limits };
    write_part(save, root, true, "", &mut out)?;
    if save.legacy_values {
        let values = crate::yaml::to_yaml(&legacy_values(root))?;
        out.insert("values.yaml".into(), values.into_bytes())?;
    }
    Ok(out.files)
}

/// The files of the new chart, counted as they are written.
struct Output<'a> {
    files: Files,
    bytes: u64,
    limits: &'a Limits,
}

impl Output<'_> {
    fn insert(&mut self, path: String, data: Vec<u8>) -> Result<(), RegistryError> {
        // Tar headers count too: 512 bytes each, and the data padded to 512.
        self.bytes += 512 + (data.len() as u64).div_ceil(512) * 512;
        if self.bytes > self.limits.max_decompressed_bytes {
            return Err(RegistryError::invalid(format!(
                "the composed chart would be larger than {} bytes decompressed, the limit of an upload",
                self.limits.max_decompressed_bytes
            )));
        }
        if let Some(previous) = self.files.insert(path, data) {
            self.bytes -= 512 + (previous.len() as u64).div_ceil(512) * 512;
        }
        if self.files.len() > self.limits.max_entries {
            return Err(RegistryError::invalid(format!(
                "the composed chart would hold more than {} files, the limit of an upload",
                self.limits.max_entries
            )));
        }
        Ok(())
    }
}

fn write_part(save: &Save, part: &Part, is_root: bool, prefix: &str, out: &mut Output) -> Result<(), RegistryError> {
    for (path, data) in part.files.own_files() {
        // Lock files describe the original dependencies, which are replaced.
        if !matches!(
            path.as_str(),
            "Chart.yaml" | "values.yaml" | "requirements.yaml" | "requirements.lock" | "Chart.lock"
        ) {
            out.insert(format!("{prefix}{path}"), data.clone())?;
        }
    }
    let mut metadata = part.files.chart.metadata.clone();
    if is_root {
        metadata.name = save.chart.clone();
        metadata.version = save.version.clone();
        metadata.description = save.description.clone();
        metadata.api_version = API_VERSION_V2.into();
    } else {
        metadata.name = part.key.clone();
    }
    metadata.dependencies = part
        .children
        .iter()
        .map(|child| Dependency {
            name: child.key.clone(),
            version: child.files.chart.metadata.version.clone(),
            repository: String::new(),
            condition: String::new(),
            tags: Vec::new(),
            enabled: None,
            import_values: Vec::new(),
            alias: String::new(),
        })
        .collect();
    if !metadata.dependencies.is_empty() {
        // Only v2 charts declare dependencies in Chart.yaml.
        metadata.api_version = API_VERSION_V2.into();
    }
    out.insert(format!("{prefix}Chart.yaml"), crate::yaml::to_yaml(&metadata)?.into_bytes())?;
    let values = if save.legacy_values {
        Map::new()
    } else {
        let mut values = part.files.chart.values.clone();
        // The parent's own settings for a subchart it already had follow it to its new name.
        for child in part.children.iter().filter(|c| c.from_parent) {
            let original = &child.files.chart.metadata.name;
            if *original != child.key
                && !values.contains_key(&child.key)
                && let Some(settings) = values.remove(original)
            {
                values.insert(child.key.clone(), settings);
            }
        }
        crate::values::merge_overrides(&mut values, &part.config);
        values
    };
    out.insert(format!("{prefix}values.yaml"), crate::yaml::to_yaml(&values)?.into_bytes())?;
    for child in &part.children {
        write_part(save, child, false, &format!("{prefix}charts/{}/", child.key), out)?;
    }
    Ok(())
}

/// The seed's values: `{"_config": {...}, "<child>": {"_config": {...}, ...}}`.
fn legacy_values(part: &Part) -> Map<String, Value> {
    let mut values = Map::new();
    if !part.config.is_empty() {
        values.insert(CONFIG.into(), Value::Object(part.config.clone()));
    }
    for child in &part.children {
        values.insert(child.key.clone(), Value::Object(legacy_values(child)));
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_issue_example() {
        let body = br#"{"save": {"chart": "shop", "version": "3.0.0", "description": "web shop stack"},
         "configs": {
           "package": {"independent": true, "space": "base", "chart": "web", "version": "1.0.0"},
           "_config": {"replicas": 5},
           "db":    {"package": {"independent": true,  "space": "base", "chart": "postgres", "version": "12.1.0"},
                     "_config": {"storage": "50Gi"}},
           "proxy": {"package": {"independent": false, "space": "base", "chart": "sidecar", "version": "0.2.0"},
                     "_config": {"port": 9443}}}}"#;
        let composition = parse(body).unwrap();
        assert_eq!(composition.save.chart, "shop");
        assert_eq!(composition.root.config["replicas"], 5);
        let keys: Vec<&str> = composition.root.children.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["db", "proxy"]);
        assert!(!composition.root.children[1].package.independent);
    }

    #[test]
    fn refuses_malformed_configs() {
        for body in [
            &b"[]"[..],
            br#"{"configs": {}}"#,
            br#"{"save": {"version": "1.0.0"}, "configs": {}}"#,
            br#"{"save": {"chart": "x"}, "configs": {}}"#,
            br#"{"save": {"chart": "x", "version": "1.0"}, "configs": {}}"#,
            br#"{"save": {"chart": "x", "version": "1.0.0"}}"#,
            br#"{"save": {"chart": "x", "version": "1.0.0"}, "configs": {}}"#,
            br#"{"save": {"chart": "x", "version": "1.0.0"}, "configs": {"package": {"independent": true, "space": "s", "chart": "c", "version": "1.0.0"}, "bad child": {}}}"#,
            br#"{"save": {"chart": "x", "version": "1.0.0"}, "configs": {"package": {"independent": true, "space": "s", "chart": "c", "version": "1.0.0"}, "child": 5}}"#,
            br#"{"save": {"chart": "x", "version": "1.0.0"}, "configs": {"package": {"independent": true, "space": "s", "chart": "c", "version": "1.0.0"}, "_config": [1]}}"#,
            br#"{"save": {"chart": "x", "version": "1.0.0"}, "configs": {"package": {"independent": false, "chart": "c"}}}"#,
        ] {
            assert!(matches!(parse(body), Err(RegistryError::Invalid(_))), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn refuses_more_parts_than_the_limit() {
        let config = |children: usize| {
            let package = serde_json::json!({"independent": true, "space": "s", "chart": "c", "version": "1.0.0"});
            let mut configs = serde_json::json!({"package": package});
            for i in 0..children {
                configs[format!("c{i}")] = serde_json::json!({"package": package});
            }
            serde_json::to_vec(&serde_json::json!({"save": {"chart": "x", "version": "1.0.0"}, "configs": configs}))
                .unwrap()
        };
        assert!(parse(&config(MAX_PARTS - 1)).is_ok());
        let error = parse(&config(MAX_PARTS)).unwrap_err();
        assert!(error.to_string().contains(&format!("more than {MAX_PARTS} parts")), "{error}");
    }
}
