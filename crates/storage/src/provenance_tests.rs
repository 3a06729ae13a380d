//! A provenance file is a blob named in its version's record, so the record is the one
//! object a change of the version writes; files stored beside records by earlier
//! registries are still read.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chartyard_core::RegistryError;
use chartyard_core::archive::sha256_hex;
use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::keys::StorageKey;
use crate::{Registry, RegistryOptions, UploadOptions};

const SEED_TEST1: &[u8] = include_bytes!("../../chartyard/tests/fixtures/test1.tgz");

fn registry() -> (Arc<InMemory>, Registry) {
    let store = Arc::new(InMemory::new());
    let options = RegistryOptions { conditional_updates: true, ..RegistryOptions::default() };
    (store.clone(), Registry::new(store, options))
}

/// A provenance file of the fixture chart (the registry checks the signed claims, not
/// the signature).
fn provenance() -> Bytes {
    let digest = sha256_hex(SEED_TEST1);
    format!(
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\napiVersion: v1\nname: test\nversion: 1.0.0\n\
         description: t\n\n...\nfiles:\n  test-1.0.0.tgz: sha256:{digest}\n-----BEGIN PGP SIGNATURE-----\n\n\
         AAAA\n-----END PGP SIGNATURE-----\n"
    )
    .into()
}

async fn keys(store: &InMemory) -> Vec<String> {
    store.list(None).map_ok(|meta| meta.location.to_string()).try_collect().await.unwrap()
}

#[tokio::test]
async fn provenance_is_a_blob_named_in_the_record() {
    let (store, registry) = registry();
    let options = UploadOptions { provenance: Some(provenance()), ..UploadOptions::default() };
    let stored = registry.upload_with("s", Bytes::from_static(SEED_TEST1), options).await.unwrap();
    assert_eq!(stored.record.provenance, Some(chartyard_core::oci::digest_of(&provenance())));
    assert!(!keys(&store).await.iter().any(|key| key.ends_with(".prov")), "{:?}", keys(&store).await);
    assert_eq!(registry.provenance("s", "test", "1.0.0").await.unwrap(), provenance());

    // A new archive for the version: the file signed the old one and goes with it.
    registry.replace("s", "test", "1.0.0", Bytes::from_static(SEED_TEST1)).await.unwrap();
    assert_eq!(registry.version("s", "test", "1.0.0").await.unwrap().provenance, None);
    let missing = registry.provenance("s", "test", "1.0.0").await.unwrap_err();
    assert_eq!(missing, RegistryError::NotFound("provenance of s/test/1.0.0".into()));
}

#[tokio::test]
async fn provenance_added_later_is_kept_by_garbage_collection() {
    let (_, registry) = registry();
    registry.upload("s", Bytes::from_static(SEED_TEST1)).await.unwrap();
    let stored = registry.put_provenance("s", provenance()).await.unwrap();
    assert!(stored.record.provenance.is_some());
    // The manifest written with the version has no provenance layer: only the record
    // names the file.
    assert_eq!(stored.record.manifest.as_ref().unwrap().provenance, None);
    registry.collect_garbage(Duration::ZERO).await.unwrap();
    assert_eq!(registry.provenance("s", "test", "1.0.0").await.unwrap(), provenance());
}

#[tokio::test]
async fn a_provenance_file_beside_an_older_record_is_read_and_deleted_with_it() {
    let (store, registry) = registry();
    registry.upload("s", Bytes::from_static(SEED_TEST1)).await.unwrap();
    let generation = registry.generation("s").await.unwrap().unwrap();
    let legacy = StorageKey::Provenance { space: "s", generation: &generation, chart: "test", version: "1.0.0" };
    store.put(&legacy.path(), provenance().into()).await.unwrap();
    assert_eq!(registry.provenance("s", "test", "1.0.0").await.unwrap(), provenance());

    registry.delete_version("s", "test", "1.0.0").await.unwrap();
    registry.upload("s", Bytes::from_static(SEED_TEST1)).await.unwrap();
    assert!(matches!(registry.provenance("s", "test", "1.0.0").await, Err(RegistryError::NotFound(_))));
    assert!(!keys(&store).await.iter().any(|key| key.ends_with(".prov")));
}
