//! What registry operations cost in store requests under concurrency, as the gateway
//! counts them (the single-request costs are unit tests of the storage crate).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, PutResult, Result,
};

use bytes::Bytes;
use chartyard_storage::{Registry, RegistryOptions, StorageRequests};
use object_store::memory::InMemory;

use crate::support::chart;

/// A store that answers every request `delay` late, as a remote bucket does.
#[derive(Debug)]
struct Slow {
    inner: InMemory,
    delay: Duration,
}

impl std::fmt::Display for Slow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Slow({:?})", self.delay)
    }
}

#[async_trait::async_trait]
impl ObjectStore for Slow {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        tokio::time::sleep(self.delay).await;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        tokio::time::sleep(self.delay).await;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        tokio::time::sleep(self.delay).await;
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let (delay, listing) = (self.delay, self.inner.list(prefix));
        futures::stream::once(async move {
            tokio::time::sleep(delay).await;
            listing
        })
        .flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        tokio::time::sleep(self.delay).await;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        tokio::time::sleep(self.delay).await;
        self.inner.copy_opts(from, to, options).await
    }
}

fn since(registry: &Registry, before: StorageRequests) -> StorageRequests {
    let now = registry.storage_requests();
    StorageRequests {
        get: now.get - before.get,
        head: now.head - before.head,
        put: now.put - before.put,
        list: now.list - before.list,
        delete: now.delete - before.delete,
        copy: now.copy - before.copy,
    }
}
#[tokio::test]
async fn concurrent_uploads_share_log_entries_and_read_nothing_back() {
    // Followed on every round of the background work.
    let options =
        RegistryOptions { deletes_report_missing: true, index_freshness: Duration::ZERO, ..Default::default() };
    let store = Slow { inner: InMemory::new(), delay: Duration::from_millis(5) };
    let registry = Arc::new(Registry::new(Arc::new(store), options));
    registry.upload("s", chart("first", "1.0.0")).await.unwrap();
    registry.space_index("s").await.unwrap();
    const UPLOADS: u64 = 64;
    let archives: Vec<Bytes> = (0..UPLOADS).map(|n| chart("many", &format!("1.0.{n}"))).collect();
    let before = registry.storage_requests();
    let uploads = archives.into_iter().map(|archive| {
        let registry = registry.clone();
        tokio::spawn(async move { registry.upload("s", archive).await.unwrap() })
    });
    // What the server does about once a second, here as often as it can.
    let following = {
        let registry = registry.clone();
        tokio::spawn(async move {
            loop {
                registry.maintain().await;
                tokio::task::yield_now().await;
            }
        })
    };
    for upload in futures::future::join_all(uploads).await {
        upload.unwrap();
    }
    following.abort();
    let spent = since(&registry, before);
    // Per upload: three blobs and the record, and the tag check; log entries are shared
    // by uploads waiting at once, and what the uploads wrote is not read back (following
    // the log skips this process's entries).
    assert_eq!((spent.head, spent.delete, spent.copy), (UPLOADS, 0, 0), "{spent:?}");
    assert!(spent.put > 4 * UPLOADS && spent.put <= 4 * UPLOADS + UPLOADS / 4, "{spent:?}");
    assert_eq!(spent.get, 0, "{spent:?}");
    assert_eq!(registry.index_entries("s").await.unwrap().iter().map(|(_, v)| v.len()).sum::<usize>(), 65);
}
