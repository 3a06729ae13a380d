//! The registry facade: the chart operations (upload, replace, values, metadata, delete,
//! listings, indexes) over the single-purpose stores, each of which owns its keys.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chartyard_core::archive::{self, Chart, Limits};
use chartyard_core::error::echo;
use chartyard_core::metadata::{API_VERSION_V1, ChartMetadata};
use chartyard_core::names::{check_name, check_new_space_name, parse_version};
use chartyard_core::oci::{self, BlobDigest, Descriptor};
use chartyard_core::record::{ManifestRef, VersionRecord};
use chartyard_core::{RegistryError, provenance, values, yaml};
use object_store::ObjectStore;
use serde_json::Value;

use crate::blobs::Blobs;
use crate::gateway::{Gateway, ObjectStream, ObjectVersion, StorageRequests, collect};
use crate::index::{Indexes, RenderedIndex, SpaceIndex};
use crate::locks::{LockGuard, Locks};
use crate::manifests::Manifests;
use crate::records::{Records, StoredVersion, VersionKey, version_id};
use crate::spaces::{Spaces, now_rfc3339};
use crate::uploads::Uploads;

type Result<T> = std::result::Result<T, RegistryError>;

/// How the registry is set up.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// How long a writer waits for a busy version (zero: fail at once).
    pub lock_timeout: Duration,
    /// Bounds on uploaded archives.
    pub limits: Limits,
    /// Whether the store supports compare-and-swap writes (`PutMode::Update`); where it
    /// does, changing a version is safe across processes, not only within one.
    pub conditional_updates: bool,
    /// Whether the store fails a delete of an absent object with `NotFound`; where it does
    /// not (or nobody said), a delete looks first, so that deleting what is gone is 404.
    pub deletes_report_missing: bool,
    /// Largest blob an OCI client may upload.
    pub max_blob_bytes: usize,
    /// Most OCI upload sessions open at once.
    pub max_upload_sessions: usize,
    /// Bytes the in-memory caches (parsed records, loaded space indexes) may hold, by
    /// estimate; half goes to each. What falls out is read from storage again.
    pub cache_bytes: usize,
    /// How many archives are parsed (or rewritten, or composed) at once; more wait their
    /// turn. Each parse may decompress up to `limits` into memory and keeps a CPU busy.
    pub parse_concurrency: usize,
}

/// The default parse concurrency: one per CPU.
pub fn default_parse_concurrency() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// The default of [`RegistryOptions::cache_bytes`].
pub const DEFAULT_CACHE_BYTES: usize = 256 * 1024 * 1024;

impl Default for RegistryOptions {
    fn default() -> Self {
        Self {
            lock_timeout: Duration::ZERO,
            limits: Limits::default(),
            conditional_updates: false,
            deletes_report_missing: false,
            max_blob_bytes: 20 * 1024 * 1024,
            max_upload_sessions: 1024,
            cache_bytes: DEFAULT_CACHE_BYTES,
            parse_concurrency: default_parse_concurrency(),
        }
    }
}

/// An archive being read from storage.
pub struct ArchiveStream {
    pub record: Arc<VersionRecord>,
    pub body: ObjectStream,
}

/// What the caches hold at a moment (weights are the caches' own estimates in bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub records: usize,
    pub record_bytes: usize,
    pub indexes: usize,
    pub index_bytes: usize,
}

pub struct Registry {
    gateway: Gateway,
    pub(crate) options: RegistryOptions,
    locks: Locks,
    pub(crate) spaces: Spaces,
    pub(crate) records: Records,
    pub(crate) blobs: Blobs,
    pub(crate) uploads: Uploads,
    pub(crate) manifests: Manifests,
    /// Spaces' indexes, each loaded on first use and then kept current by this registry's
    /// own writes; one in use is never evicted (see [`Registry::sync_index`]).
    indexes: Indexes,
    /// One permit per archive parse that may run at once.
    pub(crate) parses: Arc<tokio::sync::Semaphore>,
}

/// How an upload treats an existing version and provenance.
#[derive(Debug, Clone, Default)]
pub struct UploadOptions {
    /// A provenance file to store with the chart; it must match the archive.
    pub provenance: Option<Bytes>,
    /// Replace the version if it exists instead of refusing with `AlreadyExists`.
    pub overwrite: bool,
    /// The OCI manifest the chart was pushed with, stored byte-exact; without one the
    /// registry writes a manifest of its own.
    pub manifest: Option<Bytes>,
}

impl Registry {
    pub fn new(store: Arc<dyn ObjectStore>, options: RegistryOptions) -> Self {
        let locks = Locks::new(options.lock_timeout);
        let parses = Arc::new(tokio::sync::Semaphore::new(options.parse_concurrency.max(1)));
        let budget = options.cache_bytes / 2;
        let gateway = Gateway::new(store, options.conditional_updates, options.deletes_report_missing);
        Self {
            spaces: Spaces::new(gateway.clone()),
            records: Records::new(gateway.clone(), budget),
            blobs: Blobs::new(gateway.clone()),
            uploads: Uploads::new(gateway.clone(), options.max_upload_sessions),
            manifests: Manifests::new(gateway.clone()),
            gateway,
            options,
            locks,
            indexes: Indexes::new(budget),
            parses,
        }
    }

    /// Runs chart parsing on a blocking thread, at most `parse_concurrency` at once: it is
    /// CPU work that must not stall the request workers, it holds decompressed archives in
    /// memory, and deeply nested (but within budget) YAML needs stack. The slot is held by
    /// the work itself, so a request that gives up does not free it early.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let slot = self.parses.clone().acquire_owned().await.map_err(|_| RegistryError::internal("parser closed"))?;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            work()
        })
        .await
        .map_err(|e| RegistryError::internal(format!("chart parser failed: {e}")))?
    }

    /// The store requests this registry made so far, by kind.
    pub fn storage_requests(&self) -> StorageRequests {
        self.gateway.requests()
    }

    // ---- spaces ----

    /// All spaces, sorted by name.
    pub async fn list_spaces(&self) -> Result<Vec<String>> {
        self.spaces.list().await
    }

    /// The current generation of a space, `None` if the space does not exist.
    pub(crate) async fn generation(&self, space: &str) -> Result<Option<String>> {
        check_name("space", space)?;
        self.spaces.generation(space).await
    }

    /// The current generation of a space that must exist.
    pub(crate) async fn require_generation(&self, space: &str) -> Result<String> {
        self.generation(space).await?.ok_or_else(|| RegistryError::not_found(space))
    }

    /// Creates a space; `AlreadyExists` if it does.
    pub async fn create_space(&self, space: &str) -> Result<()> {
        check_new_space_name(space)?;
        match self.spaces.create(space).await? {
            Some(_) => Ok(()),
            None => Err(RegistryError::AlreadyExists(space.to_string())),
        }
    }

    /// The generation of a space, creating the space if it does not exist.
    pub(crate) async fn ensure_space(&self, space: &str) -> Result<String> {
        // A space deleted between our create attempt and our read is simply tried again.
        for _ in 0..3 {
            if let Some(generation) = self.generation(space).await? {
                return Ok(generation);
            }
            check_new_space_name(space)?;
            if let Some(generation) = self.spaces.create(space).await? {
                return Ok(generation);
            }
        }
        Err(RegistryError::Locked(space.to_string()))
    }

    /// Deletes a space and every version in it. The marker goes first, so the space and
    /// all its versions are gone for readers at once; its records are swept next, and
    /// archives are reclaimed by garbage collection.
    pub async fn delete_space(&self, space: &str) -> Result<()> {
        let generation = self.require_generation(space).await?;
        if !self.spaces.delete(space).await? {
            return Err(RegistryError::not_found(space));
        }
        // Nothing of the deleted generation is read again: drop its index and records.
        if let Some(slot) = self.indexes.remove(space) {
            *slot.lock().await = None;
        }
        self.records.delete_generation(space, &generation).await?;
        self.manifests.delete_generation(space, &generation).await
    }

    // ---- listings ----

    /// Every version in a space, sorted by chart name, then version precedence.
    pub async fn space_versions(&self, space: &str) -> Result<Vec<StoredVersion>> {
        let generation = self.require_generation(space).await?;
        self.records.space_versions(space, &generation).await
    }

    /// Every version of a chart, in version precedence; `NotFound` if it has none.
    pub async fn chart_versions(&self, space: &str, chart: &str) -> Result<Vec<StoredVersion>> {
        check_name("chart", chart)?;
        let generation = self.require_generation(space).await?;
        let versions = self.records.chart_versions(space, &generation, chart).await?;
        if versions.is_empty() {
            return Err(RegistryError::not_found(format!("{space}/{chart}")));
        }
        Ok(versions)
    }

    /// Chart names in a space, sorted by byte order.
    pub async fn list_charts(&self, space: &str) -> Result<Vec<String>> {
        let mut charts: Vec<String> = self.space_versions(space).await?.into_iter().map(|v| v.chart).collect();
        charts.dedup();
        Ok(charts)
    }

    // ---- one version ----

    /// Checks the coordinates and finds the space's generation (`NotFound` without space).
    async fn locate<'a>(&self, space: &'a str, chart: &'a str, version: &'a str) -> Result<VersionKey<'a>> {
        check_name("space", space)?;
        check_name("chart", chart)?;
        parse_version(version)?;
        let generation =
            self.generation(space).await?.ok_or_else(|| RegistryError::not_found(version_id(space, chart, version)))?;
        Ok(VersionKey { space, generation, chart, version })
    }

    /// The record of one version.
    pub async fn version(&self, space: &str, chart: &str, version: &str) -> Result<Arc<VersionRecord>> {
        let key = self.locate(space, chart, version).await?;
        self.records.read(&key).await
    }

    /// The whole archive of one version.
    pub(crate) async fn archive_of(&self, space: &str, chart: &str, version: &str) -> Result<Bytes> {
        let key = self.locate(space, chart, version).await?;
        Ok(self.archive_bytes_at(&key).await?.1)
    }

    /// The archive of one version, streamed from storage.
    pub async fn open_archive(&self, space: &str, chart: &str, version: &str) -> Result<ArchiveStream> {
        let key = self.locate(space, chart, version).await?;
        self.open_archive_at(&key).await
    }

    async fn open_archive_at(&self, key: &VersionKey<'_>) -> Result<ArchiveStream> {
        let record = self.records.read(key).await?;
        let opened = self
            .blobs
            .open(BlobDigest::sha256(&record.digest), None)
            .await?
            .ok_or_else(|| RegistryError::internal(format!("archive of {} is missing", key.id())))?;
        Ok(ArchiveStream { record, body: opened.body })
    }

    /// A version's whole archive, with the record it was found through.
    async fn archive_bytes_at(&self, key: &VersionKey<'_>) -> Result<(Arc<VersionRecord>, Bytes)> {
        let stream = self.open_archive_at(key).await?;
        Ok((stream.record, collect(stream.body).await?))
    }

    /// Stores a new version from an uploaded archive; `AlreadyExists` if the version does.
    /// Uploading into a missing space creates it.
    pub async fn upload(&self, space: &str, archive: Bytes) -> Result<StoredVersion> {
        self.upload_with(space, archive, UploadOptions::default()).await
    }

    /// Stores a version from an uploaded archive, with its provenance file if given
    /// (checked against the archive before anything is written), replacing an existing
    /// version only when `overwrite` is set.
    pub async fn upload_with(&self, space: &str, archive: Bytes, options: UploadOptions) -> Result<StoredVersion> {
        check_name("space", space)?;
        let chart = self.load_chart(archive.clone()).await?;
        let (name, version) = (chart.metadata.name.as_str(), chart.metadata.version.as_str());
        let digest = archive::sha256_hex(&archive);
        if let Some(prov) = &options.provenance {
            provenance::parse(prov)?.check(name, version, &digest)?;
        }
        let record = self.prepare(&chart, archive.clone(), options.provenance.as_ref(), options.manifest).await?;
        let key = VersionKey { space, generation: self.ensure_space(space).await?, chart: name, version };
        if self.artifact_tag_exists(space, &key.generation, name, version).await? {
            return Err(RegistryError::AlreadyExists(format!(
                "{} (its OCI tag {} holds another artifact)",
                key.id(),
                oci::version_to_tag(version)
            )));
        }
        let stored = match self.records.create(&key, record).await? {
            Ok(record) => key.stored(record),
            Err(record) if options.overwrite => {
                let _lock = self.lock(&key).await?;
                let current = self.current(&key).await?;
                let created = self.records.read(&key).await?.created.clone();
                self.commit_record(&key, record, current, created).await?
            }
            Err(_) => return Err(RegistryError::AlreadyExists(key.id())),
        };
        // A space deleted while we wrote: our record went to the old generation, where no
        // one will see it. Say so rather than claim the chart is stored.
        if self.generation(space).await?.as_deref() != Some(&key.generation) {
            let _ = self.records.delete(&key).await;
            return Err(RegistryError::not_found(format!("{space} (deleted during the upload)")));
        }
        self.sync_index(&key).await;
        Ok(stored)
    }

    /// Stores a provenance file for the version it names; it must match that version's
    /// archive.
    pub async fn put_provenance(&self, space: &str, prov: Bytes) -> Result<StoredVersion> {
        let claims = provenance::parse(&prov)?;
        let key = self.locate(space, &claims.name, &claims.version).await?;
        let _lock = self.lock(&key).await?;
        // The version taken before the record is read, so that a change in between makes
        // the conditional commit fail instead of being overwritten.
        let current = self.current(&key).await?;
        let record = self.records.read(&key).await?;
        claims.check(&claims.name, &claims.version, &record.digest)?;
        let mut signed = VersionRecord::clone(&record);
        signed.provenance = Some(self.put_provenance_blob(&prov).await?);
        let record = self.commit_record(&key, signed, current, record.created.clone()).await?.record;
        Ok(StoredVersion { space: space.into(), chart: claims.name.clone(), version: claims.version.clone(), record })
    }

    /// The provenance file of a version; `NotFound` if it has none.
    pub async fn provenance(&self, space: &str, chart: &str, version: &str) -> Result<Bytes> {
        let key = self.locate(space, chart, version).await?;
        let missing = || RegistryError::not_found(format!("provenance of {}", key.id()));
        let record = match self.records.read(&key).await {
            Err(RegistryError::NotFound(_)) => return Err(missing()),
            record => record?,
        };
        let Some(digest) = &record.provenance else {
            return self.records.legacy_provenance(&key).await?.ok_or_else(missing);
        };
        self.blobs
            .read(oci::parse_digest(digest)?, u64::MAX)
            .await?
            .ok_or_else(|| RegistryError::internal(format!("provenance of {} is missing", key.id())))
    }

    /// Stores a provenance file as a blob; answers its digest.
    async fn put_provenance_blob(&self, prov: &Bytes) -> Result<String> {
        let digest = oci::digest_of(prov);
        self.blobs.put(oci::parse_digest(&digest)?, prov.clone()).await?;
        Ok(digest)
    }

    /// Replaces the archive of an existing version; the archive must hold that chart and
    /// version.
    pub async fn replace(&self, space: &str, chart: &str, version: &str, archive: Bytes) -> Result<StoredVersion> {
        let key = self.locate(space, chart, version).await?;
        let loaded = self.load_chart(archive.clone()).await?;
        if loaded.metadata.name != chart {
            return Err(RegistryError::invalid(format!(
                "value of chart should be {chart}, but got {}",
                echo(&loaded.metadata.name)
            )));
        }
        if loaded.metadata.version != version {
            return Err(RegistryError::invalid(format!(
                "value of version should be {version}, but got {}",
                echo(&loaded.metadata.version)
            )));
        }
        let _lock = self.lock(&key).await?;
        let current = self.current(&key).await?;
        let created = self.records.read(&key).await?.created.clone();
        self.commit(&key, &loaded, archive, current, created).await
    }

    /// The values Helm computes for this version with no overrides (the seed's answer).
    pub async fn values(&self, space: &str, chart: &str, version: &str) -> Result<Value> {
        let key = self.locate(space, chart, version).await?;
        let (_, archive) = self.archive_bytes_at(&key).await?;
        values::coalesce(&self.load_chart(archive).await?, &self.options.limits)
    }

    /// Replaces the chart's `values.yaml` with `new_values` (a JSON object); answers the
    /// values of the updated version.
    pub async fn update_values(&self, space: &str, chart: &str, version: &str, new_values: Value) -> Result<Value> {
        let key = self.locate(space, chart, version).await?;
        if !new_values.is_object() {
            return Err(RegistryError::invalid("values should be a JSON object"));
        }
        let values_yaml = yaml::to_yaml(&new_values)?;
        let _lock = self.lock(&key).await?;
        let (updated, _) = self.rewrite_locked(&key, "values.yaml", values_yaml).await?;
        values::coalesce(&updated, &self.options.limits)
    }

    /// Replaces the chart's `Chart.yaml` fields; the name and version must stay as they are.
    /// Declared dependencies are kept: in the API, `dependencies` means the subcharts.
    pub async fn update_metadata(
        &self,
        space: &str,
        chart: &str,
        version: &str,
        mut new_metadata: ChartMetadata,
    ) -> Result<StoredVersion> {
        let key = self.locate(space, chart, version).await?;
        if new_metadata.name != chart {
            return Err(RegistryError::invalid(format!(
                "value of name should be {chart}, but got {}",
                echo(&new_metadata.name)
            )));
        }
        if new_metadata.version != version {
            return Err(RegistryError::invalid(format!(
                "value of version should be {version}, but got {}",
                echo(&new_metadata.version)
            )));
        }
        let _lock = self.lock(&key).await?;
        let current = self.records.read(&key).await?;
        if new_metadata.api_version.is_empty() {
            new_metadata.api_version = current.metadata.api_version.clone();
        }
        new_metadata.dependencies = if new_metadata.api_version == API_VERSION_V1 {
            Vec::new() // v1 charts declare them in requirements.yaml, which stays as it is
        } else {
            current.metadata.dependencies.clone()
        };
        new_metadata.validate()?;
        let chart_yaml = yaml::to_yaml(&new_metadata)?;
        let (_, stored) = self.rewrite_locked(&key, "Chart.yaml", chart_yaml).await?;
        let record = stored.record;
        Ok(StoredVersion { space: space.into(), chart: chart.into(), version: version.into(), record })
    }

    /// Rewrites one file of a stored archive; the caller holds the version's lock.
    async fn rewrite_locked(
        &self,
        key: &VersionKey<'_>,
        file: &str,
        content: String,
    ) -> Result<(Chart, StoredVersion)> {
        // The ETag is taken before the archive is read, so that a change in between makes
        // the conditional commit fail instead of being overwritten.
        let current = self.current(key).await?;
        let (previous, archive) = self.archive_bytes_at(key).await?;
        let (folder, limits, file) = (key.chart.to_string(), self.options.limits, file.to_string());
        let rewritten: Bytes = self
            .blocking(move || archive::rewrite(&archive, &folder, &[(&file, content.into_bytes())], &limits))
            .await?
            .into();
        let loaded = self.load_chart(rewritten.clone()).await?;
        let stored = self.commit(key, &loaded, rewritten, current, previous.created.clone()).await?;
        Ok((loaded, stored))
    }

    /// Parses an archive under the configured limits.
    pub(crate) async fn load_chart(&self, archive: Bytes) -> Result<Chart> {
        let limits = self.options.limits;
        self.blocking(move || archive::load(&archive, &limits)).await
    }

    async fn lock(&self, key: &VersionKey<'_>) -> Result<LockGuard> {
        let id = key.id();
        self.locks.acquire(&id).await.ok_or(RegistryError::Locked(id))
    }

    /// The current record's version tag, for a compare-and-swap commit; `NotFound` if the
    /// version does not exist.
    async fn current(&self, key: &VersionKey<'_>) -> Result<ObjectVersion> {
        self.records.version(key).await
    }

    /// Stores a changed archive of an existing version: archive first, then the record.
    async fn commit(
        &self,
        key: &VersionKey<'_>,
        chart: &Chart,
        archive: Bytes,
        current: ObjectVersion,
        created: String,
    ) -> Result<StoredVersion> {
        let record = self.prepare(chart, archive, None, None).await?;
        self.commit_record(key, record, current, created).await
    }

    /// Writes everything a version's record refers to (archive, OCI config and manifest,
    /// provenance layer) and answers the record, not yet written.
    async fn prepare(
        &self,
        chart: &Chart,
        archive: Bytes,
        provenance: Option<&Bytes>,
        pushed_manifest: Option<Bytes>,
    ) -> Result<VersionRecord> {
        let mut record = VersionRecord::new(chart, archive::sha256_hex(&archive), archive.len() as u64, now_rfc3339());
        let chart_layer = Descriptor {
            media_type: oci::HELM_CHART_MEDIA_TYPE.into(),
            digest: format!("sha256:{}", record.digest),
            size: record.size,
            artifact_type: None,
            annotations: None,
        };
        self.blobs.put(BlobDigest::sha256(&record.digest), archive).await?;
        if let Some(prov) = provenance {
            record.provenance = Some(self.put_provenance_blob(prov).await?);
        }
        let manifest = match pushed_manifest {
            Some(bytes) => bytes,
            None => {
                let config = Bytes::from(oci::chart_config(&chart.metadata));
                let config_layer = Descriptor {
                    media_type: oci::HELM_CONFIG_MEDIA_TYPE.into(),
                    digest: oci::digest_of(&config),
                    size: config.len() as u64,
                    artifact_type: None,
                    annotations: None,
                };
                self.blobs.put(oci::parse_digest(&config_layer.digest)?, config).await?;
                let provenance_layer = provenance.zip(record.provenance.clone()).map(|(prov, digest)| Descriptor {
                    media_type: oci::HELM_PROVENANCE_MEDIA_TYPE.into(),
                    digest,
                    size: prov.len() as u64,
                    artifact_type: None,
                    annotations: None,
                });
                oci::chart_manifest(&config_layer, &chart_layer, provenance_layer.as_ref()).into()
            }
        };
        let parsed = oci::Manifest::parse(&manifest, None)?;
        let digest = oci::digest_of(&manifest);
        record.manifest = Some(ManifestRef {
            digest: digest.clone(),
            size: manifest.len() as u64,
            media_type: parsed.media_type.clone().unwrap_or_else(|| oci::OCI_MANIFEST_MEDIA_TYPE.into()),
            config: parsed.config.as_ref().map(|c| c.digest.clone()).unwrap_or_default(),
            provenance: parsed.provenance_layer().map(|l| l.digest.clone()),
        });
        self.blobs.put(oci::parse_digest(&digest)?, manifest).await?;
        Ok(record)
    }

    /// Replaces a version's record with a prepared one; the caller holds its lock.
    async fn commit_record(
        &self,
        key: &VersionKey<'_>,
        mut record: VersionRecord,
        current: ObjectVersion,
        created: String,
    ) -> Result<StoredVersion> {
        // A version keeps the time it was first published (`created`, from the record
        // being replaced), whatever replaces its archive.
        record.created = created;
        let record = self.records.replace(key, record, current).await?;
        // A provenance file stored beside the record (before records named theirs) signs
        // the old archive's digest: it no longer holds.
        self.records.delete_legacy_provenance(key).await?;
        self.sync_index(key).await;
        Ok(key.stored(record))
    }

    // ---- indexes ----

    /// The repository index of a space, from ready bytes unless something changed. A
    /// space that does not exist yet (but may be created) has an empty index, as a
    /// ChartMuseum repository nobody uploaded to has: `helm repo add` works before the
    /// first push. Answering it neither creates the space nor caches anything.
    pub async fn space_index(&self, space: &str) -> Result<Arc<RenderedIndex>> {
        self.with_index_or_empty(space, |index| Ok(index.rendered())).await
    }

    /// The same, with `index.json` rendered too.
    pub async fn space_index_json(&self, space: &str) -> Result<Arc<RenderedIndex>> {
        self.with_index_or_empty(space, |index| Ok(index.rendered_json())).await
    }

    /// The index entries of every chart in a space (name order, newest version first);
    /// none for a space that does not exist yet.
    pub async fn index_entries(&self, space: &str) -> Result<Vec<(String, Vec<serde_json::Map<String, Value>>)>> {
        self.with_index_or_empty(space, |index| Ok(index.entries())).await
    }

    /// [`Self::with_index`], with an empty index standing in for a space that does not
    /// exist but whose name a new space could take.
    async fn with_index_or_empty<T>(&self, space: &str, f: impl Fn(&mut SpaceIndex) -> Result<T>) -> Result<T> {
        match self.with_index(space, &f).await {
            Err(RegistryError::NotFound(_)) if check_new_space_name(space).is_ok() => {
                f(&mut SpaceIndex::new(String::new()))
            }
            result => result,
        }
    }

    /// The index entries of one chart, newest version first.
    pub async fn chart_index_entries(&self, space: &str, chart: &str) -> Result<Vec<serde_json::Map<String, Value>>> {
        check_name("chart", chart)?;
        self.with_index(space, |index| {
            index.chart_entries(chart).ok_or_else(|| RegistryError::not_found(format!("{space}/{chart}")))
        })
        .await
    }

    /// Runs `f` on a space's index, building it from the records first if needed. A space
    /// that does not exist gets no slot.
    async fn with_index<T>(&self, space: &str, f: impl FnOnce(&mut SpaceIndex) -> Result<T>) -> Result<T> {
        check_name("space", space)?;
        let slot = match self.indexes.held(space) {
            Some(slot) => slot,
            None => {
                self.require_generation(space).await?;
                self.indexes.slot(space)
            }
        };
        let mut loaded = slot.lock().await;
        let result = self.load_index(space, &mut loaded).await.and_then(|()| match loaded.as_mut() {
            Some(index) => f(index),
            None => Err(RegistryError::not_found(space)),
        });
        let weight = loaded.as_ref().map(SpaceIndex::weight);
        drop(loaded);
        self.indexes.release(space, slot, weight);
        result
    }

    /// Builds a space's index from its records unless it is loaded. The generation is
    /// read under the slot's lock, never before it: a space deletion drops the slot (under
    /// that lock) after removing the marker, so a load can never install an index of a
    /// deleted generation.
    async fn load_index(&self, space: &str, loaded: &mut Option<SpaceIndex>) -> Result<()> {
        if loaded.is_some() {
            return Ok(());
        }
        let generation = self.require_generation(space).await?;
        let mut index = SpaceIndex::new(generation.clone());
        for stored in self.records.space_versions(space, &generation).await? {
            index.insert(&stored.chart, &stored.version, &stored.record)?;
        }
        *loaded = Some(index);
        Ok(())
    }

    /// Brings one version's entry of a loaded index in line with the store, after a write
    /// to that version. The store is read under the index's lock, so that whatever order
    /// racing writes (an upload and a delete of one version, say) reached the store and
    /// this lock in, the last one to take the lock sees the store's final state: the index
    /// never keeps a version that is gone, nor misses one that exists. An index of another
    /// generation, or one whose entry cannot be read, is dropped, to be rebuilt from
    /// storage when next asked for; an index not loaded needs nothing (it is built from a
    /// listing made later than this write).
    ///
    /// A slot is evicted only while no one holds it, and a writer takes it only after its
    /// store write: so an index loaded into a fresh slot after an eviction is listed later
    /// than any write whose update it missed.
    async fn sync_index(&self, key: &VersionKey<'_>) {
        let Some(slot) = self.indexes.held(key.space) else {
            return;
        };
        let mut loaded = slot.lock().await;
        if let Some(index) = loaded.as_mut() {
            let keep = index.generation == key.generation
                && match self.records.current(key).await {
                    Ok(Some(record)) => index.insert(key.chart, key.version, &record).is_ok(),
                    Ok(None) => {
                        index.remove(key.chart, key.version);
                        true
                    }
                    Err(_) => false,
                };
            if !keep {
                *loaded = None;
            }
        }
        let weight = loaded.as_ref().map(SpaceIndex::weight);
        drop(loaded);
        self.indexes.release(key.space, slot, weight);
    }

    /// What the caches hold now.
    pub fn cache_stats(&self) -> CacheStats {
        let (records, record_bytes) = self.records.stats();
        let (indexes, index_bytes) = self.indexes.stats();
        CacheStats { records, record_bytes, indexes, index_bytes }
    }

    /// Deletes one version. Deleting a chart's last version removes the chart.
    pub async fn delete_version(&self, space: &str, chart: &str, version: &str) -> Result<()> {
        let key = self.locate(space, chart, version).await?;
        let _lock = self.lock(&key).await?;
        if !self.records.delete(&key).await? {
            return Err(RegistryError::not_found(key.id()));
        }
        self.records.delete_legacy_provenance(&key).await?;
        self.sync_index(&key).await;
        Ok(())
    }

    /// Deletes every version of a chart, all or nothing: every version's lock is taken
    /// before the first record goes.
    pub async fn delete_chart(&self, space: &str, chart: &str) -> Result<()> {
        let versions = self.chart_versions(space, chart).await?;
        let mut keys = Vec::with_capacity(versions.len());
        for stored in &versions {
            keys.push(self.locate(space, chart, &stored.version).await?);
        }
        let mut held = Vec::with_capacity(keys.len());
        for key in &keys {
            held.push(self.lock(key).await?);
        }
        for key in &keys {
            self.records.delete(key).await?;
            self.records.delete_legacy_provenance(key).await?;
        }
        for key in &keys {
            self.sync_index(key).await;
        }
        Ok(())
    }
}
