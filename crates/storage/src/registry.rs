//! The registry facade: the chart operations (upload, replace, values, metadata, delete,
//! listings, indexes) over the single-purpose stores, each of which owns its keys.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chartyard_core::archive::{self, Chart, Files, Limits};
use chartyard_core::error::echo;
use chartyard_core::metadata::{API_VERSION_V1, ChartMetadata};
use chartyard_core::names::{check_name, check_new_space_name, parse_version};
use chartyard_core::oci::{self, BlobDigest, Descriptor};
use chartyard_core::record::{ManifestRef, VersionRecord};
use chartyard_core::{RegistryError, provenance, values, yaml};
use object_store::ObjectStore;
use serde_json::Value;

use crate::blobs::Blobs;
use crate::cache::WeightedLru;
use crate::changelog::{Appended, Change, ChangeLog, KNOWLEDGE_TTL, SPACE_GONE};
use crate::gateway::{Gateway, ObjectStream, ObjectVersion, StorageRequests, collect};
use crate::index::{CHECKPOINT_FORMAT, Indexes, ListedVersions, Located, ReadTicket, RenderedIndex, SpaceIndex};
use crate::locks::{LockGuard, Locks};
use crate::manifests::Manifests;
use crate::policies::Policies;
use crate::records::{Records, StoredVersion, VersionKey, version_id};
use crate::spaces::{Spaces, now_rfc3339};
use crate::uploads::Uploads;
use chartyard_core::policy::{SpacePolicy, Usage};

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
    /// Bytes the in-memory caches may hold, by estimate: half for loaded space indexes,
    /// three eighths for parsed records, an eighth for unpacked chart files (the web UI's
    /// chart pages). What falls out is read from storage again.
    pub cache_bytes: usize,
    /// How many archives are parsed (or rewritten, or composed) at once; more wait their
    /// turn. Each parse may decompress up to `limits` into memory and keeps a CPU busy.
    pub parse_concurrency: usize,
    /// How old a space's index may be when a request reads it: older, and the request
    /// first reads the space's change log (one listing) for other replicas' changes.
    pub index_freshness: Duration,
    /// How often a loaded index is compared with the records themselves, repairing what
    /// a writer that crashed between its record and its log entry left unannounced.
    pub reconcile_interval: Duration,
    /// Whether other processes write to the store while this one serves it (replicas on
    /// S3). Where none can (a filesystem root has one server), this process's own writes
    /// are all there is: indexes read the log only when loaded, and are compared with the
    /// records once after loading from a checkpoint (a write this process announced
    /// before it stopped may be missing), not periodically.
    pub shared_store: bool,
    /// Audit entries kept per space by garbage collection (the newest ones).
    pub audit_retention: usize,
}

/// The default of [`RegistryOptions::index_freshness`].
pub const DEFAULT_INDEX_FRESHNESS: Duration = Duration::from_millis(250);

/// The default of [`RegistryOptions::reconcile_interval`].
pub const DEFAULT_RECONCILE_INTERVAL: Duration = Duration::from_secs(300);

/// An index not followed for this long has its space's marker read again too, in case
/// the space was deleted by a writer that stopped before ending its log.
const MARKER_RECHECK: Duration = Duration::from_secs(30);

/// How long following a log waits for this process's writers to set the changes of an
/// entry they just wrote, before reading it itself.
const OWN_ENTRY_PATIENCE: Duration = Duration::from_secs(2);

/// Indexes used within this long are followed in the background ("in use").
const IN_USE: Duration = Duration::from_secs(300);

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
            index_freshness: DEFAULT_INDEX_FRESHNESS,
            reconcile_interval: DEFAULT_RECONCILE_INTERVAL,
            shared_store: true,
            audit_retention: crate::audit::DEFAULT_AUDIT_RETENTION,
        }
    }
}

/// An archive being read from storage.
pub struct ArchiveStream {
    /// Its size in bytes.
    pub size: u64,
    pub body: ObjectStream,
}

/// A loaded space index, as the metrics report it (see [`Registry::index_stats`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexStats {
    pub space: String,
    pub charts: usize,
    pub versions: usize,
    /// The last change log entry the index holds.
    pub position: u64,
    /// How long ago the index last read its space's change log (or was built).
    pub since_log_read: Duration,
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
    /// Spaces' indexes, each loaded on first use, then kept current by this registry's own
    /// writes and by following the space's change log; one in use is never evicted (see
    /// [`Registry::sync_index`]).
    indexes: Indexes,
    pub(crate) log: ChangeLog,
    /// The generation each space had when its index last read the log or the marker:
    /// where uploads write without reading the marker (a stale one is caught by the log).
    generations: std::sync::Mutex<HashMap<String, (String, Instant)>>,
    /// Draws [`ReadTicket`]s.
    tickets: std::sync::atomic::AtomicU64,
    /// One permit per archive parse that may run at once.
    pub(crate) parses: Arc<tokio::sync::Semaphore>,
    tokens: crate::tokens::Tokens,
    pub(crate) audit: crate::audit::Audit,
    /// Audit entries this process stored per space since it last trimmed that space's log.
    audit_written: std::sync::Mutex<HashMap<String, usize>>,
    /// Unpacked archives by digest (their content never changes), without subcharts.
    files: std::sync::Mutex<WeightedLru<String, Arc<Files>>>,
    pub(crate) policies: Policies,
    /// What uploads admitted under a quota and not yet finished add, by space; see
    /// [`Registry::admit_upload`].
    reserved: Arc<std::sync::Mutex<HashMap<String, Usage>>>,
    /// Held while an upload's quota is checked and reserved, and while a finished one's
    /// reservation is released, so that a check sees each upload in the index or reserved.
    quota_gate: tokio::sync::Mutex<()>,
}

/// Options of a deletion.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeleteOptions {
    /// The caller is a global admin: may delete versions of an immutable space.
    pub by_global_admin: bool,
}

/// An upload's share of its space's quota, counted until the upload has finished.
pub(crate) struct Reservation {
    reserved: Arc<std::sync::Mutex<HashMap<String, Usage>>>,
    space: String,
    usage: Usage,
}

impl Reservation {
    fn take(&mut self) {
        let mut reserved = self.reserved.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = reserved.get_mut(&self.space) {
            held.bytes = held.bytes.saturating_sub(self.usage.bytes);
            held.versions = held.versions.saturating_sub(self.usage.versions);
            if *held == Usage::default() {
                reserved.remove(&self.space);
            }
        }
        self.usage = Usage::default();
    }
}

/// An upload that ends early (an error, a dropped request) gives its share back at once:
/// it stored nothing, so no check can miss it.
impl Drop for Reservation {
    fn drop(&mut self) {
        self.take();
    }
}

/// A version's record as read, with the ticket drawn before the read.
struct Fetched {
    change: Change,
    found: Option<(Arc<VersionRecord>, Option<String>)>,
    ticket: ReadTicket,
}

/// A checkpoint taken from an index, to be stored.
struct DueCheckpoint {
    generation: String,
    checkpoint: crate::index::Checkpoint,
    /// The ETag of the checkpoint it replaces.
    e_tag: Option<String>,
}

/// What a write stored, as its index entry learns it.
struct Written {
    /// Drawn right before the write.
    ticket: ReadTicket,
    /// The record and its ETag, or `None` for a deletion; unknown (`None`) where the store
    /// gave no ETag: the record is then read.
    state: Option<Option<(Arc<VersionRecord>, String)>>,
}

/// Where following a change log got an index.
enum Followed {
    /// It holds every change the log announces.
    Current,
    /// The log no longer holds the entries after the index's number (removed after a
    /// checkpoint): the index must be loaded again.
    Behind,
    /// The log has ended: the space (this generation of it) was deleted.
    Ended,
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
        let files_budget = options.cache_bytes / 8;
        let gateway = Gateway::new(store, options.conditional_updates, options.deletes_report_missing);
        Self {
            spaces: Spaces::new(gateway.clone()),
            records: Records::new(gateway.clone(), budget - files_budget),
            files: std::sync::Mutex::new(WeightedLru::new(files_budget, |_| false)),
            policies: Policies::new(gateway.clone(), options.shared_store.then_some(options.index_freshness)),
            reserved: Arc::default(),
            quota_gate: tokio::sync::Mutex::new(()),
            blobs: Blobs::new(gateway.clone()),
            uploads: Uploads::new(gateway.clone(), options.max_upload_sessions),
            manifests: Manifests::new(gateway.clone()),
            log: ChangeLog::new(gateway.clone()),
            tokens: crate::tokens::Tokens::new(gateway.clone()),
            audit: crate::audit::Audit::new(gateway.clone()),
            audit_written: std::sync::Mutex::default(),
            generations: std::sync::Mutex::default(),
            tickets: std::sync::atomic::AtomicU64::new(0),
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
    /// The API tokens and the bearer-token signing key.
    pub fn tokens(&self) -> &crate::tokens::Tokens {
        &self.tokens
    }

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

    /// The generation of a space found missing moments ago: created now, unless another
    /// writer created it meanwhile.
    async fn create_space_for_upload(&self, space: &str) -> Result<String> {
        check_new_space_name(space)?;
        match self.spaces.create(space).await? {
            Some(generation) => Ok(generation),
            None => self.ensure_space(space).await,
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

    /// Deletes a space and every version in it. Its change log is ended first (every
    /// replica, and every writer still announcing a change there, learns that the
    /// generation is gone), then the marker goes, so the space and all its versions are
    /// gone for readers at once; its records are swept next, and archives, the log and the
    /// checkpoint are reclaimed by garbage collection (replicas may still be reading the
    /// log's end).
    pub async fn delete_space(&self, space: &str) -> Result<()> {
        let generation = self.require_generation(space).await?;
        let known = self.known_seq(space, &generation);
        let ended = match self.log.end(space, &generation, known).await {
            Ok(_) => true,
            Err(RegistryError::NotFound(_)) => false, // ended by another deletion
            Err(e) => return Err(e),
        };
        if !self.spaces.delete_if(space, &generation).await? && !ended {
            return Err(RegistryError::not_found(space));
        }
        self.forget_generation(space, &generation).await;
        self.records.delete_generation(space, &generation).await?;
        self.manifests.delete_generation(space, &generation).await?;
        self.audit.delete_generation(space, &generation).await?;
        self.policies.delete(space, &generation).await
    }

    /// Records one audit entry of `time` (which orders the log) in the current generation
    /// of a space; `false` (nothing stored) where the space does not exist.
    pub async fn append_audit(
        &self,
        space: &str,
        time: std::time::SystemTime,
        entry: &chartyard_core::wire::AuditEntry,
    ) -> Result<bool> {
        let Some(generation) = self.generation(space).await? else { return Ok(false) };
        self.audit.append(space, &generation, time, entry).await?;
        *self.audit_written.lock().unwrap_or_else(|e| e.into_inner()).entry(space.to_string()).or_default() += 1;
        Ok(true)
    }

    /// Trims the audit log of each space this process has added a tenth of
    /// `audit_retention` entries to since it last trimmed it, to its newest
    /// `audit_retention` (so a log exceeds it by at most a tenth per writing replica
    /// between trims, gc or not). Part of [`Registry::maintain`], never of a request.
    pub async fn trim_audit_logs(&self) {
        let keep = self.options.audit_retention;
        let due: Vec<String> = {
            let mut written = self.audit_written.lock().unwrap_or_else(|e| e.into_inner());
            let due: Vec<String> =
                written.iter().filter(|(_, n)| **n >= (keep / 10).max(1)).map(|(s, _)| s.clone()).collect();
            for space in &due {
                written.remove(space);
            }
            due
        };
        for space in due {
            let trimmed = match self.generation(&space).await {
                Ok(Some(generation)) => self.audit.trim_space(&space, &generation, keep).await,
                Ok(None) => Ok(0),
                Err(e) => Err(e),
            };
            if let Err(e) = trimmed {
                tracing::warn!(space, error = %e, "trimming the audit log");
            }
        }
    }

    /// The number of audit entries of a space, and those from `start` (0: the newest) on,
    /// at most `limit`, newest first.
    pub async fn audit_page(
        &self,
        space: &str,
        start: usize,
        limit: usize,
    ) -> Result<(usize, Vec<chartyard_core::wire::AuditEntry>)> {
        let generation = self.require_generation(space).await?;
        self.audit.page(space, &generation, start, limit).await
    }

    // ---- policies ----

    /// The policy of a space (the default, with no rules, if none was set).
    pub async fn policy(&self, space: &str) -> Result<Arc<SpacePolicy>> {
        let generation = self.require_generation(space).await?;
        self.policies.get(space, &generation).await
    }

    /// Sets the policy of a space, replacing the one it had.
    pub async fn set_policy(&self, space: &str, policy: SpacePolicy) -> Result<Arc<SpacePolicy>> {
        policy.validate()?;
        let generation = self.require_generation(space).await?;
        self.policies.set(space, &generation, policy).await
    }

    /// Refuses rewriting a stored version's archive where the space's policy forbids it:
    /// an immutable space, or one that requires provenance (a rewritten archive has none).
    async fn check_rewrite(&self, key: &VersionKey<'_>, what: &str) -> Result<()> {
        let policy = self.policy_at(key).await?;
        policy.check_rewrite(key.space, &format!("{what} {}", key.id()))?;
        policy.check_provenance(key.space, false)
    }

    /// The policy of the generation a version key names.
    async fn policy_at(&self, key: &VersionKey<'_>) -> Result<Arc<SpacePolicy>> {
        self.policies.get(key.space, &key.generation).await
    }

    /// Checks an upload of `size` bytes as `name` `version` against the policy of the
    /// space's current generation before anything of it is stored. Under a quota, the
    /// upload's share is reserved until the returned reservation is released: uploads in
    /// flight in this process count against the quota, so they cannot pass it together;
    /// replicas count each other's only once stored (their overshoot is at most the
    /// uploads in flight at once on other replicas).
    async fn admit_upload(
        &self,
        space: &str,
        generation: Option<&str>,
        upload: (&str, &str, u64),
        options: &UploadOptions,
    ) -> Result<Option<Reservation>> {
        let (name, version, size) = upload;
        // A space created by this upload has no policy yet.
        let Some(generation) = generation else { return Ok(None) };
        let policy = self.policies.get(space, generation).await?;
        policy.check_provenance(space, options.provenance.is_some())?;
        if policy.quota.is_none() && !policy.is_immutable() {
            return Ok(None);
        }
        let _gate = self.quota_gate.lock().await;
        let (usage, existing) = self
            .with_index(space, |index| Ok((index.usage(), index.locate(name, version))))
            .await
            .or_else(|e| match e {
                RegistryError::NotFound(_) => Ok((Usage::default(), None)),
                e => Err(e),
            })?;
        if existing.is_some() {
            // Refused before anything is stored, with or without overwrite.
            policy.check_rewrite(space, &format!("uploading {} again", version_id(space, name, version)))?;
        }
        if policy.quota.is_none() {
            return Ok(None);
        }
        let mut reserved = self.reserved.lock().unwrap_or_else(|e| e.into_inner());
        let held = reserved.get(space).copied().unwrap_or_default();
        let current = Usage {
            bytes: usage.bytes.saturating_add(held.bytes),
            versions: usage.versions.saturating_add(held.versions),
        };
        let replaced = match (&existing, options.overwrite) {
            (Some(located), true) => Usage { bytes: located.size, versions: 1 },
            // Without overwrite an existing version is refused later; it adds nothing.
            (Some(_), false) => return Ok(None),
            (None, _) => Usage::default(),
        };
        let added = Usage { bytes: size, versions: 1 };
        policy.check_quota(space, current, added, replaced)?;
        let share = Usage { bytes: size, versions: u64::from(existing.is_none()) };
        let entry = reserved.entry(space.to_string()).or_default();
        entry.bytes = entry.bytes.saturating_add(share.bytes);
        entry.versions = entry.versions.saturating_add(share.versions);
        Ok(Some(Reservation { reserved: self.reserved.clone(), space: space.to_string(), usage: share }))
    }

    /// Gives back a finished upload's share of its quota; it is in the index now.
    async fn release(&self, reservation: Option<Reservation>) {
        if let Some(mut reservation) = reservation {
            let _gate = self.quota_gate.lock().await;
            reservation.take();
        }
    }

    /// Drops what this process holds of a deleted generation: its index and records.
    async fn forget_generation(&self, space: &str, generation: &str) {
        if let Some(slot) = self.indexes.remove(space) {
            let mut loaded = slot.lock().await;
            if loaded.as_ref().is_some_and(|index| index.generation == generation) {
                *loaded = None;
            }
        }
        self.forget_known_generation(space, generation);
        self.log.forget(space, generation);
    }

    /// Finishes the deletion of a generation whose log has ended: its marker may still
    /// name it if the deleting process stopped in between. (A loaded index of it is
    /// dropped by whoever follows the log to its end, under the index's lock.)
    async fn space_gone(&self, space: &str, generation: &str) -> RegistryError {
        self.forget_known_generation(space, generation);
        self.log.forget(space, generation);
        if let Err(e) = self.spaces.delete_if(space, generation).await {
            return e;
        }
        RegistryError::not_found(space)
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

    /// The archive of one version, streamed from storage. A version the space's index
    /// holds costs one read, of the archive; one it does not (another replica's upload of
    /// the last moments) is looked up in the store.
    pub async fn open_archive(&self, space: &str, chart: &str, version: &str) -> Result<ArchiveStream> {
        check_name("chart", chart)?;
        parse_version(version)?;
        let indexed = match self.with_index(space, |index| Ok(index.locate(chart, version))).await {
            Err(RegistryError::NotFound(_)) => None,
            indexed => indexed?,
        };
        if let Some(located) = indexed {
            // A version deleted by another replica moments ago may have lost its archive
            // to gc only after its grace period: the blob is still there.
            return self.open_located(space, chart, version, &located).await;
        }
        let key = self.locate(space, chart, version).await?;
        let record = self.records.read(&key).await?;
        self.open_located(space, chart, version, &Located { digest: record.digest.clone(), size: record.size }).await
    }

    /// A version's whole archive, with the record it was found through.
    async fn archive_bytes_at(&self, key: &VersionKey<'_>) -> Result<(Arc<VersionRecord>, Bytes)> {
        let record = self.records.read(key).await?;
        let located = Located { digest: record.digest.clone(), size: record.size };
        let stream = self.open_located(key.space, key.chart, key.version, &located).await?;
        Ok((record, collect(stream.body).await?))
    }

    async fn open_located(&self, space: &str, chart: &str, version: &str, located: &Located) -> Result<ArchiveStream> {
        let opened = self.blobs.open(BlobDigest::sha256(&located.digest), None).await?.ok_or_else(|| {
            RegistryError::internal(format!("archive of {} is missing", version_id(space, chart, version)))
        })?;
        Ok(ArchiveStream { size: located.size, body: opened.body })
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
        // The generation last seen is tried first; if the space was deleted since, the
        // change log says so and the upload goes once more into the space as it is now.
        let generation = match self.known_generation(space) {
            Some(generation) => Some(generation),
            None => self.generation(space).await?,
        };
        let upload = (name, version, archive.len() as u64);
        let reservation = self.admit_upload(space, generation.as_deref(), upload, &options).await?;
        let stored = self.upload_admitted(space, generation, &chart, archive, options).await;
        self.release(reservation).await;
        stored
    }

    /// Stores an upload its space's policy admitted.
    async fn upload_admitted(
        &self,
        space: &str,
        generation: Option<String>,
        chart: &Chart,
        archive: Bytes,
        options: UploadOptions,
    ) -> Result<StoredVersion> {
        let (name, version) = (chart.metadata.name.as_str(), chart.metadata.version.as_str());
        let record = self.prepare(chart, archive, options.provenance.as_ref(), options.manifest).await?;
        let generation = match generation {
            Some(generation) => generation,
            None => self.create_space_for_upload(space).await?,
        };
        match self.upload_into(space, generation, name, version, record.clone(), options.overwrite).await {
            Err(RegistryError::NotFound(message)) if message == SPACE_GONE => {
                let generation = self.ensure_space(space).await?;
                self.upload_into(space, generation, name, version, record, options.overwrite).await.map_err(|e| match e
                {
                    RegistryError::NotFound(m) if m == SPACE_GONE => {
                        RegistryError::not_found(format!("{space} (deleted during the upload)"))
                    }
                    e => e,
                })
            }
            result => result,
        }
    }

    /// Commits a prepared record into one generation of a space and announces it.
    async fn upload_into(
        &self,
        space: &str,
        generation: String,
        name: &str,
        version: &str,
        record: VersionRecord,
        overwrite: bool,
    ) -> Result<StoredVersion> {
        let key = VersionKey { space, generation, chart: name, version };
        if self.artifact_tag_exists(space, &key.generation, name, version).await? {
            return Err(RegistryError::AlreadyExists(format!(
                "{} (its OCI tag {} holds another artifact)",
                key.id(),
                oci::version_to_tag(version)
            )));
        }
        let ticket = self.ticket();
        match self.records.create(&key, record).await? {
            Ok((record, e_tag)) => {
                // A space deleted while we wrote: our record went to the old generation,
                // where no one will see it. Say so rather than claim the chart is stored.
                let written = Written { ticket, state: e_tag.map(|e_tag| Some((record.clone(), e_tag))) };
                if let Err(e) = self.announce(&key, written).await {
                    if matches!(&e, RegistryError::NotFound(m) if m == SPACE_GONE) {
                        let _ = self.records.delete(&key).await;
                        let _ = self.space_gone(space, &key.generation).await;
                    }
                    return Err(e);
                }
                Ok(key.stored(record))
            }
            Err(record) if overwrite => {
                self.policy_at(&key).await?.check_rewrite(space, &format!("overwriting {}", key.id()))?;
                let _lock = self.lock(&key).await?;
                let current = self.current(&key).await?;
                let created = self.records.read(&key).await?.created.clone();
                self.commit_record(&key, record, current, created).await
            }
            Err(_) => Err(RegistryError::AlreadyExists(key.id())),
        }
    }

    /// Stores a provenance file for the version it names; it must match that version's
    /// archive.
    pub async fn put_provenance(&self, space: &str, prov: Bytes) -> Result<StoredVersion> {
        let claims = provenance::parse(&prov)?;
        let key = self.locate(space, &claims.name, &claims.version).await?;
        self.policy_at(&key).await?.check_rewrite(space, &format!("changing the provenance of {}", key.id()))?;
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
        let policy = self.policy_at(&key).await?;
        policy.check_rewrite(space, &format!("replacing {}", key.id()))?;
        policy.check_provenance(space, false)?;
        let _lock = self.lock(&key).await?;
        let current = self.current(&key).await?;
        let previous = self.records.read(&key).await?;
        if policy.quota.is_some() {
            let usage = self.with_index(space, |index| Ok(index.usage())).await?;
            let replaced = Usage { bytes: previous.size, versions: 1 };
            policy.check_quota(space, usage, Usage { bytes: archive.len() as u64, versions: 1 }, replaced)?;
        }
        let created = previous.created.clone();
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
        self.check_rewrite(&key, "changing the values of").await?;
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
        self.check_rewrite(&key, "changing the metadata of").await?;
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
        let ticket = self.ticket();
        let (record, e_tag) = self.records.replace(key, record, current).await?;
        // A provenance file stored beside the record (before records named theirs) signs
        // the old archive's digest: it no longer holds.
        self.records.delete_legacy_provenance(key).await?;
        self.announce(key, Written { ticket, state: e_tag.map(|e_tag| Some((record.clone(), e_tag))) }).await?;
        Ok(key.stored(record))
    }

    /// Announces a committed change of a version in its space's change log, then brings
    /// this process's index in line with it. Every change is announced before it is
    /// acknowledged, so no acknowledged change stays unseen by other replicas; one whose
    /// announcement failed (the process stopped, the store failed) is found by the next
    /// reconcile.
    async fn announce(&self, key: &VersionKey<'_>, written: Written) -> Result<()> {
        let change = Change { chart: key.chart.to_string(), version: key.version.to_string() };
        let known = self.known_seq(key.space, &key.generation);
        let appended = self.log.append(key.space, &key.generation, change, known).await;
        if appended.is_ok() {
            // The log had not ended just now: the generation is current.
            self.remember_generation(key.space, &key.generation, Instant::now());
        }
        self.sync_index(key, appended.as_ref().ok().copied(), written).await;
        appended.map(drop)
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
        self.with_index_or_empty(space, SpaceIndex::rendered_json).await
    }

    /// The index entries of every chart in a space (name order, newest version first);
    /// none for a space that does not exist yet.
    pub async fn index_entries(&self, space: &str) -> Result<Vec<(String, Vec<serde_json::Map<String, Value>>)>> {
        self.with_index_or_empty(space, |index| index.entries()).await
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

    /// The index entry of each chart's latest version in a space, by chart name.
    pub async fn latest_index_entries(&self, space: &str) -> Result<Arc<Vec<crate::index::ChartEntry>>> {
        self.with_index(space, |index| index.latest_entries()).await
    }

    /// One page of a chart's versions, newest first (see [`ListedVersions`]); `NotFound`
    /// if the chart has none.
    pub async fn chart_versions_page(
        &self,
        space: &str,
        chart: &str,
        start: usize,
        limit: usize,
    ) -> Result<ListedVersions> {
        check_name("chart", chart)?;
        self.with_index(space, |index| {
            index
                .chart_page(chart, start, limit)
                .unwrap_or_else(|| Err(RegistryError::not_found(format!("{space}/{chart}"))))
        })
        .await
    }

    /// How many charts and versions a space holds.
    pub async fn space_counts(&self, space: &str) -> Result<(usize, usize)> {
        self.with_index(space, |index| Ok((index.chart_count(), index.len()))).await
    }

    /// The version of a chart `helm pull` without a version takes (the newest stable one,
    /// else the newest).
    pub async fn latest_version(&self, space: &str, chart: &str) -> Result<String> {
        check_name("chart", chart)?;
        self.with_index(space, |index| {
            index.latest_version(chart).ok_or_else(|| RegistryError::not_found(format!("{space}/{chart}")))
        })
        .await
    }

    /// The record of one version and its chart's files, subcharts left out, unpacked
    /// within the limits uploads were checked against; the latest read are kept by digest.
    pub async fn chart_files(
        &self,
        space: &str,
        chart: &str,
        version: &str,
    ) -> Result<(Arc<VersionRecord>, Arc<Files>)> {
        let key = self.locate(space, chart, version).await?;
        let record = self.records.read(&key).await?;
        if let Some(files) = self.files.lock().expect("files cache").get(&record.digest) {
            return Ok((record, files.clone()));
        }
        let (_, archive) = self.archive_bytes_at(&key).await?;
        let limits = self.options.limits;
        let files = self
            .blocking(move || {
                let loaded = archive::load_files(&archive, &limits)?;
                Ok(loaded.own_files().map(|(path, data)| (path.clone(), data.clone())).collect::<Files>())
            })
            .await?;
        let files = Arc::new(files);
        let weight = files.iter().map(|(path, data)| path.len() + data.len() + 64).sum();
        self.files.lock().expect("files cache").insert(record.digest.clone(), files.clone(), weight);
        Ok((record, files))
    }

    /// The index entries of one chart, newest version first.
    pub async fn chart_index_entries(&self, space: &str, chart: &str) -> Result<Vec<serde_json::Map<String, Value>>> {
        check_name("chart", chart)?;
        self.with_index(space, |index| {
            index.chart_entries(chart).unwrap_or_else(|| Err(RegistryError::not_found(format!("{space}/{chart}"))))
        })
        .await
    }

    /// Runs `f` on a space's index, building it first if needed, and reading the space's
    /// change log first if the index is older than `index_freshness`. A space that does
    /// not exist gets no slot.
    async fn with_index<T>(&self, space: &str, f: impl FnOnce(&mut SpaceIndex) -> Result<T>) -> Result<T> {
        check_name("space", space)?;
        // A slot made for a space that turns out not to exist is dropped by `release`.
        let slot = self.indexes.slot(space);
        let mut loaded = slot.lock().await;
        let result = match self.current_index(space, &mut loaded, self.options.index_freshness).await {
            Ok(()) => match loaded.as_mut() {
                Some(index) => {
                    index.used = Instant::now();
                    f(index)
                }
                None => Err(RegistryError::not_found(space)),
            },
            Err(e) => Err(e),
        };
        let weight = loaded.as_ref().map(SpaceIndex::weight);
        drop(loaded);
        self.indexes.release(space, slot, weight);
        result
    }

    /// Loads a space's index unless it is loaded, and follows the change log if the index
    /// was last followed more than `max_age` ago. An index whose log has ended is dropped
    /// (the space was deleted); one that fell behind what the log still holds (entries
    /// removed by gc after a checkpoint) is loaded again.
    async fn current_index(&self, space: &str, loaded: &mut Option<SpaceIndex>, max_age: Duration) -> Result<()> {
        for _ in 0..3 {
            if loaded.is_none() {
                *loaded = Some(self.load_index(space).await?);
            }
            let Some(index) = loaded.as_mut() else { continue };
            // Where nobody else writes, an index is followed only when asked to be at once
            // (before a checkpoint), never for freshness.
            let unshared = index.caught_up && !self.options.shared_store && !max_age.is_zero();
            if index.checked.elapsed() < max_age || unshared {
                self.remember_generation(space, &index.generation, index.checked);
                return Ok(());
            }
            if index.checked.elapsed() >= MARKER_RECHECK
                && index.caught_up
                && self.generation(space).await?.as_deref() != Some(index.generation.as_str())
            {
                *loaded = None;
                continue;
            }
            match self.follow(space, index).await {
                Ok(Followed::Current) => {
                    self.remember_generation(space, &index.generation, index.checked);
                    return Ok(());
                }
                Ok(Followed::Behind) => *loaded = None,
                Ok(Followed::Ended) => {
                    // The space may exist again, under a new generation: load that.
                    let generation = index.generation.clone();
                    *loaded = None;
                    match self.space_gone(space, &generation).await {
                        RegistryError::NotFound(_) => {}
                        e => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(RegistryError::Locked(format!("index of {space}")))
    }

    /// Builds a space's index: from its checkpoint (then followed to the log's end), or
    /// where it has none from its records, at the log's last entry as listed before them.
    /// The generation is read under the slot's lock, never before it: a space deletion
    /// drops the slot (under that lock) after ending the log, so a load can never install
    /// an index of a deleted generation for long.
    async fn load_index(&self, space: &str) -> Result<SpaceIndex> {
        let started = Instant::now();
        let index = self.build_index(space).await?;
        metrics::histogram!("chartyard_index_rebuild_duration_seconds").record(started.elapsed().as_secs_f64());
        Ok(index)
    }

    /// [`Self::load_index`], untimed.
    async fn build_index(&self, space: &str) -> Result<SpaceIndex> {
        let generation = self.require_generation(space).await?;
        let ticket = self.ticket();
        if let Some((checkpoint, e_tag)) = self.log.checkpoint(space, &generation).await?
            && checkpoint.format == CHECKPOINT_FORMAT
        {
            let mut index = SpaceIndex::from_checkpoint(generation, checkpoint, ticket);
            index.checkpoint_tag = e_tag;
            // A write announced after the checkpoint by a process that stopped before its
            // log entry is found by a reconcile: due at the next round of background work.
            index.reconciled = Instant::now().checked_sub(self.options.reconcile_interval).unwrap_or(index.reconciled);
            // Followed at once by `current_index`.
            let stale = self.options.index_freshness.max(Duration::from_millis(1));
            index.checked = Instant::now().checked_sub(stale).unwrap_or(index.checked);
            return Ok(index);
        }
        // Entries up to `last` were appended after their records were written, so the
        // listing of records made after this one shows every change they announce.
        let last = self.log.tail_numbers(space, &generation, 0).await?.last().copied().unwrap_or(0);
        let mut index = SpaceIndex::new(generation.clone());
        for (stored, e_tag) in self.records.space_versions_tagged(space, &generation).await? {
            index.insert(&stored.chart, &stored.version, &stored.record, e_tag.as_deref(), ticket)?;
        }
        index.followed_to(last);
        Ok(index)
    }

    /// Applies the log entries after the index's number: one listing, one read per entry
    /// not written (and already applied) by this process, one read per changed version.
    async fn follow(&self, space: &str, index: &mut SpaceIndex) -> Result<Followed> {
        let generation = index.generation.clone();
        let numbers = self.log.tail_numbers(space, &generation, index.seq).await?;
        let Some(&first) = numbers.first() else {
            index.followed_to(index.seq);
            return Ok(Followed::Current);
        };
        if first != index.seq + 1 {
            return Ok(Followed::Behind);
        }
        // An entry this process wrote moments ago whose writers have not yet set their
        // changes here (they wait for this lock) is where following stops this time: the
        // writers set what they stored, and the next round skips the entry unread. An
        // entry pending for longer (its writer was cancelled) is read like any other.
        let pending = numbers.iter().position(|seq| {
            index.own_unsettled(*seq) && self.log.written_lately(space, &generation, *seq, OWN_ENTRY_PATIENCE)
        });
        let numbers = &numbers[..pending.unwrap_or(numbers.len())];
        let Some(&last) = numbers.last() else {
            index.followed_to(index.seq);
            return Ok(Followed::Current);
        };
        let to_read: Vec<u64> = numbers.iter().copied().filter(|seq| !index.own_applied(*seq)).collect();
        let expected = to_read.len();
        let entries = self.log.read(space, &generation, to_read).await?;
        if entries.len() != expected {
            return Ok(Followed::Behind);
        }
        let mut changed = HashSet::new();
        for (_, entry) in entries {
            if entry.deleted {
                return Ok(Followed::Ended);
            }
            changed.extend(entry.changes);
        }
        let fetched = self.fetch_changes(space, &generation, changed).await?;
        Self::apply_fetched(index, fetched)?;
        index.followed_to(last);
        Ok(Followed::Current)
    }

    /// Reads the records of changed versions of one generation of a space, each with the
    /// ticket drawn before its read.
    async fn fetch_changes(&self, space: &str, generation: &str, changed: HashSet<Change>) -> Result<Vec<Fetched>> {
        use futures::stream::{StreamExt, TryStreamExt};
        futures::stream::iter(changed)
            .map(|change| async move {
                let key = VersionKey {
                    space,
                    generation: generation.to_string(),
                    chart: &change.chart,
                    version: &change.version,
                };
                let ticket = self.ticket();
                let found = self.records.fetch(&key).await?;
                Ok::<_, RegistryError>(Fetched { change, found, ticket })
            })
            .buffer_unordered(16)
            .try_collect()
            .await
    }

    /// Sets the entries of fetched versions to what their reads found.
    fn apply_fetched(index: &mut SpaceIndex, fetched: Vec<Fetched>) -> Result<()> {
        for Fetched { change, found, ticket } in fetched {
            match found {
                Some((record, e_tag)) => {
                    index.insert(&change.chart, &change.version, &record, e_tag.as_deref(), ticket)?;
                }
                None => {
                    index.remove(&change.chart, &change.version, ticket);
                }
            }
        }
        Ok(())
    }

    /// Brings one version's entry of a loaded index in line with the store, after a write
    /// to that version. What the write stored is known: it is set as if read with a ticket
    /// drawn right before the write, so any read that began later wins over it (it may
    /// have seen a later change), and any read that began earlier loses (it cannot have
    /// seen this write). Where the store gave no ETag (a retried write), the record is read
    /// instead. Either way no write waits for another's store request under the index's
    /// lock, and whatever order racing writes (an upload and a delete of one version,
    /// through one replica or two) reached the store in, the index ends with what the store
    /// holds (see [`ReadTicket`]). An index of another generation, or one whose entry
    /// cannot be read, is dropped, to be rebuilt from storage when next asked for; an
    /// index not loaded needs nothing (it is built from a listing made later than this
    /// write). `appended` is the log entry announcing the write: an index whose entry now
    /// comes from this write need not read it; one that kept a later read reads it like
    /// any other (that read may be older than this write's announcement).
    ///
    /// A slot is evicted only while no one holds it, and a writer takes it only after its
    /// store write: so an index loaded into a fresh slot after an eviction is listed later
    /// than any write whose update it missed.
    async fn sync_index(&self, key: &VersionKey<'_>, appended: Option<Appended>, written: Written) {
        let Some(slot) = self.indexes.held(key.space) else {
            return;
        };
        let (ticket, read) = match written.state {
            Some(state) => (written.ticket, Ok(state)),
            None => {
                let ticket = self.ticket();
                (
                    ticket,
                    self.records.current_tagged(key).await.map(|found| found.map(|(r, t)| (r, t.unwrap_or_default()))),
                )
            }
        };
        let mut loaded = slot.lock().await;
        if let Some(index) = loaded.as_mut() {
            let applied = match read {
                _ if index.generation != key.generation => None,
                Ok(Some((record, e_tag))) => {
                    let e_tag = Some(e_tag).filter(|t| !t.is_empty());
                    index.insert(key.chart, key.version, &record, e_tag.as_deref(), ticket).ok()
                }
                Ok(None) => Some(index.remove(key.chart, key.version, ticket)),
                Err(_) => None,
            };
            match (applied, appended) {
                (None, _) => *loaded = None,
                (Some(applied), Some(appended)) => index.settled_own(appended.seq, appended.changes, applied),
                (Some(_), None) => {}
            }
        }
        let weight = loaded.as_ref().map(SpaceIndex::weight);
        drop(loaded);
        self.indexes.release(key.space, slot, weight);
    }

    /// A ticket for a read about to begin.
    fn ticket(&self) -> ReadTicket {
        self.tickets.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1
    }

    /// The log number this process's index of a space has followed to less than
    /// [`KNOWLEDGE_TTL`] ago (`None` if none is loaded, it is busy, or it is older): where
    /// an append starts looking.
    fn known_seq(&self, space: &str, generation: &str) -> Option<u64> {
        let slot = self.indexes.held(space)?;
        let seq = match slot.try_lock() {
            Ok(loaded) => loaded
                .as_ref()
                .filter(|index| index.generation == generation && index.checked.elapsed() < KNOWLEDGE_TTL)
                .map(|index| index.seq),
            Err(_) => None,
        };
        // Only looked at: the table's accounting of the slot is unchanged.
        drop(slot);
        seq
    }

    /// The generation of a space as its index saw it in the log less than
    /// [`KNOWLEDGE_TTL`] ago, if any: a generation deleted since has its log's end, which
    /// gc keeps far longer than that, so the append of an upload into it finds the end.
    fn known_generation(&self, space: &str) -> Option<String> {
        let generations = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        let (generation, seen) = generations.get(space)?;
        (seen.elapsed() < KNOWLEDGE_TTL).then(|| generation.clone())
    }

    fn remember_generation(&self, space: &str, generation: &str, seen: Instant) {
        let mut generations = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded: what is too old to be used is dropped in one go.
        if generations.len() >= 4096 {
            generations.retain(|_, (_, seen)| seen.elapsed() < KNOWLEDGE_TTL);
        }
        generations.insert(space.to_string(), (generation.to_string(), seen));
    }

    fn forget_known_generation(&self, space: &str, generation: &str) {
        let mut generations = self.generations.lock().unwrap_or_else(|e| e.into_inner());
        if generations.get(space).is_some_and(|(known, _)| known == generation) {
            generations.remove(space);
        }
    }

    // ---- following other replicas ----

    /// One round of the background work of a serving process, run about once a second:
    /// follows the change log of every space whose index was used lately (so a request
    /// rarely waits for a listing), compares indexes with their records every
    /// `reconcile_interval`, stores a checkpoint of an index whose log has grown, and trims
    /// the audit logs this process has added to (see [`Registry::trim_audit_logs`]). The
    /// index's lock is held for work in memory and for following the log, not for the
    /// listing of records or the checkpoint's upload.
    pub async fn maintain(&self) {
        self.trim_audit_logs().await;
        for space in self.indexes.spaces() {
            let Some(slot) = self.indexes.held(&space) else { continue };
            let (reconcile, checkpoint) = {
                let mut loaded = slot.lock().await;
                let in_use = loaded.as_ref().is_some_and(|index| index.used.elapsed() < IN_USE);
                // Followed to the end for a checkpoint where nothing else would follow it.
                let checkpointing =
                    loaded.as_ref().is_some_and(|index| index.written_since_checkpoint >= index.checkpoint_interval());
                let max_age = if checkpointing { Duration::ZERO } else { self.options.index_freshness };
                if in_use && let Err(e) = self.current_index(&space, &mut loaded, max_age).await {
                    tracing::debug!(space, error = %e, "following the change log");
                }
                match loaded.as_ref() {
                    Some(index) if in_use => (
                        index.reconciled.elapsed() >= self.options.reconcile_interval
                            && (self.options.shared_store || !index.reconciled_once),
                        Self::checkpoint_due(index, false),
                    ),
                    _ => (false, None),
                }
            };
            if reconcile && let Err(e) = self.reconcile_slot(&space, &slot).await {
                tracing::warn!(space, error = %e, "reconciling the index with its records");
            }
            if let Some(due) = checkpoint {
                let (generation, seq) = (due.generation.clone(), due.checkpoint.seq);
                match self.store_checkpoint(&space, &slot, due).await {
                    Err(e) => tracing::warn!(space, error = %e, "storing a checkpoint"),
                    // Nobody else reads this log: what the checkpoint holds goes now, so the
                    // log stays short (on a shared store, gc removes it after its grace).
                    Ok(()) if !self.options.shared_store => {
                        if let Err(e) = self.log.compact(&space, &generation, seq).await {
                            tracing::warn!(space, error = %e, "removing log entries a checkpoint holds");
                        }
                    }
                    Ok(()) => {}
                }
            }
            self.release_slot(&space, slot).await;
        }
    }

    /// Stores a checkpoint of every loaded index that has moved past its last one, so the
    /// next start reads one object per space (called at shutdown).
    pub async fn checkpoint_all(&self) {
        for space in self.indexes.spaces() {
            let Some(slot) = self.indexes.held(&space) else { continue };
            let due = {
                let mut loaded = slot.lock().await;
                // Followed first, so the checkpoint leaves no tail to read.
                match self.current_index(&space, &mut loaded, Duration::ZERO).await {
                    Ok(()) => loaded.as_ref().and_then(|index| Self::checkpoint_due(index, true)),
                    Err(_) => None,
                }
            };
            if let Some(due) = due
                && let Err(e) = self.store_checkpoint(&space, &slot, due).await
            {
                tracing::warn!(space, error = %e, "storing a checkpoint");
            }
            self.release_slot(&space, slot).await;
        }
    }

    /// Gives a slot back to the table with its index's weight.
    async fn release_slot(&self, space: &str, slot: crate::index::IndexSlot) {
        let weight = slot.lock().await.as_ref().map(SpaceIndex::weight);
        self.indexes.release(space, slot, weight);
    }

    /// A snapshot of the index to store as its checkpoint, when the log has grown past
    /// the last one by a sixteenth of the index (at least 64 entries), or by anything if
    /// `any`.
    fn checkpoint_due(index: &SpaceIndex, any: bool) -> Option<DueCheckpoint> {
        let behind = index.seq.saturating_sub(index.checkpoint_seq);
        let due = if any { behind > 0 } else { behind as usize >= index.checkpoint_interval() };
        due.then(|| DueCheckpoint {
            generation: index.generation.clone(),
            checkpoint: index.checkpoint(),
            e_tag: index.checkpoint_tag.clone(),
        })
    }

    /// Stores a checkpoint taken from a slot's index, then notes it there.
    async fn store_checkpoint(&self, space: &str, slot: &crate::index::IndexSlot, due: DueCheckpoint) -> Result<()> {
        let DueCheckpoint { generation, checkpoint, e_tag } = due;
        let e_tag = match self.log.put_checkpoint(space, &generation, &checkpoint, e_tag).await? {
            Some(e_tag) => e_tag,
            // Another replica stored one meanwhile: replace that one next time.
            None => self.log.checkpoint_tag(space, &generation).await?,
        };
        let mut loaded = slot.lock().await;
        if let Some(index) = loaded.as_mut()
            && index.generation == generation
        {
            index.checkpoint_seq = index.checkpoint_seq.max(checkpoint.seq);
            index.checkpoint_tag = e_tag;
            index.written_since_checkpoint = 0;
        }
        Ok(())
    }

    /// Compares a space's index with its records now and repairs it (and tells other
    /// replicas: every difference is announced) where a writer committed a record but
    /// stopped before announcing it. Answers how many versions differed.
    pub async fn reconcile(&self, space: &str) -> Result<usize> {
        check_name("space", space)?;
        let slot = self.indexes.slot(space);
        let result = self.reconcile_slot(space, &slot).await;
        self.release_slot(space, slot).await;
        result
    }

    async fn reconcile_slot(&self, space: &str, slot: &crate::index::IndexSlot) -> Result<usize> {
        let generation = {
            let mut loaded = slot.lock().await;
            self.current_index(space, &mut loaded, Duration::ZERO).await?;
            loaded.as_ref().ok_or_else(|| RegistryError::not_found(space))?.generation.clone()
        };
        // The listing runs without the lock; what changes meanwhile is read later than it.
        let ticket = self.ticket();
        let listed = self.records.e_tags(space, &generation).await?;
        let differ: HashSet<Change> = {
            let mut loaded = slot.lock().await;
            let Some(index) = loaded.as_mut().filter(|index| index.generation == generation) else { return Ok(0) };
            index.reconciled = Instant::now();
            index.reconciled_once = true;
            index.differences(&listed, ticket).into_iter().map(|(chart, version)| Change { chart, version }).collect()
        };
        if differ.is_empty() {
            return Ok(0);
        }
        let repaired = differ.len();
        let fetched = self.fetch_changes(space, &generation, differ.clone()).await?;
        {
            let mut loaded = slot.lock().await;
            if let Some(index) = loaded.as_mut().filter(|index| index.generation == generation) {
                Self::apply_fetched(index, fetched)?;
            }
        }
        // Without ETags a listing cannot tell what changed: those were only read again.
        if listed.values().all(Option::is_some) {
            let mut appended = Vec::new();
            for change in differ {
                tracing::info!(space, chart = %change.chart, version = %change.version, "announcing an unannounced change");
                appended.push(self.log.append(space, &generation, change, None).await?);
            }
            // What they announce is set here already.
            let mut loaded = slot.lock().await;
            if let Some(index) = loaded.as_mut().filter(|index| index.generation == generation) {
                for appended in appended {
                    index.settled_own(appended.seq, appended.changes, true);
                }
            }
        }
        Ok(repaired)
    }

    /// The indexes loaded now, in no particular order, for the metrics: read when they are
    /// scraped rather than reported on every change. One busy for longer than a moment
    /// (being loaded) is left out.
    pub async fn index_stats(&self) -> Vec<IndexStats> {
        const PATIENCE: Duration = Duration::from_millis(250);
        let mut stats = Vec::new();
        for space in self.indexes.spaces() {
            let Some(slot) = self.indexes.held(&space) else { continue };
            if let Ok(loaded) = tokio::time::timeout(PATIENCE, slot.lock()).await
                && let Some(index) = loaded.as_ref()
            {
                stats.push(IndexStats {
                    charts: index.chart_count(),
                    versions: index.len(),
                    position: index.seq,
                    since_log_read: index.checked.elapsed(),
                    space,
                });
            }
            // Only looked at: the table's accounting of the slot is unchanged.
        }
        stats
    }

    /// Whether the store answers: one metadata request for a key that never exists,
    /// `Err` with the store's error if it fails.
    pub async fn check_storage(&self) -> Result<()> {
        self.gateway.head(crate::keys::StorageKey::SpaceMarker { space: "_probe" }).await.map(|_| ())
    }

    /// What the caches hold now.
    pub fn cache_stats(&self) -> CacheStats {
        let (records, record_bytes) = self.records.stats();
        let (indexes, index_bytes) = self.indexes.stats();
        CacheStats { records, record_bytes, indexes, index_bytes }
    }

    /// Deletes one version. Deleting a chart's last version removes the chart. Nothing
    /// limits who deletes: see [`Registry::delete_version_as`].
    pub async fn delete_version(&self, space: &str, chart: &str, version: &str) -> Result<()> {
        self.delete_version_as(space, chart, version, DeleteOptions { by_global_admin: true }).await
    }

    /// Deletes one version as a caller who may be refused by the space's policy.
    pub async fn delete_version_as(
        &self,
        space: &str,
        chart: &str,
        version: &str,
        options: DeleteOptions,
    ) -> Result<()> {
        let key = self.locate(space, chart, version).await?;
        self.policy_at(&key).await?.check_delete(space, options.by_global_admin)?;
        let _lock = self.lock(&key).await?;
        let ticket = self.ticket();
        if !self.records.delete(&key).await? {
            return Err(RegistryError::not_found(key.id()));
        }
        self.records.delete_legacy_provenance(&key).await?;
        self.announce(&key, Written { ticket, state: Some(None) }).await
    }

    /// Deletes every version of a chart, all or nothing: every version's lock is taken
    /// before the first record goes.
    pub async fn delete_chart(&self, space: &str, chart: &str) -> Result<()> {
        self.delete_chart_as(space, chart, DeleteOptions { by_global_admin: true }).await
    }

    /// Deletes every version of a chart as a caller who may be refused by the space's
    /// policy.
    pub async fn delete_chart_as(&self, space: &str, chart: &str, options: DeleteOptions) -> Result<()> {
        self.policy(space).await?.check_delete(space, options.by_global_admin)?;
        let versions = self.chart_versions(space, chart).await?;
        let mut keys = Vec::with_capacity(versions.len());
        for stored in &versions {
            keys.push(self.locate(space, chart, &stored.version).await?);
        }
        let mut held = Vec::with_capacity(keys.len());
        for key in &keys {
            held.push(self.lock(key).await?);
        }
        let ticket = self.ticket();
        for key in &keys {
            self.records.delete(key).await?;
            self.records.delete_legacy_provenance(key).await?;
        }
        // Announced together: appends waiting at once share one log entry.
        let deleted = || Written { ticket, state: Some(None) };
        let announced = futures::future::join_all(keys.iter().map(|key| self.announce(key, deleted()))).await;
        announced.into_iter().collect()
    }
}
