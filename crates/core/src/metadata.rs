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
