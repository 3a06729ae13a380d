//! What operators see: `/metrics` after a known workload, bounded labels, who may read the
//! metrics, the probes (also while the store is down), request ids and the request log.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chartyard_testkit::{ChartBuilder, descriptor, digest_of, manifest_bytes};
use reqwest::blocking::{Client, Response, multipart};
use serde_json::{Value, json};

use crate::common::{Server, chart_config, client, password};
use crate::support_s3::{S3Server, write_config};

// ---- reading the exposition ----

/// One scrape: every sample by name and labels.
struct Scrape(Vec<(String, BTreeMap<String, String>, f64)>);

impl Scrape {
    fn parse(text: &str) -> Self {
        let mut samples = Vec::new();
        for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("sample value in {line:?}"));
            let (name, labels) = match series.split_once('{') {
                None => (series.to_string(), BTreeMap::new()),
                Some((name, rest)) => {
                    let rest = rest.strip_suffix('}').unwrap();
                    let labels = rest
                        .split("\",")
                        .filter(|pair| !pair.is_empty())
                        .map(|pair| {
                            let (key, value) = pair.split_once("=\"").unwrap();
                            (key.to_string(), value.trim_end_matches('"').to_string())
                        })
                        .collect();
                    (name.to_string(), labels)
                }
            };
            samples.push((name, labels, value));
        }
        Scrape(samples)
    }

    /// The sum of the samples of `name` that carry all of `labels`.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
            .map(|(_, _, v)| v)
            .sum()
    }

    /// The values a label takes across the samples of `name`.
    fn label_values(&self, name: &str, label: &str) -> BTreeSet<String> {
        self.0.iter().filter(|(n, _, _)| n == name).filter_map(|(_, l, _)| l.get(label).cloned()).collect()
    }
}

fn scrape(client: &Client, base: &str) -> Scrape {
    let response = client.get(format!("{base}/metrics")).send().unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    Scrape::parse(&response.text().unwrap())
}

// ---- a workload ----

fn chart(name: &str, version: &str) -> Vec<u8> {
    ChartBuilder::new(name, version).build()
}

fn v1_upload(client: &Client, server: &Server, space: &str, archive: Vec<u8>) -> Response {
    let form = multipart::Form::new().part("chartfile", multipart::Part::bytes(archive).file_name("chart.tgz"));
    client.post(server.api(&format!("/spaces/{space}/charts"))).multipart(form).send().unwrap()
}

/// Pushes a chart as `helm push` does: config and layer blobs (monolithic), then the
/// manifest.
fn oci_push(client: &Client, server: &Server, space: &str, name: &str, version: &str) -> u16 {
    let archive = chart(name, version);
    let config = chart_config(name, version);
    for blob in [&config, &archive] {
        let url = server.url(&format!("/v2/{space}/{name}/blobs/uploads/?digest={}", digest_of(blob)));
        let response = client.post(url).header("content-type", "application/octet-stream").body(blob.clone()).send();
        assert_eq!(response.unwrap().status(), 201, "blob upload");
    }
    let manifest = manifest_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor("application/vnd.cncf.helm.config.v1+json", &config),
        "layers": [descriptor("application/vnd.cncf.helm.chart.content.v1.tar+gzip", &archive)],
    }));
    client
        .put(server.url(&format!("/v2/{space}/{name}/manifests/{version}")))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

fn status(response: Response) -> u16 {
    let status = response.status().as_u16();
    // Read whole: the request's record is made once its body has gone out.
    let _ = response.bytes();
    status
}

#[test]
fn metrics_count_exactly_what_a_workload_did() {
    let server = Server::start();
    // One connection for everything: each response is done before the next request.
    let client = client();
    let before = scrape(&client, &server.base);
    assert_eq!(before.sum("chartyard_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);

    assert_eq!(status(client.post(server.api("/spaces?space=ops")).send().unwrap()), 201);
    // Uploads: two over /api/v1, one over ChartMuseum, one over OCI, one refused
    // (the same version again) over /api/v1.
    assert_eq!(status(v1_upload(&client, &server, "ops", chart("alpha", "1.0.0"))), 201);
    assert_eq!(status(v1_upload(&client, &server, "ops", chart("alpha", "1.1.0"))), 201);
    assert_eq!(status(v1_upload(&client, &server, "ops", chart("alpha", "1.1.0"))), 409);
    let cm = client
        .post(server.url("/api/ops/charts"))
        .header("content-type", "application/octet-stream")
        .body(chart("beta", "2.0.0"))
        .send()
        .unwrap();
    assert_eq!(status(cm), 201);
    assert_eq!(oci_push(&client, &server, "ops", "gamma", "0.3.0"), 201);

    // Downloads: three over /api/v1 (one of a missing version), two from the repository
    // (one missing), two OCI pulls (one of a missing tag), one from the web UI.
    let get = |path: &str| status(client.get(server.url(path)).send().unwrap());
    assert_eq!(get("/api/v1/spaces/ops/charts/alpha/versions/1.0.0"), 200);
    assert_eq!(get("/api/v1/spaces/ops/charts/alpha/versions/1.1.0"), 200);
    assert_eq!(get("/api/v1/spaces/ops/charts/alpha/versions/9.9.9"), 404);
    assert_eq!(get("/ops/charts/beta-2.0.0.tgz"), 200);
    assert_eq!(get("/ops/charts/beta-9.9.9.tgz"), 404);
    let pull = |tag: &str| {
        let request = client
            .get(server.url(&format!("/v2/ops/gamma/manifests/{tag}")))
            .header("accept", "application/vnd.oci.image.manifest.v1+json");
        status(request.send().unwrap())
    };
    assert_eq!(pull("0.3.0"), 200);
    assert_eq!(pull("9.9.9"), 404);
    assert_eq!(get("/_/ui/ops/alpha/1.0.0/archive"), 200);
    // Not transfers: an index, a listing, and paths no route takes.
    assert_eq!(get("/ops/index.yaml"), 200);
    assert_eq!(get("/api/v1/spaces/ops/charts"), 200);
    assert_eq!(get("/no/such/route"), 404);
    assert_eq!(get("/no/such/route/either"), 404);

    let after = scrape(&client, &server.base);
    let delta = |name: &str, labels: &[(&str, &str)]| after.sum(name, labels) - before.sum(name, labels);
    let uploads = |api: &str, result: &str| delta("chartyard_uploads_total", &[("api", api), ("result", result)]);
    assert_eq!(uploads("v1", "ok"), 2.0);
    assert_eq!(uploads("v1", "client_error"), 1.0);
    assert_eq!(uploads("chartmuseum", "ok"), 1.0);
    assert_eq!(uploads("oci", "ok"), 1.0);
    assert_eq!(delta("chartyard_uploads_total", &[]), 5.0);
    let downloads = |api: &str, result: &str| delta("chartyard_downloads_total", &[("api", api), ("result", result)]);
    assert_eq!(downloads("v1", "ok"), 2.0);
    assert_eq!(downloads("v1", "client_error"), 1.0);
    assert_eq!(downloads("repo", "ok"), 1.0);
    assert_eq!(downloads("repo", "client_error"), 1.0);
    assert_eq!(downloads("oci", "ok"), 1.0);
    assert_eq!(downloads("oci", "client_error"), 1.0);
    assert_eq!(downloads("ui", "ok"), 1.0);
    assert_eq!(delta("chartyard_downloads_total", &[]), 8.0);

    // The request histograms count each request once, under its route template.
    let requests = |method: &str, route: &str, status: &str| {
        delta(
            "http_server_request_duration_seconds_count",
            &[("http_request_method", method), ("http_route", route), ("http_response_status_code", status)],
        )
    };
    assert_eq!(requests("POST", "/api/v1/spaces/{space}/charts", "201"), 2.0);
    assert_eq!(requests("POST", "/api/v1/spaces/{space}/charts", "409"), 1.0);
    assert_eq!(requests("GET", "/api/v1/spaces/{space}/charts/{chart}/versions/{version}", "200"), 2.0);
    assert_eq!(requests("GET", "/api/v1/spaces/{space}/charts/{chart}/versions/{version}", "404"), 1.0);
    assert_eq!(requests("POST", "/v2/{space}/{name}/blobs/uploads/", "201"), 2.0);
    assert_eq!(requests("PUT", "/v2/{space}/{name}/manifests/{reference}", "201"), 1.0);
    assert_eq!(requests("GET", "unmatched", "404"), 2.0);
    // Every request of the workload, and the first scrape: 21.
    assert_eq!(delta("http_server_request_duration_seconds_count", &[]), 21.0);
    let sizes =
        |name: &str| delta(name, &[("http_request_method", "POST"), ("http_route", "/api/v1/spaces/{space}/charts")]);
    assert_eq!(sizes("http_server_request_body_size_bytes_count"), 3.0);
    assert_eq!(sizes("http_server_response_body_size_bytes_count"), 3.0);
    assert!(sizes("http_server_request_body_size_bytes_sum") > 3.0 * 300.0, "three archives came in");
    let downloaded = delta(
        "http_server_response_body_size_bytes_sum",
        &[("http_route", "/api/v1/spaces/{space}/charts/{chart}/versions/{version}"), ("http_request_method", "GET")],
    );
    assert!(downloaded > 2.0 * 300.0, "two archives went out: {downloaded}");
    // Only the scrape in progress is active.
    assert_eq!(after.sum("http_server_active_requests", &[]), 1.0);

    // Storage and index numbers.
    assert!(delta("chartyard_storage_operations_total", &[("operation", "put"), ("outcome", "ok")]) >= 4.0);
    assert!(delta("chartyard_storage_operations_total", &[("outcome", "not_found")]) >= 1.0);
    // The refused upload found its version's record there: one conflict. Its archive was
    // stored already too, which is no conflict (a blob's name is its content's digest).
    assert_eq!(delta("chartyard_storage_conditional_conflicts_total", &[]), 1.0);
    assert_eq!(delta("chartyard_storage_operations_total", &[("operation", "put"), ("outcome", "conflict")]), 1.0);
    assert!(delta("chartyard_storage_operation_duration_seconds_count", &[]) >= 5.0);
    assert_eq!(after.sum("chartyard_index_versions", &[("space", "ops")]), 4.0);
    assert_eq!(after.sum("chartyard_index_charts", &[("space", "ops")]), 3.0);
    assert!(after.0.iter().any(|(name, labels, _)| name == "chartyard_changelog_position" && labels["space"] == "ops"));
    assert!(after.sum("chartyard_index_rebuild_duration_seconds_count", &[]) >= 1.0);
    assert!(after.0.iter().any(|(name, _, _)| name == "chartyard_replica_staleness_seconds"));
}

#[test]
fn route_labels_stay_few_whatever_the_urls() {
    let server = Server::start();
    let client = client();
    assert_eq!(status(client.post(server.api("/spaces?space=ops")).send().unwrap()), 201);
    for i in 0..1000 {
        let path = match i % 5 {
            0 => format!("/api/v1/spaces/s{i}/charts"),
            1 => format!("/ops/charts/chart-{i}.tgz"),
            2 => format!("/v2/ops/c{i}/manifests/{i}"),
            3 => format!("/nothing/{i}/here"),
            _ => format!("/api/v1/spaces/ops/charts/c{i}/versions/{i}.0.0"),
        };
        let answer =
            client.request(if i % 7 == 0 { reqwest::Method::HEAD } else { reqwest::Method::GET }, server.url(&path));
        assert!(status(answer.send().unwrap()) >= 200);
    }
    let after = scrape(&client, &server.base);
    let routes = after.label_values("http_server_request_duration_seconds_count", "http_route");
    assert!(routes.len() <= 8, "{routes:?}");
    assert!(routes.contains("unmatched") && routes.contains("/{space}/charts/{file}"), "{routes:?}");
    let series = after.0.iter().filter(|(name, _, _)| name == "http_server_request_duration_seconds_count").count();
    assert!(series <= 24, "{series} series");
}

#[test]
fn metrics_access_follows_the_setting() {
    let admin_only = Server::start_with_auth("  admins: [admin]\n  faileddelay: 1ms\n", &["--metrics-access", "admin"]);
    let client = client();
    let metrics = |user: Option<&str>| {
        let mut request = client.get(admin_only.url("/metrics"));
        if let Some(user) = user {
            request = request.basic_auth(user, Some(password(user)));
        }
        status(request.send().unwrap())
    };
    assert_eq!(metrics(None), 401);
    assert_eq!(metrics(Some("alice")), 403);
    assert_eq!(metrics(Some("admin")), 200);
    // The probes answer everyone.
    for path in ["/livez", "/readyz", "/health"] {
        assert_eq!(status(client.get(admin_only.url(path)).send().unwrap()), 200, "{path}");
    }

    let signed_in =
        Server::start_with_auth("  admins: [admin]\n  faileddelay: 1ms\n", &["--metrics-access", "signedin"]);
    let get = |user: Option<(&str, &str)>| {
        let mut request = client.get(signed_in.url("/metrics"));
        if let Some((user, password)) = user {
            request = request.basic_auth(user, Some(password));
        }
        request.send().unwrap()
    };
    assert_eq!(status(get(None)), 401);
    assert_eq!(status(get(Some(("alice", password("alice"))))), 200);
    // A wrong password is refused, and counted.
    let text = |response: Response| response.text().unwrap();
    let before = Scrape::parse(&text(get(Some(("bob", password("bob"))))));
    assert_eq!(status(get(Some(("bob", "wrong")))), 401);
    let after = Scrape::parse(&text(get(Some(("bob", password("bob"))))));
    let rejected = |s: &Scrape| s.sum("chartyard_auth_failures_total", &[("reason", "rejected")]);
    assert_eq!(rejected(&after) - rejected(&before), 1.0);

    // By default anyone may read them, with access control on too.
    let open = Server::start_with_auth("  admins: [admin]\n", &[]);
    assert_eq!(status(client.get(open.url("/metrics")).send().unwrap()), 200);
}

#[test]
fn metrics_can_have_a_listener_of_their_own_or_none() {
    let server = Server::start_with(&["--metrics-listen", "127.0.0.1:0"]);
    let client = client();
    let line = server.logs.lines().into_iter().find(|l| l.contains("serving metrics on")).expect("metrics address");
    let address = line.split("serving metrics on ").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    let base = address.trim_end_matches("/metrics").to_string();
    assert_eq!(status(client.get(server.url("/metrics")).send().unwrap()), 404);
    let scraped = scrape(&client, &base);
    assert_eq!(scraped.sum("chartyard_build_info", &[]), 1.0);
    assert_eq!(status(client.get(format!("{base}/health")).send().unwrap()), 404, "only /metrics there");

    let off = Server::start_with(&["--metrics-enabled", "false"]);
    assert_eq!(status(client.get(off.url("/metrics")).send().unwrap()), 404);
    assert_eq!(status(client.get(off.url("/livez")).send().unwrap()), 200);
}

#[test]
fn request_ids_are_echoed_or_made_and_logged() {
    let server = Server::start_with(&["--log-format", "json"]);
    let client = client();
    let response = client.get(server.url("/health")).header("x-request-id", "trace-me-42").send().unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");
    let made =
        client.get(server.url("/health")).send().unwrap().headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(made.len(), 32);
    assert!(made.bytes().all(|b| b.is_ascii_hexdigit()), "{made}");
    let too_long = "x".repeat(129);
    let replaced = client.get(server.url("/health")).header("x-request-id", &too_long).send().unwrap();
    assert_ne!(replaced.headers()["x-request-id"].to_str().unwrap(), too_long);

    let missing = client.get(server.api("/spaces/nope/charts")).header("x-request-id", "missing-7").send().unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["x-request-id"], "missing-7");
    let _ = missing.text();
    // The line is written as the response goes out: it follows shortly.
    let line = |id: &str| -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = server.logs.lines().into_iter().find_map(|line| {
                let value: Value = serde_json::from_str(&line).ok()?;
                (value["target"] == "chartyard::request" && value["fields"]["request_id"] == id).then_some(value)
            });
            if let Some(found) = found {
                return found;
            }
            assert!(Instant::now() < deadline, "no request line for {id}: {:?}", server.logs.lines());
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let ok = &line("trace-me-42")["fields"];
    assert_eq!(ok["method"], "GET");
    assert_eq!(ok["route"], "/health");
    assert_eq!(ok["path"], "/health");
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["client"], "127.0.0.1");
    assert_eq!(ok["user"], "anonymous");
    assert_eq!(ok["bytes_in"], 0);
    assert!(ok["bytes_out"].as_u64().unwrap() > 0, "{ok}");
    assert!(ok["duration_ms"].is_number(), "{ok}");
    assert!(ok.get("reason").is_none(), "{ok}");
    let not_found = &line("missing-7")["fields"];
    assert_eq!(not_found["status"], 404);
    assert_eq!(not_found["route"], "/api/v1/spaces/{space}/charts");
    assert!(not_found["reason"].as_str().is_some_and(|r| r.contains("nope")), "{not_found}");
    assert_eq!(line(&made)["fields"]["status"], 200);
}

// ---- readiness against a store that goes away ----

/// moto on a given port (so one started again answers at the same address), or `None`
/// where moto is not installed outside CI.
fn moto_on(port: u16) -> Option<MotoProcess> {
    let binary = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin/moto_server");
    if !binary.exists() {
        assert!(std::env::var("CI").is_err(), "moto_server is not installed; run scripts/install-test-tools.sh");
        eprintln!("moto_server not installed; skipping");
        return None;
    }
    let child = Command::new(binary)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto_server");
    let endpoint = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while client().get(&endpoint).send().is_err() {
        assert!(Instant::now() < deadline, "moto_server did not answer on {endpoint}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let created = client().put(format!("{endpoint}/ready")).send().unwrap();
    assert_eq!(created.status(), 200);
    Some(MotoProcess(child))
}

/// A moto process, killed when dropped.
struct MotoProcess(Child);

impl MotoProcess {
    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for MotoProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits (up to a minute) for `/readyz` to answer `want`; answers its body.
fn readyz_becomes(server: &S3Server, want: u16) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let response = client().get(server.url("/readyz")).send().unwrap();
        if response.status() == want {
            return response.json().unwrap();
        }
        assert!(Instant::now() < deadline, "/readyz stayed {}", response.status());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn readiness_follows_the_store() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let Some(mut moto) = moto_on(port) else { return };
    let config_dir = chartyard_testkit::TempDir::new("ready");
    let config = write_config(&config_dir.path, &format!("http://127.0.0.1:{port}"), "ready", "r");
    let server = S3Server::start(&["--config", &config]);
    let ready = readyz_becomes(&server, 200);
    assert_eq!(ready, json!({"status": "ready", "checks": {"startup": "done", "storage": "ok", "draining": false}}));

    moto.stop();
    let down = readyz_becomes(&server, 503);
    assert_eq!(down["status"], "not ready");
    assert_eq!(down["checks"]["startup"], "done");
    assert_eq!(down["checks"]["draining"], false);
    assert!(down["checks"]["storage"].as_str().unwrap().starts_with("unavailable"), "{down}");
    let live = client().get(server.url("/livez")).send().unwrap();
    assert_eq!(live.status(), 200);
    assert_eq!(live.json::<Value>().unwrap(), json!({"status": "alive"}));

    let Some(_moto) = moto_on(port) else { return };
    readyz_becomes(&server, 200);
}
