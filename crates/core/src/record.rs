//! The stored record of one chart version: the object whose presence *is* the version.

use serde::{Deserialize, Serialize};

use crate::archive::Chart;
use crate::metadata::{ChartMetadata, MetadataTree};

/// Everything the registry answers about a version without opening its archive.
/// Written last and atomically: a version exists exactly when its record does, and the
/// archive it names was stored before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// sha256 of the archive, lower-case hex; the archive is stored under this digest.
    pub digest: String,
    /// Size of the archive in bytes.
    pub size: u64,
    /// When the version was first stored (RFC 3339); kept when the version is replaced.
    pub created: String,
    /// `Chart.yaml` as loaded (v1 charts carry their `requirements.yaml` dependencies).
    pub metadata: ChartMetadata,
    /// The subcharts inside the archive, nested.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subcharts: Vec<MetadataTree>,
    /// The version's OCI manifest, stored as a blob when the version was stored (pushed
    /// byte-exact over OCI, or written by the registry), so its digest never changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<ManifestRef>,
    /// Decompressed bytes of the archive (nested archives included), so that limits on
    /// what several archives expand to can be checked before any is opened. Absent in
    /// records written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpacked_size: Option<u64>,
    /// `sha256:<hex>` of the version's provenance file, stored as a blob before the
    /// record, when the version has one. Records written before it was recorded may have
    /// the file as a separate object beside them instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<String>,
    /// A unique id of the write that stored this record. A store may retry a conditional
    /// write whose answer was lost and then report "already exists" (or "changed") for the
    /// write's own result; reading this id back tells that apart from another writer's.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub writer: String,
}

/// Where a version's OCI manifest is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestRef {
    /// `sha256:<hex>` of the manifest bytes.
    pub digest: String,
    pub size: u64,
    pub media_type: String,
    /// `sha256:<hex>` of the config blob.
    pub config: String,
    /// `sha256:<hex>` of a provenance layer, when the manifest has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<String>,
}

impl VersionRecord {
    pub fn new(chart: &Chart, digest: String, size: u64, created: String) -> Self {
        Self {
            digest,
            size,
            created,
            metadata: chart.metadata.clone(),
            subcharts: chart.subchart_trees(),
            manifest: None,
            unpacked_size: Some(chart.unpacked_size),
            provenance: None,
            writer: String::new(),
        }
    }

    /// The seed's metadata object for this version.
    pub fn metadata_tree(&self) -> MetadataTree {
        MetadataTree(self.metadata.clone().with_dependencies(self.subcharts.clone()))
    }
}
