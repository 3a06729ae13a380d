//! What registry operations cost in store requests under concurrency, as the gateway
//! counts them (the single-request costs are unit tests of the storage crate).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chartyard_storage::{Registry, RegistryOptions, StorageRequests};

use chartyard_storage::testing::{Faults, FaultyStore};

use crate::support::chart;
use futures::TryStreamExt;
use object_store::ObjectStore;

#[tokio::test]
async fn concurrent_uploads_share_log_entries_and_read_nothing_back() {
    // Followed on every round of the background work.
    let options =
        RegistryOptions { deletes_report_missing: true, index_freshness: Duration::ZERO, ..Default::default() };
    let store = FaultyStore::new(Faults { delay: Duration::from_millis(5), ..Faults::default() });
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
    let spent = registry.storage_requests() - before;
    // Per upload: three blobs and the record, and the tag check; log entries are shared
    // by uploads waiting at once, and what the uploads wrote is not read back (following
    // the log skips this process's entries). The space's policy is read once per upload:
    // it is cached for the index freshness, zero here.
    assert_eq!((spent.head, spent.delete, spent.copy), (UPLOADS, 0, 0), "{spent:?}");
    assert!(spent.put > 4 * UPLOADS && spent.put <= 4 * UPLOADS + UPLOADS / 4, "{spent:?}");
    assert_eq!(spent.get, UPLOADS, "{spent:?}");
    assert_eq!(registry.index_entries("s").await.unwrap().iter().map(|(_, v)| v.len()).sum::<usize>(), 65);
}

/// A change whose announcement failed (the store refused the log entry, as a process
/// stopping there would leave it): the upload is not acknowledged, its record exists, and
/// a reconcile finds it and announces it to every replica.
#[tokio::test]
async fn a_change_left_unannounced_is_found_by_a_reconcile() {
    let store = Arc::new(FaultyStore::default());
    let options =
        RegistryOptions { deletes_report_missing: true, index_freshness: Duration::ZERO, ..Default::default() };
    let replica = || Registry::new(store.clone(), options.clone());
    let (a, b, c) = (replica(), replica(), replica());
    a.upload("s", chart("app", "1.0.0")).await.unwrap();
    assert_eq!(b.index_entries("s").await.unwrap().len(), 1);
    assert_eq!(c.index_entries("s").await.unwrap().len(), 1);

    store.fail_writes_under(Some("log/"));
    let refused = a.upload("s", chart("app", "2.0.0")).await;
    assert!(refused.is_err(), "not acknowledged: {refused:?}");
    store.fail_writes_under(None);
    assert!(a.version("s", "app", "2.0.0").await.is_ok(), "its record was committed");
    let versions = |entries: Vec<(String, Vec<serde_json::Map<String, serde_json::Value>>)>| {
        entries.into_iter().flat_map(|(_, versions)| versions).map(|v| v["version"].to_string()).collect::<Vec<_>>()
    };
    assert_eq!(versions(b.index_entries("s").await.unwrap()), ["\"1.0.0\""], "unannounced: not seen");

    assert_eq!(b.reconcile("s").await.unwrap(), 1);
    assert_eq!(versions(b.index_entries("s").await.unwrap()), ["\"2.0.0\"", "\"1.0.0\""]);
    assert_eq!(versions(c.index_entries("s").await.unwrap()).len(), 2, "announced to the others");
}

/// A store no other process writes (a filesystem root has one server): indexes are not
/// followed, so reading them costs nothing however old they are; after a restart the
/// index comes from its checkpoint, and a write the stopped process committed without
/// announcing it is found by the reconcile of the first round of background work.
#[tokio::test]
async fn an_unshared_store_is_not_followed_and_reconciled_once_after_a_restart() {
    let store = Arc::new(FaultyStore::default());
    let options = RegistryOptions {
        deletes_report_missing: true,
        // Every index older than this: it would be followed on every read if shared.
        index_freshness: Duration::from_nanos(1),
        shared_store: false,
        ..Default::default()
    };
    let first = Registry::new(store.clone(), options.clone());
    first.upload("s", chart("app", "1.0.0")).await.unwrap();
    first.space_index("s").await.unwrap();
    let before = first.storage_requests();
    for _ in 0..5 {
        first.space_index("s").await.unwrap();
        first.maintain().await;
    }
    assert_eq!(first.storage_requests() - before, StorageRequests::default(), "nothing to follow");

    // Past a checkpoint's worth of writes, the background work stores one.
    for n in 0..64 {
        first.upload("s", chart("many", &format!("1.0.{n}"))).await.unwrap();
    }
    first.maintain().await;
    let checkpoints: Vec<_> =
        store.list(Some(&object_store::path::Path::from("checkpoints"))).try_collect().await.unwrap();
    assert_eq!(checkpoints.len(), 1);
    // and the log entries it holds are gone, but for the one it stands at
    let entries: Vec<_> = store.list(Some(&object_store::path::Path::from("log"))).try_collect().await.unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    first.checkpoint_all().await;
    store.fail_writes_under(Some("log/"));
    assert!(first.upload("s", chart("app", "2.0.0")).await.is_err(), "stopped before announcing");
    store.fail_writes_under(None);
    drop(first);

    let restarted = Registry::new(store.clone(), options);
    let before = restarted.storage_requests();
    assert_eq!(indexed_versions(&restarted).await, 65, "from the checkpoint");
    // The marker, the checkpoint and the (empty) log after it: no records read.
    let spent = restarted.storage_requests() - before;
    assert_eq!((spent.get, spent.list), (2, 1), "{spent:?}");
    restarted.maintain().await;
    assert_eq!(indexed_versions(&restarted).await, 66, "the reconcile after loading found it");
}

async fn indexed_versions(registry: &Registry) -> usize {
    registry.index_entries("s").await.unwrap().into_iter().map(|(_, versions)| versions.len()).sum()
}
