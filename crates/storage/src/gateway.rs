//! The object gateway: the only code of the registry that calls `object_store`'s
//! `ObjectStore` API (the backends in `backend` and `fs` only build stores).
//!
//! Every operation takes a [`StorageKey`], maps "not found" and "already exists" to plain
//! answers once, here, and is counted, so that what a registry operation costs in store
//! requests can be measured and tested.
//!
//! Each request is also reported to the process's metrics recorder (a no-op where none is
//! installed): `chartyard_storage_operations_total{operation,outcome}`,
//! `chartyard_storage_operation_duration_seconds{operation}` and
//! `chartyard_storage_conditional_conflicts_total`.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use chartyard_core::RegistryError;
use chartyard_core::oci::Hasher;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::{
    GetOptions, GetRange, ListResult, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    UpdateVersion, WriteMultipart,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::keys::StorageKey;

type Result<T> = std::result::Result<T, RegistryError>;

/// An object's version as a compare-and-swap write names it.
pub(crate) type ObjectVersion = UpdateVersion;

/// Bytes read from the store, streamed.
pub type ObjectStream = BoxStream<'static, std::result::Result<Bytes, object_store::Error>>;

/// A request body being streamed in.
pub type ByteStream = BoxStream<'static, std::result::Result<Bytes, String>>;

pub(crate) fn storage_error(e: object_store::Error) -> RegistryError {
    RegistryError::internal(format!("storage: {e}"))
}

/// Store requests made through one registry, by kind, since it was made.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StorageRequests {
    pub get: u64,
    pub head: u64,
    pub put: u64,
    pub list: u64,
    pub delete: u64,
    /// Server-side copies; a rename counts one copy and one delete, as on S3.
    pub copy: u64,
}

/// The requests made between two counts: `after - before`.
impl std::ops::Sub for StorageRequests {
    type Output = StorageRequests;

    fn sub(self, before: StorageRequests) -> StorageRequests {
        StorageRequests {
            get: self.get - before.get,
            head: self.head - before.head,
            put: self.put - before.put,
            list: self.list - before.list,
            delete: self.delete - before.delete,
            copy: self.copy - before.copy,
        }
    }
}

#[derive(Default)]
struct Counters {
    get: AtomicU64,
    head: AtomicU64,
    put: AtomicU64,
    list: AtomicU64,
    delete: AtomicU64,
    copy: AtomicU64,
}

fn count(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// How a store request ended, as the metrics label it.
#[derive(Clone, Copy)]
enum Outcome {
    Ok,
    NotFound,
    /// A conditional write whose condition did not hold.
    Conflict,
    Error,
}

/// Reports one store request of kind `operation` (`get`, `head`, `put`, `list`, `delete`,
/// `copy`) begun at `started`.
fn observe(operation: &'static str, started: Instant, outcome: Outcome) {
    let outcome = match outcome {
        Outcome::Ok => "ok",
        Outcome::NotFound => "not_found",
        Outcome::Conflict => {
            metrics::counter!("chartyard_storage_conditional_conflicts_total").increment(1);
            "conflict"
        }
        Outcome::Error => "error",
    };
    metrics::counter!("chartyard_storage_operations_total", "operation" => operation, "outcome" => outcome)
        .increment(1);
    metrics::histogram!("chartyard_storage_operation_duration_seconds", "operation" => operation)
        .record(started.elapsed().as_secs_f64());
}

/// The outcome of a request that answered `result`, "not found" counting as an answer.
fn outcome_of<T>(result: &std::result::Result<T, object_store::Error>) -> Outcome {
    match result {
        Ok(_) => Outcome::Ok,
        Err(object_store::Error::NotFound { .. }) => Outcome::NotFound,
        Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => Outcome::Conflict,
        Err(_) => Outcome::Error,
    }
}

/// The outcome of a conditional write to `key`: finding a blob there already is no
/// conflict, as its name is its content's digest (the bytes are the same).
fn conditional_outcome<T>(key: StorageKey<'_>, result: &std::result::Result<T, object_store::Error>) -> Outcome {
    match outcome_of(result) {
        Outcome::Conflict if matches!(key, StorageKey::Blob { .. }) => Outcome::Ok,
        outcome => outcome,
    }
}

/// A small object read whole.
pub(crate) struct Object {
    pub bytes: Bytes,
    pub e_tag: Option<String>,
}

/// An object opened for reading.
pub(crate) struct Opened {
    /// Size of the whole object.
    pub size: u64,
    /// The bytes asked for.
    pub body: ObjectStream,
}

/// What a create-if-absent write found.
pub(crate) enum Created {
    /// Written, at this ETag (if the store has them).
    Created(Option<String>),
    /// Something was there already; nothing was written.
    Exists,
}

/// What a compare-and-swap write found.
pub(crate) enum Replaced {
    /// Written, at this ETag (if the store has them).
    Replaced(Option<String>),
    /// The object changed since its version was read; nothing was written.
    Changed,
}

/// Why streaming a body into an object failed.
pub(crate) enum WriteError {
    /// Reading the body failed.
    Body(String),
    /// More bytes arrived than the budget allowed.
    OverBudget,
    Storage(RegistryError),
}

impl From<RegistryError> for WriteError {
    fn from(error: RegistryError) -> Self {
        Self::Storage(error)
    }
}

/// Typed, counted access to one object store.
#[derive(Clone)]
pub(crate) struct Gateway {
    store: Arc<dyn ObjectStore>,
    /// Whether the store supports `PutMode::Update`; without it a compare-and-swap write
    /// overwrites (the caller's lock is then the only guard).
    conditional_updates: bool,
    /// See [`crate::RegistryOptions::deletes_report_missing`].
    deletes_report_missing: bool,
    counters: Arc<Counters>,
}

impl Gateway {
    pub fn new(store: Arc<dyn ObjectStore>, conditional_updates: bool, deletes_report_missing: bool) -> Self {
        Self { store, conditional_updates, deletes_report_missing, counters: Arc::default() }
    }

    /// The requests made so far.
    pub fn requests(&self) -> StorageRequests {
        let c = &self.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        StorageRequests {
            get: load(&c.get),
            head: load(&c.head),
            put: load(&c.put),
            list: load(&c.list),
            delete: load(&c.delete),
            copy: load(&c.copy),
        }
    }

    /// An object's bytes and ETag; `None` if it does not exist.
    #[tracing::instrument(name = "storage", level = "info", skip_all, fields(operation = "get", key = %key.path()))]
    pub async fn get(&self, key: StorageKey<'_>) -> Result<Option<Object>> {
        count(&self.counters.get, 1);
        let started = Instant::now();
        let result = match self.store.get(&key.path()).await {
            Ok(result) => {
                let e_tag = result.meta.e_tag.clone();
                result.bytes().await.map(|bytes| Some(Object { bytes, e_tag }))
            }
            Err(object_store::Error::NotFound { .. }) => {
                observe("get", started, Outcome::NotFound);
                return Ok(None);
            }
            Err(e) => Err(e),
        };
        observe("get", started, outcome_of(&result));
        result.map_err(storage_error)
    }

    /// An object parsed as JSON; `None` if it does not exist.
    pub async fn get_json<T: DeserializeOwned>(&self, key: StorageKey<'_>) -> Result<Option<T>> {
        let Some(object) = self.get(key).await? else { return Ok(None) };
        let value = serde_json::from_slice(&object.bytes)
            .map_err(|e| RegistryError::internal(format!("corrupt {}: {e}", key.path())))?;
        Ok(Some(value))
    }

    /// An object's metadata; `None` if it does not exist.
    #[tracing::instrument(name = "storage", level = "info", skip_all, fields(operation = "head", key = %key.path()))]
    pub async fn head(&self, key: StorageKey<'_>) -> Result<Option<ObjectMeta>> {
        count(&self.counters.head, 1);
        let started = Instant::now();
        let result = self.store.head(&key.path()).await;
        observe("head", started, outcome_of(&result));
        match result {
            Ok(meta) => Ok(Some(meta)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(storage_error(e)),
        }
    }

    pub async fn exists(&self, key: StorageKey<'_>) -> Result<bool> {
        Ok(self.head(key).await?.is_some())
    }

    /// The version a later [`Gateway::replace_if`] is conditional on; `None` if there is
    /// no object.
    pub async fn version(&self, key: StorageKey<'_>) -> Result<Option<ObjectVersion>> {
        Ok(self.head(key).await?.map(|meta| UpdateVersion { e_tag: meta.e_tag, version: meta.version }))
    }

    /// Writes an object, whatever was there.
    #[tracing::instrument(name = "storage", level = "info", skip_all, fields(operation = "put", key = %key.path()))]
    pub async fn put(&self, key: StorageKey<'_>, bytes: Bytes) -> Result<()> {
        count(&self.counters.put, 1);
        let started = Instant::now();
        let result = self.store.put(&key.path(), PutPayload::from(bytes)).await;
        observe("put", started, outcome_of(&result));
        result.map_err(storage_error)?;
        Ok(())
    }

    pub async fn put_json<T: Serialize>(&self, key: StorageKey<'_>, value: &T) -> Result<()> {
        self.put(key, to_json(value)?).await
    }

    /// Writes an object unless one exists (atomically, across processes too).
    pub async fn create(&self, key: StorageKey<'_>, bytes: Bytes) -> Result<Created> {
        self.put_mode(key, bytes, PutMode::Create).await.map(|written| match written {
            Some(e_tag) => Created::Created(e_tag),
            None => Created::Exists,
        })
    }

    pub async fn create_json<T: Serialize>(&self, key: StorageKey<'_>, value: &T) -> Result<Created> {
        self.create(key, to_json(value)?).await
    }

    /// Writes an object only if it is still at `current` (compare-and-swap); on a store
    /// without conditional updates, overwrites it.
    pub async fn replace_if(&self, key: StorageKey<'_>, bytes: Bytes, current: ObjectVersion) -> Result<Replaced> {
        let mode = if self.conditional_updates { PutMode::Update(current) } else { PutMode::Overwrite };
        self.put_mode(key, bytes, mode).await.map(|written| match written {
            Some(e_tag) => Replaced::Replaced(e_tag),
            None => Replaced::Changed,
        })
    }

    /// A conditional put: the new ETag, or `None` when its condition did not hold.
    #[tracing::instrument(name = "storage", level = "info", skip_all, fields(operation = "put_conditional", key = %key.path()))]
    async fn put_mode(&self, key: StorageKey<'_>, bytes: Bytes, mode: PutMode) -> Result<Option<Option<String>>> {
        count(&self.counters.put, 1);
        let opts = PutOptions { mode, ..Default::default() };
        let started = Instant::now();
        let result = self.store.put_opts(&key.path(), PutPayload::from(bytes), opts).await;
        observe("put", started, conditional_outcome(key, &result));
        match result {
            Ok(written) => Ok(Some(written.e_tag)),
            Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => Ok(None),
            Err(e) => Err(storage_error(e)),
        }
    }

    /// Deletes an object; answers whether it was there.
    #[tracing::instrument(name = "storage", level = "info", skip_all, fields(operation = "delete", key = %key.path()))]
    pub async fn delete(&self, key: StorageKey<'_>) -> Result<bool> {
        if !self.deletes_report_missing && !self.exists(key).await? {
            return Ok(false);
        }
        count(&self.counters.delete, 1);
        let started = Instant::now();
        let result = self.store.delete(&key.path()).await;
        observe("delete", started, outcome_of(&result));
        match result {
            Ok(()) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(storage_error(e)),
        }
    }

    /// Deletes every object under a prefix.
    #[tracing::instrument(name = "storage", level = "info", skip_all, fields(operation = "delete_prefix", key = %prefix.path()))]
    pub async fn delete_prefix(&self, prefix: StorageKey<'_>) -> Result<()> {
        count(&self.counters.list, 1);
        let started = Instant::now();
        let counters = self.counters.clone();
        let locations = self
            .store
            .list(Some(&prefix.path()))
            .map_ok(move |meta| {
                count(&counters.delete, 1);
                meta.location
            })
            .boxed();
        let result = self.store.delete_stream(locations).try_for_each(|_| async { Ok(()) }).await;
        observe("delete", started, outcome_of(&result));
        result.or_else(|e| match e {
            object_store::Error::NotFound { .. } => Ok(()),
            e => Err(storage_error(e)),
        })
    }

    /// Every object under a prefix (its keys are parsed back in `keys`).
    #[tracing::instrument(name = "storage", level = "info", skip_all, fields(operation = "list", key = %prefix.path()))]
    pub async fn list(&self, prefix: StorageKey<'_>) -> Result<Vec<ObjectMeta>> {
        count(&self.counters.list, 1);
        let started = Instant::now();
        let result = self.store.list(Some(&prefix.path())).try_collect().await;
        observe("list", started, outcome_of(&result));
        result.map_err(storage_error)
    }

    /// The objects under a prefix whose keys sort after `after` (S3's `start-after`: one
    /// request per thousand keys, however many come before).
    #[tracing::instrument(name = "storage", level = "info", skip_all, fields(operation = "list", key = %prefix.path()))]
    pub async fn list_after(&self, prefix: StorageKey<'_>, after: StorageKey<'_>) -> Result<Vec<ObjectMeta>> {
        count(&self.counters.list, 1);
        let started = Instant::now();
        let result = self.store.list_with_offset(Some(&prefix.path()), &after.path()).try_collect().await;
        observe("list", started, outcome_of(&result));
        result.map_err(storage_error)
    }

    /// Whether anything is under a prefix; a listing that fails counts as something.
    pub async fn any_under(&self, prefix: StorageKey<'_>) -> bool {
        count(&self.counters.list, 1);
        let started = Instant::now();
        let first = self.store.list(Some(&prefix.path())).next().await;
        let outcome = match &first {
            Some(Err(_)) => Outcome::Error,
            _ => Outcome::Ok,
        };
        observe("list", started, outcome);
        first.is_some()
    }

    /// The objects and the "folders" right under a prefix (one level, with a delimiter).
    #[tracing::instrument(name = "storage", level = "info", skip_all, fields(operation = "list", key = %prefix.path()))]
    pub async fn list_dirs(&self, prefix: StorageKey<'_>) -> Result<ListResult> {
        count(&self.counters.list, 1);
        let started = Instant::now();
        let result = self.store.list_with_delimiter(Some(&prefix.path())).await;
        observe("list", started, outcome_of(&result));
        result.map_err(storage_error)
    }

    /// Opens an object for a streamed read of all its bytes, or of `range`; `None` if it
    /// does not exist.
    #[tracing::instrument(name = "storage", level = "info", skip_all, fields(operation = "get", key = %key.path()))]
    pub async fn open(&self, key: StorageKey<'_>, range: Option<Range<u64>>) -> Result<Option<Opened>> {
        count(&self.counters.get, 1);
        let options = GetOptions { range: range.map(GetRange::Bounded), ..Default::default() };
        let started = Instant::now();
        let result = self.store.get_opts(&key.path(), options).await;
        // Until the object opens: its bytes stream to the client afterwards.
        observe("get", started, outcome_of(&result));
        match result {
            Ok(result) => Ok(Some(Opened { size: result.meta.size, body: stream_payload(result) })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(storage_error(e)),
        }
    }

    /// Writes a stream to one object, without holding it in memory; answers its size and,
    /// when given a hasher, feeds it. Fails once more than `budget` bytes arrive. Counted
    /// as one put, whatever the parts it takes.
    #[tracing::instrument(name = "storage", level = "info", skip_all, fields(operation = "put_stream"))]
    pub async fn write_stream(
        &self,
        key: StorageKey<'_>,
        body: ByteStream,
        budget: u64,
        hasher: Option<&mut Hasher>,
    ) -> std::result::Result<u64, WriteError> {
        count(&self.counters.put, 1);
        let started = Instant::now();
        let result = self.write_stream_unobserved(key, body, budget, hasher).await;
        let outcome = match &result {
            // A body that failed or was too large is the client's doing, not the store's.
            Ok(_) | Err(WriteError::Body(_) | WriteError::OverBudget) => Outcome::Ok,
            Err(WriteError::Storage(_)) => Outcome::Error,
        };
        observe("put", started, outcome);
        result
    }

    async fn write_stream_unobserved(
        &self,
        key: StorageKey<'_>,
        mut body: ByteStream,
        budget: u64,
        mut hasher: Option<&mut Hasher>,
    ) -> std::result::Result<u64, WriteError> {
        let upload = self.store.put_multipart(&key.path()).await.map_err(storage_error)?;
        let mut writer = WriteMultipart::new(upload);
        let mut written = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(WriteError::Body(e));
                }
            };
            written += chunk.len() as u64;
            if written > budget {
                let _ = writer.abort().await;
                return Err(WriteError::OverBudget);
            }
            if let Some(hasher) = hasher.as_deref_mut() {
                hasher.update(&chunk);
            }
            // Back-pressure: at most a few parts in flight, so memory per upload stays bounded.
            writer.wait_for_capacity(4).await.map_err(storage_error)?;
            writer.put(chunk);
        }
        writer.finish().await.map_err(storage_error)?;
        Ok(written)
    }

    /// Moves an object to a key that must not exist; answers `false` (and moves nothing)
    /// when it does.
    #[tracing::instrument(name = "storage", level = "info", skip_all, fields(operation = "rename", key = %to.path()))]
    pub async fn rename_if_absent(&self, from: StorageKey<'_>, to: StorageKey<'_>) -> Result<bool> {
        count(&self.counters.copy, 1);
        count(&self.counters.delete, 1);
        let started = Instant::now();
        let result = self.store.rename_if_not_exists(&from.path(), &to.path()).await;
        observe("copy", started, conditional_outcome(to, &result));
        match result {
            Ok(()) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(storage_error(e)),
        }
    }
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<Bytes> {
    serde_json::to_vec(value).map(Bytes::from).map_err(RegistryError::internal)
}

/// All the bytes of a read, in memory.
pub(crate) async fn collect(body: ObjectStream) -> Result<Bytes> {
    let chunks: Vec<Bytes> = body.try_collect().await.map_err(storage_error)?;
    Ok(chunks.concat().into())
}

/// The bytes of a read, streamed. A local file is read in large chunks: the store's own
/// stream reads 8 KiB per blocking-pool hop, which caps downloads of large blobs.
fn stream_payload(result: object_store::GetResult) -> ObjectStream {
    const CHUNK: usize = 256 * 1024;
    let range = result.range.clone();
    match result.payload {
        object_store::GetResultPayload::File(mut file, path) => {
            use std::io::Seek;
            if let Err(source) = file.seek(std::io::SeekFrom::Start(range.start)) {
                let error = object_store::Error::Generic { store: "LocalFileSystem", source: Box::new(source) };
                return futures::stream::once(async move { Err(error) }).boxed();
            }
            let reader = tokio::io::AsyncReadExt::take(tokio::fs::File::from_std(file), range.end - range.start);
            tokio_util::io::ReaderStream::with_capacity(reader, CHUNK)
                .map_err(move |source| object_store::Error::Generic {
                    store: "LocalFileSystem",
                    source: format!("reading {}: {source}", path.display()).into(),
                })
                .boxed()
        }
        object_store::GetResultPayload::Stream(stream) => stream,
    }
}
