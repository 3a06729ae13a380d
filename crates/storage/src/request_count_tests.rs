//! What an upload costs in store requests, as the gateway counts them: these are the
//! numbers an S3 bill or a latency budget multiplies.

use std::sync::Arc;

use bytes::Bytes;
use chartyard_core::oci::digest_of;
use futures::StreamExt;
use object_store::memory::InMemory;

use crate::oci::ChunkRange;
use crate::{Registry, RegistryOptions, StorageRequests};

const SEED_TEST1: &[u8] = include_bytes!("../../chartyard/tests/fixtures/test1.tgz");

fn registry() -> Registry {
    // Counted as on S3 and the filesystem, whose deletes say whether there was anything.
    Registry::new(Arc::new(InMemory::new()), RegistryOptions { deletes_report_missing: true, ..Default::default() })
}

fn body(bytes: &'static [u8]) -> crate::oci::ByteStream {
    futures::stream::once(async move { Ok(Bytes::from_static(bytes)) }).boxed()
}

#[tokio::test]
async fn a_chart_upload_costs_six_requests_into_a_space_in_use() {
    let registry = registry();
    registry.upload("s", Bytes::from_static(SEED_TEST1)).await.unwrap();
    // Archive, config and manifest blobs, the space marker, the record, the change log
    // entry; the marker read before (absent), the check for an OCI tag of that name, and
    // a listing of the log (empty) to learn where it goes on.
    let expected = StorageRequests { get: 1, head: 1, put: 6, list: 1, ..StorageRequests::default() };
    assert_eq!(registry.storage_requests(), expected);

    // Into a space whose index is loaded and fresh: the three blobs (the same bytes again
    // are refused by the store), the record, the log entry, and the tag check. The marker
    // is not read (the change log would tell a deleted space), nor the record again (the
    // index takes what was written).
    registry.delete_version("s", "test", "1.0.0").await.unwrap();
    registry.space_index("s").await.unwrap();
    let before = registry.storage_requests();
    registry.upload("s", Bytes::from_static(SEED_TEST1)).await.unwrap();
    assert_eq!(registry.storage_requests() - before, StorageRequests { head: 1, put: 5, ..StorageRequests::default() });
    assert_eq!(registry.index_entries("s").await.unwrap().len(), 1);

    // Serving the index while it is fresh costs nothing.
    let before = registry.storage_requests();
    for _ in 0..10 {
        registry.space_index("s").await.unwrap();
    }
    assert_eq!(registry.storage_requests() - before, StorageRequests::default());
}

#[tokio::test]
async fn an_oci_blob_upload_costs_a_staging_write_and_a_rename() {
    let registry = registry();
    registry.create_space("s").await.unwrap();
    const DATA: &[u8] = b"layer bytes";
    let digest = digest_of(DATA);

    let before = registry.storage_requests();
    registry.put_whole_blob("s", "app", &digest, body(DATA)).await.unwrap();
    // The staging write, its rename onto the blob, the marker read and the link.
    let expected = StorageRequests { get: 1, put: 2, copy: 1, delete: 1, ..StorageRequests::default() };
    assert_eq!(registry.storage_requests() - before, expected);

    const CHUNKED: &[u8] = b"other layer bytes";
    let digest = digest_of(CHUNKED);
    let before = registry.storage_requests();
    let id = registry.start_upload("s", "other").await.unwrap();
    let end = registry.append_upload("s", "other", &id, ChunkRange::default(), body(CHUNKED)).await.unwrap();
    assert_eq!(end, CHUNKED.len() as u64);
    registry.finish_upload("s", "other", &id, &digest, ChunkRange::default(), body(b"")).await.unwrap();
    // Session: 1 put. Chunk: session read and done check, a part listing, the staging
    // write, the claim of its offset and its rename. Completion: the same checks, the
    // done claim, the part read, the staging write and rename, the marker read, the link,
    // then the session removed and its prefix (part, offset claim and done claim) swept.
    let expected = StorageRequests { get: 4, head: 2, put: 6, list: 3, delete: 6, copy: 2 };
    assert_eq!(registry.storage_requests() - before, expected);
    assert_eq!(registry.blob_size("s", "other", &digest).await.unwrap(), Some(CHUNKED.len() as u64));
}
