//! Durability: what the server acknowledged survives restarts and SIGKILL, a killed
//! upload leaves nothing half-written behind, and garbage collection removes exactly the
//! archives nothing refers to.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use crate::common::{ChartBuilder, Server, binary, client, error, files_under, json, noise, record_files, sha256};
use reqwest::blocking::{Client, Response, multipart};
use serde_json::{Value, json};

// ---- helpers ----

/// A valid archive of `name-version` whose values carry `tag`, so that every call with a
/// different tag gives different bytes.
fn archive(name: &str, version: &str, tag: &str) -> Vec<u8> {
    ChartBuilder::new(name, version)
        .with(&format!("{name}/values.yaml"), format!("replicaCount: 1\ntag: {tag:?}\n"))
        .build()
}

/// The version list of a chart, or `None` when the API answers 404.
fn versions(server: &Server, space: &str, chart: &str) -> Option<Vec<String>> {
    let response = server.get(&format!("/spaces/{space}/charts/{chart}/versions?limit=1000"));
    if response.status() == 404 {
        error(response, 404);
        return None;
    }
    let body = json(response, 200);
    let items: Vec<String> =
        body["items"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    assert_eq!(body["metadata"]["total"], items.len(), "{body}");
    Some(items)
}

fn items(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {body}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// Names of the blob files under `data/blobs/sha256`, asserting the `{hh}/{hex}` layout.
fn blob_files(data: &Path) -> BTreeSet<String> {
    let root = data.join("blobs/sha256");
    files_under(&root)
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            let folder = path.parent().unwrap().file_name().unwrap().to_str().unwrap();
            assert_eq!(path.parent().unwrap().parent().unwrap(), root, "{}", path.display());
            assert_eq!(&name[..2.min(name.len())], folder, "{}", path.display());
            name
        })
        .collect()
}

/// Everything the API says about the registry: spaces, charts, versions, and per version
/// the archive bytes, metadata and values; plus the listing endpoints' metadata.
fn snapshot(server: &Server) -> BTreeMap<String, Value> {
    let mut state = BTreeMap::new();
    let spaces = json(server.get("/spaces?limit=1000"), 200);
    state.insert("spaces".to_string(), spaces.clone());
    for space in items(&spaces) {
        let charts = json(server.get(&format!("/spaces/{space}/charts?limit=1000")), 200);
        state.insert(format!("{space} charts"), charts.clone());
        state.insert(
            format!("{space} metadata"),
            json(server.get(&format!("/spaces/{space}/metadata?limit=1000")), 200),
        );
        state.insert(
            format!("{space} latest"),
            json(server.get(&format!("/spaces/{space}/metadata/latest?limit=1000")), 200),
        );
        for chart in items(&charts) {
            let versions = versions(server, &space, &chart).unwrap();
            state.insert(format!("{space}/{chart} versions"), json!(versions));
            state.insert(
                format!("{space}/{chart} latest"),
                json(server.get(&format!("/spaces/{space}/charts/{chart}/metadata/latest")), 200),
            );
            for version in versions {
                let path = format!("/spaces/{space}/charts/{chart}/versions/{version}");
                let bytes = server.download(&space, &chart, &version);
                state.insert(format!("{path} archive"), json!({"sha256": sha256(&bytes), "size": bytes.len()}));
                state.insert(format!("{path} metadata"), json(server.get(&format!("{path}/manifests/metadata")), 200));
                state.insert(format!("{path} values"), json(server.get(&format!("{path}/manifests/values")), 200));
            }
        }
    }
    state
}

/// The bytes of a seed-style multipart upload of `archive`, and the offset in it where
/// the archive's bytes start.
fn multipart_body(archive: &[u8]) -> (Vec<u8>, usize, &'static str) {
    const BOUNDARY: &str = "chartyard-durability-boundary";
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"chartfile\"; filename=\"chart.tgz\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    let start = body.len();
    body.extend_from_slice(archive);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    (body, start, BOUNDARY)
}

/// Opens a raw connection and sends a POST upload's headers and the first `sent` bytes
/// of `body`; the headers announce the whole body.
fn raw_upload(server: &Server, space: &str, body: &[u8], boundary: &str, sent: usize) -> TcpStream {
    let mut stream = TcpStream::connect(server.address()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "POST /api/v1/spaces/{space}/charts HTTP/1.1\r\nHost: {}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n",
        server.address(),
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body[..sent]).unwrap();
    stream.flush().unwrap();
    stream
}

/// A pseudo-random delay in `min..min+spread` milliseconds (from the clock).
fn jitter(min: u64, spread: u64) -> Duration {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    Duration::from_millis(min + nanos % spread.max(1))
}

fn upload_with(client: &Client, api: &str, space: &str, archive: &[u8]) -> reqwest::Result<Response> {
    let form =
        multipart::Form::new().part("chartfile", multipart::Part::bytes(archive.to_vec()).file_name("chart.tgz"));
    client.post(format!("{api}/spaces/{space}/charts")).multipart(form).send()
}

// ---- tests ----

#[test]
fn state_survives_restarts() {
    let started = Instant::now();
    let mut server = Server::start();
    let uploads = [
        ("alpha", "web", "1.0.0", "a-web-1"),
        ("alpha", "web", "1.1.0", "a-web-2"),
        ("alpha", "web", "2.0.0-rc.1", "a-web-3"),
        ("alpha", "web", "1.10.0", "a-web-4"),
        ("alpha", "db", "0.1.0", "a-db-1"),
        ("beta", "web", "1.0.0", "b-web-1"),
        ("beta", "cache", "3.2.1", "b-cache-1"),
        ("beta", "tmp", "0.0.1", "b-tmp-1"),
    ];
    let mut sent = BTreeMap::new();
    for (space, chart, version, tag) in uploads {
        let bytes = archive(chart, version, tag);
        json(server.upload(space, &bytes), 201);
        sent.insert((space, chart, version), bytes);
    }
    // An empty space too: it must survive with no charts.
    json(server.create_space("empty"), 201);

    // Change values and metadata of alpha/web/1.1.0.
    let path = "/spaces/alpha/charts/web/versions/1.1.0";
    let new_values = json!({"replicaCount": 7, "image": {"tag": "v7"}, "list": [1, 2, 3]});
    assert_eq!(json(server.put_json(&format!("{path}/manifests/values"), &new_values), 200), new_values);
    let mut metadata = json(server.get(&format!("{path}/manifests/metadata")), 200);
    metadata["description"] = json!("edited before the restart");
    metadata["icon"] = json!("https://example.com/icon.png");
    metadata["keywords"] = json!(["one", "two"]);
    let updated = json(server.put_json(&format!("{path}/manifests/metadata"), &metadata), 200);
    assert_eq!(updated["description"], "edited before the restart");
    // Replace beta/web/1.0.0 with other bytes.
    let replacement = archive("web", "1.0.0", "b-web-replaced");
    json(server.replace("beta", "web", "1.0.0", &replacement), 200);
    sent.insert(("beta", "web", "1.0.0"), replacement);
    // Delete one version and one whole chart (its only version).
    assert_eq!(server.delete("/spaces/alpha/charts/web/versions/1.0.0").status(), 204);
    assert_eq!(server.delete("/spaces/beta/charts/tmp/versions/0.0.1").status(), 204);
    sent.remove(&("alpha", "web", "1.0.0"));
    sent.remove(&("beta", "tmp", "0.0.1"));

    let before = snapshot(&server);
    // What the snapshot must hold, independently of the server's own answers.
    assert_eq!(before["spaces"]["items"], json!(["alpha", "beta", "empty"]));
    assert_eq!(before["alpha charts"]["items"], json!(["db", "web"]));
    assert_eq!(before["beta charts"]["items"], json!(["cache", "web"]));
    assert_eq!(before["empty charts"]["items"], json!([]));
    assert_eq!(before["alpha/web versions"], json!(["1.1.0", "1.10.0", "2.0.0-rc.1"]));

    for round in 0..2 {
        server.restart();
        let after = snapshot(&server);
        for (key, value) in &before {
            assert_eq!(after.get(key), Some(value), "round {round}: {key}");
        }
        assert_eq!(after.len(), before.len(), "round {round}");

        // Byte-identical downloads of everything that was not rewritten by the server.
        for ((space, chart, version), bytes) in &sent {
            if (*space, *chart, *version) == ("alpha", "web", "1.1.0") {
                continue;
            }
            assert_eq!(server.download(space, chart, version), *bytes, "{space}/{chart}/{version}");
        }
        // The edited version carries both edits.
        assert_eq!(json(server.get(&format!("{path}/manifests/values")), 200), new_values);
        let md = json(server.get(&format!("{path}/manifests/metadata")), 200);
        assert_eq!(md["description"], "edited before the restart");
        assert_eq!(md["icon"], "https://example.com/icon.png");
        assert_eq!(md["keywords"], json!(["one", "two"]));
        let edited = server.download("alpha", "web", "1.1.0");
        let loaded = chartyard_core::archive::load(&edited, &Default::default()).unwrap();
        assert_eq!(loaded.metadata.description, "edited before the restart");
        assert_eq!(Value::Object(loaded.values.clone()), new_values);

        // Deleted things stay deleted.
        error(server.get("/spaces/alpha/charts/web/versions/1.0.0"), 404);
        error(server.get("/spaces/beta/charts/tmp/versions"), 404);
        error(server.get("/spaces/beta/charts/tmp/versions/0.0.1/manifests/metadata"), 404);

        // The files on disk are exactly the versions the API lists.
        let expected: BTreeSet<_> = sent.keys().map(|(s, c, v)| format!("{s}/{c}/{v}")).collect();
        assert_eq!(record_files(&server.data.path), expected);
    }

    // Still writable after the restarts: a deleted version can come back.
    let again = archive("web", "1.0.0", "a-web-again");
    json(server.upload("alpha", &again), 201);
    assert_eq!(server.download("alpha", "web", "1.0.0"), again);
    eprintln!("state_survives_restarts: {:?}", started.elapsed());
}

#[test]
fn killed_upload_leaves_nothing_behind() {
    let started = Instant::now();
    let mut server = Server::start();
    // The space already holds another chart: it must come back exactly as it was.
    let other = archive("other", "0.1.0", "other");
    json(server.upload("crash", &other), 201);

    // A ~2 MiB archive, so that the upload is really in flight when the server dies.
    let big = ChartBuilder::new("crashy", "1.0.0")
        .file("crashy/files/payload.bin", noise(2 * 1024 * 1024, 0x9e37_79b9_7f4a_7c15))
        .build();
    assert!(big.len() > 2 * 1024 * 1024, "{}", big.len());
    let (body, archive_start, boundary) = multipart_body(&big);

    // Cut in the middle of the archive, then one byte before its end.
    for sent in [archive_start + big.len() / 2, archive_start + big.len() - 1] {
        let _stream = raw_upload(&server, "crash", &body, boundary, sent);
        // Give the server time to read what was sent; it must still be waiting.
        std::thread::sleep(Duration::from_millis(300));
        assert!(server.healthy());
        error(server.get("/spaces/crash/charts/crashy/versions"), 404);
        server.kill();
        server.restart();

        error(server.get("/spaces/crash/charts/crashy/versions"), 404);
        error(server.get("/spaces/crash/charts/crashy/versions/1.0.0"), 404);
        error(server.get("/spaces/crash/charts/crashy/versions/1.0.0/manifests/metadata"), 404);
        assert_eq!(
            json(server.get("/spaces"), 200),
            json!({"metadata": {"total": 1, "itemsLength": 1}, "items": ["crash"]})
        );
        assert_eq!(
            json(server.get("/spaces/crash/charts"), 200),
            json!({"metadata": {"total": 1, "itemsLength": 1}, "items": ["other"]})
        );
        assert_eq!(json(server.get("/spaces/crash/metadata"), 200)["metadata"]["total"], 1);
        assert_eq!(server.download("crash", "other", "0.1.0"), other);
        assert_eq!(record_files(&server.data.path), BTreeSet::from(["crash/other/0.1.0".to_string()]));
    }

    // The very same request, sent whole, is accepted: the killed ones were valid uploads.
    let mut stream = raw_upload(&server, "crash", &body, boundary, body.len());
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("\r\n\r\n") {
        let n = stream.read(&mut buffer).unwrap();
        assert!(n > 0, "connection closed: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buffer[..n]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert_eq!(server.download("crash", "crashy", "1.0.0"), big);
    assert_eq!(versions(&server, "crash", "crashy"), Some(vec!["1.0.0".to_string()]));
    error(server.upload("crash", &big), 409);
    eprintln!("killed_upload_leaves_nothing_behind: {:?}", started.elapsed());
}

#[test]
fn kill_during_upload_storm() {
    const THREADS: usize = 6;
    const VERSIONS: usize = 300;
    let started = Instant::now();
    let mut server = Server::start();
    let api = server.api("");
    // Two spaces, two charts; every archive distinct.
    let plan: Vec<(String, String, String, Vec<u8>)> = (0..VERSIONS)
        .map(|i| {
            let space = if i % 2 == 0 { "storm" } else { "gale" };
            let chart = if i % 3 == 0 { "rain" } else { "wind" };
            let version = format!("1.{}.{}", i % 7, i);
            let bytes = archive(chart, &version, &format!("storm-{i}"));
            (space.to_string(), chart.to_string(), version, bytes)
        })
        .collect();

    let barrier = Arc::new(Barrier::new(THREADS + 1));
    // Per version: the status the server answered before it died, if it answered.
    let answers: Vec<Vec<(usize, Option<u16>)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (barrier, api, plan) = (barrier.clone(), api.clone(), &plan);
                scope.spawn(move || {
                    let client = Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
                    barrier.wait();
                    let mut answered = Vec::new();
                    for i in (t..VERSIONS).step_by(THREADS) {
                        let (space, _, _, bytes) = &plan[i];
                        match upload_with(&client, &api, space, bytes) {
                            Ok(response) => answered.push((i, Some(response.status().as_u16()))),
                            Err(_) => {
                                answered.push((i, None));
                                break; // the server is gone
                            }
                        }
                    }
                    answered
                })
            })
            .collect();
        barrier.wait();
        std::thread::sleep(jitter(150, 60));
        server.kill();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let answers: BTreeMap<usize, Option<u16>> = answers.into_iter().flatten().collect();
    for (i, status) in &answers {
        assert!(matches!(status, None | Some(201)), "upload {i} answered {status:?}");
    }
    let acknowledged: BTreeSet<usize> = answers.iter().filter(|(_, s)| **s == Some(201)).map(|(i, _)| *i).collect();

    server.restart();
    let data = server.data.path.clone();
    let records = record_files(&data);

    // What the API lists after the crash.
    let mut present = BTreeSet::new();
    for space in ["storm", "gale"] {
        for chart in ["rain", "wind"] {
            for version in versions(&server, space, chart).unwrap_or_default() {
                let i = plan
                    .iter()
                    .position(|(s, c, v, _)| (s.as_str(), c.as_str(), v.as_str()) == (space, chart, &version))
                    .unwrap_or_else(|| panic!("{space}/{chart}/{version} was never sent"));
                present.insert(i);
            }
        }
    }
    // Every acknowledged upload survived the kill.
    let lost: Vec<_> = acknowledged.difference(&present).collect();
    assert!(lost.is_empty(), "acknowledged uploads lost: {lost:?}");
    // Record files on disk are exactly the listed versions.
    let listed: BTreeSet<_> = present.iter().map(|&i| format!("{}/{}/{}", plan[i].0, plan[i].1, plan[i].2)).collect();
    assert_eq!(records, listed);
    // Whole or absent: each listed version downloads exactly what was sent for it.
    for &i in &present {
        let (space, chart, version, bytes) = &plan[i];
        let downloaded = server.download(space, chart, version);
        assert_eq!(sha256(&downloaded), sha256(bytes), "{space}/{chart}/{version}");
        let md =
            json(server.get(&format!("/spaces/{space}/charts/{chart}/versions/{version}/manifests/metadata")), 200);
        assert_eq!(md["version"], version.as_str());
    }
    eprintln!("kill_during_upload_storm: {} acknowledged, {} present of {VERSIONS}", acknowledged.len(), present.len());

    // Re-uploading: the missing ones are accepted, the present ones conflict.
    let (client, api) = (client(), server.api(""));
    for (i, (space, chart, version, bytes)) in plan.iter().enumerate() {
        let response = upload_with(&client, &api, space, bytes).unwrap();
        if present.contains(&i) {
            error(response, 409);
        } else {
            let link = json(response, 201);
            assert_eq!(
                (link["chart"].as_str(), link["version"].as_str()),
                (Some(chart.as_str()), Some(version.as_str()))
            );
        }
    }
    // Now everything is there, whole.
    let mut total = 0;
    for space in ["storm", "gale"] {
        for chart in ["rain", "wind"] {
            total += versions(&server, space, chart).map_or(0, |v| v.len());
        }
    }
    assert_eq!(total, VERSIONS);
    for (space, chart, version, bytes) in plan.iter().step_by(7) {
        assert_eq!(server.download(space, chart, version), *bytes);
    }
    assert_eq!(record_files(&data).len(), VERSIONS);
    eprintln!("kill_during_upload_storm: {:?}", started.elapsed());
}

/// The hex digests of every blob the version records on disk refer to.
fn live_blobs(data: &Path) -> BTreeSet<String> {
    let mut blobs = BTreeSet::new();
    for path in files_under(&data.join("charts")).into_iter().filter(|p| p.extension().is_some_and(|e| e == "json")) {
        let record: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        blobs.insert(record["digest"].as_str().unwrap().to_string());
        let manifest = &record["manifest"];
        for field in ["digest", "config", "provenance"] {
            if let Some(digest) = manifest[field].as_str() {
                blobs.insert(digest.trim_start_matches("sha256:").to_string());
            }
        }
    }
    blobs
}

/// Runs `chartyard gc` on a data directory; answers a count from its report
/// ("referenced blobs: N, deleted blobs: M (B bytes), ...") for each label.
fn gc_counts<const N: usize>(data: &Path, grace_seconds: u64, labels: [&str; N]) -> [usize; N] {
    let output = Command::new(binary())
        .args(["gc", "--root-directory"])
        .arg(data)
        .args(["--grace-seconds", &grace_seconds.to_string()])
        .env("CHARTYARD_LOG", "warn")
        .output()
        .expect("run chartyard gc");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(output.status.success(), "gc failed: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    labels.map(|label| {
        stdout
            .split(label)
            .nth(1)
            .unwrap_or_else(|| panic!("no {label:?} in gc output {stdout:?}"))
            .trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap_or_else(|e| panic!("{label:?} in {stdout:?}: {e}"))
    })
}

/// (referenced, deleted) blobs of a gc run.
fn run_gc(data: &Path, grace_seconds: u64) -> (usize, usize) {
    let [referenced, deleted] = gc_counts(data, grace_seconds, ["referenced blobs:", "deleted blobs:"]);
    (referenced, deleted)
}

#[test]
fn garbage_collection_removes_exactly_the_unreferenced_archives() {
    let started = Instant::now();
    let mut server = Server::start();
    let data = server.data.path.clone();
    let shared = archive("app", "1.0.0", "shared");
    json(server.upload("gc", &shared), 201);
    // The same bytes in another space: one blob, two versions.
    json(server.upload("gc2", &shared), 201);
    for (chart, version) in [("app", "1.0.1"), ("app", "1.0.2"), ("lib", "2.0.0")] {
        json(server.upload("gc", &archive(chart, version, &format!("{chart}-{version}"))), 201);
    }
    json(server.upload("gc3", &archive("gone", "0.1.0", "gone")), 201);

    // Replace (old archive unreferenced), update values and metadata (each rewrites the
    // archive), delete a version whose blob is shared (it must stay), delete a version
    // and a whole space.
    json(server.replace("gc", "app", "1.0.1", &archive("app", "1.0.1", "replaced")), 200);
    json(server.put_json("/spaces/gc/charts/app/versions/1.0.2/manifests/values", &json!({"replicaCount": 5})), 200);
    let md_path = "/spaces/gc/charts/app/versions/1.0.2/manifests/metadata";
    let mut md = json(server.get(md_path), 200);
    md["description"] = json!("rewritten by the metadata update");
    json(server.put_json(md_path, &md), 200);
    assert_eq!(server.delete("/spaces/gc/charts/app/versions/1.0.0").status(), 204);
    assert_eq!(server.delete("/spaces/gc/charts/lib/versions/2.0.0").status(), 204);
    assert_eq!(server.delete("/spaces/gc3").status(), 204);

    let remaining = [("gc", "app", "1.0.1"), ("gc", "app", "1.0.2"), ("gc2", "app", "1.0.0")];
    let before: Vec<(Vec<u8>, Value, Value)> = remaining
        .iter()
        .map(|(space, chart, version)| {
            let path = format!("/spaces/{space}/charts/{chart}/versions/{version}");
            (
                server.download(space, chart, version),
                json(server.get(&format!("{path}/manifests/metadata")), 200),
                json(server.get(&format!("{path}/manifests/values")), 200),
            )
        })
        .collect();
    assert_eq!(before[2].0, shared);
    let archives: BTreeSet<String> = before.iter().map(|(b, _, _)| sha256(b)).collect();
    assert_eq!(archives.len(), 3);

    server.kill();
    // Each live version needs its archive and its OCI manifest and config blobs.
    let referenced = live_blobs(&data);
    assert!(archives.is_subset(&referenced), "{archives:?} not all in {referenced:?}");
    let blobs_before = blob_files(&data);
    assert!(referenced.is_subset(&blobs_before), "{referenced:?} not all in {blobs_before:?}");
    let unreferenced = blobs_before.difference(&referenced).count();
    // At least 1.0.1's original, 1.0.2's original and its values-only rewrite, lib and
    // gone, each with a manifest (configs may be shared).
    assert!(unreferenced >= 10, "{blobs_before:?}");

    // With the default grace period, the young blobs are all kept.
    assert_eq!(run_gc(&data, 3600), (referenced.len(), 0));
    assert_eq!(blob_files(&data), blobs_before);

    let (referenced_count, deleted) = run_gc(&data, 0);
    assert_eq!((referenced_count, deleted), (referenced.len(), unreferenced));
    assert_eq!(blob_files(&data), referenced);
    // A second run finds nothing more.
    assert_eq!(run_gc(&data, 0), (referenced.len(), 0));

    server.restart();
    for ((space, chart, version), (bytes, metadata, values)) in remaining.iter().zip(&before) {
        let path = format!("/spaces/{space}/charts/{chart}/versions/{version}");
        assert_eq!(server.download(space, chart, version), *bytes, "{path}");
        assert_eq!(json(server.get(&format!("{path}/manifests/metadata")), 200), *metadata);
        assert_eq!(json(server.get(&format!("{path}/manifests/values")), 200), *values);
    }
    error(server.get("/spaces/gc3/charts"), 404);
    // Collected archives can be uploaded again.
    let lib = archive("lib", "2.0.0", "lib-2.0.0");
    json(server.upload("gc", &lib), 201);
    assert_eq!(server.download("gc", "lib", "2.0.0"), lib);
    eprintln!("garbage_collection_removes_exactly_the_unreferenced_archives: {:?}", started.elapsed());
}

/// Staging files (`{key}#{n}`, as the filesystem store names the file it writes before
/// renaming it into place) under a data directory.
fn staging_files(data: &Path) -> BTreeSet<String> {
    files_under(data)
        .into_iter()
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?;
            let (_, suffix) = name.rsplit_once('#')?;
            (!suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()))
                .then(|| path.strip_prefix(data).unwrap().to_str().unwrap().to_string())
        })
        .collect()
}

/// Runs `chartyard gc` and answers how many staging files it reports deleting.
fn gc_staging(data: &Path, grace_seconds: u64) -> usize {
    gc_counts(data, grace_seconds, ["staging files of unfinished writes:"])[0]
}

fn set_age(path: &Path, age: Duration) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(std::time::SystemTime::now() - age).unwrap();
}

/// A write killed midway leaves its staging file behind, where no listing sees it:
/// `chartyard gc` removes those older than the grace period and never a fresh one, and
/// everything stored stays as it was.
#[test]
fn gc_removes_staging_files_that_killed_writes_left() {
    let mut server = Server::start();
    let data = server.data.path.clone();
    let kept = archive("kept", "1.0.0", "kept");
    json(server.upload("s", &kept), 201);
    let record = files_under(&data.join("charts")).into_iter().find(|p| p.ends_with("1.0.0.json")).unwrap();

    // Leftovers as the store names them: beside a record, and in a blob folder.
    let beside_record = format!("{}#1", record.display());
    // (in a blob folder no stored blob uses, so that it is left empty)
    let prefix = (0..=255u8).map(|b| format!("{b:02x}")).find(|p| !data.join("blobs/sha256").join(p).exists()).unwrap();
    let in_blobs = data.join(format!("blobs/sha256/{prefix}/{prefix}{}#3", "0".repeat(62)));
    std::fs::create_dir_all(in_blobs.parent().unwrap()).unwrap();
    std::fs::write(&beside_record, b"{\"half\":").unwrap();
    std::fs::write(&in_blobs, b"half an archive").unwrap();
    set_age(Path::new(&beside_record), Duration::from_secs(2 * 3600));
    set_age(&in_blobs, Duration::from_secs(2 * 3600));
    // One written just now might belong to a write in progress: it stays.
    let fresh = format!("{}#2", record.display());
    std::fs::write(&fresh, b"{\"in flight\":").unwrap();
    assert_eq!(staging_files(&data).len(), 3);

    assert_eq!(gc_staging(&data, 3600), 2);
    let left: Vec<String> = staging_files(&data).into_iter().collect();
    assert_eq!(left, [Path::new(&fresh).strip_prefix(&data).unwrap().to_str().unwrap()]);
    assert!(!in_blobs.parent().unwrap().exists(), "the folder the leftover was alone in is gone");
    std::fs::remove_file(&fresh).unwrap();

    // A real one: an OCI blob upload whose body is still arriving is streamed into a
    // staging file; the server is killed with the upload half sent.
    let blob = noise(256 * 1024, 7);
    let digest = format!("sha256:{}", sha256(&blob));
    let mut stream = TcpStream::connect(server.address()).unwrap();
    let head = format!(
        "POST /v2/s/kept/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        server.address(),
        blob.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&blob[..blob.len() / 2]).unwrap();
    stream.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while staging_files(&data).is_empty() {
        assert!(Instant::now() < deadline, "no staging file appeared for the upload in flight");
        std::thread::sleep(Duration::from_millis(10));
    }
    server.kill();
    drop(stream);
    let leftovers = staging_files(&data);
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    assert_eq!(gc_staging(&data, 3600), 0, "a fresh staging file is never removed");
    assert_eq!(staging_files(&data), leftovers);
    assert_eq!(gc_staging(&data, 0), 1);
    assert!(staging_files(&data).is_empty());

    server.restart();
    assert_eq!(server.download("s", "kept", "1.0.0"), kept);
    assert_eq!(record_files(&data), BTreeSet::from(["s/kept/1.0.0".to_string()]));
}

/// The filesystem backend does not follow symbolic links: links planted in the data
/// directory (a loop, links to folders and files elsewhere) are left out of listings
/// instead of breaking them or pulling in what they point at.
#[test]
fn symbolic_links_in_the_data_directory_are_not_followed() {
    let mut server = Server::start();
    let data = server.data.path.clone();
    let stored = archive("app", "1.0.0", "app");
    json(server.upload("s", &stored), 201);
    let record = files_under(&data.join("charts")).into_iter().find(|p| p.ends_with("1.0.0.json")).unwrap();
    let chart_dir = record.parent().unwrap();
    let generation_dir = chart_dir.parent().unwrap();
    let outside = crate::common::TempDir::new("outside");
    std::fs::write(outside.path.join("2.0.0.json"), std::fs::read(&record).unwrap()).unwrap();

    use std::os::unix::fs::symlink;
    symlink("..", chart_dir.join("loop")).unwrap();
    symlink(&data, data.join("charts/s/root-loop")).unwrap();
    symlink(&outside.path, generation_dir.join("elsewhere")).unwrap();
    symlink(outside.path.join("2.0.0.json"), chart_dir.join("2.0.0.json")).unwrap();
    symlink(data.join("spaces/s.json"), data.join("spaces/alias.json")).unwrap();
    symlink("..", data.join("blobs/sha256/loop")).unwrap();
    // A fresh process: nothing cached, every answer comes from listings.
    server.restart();

    assert_eq!(json(server.get("/spaces"), 200)["items"], json!(["s"]));
    assert_eq!(json(server.get("/spaces/s/charts"), 200)["items"], json!(["app"]));
    assert_eq!(json(server.get("/spaces/s/charts/app/versions"), 200)["items"], json!(["1.0.0"]));
    assert_eq!(json(server.get("/spaces/s/metadata"), 200)["metadata"]["total"], 1);
    let index = client().get(server.url("/s/index.yaml")).send().unwrap();
    assert_eq!(index.status(), 200);
    let index: Value = chartyard_core::yaml::from_yaml(&index.bytes().unwrap(), "index").unwrap();
    assert_eq!(index["entries"].as_object().unwrap().keys().collect::<Vec<_>>(), ["app"]);
    assert_eq!(index["entries"]["app"].as_array().unwrap().len(), 1);
    let cm = json(client().get(server.url("/api/s/charts")).send().unwrap(), 200);
    assert_eq!(cm["app"].as_array().unwrap().len(), 1);
    assert_eq!(server.download("s", "app", "1.0.0"), stored);
    // Uploads, deletes and garbage collection work around the links too.
    json(server.upload("s", &archive("app", "1.1.0", "app")), 201);
    assert_eq!(json(server.get("/spaces/s/charts/app/versions"), 200)["items"], json!(["1.0.0", "1.1.0"]));
    let (referenced, _) = run_gc(&data, 0);
    assert!(referenced >= 2, "{referenced}");
    assert_eq!(server.download("s", "app", "1.0.0"), stored);
    assert!(outside.path.join("2.0.0.json").exists(), "nothing outside the data directory was touched");
}
