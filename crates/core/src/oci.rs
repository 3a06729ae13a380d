//! The OCI side of a chart: Helm's media types, manifests and descriptors, tags, digests.
//!
//! A chart version is one OCI manifest: a config blob holding Chart.yaml as JSON, a layer
//! holding the exact archive, and optionally a provenance layer. For versions that arrive
//! through another API the registry writes that manifest itself, once, when it stores the
//! version, so its bytes and digest never change afterwards.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};

use crate::RegistryError;
use crate::error::{bounded, echo};
use crate::metadata::ChartMetadata;

pub const HELM_CONFIG_MEDIA_TYPE: &str = "application/vnd.cncf.helm.config.v1+json";
pub const HELM_CHART_MEDIA_TYPE: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
pub const HELM_PROVENANCE_MEDIA_TYPE: &str = "application/vnd.cncf.helm.chart.provenance.v1.prov";
pub const OCI_MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The parts of an image manifest or index the registry reads; the stored bytes are
/// always the client's own.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub artifact_type: Option<String>,
    #[serde(default)]
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// Entries of an image index.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    #[serde(default)]
    pub subject: Option<Descriptor>,
    #[serde(default)]
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Manifest {
    /// Parses and checks the shape of a manifest; `content_type` is the request's.
    pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Self, RegistryError> {
        let manifest: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| RegistryError::invalid(format!("manifest is not valid JSON: {}", bounded(&e, 512))))?;
        if manifest.schema_version != 2 {
            return Err(RegistryError::invalid("manifest schemaVersion must be 2"));
        }
        if let (Some(declared), Some(sent)) = (&manifest.media_type, content_type)
            && declared != sent
        {
            return Err(RegistryError::invalid(format!(
                "manifest mediaType {} does not match Content-Type {}",
                echo(declared),
                echo(sent)
            )));
        }
        let is_index = manifest.media_type_or(content_type).is_some_and(|t| is_index_media_type(&t));
        if !is_index && manifest.config.is_none() {
            return Err(RegistryError::invalid("an image manifest needs a config descriptor"));
        }
        for descriptor in manifest.config.iter().chain(&manifest.layers).chain(&manifest.manifests) {
            parse_digest(&descriptor.digest)?;
        }
        Ok(manifest)
    }

    /// The manifest's media type: its own field, else the request's Content-Type.
    pub fn media_type_or(&self, content_type: Option<&str>) -> Option<String> {
        self.media_type.clone().or_else(|| content_type.map(str::to_string))
    }

    /// Whether this is a Helm chart (its config is a Helm chart config).
    pub fn is_helm_chart(&self) -> bool {
        self.config.as_ref().is_some_and(|c| c.media_type == HELM_CONFIG_MEDIA_TYPE)
    }

    /// The descriptor of the chart archive layer.
    pub fn chart_layer(&self) -> Option<&Descriptor> {
        self.layers.iter().find(|l| l.media_type == HELM_CHART_MEDIA_TYPE)
    }

    /// The descriptor of the provenance layer.
    pub fn provenance_layer(&self) -> Option<&Descriptor> {
        self.layers.iter().find(|l| l.media_type == HELM_PROVENANCE_MEDIA_TYPE)
    }

    /// Every blob the manifest refers to (config, layers), not other manifests.
    pub fn blobs(&self) -> impl Iterator<Item = &Descriptor> {
        self.config.iter().chain(&self.layers)
    }

    /// The artifact type used by the referrers API: `artifactType`, else the config's.
    pub fn effective_artifact_type(&self) -> Option<String> {
        self.artifact_type.clone().or_else(|| self.config.as_ref().map(|c| c.media_type.clone()))
    }
}

fn is_index_media_type(media_type: &str) -> bool {
    media_type == OCI_INDEX_MEDIA_TYPE || media_type == DOCKER_MANIFEST_LIST_MEDIA_TYPE
}

/// A digest algorithm the registry stores blobs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Self::Sha256 => 64,
            Self::Sha512 => 128,
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "sha256" => Some(Self::Sha256),
            "sha512" => Some(Self::Sha512),
            _ => None,
        }
    }
}

/// A checked `algorithm:hex` digest, borrowing its hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlobDigest<'a> {
    pub algorithm: Algorithm,
    /// Lower-case hex of the algorithm's length: always a safe key segment.
    pub hex: &'a str,
}

impl<'a> BlobDigest<'a> {
    /// A sha256 digest from its hex, as version records keep archive digests.
    pub fn sha256(hex: &'a str) -> Self {
        Self { algorithm: Algorithm::Sha256, hex }
    }
}

impl std::fmt::Display for BlobDigest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

/// `sha256:<64 lower-case hex>` or `sha512:<128 lower-case hex>`, the algorithms the OCI
/// image spec registers.
pub fn parse_digest(digest: &str) -> Result<BlobDigest<'_>, RegistryError> {
    let parsed = digest.split_once(':').and_then(|(name, hex)| {
        let algorithm = Algorithm::from_name(name)?;
        let valid =
            hex.len() == algorithm.hex_len() && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        valid.then_some(BlobDigest { algorithm, hex })
    });
    parsed.ok_or_else(|| {
        RegistryError::invalid(format!("digest {:?} is not sha256:<64 hex> or sha512:<128 hex>", echo(digest)))
    })
}

/// The sha256 digest of some bytes, `sha256:<hex>`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// Hashes a stream of bytes with a digest's algorithm.
#[derive(Clone)]
pub enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => Self::Sha256(Sha256::new()),
            Algorithm::Sha512 => Self::Sha512(Sha512::new()),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Sha256(h) => h.update(bytes),
            Self::Sha512(h) => h.update(bytes),
        }
    }

    /// The digest, `algorithm:hex`.
    pub fn finish(self) -> String {
        match self {
            Self::Sha256(h) => format!("sha256:{}", hex(&h.finalize())),
            Self::Sha512(h) => format!("sha512:{}", hex(&h.finalize())),
        }
    }
}

/// The OCI tag of a chart version: SemVer's `+` is not allowed in tags, Helm writes `_`.
pub fn version_to_tag(version: &str) -> String {
    version.replace('+', "_")
}

/// The chart version a tag stands for.
pub fn tag_to_version(tag: &str) -> String {
    tag.replace('_', "+")
}

/// Whether a tag is valid: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn is_valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The config blob Helm writes for a chart: its Chart.yaml fields as JSON.
pub fn chart_config(metadata: &ChartMetadata) -> Vec<u8> {
    serde_json::to_vec(metadata).unwrap_or_default()
}

/// The manifest the registry writes for a chart version that arrived through another API,
/// in the shape `helm push` produces.
pub fn chart_manifest(config: &Descriptor, chart: &Descriptor, provenance: Option<&Descriptor>) -> Vec<u8> {
    let layers: Vec<&Descriptor> = std::iter::once(chart).chain(provenance).collect();
    let manifest = serde_json::json!({ "schemaVersion": 2, "config": config, "layers": layers });
    serde_json::to_vec(&manifest).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_digests() {
        assert_eq!(version_to_tag("1.0.0-rc.1+build.5"), "1.0.0-rc.1_build.5");
        assert_eq!(tag_to_version("1.0.0-rc.1_build.5"), "1.0.0-rc.1+build.5");
        assert!(is_valid_tag("1.0.0_b") && !is_valid_tag(".x") && !is_valid_tag(""));
        let d = digest_of(b"x");
        assert_eq!(parse_digest(&d).unwrap().hex.len(), 64);
        assert_eq!(parse_digest(&d).unwrap().to_string(), d);
        assert!(parse_digest("sha256:ABC").is_err() && parse_digest("md5:00").is_err());
        let long = format!("sha512:{}", "0f".repeat(64));
        assert_eq!(parse_digest(&long).unwrap().algorithm, Algorithm::Sha512);
        assert!(parse_digest(&format!("sha512:{}", "0f".repeat(32))).is_err());
        let mut hasher = Hasher::new(Algorithm::Sha512);
        hasher.update(b"x");
        assert!(parse_digest(&hasher.finish()).is_ok());
    }

    #[test]
    fn manifests_parse_and_classify() {
        let d = digest_of(b"c");
        let body = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{HELM_CONFIG_MEDIA_TYPE}","digest":"{d}","size":1}},"layers":[{{"mediaType":"{HELM_CHART_MEDIA_TYPE}","digest":"{d}","size":1}}]}}"#
        );
        let m = Manifest::parse(body.as_bytes(), Some(OCI_MANIFEST_MEDIA_TYPE)).unwrap();
        assert!(m.is_helm_chart() && m.chart_layer().is_some());
        assert!(Manifest::parse(b"{}", None).is_err());
        assert!(Manifest::parse(br#"{"schemaVersion":2}"#, None).is_err());
    }
}
