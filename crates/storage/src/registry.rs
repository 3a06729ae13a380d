//! The registry operations: spaces, charts and versions over an object store.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use chartyard_core::archive::{self, Chart, Limits};
use chartyard_core::metadata::{API_VERSION_V1, ChartMetadata};
use chartyard_core::names::{check_name, compare_versions, parse_version};
use chartyard_core::record::VersionRecord;
use chartyard_core::{RegistryError, values, yaml};
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde_json::Value;

use crate::keys::{StorageKey, parse_blob_path, parse_record_path, parse_space_marker};
use crate::locks::{LockGuard, Locks};

type Result<T> = std::result::Result<T, RegistryError>;

/// How the registry is set up.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// How long a writer waits for a busy version (zero: fail at once).
    pub lock_timeout: Duration,
    /// Bounds on uploaded archives.
    pub limits: Limits,
    /// Whether the store supports compare-and-swap writes (`PutMode::Update`); where it
    /// does, replacing a version is safe across processes, not only within one.
    pub conditional_updates: bool,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        Self {
            lock_timeout: Duration::ZERO,
            limits: Limits::default(),
            conditional_updates: false,
        }
    }
}

/// A version as stored: where it is and what its record says.
#[derive(Debug, Clone)]
pub struct StoredVersion {
    pub space: String,
    pub chart: String,
    pub version: String,
    pub record: Arc<VersionRecord>,
}

/// An archive being read from storage.
pub struct ArchiveStream {
    pub record: Arc<VersionRecord>,
    pub body: BoxStream<'static, std::result::Result<Bytes, object_store::Error>>,
}

/// What a garbage collection found and removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    pub referenced_blobs: usize,
    pub deleted_blobs: usize,
    pub deleted_bytes: u64,
}

/// A parsed record, remembered with the ETag it was read at.
struct CachedRecord {
    e_tag: String,
    record: Arc<VersionRecord>,
}

pub struct Registry {
    store: Arc<dyn ObjectStore>,
    options: RegistryOptions,
    locks: Locks,
    records: Mutex<HashMap<Path, CachedRecord>>,
}

fn storage_error(e: object_store::Error) -> RegistryError {
    RegistryError::internal(format!("storage: {e}"))
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(SystemTime::now()).to_string()
}

fn version_id(space: &str, chart: &str, version: &str) -> String {
    format!("{space}/{chart}/{version}")
}

impl Registry {
    pub fn new(store: Arc<dyn ObjectStore>, options: RegistryOptions) -> Self {
        let locks = Locks::new(options.lock_timeout);
        Self {
            store,
            options,
            locks,
            records: Mutex::default(),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.options.limits
    }

    // ---- spaces ----

    /// All spaces, sorted by name.
    pub async fn list_spaces(&self) -> Result<Vec<String>> {
        let listing = self
            .store
            .list_with_delimiter(Some(&StorageKey::Spaces.path()))
            .await
            .map_err(storage_error)?;
        let mut spaces: Vec<String> = listing
            .objects
            .iter()
            .filter_map(|o| parse_space_marker(&o.location))
            .collect();
        spaces.sort();
        Ok(spaces)
    }

    pub async fn space_exists(&self, space: &str) -> Result<bool> {
        check_name("space", space)?;
        match self
            .store
            .head(&StorageKey::SpaceMarker { space }.path())
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(storage_error(e)),
        }
    }

    async fn require_space(&self, space: &str) -> Result<()> {
        if self.space_exists(space).await? {
            Ok(())
        } else {
            Err(RegistryError::not_found(space))
        }
    }

    /// Creates a space; `AlreadyExists` if it does.
    pub async fn create_space(&self, space: &str) -> Result<()> {
        check_name("space", space)?;
        match self.put_space_marker(space).await? {
            true => Ok(()),
            false => Err(RegistryError::AlreadyExists(space.to_string())),
        }
    }

    /// Writes the marker unless present; true if this call created the space.
    async fn put_space_marker(&self, space: &str) -> Result<bool> {
        let body = serde_json::to_vec(&serde_json::json!({ "created": now_rfc3339() }))
            .map_err(RegistryError::internal)?;
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&StorageKey::SpaceMarker { space }.path(), body.into(), opts)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(storage_error(e)),
        }
    }

    /// Deletes a space and every version in it. The marker goes first, so the space is
    /// gone for readers at once; the archives are reclaimed by garbage collection.
    pub async fn delete_space(&self, space: &str) -> Result<()> {
        check_name("space", space)?;
        match self
            .store
            .delete(&StorageKey::SpaceMarker { space }.path())
            .await
        {
            Ok(()) => {}
            Err(object_store::Error::NotFound { .. }) => {
                return Err(RegistryError::not_found(space));
            }
            Err(e) => return Err(storage_error(e)),
        }
        self.delete_prefix(&StorageKey::SpaceCharts { space }.path())
            .await
    }

    async fn delete_prefix(&self, prefix: &Path) -> Result<()> {
        let locations = self
            .store
            .list(Some(prefix))
            .map_ok(|meta| meta.location)
            .boxed();
        self.store
            .delete_stream(locations)
            .try_for_each(|_| async { Ok(()) })
            .await
            .or_else(|e| match e {
                object_store::Error::NotFound { .. } => Ok(()),
                e => Err(storage_error(e)),
            })
    }

    // ---- listings ----

    /// Every version in a space, sorted by chart name, then version precedence.
    pub async fn space_versions(&self, space: &str) -> Result<Vec<StoredVersion>> {
        self.require_space(space).await?;
        self.versions_under(&StorageKey::SpaceCharts { space }.path())
            .await
    }

    /// Every version of a chart, in version precedence; `NotFound` if it has none.
    pub async fn chart_versions(&self, space: &str, chart: &str) -> Result<Vec<StoredVersion>> {
        check_name("space", space)?;
        check_name("chart", chart)?;
        let versions = self
            .versions_under(&StorageKey::ChartVersions { space, chart }.path())
            .await?;
        if versions.is_empty() {
            return Err(RegistryError::not_found(format!("{space}/{chart}")));
        }
        Ok(versions)
    }

    /// Chart names in a space, sorted by byte order.
    pub async fn list_charts(&self, space: &str) -> Result<Vec<String>> {
        let mut charts: Vec<String> = self
            .space_versions(space)
            .await?
            .into_iter()
            .map(|v| v.chart)
            .collect();
        charts.dedup();
        Ok(charts)
    }

    /// Lists records under a prefix, reading only those not already cached at their ETag.
    async fn versions_under(&self, prefix: &Path) -> Result<Vec<StoredVersion>> {
        let metas: Vec<_> = self
            .store
            .list(Some(prefix))
            .try_collect()
            .await
            .map_err(storage_error)?;
        let listed: HashSet<Path> = metas.iter().map(|m| m.location.clone()).collect();
        let mut found = Vec::with_capacity(metas.len());
        let mut to_read = Vec::new();
        {
            let mut cache = self.records.lock().unwrap_or_else(|e| e.into_inner());
            // Forget cached records under this prefix that no longer exist.
            cache.retain(|path, _| !path.prefix_matches(prefix) || listed.contains(path));
            for meta in metas {
                let Some((space, chart, version)) = parse_record_path(&meta.location) else {
                    continue;
                };
                match (&meta.e_tag, cache.get(&meta.location)) {
                    (Some(tag), Some(cached)) if *tag == cached.e_tag => {
                        found.push(StoredVersion {
                            space,
                            chart,
                            version,
                            record: cached.record.clone(),
                        });
                    }
                    _ => to_read.push((meta.location, space, chart, version)),
                }
            }
        }
        let read: Vec<Option<StoredVersion>> = futures::stream::iter(to_read)
            .map(|(location, space, chart, version)| async move {
                match self.read_record(&location).await {
                    Ok(record) => Ok(Some(StoredVersion {
                        space,
                        chart,
                        version,
                        record,
                    })),
                    // Deleted between the listing and the read: not there any more.
                    Err(RegistryError::NotFound(_)) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .buffer_unordered(32)
            .try_collect()
            .await?;
        found.extend(read.into_iter().flatten());
        found.sort_by(|a, b| {
            a.chart
                .cmp(&b.chart)
                .then_with(|| compare_versions(&a.version, &b.version))
        });
        Ok(found)
    }

    async fn read_record(&self, location: &Path) -> Result<Arc<VersionRecord>> {
        let result = match self.store.get(location).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(RegistryError::not_found(location.to_string()));
            }
            Err(e) => return Err(storage_error(e)),
        };
        let e_tag = result.meta.e_tag.clone();
        let bytes = result.bytes().await.map_err(storage_error)?;
        let record: VersionRecord = serde_json::from_slice(&bytes)
            .map_err(|e| RegistryError::internal(format!("corrupt record {location}: {e}")))?;
        let record = Arc::new(record);
        if let Some(e_tag) = e_tag {
            let mut cache = self.records.lock().unwrap_or_else(|e| e.into_inner());
            cache.insert(
                location.clone(),
                CachedRecord {
                    e_tag,
                    record: record.clone(),
                },
            );
        }
        Ok(record)
    }

    // ---- one version ----

    fn check_coordinates(space: &str, chart: &str, version: &str) -> Result<()> {
        check_name("space", space)?;
        check_name("chart", chart)?;
        parse_version(version)?;
        Ok(())
    }

    /// The record of one version.
    pub async fn version(
        &self,
        space: &str,
        chart: &str,
        version: &str,
    ) -> Result<Arc<VersionRecord>> {
        Self::check_coordinates(space, chart, version)?;
        self.read_record(
            &StorageKey::VersionRecord {
                space,
                chart,
                version,
            }
            .path(),
        )
        .await
        .map_err(|e| match e {
            RegistryError::NotFound(_) => {
                RegistryError::not_found(version_id(space, chart, version))
            }
            e => e,
        })
    }

    /// The archive of one version, streamed from storage.
    pub async fn open_archive(
        &self,
        space: &str,
        chart: &str,
        version: &str,
    ) -> Result<ArchiveStream> {
        let record = self.version(space, chart, version).await?;
        let blob = StorageKey::Blob {
            digest: &record.digest,
        }
        .path();
        let result = self.store.get(&blob).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => RegistryError::internal(format!(
                "archive of {} is missing",
                version_id(space, chart, version)
            )),
            e => storage_error(e),
        })?;
        Ok(ArchiveStream {
            record,
            body: result.into_stream(),
        })
    }

    /// The whole archive of one version, in memory (for rewriting it).
    pub async fn archive_bytes(
        &self,
        space: &str,
        chart: &str,
        version: &str,
    ) -> Result<(Arc<VersionRecord>, Bytes)> {
        let stream = self.open_archive(space, chart, version).await?;
        let chunks: Vec<Bytes> = stream.body.try_collect().await.map_err(storage_error)?;
        Ok((stream.record, chunks.concat().into()))
    }

    /// Stores a new version from an uploaded archive; `AlreadyExists` if the version does.
    /// Uploading into a missing space creates it.
    pub async fn upload(&self, space: &str, archive: Bytes) -> Result<StoredVersion> {
        check_name("space", space)?;
        let chart = archive::load(&archive, &self.options.limits)?;
        let (name, version) = (chart.metadata.name.clone(), chart.metadata.version.clone());
        let record = VersionRecord::new(
            &chart,
            archive::sha256_hex(&archive),
            archive.len() as u64,
            now_rfc3339(),
        );
        self.put_blob(&record.digest, archive).await?;
        self.put_space_marker(space).await?;
        let key = StorageKey::VersionRecord {
            space,
            chart: &name,
            version: &version,
        }
        .path();
        let body = serde_json::to_vec(&record).map_err(RegistryError::internal)?;
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self.store.put_opts(&key, body.into(), opts).await {
            Ok(_) => {}
            Err(object_store::Error::AlreadyExists { .. }) => {
                return Err(RegistryError::AlreadyExists(version_id(
                    space, &name, &version,
                )));
            }
            Err(e) => return Err(storage_error(e)),
        }
        Ok(StoredVersion {
            space: space.to_string(),
            chart: name,
            version,
            record: Arc::new(record),
        })
    }

    /// Replaces the archive of an existing version; the archive must hold that chart and
    /// version.
    pub async fn replace(
        &self,
        space: &str,
        chart: &str,
        version: &str,
        archive: Bytes,
    ) -> Result<StoredVersion> {
        Self::check_coordinates(space, chart, version)?;
        let loaded = archive::load(&archive, &self.options.limits)?;
        if loaded.metadata.name != chart {
            return Err(RegistryError::invalid(format!(
                "value of chart should be {chart}, but got {}",
                loaded.metadata.name
            )));
        }
        if loaded.metadata.version != version {
            return Err(RegistryError::invalid(format!(
                "value of version should be {version}, but got {}",
                loaded.metadata.version
            )));
        }
        let _lock = self.lock(space, chart, version).await?;
        let current = self.current(space, chart, version).await?;
        self.commit(space, &loaded, archive, current).await
    }

    /// The values Helm computes for this version with no overrides (the seed's answer).
    pub async fn values(&self, space: &str, chart: &str, version: &str) -> Result<Value> {
        let (_, archive) = self.archive_bytes(space, chart, version).await?;
        let loaded = archive::load(&archive, &self.options.limits)?;
        Ok(values::coalesce(&loaded))
    }

    /// Replaces the chart's `values.yaml` with `new_values` (a JSON object); answers the
    /// values of the updated version.
    pub async fn update_values(
        &self,
        space: &str,
        chart: &str,
        version: &str,
        new_values: Value,
    ) -> Result<Value> {
        Self::check_coordinates(space, chart, version)?;
        if !new_values.is_object() {
            return Err(RegistryError::invalid("values should be a JSON object"));
        }
        let values_yaml = yaml::to_yaml(&new_values)?;
        let _lock = self.lock(space, chart, version).await?;
        let updated = self
            .rewrite_locked(space, chart, version, "values.yaml", values_yaml)
            .await?;
        Ok(values::coalesce(&updated))
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
        Self::check_coordinates(space, chart, version)?;
        if new_metadata.name != chart {
            return Err(RegistryError::invalid(format!(
                "value of name should be {chart}, but got {}",
                new_metadata.name
            )));
        }
        if new_metadata.version != version {
            return Err(RegistryError::invalid(format!(
                "value of version should be {version}, but got {}",
                new_metadata.version
            )));
        }
        let _lock = self.lock(space, chart, version).await?;
        let current = self.version(space, chart, version).await?;
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
        self.rewrite_locked(space, chart, version, "Chart.yaml", chart_yaml)
            .await?;
        let record = self.version(space, chart, version).await?;
        Ok(StoredVersion {
            space: space.into(),
            chart: chart.into(),
            version: version.into(),
            record,
        })
    }

    /// Rewrites one file of a stored archive; the caller holds the version's lock.
    async fn rewrite_locked(
        &self,
        space: &str,
        chart: &str,
        version: &str,
        file: &str,
        content: String,
    ) -> Result<Chart> {
        // The ETag is taken before the archive is read, so that a change in between makes
        // the conditional commit fail instead of being overwritten.
        let current = self.current(space, chart, version).await?;
        let (_, archive) = self.archive_bytes(space, chart, version).await?;
        let rewritten = archive::rewrite(
            &archive,
            chart,
            &[(file, content.into_bytes())],
            &self.options.limits,
        )?;
        let loaded = archive::load(&rewritten, &self.options.limits)?;
        self.commit(space, &loaded, rewritten.into(), current)
            .await?;
        Ok(loaded)
    }

    async fn lock(&self, space: &str, chart: &str, version: &str) -> Result<LockGuard> {
        let id = version_id(space, chart, version);
        self.locks
            .acquire(&id)
            .await
            .ok_or(RegistryError::Locked(id))
    }

    /// The current record's version tag, for a compare-and-swap commit; `NotFound` if the
    /// version does not exist.
    async fn current(&self, space: &str, chart: &str, version: &str) -> Result<UpdateVersion> {
        match self
            .store
            .head(
                &StorageKey::VersionRecord {
                    space,
                    chart,
                    version,
                }
                .path(),
            )
            .await
        {
            Ok(meta) => Ok(UpdateVersion {
                e_tag: meta.e_tag,
                version: meta.version,
            }),
            Err(object_store::Error::NotFound { .. }) => {
                Err(RegistryError::not_found(version_id(space, chart, version)))
            }
            Err(e) => Err(storage_error(e)),
        }
    }

    /// Stores a changed archive of an existing version: blob first, then the record.
    async fn commit(
        &self,
        space: &str,
        chart: &Chart,
        archive: Bytes,
        current: UpdateVersion,
    ) -> Result<StoredVersion> {
        let (name, version) = (
            chart.metadata.name.as_str(),
            chart.metadata.version.as_str(),
        );
        let record = VersionRecord::new(
            chart,
            archive::sha256_hex(&archive),
            archive.len() as u64,
            now_rfc3339(),
        );
        self.put_blob(&record.digest, archive).await?;
        let key = StorageKey::VersionRecord {
            space,
            chart: name,
            version,
        }
        .path();
        let mode = if self.options.conditional_updates {
            PutMode::Update(current)
        } else {
            PutMode::Overwrite
        };
        let body = serde_json::to_vec(&record).map_err(RegistryError::internal)?;
        match self
            .store
            .put_opts(
                &key,
                body.into(),
                PutOptions {
                    mode,
                    ..Default::default()
                },
            )
            .await
        {
            Ok(_) => {}
            Err(object_store::Error::Precondition { .. }) => {
                return Err(RegistryError::Locked(version_id(space, name, version)));
            }
            Err(e) => return Err(storage_error(e)),
        }
        Ok(StoredVersion {
            space: space.into(),
            chart: name.into(),
            version: version.into(),
            record: Arc::new(record),
        })
    }

    /// Stores archive bytes under their digest. Always written (not create-if-absent) so
    /// that a blob in use is fresh and garbage collection's grace period protects it.
    async fn put_blob(&self, digest: &str, archive: Bytes) -> Result<()> {
        self.store
            .put(
                &StorageKey::Blob { digest }.path(),
                PutPayload::from(archive),
            )
            .await
            .map(|_| ())
            .map_err(storage_error)
    }

    /// Deletes one version. Deleting a chart's last version removes the chart.
    pub async fn delete_version(&self, space: &str, chart: &str, version: &str) -> Result<()> {
        Self::check_coordinates(space, chart, version)?;
        let _lock = self.lock(space, chart, version).await?;
        match self
            .store
            .delete(
                &StorageKey::VersionRecord {
                    space,
                    chart,
                    version,
                }
                .path(),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(object_store::Error::NotFound { .. }) => {
                Err(RegistryError::not_found(version_id(space, chart, version)))
            }
            Err(e) => Err(storage_error(e)),
        }
    }

    /// Deletes every version of a chart, all or nothing: every version's lock is taken
    /// before the first record goes.
    pub async fn delete_chart(&self, space: &str, chart: &str) -> Result<()> {
        let versions = self.chart_versions(space, chart).await?;
        let mut locks = Vec::with_capacity(versions.len());
        for stored in &versions {
            locks.push(self.lock(space, chart, &stored.version).await?);
        }
        for stored in &versions {
            let key = StorageKey::VersionRecord {
                space,
                chart,
                version: &stored.version,
            }
            .path();
            match self.store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(storage_error(e)),
            }
        }
        Ok(())
    }

    // ---- maintenance ----

    /// Deletes archives no version refers to. Blobs younger than `grace` are kept: an
    /// upload writes its blob before its record, and must not lose it in between.
    pub async fn collect_garbage(&self, grace: Duration) -> Result<GcReport> {
        let referenced: HashSet<String> = self
            .versions_under(&StorageKey::AllCharts.path())
            .await?
            .into_iter()
            .map(|v| v.record.digest.clone())
            .collect();
        let cutoff = SystemTime::now() - grace;
        let blobs: Vec<_> = self
            .store
            .list(Some(&StorageKey::Blobs.path()))
            .try_collect()
            .await
            .map_err(storage_error)?;
        let mut report = GcReport {
            referenced_blobs: referenced.len(),
            ..Default::default()
        };
        for blob in blobs {
            let Some(digest) = parse_blob_path(&blob.location) else {
                continue;
            };
            if referenced.contains(&digest) || SystemTime::from(blob.last_modified) > cutoff {
                continue;
            }
            match self.store.delete(&blob.location).await {
                Ok(()) => {
                    report.deleted_blobs += 1;
                    report.deleted_bytes += blob.size;
                }
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(storage_error(e)),
            }
        }
        Ok(report)
    }
}
