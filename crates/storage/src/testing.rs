//! A store for tests that behaves as real object stores misbehave: slow answers, refused
//! writes, lost answers of conditional writes, conditions ignored, `If-Match` taking only
//! unquoted ETags, no copy-if-absent. Built only for tests (`cfg(test)` and the `testing`
//! feature the crate's integration tests turn on).

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyMode, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// How a [`FaultyStore`] misbehaves; the default is an honest in-memory store.
#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// Added before every request, as a distant bucket's round trip.
    pub delay: Duration,
    /// `PutMode::Create` is taken as an overwrite.
    pub ignores_create: bool,
    /// `PutMode::Update` is taken as an overwrite.
    pub ignores_update: bool,
    /// `If-Match` takes ETags only unquoted (as Ceph RGW), although reads answer them quoted.
    pub unquoted_if_match: bool,
    /// Copies with `CopyMode::Create` are not supported.
    pub no_copy_if_absent: bool,
}

/// An in-memory store with [`Faults`], and two switches a test flips while it runs.
#[derive(Debug, Default)]
pub struct FaultyStore {
    inner: InMemory,
    faults: Faults,
    /// While set, conditional writes land but answer what a retry of the same request
    /// would hear ("already exists", "changed"): the first attempt's answer was lost.
    lose_answers: AtomicBool,
    /// While set, writes under this prefix fail.
    failing: Mutex<Option<String>>,
}

impl FaultyStore {
    pub fn new(faults: Faults) -> Self {
        Self { faults, ..Self::default() }
    }

    /// Conditional writes lose their answers from now on, or no longer.
    pub fn lose_answers(&self, lose: bool) {
        self.lose_answers.store(lose, Ordering::SeqCst);
    }

    /// Writes under `prefix` fail from now on (`None`: none do).
    pub fn fail_writes_under(&self, prefix: Option<&str>) {
        *self.failing.lock().unwrap_or_else(|e| e.into_inner()) = prefix.map(str::to_string);
    }

    async fn delay(&self) {
        if !self.faults.delay.is_zero() {
            tokio::time::sleep(self.faults.delay).await;
        }
    }

    fn check_write(&self, location: &Path) -> Result<()> {
        match &*self.failing.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(prefix) if location.as_ref().starts_with(prefix.as_str()) => Err(object_store::Error::Generic {
                store: "faulty",
                source: format!("writes under {prefix} fail").into(),
            }),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({:?})", self.faults)
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, mut opts: PutOptions) -> Result<PutResult> {
        self.delay().await;
        self.check_write(location)?;
        match &mut opts.mode {
            PutMode::Create if self.faults.ignores_create => opts.mode = PutMode::Overwrite,
            PutMode::Update(_) if self.faults.ignores_update => opts.mode = PutMode::Overwrite,
            PutMode::Update(current) if self.faults.unquoted_if_match => match current.e_tag.as_deref() {
                Some(e_tag) if e_tag.starts_with('"') => {
                    let source = "quoted ETag".into();
                    return Err(object_store::Error::Precondition { path: location.to_string(), source });
                }
                // InMemory's own ETags are quoted.
                Some(e_tag) => current.e_tag = Some(format!("\"{e_tag}\"")),
                None => {}
            },
            _ => {}
        }
        let create = matches!(opts.mode, PutMode::Create);
        let conditional = !matches!(opts.mode, PutMode::Overwrite);
        let result = self.inner.put_opts(location, payload, opts).await?;
        if !(conditional && self.lose_answers.load(Ordering::SeqCst)) {
            return Ok(result);
        }
        let (path, source) = (location.to_string(), "the first attempt's answer was lost".into());
        Err(if create {
            object_store::Error::AlreadyExists { path, source }
        } else {
            object_store::Error::Precondition { path, source }
        })
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.delay().await;
        self.check_write(location)?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.delay().await;
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let (delay, listing) = (self.faults.delay, self.inner.list(prefix));
        futures::stream::once(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            listing
        })
        .flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.delay().await;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.delay().await;
        self.check_write(to)?;
        if self.faults.no_copy_if_absent && options.mode == CopyMode::Create {
            return Err(object_store::Error::NotSupported { source: "no copy-if-absent".into() });
        }
        self.inner.copy_opts(from, to, options).await
    }
}
