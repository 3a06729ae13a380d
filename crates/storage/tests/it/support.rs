//! What the storage tests share: chart archives and registries on each backend.

use std::io::Write;
use std::ops::Deref;
use std::path::PathBuf;

use bytes::Bytes;
use chartyard_storage::backend::Backend;
use chartyard_storage::{Registry, RegistryOptions};
use futures::TryStreamExt;

/// A small valid chart archive; `values` is its values.yaml.
pub fn chart_with_values(name: &str, version: &str, values: &str) -> Bytes {
    let mut builder = tar::Builder::new(Vec::new());
    let files = [
        (
            format!("{name}/Chart.yaml"),
            format!("apiVersion: v2\nname: {name}\nversion: {version}\ndescription: {name}\n"),
        ),
        (format!("{name}/values.yaml"), values.to_string()),
    ];
    for (path, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        builder.append_data(&mut header, path, data.as_bytes()).unwrap();
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(&builder.into_inner().unwrap()).unwrap();
    encoder.finish().unwrap().into()
}

pub fn chart(name: &str, version: &str) -> Bytes {
    chart_with_values(name, version, "replicaCount: 1\n")
}

/// sha256 hex of bytes.
pub fn sha256(data: &[u8]) -> String {
    chartyard_core::archive::sha256_hex(data)
}

/// `sha256:{hex}`.
pub fn digest_of(data: &[u8]) -> String {
    format!("sha256:{}", sha256(data))
}

/// A stream of one chunk, as the HTTP layer hands bodies to the registry.
pub fn stream(data: &[u8]) -> chartyard_storage::oci::ByteStream {
    Box::pin(futures::stream::iter([Ok(Bytes::copy_from_slice(data))]))
}

/// A whole stream's bytes.
pub async fn collect<E: std::fmt::Debug>(body: futures::stream::BoxStream<'static, Result<Bytes, E>>) -> Vec<u8> {
    let chunks: Vec<Bytes> = body.try_collect().await.unwrap();
    chunks.concat()
}

/// A directory removed when dropped.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(label: &str) -> Self {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("chartyard-storage-test-{}-{label}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A registry on a backend opened the way the binary opens it, with whatever the backend
/// needs kept alive beside it.
pub struct TestRegistry {
    registry: Registry,
    _dir: Option<TempDir>,
}

impl Deref for TestRegistry {
    type Target = Registry;

    fn deref(&self) -> &Registry {
        &self.registry
    }
}

fn open(backend: &Backend, dir: Option<TempDir>) -> TestRegistry {
    let opened = backend.open().unwrap();
    let options = RegistryOptions {
        conditional_updates: opened.conditional_updates,
        deletes_report_missing: opened.deletes_report_missing,
        ..RegistryOptions::default()
    };
    TestRegistry { registry: Registry::new(opened.store, options), _dir: dir }
}

/// `Backend::InMemory`.
pub fn inmemory() -> TestRegistry {
    open(&Backend::InMemory, None)
}

/// `Backend::Filesystem` in a fresh temporary directory.
pub fn filesystem() -> TestRegistry {
    let dir = TempDir::new("filesystem");
    let backend = Backend::Filesystem { root: dir.path.clone(), fsync: false };
    open(&backend, Some(dir))
}
