//! Conditional writes whose answer was lost: object_store retries a PUT that failed with a
//! 5xx or a dropped connection, and when the first attempt did land the retry is told
//! "already exists" (create) or "changed" (compare-and-swap) about the write's own result.
//! The registry must take that for the success it was, and still refuse other writers.

use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore};

use chartyard_core::RegistryError;

use crate::testing::FaultyStore;
use crate::{Registry, RegistryOptions};

const SEED_TEST1: &[u8] = include_bytes!("../../chartyard/tests/fixtures/test1.tgz");

#[tokio::test]
async fn a_write_whose_answer_was_lost_is_still_the_writers() {
    let store = Arc::new(FaultyStore::default());
    let options = RegistryOptions { conditional_updates: true, ..RegistryOptions::default() };
    let registry = Registry::new(store.clone(), options);
    store.lose_answers(true);

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
    let entries: Vec<ObjectMeta> = store.list(Some(&Path::from("log/s"))).try_collect().await.unwrap();
    assert_eq!(entries.len(), 2, "{entries:?}");
}
