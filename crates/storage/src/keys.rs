//! Every object key chartyard writes, built in one place.
//!
//! ```text
//! spaces/{space}.json                                  space marker: {"created","generation"}
//! charts/{space}/{generation}/{chart}/{version}.json   version record
//! charts/{space}/{generation}/{chart}/{version}.prov   its provenance file, only in stores
//!                                                      written before records named their
//!                                                      provenance blob (read as a fallback)
//! blobs/{alg}/{hex[0..2]}/{hex}                        every blob (archives, OCI manifests,
//!                                                      configs, layers), content-addressed
//!                                                      (alg: sha256 or sha512)
//! oci/{space}/{generation}/{name}/manifests/{alg}/{hex}.json
//!                                                      a manifest known in an OCI repository
//! oci/{space}/{generation}/{name}/tags/{tag}.json      a tag of a non-chart artifact
//! oci/{space}/{generation}/{name}/blobs/{alg}/{hex}    a blob linked into an OCI repository
//! uploads/{id}/session.json                            a blob upload in progress
//! uploads/{id}/part-{offset}                           its chunks
//! uploads/{id}/staging-{nonce}                         one request's bytes being verified
//! uploads/{id}/done                                    the claim of the request completing it
//! log/{space}/{generation}/{seq:020}.json              one entry of a space's change log
//! checkpoints/{space}/{generation}.json                a space's index at a log sequence
//! audit/{space}/{generation}/{inverted-time:020}-{random:08x}.json
//!                                                      one audit entry of a space (newest
//!                                                      sorts first)
//! policies/{space}/{generation}.json                   a space's policy (absent: no rules)
//! ```
//!
//! A space exists iff its marker does; a version exists iff its record exists under the
//! generation its space's marker names. Each creation of a space gets a new generation, so
//! records left behind by a deleted space (or written into it while it was being deleted)
//! can never reappear in a later space of the same name.
//!
//! Names and versions are validated before they reach this module, so they are always safe
//! key segments (`[A-Za-z0-9_-]` names, hex generations, SemVer versions).

use chartyard_core::oci::BlobDigest;
use object_store::path::Path;

/// One object (or prefix of objects) in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageKey<'a> {
    /// Prefix of all space markers.
    Spaces,
    /// The marker object of a space.
    SpaceMarker { space: &'a str },
    /// Prefix of every version record of one generation of a space.
    SpaceRecords { space: &'a str, generation: &'a str },
    /// Prefix of every version record of a chart.
    ChartRecords { space: &'a str, generation: &'a str, chart: &'a str },
    /// The record of one chart version.
    VersionRecord { space: &'a str, generation: &'a str, chart: &'a str, version: &'a str },
    /// The provenance file of one chart version, as stored beside its record before
    /// records named their provenance blob; read as a fallback, deleted with the version.
    Provenance { space: &'a str, generation: &'a str, chart: &'a str, version: &'a str },
    /// Prefix of all version records.
    AllRecords,
    /// Prefix of every OCI repository of one generation of a space.
    SpaceRepositories { space: &'a str, generation: &'a str },
    /// A manifest known in an OCI repository (its bytes are a blob): `{mediaType, ...}`.
    RepositoryManifest { space: &'a str, generation: &'a str, name: &'a str, digest: BlobDigest<'a> },
    /// Prefix of the manifests known in an OCI repository.
    RepositoryManifests { space: &'a str, generation: &'a str, name: &'a str },
    /// A tag of an artifact that is not a chart version: `{"digest"}`.
    RepositoryTag { space: &'a str, generation: &'a str, name: &'a str, tag: &'a str },
    /// Prefix of those tags.
    RepositoryTags { space: &'a str, generation: &'a str, name: &'a str },
    /// A blob uploaded or mounted into an OCI repository (empty object).
    RepositoryBlob { space: &'a str, generation: &'a str, name: &'a str, digest: BlobDigest<'a> },
    /// Prefix of the OCI repositories of one generation of a space, listed with a
    /// delimiter for the catalog.
    RepositoryNames { space: &'a str, generation: &'a str },
    /// Prefix of every OCI repository.
    AllRepositories,
    /// The state of a blob upload session.
    UploadSession { id: &'a str },
    /// A chunk of a blob upload, by its offset.
    UploadPart { id: &'a str, offset: u64 },
    /// Created (create-if-absent) by the one request whose chunk becomes the part at an
    /// offset, before it moves its bytes there; holds that request's staging nonce.
    UploadPartClaim { id: &'a str, offset: u64 },
    /// One request's bytes of an upload, written whole before they are verified.
    UploadStaging { id: &'a str, nonce: &'a str },
    /// Created (create-if-absent) by the one request that completes an upload.
    UploadDone { id: &'a str },
    /// Prefix of everything of an upload session.
    Upload { id: &'a str },
    /// Prefix of all upload sessions.
    Uploads,
    /// Prefix of all blobs.
    Blobs,
    /// A blob, by digest.
    Blob { digest: BlobDigest<'a> },
    /// Prefix of the change log of one generation of a space.
    SpaceLog { space: &'a str, generation: &'a str },
    /// One entry of a space's change log, by its sequence number (from 1, gap-free).
    LogEntry { space: &'a str, generation: &'a str, seq: u64 },
    /// Prefix of every change log.
    AllLogs,
    /// The checkpoint of a space's index: the whole index at one log sequence number.
    Checkpoint { space: &'a str, generation: &'a str },
    /// Prefix of every checkpoint.
    AllCheckpoints,
    /// An API token: its owner, limits, expiry and the hash of its secret (never the secret).
    Token { id: &'a str },
    /// Rewritten when a token is used (at most once a minute per process); its modification
    /// time is the token's last use. Apart from the token, so that marking a use can never
    /// bring back a token revoked meanwhile.
    TokenUse { id: &'a str },
    /// Prefix of every token and token use.
    Tokens,
    /// The key every replica signs and checks OCI bearer tokens with (created once).
    SigningKey,
    /// Prefix of the audit log of one generation of a space.
    SpaceAudit { space: &'a str, generation: &'a str },
    /// One audit entry, by its name: the inverted time it was written (zero-padded, so
    /// that key order is newest first) and a random suffix.
    AuditEntry { space: &'a str, generation: &'a str, name: &'a str },
    /// Prefix of every audit log.
    AllAudit,
    /// The policy of one generation of a space (`chartyard_core::policy::SpacePolicy`).
    SpacePolicy { space: &'a str, generation: &'a str },
    /// Prefix of every space policy.
    AllPolicies,
}

pub const JSON_SUFFIX: &str = ".json";
pub const PROVENANCE_SUFFIX: &str = ".prov";

impl StorageKey<'_> {
    pub fn path(&self) -> Path {
        match self {
            Self::Spaces => Path::from("spaces"),
            Self::SpaceMarker { space } => Path::from(format!("spaces/{space}{JSON_SUFFIX}")),
            Self::AllRecords => Path::from("charts"),
            Self::SpaceRecords { space, generation } => Path::from(format!("charts/{space}/{generation}")),
            Self::ChartRecords { space, generation, chart } => {
                Path::from(format!("charts/{space}/{generation}/{chart}"))
            }
            Self::VersionRecord { space, generation, chart, version } => {
                Path::from(format!("charts/{space}/{generation}/{chart}/{version}{JSON_SUFFIX}"))
            }
            Self::Provenance { space, generation, chart, version } => {
                Path::from(format!("charts/{space}/{generation}/{chart}/{version}{PROVENANCE_SUFFIX}"))
            }
            Self::SpaceRepositories { space, generation } => Path::from(format!("oci/{space}/{generation}")),
            Self::RepositoryManifest { space, generation, name, digest } => Path::from(format!(
                "oci/{space}/{generation}/{name}/manifests/{}/{}{JSON_SUFFIX}",
                digest.algorithm.name(),
                digest.hex
            )),
            Self::RepositoryManifests { space, generation, name } => {
                Path::from(format!("oci/{space}/{generation}/{name}/manifests"))
            }
            Self::RepositoryTag { space, generation, name, tag } => {
                Path::from(format!("oci/{space}/{generation}/{name}/tags/{tag}{JSON_SUFFIX}"))
            }
            Self::RepositoryTags { space, generation, name } => {
                Path::from(format!("oci/{space}/{generation}/{name}/tags"))
            }
            Self::RepositoryBlob { space, generation, name, digest } => {
                Path::from(format!("oci/{space}/{generation}/{name}/blobs/{}/{}", digest.algorithm.name(), digest.hex))
            }
            Self::RepositoryNames { space, generation } => Path::from(format!("oci/{space}/{generation}")),
            Self::AllRepositories => Path::from("oci"),
            Self::UploadSession { id } => Path::from(format!("uploads/{id}/session{JSON_SUFFIX}")),
            Self::UploadPart { id, offset } => Path::from(format!("uploads/{id}/part-{offset:020}")),
            Self::UploadPartClaim { id, offset } => Path::from(format!("uploads/{id}/claim-{offset:020}")),
            Self::UploadStaging { id, nonce } => Path::from(format!("uploads/{id}/staging-{nonce}")),
            Self::UploadDone { id } => Path::from(format!("uploads/{id}/done")),
            Self::Upload { id } => Path::from(format!("uploads/{id}")),
            Self::Uploads => Path::from("uploads"),
            Self::Blobs => Path::from("blobs"),
            Self::Blob { digest } => {
                let hex = digest.hex;
                Path::from(format!("blobs/{}/{}/{hex}", digest.algorithm.name(), &hex[..2.min(hex.len())]))
            }
            Self::SpaceLog { space, generation } => Path::from(format!("log/{space}/{generation}")),
            // Zero-padded, so that key order is sequence order for `start-after` listings.
            Self::LogEntry { space, generation, seq } => {
                Path::from(format!("log/{space}/{generation}/{seq:020}{JSON_SUFFIX}"))
            }
            Self::AllLogs => Path::from("log"),
            Self::Checkpoint { space, generation } => {
                Path::from(format!("checkpoints/{space}/{generation}{JSON_SUFFIX}"))
            }
            Self::AllCheckpoints => Path::from("checkpoints"),
            Self::Token { id } => Path::from(format!("tokens/{id}{JSON_SUFFIX}")),
            Self::TokenUse { id } => Path::from(format!("tokens/{id}.used")),
            Self::Tokens => Path::from("tokens"),
            Self::SigningKey => Path::from("auth/signing-key"),
            Self::SpaceAudit { space, generation } => Path::from(format!("audit/{space}/{generation}")),
            Self::AuditEntry { space, generation, name } => {
                Path::from(format!("audit/{space}/{generation}/{name}{JSON_SUFFIX}"))
            }
            Self::AllAudit => Path::from("audit"),
            Self::SpacePolicy { space, generation } => {
                Path::from(format!("policies/{space}/{generation}{JSON_SUFFIX}"))
            }
            Self::AllPolicies => Path::from("policies"),
        }
    }
}

/// Where a version record lives, parsed back from its key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordPath {
    pub space: String,
    pub generation: String,
    pub chart: String,
    pub version: String,
}

impl RecordPath {
    /// The key this record lives at.
    pub fn key(&self) -> StorageKey<'_> {
        StorageKey::VersionRecord {
            space: &self.space,
            generation: &self.generation,
            chart: &self.chart,
            version: &self.version,
        }
    }
}

/// Splits a version record key; `None` for anything else found under `charts/` (such as a
/// filesystem store's staging files).
pub fn parse_record_path(path: &Path) -> Option<RecordPath> {
    let parts: Vec<_> = path.parts().collect();
    match parts.as_slice() {
        [root, space, generation, chart, file] if root.as_ref() == "charts" => {
            let version = file.as_ref().strip_suffix(JSON_SUFFIX)?;
            chartyard_core::names::parse_version(version).ok()?;
            Some(RecordPath {
                space: space.as_ref().to_string(),
                generation: generation.as_ref().to_string(),
                chart: chart.as_ref().to_string(),
                version: version.to_string(),
            })
        }
        _ => None,
    }
}

/// The space a marker key names.
pub fn parse_space_marker(path: &Path) -> Option<String> {
    let parts: Vec<_> = path.parts().collect();
    match parts.as_slice() {
        [root, file] if root.as_ref() == "spaces" => {
            let space = file.as_ref().strip_suffix(JSON_SUFFIX)?;
            chartyard_core::names::is_valid_name(space).then(|| space.to_string())
        }
        _ => None,
    }
}

/// The digest (`algorithm:hex`) a blob key names; `None` for anything else found under
/// `blobs/` (such as a filesystem store's staging files).
pub fn parse_blob_path(path: &Path) -> Option<String> {
    let parts: Vec<_> = path.parts().collect();
    match parts.as_slice() {
        [root, algorithm, _, hex] if root.as_ref() == "blobs" => {
            let digest = format!("{}:{}", algorithm.as_ref(), hex.as_ref());
            chartyard_core::oci::parse_digest(&digest).is_ok().then_some(digest)
        }
        _ => None,
    }
}

/// What an object under `oci/` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepositoryObject {
    /// A manifest known in the repository, by digest.
    Manifest(String),
    /// A blob linked into the repository, by digest.
    Blob(String),
}

/// An object under `oci/`, parsed back from its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryPath {
    pub space: String,
    pub generation: String,
    pub kind: RepositoryObject,
}

/// Splits a manifest or blob-link key of an OCI repository; `None` for tags and anything
/// else.
pub fn parse_repository_object(path: &Path) -> Option<RepositoryPath> {
    let parts: Vec<_> = path.parts().collect();
    let [root, space, generation, _name, kind, algorithm, file] = parts.as_slice() else { return None };
    if root.as_ref() != "oci" {
        return None;
    }
    let (kind, hex) = match kind.as_ref() {
        "manifests" => {
            (RepositoryObject::Manifest as fn(String) -> RepositoryObject, file.as_ref().strip_suffix(JSON_SUFFIX)?)
        }
        "blobs" => (RepositoryObject::Blob as fn(String) -> RepositoryObject, file.as_ref()),
        _ => return None,
    };
    let digest = format!("{}:{hex}", algorithm.as_ref());
    chartyard_core::oci::parse_digest(&digest).ok()?;
    Some(RepositoryPath {
        space: space.as_ref().to_string(),
        generation: generation.as_ref().to_string(),
        kind: kind(digest),
    })
}

/// The digest of a key listed under [`StorageKey::RepositoryManifests`].
pub fn parse_repository_manifest(path: &Path) -> Option<String> {
    match parse_repository_object(path)?.kind {
        RepositoryObject::Manifest(digest) => Some(digest),
        RepositoryObject::Blob(_) => None,
    }
}

/// The tag of a key listed under [`StorageKey::RepositoryTags`].
pub fn parse_repository_tag(path: &Path) -> Option<String> {
    path.filename()?.strip_suffix(JSON_SUFFIX).map(str::to_string)
}

/// The offset of a key listed under [`StorageKey::Upload`] if it is a part.
pub fn parse_upload_part(path: &Path) -> Option<u64> {
    path.filename()?.strip_prefix("part-")?.parse().ok()
}

/// The upload id of a key listed under [`StorageKey::Uploads`], and whether the key is
/// its session object.
pub fn parse_upload_object(path: &Path) -> Option<(String, bool)> {
    let mut parts = path.parts();
    let (Some(_), Some(id)) = (parts.next(), parts.next()) else { return None };
    let is_session = path.filename().is_some_and(|f| f.starts_with("session"));
    Some((id.as_ref().to_string(), is_session))
}

/// A change log entry's space, generation and sequence number, parsed from its key.
pub fn parse_log_entry(path: &Path) -> Option<(String, String, u64)> {
    let parts: Vec<_> = path.parts().collect();
    match parts.as_slice() {
        [root, space, generation, file] if root.as_ref() == "log" => {
            let seq = file.as_ref().strip_suffix(JSON_SUFFIX)?;
            // Only the zero-padded form we write: a staging file or a stray key is no entry.
            (seq.len() == 20).then_some(())?;
            Some((space.as_ref().to_string(), generation.as_ref().to_string(), seq.parse().ok()?))
        }
        _ => None,
    }
}

/// An audit entry's space, generation and name, parsed from its key.
pub fn parse_audit_entry(path: &Path) -> Option<(String, String, String)> {
    let parts: Vec<_> = path.parts().collect();
    match parts.as_slice() {
        [root, space, generation, file] if root.as_ref() == "audit" => {
            let name = file.as_ref().strip_suffix(JSON_SUFFIX)?;
            // Only the form we write: a staging file or a stray key is no entry.
            let (time, random) = name.split_once('-')?;
            let well_formed = time.len() == 20
                && random.len() == 8
                && time.bytes().all(|b| b.is_ascii_digit())
                && random.bytes().all(|b| b.is_ascii_hexdigit());
            well_formed.then(|| (space.as_ref().to_string(), generation.as_ref().to_string(), name.to_string()))
        }
        _ => None,
    }
}

/// A checkpoint's space and generation, parsed from its key.
pub fn parse_checkpoint(path: &Path) -> Option<(String, String)> {
    let parts: Vec<_> = path.parts().collect();
    match parts.as_slice() {
        [root, space, file] if root.as_ref() == "checkpoints" => {
            Some((space.as_ref().to_string(), file.as_ref().strip_suffix(JSON_SUFFIX)?.to_string()))
        }
        _ => None,
    }
}

/// A policy's space and generation, parsed from its key.
pub fn parse_policy(path: &Path) -> Option<(String, String)> {
    let parts: Vec<_> = path.parts().collect();
    match parts.as_slice() {
        [root, space, file] if root.as_ref() == "policies" => {
            Some((space.as_ref().to_string(), file.as_ref().strip_suffix(JSON_SUFFIX)?.to_string()))
        }
        _ => None,
    }
}

/// The repository name of a key listed under [`StorageKey::RepositoryNames`].
pub fn parse_repository_name(prefix: &Path) -> Option<String> {
    let name = prefix.filename()?;
    chartyard_core::names::is_valid_name(name).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chartyard_core::oci::Algorithm;

    #[test]
    fn layout() {
        let key = StorageKey::VersionRecord { space: "s", generation: "g1", chart: "c", version: "1.0.0-rc.1+b.5" };
        let record = key.path();
        assert_eq!(record.as_ref(), "charts/s/g1/c/1.0.0-rc.1+b.5.json");
        let parsed = parse_record_path(&record).unwrap();
        assert_eq!((parsed.space.as_str(), parsed.generation.as_str()), ("s", "g1"));
        assert_eq!((parsed.chart.as_str(), parsed.version.as_str()), ("c", "1.0.0-rc.1+b.5"));
        assert_eq!(StorageKey::SpaceMarker { space: "s" }.path().as_ref(), "spaces/s.json");
        assert_eq!(parse_space_marker(&Path::from("spaces/s.json")), Some("s".into()));
        let hex = "ab".repeat(32);
        let blob = StorageKey::Blob { digest: BlobDigest::sha256(&hex) }.path();
        assert_eq!(blob.as_ref(), format!("blobs/sha256/ab/{hex}"));
        assert_eq!(parse_blob_path(&blob), Some(format!("sha256:{hex}")));
        let long = "cd".repeat(64);
        let digest = BlobDigest { algorithm: Algorithm::Sha512, hex: &long };
        assert_eq!(parse_blob_path(&StorageKey::Blob { digest }.path()), Some(format!("sha512:{long}")));
        assert_eq!(parse_blob_path(&Path::from(format!("blobs/sha256/ab/{hex}#1"))), None);
        let manifest = StorageKey::RepositoryManifest { space: "s", generation: "g", name: "n", digest };
        assert_eq!(manifest.path().as_ref(), format!("oci/s/g/n/manifests/sha512/{long}.json"));
        assert_eq!(parse_repository_manifest(&manifest.path()), Some(format!("sha512:{long}")));
        let link = StorageKey::RepositoryBlob { space: "s", generation: "g", name: "n", digest }.path();
        let parsed = parse_repository_object(&link).unwrap();
        assert_eq!((parsed.space.as_str(), parsed.kind), ("s", RepositoryObject::Blob(format!("sha512:{long}"))));
        assert_eq!(parse_record_path(&Path::from("charts/s/g/c/1.0.0.json#3")), None);
        let entry = StorageKey::LogEntry { space: "s", generation: "g", seq: 42 }.path();
        assert_eq!(entry.as_ref(), "log/s/g/00000000000000000042.json");
        assert_eq!(parse_log_entry(&entry), Some(("s".into(), "g".into(), 42)));
        assert_eq!(parse_log_entry(&Path::from("log/s/g/00000000000000000042.json#1")), None);
        let checkpoint = StorageKey::Checkpoint { space: "s", generation: "g" }.path();
        assert_eq!(checkpoint.as_ref(), "checkpoints/s/g.json");
        assert_eq!(parse_checkpoint(&checkpoint), Some(("s".into(), "g".into())));
        let name = "18446744073709551615-0a1b2c3d";
        let audit = StorageKey::AuditEntry { space: "s", generation: "g", name }.path();
        assert_eq!(audit.as_ref(), format!("audit/s/g/{name}.json"));
        assert_eq!(parse_audit_entry(&audit), Some(("s".into(), "g".into(), name.into())));
        assert_eq!(parse_audit_entry(&Path::from(format!("audit/s/g/{name}.json#1"))), None);
        let policy = StorageKey::SpacePolicy { space: "s", generation: "g" }.path();
        assert_eq!(policy.as_ref(), "policies/s/g.json");
        assert_eq!(parse_policy(&policy), Some(("s".into(), "g".into())));
    }
}
