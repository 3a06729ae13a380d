//! Version records: a version exists exactly when its record does. Records are written
//! create-if-absent, replaced compare-and-swap, and kept parsed in a cache by ETag, so a
//! repeated listing costs one LIST and no GETs.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chartyard_core::RegistryError;
use chartyard_core::names::compare_versions;
use chartyard_core::record::VersionRecord;
use futures::stream::{StreamExt, TryStreamExt};
use object_store::ObjectMeta;
use object_store::path::Path;

use crate::cache::WeightedLru;
use crate::gateway::{Created, Gateway, ObjectVersion, Replaced, to_json};
use crate::keys::{RecordPath, StorageKey, parse_record_path};
use crate::spaces::new_generation;

type Result<T> = std::result::Result<T, RegistryError>;

/// A version as stored: where it is and what its record says.
#[derive(Debug, Clone)]
pub struct StoredVersion {
    pub space: String,
    pub chart: String,
    pub version: String,
    pub record: Arc<VersionRecord>,
}

pub(crate) fn version_id(space: &str, chart: &str, version: &str) -> String {
    format!("{space}/{chart}/{version}")
}

/// One version's place in storage, once its space's generation is known.
pub(crate) struct VersionKey<'a> {
    pub space: &'a str,
    pub generation: String,
    pub chart: &'a str,
    pub version: &'a str,
}

impl VersionKey<'_> {
    fn record(&self) -> StorageKey<'_> {
        StorageKey::VersionRecord {
            space: self.space,
            generation: &self.generation,
            chart: self.chart,
            version: self.version,
        }
    }

    fn provenance(&self) -> StorageKey<'_> {
        StorageKey::Provenance {
            space: self.space,
            generation: &self.generation,
            chart: self.chart,
            version: self.version,
        }
    }

    pub fn id(&self) -> String {
        version_id(self.space, self.chart, self.version)
    }

    pub fn stored(&self, record: Arc<VersionRecord>) -> StoredVersion {
        StoredVersion { space: self.space.into(), chart: self.chart.into(), version: self.version.into(), record }
    }
}

/// A parsed record, remembered with the ETag it was read at.
struct CachedRecord {
    e_tag: String,
    record: Arc<VersionRecord>,
}

impl CachedRecord {
    /// Roughly what a record parsed from `json_len` bytes of JSON holds in memory.
    fn weight(location: &Path, json_len: usize) -> usize {
        2 * json_len + location.as_ref().len() + 256
    }
}

/// The version records, with the cache of parsed ones.
pub(crate) struct Records {
    gateway: Gateway,
    /// Parsed records by location, least recently used first out.
    cache: Mutex<WeightedLru<Path, CachedRecord>>,
}

impl Records {
    pub fn new(gateway: Gateway, cache_bytes: usize) -> Self {
        Self { gateway, cache: Mutex::new(WeightedLru::new(cache_bytes, |_| false)) }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, WeightedLru<Path, CachedRecord>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many records the cache holds, and their weight.
    pub fn stats(&self) -> (usize, usize) {
        let cache = self.cache();
        (cache.len(), cache.weight())
    }

    /// Every version of one generation of a space, sorted by chart name, then version
    /// precedence.
    pub async fn space_versions(&self, space: &str, generation: &str) -> Result<Vec<StoredVersion>> {
        Ok(untagged(self.versions_under(StorageKey::SpaceRecords { space, generation }).await?))
    }

    /// [`Records::space_versions`], each with the ETag its record was listed at.
    pub async fn space_versions_tagged(
        &self,
        space: &str,
        generation: &str,
    ) -> Result<Vec<(StoredVersion, Option<String>)>> {
        self.versions_under(StorageKey::SpaceRecords { space, generation }).await
    }

    /// Every version of a chart, in version precedence.
    pub async fn chart_versions(&self, space: &str, generation: &str, chart: &str) -> Result<Vec<StoredVersion>> {
        Ok(untagged(self.versions_under(StorageKey::ChartRecords { space, generation, chart }).await?))
    }

    /// Lists the records under a prefix and reads them, each with the ETag it was listed at.
    async fn versions_under(&self, prefix: StorageKey<'_>) -> Result<Vec<(StoredVersion, Option<String>)>> {
        let metas = self.gateway.list(prefix).await?;
        let prefix = prefix.path();
        {
            // Forget cached records under this prefix that no longer exist.
            let listed: HashSet<&Path> = metas.iter().map(|m| &m.location).collect();
            self.cache().retain(|path| !path.prefix_matches(&prefix) || listed.contains(path));
        }
        let tags: HashMap<Path, Option<String>> = metas.iter().map(|m| (m.location.clone(), m.e_tag.clone())).collect();
        let mut found: Vec<(StoredVersion, Option<String>)> = self
            .read_listed(metas)
            .await?
            .into_iter()
            .map(|(path, record)| {
                let e_tag = tags.get(&path.key().path()).cloned().flatten();
                (StoredVersion { space: path.space, chart: path.chart, version: path.version, record }, e_tag)
            })
            .collect();
        found.sort_by(|(a, _), (b, _)| a.chart.cmp(&b.chart).then_with(|| compare_versions(&a.version, &b.version)));
        Ok(found)
    }

    /// Reads listed records, only those not already cached at their ETag; records deleted
    /// since the listing are left out.
    pub async fn read_listed(&self, metas: Vec<ObjectMeta>) -> Result<Vec<(RecordPath, Arc<VersionRecord>)>> {
        let mut found = Vec::with_capacity(metas.len());
        let mut to_read = Vec::new();
        {
            let mut cache = self.cache();
            for meta in metas {
                let Some(path) = parse_record_path(&meta.location) else {
                    continue;
                };
                match (&meta.e_tag, cache.get(&meta.location)) {
                    (Some(tag), Some(cached)) if *tag == cached.e_tag => found.push((path, cached.record.clone())),
                    _ => to_read.push(path),
                }
            }
        }
        let read: Vec<Option<(RecordPath, Arc<VersionRecord>)>> = futures::stream::iter(to_read)
            .map(|path| async move {
                let found = self.get_record(path.key()).await?;
                Ok::<_, RegistryError>(found.map(|(record, _)| (path, record)))
            })
            .buffer_unordered(32)
            .try_collect()
            .await?;
        found.extend(read.into_iter().flatten());
        Ok(found)
    }

    async fn read_record(&self, key: StorageKey<'_>) -> Result<Arc<VersionRecord>> {
        match self.get_record(key).await? {
            Some((record, _)) => Ok(record),
            None => Err(RegistryError::not_found(key.path().to_string())),
        }
    }

    /// A record and its ETag, read with one GET and cached (`None` if there is none).
    async fn get_record(&self, key: StorageKey<'_>) -> Result<Option<(Arc<VersionRecord>, Option<String>)>> {
        let location = key.path();
        let Some(object) = self.gateway.get(key).await? else { return Ok(None) };
        let record: VersionRecord = serde_json::from_slice(&object.bytes)
            .map_err(|e| RegistryError::internal(format!("corrupt record {location}: {e}")))?;
        let record = Arc::new(record);
        self.remember(&location, object.e_tag.clone(), &record, object.bytes.len());
        Ok(Some((record, object.e_tag)))
    }

    /// The record of one version; `NotFound` naming the version if it has none.
    pub async fn read(&self, key: &VersionKey<'_>) -> Result<Arc<VersionRecord>> {
        self.read_record(key.record()).await.map_err(|e| match e {
            RegistryError::NotFound(_) => RegistryError::not_found(key.id()),
            e => e,
        })
    }

    /// The record stored now (`None` if there is none), from the cache when it holds the
    /// record at the current ETag.
    pub async fn current(&self, key: &VersionKey<'_>) -> Result<Option<Arc<VersionRecord>>> {
        Ok(self.current_tagged(key).await?.map(|(record, _)| record))
    }

    /// [`Records::current`] with the ETag the record was found at: one HEAD while the
    /// cache holds the record, else a HEAD and a GET.
    pub async fn current_tagged(&self, key: &VersionKey<'_>) -> Result<Option<(Arc<VersionRecord>, Option<String>)>> {
        let Some(meta) = self.gateway.head(key.record()).await? else { return Ok(None) };
        if let Some(tag) = &meta.e_tag
            && let Some(cached) = self.cache().get(&meta.location).filter(|cached| cached.e_tag == *tag)
        {
            return Ok(Some((cached.record.clone(), meta.e_tag)));
        }
        self.fetch(key).await
    }

    /// The record stored now and its ETag, read with one GET (`None` if there is none).
    pub async fn fetch(&self, key: &VersionKey<'_>) -> Result<Option<(Arc<VersionRecord>, Option<String>)>> {
        self.get_record(key.record()).await
    }

    /// The ETag of every record of a generation of a space, from one listing.
    pub async fn e_tags(&self, space: &str, generation: &str) -> Result<HashMap<(String, String), Option<String>>> {
        let metas = self.gateway.list(StorageKey::SpaceRecords { space, generation }).await?;
        Ok(metas
            .into_iter()
            .filter_map(|meta| parse_record_path(&meta.location).map(|path| ((path.chart, path.version), meta.e_tag)))
            .collect())
    }

    /// The current record's version tag, for a compare-and-swap replace; `NotFound` if the
    /// version does not exist.
    pub async fn version(&self, key: &VersionKey<'_>) -> Result<ObjectVersion> {
        self.gateway.version(key.record()).await?.ok_or_else(|| RegistryError::not_found(key.id()))
    }

    /// Writes a new version's record unless the version exists; answers it with the ETag
    /// it was stored at (if the store said), or, when the version exists, the record back,
    /// unwritten.
    pub async fn create(
        &self,
        key: &VersionKey<'_>,
        mut record: VersionRecord,
    ) -> Result<std::result::Result<(Arc<VersionRecord>, Option<String>), VersionRecord>> {
        record.writer = new_generation();
        let body = to_json(&record)?;
        let body_len = body.len();
        match self.gateway.create(key.record(), body).await? {
            Created::Created(e_tag) => {
                let record = Arc::new(record);
                self.remember(&key.record().path(), e_tag.clone(), &record, body_len);
                Ok(Ok((record, e_tag)))
            }
            Created::Exists => match self.written_by(key, &record.writer).await? {
                Some(ours) => Ok(Ok((ours, None))),
                None => Ok(Err(record)),
            },
        }
    }

    /// The stored record, if it is the one the write `writer` stored: a retried write whose
    /// first answer was lost reports our own record as already there, or as changed.
    async fn written_by(&self, key: &VersionKey<'_>, writer: &str) -> Result<Option<Arc<VersionRecord>>> {
        Ok(self.current(key).await?.filter(|stored| stored.writer == writer))
    }

    /// Replaces a version's record if it is still at `current` (on stores without
    /// compare-and-swap, whatever it is), answering it with its new ETag (if the store
    /// said); `Locked` if it changed.
    pub async fn replace(
        &self,
        key: &VersionKey<'_>,
        mut record: VersionRecord,
        current: ObjectVersion,
    ) -> Result<(Arc<VersionRecord>, Option<String>)> {
        record.writer = new_generation();
        let body = to_json(&record)?;
        let (record, body_len) = (Arc::new(record), body.len());
        match self.gateway.replace_if(key.record(), body, current).await? {
            Replaced::Replaced(e_tag) => {
                self.remember(&key.record().path(), e_tag.clone(), &record, body_len);
                Ok((record, e_tag))
            }
            Replaced::Changed => {
                let ours = self.written_by(key, &record.writer).await?;
                ours.map(|ours| (ours, None)).ok_or_else(|| RegistryError::Locked(key.id()))
            }
        }
    }

    /// Deletes a version's record; answers whether it was there.
    pub async fn delete(&self, key: &VersionKey<'_>) -> Result<bool> {
        let deleted = self.gateway.delete(key.record()).await?;
        self.cache().remove(&key.record().path());
        Ok(deleted)
    }

    /// Deletes every record of one generation of a space.
    pub async fn delete_generation(&self, space: &str, generation: &str) -> Result<()> {
        let records = StorageKey::SpaceRecords { space, generation };
        let prefix = records.path();
        self.cache().retain(|path| !path.prefix_matches(&prefix));
        self.gateway.delete_prefix(records).await
    }

    /// Every version record, split into those of live generations (by space) and those
    /// of deleted ones.
    pub async fn partition(
        &self,
        generations: &HashMap<String, String>,
    ) -> Result<(Vec<ObjectMeta>, Vec<(RecordPath, ObjectMeta)>)> {
        let metas = self.gateway.list(StorageKey::AllRecords).await?;
        let (live, stale): (Vec<_>, Vec<_>) = metas
            .into_iter()
            .filter_map(|meta| parse_record_path(&meta.location).map(|path| (path, meta)))
            .partition(|(path, _)| generations.get(&path.space) == Some(&path.generation));
        Ok((live.into_iter().map(|(_, meta)| meta).collect(), stale))
    }

    /// Deletes a record of a deleted space; answers whether it was there.
    pub async fn delete_stale(&self, path: &RecordPath) -> Result<bool> {
        self.gateway.delete(path.key()).await
    }

    /// The provenance file stored beside a version's record by registries that did not
    /// name it in the record, if any.
    pub async fn legacy_provenance(&self, key: &VersionKey<'_>) -> Result<Option<Bytes>> {
        Ok(self.gateway.get(key.provenance()).await?.map(|object| object.bytes))
    }

    /// Deletes a provenance file stored beside a version's record, so that it is never
    /// read for another record of that version.
    pub async fn delete_legacy_provenance(&self, key: &VersionKey<'_>) -> Result<()> {
        self.gateway.delete(key.provenance()).await.map(drop)
    }

    /// Caches a record read or written at an ETag (`json_len`: its size in storage).
    fn remember(&self, location: &Path, e_tag: Option<String>, record: &Arc<VersionRecord>, json_len: usize) {
        if let Some(e_tag) = e_tag {
            let weight = CachedRecord::weight(location, json_len);
            self.cache().insert(location.clone(), CachedRecord { e_tag, record: record.clone() }, weight);
        }
    }
}

/// Versions without the ETags they were listed at.
fn untagged(tagged: Vec<(StoredVersion, Option<String>)>) -> Vec<StoredVersion> {
    tagged.into_iter().map(|(version, _)| version).collect()
}
