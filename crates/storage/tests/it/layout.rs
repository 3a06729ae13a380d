//! The key layout the registry writes (`keys.rs`), as a snapshot (`insta`): the keys in
//! the store after a scripted set of operations, with the random parts (space generations,
//! upload ids) redacted. A layout change shows as a diff to review, since stores written
//! by earlier releases must stay readable.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chartyard_storage::oci::ChunkRange;
use chartyard_storage::{Registry, RegistryOptions};
use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::memory::InMemory;
use serde_json::json;

use crate::support::{chart, digest_of, stream};

/// Every key in the store, sorted, one a line, with generations and upload ids redacted.
async fn keys(store: &InMemory) -> String {
    let objects: Vec<object_store::ObjectMeta> = store.list(None).try_collect().await.unwrap();
    let mut keys: Vec<String> = objects
        .iter()
        .map(|meta| {
            let mut parts: Vec<String> = meta.location.parts().map(|p| p.as_ref().to_string()).collect();
            match parts[0].as_str() {
                "charts" | "oci" | "log" if parts.len() > 2 => parts[2] = "[generation]".into(),
                "checkpoints" | "policies" if parts.len() > 2 => parts[2] = "[generation].json".into(),
                "audit" if parts.len() > 3 => {
                    parts[2] = "[generation]".into();
                    parts[3] = "[inverted-time]-[random].json".into();
                }
                "uploads" if parts.len() > 1 => parts[1] = "[upload]".into(),
                _ => {}
            }
            parts.join("/")
        })
        .collect();
    keys.sort();
    keys.join("\n")
}

#[tokio::test]
async fn key_layout_after_a_scripted_set_of_operations() {
    let store = Arc::new(InMemory::new());
    let options = RegistryOptions { conditional_updates: true, ..RegistryOptions::default() };
    let registry = Registry::new(store.clone(), options);

    registry.create_space("shop").await.unwrap();
    for (name, version) in [("web", "1.0.0"), ("web", "1.1.0"), ("db", "2.0.0")] {
        registry.upload("shop", chart(name, version)).await.unwrap();
    }
    registry.update_values("shop", "web", "1.0.0", json!({"replicaCount": 3})).await.unwrap();
    registry.delete_version("shop", "web", "1.1.0").await.unwrap();
    let policy = chartyard_core::policy::SpacePolicy { immutable: Some(false), ..Default::default() };
    registry.set_policy("shop", policy).await.unwrap();

    // an OCI artifact under a tag, and an upload left open after one chunk
    let (config, layer) = (b"{}".to_vec(), b"layer".to_vec());
    for blob in [&config, &layer] {
        registry.put_whole_blob("shop", "artifact", &digest_of(blob), stream(blob)).await.unwrap();
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.example.config.v1+json", "digest": digest_of(&config), "size": 2},
        "layers": [{"mediaType": "application/vnd.example.layer.v1.tar", "digest": digest_of(&layer), "size": 5}],
    }))
    .unwrap();
    registry
        .put_manifest(
            "shop",
            "artifact",
            "v1",
            Bytes::from(manifest),
            Some("application/vnd.oci.image.manifest.v1+json"),
            false,
        )
        .await
        .unwrap();
    let id = registry.start_upload("shop", "artifact").await.unwrap();
    let chunk = ChunkRange { start: Some(0), len: Some(4) };
    registry.append_upload("shop", "artifact", &id, chunk, stream(b"part")).await.unwrap();

    // an audit entry
    let entry = chartyard_core::wire::AuditEntry {
        time: "2026-01-01T00:00:00.000Z".into(),
        user: "alice".into(),
        via: "password".into(),
        client: "127.0.0.1".into(),
        method: "DELETE".into(),
        route: "/api/v1/spaces/{space}/charts/{chart}/versions/{version}".into(),
        path: "/api/v1/spaces/shop/charts/web/versions/1.1.0".into(),
        status: 204,
        chart: Some("web".into()),
        version: Some("1.1.0".into()),
    };
    registry.append_audit("shop", std::time::SystemTime::now(), &entry).await.unwrap();

    // a space made and deleted again, with its audit log
    registry.upload("gone", chart("app", "1.0.0")).await.unwrap();
    registry.append_audit("gone", std::time::SystemTime::now(), &entry).await.unwrap();
    registry.set_policy("gone", chartyard_core::policy::SpacePolicy::default()).await.unwrap();
    registry.delete_space("gone").await.unwrap();

    insta::assert_snapshot!("key_layout_after_operations", keys(&store).await);

    // garbage collection removes what nothing refers to any more
    registry.collect_garbage(Duration::ZERO).await.unwrap();
    insta::assert_snapshot!("key_layout_after_gc", keys(&store).await);
}
