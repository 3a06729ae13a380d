//! The ChartMuseum API (`/api/{space}/...`, `/api/...` for the default space) and every
//! space as a classic Helm repository (`/{space}/index.yaml`, `/{space}/charts/...`):
//! status codes, `{"error"}` bodies, index shape and ordering, ETags, gzip, provenance,
//! and that writes through any API show at once in all the others.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use crate::common::{ChartBuilder, Server, chart_with_noise, client, json, sha256};
use reqwest::blocking::Response;
use serde_json::{Map, Value, json};

// ---- helpers ----

fn chart(name: &str, version: &str) -> Vec<u8> {
    ChartBuilder::new(name, version).build()
}

/// The same chart and version as [`chart`], with other bytes.
fn chart_variant(name: &str, version: &str) -> Vec<u8> {
    ChartBuilder::new(name, version).with(&format!("{name}/values.yaml"), "replicaCount: 2\n").build()
}

/// The Chart.yaml [`ChartBuilder::new`] writes.
fn chart_yaml(name: &str, version: &str) -> String {
    format!("apiVersion: v2\nname: {name}\nversion: {version}\ndescription: test chart {name}\n")
}

/// A Helm provenance file for `archive`, with a placeholder signature (the server checks
/// the signed content, not the signature).
fn provenance(name: &str, version: &str, archive: &[u8]) -> Vec<u8> {
    provenance_with_digest(name, version, &sha256(archive))
}

fn provenance_with_digest(name: &str, version: &str, digest: &str) -> Vec<u8> {
    format!(
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n{}\n...\nfiles:\n  {name}-{version}.tgz: sha256:{digest}\n-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n",
        chart_yaml(name, version)
    )
    .into_bytes()
}

/// `+` in a version, as it must be written in a URL path segment.
fn enc(version: &str) -> String {
    version.replace('+', "%2B")
}

/// POSTs a raw `.tgz` body to the ChartMuseum upload route (`query` includes its `?`).
fn cm_upload_raw(server: &Server, api_root: &str, archive: &[u8], query: &str) -> Response {
    client()
        .post(server.url(&format!("{api_root}/charts{query}")))
        .header("content-type", "application/octet-stream")
        .body(archive.to_vec())
        .send()
        .unwrap()
}

fn cm_upload(server: &Server, space: &str, archive: &[u8]) -> Response {
    cm_upload_raw(server, &format!("/api/{space}"), archive, "")
}

/// A multipart/form-data body built in one buffer (reqwest streams its own forms, and a
/// server that answers early then shows up as a send error instead of the answer).
fn multipart_body(fields: &[(&str, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "chartyard-test-boundary-7f3a9c";
    let mut body = Vec::new();
    for (name, file_name, data) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn post_multipart(server: &Server, path: &str, fields: &[(&str, &str, &[u8])]) -> Response {
    let (content_type, body) = multipart_body(fields);
    client().post(server.url(path)).header("content-type", content_type).body(body).send().unwrap()
}

/// Uploads chart and provenance as ChartMuseum's multipart fields `chart` and `prov`.
fn cm_upload_with_prov(server: &Server, space: &str, archive: &[u8], prov: &[u8], query: &str) -> Response {
    post_multipart(
        server,
        &format!("/api/{space}/charts{query}"),
        &[("chart", "chart.tgz", archive), ("prov", "chart.tgz.prov", prov)],
    )
}

/// Asserts a ChartMuseum error answer (`{"error": "..."}` and nothing else) and returns
/// its message.
fn cm_error(response: Response, status: u16) -> String {
    let body = json(response, status);
    let object = body.as_object().unwrap_or_else(|| panic!("error body is not an object: {body}"));
    assert_eq!(object.len(), 1, "error body has exactly one field: {body}");
    let message = body["error"].as_str().unwrap_or_else(|| panic!("no error message in {body}"));
    assert!(!message.is_empty(), "{body}");
    message.to_string()
}

fn get(server: &Server, path: &str) -> Response {
    client().get(server.url(path)).send().unwrap()
}

fn head(server: &Server, path: &str) -> Response {
    client().head(server.url(path)).send().unwrap()
}

fn status(response: Response) -> u16 {
    response.status().as_u16()
}

/// The body of a 200 answer.
fn body_ok(response: Response, what: &str) -> Vec<u8> {
    let status = response.status().as_u16();
    let bytes = response.bytes().unwrap().to_vec();
    assert_eq!(status, 200, "{what}: {}", String::from_utf8_lossy(&bytes[..bytes.len().min(500)]));
    bytes
}

fn parse_yaml(bytes: &[u8]) -> Value {
    chartyard_core::yaml::from_yaml::<Value>(bytes, "index")
        .unwrap_or_else(|e| panic!("index.yaml does not parse ({e:?}):\n{}", String::from_utf8_lossy(bytes)))
}

/// `index.yaml` of a repository root (`/{space}` or `` for the default space), parsed.
fn index_yaml(server: &Server, root: &str) -> Value {
    parse_yaml(&body_ok(get(server, &format!("{root}/index.yaml")), &format!("{root}/index.yaml")))
}

/// `chart -> [versions]` of an index (or of a ChartMuseum listing), in the order given.
fn versions_of(entries: &Value) -> BTreeMap<String, Vec<String>> {
    entries
        .as_object()
        .unwrap_or_else(|| panic!("entries are not a map: {entries}"))
        .iter()
        .map(|(name, list)| {
            let versions =
                list.as_array().unwrap().iter().map(|e| e["version"].as_str().unwrap().to_string()).collect();
            (name.clone(), versions)
        })
        .collect()
}

/// Names of an `/api/v1` list answer.
fn v1_names(body: &Value) -> Vec<String> {
    body["items"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

fn v1_versions(server: &Server, space: &str, chart: &str) -> Vec<String> {
    v1_names(&json(server.get(&format!("/spaces/{space}/charts/{chart}/versions?limit=1000")), 200))
}

fn v1_charts(server: &Server, space: &str) -> Vec<String> {
    v1_names(&json(server.get(&format!("/spaces/{space}/charts?limit=1000")), 200))
}

/// Checks one index entry against the archive it was made from.
fn assert_entry(entry: &Value, name: &str, version: &str, archive: &[u8]) {
    assert_eq!(entry["name"], name, "{entry}");
    assert_eq!(entry["version"], version, "{entry}");
    assert_eq!(entry["apiVersion"], "v2", "{entry}");
    assert_eq!(entry["digest"], sha256(archive), "{entry}");
    assert_eq!(entry["urls"], json!([format!("charts/{name}-{version}.tgz")]), "{entry}");
    let created = entry["created"].as_str().unwrap_or_else(|| panic!("no created in {entry}"));
    assert!(created.len() >= 20 && created.contains('T') && created.ends_with('Z'), "created is RFC 3339: {entry}");
}

fn etag(response: &Response) -> String {
    response.headers().get("etag").unwrap_or_else(|| panic!("no ETag")).to_str().unwrap().to_string()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

// ---- 1. uploads ----

#[test]
fn cm_upload_answers_saved_and_refuses_existing_versions() {
    let server = Server::start();
    let archive = chart("app", "1.0.0");
    assert_eq!(json(cm_upload(&server, "s", &archive), 201), json!({"saved": true}));
    let message = cm_error(cm_upload(&server, "s", &archive), 409);
    assert!(message.contains("exists"), "{message}");
    // Without ?force (or with force=false) another archive of the version is a conflict.
    let other = chart_variant("app", "1.0.0");
    cm_error(cm_upload(&server, "s", &other), 409);
    cm_error(cm_upload_raw(&server, "/api/s", &other, "?force=false"), 409);
    let download = body_ok(get(&server, "/s/charts/app-1.0.0.tgz"), "download");
    assert_eq!(sha256(&download), sha256(&archive), "a refused upload left the version as it was");
    assert_eq!(index_yaml(&server, "/s")["entries"]["app"][0]["digest"], sha256(&archive));
}

/// ChartMuseum's defaults, which `helm cm-push --force` relies on: `?force` replaces an
/// existing version unless `--disable-force-overwrite` is given.
#[test]
fn cm_force_overwrites_by_default() {
    let server = Server::start();
    let first = chart("app", "1.0.0");
    let second = chart_variant("app", "1.0.0");
    assert_ne!(sha256(&first), sha256(&second));
    json(cm_upload(&server, "s", &first), 201);
    for (query, archive) in [("?force", &second), ("?force=true", &first), ("?force=1", &second)] {
        assert_eq!(json(cm_upload_raw(&server, "/api/s", archive, query), 201), json!({"saved": true}), "{query}");
        assert_eq!(sha256(&body_ok(get(&server, "/s/charts/app-1.0.0.tgz"), "download")), sha256(archive));
        assert_eq!(server.download("s", "app", "1.0.0"), *archive);
        let index = index_yaml(&server, "/s");
        assert_eq!(versions_of(&index["entries"])["app"], ["1.0.0"], "overwriting does not add an entry");
        assert_eq!(index["entries"]["app"][0]["digest"], sha256(archive));
        assert_eq!(json(get(&server, "/api/s/charts/app/1.0.0"), 200)["digest"], sha256(archive));
    }
    // ?force on a new version is an ordinary upload.
    json(cm_upload_raw(&server, "/api/s", &chart("app", "2.0.0"), "?force"), 201);
    assert_eq!(versions_of(&index_yaml(&server, "/s")["entries"])["app"], ["2.0.0", "1.0.0"]);
}

#[test]
fn disable_force_overwrite_refuses_force() {
    for args in [&["--disable-force-overwrite"][..], &["--disable-force-overwrite", "true"]] {
        let server = Server::start_with(args);
        let archive = chart("app", "1.0.0");
        json(cm_upload(&server, "s", &archive), 201);
        for query in ["?force", "?force=true", "?force=1", "?force=false", ""] {
            let message = cm_error(cm_upload_raw(&server, "/api/s", &chart_variant("app", "1.0.0"), query), 409);
            assert!(message.contains("exists"), "{query}: {message}");
        }
        assert_eq!(body_ok(get(&server, "/s/charts/app-1.0.0.tgz"), "download"), archive);
        assert_eq!(index_yaml(&server, "/s")["entries"]["app"][0]["digest"], sha256(&archive));
    }
}

/// `--allow-overwrite` (ChartMuseum's flag): any upload replaces an existing version,
/// with or without ?force, even where ?force is disabled.
#[test]
fn allow_overwrite_replaces_without_force() {
    for args in [&["--allow-overwrite"][..], &["--allow-overwrite", "--disable-force-overwrite"]] {
        let server = Server::start_with(args);
        let first = chart("app", "1.0.0");
        let second = chart_variant("app", "1.0.0");
        json(cm_upload(&server, "s", &first), 201);
        assert_eq!(json(cm_upload(&server, "s", &second), 201), json!({"saved": true}), "{args:?}");
        assert_eq!(body_ok(get(&server, "/s/charts/app-1.0.0.tgz"), "download"), second);
        json(cm_upload_raw(&server, "/api/s", &first, "?force=false"), 201);
        assert_eq!(index_yaml(&server, "/s")["entries"]["app"][0]["digest"], sha256(&first));
        assert_eq!(versions_of(&json(get(&server, "/api/s/charts"), 200))["app"], ["1.0.0"]);
    }
}

#[test]
fn cm_upload_takes_multipart_chart_field() {
    let server = Server::start();
    let archive = chart("app", "1.0.0");
    let response = post_multipart(&server, "/api/s/charts", &[("chart", "app-1.0.0.tgz", &archive)]);
    assert_eq!(json(response, 201), json!({"saved": true}));
    assert_eq!(body_ok(get(&server, "/s/charts/app-1.0.0.tgz"), "download"), archive);
    // Unknown fields are ignored; a form without `chart` (or `prov`) is a bad request.
    let response = post_multipart(&server, "/api/s/charts", &[("file", "x.tgz", &chart("other", "1.0.0"))]);
    cm_error(response, 400);
    cm_error(get(&server, "/api/s/charts/other"), 404);
}

#[test]
fn cm_upload_rejects_invalid_and_empty_charts_and_stores_nothing() {
    let server = Server::start();
    json(server.create_space("s"), 201);
    cm_error(cm_upload(&server, "s", b"this is not a gzip archive"), 400);
    cm_error(cm_upload(&server, "s", &crate::common::gzip(b"not a tar either")), 400);
    let no_chart_yaml = ChartBuilder::empty().file("app/values.yaml", "a: 1\n").build();
    cm_error(cm_upload(&server, "s", &no_chart_yaml), 400);
    let bad_version = ChartBuilder::new("app", "1.0").build();
    cm_error(cm_upload(&server, "s", &bad_version), 400);
    cm_error(cm_upload(&server, "s", b""), 400);
    let response = post_multipart(&server, "/api/s/charts", &[("chart", "app.tgz", b"garbage")]);
    cm_error(response, 400);
    assert_eq!(json(get(&server, "/api/s/charts"), 200), json!({}));
    assert_eq!(index_yaml(&server, "/s")["entries"], json!({}));
}

#[test]
fn cm_upload_over_the_size_limit_is_413_with_a_json_body() {
    let server = Server::start_with(&["--max-upload-size", "8192"]);
    let big = chart_with_noise("big", "1.0.0", 12 * 1024);
    let message = cm_error(cm_upload(&server, "s", &big), 413);
    assert!(!message.is_empty());
    let response = post_multipart(&server, "/api/s/charts", &[("chart", "big.tgz", &big)]);
    cm_error(response, 413);
    // A chart under the limit still goes in, and the big one never did.
    json(cm_upload(&server, "s", &chart("small", "1.0.0")), 201);
    assert_eq!(versions_of(&json(get(&server, "/api/s/charts"), 200)).keys().collect::<Vec<_>>(), ["small"]);
    assert_eq!(status(get(&server, "/s/charts/big-1.0.0.tgz")), 404);
}

// ---- 2. ChartMuseum reads and deletes ----

#[test]
fn cm_lists_charts_newest_first_with_digests_and_urls() {
    let server = Server::start();
    let mut archives = BTreeMap::new();
    let uploads: &[(&str, &[&str])] = &[
        ("zeta", &["0.1.0"]),
        ("app", &["1.2.0", "0.9.0", "1.10.0", "1.0.0-rc.1+build.5", "2.0.0-alpha.1", "1.0.0"]),
        ("my-app", &["1.0.0-rc.1"]),
        ("beta", &["3.0.0-beta.1", "3.0.0-beta.2"]),
    ];
    for (name, versions) in uploads {
        for version in *versions {
            let archive = chart(name, version);
            json(cm_upload(&server, "s", &archive), 201);
            archives.insert((name.to_string(), version.to_string()), archive);
        }
    }
    let listing = json(get(&server, "/api/s/charts"), 200);
    let expected: BTreeMap<String, Vec<String>> = [
        ("app", vec!["2.0.0-alpha.1", "1.10.0", "1.2.0", "1.0.0", "1.0.0-rc.1+build.5", "0.9.0"]),
        ("beta", vec!["3.0.0-beta.2", "3.0.0-beta.1"]),
        ("my-app", vec!["1.0.0-rc.1"]),
        ("zeta", vec!["0.1.0"]),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_string(), v.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(versions_of(&listing), expected);
    for (name, list) in listing.as_object().unwrap() {
        for entry in list.as_array().unwrap() {
            let version = entry["version"].as_str().unwrap();
            assert_entry(entry, name, version, &archives[&(name.clone(), version.to_string())]);
        }
    }

    // offset and limit page over chart names (in name order).
    let page = |query: &str| -> Vec<String> {
        versions_of(&json(get(&server, &format!("/api/s/charts?{query}")), 200)).into_keys().collect()
    };
    assert_eq!(page("limit=2"), ["app", "beta"]);
    assert_eq!(page("offset=1&limit=2"), ["beta", "my-app"]);
    assert_eq!(page("offset=3"), ["zeta"]);
    assert_eq!(page("offset=4"), Vec::<String>::new());
    assert_eq!(page("offset=99&limit=5"), Vec::<String>::new());
    assert_eq!(page("limit=0"), Vec::<String>::new());
    assert_eq!(page("offset=0&limit=100"), ["app", "beta", "my-app", "zeta"]);
    for query in ["offset=-1", "limit=x", "offset=1.5"] {
        cm_error(get(&server, &format!("/api/s/charts?{query}")), 400);
    }

    // One chart: its versions, newest first; HEAD answers the same status.
    let app = json(get(&server, "/api/s/charts/app"), 200);
    assert_eq!(app, listing["app"]);
    assert_eq!(status(head(&server, "/api/s/charts/app")), 200);
    assert_eq!(cm_error(get(&server, "/api/s/charts/nope"), 404), "chart not found");
    assert_eq!(status(head(&server, "/api/s/charts/nope")), 404);

    // One version, and "latest": the highest stable version, else the highest pre-release.
    for (name, version) in [("app", "1.2.0"), ("app", "1.0.0-rc.1+build.5"), ("my-app", "1.0.0-rc.1")] {
        let entry = json(get(&server, &format!("/api/s/charts/{name}/{}", enc(version))), 200);
        assert_entry(&entry, name, version, &archives[&(name.to_string(), version.to_string())]);
        assert_eq!(status(head(&server, &format!("/api/s/charts/{name}/{}", enc(version)))), 200);
    }
    assert_eq!(json(get(&server, "/api/s/charts/app/latest"), 200)["version"], "1.10.0");
    assert_eq!(json(get(&server, "/api/s/charts/beta/latest"), 200)["version"], "3.0.0-beta.2");
    assert_eq!(json(get(&server, "/api/s/charts/my-app/latest"), 200)["version"], "1.0.0-rc.1");
    assert_eq!(status(head(&server, "/api/s/charts/app/latest")), 200);
    cm_error(get(&server, "/api/s/charts/app/9.9.9"), 404);
    assert_eq!(status(head(&server, "/api/s/charts/app/9.9.9")), 404);
    assert_eq!(cm_error(get(&server, "/api/s/charts/nope/1.0.0"), 404), "chart not found");
    cm_error(get(&server, "/api/s/charts/nope/latest"), 404);
    assert_eq!(status(head(&server, "/api/s/charts/nope/latest")), 404);
}

#[test]
fn cm_delete_removes_the_version_everywhere_at_once() {
    let server = Server::start();
    for version in ["1.0.0", "1.1.0", "1.0.0-rc.1+build.5"] {
        json(cm_upload(&server, "s", &chart("app", version)), 201);
    }
    json(cm_upload(&server, "s", &chart("other", "1.0.0")), 201);
    // Warm every view of the space first, so stale caches would show.
    assert_eq!(versions_of(&index_yaml(&server, "/s")["entries"])["app"], ["1.1.0", "1.0.0", "1.0.0-rc.1+build.5"]);
    json(get(&server, "/api/s/charts"), 200);
    body_ok(get(&server, "/s/index.json"), "index.json");

    assert_eq!(
        json(client().delete(server.url("/api/s/charts/app/1.1.0")).send().unwrap(), 200),
        json!({"deleted": true})
    );
    assert_eq!(versions_of(&index_yaml(&server, "/s")["entries"])["app"], ["1.0.0", "1.0.0-rc.1+build.5"]);
    let index_json: Value = serde_json::from_slice(&body_ok(get(&server, "/s/index.json"), "index.json")).unwrap();
    assert_eq!(versions_of(&index_json["entries"])["app"], ["1.0.0", "1.0.0-rc.1+build.5"]);
    assert_eq!(versions_of(&json(get(&server, "/api/s/charts"), 200))["app"], ["1.0.0", "1.0.0-rc.1+build.5"]);
    assert_eq!(v1_versions(&server, "s", "app"), ["1.0.0-rc.1+build.5", "1.0.0"]);
    cm_error(get(&server, "/api/s/charts/app/1.1.0"), 404);
    assert_eq!(json(get(&server, "/api/s/charts/app/latest"), 200)["version"], "1.0.0");
    assert_eq!(status(get(&server, "/s/charts/app-1.1.0.tgz")), 404);

    // Deleting a missing version (or one already deleted, or of a missing chart) is a 404.
    let delete = |path: &str| client().delete(server.url(path)).send().unwrap();
    assert_eq!(cm_error(delete("/api/s/charts/app/1.1.0"), 404), "chart not found");
    cm_error(delete("/api/s/charts/app/9.9.9"), 404);
    cm_error(delete("/api/s/charts/nope/1.0.0"), 404);

    // A build-metadata version, and then the chart's last version: the chart is gone.
    json(delete(&format!("/api/s/charts/app/{}", enc("1.0.0-rc.1+build.5"))), 200);
    json(delete("/api/s/charts/app/1.0.0"), 200);
    let index = index_yaml(&server, "/s");
    assert!(index["entries"].get("app").is_none(), "{index}");
    assert_eq!(versions_of(&index["entries"]).keys().collect::<Vec<_>>(), ["other"]);
    assert_eq!(cm_error(get(&server, "/api/s/charts/app"), 404), "chart not found");
    assert_eq!(v1_charts(&server, "s"), ["other"]);
    // The version can be uploaded again after its deletion.
    json(cm_upload(&server, "s", &chart("app", "1.1.0")), 201);
    assert_eq!(versions_of(&index_yaml(&server, "/s")["entries"])["app"], ["1.1.0"]);
}

// ---- 3. one store behind every API ----

#[test]
fn writes_through_each_api_show_at_once_in_the_others() {
    let server = Server::start();
    // Uploaded through /api/v1: in index.yaml and the ChartMuseum API at once.
    let v1_archive = chart("from-v1", "1.0.0");
    json(server.upload("s", &v1_archive), 201);
    let index = index_yaml(&server, "/s");
    assert_entry(&index["entries"]["from-v1"][0], "from-v1", "1.0.0", &v1_archive);
    assert_entry(&json(get(&server, "/api/s/charts/from-v1/1.0.0"), 200), "from-v1", "1.0.0", &v1_archive);

    // Uploaded through the ChartMuseum API: in the /api/v1 listings at once.
    let cm_archive = chart("from-cm", "2.0.0");
    json(cm_upload(&server, "s", &cm_archive), 201);
    assert_eq!(v1_charts(&server, "s"), ["from-cm", "from-v1"]);
    assert_eq!(v1_versions(&server, "s", "from-cm"), ["2.0.0"]);
    assert_eq!(server.download("s", "from-cm", "2.0.0"), cm_archive);
    let md = json(server.get("/spaces/s/charts/from-cm/versions/2.0.0/manifests/metadata"), 200);
    assert_eq!(md["name"], "from-cm");
    assert_entry(&index_yaml(&server, "/s")["entries"]["from-cm"][0], "from-cm", "2.0.0", &cm_archive);

    // The /api/v1 upload conflicts with the ChartMuseum one and vice versa.
    cm_error(cm_upload(&server, "s", &v1_archive), 409);
    assert_eq!(server.upload("s", &cm_archive).status(), 409);

    // Deleted through /api/v1 (a version, then a whole chart): gone from index.yaml at once.
    json(server.upload("s", &chart("from-v1", "1.1.0")), 201);
    assert_eq!(versions_of(&index_yaml(&server, "/s")["entries"])["from-v1"], ["1.1.0", "1.0.0"]);
    assert_eq!(server.delete("/spaces/s/charts/from-v1/versions/1.1.0").status(), 204);
    assert_eq!(versions_of(&index_yaml(&server, "/s")["entries"])["from-v1"], ["1.0.0"]);
    assert_eq!(versions_of(&json(get(&server, "/api/s/charts"), 200))["from-v1"], ["1.0.0"]);
    assert_eq!(server.delete("/spaces/s/charts/from-v1").status(), 204);
    let index = index_yaml(&server, "/s");
    assert_eq!(versions_of(&index["entries"]).keys().collect::<Vec<_>>(), ["from-cm"]);
    cm_error(get(&server, "/api/s/charts/from-v1"), 404);

    // Replaced through /api/v1: the index has the new digest at once.
    let replacement = chart_variant("from-cm", "2.0.0");
    json(server.replace("s", "from-cm", "2.0.0", &replacement), 200);
    assert_eq!(index_yaml(&server, "/s")["entries"]["from-cm"][0]["digest"], sha256(&replacement));
    assert_eq!(json(get(&server, "/api/s/charts/from-cm/2.0.0"), 200)["digest"], sha256(&replacement));

    // A metadata update through /api/v1 shows in the index too.
    let mut md = json(server.get("/spaces/s/charts/from-cm/versions/2.0.0/manifests/metadata"), 200);
    md["description"] = json!("updated through api v1");
    json(server.put_json("/spaces/s/charts/from-cm/versions/2.0.0/manifests/metadata", &md), 200);
    let entry = &index_yaml(&server, "/s")["entries"]["from-cm"][0];
    assert_eq!(entry["description"], "updated through api v1");
    let stored = server.download("s", "from-cm", "2.0.0");
    assert_eq!(entry["digest"], sha256(&stored), "the index digest is the rewritten archive's");

    // Deleting the space through /api/v1 takes its index with it: what is left is the
    // empty index of a space nobody uploaded to.
    assert_eq!(server.delete("/spaces/s").status(), 204);
    assert_eq!(index_yaml(&server, "/s")["entries"], json!({}));
    assert_eq!(json(get(&server, "/api/s/charts"), 200), json!({}));
    cm_error(get(&server, "/api/s/charts/from-cm"), 404);
}

#[test]
fn concurrent_cm_uploads_all_reach_the_index() {
    let server = Server::start();
    json(cm_upload(&server, "s", &chart("warm", "1.0.0")), 201);
    index_yaml(&server, "/s"); // loaded before the writes, so every write must update it
    let versions: Vec<String> = (0..24).map(|i| format!("1.{i}.0")).collect();
    std::thread::scope(|scope| {
        for chunk in versions.chunks(3) {
            let server = &server;
            scope.spawn(move || {
                for version in chunk {
                    json(cm_upload(server, "s", &chart("app", version)), 201);
                    json(cm_upload(server, "s", &chart(&format!("c{}", version.replace('.', "-")), "0.1.0")), 201);
                }
            });
        }
    });
    let index = index_yaml(&server, "/s");
    let mut expected = versions.clone();
    expected.sort_by(|a, b| chartyard_core::names::compare_versions(b, a));
    assert_eq!(versions_of(&index["entries"])["app"], expected);
    assert_eq!(index["entries"].as_object().unwrap().len(), 2 + versions.len());
    assert_eq!(json(get(&server, "/api/s/charts"), 200), index["entries"]);
}

#[test]
fn the_index_survives_a_restart_with_the_same_etag() {
    let mut server = Server::start();
    for version in ["1.0.0", "1.1.0-rc.1+b.2"] {
        json(cm_upload(&server, "s", &chart("app", version)), 201);
    }
    let archive = chart("web", "2.0.0");
    json(cm_upload_with_prov(&server, "s", &archive, &provenance("web", "2.0.0", &archive), ""), 201);
    let before = get(&server, "/s/index.yaml");
    let tag = etag(&before);
    let entries = parse_yaml(&before.bytes().unwrap())["entries"].clone();
    server.restart();
    // The ETag is derived from the entries, so every process holding them (a restarted one,
    // another replica) answers the same tag, and a client's cached copy stays valid.
    let revalidated = client().get(server.url("/s/index.yaml")).header("if-none-match", tag.as_str()).send().unwrap();
    assert_eq!(revalidated.status(), 304);
    let after = get(&server, "/s/index.yaml");
    assert_eq!(etag(&after), tag);
    assert_eq!(parse_yaml(&after.bytes().unwrap())["entries"], entries, "the same entries, created times included");
    assert_eq!(body_ok(get(&server, "/s/charts/web-2.0.0.tgz.prov"), "prov"), provenance("web", "2.0.0", &archive));
    assert_eq!(json(get(&server, "/api/s/charts"), 200), entries);
}

/// `VersionRecord::created` is documented as "when the version was first stored; kept
/// when the version is replaced".
#[test]
fn replacing_a_version_keeps_its_created_time() {
    let server = Server::start();
    json(cm_upload(&server, "s", &chart("app", "1.0.0")), 201);
    let created = json(get(&server, "/api/s/charts/app/1.0.0"), 200)["created"].clone();
    std::thread::sleep(std::time::Duration::from_millis(20));
    json(cm_upload_raw(&server, "/api/s", &chart_variant("app", "1.0.0"), "?force"), 201);
    assert_eq!(json(get(&server, "/api/s/charts/app/1.0.0"), 200)["created"], created, "after a forced upload");
    json(server.replace("s", "app", "1.0.0", &chart("app", "1.0.0")), 200);
    assert_eq!(index_yaml(&server, "/s")["entries"]["app"][0]["created"], created, "after /api/v1 PUT");
    json(server.put_json("/spaces/s/charts/app/versions/1.0.0/manifests/values", &json!({"replicaCount": 4})), 200);
    assert_eq!(index_yaml(&server, "/s")["entries"]["app"][0]["created"], created, "after a values update");
}

// ---- 4. index.yaml and index.json ----

#[test]
fn index_yaml_has_helms_shape_and_semver_order() {
    let server = Server::start();
    let mut archives = BTreeMap::new();
    let uploads: &[(&str, &str)] = &[
        ("web", "1.2.0"),
        ("web", "1.10.0"),
        ("web", "1.0.0-rc.1+build.5"),
        ("web", "1.0.0-rc.2"),
        ("web", "1.0.0"),
        ("web", "0.9.0"),
        ("web", "2.0.0-alpha.1"),
        ("Alpha", "1.0.0"),
        ("alpha", "1.0.0"),
        ("db-9", "12.1.0"),
        ("0chart", "0.0.1"),
    ];
    for (name, version) in uploads {
        let archive = chart(name, version);
        json(cm_upload(&server, "s", &archive), 201);
        archives.insert((name.to_string(), version.to_string()), archive);
    }
    let response = get(&server, "/s/index.yaml");
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("etag").is_some(), "index.yaml has an ETag");
    assert!(response.headers().get("content-encoding").is_none(), "no gzip unless asked for");
    let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.contains("yaml"), "{content_type}");
    let raw = response.bytes().unwrap().to_vec();
    let text = String::from_utf8(raw.clone()).unwrap();
    let index = parse_yaml(&raw);

    let top: BTreeSet<&str> = index.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(top, BTreeSet::from(["apiVersion", "entries", "generated"]), "{text}");
    assert_eq!(index["apiVersion"], "v1");
    let generated = index["generated"].as_str().unwrap_or_else(|| panic!("generated is a string: {text}"));
    assert!(generated.contains('T') && generated.ends_with('Z'), "{generated}");

    // Entries sorted by name (byte order) in the document itself, versions newest first.
    let names_in_text: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   ") && l.trim_end().ends_with(':'))
        .map(|l| l.trim().trim_end_matches(':').trim_matches('"').trim_matches('\''))
        .collect();
    assert_eq!(names_in_text, ["0chart", "Alpha", "alpha", "db-9", "web"], "{text}");
    let versions = versions_of(&index["entries"]);
    assert_eq!(
        versions["web"],
        ["2.0.0-alpha.1", "1.10.0", "1.2.0", "1.0.0", "1.0.0-rc.2", "1.0.0-rc.1+build.5", "0.9.0"]
    );
    assert_eq!(versions.len(), 5);
    for (name, list) in index["entries"].as_object().unwrap() {
        for entry in list.as_array().unwrap() {
            let version = entry["version"].as_str().unwrap();
            assert_entry(entry, name, version, &archives[&(name.clone(), version.to_string())]);
            assert_eq!(entry["description"], format!("test chart {name}"));
        }
    }

    // Every URL in the index resolves against the repository root to the exact archive,
    // whether `+` is sent as is (as Helm does) or percent-encoded.
    for ((name, version), archive) in &archives {
        let url = index["entries"][name.as_str()]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["version"] == version.as_str())
            .unwrap()["urls"][0]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(body_ok(get(&server, &format!("/s/{url}")), &url), *archive, "{url}");
        assert_eq!(body_ok(get(&server, &format!("/s/{}", enc(&url))), &url), *archive, "{url}");
    }

    // An empty space has an empty index.
    json(server.create_space("empty"), 201);
    let empty = index_yaml(&server, "/empty");
    assert_eq!(empty["apiVersion"], "v1");
    assert_eq!(empty["entries"], json!({}));
    assert!(empty["generated"].is_string());
}

#[test]
fn index_yaml_etag_answers_304_and_changes_with_uploads() {
    let server = Server::start();
    json(cm_upload(&server, "s", &chart("app", "1.0.0")), 201);
    let first = get(&server, "/s/index.yaml");
    let tag = etag(&first);
    let body = first.bytes().unwrap();
    assert!(tag.starts_with("W/\"") && tag.ends_with('"'), "a weak entity tag, derived from the entries: {tag}");

    let conditional =
        |tag: &str| client().get(server.url("/s/index.yaml")).header("if-none-match", tag).send().unwrap();
    let not_modified = conditional(&tag);
    assert_eq!(not_modified.status(), 304);
    assert_eq!(etag(&not_modified), tag);
    assert!(not_modified.bytes().unwrap().is_empty(), "304 has an empty body");
    assert_eq!(conditional(&format!("\"other\", {tag}")).status(), 304, "a list of tags");
    assert_eq!(conditional("\"other\"").status(), 200);
    // Reading does not change the tag.
    let again = get(&server, "/s/index.yaml");
    assert_eq!(etag(&again), tag);
    assert_eq!(again.bytes().unwrap(), body);

    // Every write that changes the entries changes it: upload, delete, replace.
    json(cm_upload(&server, "s", &chart("app", "1.1.0")), 201);
    let after_upload = get(&server, "/s/index.yaml");
    let tag2 = etag(&after_upload);
    assert_ne!(tag2, tag, "the ETag changes after an upload");
    let body2 = after_upload.bytes().unwrap();
    assert_ne!(body2, body);
    let stale = conditional(&tag);
    assert_eq!(stale.status(), 200, "an old ETag gets the new index");
    assert_eq!(versions_of(&parse_yaml(&stale.bytes().unwrap())["entries"])["app"], ["1.1.0", "1.0.0"]);
    assert_eq!(conditional(&tag2).status(), 304);

    json(client().delete(server.url("/api/s/charts/app/1.1.0")).send().unwrap(), 200);
    let tag3 = etag(&get(&server, "/s/index.yaml"));
    assert_ne!(tag3, tag2, "the ETag changes after a delete");
    assert_eq!(tag3, tag, "the same entries as before have the same ETag as before");
    json(server.replace("s", "app", "1.0.0", &chart_variant("app", "1.0.0")), 200);
    let tag4 = etag(&get(&server, "/s/index.yaml"));
    assert!(![&tag, &tag2, &tag3].contains(&&tag4), "the ETag changes after a replace");

    // index.json carries the tag of the same index and honours it too.
    let json_response = get(&server, "/s/index.json");
    assert_eq!(etag(&json_response), tag4);
    let conditional_json =
        client().get(server.url("/s/index.json")).header("if-none-match", tag4.as_str()).send().unwrap();
    assert_eq!(conditional_json.status(), 304);
    assert!(conditional_json.bytes().unwrap().is_empty());
}

#[test]
fn index_yaml_is_gzipped_only_when_asked_for() {
    let server = Server::start();
    for version in ["1.0.0", "1.1.0", "2.0.0-rc.1"] {
        json(cm_upload(&server, "s", &chart("app", version)), 201);
    }
    let plain_response = get(&server, "/s/index.yaml");
    assert!(plain_response.headers().get("content-encoding").is_none());
    let tag = etag(&plain_response);
    let plain = plain_response.bytes().unwrap().to_vec();
    assert!(plain.starts_with(b"apiVersion: v1\n"), "{}", String::from_utf8_lossy(&plain));

    for accept in ["gzip", "deflate, gzip", "gzip;q=1.0, identity;q=0.5", "br, GZIP"] {
        let response = client().get(server.url("/s/index.yaml")).header("accept-encoding", accept).send().unwrap();
        assert_eq!(response.status(), 200, "{accept}");
        assert_eq!(response.headers()["content-encoding"], "gzip", "{accept}");
        let vary = response.headers().get("vary").map(|v| v.to_str().unwrap().to_lowercase()).unwrap_or_default();
        assert!(vary.contains("accept-encoding"), "Vary: Accept-Encoding ({accept}): {vary:?}");
        let compressed = response.bytes().unwrap().to_vec();
        assert!(compressed.starts_with(&[0x1f, 0x8b]), "{accept}");
        assert_eq!(gunzip(&compressed), plain, "gunzipped == plain ({accept})");
    }
    for accept in ["identity", "deflate", "br", "gzip;q=0", "gzip; q=0"] {
        let response = client().get(server.url("/s/index.yaml")).header("accept-encoding", accept).send().unwrap();
        assert!(response.headers().get("content-encoding").is_none(), "{accept}");
        assert_eq!(response.bytes().unwrap().to_vec(), plain, "{accept}");
    }
    // The gzipped representation has its own tag; a conditional request with it is a 304
    // with an empty body, and the plain tag does not match it.
    let gzip_tag =
        client().get(server.url("/s/index.yaml")).header("accept-encoding", "gzip").send().unwrap().headers()["etag"]
            .to_str()
            .unwrap()
            .to_string();
    assert_ne!(gzip_tag, tag);
    let conditional = |if_none_match: &str| {
        client()
            .get(server.url("/s/index.yaml"))
            .header("accept-encoding", "gzip")
            .header("if-none-match", if_none_match)
            .send()
            .unwrap()
    };
    let response = conditional(&gzip_tag);
    assert_eq!(response.status(), 304);
    assert!(response.bytes().unwrap().is_empty());
    assert_eq!(conditional(&tag).status(), 200);
}

#[test]
fn index_json_has_the_same_entries_as_index_yaml() {
    let server = Server::start();
    for (name, version) in [("app", "1.0.0"), ("app", "1.10.0"), ("app", "1.2.0-rc.1+b.1"), ("my-db", "0.1.0")] {
        json(cm_upload(&server, "s", &chart(name, version)), 201);
    }
    json(server.upload("s", crate::common::SEED_TEST1), 201);
    let yaml = index_yaml(&server, "/s");
    let response = get(&server, "/s/index.json");
    assert!(response.headers()["content-type"].to_str().unwrap().contains("json"));
    let index: Value = serde_json::from_slice(&body_ok(response, "index.json")).unwrap();
    assert_eq!(index["apiVersion"], "v1");
    assert!(index["generated"].is_string());
    assert_eq!(index["entries"], yaml["entries"], "index.json and index.yaml carry the same entries");
    assert_eq!(versions_of(&index["entries"])["app"], ["1.10.0", "1.2.0-rc.1+b.1", "1.0.0"]);
    // A v1 (Helm 2 era) chart keeps its apiVersion in the index.
    assert_eq!(index["entries"]["test"][0]["apiVersion"], "v1");
    assert_eq!(index["entries"]["test"][0]["digest"], sha256(crate::common::SEED_TEST1));
}

/// Values YAML 1.1 readers (Helm's go-yaml) would take for booleans, nulls, numbers or
/// timestamps.
const AMBIGUOUS: &[&str] =
    &["yes", "no", "on", "off", "true", "false", "null", "~", "y", "n", "1e3", "1.10", "2001-12-14", "0o17", "012"];

/// Fails on any key or scalar value in `text` that is an unquoted [`AMBIGUOUS`] token.
fn assert_no_unquoted_ambiguous_scalars(text: &str) {
    for line in text.lines() {
        let item = line.trim_start().trim_start_matches("- ");
        let (key, value) = match item.split_once(": ") {
            Some((key, value)) => (key.trim(), Some(value.trim())),
            None => (item.trim().trim_end_matches(':'), None),
        };
        for token in [Some(key), value].into_iter().flatten() {
            assert!(!AMBIGUOUS.iter().any(|a| a.eq_ignore_ascii_case(token)), "unquoted {token:?} in line {line:?}");
        }
    }
}

#[test]
fn yaml_1_1_lookalikes_round_trip_as_strings() {
    let server = Server::start();
    let charts = [("yes", "1.10", "on"), ("null", "2001-12-14", "null"), ("1e3", "1e3", "yes"), ("true", "012", "off")];
    let mut archives = BTreeMap::new();
    for (name, app_version, description) in charts {
        let chart_yaml = format!(
            "apiVersion: v2\nname: \"{name}\"\nversion: 1.0.0\nappVersion: \"{app_version}\"\ndescription: \"{description}\"\nkeywords: [\"no\", \"on\", \"1.10\"]\nannotations:\n  date: \"2001-12-14\"\n  flag: \"true\"\n  \"yes\": \"null\"\n"
        );
        let archive = ChartBuilder::new(name, "1.0.0").with(&format!("{name}/Chart.yaml"), chart_yaml).build();
        json(cm_upload(&server, "s", &archive), 201);
        archives.insert(name, archive);
    }
    let raw = body_ok(get(&server, "/s/index.yaml"), "index.yaml");
    let text = String::from_utf8(raw.clone()).unwrap();
    assert_no_unquoted_ambiguous_scalars(&text);
    let index = parse_yaml(&raw);
    let index_json: Value = serde_json::from_slice(&body_ok(get(&server, "/s/index.json"), "index.json")).unwrap();
    let listing = json(get(&server, "/api/s/charts"), 200);
    let mut names: Vec<&str> = charts.iter().map(|c| c.0).collect();
    names.sort();
    let keys: Vec<&str> = index["entries"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, names, "chart names stay strings: {text}");
    for (name, app_version, description) in charts {
        for (source, entries) in
            [("index.yaml", &index["entries"]), ("index.json", &index_json["entries"]), ("cm", &listing)]
        {
            let entry = &entries[name][0];
            assert_eq!(entry["name"], json!(name), "{source}: {entry}");
            assert_eq!(entry["appVersion"], json!(app_version), "{source}: {entry}");
            assert_eq!(entry["description"], json!(description), "{source}: {entry}");
            assert_eq!(entry["keywords"], json!(["no", "on", "1.10"]), "{source}: {entry}");
            assert_eq!(entry["annotations"], json!({"date": "2001-12-14", "flag": "true", "yes": "null"}), "{source}");
            assert_eq!(entry["urls"], json!([format!("charts/{name}-1.0.0.tgz")]), "{source}");
        }
        let entry = json(get(&server, &format!("/api/s/charts/{name}/1.0.0")), 200);
        assert_eq!(entry["appVersion"], json!(app_version));
        assert_eq!(json(get(&server, &format!("/api/s/charts/{name}/latest")), 200)["name"], json!(name));
        let download = body_ok(get(&server, &format!("/s/charts/{name}-1.0.0.tgz")), name);
        assert_eq!(download, archives[name]);
    }
}

/// As on ChartMuseum, a repository nobody uploaded to has an empty index (so `helm repo
/// add` works before the first push) and lists no charts; everything in it is 404.
#[test]
fn unknown_spaces_have_an_empty_index_and_nothing_else() {
    let server = Server::start();
    json(cm_upload(&server, "s", &chart("app", "1.0.0")), 201);
    let index = index_yaml(&server, "/nope");
    assert_eq!((&index["apiVersion"], &index["entries"]), (&json!("v1"), &json!({})), "{index}");
    let index: Value = json(get(&server, "/nope/index.json"), 200);
    assert_eq!(index["entries"], json!({}), "{index}");
    assert_eq!(json(get(&server, "/api/nope/charts"), 200), json!({}));
    for path in ["/nope/charts/app-1.0.0.tgz", "/nope/charts/app-1.0.0.tgz.prov"] {
        assert_eq!(status(get(&server, path)), 404, "{path}");
    }
    for path in ["/api/nope/charts/app", "/api/nope/charts/app/1.0.0", "/api/nope/charts/app/latest"] {
        cm_error(get(&server, path), 404);
    }
    // A name no space can have is still not a repository.
    assert_eq!(status(get(&server, "/-bad/index.yaml")), 400);
    cm_error(client().delete(server.url("/api/nope/charts/app/1.0.0")).send().unwrap(), 404);
    let prov = provenance("app", "1.0.0", &chart("app", "1.0.0"));
    cm_error(client().post(server.url("/api/nope/prov")).body(prov).send().unwrap(), 404);
    // Reading never creates a space.
    assert!(!v1_names(&json(server.get("/spaces"), 200)).contains(&"nope".to_string()));
}

// ---- 5. archive downloads ----

#[test]
fn archives_download_byte_identical_by_file_name() {
    let server = Server::start();
    let cases = [
        ("my-app", "1.0.0-rc.1"),
        ("my-app", "1.0.0"),
        ("my-app-2", "1.0.0"),
        ("a-b-c", "10.20.30-alpha-1.beta-2"),
        ("app", "1.0.0-rc.1+build.5"),
        ("app", "1.0.0"),
        ("app_x", "0.0.1"),
    ];
    let mut archives = Vec::new();
    for (name, version) in cases {
        let archive = chart(name, version);
        json(cm_upload(&server, "s", &archive), 201);
        archives.push((name, version, archive));
    }
    for (name, version, archive) in &archives {
        let path = format!("/s/charts/{name}-{}.tgz", enc(version));
        let response = get(&server, &path);
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["content-type"], "application/gzip", "{path}");
        assert_eq!(response.headers()["content-length"], archive.len().to_string().as_str(), "{path}");
        let bytes = response.bytes().unwrap();
        assert_eq!(sha256(&bytes), sha256(archive), "{path}");
        let head = head(&server, &path);
        assert_eq!(head.status(), 200, "HEAD {path}");
        assert_eq!(head.headers()["content-length"], archive.len().to_string().as_str(), "HEAD {path}");
        // No provenance was uploaded.
        assert_eq!(status(get(&server, &format!("{path}.prov"))), 404, "{path}.prov");
    }
    for path in [
        "/s/charts/my-app-9.9.9.tgz",
        "/s/charts/my-app-1.0.0-rc.2.tgz",
        "/s/charts/nope-1.0.0.tgz",
        "/s/charts/my-1.0.0.tgz",
        "/s/charts/my-app.tgz",
        "/s/charts/my-app-1.0.tgz",
        "/s/charts/my-app-1.0.0",
        "/s/charts/my-app-1.0.0.zip",
        "/s/charts/app-1.0.0-rc.1.tgz",
        "/s/charts/-1.0.0.tgz",
        "/s/charts/.tgz",
        "/s/charts/nope-1.0.0.tgz.prov",
    ] {
        assert_eq!(status(get(&server, path)), 404, "{path}");
    }
}

// ---- 6. provenance ----

#[test]
fn provenance_uploaded_with_the_chart_is_served_byte_identical() {
    let server = Server::start();
    let archive = chart("app", "1.0.0-rc.1+build.5");
    let prov = provenance("app", "1.0.0-rc.1+build.5", &archive);
    assert_eq!(json(cm_upload_with_prov(&server, "s", &archive, &prov, ""), 201), json!({"saved": true}));
    let path = format!("/s/charts/app-{}.tgz", enc("1.0.0-rc.1+build.5"));
    assert_eq!(body_ok(get(&server, &path), "archive"), archive);
    assert_eq!(body_ok(get(&server, &format!("{path}.prov")), "prov"), prov, "provenance is served byte-identical");
    assert_eq!(status(head(&server, &format!("{path}.prov"))), 200);

    // A second chart, with CRLF line endings in its provenance (as some tools write).
    let other = chart("my-app", "2.0.0");
    let crlf = String::from_utf8(provenance("my-app", "2.0.0", &other)).unwrap().replace('\n', "\r\n").into_bytes();
    json(cm_upload_with_prov(&server, "s", &other, &crlf, ""), 201);
    assert_eq!(body_ok(get(&server, "/s/charts/my-app-2.0.0.tgz.prov"), "prov"), crlf);

    // Deleting the version takes its provenance; uploading it again (without one) does
    // not bring the old provenance back.
    json(client().delete(server.url("/api/s/charts/my-app/2.0.0")).send().unwrap(), 200);
    assert_eq!(status(get(&server, "/s/charts/my-app-2.0.0.tgz.prov")), 404);
    json(cm_upload(&server, "s", &other), 201);
    assert_eq!(status(get(&server, "/s/charts/my-app-2.0.0.tgz.prov")), 404, "no stale provenance after re-upload");
}

#[test]
fn provenance_can_be_added_later_and_must_match_the_archive() {
    let server = Server::start();
    let archive = chart("app", "1.0.0");
    json(cm_upload(&server, "s", &archive), 201);
    assert_eq!(status(get(&server, "/s/charts/app-1.0.0.tgz.prov")), 404);

    // A provenance whose digest is not the archive's: 400, nothing stored.
    let wrong = provenance_with_digest("app", "1.0.0", &"0".repeat(64));
    let message = cm_error(client().post(server.url("/api/s/prov")).body(wrong.clone()).send().unwrap(), 400);
    assert!(message.contains("provenance"), "{message}");
    cm_error(post_multipart(&server, "/api/s/prov", &[("prov", "app-1.0.0.tgz.prov", &wrong)]), 400);
    assert_eq!(status(get(&server, "/s/charts/app-1.0.0.tgz.prov")), 404);
    // Not a provenance file at all; an empty body.
    cm_error(client().post(server.url("/api/s/prov")).body("hello").send().unwrap(), 400);
    cm_error(client().post(server.url("/api/s/prov")).body("").send().unwrap(), 400);
    // A provenance for a version (or chart) that does not exist: 404.
    let missing_version = provenance("app", "9.9.9", &archive);
    cm_error(client().post(server.url("/api/s/prov")).body(missing_version).send().unwrap(), 404);
    let missing_chart = provenance("nope", "1.0.0", &archive);
    cm_error(client().post(server.url("/api/s/prov")).body(missing_chart).send().unwrap(), 404);

    // The right one, as a raw body: 201, served byte-identical.
    let prov = provenance("app", "1.0.0", &archive);
    let response = client().post(server.url("/api/s/prov")).body(prov.clone()).send().unwrap();
    assert_eq!(json(response, 201), json!({"saved": true}));
    assert_eq!(body_ok(get(&server, "/s/charts/app-1.0.0.tgz.prov"), "prov"), prov);
    // As a multipart `prov` field, to /prov or to /charts (ChartMuseum accepts both).
    let archive2 = chart("app", "2.0.0");
    json(cm_upload(&server, "s", &archive2), 201);
    let prov2 = provenance("app", "2.0.0", &archive2);
    json(post_multipart(&server, "/api/s/prov", &[("prov", "app-2.0.0.tgz.prov", &prov2)]), 201);
    assert_eq!(body_ok(get(&server, "/s/charts/app-2.0.0.tgz.prov"), "prov"), prov2);
    let archive3 = chart("app", "3.0.0");
    json(cm_upload(&server, "s", &archive3), 201);
    let prov3 = provenance("app", "3.0.0", &archive3);
    json(post_multipart(&server, "/api/s/charts", &[("prov", "app-3.0.0.tgz.prov", &prov3)]), 201);
    assert_eq!(body_ok(get(&server, "/s/charts/app-3.0.0.tgz.prov"), "prov"), prov3);
    // The provenance of one version does not leak to another.
    assert_eq!(body_ok(get(&server, "/s/charts/app-1.0.0.tgz.prov"), "prov"), prov);
}

#[test]
fn a_mismatched_provenance_stores_neither_chart_nor_provenance() {
    let server = Server::start();
    json(server.create_space("s"), 201);
    let archive = chart("app", "1.0.0");
    let other_bytes = chart_variant("app", "1.0.0");
    let cases = [
        ("digest of other bytes", provenance("app", "1.0.0", &other_bytes)),
        ("other version", provenance("app", "1.0.1", &archive)),
        ("other chart", provenance("web", "1.0.0", &archive)),
        ("not a provenance", b"-----BEGIN PGP SIGNED MESSAGE-----\nno body".to_vec()),
    ];
    for (what, prov) in &cases {
        cm_error(cm_upload_with_prov(&server, "s", &archive, prov, ""), 400);
        assert_eq!(status(get(&server, "/s/charts/app-1.0.0.tgz")), 404, "{what}: no chart stored");
        assert_eq!(status(get(&server, "/s/charts/app-1.0.0.tgz.prov")), 404, "{what}: no provenance stored");
        cm_error(get(&server, "/api/s/charts/app"), 404);
        assert_eq!(index_yaml(&server, "/s")["entries"], json!({}), "{what}");
        assert!(v1_charts(&server, "s").is_empty(), "{what}");
    }
    // Into a space that does not exist yet: it is not created either.
    cm_error(cm_upload_with_prov(&server, "fresh", &archive, &cases[0].1, ""), 400);
    assert!(!v1_names(&json(server.get("/spaces"), 200)).contains(&"fresh".to_string()));
}

#[test]
fn replacing_a_chart_drops_its_stale_provenance() {
    let server = Server::start();
    let first = chart("app", "1.0.0");
    let second = chart_variant("app", "1.0.0");
    let third = ChartBuilder::new("app", "1.0.0").with("app/values.yaml", "replicaCount: 3\n").build();

    // Forced overwrite through the ChartMuseum API.
    json(cm_upload_with_prov(&server, "s", &first, &provenance("app", "1.0.0", &first), ""), 201);
    assert_eq!(status(get(&server, "/s/charts/app-1.0.0.tgz.prov")), 200);
    json(cm_upload_raw(&server, "/api/s", &second, "?force"), 201);
    assert_eq!(body_ok(get(&server, "/s/charts/app-1.0.0.tgz"), "archive"), second);
    assert_eq!(status(get(&server, "/s/charts/app-1.0.0.tgz.prov")), 404, "stale provenance after a forced upload");

    // A forced overwrite that brings its own provenance keeps that one.
    let prov3 = provenance("app", "1.0.0", &third);
    json(cm_upload_with_prov(&server, "s", &third, &prov3, "?force"), 201);
    assert_eq!(body_ok(get(&server, "/s/charts/app-1.0.0.tgz"), "archive"), third);
    assert_eq!(body_ok(get(&server, "/s/charts/app-1.0.0.tgz.prov"), "prov"), prov3);

    // A forced overwrite with a provenance for other bytes changes nothing.
    cm_error(cm_upload_with_prov(&server, "s", &first, &prov3, "?force"), 400);
    assert_eq!(body_ok(get(&server, "/s/charts/app-1.0.0.tgz"), "archive"), third);
    assert_eq!(body_ok(get(&server, "/s/charts/app-1.0.0.tgz.prov"), "prov"), prov3);

    // Replace through /api/v1 PUT.
    json(server.replace("s", "app", "1.0.0", &first), 200);
    assert_eq!(body_ok(get(&server, "/s/charts/app-1.0.0.tgz"), "archive"), first);
    assert_eq!(status(get(&server, "/s/charts/app-1.0.0.tgz.prov")), 404, "stale provenance after /api/v1 PUT");

    // A values update through /api/v1 rewrites the archive: the provenance goes too.
    json(client().post(server.url("/api/s/prov")).body(provenance("app", "1.0.0", &first)).send().unwrap(), 201);
    assert_eq!(status(get(&server, "/s/charts/app-1.0.0.tgz.prov")), 200);
    json(server.put_json("/spaces/s/charts/app/versions/1.0.0/manifests/values", &json!({"replicaCount": 9})), 200);
    assert_eq!(status(get(&server, "/s/charts/app-1.0.0.tgz.prov")), 404, "stale provenance after a values update");
}

// ---- 7. the default space ----

#[test]
fn the_default_space_is_served_at_the_root() {
    let server = Server::start_with(&["--default-space", "main"]);
    let archive = chart("app", "1.0.0-rc.1");
    assert_eq!(json(cm_upload_raw(&server, "/api", &archive, ""), 201), json!({"saved": true}));
    json(cm_upload(&server, "main", &chart("app", "1.0.0")), 201);
    json(cm_upload(&server, "other", &chart("elsewhere", "1.0.0")), 201);

    let root = index_yaml(&server, "");
    let named = index_yaml(&server, "/main");
    assert_eq!(root["entries"], named["entries"]);
    assert_eq!(
        versions_of(&root["entries"]),
        BTreeMap::from([("app".to_string(), vec!["1.0.0".into(), "1.0.0-rc.1".into()])])
    );
    let root_json: Value = serde_json::from_slice(&body_ok(get(&server, "/index.json"), "index.json")).unwrap();
    assert_eq!(root_json["entries"], named["entries"]);
    assert_eq!(body_ok(get(&server, "/charts/app-1.0.0-rc.1.tgz"), "root download"), archive);
    assert_eq!(body_ok(get(&server, "/main/charts/app-1.0.0-rc.1.tgz"), "space download"), archive);
    assert_eq!(status(get(&server, "/charts/elsewhere-1.0.0.tgz")), 404, "only the default space at the root");

    let listing = json(get(&server, "/api/charts"), 200);
    assert_eq!(listing, json(get(&server, "/api/main/charts"), 200));
    assert_eq!(versions_of(&listing)["app"], ["1.0.0", "1.0.0-rc.1"]);
    assert_eq!(json(get(&server, "/api/charts/app"), 200), listing["app"]);
    assert_entry(&json(get(&server, "/api/charts/app/1.0.0-rc.1"), 200), "app", "1.0.0-rc.1", &archive);
    assert_eq!(json(get(&server, "/api/charts/app/latest"), 200)["version"], "1.0.0");
    cm_error(get(&server, "/api/charts/elsewhere"), 404);
    cm_error(cm_upload_raw(&server, "/api", &archive, ""), 409);

    // Provenance at the root.
    let prov = provenance("app", "1.0.0-rc.1", &archive);
    json(client().post(server.url("/api/prov")).body(prov.clone()).send().unwrap(), 201);
    assert_eq!(body_ok(get(&server, "/charts/app-1.0.0-rc.1.tgz.prov"), "prov"), prov);

    // ETags at the root are those of the space.
    let tag = etag(&get(&server, "/index.yaml"));
    assert_eq!(etag(&get(&server, "/main/index.yaml")), tag);
    let conditional = client().get(server.url("/index.yaml")).header("if-none-match", tag.as_str()).send().unwrap();
    assert_eq!(conditional.status(), 304);

    // Deleting at the root deletes from the space.
    json(client().delete(server.url("/api/charts/app/1.0.0-rc.1")).send().unwrap(), 200);
    assert_eq!(versions_of(&index_yaml(&server, "/main")["entries"])["app"], ["1.0.0"]);
    assert_eq!(status(get(&server, "/charts/app-1.0.0-rc.1.tgz")), 404);
    cm_error(client().delete(server.url("/api/charts/app/1.0.0-rc.1")).send().unwrap(), 404);

    // The /api/v1 API and the named spaces still work beside the root.
    assert_eq!(v1_versions(&server, "main", "app"), ["1.0.0"]);
    assert_eq!(versions_of(&index_yaml(&server, "/other")["entries"])["elsewhere"], ["1.0.0"]);
    assert_eq!(json(get(&server, "/health"), 200), json!({"healthy": true}));
}

#[test]
fn without_a_default_space_the_root_has_no_repository() {
    let server = Server::start();
    json(cm_upload(&server, "main", &chart("app", "1.0.0")), 201);
    for path in ["/index.yaml", "/index.json", "/charts/app-1.0.0.tgz", "/api/charts", "/api/charts/app/1.0.0"] {
        assert_eq!(status(get(&server, path)), 404, "{path}");
    }
    assert_eq!(status(cm_upload_raw(&server, "/api", &chart("x", "1.0.0"), "")), 404);
    assert!(!v1_charts(&server, "main").contains(&"x".to_string()));
    // The space itself is served as usual.
    assert_eq!(versions_of(&index_yaml(&server, "/main")["entries"])["app"], ["1.0.0"]);
}

// ---- 8. reserved space names ----

#[test]
fn reserved_space_names_are_refused() {
    let server = Server::start();
    for name in chartyard_core::names::RESERVED_SPACE_NAMES {
        let message = crate::common::error(server.create_space(name), 400);
        assert!(message.contains("reserved"), "{name}: {message}");
    }
    for name in ["api", "v2", "health", "info", "charts"] {
        let message = crate::common::error(server.upload(name, &chart("app", "1.0.0")), 400);
        assert!(message.contains("reserved"), "upload into {name}: {message}");
    }
    // Through the ChartMuseum API too (except v1, which is /api/v1's own prefix).
    for name in ["api", "v2", "health", "info", "charts", "apidocs", "metrics"] {
        let response = cm_upload(&server, name, &chart("app", "1.0.0"));
        assert_eq!(response.status(), 400, "ChartMuseum upload into {name}");
    }
    let spaces = v1_names(&json(server.get("/spaces?limit=1000"), 200));
    assert!(spaces.is_empty(), "no reserved space was created: {spaces:?}");
    // Names that only contain a reserved word are fine.
    json(server.create_space("api2"), 201);
    json(cm_upload(&server, "health-checks", &chart("app", "1.0.0")), 201);
    assert_eq!(versions_of(&index_yaml(&server, "/health-checks")["entries"])["app"], ["1.0.0"]);
}

// ---- 9. health and info ----

#[test]
fn health_and_info() {
    let server = Server::start();
    assert_eq!(json(get(&server, "/health"), 200), json!({"healthy": true}));
    let info = json(get(&server, "/info"), 200);
    let version = info["version"].as_str().unwrap_or_else(|| panic!("no version in {info}"));
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
}

// ---- 10. the real-chart corpus against helm's own reading ----

/// Absent, null, "", [], {} and false are the same to Helm.
fn meaningful(value: Option<&Value>) -> Value {
    match value {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Value::Null,
        Some(Value::String(s)) if s.is_empty() => Value::Null,
        Some(Value::Array(a)) if a.is_empty() => Value::Null,
        Some(Value::Object(o)) if o.is_empty() => Value::Null,
        Some(other) => other.clone(),
    }
}

/// The fields of a chart's metadata that the index must carry as Helm reads them.
fn comparable(metadata: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    for field in [
        "name",
        "version",
        "apiVersion",
        "appVersion",
        "description",
        "type",
        "keywords",
        "home",
        "sources",
        "icon",
        "deprecated",
        "kubeVersion",
        "annotations",
    ] {
        out.insert(field.into(), meaningful(metadata.get(field)));
    }
    let list = |field: &str, keys: &[&str]| -> Value {
        match meaningful(metadata.get(field)) {
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|item| Value::Object(keys.iter().map(|k| (k.to_string(), meaningful(item.get(*k)))).collect()))
                    .collect(),
            ),
            other => other,
        }
    };
    out.insert("maintainers".into(), list("maintainers", &["name", "email", "url"]));
    out.insert(
        "dependencies".into(),
        list("dependencies", &["name", "version", "repository", "condition", "alias", "tags"]),
    );
    out
}

#[test]
fn corpus_index_entries_match_helm_show_chart_and_downloads_are_exact() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/charts");
    let Ok(manifest) = std::fs::read_to_string(corpus.join("manifest.tsv")) else {
        eprintln!("shared chart corpus not found ({}); skipping", corpus.display());
        return;
    };
    let Some(helm) = crate::common::helm(3) else { return };
    let started = Instant::now();
    let server = Server::start();
    // (name, version) -> (file, sha256)
    let mut expected: BTreeMap<(String, String), (String, String)> = BTreeMap::new();
    for line in manifest.lines().skip(1).filter(|l| l.starts_with("real/")) {
        let cols: Vec<&str> = line.split('\t').collect();
        let archive = std::fs::read(corpus.join(cols[0])).unwrap();
        assert_eq!(sha256(&archive), cols[8], "{} matches the manifest", cols[0]);
        let response = cm_upload(&server, "corpus", &archive);
        assert_eq!(json(response, 201), json!({"saved": true}), "{}", cols[0]);
        let key = (cols[1].to_string(), cols[2].to_string());
        assert!(expected.insert(key, (cols[0].to_string(), cols[8].to_string())).is_none(), "{line}");
    }
    assert_eq!(expected.len(), 145, "charts under real/");

    let index = index_yaml(&server, "/corpus");
    let listing = json(get(&server, "/api/corpus/charts"), 200);
    assert_eq!(listing, index["entries"], "the ChartMuseum listing is the index's entries");
    let mut seen = BTreeSet::new();
    let mut mismatches = Vec::new();
    for (name, list) in index["entries"].as_object().unwrap() {
        let versions: Vec<&str> = list.as_array().unwrap().iter().map(|e| e["version"].as_str().unwrap()).collect();
        let mut sorted = versions.clone();
        sorted.sort_by(|a, b| chartyard_core::names::compare_versions(b, a));
        assert_eq!(versions, sorted, "{name}: newest first");
        for entry in list.as_array().unwrap() {
            let version = entry["version"].as_str().unwrap().to_string();
            let (file, digest) = expected
                .get(&(name.clone(), version.clone()))
                .unwrap_or_else(|| panic!("{name}-{version} is in the index but was not uploaded"));
            assert!(seen.insert((name.clone(), version.clone())), "{name}-{version} twice in the index");
            assert_eq!(entry["digest"], digest.as_str(), "{file}: digest");
            assert_eq!(entry["urls"], json!([format!("charts/{name}-{version}.tgz")]), "{file}");
            assert!(entry["created"].as_str().is_some_and(|c| !c.is_empty()), "{file}: created");

            let output = Command::new(&helm).args(["show", "chart"]).arg(corpus.join(file)).output().unwrap();
            assert!(output.status.success(), "helm show chart {file}: {}", String::from_utf8_lossy(&output.stderr));
            let shown: Value = chartyard_core::yaml::from_yaml(&output.stdout, "helm show chart")
                .unwrap_or_else(|e| panic!("{file}: helm's output does not parse: {e:?}"));
            let (ours, helms) = (comparable(entry), comparable(&shown));
            for (field, helm_value) in &helms {
                if ours[field] != *helm_value {
                    mismatches.push(format!("{file}: {field}: index {} != helm {}", ours[field], helm_value));
                }
            }

            let path = format!("/corpus/charts/{name}-{}.tgz", enc(&version));
            let download = body_ok(get(&server, &path), &path);
            assert_eq!(sha256(&download), *digest, "{path}");
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} field(s) differ from helm show chart:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    assert_eq!(seen.len(), 145, "every uploaded chart is in the index");
    eprintln!("corpus: 145 charts checked in {:.1?}", started.elapsed());
}
