//! `Chart.yaml`, as Helm v3's `chart.Metadata` defines it.
//!
//! The type is generic over what `dependencies` holds: in `Chart.yaml` it is the list of
//! declared dependencies ([`Dependency`]); in the `/api/v1` API it is the nested metadata
//! of the subcharts inside the archive ([`MetadataTree`]). One field list serves both.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::RegistryError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChartMetadata<D = Dependency> {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kube_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub chart_type: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub home: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    #[serde(default = "Vec::new", skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<D>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub maintainers: Vec<Maintainer>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub icon: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub app_version: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub deprecated: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Helm 2 era fields, still found in v1 charts.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub condition: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tags: String,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Maintainer {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub email: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
}

/// A dependency declared in `Chart.yaml` (v2) or `requirements.yaml` (v1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dependency {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub repository: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub condition: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, rename = "import-values", skip_serializing_if = "Vec::is_empty")]
    pub import_values: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub alias: String,
}

/// A chart's metadata with the metadata of the subcharts inside its archive, nested:
/// the seed's metadata object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MetadataTree(pub ChartMetadata<MetadataTree>);

impl<D> ChartMetadata<D> {
    /// The same metadata with another kind of `dependencies`.
    pub fn with_dependencies<E>(self, dependencies: Vec<E>) -> ChartMetadata<E> {
        ChartMetadata {
            api_version: self.api_version,
            name: self.name,
            version: self.version,
            kube_version: self.kube_version,
            description: self.description,
            chart_type: self.chart_type,
            keywords: self.keywords,
            home: self.home,
            sources: self.sources,
            dependencies,
            maintainers: self.maintainers,
            icon: self.icon,
            app_version: self.app_version,
            deprecated: self.deprecated,
            annotations: self.annotations,
            condition: self.condition,
            tags: self.tags,
        }
    }
}

/// The keys of Chart.yaml, of a maintainer and of a dependency, as Helm's structs name them.
const CHART_KEYS: &[&str] = &[
    "apiVersion",
    "name",
    "version",
    "kubeVersion",
    "description",
    "type",
    "keywords",
    "home",
    "sources",
    "dependencies",
    "maintainers",
    "icon",
    "appVersion",
    "deprecated",
    "annotations",
    "condition",
    "tags",
];
const MAINTAINER_KEYS: &[&str] = &["name", "email", "url"];
const DEPENDENCY_KEYS: &[&str] =
    &["name", "version", "repository", "condition", "tags", "enabled", "import-values", "alias"];

/// Helm decodes Chart.yaml and requirements.yaml through Go's `encoding/json`, which
/// matches keys to fields ignoring case (`Name:` sets the name, and so does `NAME:`).
/// serde matches exactly and skips such keys, so the registry would index another chart
/// than Helm installs: a key that differs from a field only by case is refused.
pub fn check_key_case(document: &serde_json::Value, what: &str) -> Result<(), RegistryError> {
    use serde_json::Value;
    fn check(object: &serde_json::Map<String, Value>, fields: &[&str], what: &str) -> Result<(), RegistryError> {
        for key in object.keys() {
            if fields.contains(&key.as_str()) {
                continue;
            }
            if let Some(field) = fields.iter().find(|field| folded(field) == folded(key)) {
                return Err(RegistryError::invalid(format!(
                    "{what}: key {:?} differs from {field} only by case (Helm would read it as {field})",
                    crate::error::echo(key)
                )));
            }
        }
        Ok(())
    }
    fn each(list: Option<&Value>, fields: &[&str], what: &str) -> Result<(), RegistryError> {
        for item in list.and_then(Value::as_array).into_iter().flatten() {
            if let Value::Object(object) = item {
                check(object, fields, what)?;
            }
        }
        Ok(())
    }
    let Value::Object(top) = document else { return Ok(()) };
    check(top, CHART_KEYS, what)?;
    each(top.get("maintainers"), MAINTAINER_KEYS, what)?;
    each(top.get("dependencies"), DEPENDENCY_KEYS, what)
}

/// A key as Go's `encoding/json` compares it with a field name: ASCII letters in lower
/// case, and the two non-ASCII letters that fold to ASCII ones (KELVIN SIGN, LONG S).
fn folded(key: &str) -> String {
    key.chars()
        .map(|c| match c {
            '\u{212A}' => 'k',
            '\u{017F}' => 's',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

pub const API_VERSION_V1: &str = "v1";
pub const API_VERSION_V2: &str = "v2";

impl ChartMetadata {
    /// Helm's own checks (`Metadata.Validate`) plus chartyard's name and version rules.
    pub fn validate(&self) -> Result<(), RegistryError> {
        let invalid = |m: String| Err(RegistryError::invalid(format!("Chart.yaml: {m}")));
        if self.api_version != API_VERSION_V1 && self.api_version != API_VERSION_V2 {
            return invalid(format!("apiVersion {:?} is not v1 or v2", crate::error::echo(&self.api_version)));
        }
        if self.name.is_empty() {
            return invalid("name is required".into());
        }
        if !crate::names::is_valid_name(&self.name) {
            return invalid(format!(
                "name {:?} must match ^[a-zA-Z0-9][a-zA-Z0-9_-]*$ and be at most {} characters",
                crate::error::echo(&self.name),
                crate::names::MAX_NAME_LEN
            ));
        }
        if self.version.is_empty() {
            return invalid("version is required".into());
        }
        crate::names::parse_version(&self.version).map_err(|e| RegistryError::invalid(format!("Chart.yaml: {e}")))?;
        match self.chart_type.as_str() {
            "" | "application" | "library" => {}
            other => return invalid(format!("type {:?} is not application or library", crate::error::echo(other))),
        }
        if self.api_version == API_VERSION_V1 && !self.chart_type.is_empty() {
            return invalid("type is only allowed in apiVersion v2 charts".into());
        }
        for dependency in &self.dependencies {
            if dependency.name.is_empty() {
                return invalid("a dependency has no name".into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn keys_differing_from_fields_only_by_case_are_refused() {
        for document in [
            json!({"name": "a", "Name": "b"}),
            json!({"APPVERSION": "1"}),
            json!({"\u{17F}ources": []}),
            json!({"maintainers": [{"name": "a", "EMAIL": "x"}]}),
            json!({"dependencies": [{"name": "a", "Version": "1"}]}),
        ] {
            assert!(check_key_case(&document, "Chart.yaml").is_err(), "{document}");
        }
        let fine = json!({"name": "a", "annotations": {"Name": "kept"}, "x-custom": 1, "dependencies": [{"import-values": []}]});
        check_key_case(&fine, "Chart.yaml").unwrap();
    }
}
