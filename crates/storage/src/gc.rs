//! Garbage collection: deletes what no live version or repository needs, only once it is
//! older than a grace period, marking twice before deleting a blob.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use chartyard_core::RegistryError;
use chartyard_core::oci::{self, Manifest};
use chartyard_core::record::VersionRecord;
use object_store::ObjectMeta;

use crate::keys::RepositoryObject;
use crate::registry::Registry;

type Result<T> = std::result::Result<T, RegistryError>;

/// What a garbage collection found and removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    pub referenced_blobs: usize,
    pub deleted_blobs: usize,
    pub deleted_bytes: u64,
    /// Records of deleted spaces that were still in storage.
    pub deleted_stale_records: usize,
    /// Policies of deleted spaces that were still in storage.
    pub deleted_stale_policies: usize,
    /// Upload sessions idle for longer than the grace period.
    pub deleted_uploads: usize,
    /// Change log entries and checkpoints no replica needs any more.
    pub deleted_log_objects: usize,
    /// Audit entries past the retention, or of deleted spaces.
    pub deleted_audit_entries: usize,
}

/// The digests (`algorithm:hex`) of every blob a version needs: its archive, its
/// provenance file, and its OCI manifest, config and provenance layer.
pub(crate) fn referenced_blobs(record: &VersionRecord) -> Vec<String> {
    let mut blobs = vec![format!("sha256:{}", record.digest)];
    blobs.extend(record.provenance.clone());
    if let Some(manifest) = &record.manifest {
        let digests = [Some(&manifest.digest), Some(&manifest.config), manifest.provenance.as_ref()];
        blobs.extend(digests.into_iter().flatten().filter(|d| !d.is_empty()).cloned());
    }
    blobs
}

impl Registry {
    /// Deletes what no live version needs: records of deleted spaces, and archives no
    /// record refers to. Both are kept while younger than `grace`, because an upload writes
    /// its archive before its record, and a new space's marker before its first record.
    pub async fn collect_garbage(&self, grace: Duration) -> Result<GcReport> {
        let cutoff = SystemTime::now() - grace;
        let generations = self.spaces.generations().await?;
        let mut report = GcReport::default();
        let (live, stale) = self.records.partition(&generations).await?;
        for (path, meta) in stale {
            if SystemTime::from(meta.last_modified) < cutoff && self.records.delete_stale(&path).await? {
                report.deleted_stale_records += 1;
            }
        }
        let referenced = self.referenced_blob_digests(&generations, live).await?;
        report.deleted_uploads = self.uploads.expire(grace).await?;
        report.deleted_stale_policies = self.policies.collect(&generations, cutoff).await?;
        report.deleted_log_objects = self.log.collect(&generations, grace).await?;
        report.deleted_audit_entries = self.audit.trim(&generations, self.options.audit_retention, cutoff).await?;
        report.referenced_blobs = referenced.len();
        let candidates: Vec<(String, ObjectMeta)> = self
            .blobs
            .list()
            .await?
            .into_iter()
            .filter(|(digest, blob)| !referenced.contains(digest) && SystemTime::from(blob.last_modified) < cutoff)
            .collect();
        if candidates.is_empty() {
            return Ok(report);
        }
        // A version committed while we marked may use an old blob (blobs are written
        // create-if-absent, so its age says nothing): mark once more right before deleting.
        // What remains is the moment between this mark and the delete.
        let generations = self.spaces.generations().await?;
        let (live, _) = self.records.partition(&generations).await?;
        let referenced = self.referenced_blob_digests(&generations, live).await?;
        for (digest, blob) in candidates {
            if !referenced.contains(&digest) && self.blobs.delete(&digest).await? {
                report.deleted_blobs += 1;
                report.deleted_bytes += blob.size;
            }
        }
        Ok(report)
    }

    /// The digests of every blob that live versions and OCI repositories need.
    async fn referenced_blob_digests(
        &self,
        generations: &HashMap<String, String>,
        live: Vec<ObjectMeta>,
    ) -> Result<HashSet<String>> {
        let mut referenced = HashSet::new();
        for (_, record) in self.records.read_listed(live).await? {
            referenced.extend(referenced_blobs(&record));
        }
        referenced.extend(self.repository_blobs(generations).await?);
        Ok(referenced)
    }

    /// Blobs the OCI repositories of live spaces hold (linked blobs, manifests, and the
    /// configs and layers those name).
    async fn repository_blobs(&self, live: &HashMap<String, String>) -> Result<Vec<String>> {
        let mut blobs = Vec::new();
        for held in self.manifests.held().await? {
            if live.get(&held.space) != Some(&held.generation) {
                continue;
            }
            match held.kind {
                RepositoryObject::Blob(digest) => blobs.push(digest),
                RepositoryObject::Manifest(digest) => {
                    if let Ok(parsed) = oci::parse_digest(&digest)
                        && let Ok(Some(manifest)) = self.blobs.read(parsed, u64::MAX).await
                        && let Ok(parsed) = Manifest::parse(&manifest, None)
                    {
                        blobs.extend(parsed.blobs().map(|d| d.digest.clone()));
                    }
                    blobs.push(digest);
                }
            }
        }
        Ok(blobs)
    }
}
