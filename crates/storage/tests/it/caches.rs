//! What the registry keeps in memory stays bounded: caches are limited by bytes, reads of
//! spaces that do not exist leave nothing behind, and deletes drop what they removed.

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use chartyard_storage::{CacheStats, Registry, RegistryOptions};
use object_store::memory::InMemory;

fn chart(name: &str, version: &str) -> Bytes {
    let mut builder = tar::Builder::new(Vec::new());
    let files = [
        (
            format!("{name}/Chart.yaml"),
            format!("apiVersion: v2\nname: {name}\nversion: {version}\ndescription: {}\n", "d".repeat(300)),
        ),
        (format!("{name}/values.yaml"), "replicaCount: 1\n".to_string()),
    ];
    for (path, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, path, data.as_bytes()).unwrap();
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(&builder.into_inner().unwrap()).unwrap();
    encoder.finish().unwrap().into()
}

fn registry(cache_bytes: usize) -> Registry {
    let options = RegistryOptions { conditional_updates: true, cache_bytes, ..RegistryOptions::default() };
    Registry::new(Arc::new(InMemory::new()), options)
}

const EMPTY: CacheStats = CacheStats { records: 0, record_bytes: 0, indexes: 0, index_bytes: 0 };

#[tokio::test]
async fn reading_spaces_that_do_not_exist_holds_nothing() {
    let registry = registry(chartyard_storage::DEFAULT_CACHE_BYTES);
    registry.upload("real", chart("app", "1.0.0")).await.unwrap();
    registry.space_index("real").await.unwrap();
    let before = registry.cache_stats();
    assert_eq!(before.indexes, 1);
    for i in 0..10_000 {
        let space = format!("missing-{i}");
        // A repository nobody uploaded to: empty, and nothing created or cached for it.
        assert!(registry.index_entries(&space).await.unwrap().is_empty());
        let yaml = registry.space_index(&space).await.unwrap().yaml.clone();
        assert!(!String::from_utf8_lossy(&yaml).contains("name: app"));
        assert!(registry.chart_index_entries(&space, "app").await.is_err());
        assert!(registry.space_versions(&space).await.is_err());
    }
    assert_eq!(registry.cache_stats(), before);
    assert_eq!(registry.list_spaces().await.unwrap(), ["real"]);
}

#[tokio::test]
async fn deleting_spaces_and_versions_drops_what_they_held() {
    let registry = registry(chartyard_storage::DEFAULT_CACHE_BYTES);
    for round in 0..300 {
        let space = format!("s{round}");
        registry.upload(&space, chart("app", "1.0.0")).await.unwrap();
        registry.upload(&space, chart("app", "1.1.0")).await.unwrap();
        assert_eq!(registry.index_entries(&space).await.unwrap()[0].1.len(), 2);
        assert_eq!(registry.space_versions(&space).await.unwrap().len(), 2);
        registry.delete_space(&space).await.unwrap();
        assert_eq!(registry.cache_stats(), EMPTY, "round {round}");
    }
    registry.upload("s", chart("app", "1.0.0")).await.unwrap();
    registry.upload("s", chart("app", "2.0.0")).await.unwrap();
    registry.space_index("s").await.unwrap();
    let both = registry.cache_stats();
    assert_eq!(both.records, 2);
    registry.delete_version("s", "app", "2.0.0").await.unwrap();
    let one = registry.cache_stats();
    assert_eq!(one.records, 1);
    assert!(one.index_bytes < both.index_bytes, "{one:?} {both:?}");
    registry.delete_chart("s", "app").await.unwrap();
    assert_eq!(registry.cache_stats().records, 0);
}

#[tokio::test]
async fn caches_stay_within_their_budget_and_evicted_indexes_come_back() {
    const BUDGET: usize = 64 * 1024;
    let registry = registry(BUDGET);
    for i in 0..100 {
        let space = format!("s{i}");
        for v in 0..5 {
            registry.upload(&space, chart("app", &format!("1.{v}.0"))).await.unwrap();
        }
        registry.space_index(&space).await.unwrap();
        registry.space_versions(&space).await.unwrap();
        let stats = registry.cache_stats();
        assert!(stats.record_bytes <= BUDGET / 2 && stats.index_bytes <= BUDGET / 2, "{stats:?}");
    }
    let stats = registry.cache_stats();
    assert!(stats.indexes < 100 && stats.records < 500, "something was evicted: {stats:?}");
    assert!(stats.indexes > 0 && stats.records > 0, "and something kept: {stats:?}");
    // The first spaces' indexes were evicted; they are rebuilt whole from their records.
    for i in 0..100 {
        let entries = registry.index_entries(&format!("s{i}")).await.unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].1.len(), 5, "s{i}");
    }
    let yaml = registry.space_index("s0").await.unwrap().yaml.clone();
    assert_eq!(String::from_utf8_lossy(&yaml).matches("- apiVersion: v2").count(), 5);
}
