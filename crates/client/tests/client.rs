//! `chartyard-client` against a real chartyard server, run as a process (this crate cannot
//! depend on the server crates): every `Client` method once, and the typed errors.
//! Token methods run against a server with access control (an htpasswd file of
//! [`USERS`]).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Once, mpsc};
use std::time::Duration;

use chartyard_client::{Client, ComposePreview, Error, NewToken, Page, Role, Token, reqwest};
use chartyard_core::wire::{ListResponse, Metadata};
use chartyard_testkit::TempDir;
use serde_json::{Value, json};

const SEED_TEST1: &[u8] = include_bytes!("../../chartyard/tests/fixtures/test1.tgz");
const SEED_TEST2: &[u8] = include_bytes!("../../chartyard/tests/fixtures/test2.tgz");

// ---- the server process ----

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `chartyard` binary, built once per test run: `cargo test -p chartyard-client`
/// alone does not build it.
fn server_binary() -> PathBuf {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let mut build = Command::new(env!("CARGO"));
        build.args(["build", "-p", "chartyard", "--bin", "chartyard"]).current_dir(workspace());
        // Cargo gives this test the variables of this package; a nested build that sees
        // them thinks the server's crates changed and compiles them again.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            let set_for_tests = ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_CRATE_", "CARGO_BIN_"]
                .iter()
                .any(|prefix| name.starts_with(prefix))
                || ["CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR", "CARGO_RUSTC_CURRENT_DIR", "OUT_DIR"]
                    .contains(&name.as_ref());
            if set_for_tests {
                build.env_remove(name.as_ref());
            }
        }
        let status = build.status().expect("run cargo build");
        assert!(status.success(), "cargo build -p chartyard --bin chartyard failed");
    });
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace().join(dir),
        None => workspace().join("target"),
    };
    let binary = target.join("debug").join(format!("chartyard{}", std::env::consts::EXE_SUFFIX));
    assert!(binary.exists(), "{} was not built", binary.display());
    binary
}

/// `chartyard serve` on a loopback port with its own data directory, killed when dropped.
struct Server {
    child: Child,
    base: String,
    _data: TempDir,
}

/// The users of [`Server::start_with_auth`]: name and password.
const USERS: &[(&str, &str)] = &[("admin", "admin-pw"), ("alice", "alice-pw"), ("bob", "bob-pw")];

impl Server {
    fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server with access control: [`USERS`] in an htpasswd file, `admin` a global
    /// admin, alice writing and bob reading `team-*`.
    fn start_with_auth() -> (Self, TempDir) {
        let config = TempDir::new("config");
        let htpasswd: String = USERS
            .iter()
            .map(|(user, password)| chartyard_testkit::htpasswd_line(Path::new(&server_binary()), user, password))
            .collect();
        let htpasswd_path = config.path.join("htpasswd");
        std::fs::write(&htpasswd_path, htpasswd).unwrap();
        let yaml = format!(
            "manager:\n  parameters:\n    storagedriver: filesystem\nauth:\n  htpasswd: {}\n  admins: [admin]\n  \
             rules:\n    - spaces: [\"team-*\"]\n      users: {{alice: write, bob: read}}\n  faileddelay: 1ms\n  \
             maxfailures: 10000\n",
            htpasswd_path.display()
        );
        let config_path = config.path.join("config.yaml");
        std::fs::write(&config_path, yaml).unwrap();
        let server = Self::start_with(&[std::ffi::OsStr::new("--config"), config_path.as_os_str()]);
        (server, config)
    }

    fn start_with(extra_args: &[&std::ffi::OsStr]) -> Self {
        let data = TempDir::new("data");
        let mut child = Command::new(server_binary())
            .args(["serve", "--listen", "127.0.0.1:0", "--root-directory"])
            .arg(&data.path)
            .args(extra_args)
            .env("CHARTYARD_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chartyard");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Keep draining so the server never blocks on a full pipe.
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or_default().to_string());
                }
            }
        });
        let base = rx.recv_timeout(Duration::from_secs(30)).expect("server did not report its address");
        Self { child, base, _data: data }
    }

    fn client(&self) -> Client {
        Client::new(&self.base).unwrap()
    }

    /// A client signed in as a user of [`USERS`].
    fn user(&self, user: &str) -> Client {
        let password = USERS.iter().find(|(name, _)| *name == user).expect("a test user").1;
        Client::builder(&self.base).basic_auth(user, password).build().unwrap()
    }

    /// A raw GET, to compare the client's view with what the server says.
    async fn get(&self, path: &str) -> (u16, bytes::Bytes) {
        let response = reqwest::get(format!("{}{path}", self.base)).await.unwrap();
        (response.status().as_u16(), response.bytes().await.unwrap())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- fake servers, for what a real one does not do ----

/// A loopback server answering every request with `response` (a whole HTTP response, or
/// `None` to hold the connection open without answering). Records the request heads.
fn fake_server(response: Option<&'static str>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let log = log.clone();
            std::thread::spawn(move || {
                let _ = fake_answer(stream, response, &log);
            });
        }
    });
    (base, requests)
}

fn fake_answer(stream: TcpStream, response: Option<&str>, log: &Mutex<Vec<String>>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut head = String::new();
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            content_length = value.trim().parse().unwrap_or(0);
        }
        head.push_str(&line);
    }
    let mut body = vec![0; content_length];
    reader.read_exact(&mut body)?;
    log.lock().unwrap().push(head);
    let mut stream = stream;
    match response {
        Some(response) => stream.write_all(response.as_bytes())?,
        None => std::thread::sleep(Duration::from_secs(10)),
    }
    stream.flush()
}

fn api_error(error: Error) -> (u16, String, String) {
    match error {
        Error::Api { status, message, reason } => (status, message, reason),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// A provenance file for an archive, shaped as `helm package --sign` writes it.
fn provenance(name: &str, version: &str, archive: &[u8]) -> String {
    format!(
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\napiVersion: v1\nname: {name}\nversion: {version}\n\n\
         ...\nfiles:\n  {name}-{version}.tgz: sha256:{}\n\
         -----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n",
        chartyard_core::archive::sha256_hex(archive)
    )
}

/// A config composing a new chart from `library/test/1.0.0`.
fn composition(space: &str, chart: &str, version: &str, replicas: u64) -> Value {
    json!({
        "save": {"chart": chart, "version": version, "description": format!("{chart} composed from test")},
        "configs": {
            "package": {"independent": true, "space": space, "chart": "test", "version": "1.0.0"},
            "_config": {"replicaCount": replicas, "extra": {"composed": true}}
        }
    })
}

fn versions_of(list: &ListResponse<Metadata>) -> Vec<String> {
    list.items.iter().map(|m| m.0.version.clone()).collect()
}

// ---- spaces ----

#[tokio::test]
async fn spaces_are_created_listed_in_pages_and_deleted() {
    let server = Server::start();
    let client = server.client();
    assert_eq!(client.base_url(), server.base);
    assert!(client.health().await.unwrap());

    for space in ["gamma", "alpha", "beta"] {
        let link = client.create_space(space).await.unwrap();
        assert_eq!((link.name.as_str(), link.link.as_str()), (space, format!("/api/v1/spaces/{space}").as_str()));
    }
    let all = client.list_spaces(Page::all()).await.unwrap();
    assert_eq!(all.items, ["alpha", "beta", "gamma"]);
    assert_eq!((all.metadata.total, all.metadata.items_length), (3, 3));
    let second = client.list_spaces(Page { start: 1, limit: 1 }).await.unwrap();
    assert_eq!(second.items, ["beta"]);
    assert_eq!((second.metadata.total, second.metadata.items_length), (3, 1));
    assert_eq!(client.list_spaces(Page::first()).await.unwrap().items, ["alpha", "beta", "gamma"]);
    let past_the_end = client.list_spaces(Page { start: 3, limit: 10 }).await.unwrap();
    assert!(past_the_end.items.is_empty());
    assert_eq!(past_the_end.metadata.total, 3);
    // The client sees what the server lists.
    let (status, raw) = server.get("/api/v1/spaces?start=0&limit=100").await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_slice::<Value>(&raw).unwrap(), serde_json::to_value(&all).unwrap());

    client.delete_space("beta").await.unwrap();
    assert_eq!(client.list_spaces(Page::all()).await.unwrap().items, ["alpha", "gamma"]);
    let (status, message, reason) = api_error(client.delete_space("beta").await.unwrap_err());
    assert_eq!((status, reason.as_str()), (404, "ReasonInternal"));
    assert!(message.contains("beta"), "{message}");
    let (status, _, _) = api_error(client.create_space("alpha").await.unwrap_err());
    assert_eq!(status, 409);
}

// ---- charts and versions ----

#[tokio::test]
async fn charts_are_uploaded_downloaded_replaced_and_deleted() {
    let server = Server::start();
    let client = server.client();

    // Uploading into a missing space creates it.
    let link = client.upload_chart("library", SEED_TEST1).await.unwrap();
    assert_eq!(
        (link.space.as_str(), link.chart.as_str(), link.version.as_str(), link.link.as_str()),
        ("library", "test", "1.0.0", "/api/v1/spaces/library/charts/test/versions/1.0.0")
    );
    assert_eq!(client.list_spaces(Page::all()).await.unwrap().items, ["library"]);
    let charts = client.list_charts("library", Page::all()).await.unwrap();
    assert_eq!(charts.items, ["test"]);
    assert_eq!(charts.metadata.total, 1);
    assert_eq!(client.list_versions("library", "test", Page::all()).await.unwrap().items, ["1.0.0"]);

    // The exact bytes, whole or streamed.
    assert_eq!(client.download_version("library", "test", "1.0.0").await.unwrap(), SEED_TEST1);
    let response = client.download_version_response("library", "test", "1.0.0").await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.content_length(), Some(SEED_TEST1.len() as u64));
    assert_eq!(response.bytes().await.unwrap(), SEED_TEST1);
    assert_eq!(client.version_values("library", "test", "1.0.0").await.unwrap()["cpu"]["requests"], "1000m");

    // Replacing: the new archive's bytes and values.
    let replaced = client.replace_version("library", "test", "1.0.0", SEED_TEST2.to_vec()).await.unwrap();
    assert_eq!(replaced, link);
    assert_eq!(client.download_version("library", "test", "1.0.0").await.unwrap(), SEED_TEST2);
    let values = client.version_values("library", "test", "1.0.0").await.unwrap();
    assert_eq!(
        (values["cpu"]["requests"].clone(), values["memory"]["limits"].clone()),
        (json!("2000m"), json!("256Mi"))
    );
    let (status, message, reason) =
        api_error(client.replace_version("library", "test", "2.0.0", SEED_TEST1).await.unwrap_err());
    assert_eq!((status, reason.as_str()), (400, "ReasonRequest"), "{message}");
    assert!(message.contains("2.0.0") && message.contains("1.0.0"), "{message}");
    let (status, _, _) = api_error(client.download_version("library", "test", "2.0.0").await.unwrap_err());
    assert_eq!(status, 404);

    // Deleting the only version removes the chart.
    client.delete_version("library", "test", "1.0.0").await.unwrap();
    let (status, _, _) = api_error(client.list_versions("library", "test", Page::all()).await.unwrap_err());
    assert_eq!(status, 404);
    assert!(client.list_charts("library", Page::all()).await.unwrap().items.is_empty());
    let (status, _, _) = api_error(client.delete_version("library", "test", "1.0.0").await.unwrap_err());
    assert_eq!(status, 404);

    client.upload_chart("library", bytes::Bytes::from_static(SEED_TEST1)).await.unwrap();
    client.delete_chart("library", "test").await.unwrap();
    assert!(client.list_charts("library", Page::all()).await.unwrap().items.is_empty());
    let (status, _, _) = api_error(client.delete_chart("library", "test").await.unwrap_err());
    assert_eq!(status, 404);
    let (status, _) = server.get("/api/v1/spaces/library/charts/test/versions/1.0.0").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn compositions_are_previewed_then_stored() {
    let server = Server::start();
    let client = server.client();
    client.upload_chart("library", SEED_TEST1).await.unwrap();
    let config = composition("library", "stack", "2.0.0", 7);

    let preview: ComposePreview = client.preview_composition("library", &config).await.unwrap();
    let metadata = &preview.metadata.0;
    assert_eq!((metadata.name.as_str(), metadata.version.as_str()), ("stack", "2.0.0"));
    assert_eq!(metadata.description, "stack composed from test");
    assert_eq!(
        preview.values,
        json!({"replicaCount": 7, "extra": {"composed": true},
               "cpu": {"requests": "1000m", "limits": "1000m"}, "memory": {"requests": "128Mi", "limits": "128Mi"}})
    );
    assert_eq!(client.list_charts("library", Page::all()).await.unwrap().items, ["test"], "a preview stores nothing");

    let link = client.compose_chart("library", &config).await.unwrap();
    assert_eq!(
        (link.space.as_str(), link.chart.as_str(), link.version.as_str(), link.link.as_str()),
        ("library", "stack", "2.0.0", "/api/v1/spaces/library/charts/stack/versions/2.0.0")
    );
    assert_eq!(client.list_charts("library", Page::all()).await.unwrap().items, ["stack", "test"]);
    assert_eq!(client.version_metadata("library", "stack", "2.0.0").await.unwrap(), preview.metadata);
    assert_eq!(client.version_values("library", "stack", "2.0.0").await.unwrap(), preview.values);

    let (status, _, reason) = api_error(client.compose_chart("library", &config).await.unwrap_err());
    assert_eq!((status, reason.as_str()), (409, "ReasonInternal"));
    let (status, _, _) = api_error(client.preview_composition("nospace", &config).await.unwrap_err());
    assert_eq!(status, 404);
    let (status, message, reason) = api_error(client.compose_chart("library", &json!({"save": {}})).await.unwrap_err());
    assert_eq!((status, reason.as_str()), (400, "ReasonRequest"));
    assert!(message.contains("orchestration config is invalid"), "{message}");
}

// ---- metadata and values ----

#[tokio::test]
async fn metadata_and_values_are_read_and_updated() {
    let server = Server::start();
    let client = server.client();
    client.upload_chart("meta", SEED_TEST1).await.unwrap();
    // More versions and charts, composed from the seed chart; one carries build metadata,
    // which the client must escape in paths.
    for (chart, version) in [("test", "1.1.0"), ("test", "2.0.0-rc.1"), ("test", "1.0.0+build.5"), ("other", "0.1.0")] {
        client.compose_chart("meta", &composition("meta", chart, version, 2)).await.unwrap();
    }

    let versions = client.list_versions("meta", "test", Page::all()).await.unwrap();
    assert_eq!(versions.items, ["1.0.0", "1.0.0+build.5", "1.1.0", "2.0.0-rc.1"]);
    let built = client.version_metadata("meta", "test", "1.0.0+build.5").await.unwrap();
    assert_eq!(built.0.version, "1.0.0+build.5");
    let archive = client.download_version("meta", "test", "1.0.0+build.5").await.unwrap();
    assert_eq!(&archive[..2], [0x1f, 0x8b], "a gzipped archive");

    let chart = client.chart_metadata("meta", "test", Page::all()).await.unwrap();
    assert_eq!(versions_of(&chart), versions.items);
    let page = client.chart_metadata("meta", "test", Page { start: 1, limit: 2 }).await.unwrap();
    assert_eq!(versions_of(&page), ["1.0.0+build.5", "1.1.0"]);
    assert_eq!((page.metadata.total, page.metadata.items_length), (4, 2));
    let latest = client.chart_latest_metadata("meta", "test").await.unwrap();
    assert_eq!(latest.0.version, "1.1.0", "the highest stable version");
    let space = client.space_metadata("meta", Page::all()).await.unwrap();
    let named: Vec<(String, String)> = space.items.iter().map(|m| (m.0.name.clone(), m.0.version.clone())).collect();
    let expected: Vec<(String, String)> =
        [("other", "0.1.0"), ("test", "1.0.0"), ("test", "1.0.0+build.5"), ("test", "1.1.0"), ("test", "2.0.0-rc.1")]
            .iter()
            .map(|(c, v)| (c.to_string(), v.to_string()))
            .collect();
    assert_eq!(named, expected);
    let latest = client.space_latest_metadata("meta", Page::all()).await.unwrap();
    let named: Vec<(&str, &str)> = latest.items.iter().map(|m| (m.0.name.as_str(), m.0.version.as_str())).collect();
    assert_eq!(named, [("other", "0.1.0"), ("test", "1.1.0")]);
    let (status, raw) = server.get("/api/v1/spaces/meta/metadata/latest").await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_slice::<Value>(&raw).unwrap(), serde_json::to_value(&latest).unwrap());

    // Metadata.
    let metadata = client.version_metadata("meta", "test", "1.0.0").await.unwrap();
    assert_eq!(
        serde_json::to_value(&metadata).unwrap(),
        json!({"apiVersion": "v1", "name": "test", "version": "1.0.0", "description": "A chart for e2e testing"})
    );
    let wanted = json!({"apiVersion": "v1", "name": "test", "version": "1.0.0", "description": "updated by the client",
                        "appVersion": "7.0", "keywords": ["e2e", "seed"]});
    let updated = client.update_version_metadata("meta", "test", "1.0.0", &wanted).await.unwrap();
    assert_eq!(serde_json::to_value(&updated).unwrap(), wanted);
    assert_eq!(client.version_metadata("meta", "test", "1.0.0").await.unwrap(), updated);
    let (status, raw) = server.get("/api/v1/spaces/meta/charts/test/versions/1.0.0/manifests/metadata").await;
    assert_eq!((status, serde_json::from_slice::<Value>(&raw).unwrap()), (200, wanted.clone()));
    let renamed = json!({"name": "renamed", "version": "1.0.0"});
    let (status, message, reason) =
        api_error(client.update_version_metadata("meta", "test", "1.0.0", &renamed).await.unwrap_err());
    assert_eq!((status, reason.as_str()), (400, "ReasonRequest"));
    assert!(message.contains("renamed"), "{message}");

    // Values.
    let values = client.version_values("meta", "test", "1.0.0").await.unwrap();
    assert_eq!(
        values,
        json!({"replicaCount": 3, "cpu": {"requests": "1000m", "limits": "1000m"},
               "memory": {"requests": "128Mi", "limits": "128Mi"}})
    );
    let new_values = json!({"replicaCount": 9, "ingress": {"enabled": true, "hosts": ["a.example", "b.example"]}});
    assert_eq!(client.update_version_values("meta", "test", "1.0.0", &new_values).await.unwrap(), new_values);
    assert_eq!(client.version_values("meta", "test", "1.0.0").await.unwrap(), new_values);
    let (status, _, reason) =
        api_error(client.update_version_values("meta", "test", "1.0.0", &json!([1, 2])).await.unwrap_err());
    assert_eq!((status, reason.as_str()), (400, "ReasonRequest"));
    assert_eq!(client.version_values("meta", "test", "1.0.0").await.unwrap(), new_values);
    let (status, _, _) = api_error(client.version_values("meta", "test", "9.9.9").await.unwrap_err());
    assert_eq!(status, 404);
    let (status, message, _) = api_error(client.chart_latest_metadata("meta", "nochart").await.unwrap_err());
    assert_eq!(status, 404, "{message}");
}

// ---- ChartMuseum-style uploads and health ----

#[tokio::test]
async fn chartmuseum_uploads_with_and_without_provenance() {
    let server = Server::start();
    let client = server.client();
    assert!(client.health().await.unwrap());

    client.upload_with_provenance("cm", SEED_TEST1, None).await.unwrap();
    assert_eq!(client.list_versions("cm", "test", Page::all()).await.unwrap().items, ["1.0.0"]);
    assert_eq!(client.download_version("cm", "test", "1.0.0").await.unwrap(), SEED_TEST1);
    // ChartMuseum's error bodies ({"error": ...}) become API errors without a reason.
    let (status, message, reason) = api_error(client.upload_with_provenance("cm", SEED_TEST1, None).await.unwrap_err());
    assert_eq!((status, message.as_str(), reason.as_str()), (409, "file already exists", ""));
    let (status, _) = server.get("/cm/charts/test-1.0.0.tgz.prov").await;
    assert_eq!(status, 404);

    client.delete_version("cm", "test", "1.0.0").await.unwrap();
    let prov = provenance("test", "1.0.0", SEED_TEST2);
    client.upload_with_provenance("cm", SEED_TEST2, Some(prov.clone().into())).await.unwrap();
    assert_eq!(client.download_version("cm", "test", "1.0.0").await.unwrap(), SEED_TEST2);
    assert_eq!(server.get("/cm/charts/test-1.0.0.tgz.prov").await, (200, bytes::Bytes::from(prov)));

    // A provenance file for other bytes is refused.
    client.delete_version("cm", "test", "1.0.0").await.unwrap();
    let wrong = provenance("test", "1.0.0", SEED_TEST2);
    let (status, message, _) =
        api_error(client.upload_with_provenance("cm", SEED_TEST1, Some(wrong.into())).await.unwrap_err());
    assert_eq!(status, 400);
    assert!(message.contains("provenance is invalid"), "{message}");
    let (status, _, _) = api_error(client.list_versions("cm", "test", Page::all()).await.unwrap_err());
    assert_eq!(status, 404, "nothing stored");
}

// ---- errors ----

#[tokio::test]
async fn errors_are_typed() {
    let server = Server::start();
    let client = server.client();

    // A missing space: 404 with the server's message and reason.
    let error = client.list_charts("nospace", Page::all()).await.unwrap_err();
    assert_eq!(error.status(), Some(404));
    let display = error.to_string();
    let (status, message, reason) = api_error(error);
    let (raw_status, raw) = server.get("/api/v1/spaces/nospace/charts").await;
    let raw: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!((status, message.as_str(), reason.as_str()), (404, "nospace not found", "ReasonInternal"));
    assert_eq!((raw_status, raw), (404, json!({"message": message, "reason": reason})));
    assert_eq!(display, "nospace not found (HTTP 404, ReasonInternal)");

    // An invalid name: 400, ReasonRequest.
    let error = client.create_space("bad.name").await.unwrap_err();
    assert_eq!(error.status(), Some(400));
    let (status, message, reason) = api_error(error);
    assert_eq!((status, reason.as_str()), (400, "ReasonRequest"));
    assert!(message.contains("space is invalid") && message.contains("bad.name"), "{message}");
    let (status, _, reason) = api_error(client.list_versions("meta", "bad name", Page::all()).await.unwrap_err());
    assert_eq!((status, reason.as_str()), (400, "ReasonRequest"));
    let (status, message, _) = api_error(client.upload_chart("lib", &b"not a chart"[..]).await.unwrap_err());
    assert_eq!(status, 400);
    assert!(message.contains("chart archive is invalid"), "{message}");

    // A duplicate upload: 409.
    client.upload_chart("lib", SEED_TEST1).await.unwrap();
    let error = client.upload_chart("lib", SEED_TEST2).await.unwrap_err();
    assert_eq!(error.status(), Some(409));
    let (status, message, reason) = api_error(error);
    assert_eq!((status, reason.as_str()), (409, "ReasonInternal"));
    assert!(message.contains("test") && message.contains("1.0.0"), "{message}");
    assert_eq!(client.download_version("lib", "test", "1.0.0").await.unwrap(), SEED_TEST1, "not overwritten");

    // An unreachable server: a transport error, no status.
    let unreachable = Client::new("http://127.0.0.1:1").unwrap();
    let error = unreachable.list_spaces(Page::all()).await.unwrap_err();
    assert_eq!(error.status(), None);
    match &error {
        Error::Transport(e) => assert!(e.is_connect(), "{e:?}"),
        other => panic!("expected a transport error, got {other:?}"),
    }
    assert!(error.to_string().starts_with("request failed"), "{error}");
    assert!(matches!(unreachable.health().await, Err(Error::Transport(_))));
    assert!(matches!(unreachable.upload_chart("lib", SEED_TEST1).await, Err(Error::Transport(_))));
}

#[tokio::test]
async fn answers_that_are_not_the_api_are_errors_too() {
    // 200 with a body that is not JSON: a decode error.
    let (base, _) = fake_server(Some("HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot json!"));
    let error = Client::new(&base).unwrap().list_spaces(Page::all()).await.unwrap_err();
    assert!(matches!(error, Error::Decode(_)), "{error:?}");
    assert_eq!(error.status(), None);
    assert!(error.to_string().starts_with("unexpected answer"), "{error}");

    // An error status with a plain body: the body is the message.
    let (base, _) =
        fake_server(Some("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 11\r\nConnection: close\r\n\r\nupstream 42"));
    let (status, message, reason) = api_error(Client::new(&base).unwrap().delete_space("x").await.unwrap_err());
    assert_eq!((status, message.as_str(), reason.as_str()), (502, "upstream 42", ""));
    let unhealthy = Client::new(&base).unwrap().health().await.unwrap();
    assert!(!unhealthy, "a 502 is not healthy");

    // A server that never answers: a timeout, as a transport error.
    let (base, _) = fake_server(None);
    let slow = Client::builder(&base).timeout(Duration::from_millis(300)).build().unwrap();
    match slow.list_spaces(Page::first()).await.unwrap_err() {
        Error::Transport(e) => assert!(e.is_timeout(), "{e:?}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn credentials_and_paths_are_sent_as_given() {
    let (base, requests) = fake_server(Some("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"));
    let basic = Client::builder(format!("{base}/")).basic_auth("ci", "secret").build().unwrap();
    assert_eq!(basic.base_url(), base, "a trailing slash is dropped");
    basic.delete_version("space", "chart", "1.0.0+build.1").await.unwrap();
    let bearer = Client::builder(&base).bearer_token("t0ken").build().unwrap();
    bearer.delete_chart("space", "chart").await.unwrap();
    let anonymous = Client::new(&base).unwrap();
    let _ = anonymous.list_spaces(Page { start: 2, limit: 5 }).await;

    let heads = requests.lock().unwrap().clone();
    assert_eq!(heads.len(), 3, "{heads:?}");
    let find =
        |prefix: &str| heads.iter().find(|h| h.starts_with(prefix)).unwrap_or_else(|| panic!("{prefix} in {heads:?}"));
    let head = find("DELETE /api/v1/spaces/space/charts/chart/versions/1.0.0%2Bbuild.1 ");
    assert!(head.to_ascii_lowercase().contains("authorization: basic y2k6c2vjcmv0"), "{head}");
    let head = find("DELETE /api/v1/spaces/space/charts/chart ");
    assert!(head.to_ascii_lowercase().contains("authorization: bearer t0ken"), "{head}");
    let head = find("GET /api/v1/spaces?start=2&limit=5 ");
    assert!(!head.to_ascii_lowercase().contains("authorization"), "{head}");
}

// ---- sign-in and API tokens ----

#[tokio::test]
async fn whoami_and_tokens_are_created_listed_and_revoked() {
    let (server, _config) = Server::start_with_auth();
    let alice = server.user("alice");
    let who = alice.whoami().await.unwrap();
    assert_eq!((who.user.as_deref(), who.access_control, who.admin, who.token), (Some("alice"), true, false, None));
    assert!(server.user("admin").whoami().await.unwrap().admin);
    assert_eq!(server.client().whoami().await.unwrap().user, None, "anonymous");
    let wrong = Client::builder(&server.base).basic_auth("alice", "wrong").build().unwrap();
    let (status, message, _) = api_error(wrong.whoami().await.unwrap_err());
    assert_eq!(status, 401);
    assert!(!message.is_empty());
    let (status, _, _) = api_error(wrong.list_tokens(false).await.unwrap_err());
    assert_eq!(status, 401);

    // Created with every field; the answer holds the token, which signs in as alice.
    let request = NewToken {
        spaces: vec!["team-*".into()],
        role: Some(Role::Read),
        expires: Some("1h".into()),
        description: "ci".into(),
    };
    let created = alice.create_token(&request).await.unwrap();
    assert_eq!(created.owner, "alice");
    assert_eq!(
        (created.spaces.clone(), created.role, created.description.as_str()),
        (vec!["team-*".to_string()], Some(Role::Read), "ci")
    );
    assert!(created.expires.is_some() && created.last_used.is_none(), "{created:?}");
    let secret = created.token.clone().expect("the token, once");
    assert!(secret.starts_with(&format!("cyt_{}_", created.id)), "{secret}");
    let by_token = Client::builder(&server.base).bearer_token(&secret).build().unwrap();
    let who = by_token.whoami().await.unwrap();
    assert_eq!((who.user.as_deref(), who.token.as_deref()), (Some("alice"), Some(created.id.as_str())));
    let (status, message, _) = api_error(by_token.create_token(&NewToken::default()).await.unwrap_err());
    assert_eq!(status, 403);
    assert!(message.contains("password"), "{message}");
    let (status, message, _) = api_error(
        alice.create_token(&NewToken { expires: Some("soon".into()), ..NewToken::default() }).await.unwrap_err(),
    );
    assert_eq!(status, 400);
    assert!(message.contains("soon"), "{message}");

    // Listings read every page: more tokens than one page holds.
    let bob = server.user("bob");
    for _ in 0..60 {
        alice.create_token(&NewToken::default()).await.unwrap();
        bob.create_token(&NewToken::default()).await.unwrap();
    }
    let mine = alice.list_tokens(false).await.unwrap();
    assert_eq!(mine.len(), 61);
    assert!(mine.iter().all(|t| t.owner == "alice" && t.token.is_none()));
    let listed = mine.iter().find(|t| t.id == created.id).expect("the first token");
    assert_eq!(
        Token { token: created.token.clone(), last_used: None, ..listed.clone() },
        Token { last_used: None, ..created.clone() }
    );
    let all = server.user("admin").list_tokens(true).await.unwrap();
    assert_eq!(all.len(), 121);
    let mut ids: Vec<&str> = all.iter().map(|t| t.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 121, "no token twice");
    let (status, _, _) = api_error(alice.list_tokens(true).await.unwrap_err());
    assert_eq!(status, 403);

    // Revoked by its owner: it stops working; bob cannot see it to revoke it.
    let (status, _, _) = api_error(bob.revoke_token(&created.id).await.unwrap_err());
    assert_eq!(status, 404);
    by_token.whoami().await.unwrap();
    alice.revoke_token(&created.id).await.unwrap();
    let (status, _, _) = api_error(by_token.whoami().await.unwrap_err());
    assert_eq!(status, 401);
    assert_eq!(alice.list_tokens(false).await.unwrap().len(), 60);
    let (status, _, _) = api_error(alice.revoke_token(&created.id).await.unwrap_err());
    assert_eq!(status, 404);
}
