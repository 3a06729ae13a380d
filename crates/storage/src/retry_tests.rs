//! Conditional writes whose answer was lost: object_store retries a PUT that failed with a
//! 5xx or a dropped connection, and when the first attempt did land the retry is told
//! "already exists" (create) or "changed" (compare-and-swap) about the write's own result.
//! The registry must take that for the success it was, and still refuse other writers.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

use chartyard_core::RegistryError;

use crate::{Registry, RegistryOptions};

const SEED_TEST1: &[u8] = include_bytes!("../../chartyard/tests/fixtures/test1.tgz");

/// A store whose conditional writes land, but whose answer is replaced, while `lose` is
/// set, by what a retry of the same request would hear.
#[derive(Debug, Default)]
struct LosesAnswers {
    inner: InMemory,
    lose: AtomicBool,
}

impl fmt::Display for LosesAnswers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LosesAnswers")
    }
}

#[async_trait]
impl ObjectStore for LosesAnswers {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        let conditional = !matches!(opts.mode, PutMode::Overwrite);
        let create = matches!(opts.mode, PutMode::Create);
        let result = self.inner.put_opts(location, payload, opts).await?;
        if !(conditional && self.lose.load(Ordering::SeqCst)) {
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
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[tokio::test]
async fn a_write_whose_answer_was_lost_is_still_the_writers() {
    let store = Arc::new(LosesAnswers::default());
    let options = RegistryOptions { conditional_updates: true, ..RegistryOptions::default() };
    let registry = Registry::new(store.clone(), options);
    store.lose.store(true, Ordering::SeqCst);

    // A new space and a new version: created, whatever the retry heard.
    registry.create_space("s").await.unwrap();
    let stored = registry.upload("s", Bytes::from_static(SEED_TEST1)).await.unwrap();
    assert_eq!(registry.version("s", &stored.chart, &stored.version).await.unwrap().digest, stored.record.digest);

    // Another writer of the same version is still refused.
    let again = registry.upload("s", Bytes::from_static(SEED_TEST1)).await;
    assert!(matches!(again, Err(RegistryError::AlreadyExists(_))), "{again:?}");
    assert!(matches!(registry.create_space("s").await, Err(RegistryError::AlreadyExists(_))));

    // A compare-and-swap replace whose answer was lost: done, not "locked".
    let replaced = registry.replace("s", &stored.chart, &stored.version, Bytes::from_static(SEED_TEST1)).await.unwrap();
    assert_eq!(registry.version("s", &stored.chart, &stored.version).await.unwrap().writer, replaced.record.writer);
    assert_ne!(replaced.record.writer, stored.record.writer, "each write has an id of its own");

    // Each change was announced once: a retried log append is not a second entry.
    use futures::TryStreamExt;
    let entries: Vec<ObjectMeta> = store.inner.list(Some(&Path::from("log/s"))).try_collect().await.unwrap();
    assert_eq!(entries.len(), 2, "{entries:?}");
}
