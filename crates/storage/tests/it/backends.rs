//! The registry's behaviour, the same on every backend: each `check_*` takes a fresh
//! registry and uses only the public `Registry` API, and `backend_suite!` runs every check
//! once per backend. A new backend is one more `backend_suite!` line.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use chartyard_core::RegistryError;
use chartyard_storage::Registry;
use chartyard_storage::oci::ChunkRange;
use serde_json::json;

use crate::support::{TestRegistry, chart, chart_with_values, collect, digest_of, sha256, stream};
use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt};

/// One test module per backend; `$open` answers a registry, or `None` where the backend's
/// server is not installed (the tests then skip; under CI that is a failure).
macro_rules! backend_suite {
    ($backend:ident, $open:path) => {
        mod $backend {
            use super::*;

            #[tokio::test]
            async fn spaces() {
                let Some(registry) = $open() else { return };
                check_spaces(&registry).await;
            }

            #[tokio::test]
            async fn upload_download_replace_delete() {
                let Some(registry) = $open() else { return };
                check_upload_download_replace_delete(&registry).await;
            }

            #[tokio::test]
            async fn deleting_a_deleted_version_is_not_found() {
                let Some(registry) = $open() else { return };
                check_deleting_a_deleted_version_is_not_found(&registry).await;
            }

            #[tokio::test]
            async fn tokens_and_the_signing_key() {
                let Some(registry) = $open() else { return };
                check_tokens_and_the_signing_key(&registry).await;
            }

            #[tokio::test]
            async fn listings_and_index() {
                let Some(registry) = $open() else { return };
                check_listings_and_index(&registry).await;
            }

            #[tokio::test]
            async fn oci_blobs_and_uploads() {
                let Some(registry) = $open() else { return };
                check_oci_blobs_and_uploads(&registry).await;
            }

            #[tokio::test]
            async fn oci_manifests_and_tags() {
                let Some(registry) = $open() else { return };
                check_oci_manifests_and_tags(&registry).await;
            }

            #[tokio::test]
            async fn replicas() {
                let Some(registry) = $open() else { return };
                check_replicas(&registry).await;
            }

            #[tokio::test]
            async fn audit_log() {
                let Some(registry) = $open() else { return };
                check_audit_log(&registry).await;
            }

            #[tokio::test]
            async fn policies() {
                let Some(registry) = $open() else { return };
                check_policies(&registry).await;
            }

            #[tokio::test]
            async fn gc() {
                let Some(registry) = $open() else { return };
                check_gc(&registry).await;
            }
        }
    };
}

backend_suite!(inmemory, crate::support::inmemory);
backend_suite!(filesystem, crate::support::filesystem);
backend_suite!(s3, crate::support::s3);

async fn download(registry: &Registry, space: &str, chart: &str, version: &str) -> Vec<u8> {
    collect(registry.open_archive(space, chart, version).await.unwrap().body).await
}

pub async fn check_spaces(registry: &Registry) {
    assert_eq!(registry.list_spaces().await.unwrap(), Vec::<String>::new());
    for space in ["beta", "alpha"] {
        registry.create_space(space).await.unwrap();
    }
    assert!(matches!(registry.create_space("alpha").await, Err(RegistryError::AlreadyExists(_))));
    assert!(matches!(registry.create_space("bad.name").await, Err(RegistryError::Invalid(_))));
    assert_eq!(registry.list_spaces().await.unwrap(), ["alpha", "beta"]);

    // uploading into a missing space creates it
    registry.upload("gamma", chart("app", "1.0.0")).await.unwrap();
    assert_eq!(registry.list_spaces().await.unwrap(), ["alpha", "beta", "gamma"]);

    // a deleted space is gone with its charts; made again, it is empty
    registry.delete_space("gamma").await.unwrap();
    assert!(matches!(registry.delete_space("gamma").await, Err(RegistryError::NotFound(_))));
    assert!(matches!(registry.list_charts("gamma").await, Err(RegistryError::NotFound(_))));
    assert_eq!(registry.list_spaces().await.unwrap(), ["alpha", "beta"]);
    registry.create_space("gamma").await.unwrap();
    assert_eq!(registry.list_charts("gamma").await.unwrap(), Vec::<String>::new());
    assert!(matches!(registry.version("gamma", "app", "1.0.0").await, Err(RegistryError::NotFound(_))));
}

pub async fn check_upload_download_replace_delete(registry: &Registry) {
    let first = chart("app", "1.0.0");
    let stored = registry.upload("s", first.clone()).await.unwrap();
    assert_eq!((stored.space.as_str(), stored.chart.as_str(), stored.version.as_str()), ("s", "app", "1.0.0"));
    assert_eq!(stored.record.digest, sha256(&first));
    let record = registry.version("s", "app", "1.0.0").await.unwrap();
    assert_eq!((record.digest.as_str(), record.size), (sha256(&first).as_str(), first.len() as u64));
    assert_eq!(download(registry, "s", "app", "1.0.0").await, first);

    // a version is stored once; replacing it is explicit
    let second = chart_with_values("app", "1.0.0", "replicaCount: 2\n");
    assert!(matches!(registry.upload("s", second.clone()).await, Err(RegistryError::AlreadyExists(_))));
    assert_eq!(download(registry, "s", "app", "1.0.0").await, first);
    registry.replace("s", "app", "1.0.0", second.clone()).await.unwrap();
    assert_eq!(download(registry, "s", "app", "1.0.0").await, second);
    assert_eq!(registry.version("s", "app", "1.0.0").await.unwrap().created, record.created, "kept on replace");
    assert!(matches!(
        registry.replace("s", "app", "1.0.0", chart("other", "1.0.0")).await,
        Err(RegistryError::Invalid(_))
    ));

    // values are read from and written into the archive
    assert_eq!(registry.values("s", "app", "1.0.0").await.unwrap(), json!({"replicaCount": 2}));
    registry.update_values("s", "app", "1.0.0", json!({"replicaCount": 3})).await.unwrap();
    assert_eq!(registry.values("s", "app", "1.0.0").await.unwrap(), json!({"replicaCount": 3}));
    let rewritten = download(registry, "s", "app", "1.0.0").await;
    assert_eq!(registry.version("s", "app", "1.0.0").await.unwrap().digest, sha256(&rewritten));

    // refused archives store nothing
    assert!(matches!(registry.upload("s", Bytes::from_static(b"not a chart")).await, Err(RegistryError::Invalid(_))));

    // deletes
    registry.upload("s", chart("app", "2.0.0")).await.unwrap();
    registry.delete_version("s", "app", "1.0.0").await.unwrap();
    assert!(matches!(registry.version("s", "app", "1.0.0").await, Err(RegistryError::NotFound(_))));
    assert!(registry.open_archive("s", "app", "1.0.0").await.is_err());
    assert_eq!(download(registry, "s", "app", "2.0.0").await, chart("app", "2.0.0"));
    registry.delete_chart("s", "app").await.unwrap();
    assert_eq!(registry.list_charts("s").await.unwrap(), Vec::<String>::new());
    assert!(matches!(registry.delete_chart("s", "app").await, Err(RegistryError::NotFound(_))));
}

/// A delete of a version that is gone answers NotFound (404), whatever the store says
/// about deleting a missing object (object_store's `InMemory` and S3 say nothing).
pub async fn check_deleting_a_deleted_version_is_not_found(registry: &Registry) {
    registry.upload("s", chart("app", "1.0.0")).await.unwrap();
    registry.upload("s", chart("app", "2.0.0")).await.unwrap();
    registry.delete_version("s", "app", "1.0.0").await.unwrap();
    let again = registry.delete_version("s", "app", "1.0.0").await;
    assert!(matches!(again, Err(RegistryError::NotFound(_))), "{again:?}");
    assert!(matches!(registry.delete_version("s", "app", "3.0.0").await, Err(RegistryError::NotFound(_))));
}

/// API tokens: created once under their id, read back, listed with their last use, gone
/// when revoked; the signing key is created by the first caller and read by the others.
pub async fn check_tokens_and_the_signing_key(registry: &Registry) {
    use chartyard_core::access::{Role, SpacePattern, TokenLimits};
    use chartyard_storage::tokens::TokenRecord;
    let tokens = registry.tokens();
    let record = |id: &str, owner: &str| TokenRecord {
        id: id.into(),
        owner: owner.into(),
        hash: "ab".repeat(32),
        created: 1_800_000_000,
        expires: Some(1_900_000_000),
        limits: TokenLimits { spaces: vec![SpacePattern::new("team-*").unwrap()], role: Some(Role::Read) },
        description: "ci".into(),
    };
    let first = record("00000000000000a1", "alice");
    tokens.create(&first).await.unwrap();
    tokens.create(&record("00000000000000b2", "bob")).await.unwrap();
    assert!(tokens.create(&record("00000000000000a1", "mallory")).await.is_err(), "an id is never taken twice");
    assert_eq!(tokens.get("00000000000000a1").await.unwrap(), Some(first.clone()));
    assert_eq!(tokens.get("00000000000000ff").await.unwrap(), None);

    tokens.mark_used("00000000000000a1").await.unwrap();
    let listed = tokens.list().await.unwrap();
    let owners: Vec<&str> = listed.iter().map(|t| t.record.owner.as_str()).collect();
    assert_eq!(owners, ["alice", "bob"]);
    assert!(listed[0].last_used.is_some() && listed[1].last_used.is_none());

    assert!(tokens.revoke("00000000000000a1").await.unwrap());
    assert!(!tokens.revoke("00000000000000a1").await.unwrap());
    assert_eq!(tokens.get("00000000000000a1").await.unwrap(), None);
    assert_eq!(tokens.list().await.unwrap().len(), 1);

    let key = tokens.signing_key(&[1; 32]).await.unwrap();
    assert_eq!(key, vec![1; 32]);
    assert_eq!(tokens.signing_key(&[2; 32]).await.unwrap(), key, "the first key stays");
}

pub async fn check_listings_and_index(registry: &Registry) {
    for (name, version) in [("web", "1.10.0"), ("web", "1.2.0"), ("web", "2.0.0-rc.1"), ("db", "0.1.0")] {
        registry.upload("s", chart(name, version)).await.unwrap();
    }
    registry.upload("other", chart("cache", "1.0.0")).await.unwrap();
    assert_eq!(registry.list_charts("s").await.unwrap(), ["db", "web"]);
    let versions: Vec<String> =
        registry.chart_versions("s", "web").await.unwrap().into_iter().map(|v| v.version).collect();
    assert_eq!(versions.len(), 3);
    for version in ["1.2.0", "1.10.0", "2.0.0-rc.1"] {
        assert!(versions.contains(&version.to_string()), "{versions:?}");
    }
    let mut all: Vec<String> =
        registry.space_versions("s").await.unwrap().into_iter().map(|v| format!("{}/{}", v.chart, v.version)).collect();
    all.sort();
    assert_eq!(all, ["db/0.1.0", "web/1.10.0", "web/1.2.0", "web/2.0.0-rc.1"]);

    // the repository index holds every version of the space, newest first per chart
    let entries = registry.index_entries("s").await.unwrap();
    let listed: Vec<(String, Vec<String>)> = entries
        .iter()
        .map(|(name, versions)| {
            (name.clone(), versions.iter().map(|v| v["version"].as_str().unwrap().to_string()).collect())
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("db".to_string(), vec!["0.1.0".to_string()]),
            ("web".into(), vec!["2.0.0-rc.1".into(), "1.10.0".into(), "1.2.0".into()])
        ]
    );
    let index = registry.space_index("s").await.unwrap();
    let yaml = String::from_utf8(index.yaml.to_vec()).unwrap();
    assert!(yaml.contains(&format!("digest: {}", sha256(&chart("db", "0.1.0")))), "{yaml}");
    assert!(!yaml.contains("cache"), "{yaml}");

    // writes show in the index at once, and change its ETag
    registry.delete_version("s", "web", "1.2.0").await.unwrap();
    let after = registry.space_index("s").await.unwrap();
    assert_ne!(after.etag, index.etag);
    let yaml = String::from_utf8(after.yaml.to_vec()).unwrap();
    assert!(!yaml.contains(&sha256(&chart("web", "1.2.0"))), "{yaml}");
    assert!(yaml.contains(&sha256(&chart("web", "1.10.0"))), "{yaml}");
}

pub async fn check_oci_blobs_and_uploads(registry: &Registry) {
    registry.create_space("s").await.unwrap();
    // in one request
    let whole = b"a whole blob".to_vec();
    registry.put_whole_blob("s", "artifact", &digest_of(&whole), stream(&whole)).await.unwrap();
    assert_eq!(registry.blob_size("s", "artifact", &digest_of(&whole)).await.unwrap(), Some(whole.len() as u64));
    let blob = registry.open_blob("s", "artifact", &digest_of(&whole), None).await.unwrap();
    assert_eq!(blob.size, whole.len() as u64);
    assert_eq!(collect(blob.body).await, whole);
    // a blob is visible only in repositories that hold it
    assert_eq!(registry.blob_size("s", "elsewhere", &digest_of(&whole)).await.unwrap(), None);

    // in chunks, across requests
    let id = registry.start_upload("s", "artifact").await.unwrap();
    let chunk = |start: u64, len: usize| ChunkRange { start: Some(start), len: Some(len as u64) };
    assert_eq!(registry.upload_offset("s", "artifact", &id).await.unwrap(), 0);
    assert_eq!(registry.append_upload("s", "artifact", &id, chunk(0, 5), stream(b"chunk")).await.unwrap(), 5);
    assert_eq!(registry.upload_offset("s", "artifact", &id).await.unwrap(), 5);
    // a chunk that does not start at the end is refused, and changes nothing
    assert!(registry.append_upload("s", "artifact", &id, chunk(2, 3), stream(b"bad")).await.is_err());
    let data = b"chunked blob".to_vec();
    registry.finish_upload("s", "artifact", &id, &digest_of(&data), chunk(5, 7), stream(b"ed blob")).await.unwrap();
    let blob = registry.open_blob("s", "artifact", &digest_of(&data), None).await.unwrap();
    assert_eq!(collect(blob.body).await, data);
    assert!(registry.upload_offset("s", "artifact", &id).await.is_err(), "a finished upload is gone");

    // a wrong digest stores nothing
    let id = registry.start_upload("s", "artifact").await.unwrap();
    let claimed = digest_of(b"other bytes");
    let none = ChunkRange { start: None, len: None };
    assert!(registry.finish_upload("s", "artifact", &id, &claimed, none, stream(b"real bytes")).await.is_err());
    assert_eq!(registry.blob_size("s", "artifact", &claimed).await.unwrap(), None);
    assert_eq!(registry.blob_size("s", "artifact", &digest_of(b"real bytes")).await.unwrap(), None);

    // a cancelled upload is unknown
    let id = registry.start_upload("s", "artifact").await.unwrap();
    registry.cancel_upload("s", "artifact", &id).await.unwrap();
    assert!(registry.upload_offset("s", "artifact", &id).await.is_err());

    // deleting a loose blob unlinks it from the repository
    registry.delete_blob("s", "artifact", &digest_of(&whole)).await.unwrap();
    assert_eq!(registry.blob_size("s", "artifact", &digest_of(&whole)).await.unwrap(), None);
}

pub async fn check_oci_manifests_and_tags(registry: &Registry) {
    const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    registry.create_space("s").await.unwrap();
    let (config, layer) = (b"{}".to_vec(), b"layer".to_vec());
    for blob in [&config, &layer] {
        registry.put_whole_blob("s", "artifact", &digest_of(blob), stream(blob)).await.unwrap();
    }
    let descriptor =
        |media_type: &str, data: &[u8]| json!({"mediaType": media_type, "digest": digest_of(data), "size": data.len()});
    let manifest = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.example.config.v1+json", &config),
        "layers": [descriptor("application/vnd.example.layer.v1.tar", &layer)],
    }))
    .unwrap();
    let manifest = Bytes::from(manifest);
    for tag in ["v2", "v1", "latest"] {
        let digest =
            registry.put_manifest("s", "artifact", tag, manifest.clone(), Some(OCI_MANIFEST), false).await.unwrap();
        assert_eq!(digest, digest_of(&manifest));
    }
    assert_eq!(registry.tags("s", "artifact").await.unwrap(), ["latest", "v1", "v2"]);
    for reference in ["v1".to_string(), digest_of(&manifest)] {
        let got = registry.get_manifest("s", "artifact", &reference).await.unwrap();
        assert_eq!(
            (got.bytes, got.media_type.as_str(), got.digest),
            (manifest.clone(), OCI_MANIFEST, digest_of(&manifest))
        );
    }
    assert!(registry.catalog().await.unwrap().contains(&"s/artifact".to_string()));

    // a manifest naming a blob that was never pushed is refused
    let missing = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.example.config.v1+json", &config),
        "layers": [descriptor("application/vnd.example.layer.v1.tar", b"never pushed")],
    }))
    .unwrap();
    assert!(registry.put_manifest("s", "artifact", "bad", missing.into(), Some(OCI_MANIFEST), false).await.is_err());
    assert!(registry.get_manifest("s", "artifact", "bad").await.is_err());

    // deleting by tag removes the tag; by digest, the manifest and every tag of it
    registry.delete_manifest("s", "artifact", "v2").await.unwrap();
    assert_eq!(registry.tags("s", "artifact").await.unwrap(), ["latest", "v1"]);
    registry.delete_manifest("s", "artifact", &digest_of(&manifest)).await.unwrap();
    assert!(registry.get_manifest("s", "artifact", "v1").await.is_err());
    assert!(registry.get_manifest("s", "artifact", &digest_of(&manifest)).await.is_err());

    // a chart version is a tag of its repository too
    let archive = chart("web", "1.0.0");
    registry.upload("s", archive).await.unwrap();
    assert_eq!(registry.tags("s", "web").await.unwrap(), ["1.0.0"]);
    let got = registry.get_manifest("s", "web", "1.0.0").await.unwrap();
    let record = registry.version("s", "web", "1.0.0").await.unwrap();
    assert_eq!(got.digest, record.manifest.as_ref().expect("a stored manifest").digest);
}

pub async fn check_gc(registry: &Registry) {
    let first = chart("app", "1.0.0");
    registry.upload("s", first.clone()).await.unwrap();
    registry.upload("s", chart("app", "2.0.0")).await.unwrap();
    // Nothing is unreferenced yet.
    let report = registry.collect_garbage(Duration::ZERO).await.unwrap();
    assert_eq!(report.deleted_blobs, 0, "{report:?}");
    assert!(report.referenced_blobs >= 2, "{report:?}");

    // A replaced archive is garbage, but only after the grace period.
    registry.replace("s", "app", "1.0.0", chart_with_values("app", "1.0.0", "replicaCount: 5\n")).await.unwrap();
    let report = registry.collect_garbage(Duration::from_secs(3600)).await.unwrap();
    assert_eq!(report.deleted_blobs, 0, "{report:?}");
    let report = registry.collect_garbage(Duration::ZERO).await.unwrap();
    assert!(report.deleted_blobs >= 1, "{report:?}");
    assert!(report.deleted_bytes >= first.len() as u64, "{report:?}");

    // What versions need stays, byte-exact; a second pass finds nothing.
    assert_eq!(download(registry, "s", "app", "2.0.0").await, chart("app", "2.0.0"));
    assert_eq!(download(registry, "s", "app", "1.0.0").await, chart_with_values("app", "1.0.0", "replicaCount: 5\n"));
    let report = registry.collect_garbage(Duration::ZERO).await.unwrap();
    assert_eq!(report.deleted_blobs, 0, "{report:?}");
}

fn audit_entry(path: &str) -> chartyard_core::wire::AuditEntry {
    chartyard_core::wire::AuditEntry {
        time: "2026-01-01T00:00:00.000Z".into(),
        user: "alice".into(),
        via: "password".into(),
        client: "127.0.0.1".into(),
        method: "POST".into(),
        route: "/api/v1/spaces/{space}/charts".into(),
        path: path.into(),
        status: 201,
        chart: None,
        version: None,
    }
}

/// The paths of a page of a space's audit log.
async fn audit_paths(registry: &Registry, space: &str, start: usize, limit: usize) -> (usize, Vec<String>) {
    let (total, entries) = registry.audit_page(space, start, limit).await.unwrap();
    (total, entries.into_iter().map(|e| e.path).collect())
}

pub async fn check_audit_log(registry: &TestRegistry) {
    // Nothing is recorded for a space that does not exist.
    assert!(!registry.append_audit("a", SystemTime::now(), &audit_entry("/none")).await.unwrap());
    assert!(matches!(registry.audit_page("a", 0, 10).await, Err(RegistryError::NotFound(_))));

    registry.create_space("a").await.unwrap();
    registry.create_space("b").await.unwrap();
    for path in ["/1", "/2", "/3", "/4"] {
        assert!(registry.append_audit("a", SystemTime::now(), &audit_entry(path)).await.unwrap());
    }
    assert!(registry.append_audit("b", SystemTime::now(), &audit_entry("/b")).await.unwrap());
    // Newest first, paged, each space its own.
    assert_eq!(audit_paths(registry, "a", 0, 10).await, (4, vec!["/4".into(), "/3".into(), "/2".into(), "/1".into()]));
    assert_eq!(audit_paths(registry, "a", 1, 2).await, (4, vec!["/3".into(), "/2".into()]));
    assert_eq!(audit_paths(registry, "a", 4, 2).await, (4, vec![]));
    assert_eq!(audit_paths(registry, "b", 0, 10).await, (1, vec!["/b".into()]));
    let (_, entries) = registry.audit_page("a", 0, 1).await.unwrap();
    assert_eq!(entries, vec![audit_entry("/4")]);

    // Garbage collection keeps the newest entries of each space, as many as configured.
    let trimming = registry.with_options(|o| o.audit_retention = 2);
    let report = trimming.collect_garbage(Duration::from_secs(3600)).await.unwrap();
    assert_eq!(report.deleted_audit_entries, 2, "{report:?}");
    assert_eq!(audit_paths(registry, "a", 0, 10).await, (2, vec!["/4".into(), "/3".into()]));
    assert_eq!(audit_paths(registry, "b", 0, 10).await, (1, vec!["/b".into()]));

    // A serving process trims the logs it writes to in its background work, gc or not.
    let serving = registry.with_options(|o| o.audit_retention = 3);
    for path in ["/5", "/6"] {
        assert!(serving.append_audit("a", SystemTime::now(), &audit_entry(path)).await.unwrap());
    }
    serving.maintain().await;
    assert_eq!(audit_paths(registry, "a", 0, 10).await, (3, vec!["/6".into(), "/5".into(), "/4".into()]));

    // The log goes with its space: a space made again starts with none.
    registry.delete_space("a").await.unwrap();
    let left: Vec<object_store::ObjectMeta> =
        registry.store().list(Some(&object_store::path::Path::from("audit/a"))).try_collect().await.unwrap();
    assert!(left.is_empty(), "{left:?}");
    registry.create_space("a").await.unwrap();
    assert_eq!(audit_paths(registry, "a", 0, 10).await, (0, vec![]));
    assert_eq!(audit_paths(registry, "b", 0, 10).await, (1, vec!["/b".into()]));
}

/// The versions a registry's index of a space lists, as `chart/version`.
async fn indexed(registry: &Registry, space: &str) -> Vec<String> {
    let mut listed: Vec<String> = registry
        .index_entries(space)
        .await
        .unwrap()
        .into_iter()
        .flat_map(|(chart, versions)| {
            versions.into_iter().map(move |v| format!("{chart}/{}", v["version"].as_str().unwrap()))
        })
        .collect();
    listed.sort();
    listed
}

/// The numbers of a space's change log entries, from the store's own listing.
async fn log_numbers(registry: &TestRegistry, space: &str) -> Vec<u64> {
    let prefix = object_store::path::Path::from(format!("log/{space}"));
    let metas: Vec<_> = registry.store().list(Some(&prefix)).try_collect().await.unwrap();
    let mut numbers: Vec<u64> = metas
        .iter()
        .filter_map(|meta| chartyard_storage::keys::parse_log_entry(&meta.location).map(|(_, _, seq)| seq))
        .collect();
    numbers.sort();
    numbers
}

/// Registries sharing one store, as replicas do: each sees the others' writes through the
/// change log, races have one winner, and a change whose announcement was lost is found by
/// a reconcile.
pub async fn check_replicas(registry: &TestRegistry) {
    let (a, b) = (&registry.replica(), registry.replica());
    a.upload("s", chart("web", "1.0.0")).await.unwrap();
    assert_eq!(indexed(&b, "s").await, ["web/1.0.0"]);

    // uploads, replaces and deletes on one are seen by the other's index and downloads
    a.upload("s", chart("web", "1.1.0")).await.unwrap();
    a.upload("s", chart("db", "0.1.0")).await.unwrap();
    assert_eq!(indexed(&b, "s").await, ["db/0.1.0", "web/1.0.0", "web/1.1.0"]);
    let replacement = chart_with_values("web", "1.1.0", "replicaCount: 3\n");
    a.replace("s", "web", "1.1.0", replacement.clone()).await.unwrap();
    let downloaded = collect(b.open_archive("s", "web", "1.1.0").await.unwrap().body).await;
    assert_eq!(downloaded, replacement.to_vec(), "the replica serves the replaced archive");
    a.delete_version("s", "web", "1.0.0").await.unwrap();
    assert_eq!(indexed(&b, "s").await, ["db/0.1.0", "web/1.1.0"]);
    assert_eq!(a.space_index("s").await.unwrap().etag, b.space_index("s").await.unwrap().etag);

    // concurrent uploads through both: every one is in both indexes, and the log stays
    // gap-free (entries may hold several changes)
    let uploads = (0..20).map(|n| {
        let target = if n % 2 == 0 { a } else { &b };
        target.upload("s", chart("many", &format!("1.0.{n}")))
    });
    for result in futures::future::join_all(uploads).await {
        result.unwrap();
    }
    let both = indexed(&b, "s").await;
    assert_eq!(both.iter().filter(|v| v.starts_with("many/")).count(), 20, "{both:?}");
    let c = registry.replica();
    assert_eq!(indexed(a, "s").await, indexed(&c, "s").await);
    let numbers = log_numbers(registry, "s").await;
    assert_eq!(numbers, (1..=numbers.len() as u64).collect::<Vec<_>>(), "the log has no gaps");

    // one version raced through both: exactly one wins
    let raced = futures::future::join(
        a.upload("s", chart_with_values("race", "1.0.0", "from: a\n")),
        b.upload("s", chart_with_values("race", "1.0.0", "from: b\n")),
    )
    .await;
    let wins = [raced.0.is_ok(), raced.1.is_ok()];
    assert_eq!(wins.iter().filter(|w| **w).count(), 1, "{raced:?}");
    let lost = if wins[0] { &raced.1 } else { &raced.0 };
    assert!(matches!(lost, Err(RegistryError::AlreadyExists(_))), "{lost:?}");

    // an upload and a delete of one version racing through both: every index ends with
    // what the store holds
    for round in 0..8 {
        let version = format!("2.0.{round}");
        let (upload, delete) =
            futures::future::join(a.upload("s", chart("flip", &version)), b.delete_version("s", "flip", &version))
                .await;
        upload.unwrap();
        let stored = a.version("s", "flip", &version).await.is_ok();
        assert_eq!(stored, delete.is_err(), "round {round}: {delete:?}");
        for registry in [a, &b, &c] {
            let held = indexed(registry, "s").await.contains(&format!("flip/{version}"));
            assert_eq!(held, stored, "round {round}");
        }
    }

    // a record committed by a writer that stopped before announcing it: found by a
    // reconcile, which announces it to every replica
    let stored = a.version("s", "db", "0.1.0").await.unwrap();
    let mut planted = (*stored).clone();
    planted.metadata.version = "0.2.0".into();
    let record_key = registry
        .store()
        .list(Some(&object_store::path::Path::from("charts/s")))
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .find(|meta| meta.location.as_ref().ends_with("/db/0.1.0.json"))
        .unwrap()
        .location;
    let planted_key = object_store::path::Path::from(record_key.as_ref().replace("0.1.0.json", "0.2.0.json"));
    registry.store().put(&planted_key, serde_json::to_vec(&planted).unwrap().into()).await.unwrap();
    assert!(!indexed(&b, "s").await.contains(&"db/0.2.0".to_string()), "unannounced, so not seen yet");
    assert_eq!(b.reconcile("s").await.unwrap(), 1);
    assert_eq!(b.reconcile("s").await.unwrap(), 0, "a reconciled index agrees with the records");
    assert!(indexed(&b, "s").await.contains(&"db/0.2.0".to_string()));
    assert!(indexed(&c, "s").await.contains(&"db/0.2.0".to_string()), "announced to the others");

    // a checkpoint: a new replica reads it (and the log after it), not the records
    a.checkpoint_all().await;
    a.upload("s", chart("late", "1.0.0")).await.unwrap();
    let d = registry.replica();
    let before = d.storage_requests();
    let from_checkpoint = indexed(&d, "s").await;
    let cost = d.storage_requests();
    assert_eq!(from_checkpoint, indexed(a, "s").await);
    // the marker, the checkpoint, one log listing, the one entry after it, and the record
    // it names; no listing of the records
    assert_eq!((cost.get - before.get, cost.list - before.list), (4, 1), "{cost:?}");

    // deleting the space on one: the others' indexes end, and an upload there goes into
    // the space created anew
    a.delete_space("s").await.unwrap();
    assert!(indexed(&b, "s").await.is_empty());
    b.upload("s", chart("fresh", "1.0.0")).await.unwrap();
    let listed: Vec<String> = a.space_versions("s").await.unwrap().into_iter().map(|v| v.chart).collect();
    assert_eq!(listed, ["fresh"]);
    assert_eq!(indexed(&b, "s").await, ["fresh/1.0.0"]);
    assert_eq!(indexed(a, "s").await, ["fresh/1.0.0"]);
    assert_eq!(indexed(&c, "s").await, ["fresh/1.0.0"]);
}

pub async fn check_policies(registry: &TestRegistry) {
    use chartyard_core::policy::{Quota, SpacePolicy};
    let (a, b) = (&registry.replica(), registry.replica());
    assert!(matches!(a.policy("p").await, Err(RegistryError::NotFound(_))), "no space, no policy");
    a.create_space("p").await.unwrap();
    assert_eq!(*a.policy("p").await.unwrap(), SpacePolicy::default());

    // a round trip, seen by another registry on the same store
    let policy = SpacePolicy {
        immutable: Some(true),
        quota: Some(Quota { maxbytes: None, maxversions: Some(2) }),
        ..SpacePolicy::default()
    };
    a.set_policy("p", policy.clone()).await.unwrap();
    assert_eq!(*a.policy("p").await.unwrap(), policy);
    assert_eq!(*b.policy("p").await.unwrap(), policy);
    let bad = SpacePolicy { quota: Some(Quota { maxbytes: Some(0), maxversions: None }), ..SpacePolicy::default() };
    assert!(matches!(a.set_policy("p", bad).await, Err(RegistryError::Invalid(_))));

    // immutable: no overwrite, replace, rewrite or delete but by a global admin
    a.upload("p", chart("web", "1.0.0")).await.unwrap();
    let replacement = chart_with_values("web", "1.0.0", "replicaCount: 3\n");
    let refused = |r: Result<(), RegistryError>| assert!(matches!(r, Err(RegistryError::Refused(_))), "{r:?}");
    refused(b.replace("p", "web", "1.0.0", replacement.clone()).await.map(|_| ()));
    let overwrite = chartyard_storage::UploadOptions { overwrite: true, ..Default::default() };
    refused(b.upload_with("p", replacement, overwrite).await.map(|_| ()));
    refused(b.update_values("p", "web", "1.0.0", json!({"a": 1})).await.map(|_| ()));
    let not_admin = chartyard_storage::DeleteOptions { by_global_admin: false };
    refused(b.delete_version_as("p", "web", "1.0.0", not_admin).await);
    refused(b.delete_chart_as("p", "web", not_admin).await);
    let stored = collect(b.open_archive("p", "web", "1.0.0").await.unwrap().body).await;
    assert_eq!(stored, chart("web", "1.0.0").to_vec(), "the refused writes stored nothing");

    // quota: a third version is refused before it is stored, on either registry
    b.upload("p", chart("web", "1.1.0")).await.unwrap();
    for registry in [a, &b] {
        let refused = registry.upload("p", chart("web", "1.2.0")).await.unwrap_err();
        assert!(matches!(&refused, RegistryError::OverQuota(m) if m.contains("2 versions")), "{refused:?}");
    }
    assert!(matches!(a.version("p", "web", "1.2.0").await, Err(RegistryError::NotFound(_))));

    // deleted with the space: a new space of the name starts without a policy
    a.delete_space("p").await.unwrap();
    a.create_space("p").await.unwrap();
    assert_eq!(*b.policy("p").await.unwrap(), SpacePolicy::default());
    a.upload("p", chart("web", "1.2.0")).await.unwrap();
    let listed: Vec<_> = registry.store().list(Some(&"policies".into())).try_collect().await.unwrap();
    assert!(listed.is_empty(), "{listed:?}");

    // a policy left by a deletion that stopped half-way is collected; the live one stays
    a.set_policy("p", policy.clone()).await.unwrap();
    let stale = object_store::path::Path::from("policies/p/0123456789abcdef.json");
    registry.store().put(&stale, Bytes::from_static(b"{}").into()).await.unwrap();
    let report = a.collect_garbage(Duration::ZERO).await.unwrap();
    assert_eq!(report.deleted_stale_policies, 1);
    let listed: Vec<_> = registry.store().list(Some(&"policies".into())).try_collect().await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(*b.policy("p").await.unwrap(), policy);
}
