//! What the storage tests share: chart archives and registries on each backend.

use std::io::Write;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chartyard_storage::backend::Backend;
use chartyard_storage::{Registry, RegistryOptions};
use futures::TryStreamExt;
use object_store::ObjectStore;

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

pub use chartyard_testkit::{TempDir, digest_of, sha256};

/// A stream of one chunk, as the HTTP layer hands bodies to the registry.
pub fn stream(data: &[u8]) -> chartyard_storage::oci::ByteStream {
    Box::pin(futures::stream::iter([Ok(Bytes::copy_from_slice(data))]))
}

/// A whole stream's bytes.
pub async fn collect<E: std::fmt::Debug>(body: futures::stream::BoxStream<'static, Result<Bytes, E>>) -> Vec<u8> {
    let chunks: Vec<Bytes> = body.try_collect().await.unwrap();
    chunks.concat()
}

/// A registry on a backend opened the way the binary opens it, with whatever the backend
/// needs kept alive beside it.
pub struct TestRegistry {
    registry: Registry,
    store: Arc<dyn ObjectStore>,
    options: RegistryOptions,
    _dir: Option<TempDir>,
    _moto: Option<Moto>,
}

impl TestRegistry {
    /// Another registry on the same store, as another replica would be, whose index is
    /// followed to the change log's end on every read (no freshness window).
    pub fn replica(&self) -> Registry {
        let options = RegistryOptions { index_freshness: Duration::ZERO, ..self.options.clone() };
        Registry::new(self.store.clone(), options)
    }

    /// Another registry on the same store with other options.
    pub fn with_options(&self, change: impl FnOnce(&mut RegistryOptions)) -> Registry {
        let mut options = self.options.clone();
        change(&mut options);
        Registry::new(self.store.clone(), options)
    }

    /// The store itself, to plant what a crashed writer would leave.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }
}

impl Deref for TestRegistry {
    type Target = Registry;

    fn deref(&self) -> &Registry {
        &self.registry
    }
}

fn open(backend: &Backend, dir: Option<TempDir>, moto: Option<Moto>) -> Option<TestRegistry> {
    let opened = backend.open().unwrap();
    let options = RegistryOptions {
        conditional_updates: opened.conditional_updates,
        deletes_report_missing: opened.deletes_report_missing,
        ..RegistryOptions::default()
    };
    let registry = Registry::new(opened.store.clone(), options.clone());
    Some(TestRegistry { registry, store: opened.store, options, _dir: dir, _moto: moto })
}

/// `Backend::InMemory`.
pub fn inmemory() -> Option<TestRegistry> {
    open(&Backend::InMemory, None, None)
}

/// `Backend::Filesystem` in a fresh temporary directory.
pub fn filesystem() -> Option<TestRegistry> {
    let dir = TempDir::new("filesystem");
    let backend = Backend::Filesystem { root: dir.path.clone(), fsync: false };
    open(&backend, Some(dir), None)
}

/// `Backend::S3` on a bucket of a moto server of its own (`.tools/venv/bin/moto_server`,
/// from scripts/install-test-tools.sh), opened as the binary opens it: after the probe of
/// the bucket's conditional writes. `None` where moto is not installed, outside CI.
pub fn s3() -> Option<TestRegistry> {
    let moto = Moto::start()?;
    moto.request("PUT", "/charts");
    let backend = Backend::S3(chartyard_storage::s3::S3Options {
        bucket: "charts".into(),
        region: Some("us-east-1".into()),
        endpoint: Some(moto.endpoint()),
        access_key: Some("AKIDCHARTYARDTEST".into()),
        secret_key: Some("chartyard-test-secret".into()),
        root_directory: "registry".into(),
        secure: Some(false),
        force_path_style: Some(true),
        ..Default::default()
    });
    open(&backend, None, Some(moto))
}

/// A moto S3 server on a loopback port, killed when dropped.
pub struct Moto {
    child: std::process::Child,
    port: u16,
}

impl Moto {
    fn start() -> Option<Self> {
        let binary = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin/moto_server");
        if !binary.exists() {
            assert!(std::env::var("CI").is_err(), "moto_server is not installed; run scripts/install-test-tools.sh");
            eprintln!("moto_server not installed; skipping");
            return None;
        }
        // moto takes a port number: take a free one from the system.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new(binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start moto_server");
        let moto = Self { child, port };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "moto_server did not start on port {port}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Some(moto)
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One unsigned request (moto takes an unsigned `PUT /{bucket}`), asserting a 2xx
    /// status. Plain HTTP/1.1 over a socket: these tests run inside an async runtime,
    /// where a blocking HTTP client may not be used.
    fn request(&self, method: &str, path: &str) {
        use std::io::Read;
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        );
        stream.write_all(head.as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 2") || answer.starts_with("HTTP/1.0 2"), "{method} {path}: {answer}");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
