//! The OCI distribution API under `/v2/`, endpoint by endpoint (end-1 .. end-13 of the
//! distribution spec) for a generic artifact, then Helm charts over OCI without helm:
//! pushed charts become versions everywhere, and versions uploaded through other APIs can
//! be pulled. Optional checks with real clients (skopeo, oras-py) when they are installed.
//! The version check (end-1) and the error answers that need no server state beyond one
//! request are checked in process, in `crates/http/tests/it/oci_errors.rs`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{
    ChartBuilder, Server, TempDir, chart_config, client, descriptor, digest_of, json, manifest_bytes, run, sha256, tool,
};
use reqwest::blocking::Response;
use serde_json::{Value, json};

const REPO: &str = "/v2/s/artifact";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
const CONFIG_TYPE: &str = "application/vnd.example.config.v1+json";
const LAYER_TYPE: &str = "application/vnd.example.layer.v1.tar";
const HELM_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";
const HELM_CHART: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";

// ---- helpers ----

fn status(response: &Response) -> u16 {
    response.status().as_u16()
}

fn header(response: &Response, name: &str) -> Option<String> {
    response.headers().get(name).map(|v| v.to_str().unwrap().to_string())
}

/// A header the response must have.
fn must_header(response: &Response, name: &str) -> String {
    header(response, name).unwrap_or_else(|| panic!("no {name} header in {:?}", response.headers()))
}

/// A Location (or Link) target as a full URL; the server answers paths.
fn resolve(server: &Server, location: &str) -> String {
    if location.starts_with("http://") { location.to_string() } else { server.url(location) }
}

/// `location` with one more query parameter.
fn with_query(location: &str, query: &str) -> String {
    let separator = if location.contains('?') { '&' } else { '?' };
    format!("{location}{separator}{query}")
}

fn get(server: &Server, path: &str) -> Response {
    client().get(resolve(server, path)).send().unwrap()
}

fn head(server: &Server, path: &str) -> Response {
    client().head(resolve(server, path)).send().unwrap()
}

fn delete(server: &Server, path: &str) -> Response {
    client().delete(resolve(server, path)).send().unwrap()
}

/// The body of an answer with the given status.
fn body(response: Response, expected: u16) -> Vec<u8> {
    let actual = status(&response);
    let bytes = response.bytes().unwrap().to_vec();
    assert_eq!(
        actual,
        expected,
        "unexpected status; body: {}",
        String::from_utf8_lossy(&bytes[..bytes.len().min(600)])
    );
    bytes
}

/// Asserts an error in the distribution spec's shape (`{"errors":[{"code","message",...}]}`,
/// JSON) whose first code is `code`; answers its message.
fn oci_error(response: Response, expected: u16, code: &str) -> String {
    let content_type = header(&response, "content-type").unwrap_or_default();
    let body = json(response, expected);
    assert!(content_type.starts_with("application/json"), "error Content-Type is {content_type:?}: {body}");
    let errors = body["errors"].as_array().unwrap_or_else(|| panic!("no errors array in {body}"));
    assert!(!errors.is_empty(), "empty errors array: {body}");
    for error in errors {
        let fields = error.as_object().unwrap_or_else(|| panic!("error entry is not an object: {body}"));
        assert!(fields.keys().all(|k| ["code", "message", "detail"].contains(&k.as_str())), "{body}");
        assert!(error["code"].is_string(), "{body}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    }
    assert_eq!(errors[0]["code"], code, "{body}");
    errors[0]["message"].as_str().unwrap().to_string()
}

/// Pushes a blob in one request (`POST ...?digest=`); answers its digest.
fn push_blob(server: &Server, repo: &str, data: &[u8]) -> String {
    let digest = digest_of(data);
    let response = post_blob(server, repo, &digest, data);
    let answer = status(&response);
    assert_eq!(answer, 201, "push blob {digest}: {}", response.text().unwrap());
    digest
}

fn post_blob(server: &Server, repo: &str, digest: &str, data: &[u8]) -> Response {
    client()
        .post(server.url(&format!("{repo}/blobs/uploads/?digest={digest}")))
        .header("content-type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .unwrap()
}

/// Starts an upload session; answers its Location.
fn start_upload(server: &Server, repo: &str) -> String {
    let response = client().post(server.url(&format!("{repo}/blobs/uploads/"))).send().unwrap();
    assert_eq!(status(&response), 202, "start upload: {:?}", response.headers());
    let location = must_header(&response, "location");
    assert!(!must_header(&response, "docker-upload-uuid").is_empty());
    location
}

/// PATCHes a chunk, with `Content-Range: start-end` when `start` is given.
fn patch(server: &Server, location: &str, start: Option<usize>, chunk: &[u8]) -> Response {
    let mut request = client()
        .patch(resolve(server, location))
        .header("content-type", "application/octet-stream")
        .header("content-length", chunk.len().to_string());
    if let Some(start) = start {
        request = request.header("content-range", format!("{start}-{}", start + chunk.len() - 1));
    }
    request.body(chunk.to_vec()).send().unwrap()
}

/// Completes an upload with a final (possibly empty) chunk.
fn finish(server: &Server, location: &str, digest: &str, last: &[u8]) -> Response {
    client()
        .put(resolve(server, &with_query(location, &format!("digest={digest}"))))
        .header("content-type", "application/octet-stream")
        .body(last.to_vec())
        .send()
        .unwrap()
}

/// Asserts a 202 chunk answer holding `end` bytes so far; answers the next Location.
fn accepted_chunk(response: Response, end: usize) -> String {
    let headers = format!("{:?}", response.headers());
    let answer = status(&response);
    let location = header(&response, "location");
    let range = header(&response, "range");
    let text = response.text().unwrap();
    assert_eq!(answer, 202, "chunk: {text} {headers}");
    assert_eq!(range.as_deref(), Some(format!("0-{}", end - 1).as_str()), "{headers}");
    location.unwrap_or_else(|| panic!("no Location: {headers}"))
}

/// The bytes of a blob (asserting 200).
fn blob(server: &Server, repo: &str, digest: &str) -> Vec<u8> {
    body(get(server, &format!("{repo}/blobs/{digest}")), 200)
}

fn blob_status(server: &Server, repo: &str, digest: &str) -> u16 {
    status(&head(server, &format!("{repo}/blobs/{digest}")))
}

/// An image manifest of a generic artifact, after pushing its config and layers.
fn push_artifact(server: &Server, repo: &str, config: &[u8], layers: &[&[u8]]) -> Vec<u8> {
    push_blob(server, repo, config);
    for layer in layers {
        push_blob(server, repo, layer);
    }
    manifest_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(CONFIG_TYPE, config),
        "layers": layers.iter().map(|l| descriptor(LAYER_TYPE, l)).collect::<Vec<_>>(),
    }))
}

fn put_manifest(server: &Server, repo: &str, reference: &str, bytes: &[u8], content_type: &str) -> Response {
    client()
        .put(server.url(&format!("{repo}/manifests/{reference}")))
        .header("content-type", content_type)
        .body(bytes.to_vec())
        .send()
        .unwrap()
}

/// Puts a manifest, asserting 201 with its Location and digest; answers the digest.
fn put_manifest_ok(server: &Server, repo: &str, reference: &str, bytes: &[u8]) -> String {
    put_typed_manifest_ok(server, repo, reference, bytes, OCI_MANIFEST)
}

fn put_typed_manifest_ok(server: &Server, repo: &str, reference: &str, bytes: &[u8], content_type: &str) -> String {
    let response = put_manifest(server, repo, reference, bytes, content_type);
    let headers = format!("{:?}", response.headers());
    let answer = status(&response);
    let digest = header(&response, "docker-content-digest");
    let location = header(&response, "location");
    let text = response.text().unwrap();
    assert_eq!(answer, 201, "PUT {repo}/manifests/{reference}: {text}");
    let expected = digest_of(bytes);
    assert_eq!(digest.as_deref(), Some(expected.as_str()), "{headers}");
    assert_eq!(location.as_deref(), Some(format!("{repo}/manifests/{expected}").as_str()), "{headers}");
    expected
}

/// GETs a manifest: its bytes and Content-Type, asserting 200 and its digest header.
fn manifest(server: &Server, repo: &str, reference: &str) -> (Vec<u8>, String) {
    let response = get(server, &format!("{repo}/manifests/{reference}"));
    let content_type = header(&response, "content-type").unwrap_or_default();
    let digest = header(&response, "docker-content-digest");
    let bytes = body(response, 200);
    assert_eq!(digest, Some(digest_of(&bytes)), "GET {repo}/manifests/{reference}");
    (bytes, content_type)
}

fn tags(server: &Server, repo: &str) -> Vec<String> {
    let body = json(get(server, &format!("{repo}/tags/list")), 200);
    body["tags"].as_array().unwrap_or_else(|| panic!("no tags in {body}")).iter().map(tag_name).collect()
}

fn tag_name(tag: &Value) -> String {
    tag.as_str().unwrap().to_string()
}

/// The target of a `Link: <...>; rel="next"` header.
fn next_link(response: &Response) -> Option<String> {
    let link = header(response, "link")?;
    assert!(link.contains("rel=\"next\""), "{link}");
    let start = link.find('<').unwrap() + 1;
    let end = link.find('>').unwrap();
    Some(link[start..end].to_string())
}

fn chart(name: &str, version: &str) -> Vec<u8> {
    ChartBuilder::new(name, version).build()
}

/// Pushes a chart's config and archive blobs to `repo` and answers a Helm chart manifest
/// (with `annotations`, when given, to make a different manifest for the same blobs).
fn chart_manifest(server: &Server, repo: &str, config: &[u8], archive: &[u8], annotations: Option<Value>) -> Vec<u8> {
    push_blob(server, repo, config);
    push_blob(server, repo, archive);
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(HELM_CONFIG, config),
        "layers": [descriptor(HELM_CHART, archive)],
    });
    if let Some(annotations) = annotations {
        manifest["annotations"] = annotations;
    }
    manifest_bytes(&manifest)
}

fn index_yaml(server: &Server, space: &str) -> Value {
    let bytes = body(get(server, &format!("/{space}/index.yaml")), 200);
    chartyard_core::yaml::from_yaml::<Value>(&bytes, "index").unwrap()
}

/// Versions of a chart in a space's index.yaml (none when it has no entry, or the space
/// does not exist: refused pushes must not create it).
fn index_versions(server: &Server, space: &str, chart: &str) -> BTreeSet<String> {
    if status(&get(server, &format!("/{space}/index.yaml"))) == 404 {
        return BTreeSet::new();
    }
    let index = index_yaml(server, space);
    index["entries"][chart]
        .as_array()
        .map(|list| list.iter().map(|e| e["version"].as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// Versions of a chart through `/api/v1` (none when the chart is unknown).
fn api_versions(server: &Server, space: &str, chart: &str) -> Vec<String> {
    let response = server.get(&format!("/spaces/{space}/charts/{chart}/versions?limit=100"));
    if status(&response) == 404 {
        return Vec::new();
    }
    let body = json(response, 200);
    body["items"].as_array().unwrap().iter().map(tag_name).collect()
}

// ---- blobs: end-2, end-3, end-4a/b, end-6 ----

#[test]
fn monolithic_upload_in_two_requests() {
    let server = Server::start();
    let data = b"monolithic blob content".to_vec();
    let digest = digest_of(&data);
    let location = start_upload(&server, REPO);
    assert!(location.starts_with(&format!("{REPO}/blobs/uploads/")), "{location}");

    let response = finish(&server, &location, &digest, &data);
    assert_eq!(status(&response), 201);
    assert_eq!(must_header(&response, "location"), format!("{REPO}/blobs/{digest}"));
    assert_eq!(must_header(&response, "docker-content-digest"), digest);

    // the Location answered is where the blob is
    assert_eq!(body(get(&server, &must_header(&response, "location")), 200), data);
    // the session is finished
    oci_error(get(&server, &location), 404, "BLOB_UPLOAD_UNKNOWN");
}

#[test]
fn monolithic_upload_in_one_request() {
    let server = Server::start();
    let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let digest = digest_of(&data);
    let response = post_blob(&server, REPO, &digest, &data);
    assert_eq!(status(&response), 201);
    assert_eq!(must_header(&response, "location"), format!("{REPO}/blobs/{digest}"));
    assert_eq!(must_header(&response, "docker-content-digest"), digest);
    assert_eq!(blob(&server, REPO, &digest), data);

    // pushing the same blob again is fine
    assert_eq!(status(&post_blob(&server, REPO, &digest, &data)), 201);
    // and so is an empty blob
    let empty = push_blob(&server, REPO, b"");
    assert_eq!(blob(&server, REPO, &empty), b"");
}

#[test]
fn blob_head_and_get_answer_length_and_digest() {
    let server = Server::start();
    let data = b"0123456789abcdef".to_vec();
    let digest = push_blob(&server, REPO, &data);

    let response = head(&server, &format!("{REPO}/blobs/{digest}"));
    assert_eq!(status(&response), 200);
    assert_eq!(must_header(&response, "content-length"), data.len().to_string());
    assert_eq!(must_header(&response, "docker-content-digest"), digest);
    assert_eq!(body(response, 200), b"", "HEAD has no body");

    let response = get(&server, &format!("{REPO}/blobs/{digest}"));
    assert_eq!(must_header(&response, "content-length"), data.len().to_string());
    assert_eq!(must_header(&response, "docker-content-digest"), digest);
    assert_eq!(body(response, 200), data);
}

#[test]
fn blob_get_honors_byte_ranges() {
    let server = Server::start();
    let data = b"0123456789".to_vec();
    let digest = push_blob(&server, REPO, &data);
    let url = server.url(&format!("{REPO}/blobs/{digest}"));

    let response = client().get(&url).header("range", "bytes=2-5").send().unwrap();
    assert_eq!(status(&response), 206);
    assert_eq!(must_header(&response, "content-range"), "bytes 2-5/10");
    assert_eq!(must_header(&response, "content-length"), "4");
    assert_eq!(body(response, 206), b"2345");

    // open-ended, and an end past the blob
    let response = client().get(&url).header("range", "bytes=7-").send().unwrap();
    assert_eq!(must_header(&response, "content-range"), "bytes 7-9/10");
    assert_eq!(body(response, 206), b"789");
    let response = client().get(&url).header("range", "bytes=8-100").send().unwrap();
    assert_eq!(body(response, 206), b"89");

    // a range outside the blob cannot be satisfied
    let response = client().get(&url).header("range", "bytes=10-20").send().unwrap();
    assert_eq!(status(&response), 416);
}

// ---- chunked uploads: end-5, end-11, end-13 ----

#[test]
fn chunked_upload_with_content_ranges() {
    let server = Server::start();
    let first: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    let second: Vec<u8> = (0..777u32).map(|i| (i % 13) as u8).collect();
    let whole = [first.as_slice(), &second].concat();
    let digest = digest_of(&whole);

    let location = start_upload(&server, REPO);
    let location = accepted_chunk(patch(&server, &location, Some(0), &first), first.len());
    assert!(location.starts_with(&format!("{REPO}/blobs/uploads/")), "{location}");

    // upload status (end-13)
    let response = get(&server, &location);
    assert_eq!(status(&response), 204);
    assert_eq!(must_header(&response, "range"), format!("0-{}", first.len() - 1));
    assert!(must_header(&response, "location").starts_with(&format!("{REPO}/blobs/uploads/")));

    let location = accepted_chunk(patch(&server, &location, Some(first.len()), &second), whole.len());
    let response = get(&server, &location);
    assert_eq!(status(&response), 204);
    assert_eq!(must_header(&response, "range"), format!("0-{}", whole.len() - 1));

    let response = finish(&server, &location, &digest, b"");
    assert_eq!(status(&response), 201);
    assert_eq!(must_header(&response, "location"), format!("{REPO}/blobs/{digest}"));
    assert_eq!(must_header(&response, "docker-content-digest"), digest);
    assert_eq!(blob(&server, REPO, &digest), whole);
    oci_error(get(&server, &location), 404, "BLOB_UPLOAD_UNKNOWN");
}

#[test]
fn streamed_patches_without_content_range() {
    let server = Server::start();
    let parts: [&[u8]; 3] = [b"streamed-", b"chunks-", b"and the last one in the PUT"];
    let whole = parts.concat();
    let digest = digest_of(&whole);

    let location = start_upload(&server, REPO);
    let location = accepted_chunk(patch(&server, &location, None, parts[0]), parts[0].len());
    let location = accepted_chunk(patch(&server, &location, None, parts[1]), parts[0].len() + parts[1].len());
    let response = finish(&server, &location, &digest, parts[2]);
    assert_eq!(status(&response), 201, "{}", response.text().unwrap());
    assert_eq!(blob(&server, REPO, &digest), whole);
}

#[test]
fn chunk_out_of_order_is_416() {
    let server = Server::start();
    let location = start_upload(&server, REPO);
    // the first chunk must start at 0
    let response = patch(&server, &location, Some(5), b"abcde");
    assert_eq!(status(&response), 416);
    oci_error(response, 416, "BLOB_UPLOAD_INVALID");

    let location = accepted_chunk(patch(&server, &location, Some(0), b"0123456789"), 10);
    for start in [0, 5, 9, 11, 20] {
        oci_error(patch(&server, &location, Some(start), b"xyz"), 416, "BLOB_UPLOAD_INVALID");
    }
    // nothing of the refused chunks was kept; the right one is taken
    let response = get(&server, &location);
    assert_eq!(status(&response), 204);
    assert_eq!(must_header(&response, "range"), "0-9");
    let location = accepted_chunk(patch(&server, &location, Some(10), b"abc"), 13);
    let digest = digest_of(b"0123456789abc");
    assert_eq!(status(&finish(&server, &location, &digest, b"")), 201);
    assert_eq!(blob(&server, REPO, &digest), b"0123456789abc");
}

#[test]
fn cancelled_upload_is_unknown() {
    let server = Server::start();
    let location = start_upload(&server, REPO);
    let location = accepted_chunk(patch(&server, &location, Some(0), b"to be cancelled"), 15);

    let response = delete(&server, &location);
    assert_eq!(status(&response), 204);
    oci_error(get(&server, &location), 404, "BLOB_UPLOAD_UNKNOWN");
    oci_error(patch(&server, &location, Some(15), b"more"), 404, "BLOB_UPLOAD_UNKNOWN");
    oci_error(patch(&server, &location, None, b"more"), 404, "BLOB_UPLOAD_UNKNOWN");
    let digest = digest_of(b"to be cancelled");
    oci_error(finish(&server, &location, &digest, b""), 404, "BLOB_UPLOAD_UNKNOWN");
    oci_error(delete(&server, &location), 404, "BLOB_UPLOAD_UNKNOWN");
    assert_eq!(blob_status(&server, REPO, &digest), 404);
}

#[test]
fn unknown_and_foreign_upload_ids_are_404() {
    let server = Server::start();
    let digest = digest_of(b"x");
    for id in ["0123456789abcdef0123", "nope", "00000000000000000000000000000000"] {
        let location = format!("{REPO}/blobs/uploads/{id}");
        oci_error(get(&server, &location), 404, "BLOB_UPLOAD_UNKNOWN");
        oci_error(patch(&server, &location, None, b"x"), 404, "BLOB_UPLOAD_UNKNOWN");
        oci_error(finish(&server, &location, &digest, b"x"), 404, "BLOB_UPLOAD_UNKNOWN");
        oci_error(delete(&server, &location), 404, "BLOB_UPLOAD_UNKNOWN");
    }

    // a session belongs to the repository it was started in
    let location = start_upload(&server, REPO);
    let location = accepted_chunk(patch(&server, &location, Some(0), b"mine"), 4);
    let id = location.rsplit('/').next().unwrap().split('?').next().unwrap().to_string();
    for other in ["/v2/s/other", "/v2/t/artifact"] {
        let foreign = format!("{other}/blobs/uploads/{id}");
        oci_error(get(&server, &foreign), 404, "BLOB_UPLOAD_UNKNOWN");
        oci_error(patch(&server, &foreign, Some(4), b"theirs"), 404, "BLOB_UPLOAD_UNKNOWN");
        oci_error(finish(&server, &foreign, &digest_of(b"mine"), b""), 404, "BLOB_UPLOAD_UNKNOWN");
        oci_error(delete(&server, &foreign), 404, "BLOB_UPLOAD_UNKNOWN");
        assert_eq!(blob_status(&server, other, &digest_of(b"mine")), 404);
    }
    // ... and is still whole there
    let response = get(&server, &location);
    assert_eq!(status(&response), 204);
    assert_eq!(must_header(&response, "range"), "0-3");
    assert_eq!(status(&finish(&server, &location, &digest_of(b"mine"), b"")), 201);
}

#[test]
fn upload_session_survives_a_restart() {
    let mut server = Server::start();
    let first = vec![b'a'; 3000];
    let second = vec![b'b'; 2000];
    let whole = [first.as_slice(), &second].concat();
    let digest = digest_of(&whole);

    let location = start_upload(&server, REPO);
    let location = accepted_chunk(patch(&server, &location, Some(0), &first), first.len());
    server.restart();

    let response = get(&server, &location);
    assert_eq!(status(&response), 204, "upload status after restart");
    assert_eq!(must_header(&response, "range"), format!("0-{}", first.len() - 1));
    let location = accepted_chunk(patch(&server, &location, Some(first.len()), &second), whole.len());
    let response = finish(&server, &location, &digest, b"");
    assert_eq!(status(&response), 201, "{}", response.text().unwrap());
    assert_eq!(blob(&server, REPO, &digest), whole);
}

#[test]
fn blobs_over_the_upload_limit_are_size_invalid() {
    let server = Server::start_with(&["--max-upload-size", "65536"]);
    let limit = 65536;
    let big: Vec<u8> = (0..limit + 1000).map(|i| (i % 199) as u8).collect();

    // one request
    oci_error(post_blob(&server, REPO, &digest_of(&big), &big), 400, "SIZE_INVALID");
    assert_eq!(blob_status(&server, REPO, &digest_of(&big)), 404);
    // exactly the limit is fine
    push_blob(&server, REPO, &big[..limit]);

    // two requests
    let location = start_upload(&server, REPO);
    oci_error(finish(&server, &location, &digest_of(&big), &big), 400, "SIZE_INVALID");
    assert_eq!(blob_status(&server, REPO, &digest_of(&big)), 404);

    // chunks adding up to too much
    let location = start_upload(&server, REPO);
    let location = accepted_chunk(patch(&server, &location, Some(0), &big[..40_000]), 40_000);
    oci_error(patch(&server, &location, Some(40_000), &big[40_000..]), 400, "SIZE_INVALID");
    let response = get(&server, &location);
    assert_eq!(status(&response), 204);
    assert_eq!(must_header(&response, "range"), "0-39999", "the refused chunk is not kept");
    oci_error(finish(&server, &location, &digest_of(&big), &big[40_000..]), 400, "SIZE_INVALID");
    assert_eq!(blob_status(&server, REPO, &digest_of(&big)), 404);
}

// ---- cross-repository mount: end-11 ----

#[test]
fn cross_repository_mount() {
    let server = Server::start();
    let data = b"shared layer".to_vec();
    let digest = push_blob(&server, REPO, &data);

    let url = server.url(&format!("/v2/s/other/blobs/uploads/?mount={digest}&from=s/artifact"));
    let response = client().post(url).send().unwrap();
    assert_eq!(status(&response), 201);
    assert_eq!(must_header(&response, "location"), format!("/v2/s/other/blobs/{digest}"));
    assert_eq!(must_header(&response, "docker-content-digest"), digest);
    assert_eq!(blob(&server, "/v2/s/other", &digest), data);

    // an unknown blob cannot be mounted: the registry opens an upload session instead
    let missing = b"not here yet".to_vec();
    let missing_digest = digest_of(&missing);
    let url = server.url(&format!("/v2/s/other/blobs/uploads/?mount={missing_digest}&from=s/artifact"));
    let response = client().post(url).send().unwrap();
    assert_eq!(status(&response), 202);
    let location = must_header(&response, "location");
    assert!(location.starts_with("/v2/s/other/blobs/uploads/"), "{location}");
    assert_eq!(status(&finish(&server, &location, &missing_digest, &missing)), 201);
    assert_eq!(blob(&server, "/v2/s/other", &missing_digest), missing);
}

// ---- manifests: end-3, end-7, end-9 ----

#[test]
fn manifest_push_and_pull_keep_the_exact_bytes() {
    let server = Server::start();
    let bytes = push_artifact(&server, REPO, br#"{"kind":"example"}"#, &[b"layer one", b"layer two"]);
    let digest = put_manifest_ok(&server, REPO, "v1", &bytes);

    for reference in ["v1", digest.as_str()] {
        let (got, content_type) = manifest(&server, REPO, reference);
        assert_eq!(got, bytes, "GET manifests/{reference}");
        assert_eq!(content_type, OCI_MANIFEST, "GET manifests/{reference}");

        let response = head(&server, &format!("{REPO}/manifests/{reference}"));
        assert_eq!(status(&response), 200);
        assert_eq!(must_header(&response, "content-length"), bytes.len().to_string());
        assert_eq!(must_header(&response, "docker-content-digest"), digest);
        assert_eq!(must_header(&response, "content-type"), OCI_MANIFEST);
        assert_eq!(body(response, 200), b"");
    }
    // the Location of the PUT is where the manifest is
    let response = put_manifest(&server, REPO, "v1", &bytes, OCI_MANIFEST);
    assert_eq!(body(get(&server, &must_header(&response, "location")), 200), bytes);

    // a manifest without a mediaType field is served with the Content-Type it was pushed with
    let plain = manifest_bytes(&json!({
        "schemaVersion": 2,
        "config": descriptor(CONFIG_TYPE, br#"{"kind":"example"}"#),
        "layers": [descriptor(LAYER_TYPE, b"layer one")],
    }));
    let plain_digest = put_manifest_ok(&server, REPO, "plain", &plain);
    for reference in ["plain", plain_digest.as_str()] {
        assert_eq!(manifest(&server, REPO, reference), (plain.clone(), OCI_MANIFEST.to_string()));
    }

    // a manifest belongs to the repository it was pushed to
    oci_error(get(&server, &format!("/v2/s/other/manifests/{digest}")), 404, "MANIFEST_UNKNOWN");
    oci_error(get(&server, "/v2/s/other/manifests/v1"), 404, "MANIFEST_UNKNOWN");

    // retagging an artifact moves the tag
    let other = push_artifact(&server, REPO, br#"{"kind":"other"}"#, &[b"layer three"]);
    let other_digest = put_manifest_ok(&server, REPO, "v1", &other);
    assert_eq!(manifest(&server, REPO, "v1").0, other);
    assert_eq!(manifest(&server, REPO, &digest).0, bytes, "the first manifest is still there by digest");
    assert_ne!(digest, other_digest);

    // and pushing by digest stores it without a tag
    let untagged = push_artifact(&server, REPO, br#"{"kind":"untagged"}"#, &[b"layer four"]);
    let untagged_digest = put_manifest_ok(&server, REPO, &digest_of(&untagged), &untagged);
    assert_eq!(manifest(&server, REPO, &untagged_digest).0, untagged);
    assert_eq!(tags(&server, REPO), ["plain", "v1"]);
}

#[test]
fn image_index_of_manifests() {
    let server = Server::start();
    let amd64 = push_artifact(&server, REPO, br#"{"arch":"amd64"}"#, &[b"amd64 layer"]);
    let arm64 = push_artifact(&server, REPO, br#"{"arch":"arm64"}"#, &[b"arm64 layer"]);
    let entries: Vec<Value> = [(&amd64, "amd64"), (&arm64, "arm64")]
        .into_iter()
        .map(|(bytes, arch)| {
            let digest = put_manifest_ok(&server, REPO, &digest_of(bytes), bytes);
            json!({"mediaType": OCI_MANIFEST, "digest": digest, "size": bytes.len(),
                   "platform": {"architecture": arch, "os": "linux"}})
        })
        .collect();
    let index = manifest_bytes(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}));
    let digest = put_typed_manifest_ok(&server, REPO, "multi", &index, OCI_INDEX);
    for reference in ["multi", digest.as_str()] {
        assert_eq!(manifest(&server, REPO, reference), (index.clone(), OCI_INDEX.to_string()));
        let response = head(&server, &format!("{REPO}/manifests/{reference}"));
        assert_eq!(must_header(&response, "content-type"), OCI_INDEX);
        assert_eq!(must_header(&response, "content-length"), index.len().to_string());
    }
    // the entries are there by digest
    assert_eq!(manifest(&server, REPO, &digest_of(&arm64)).0, arm64);
    assert_eq!(tags(&server, REPO), ["multi"]);
}

// ---- deleting blobs: end-10 ----

#[test]
fn blob_delete_removes_only_unreferenced_blobs() {
    let server = Server::start();
    let loose = push_blob(&server, REPO, b"loose blob");
    assert_eq!(status(&delete(&server, &format!("{REPO}/blobs/{loose}"))), 202);
    assert_eq!(blob_status(&server, REPO, &loose), 404);
    oci_error(get(&server, &format!("{REPO}/blobs/{loose}")), 404, "BLOB_UNKNOWN");
    oci_error(delete(&server, &format!("{REPO}/blobs/{loose}")), 404, "BLOB_UNKNOWN");
    oci_error(delete(&server, &format!("{REPO}/blobs/sha256:xyz")), 400, "DIGEST_INVALID");

    // blobs a manifest needs (and the manifest's own bytes) stay
    let config = br#"{"kind":"kept"}"#;
    let bytes = push_artifact(&server, REPO, config, &[b"kept layer"]);
    let digest = put_manifest_ok(&server, REPO, "v1", &bytes);
    for needed in [digest_of(config), digest_of(b"kept layer"), digest.clone()] {
        oci_error(delete(&server, &format!("{REPO}/blobs/{needed}")), 403, "DENIED");
        assert_eq!(blob_status(&server, REPO, &needed), 200, "{needed}");
    }
    assert_eq!(manifest(&server, REPO, "v1").0, bytes);

    // and so does a chart version's archive; other repositories do not hold it at all
    let archive = chart("app", "1.0.0");
    json(server.upload("s", &archive), 201);
    oci_error(delete(&server, &format!("/v2/s/app/blobs/{}", digest_of(&archive))), 403, "DENIED");
    oci_error(delete(&server, &format!("{REPO}/blobs/{}", digest_of(&archive))), 404, "BLOB_UNKNOWN");
    assert_eq!(blob_status(&server, REPO, &digest_of(&archive)), 404);
    assert_eq!(server.download("s", "app", "1.0.0"), archive);

    // once the manifest is gone, its blobs may go
    assert_eq!(status(&delete(&server, &format!("{REPO}/manifests/{digest}"))), 202);
    assert_eq!(status(&delete(&server, &format!("{REPO}/blobs/{}", digest_of(b"kept layer")))), 202);
    assert_eq!(blob_status(&server, REPO, &digest_of(b"kept layer")), 404);
}

// ---- tags: end-8a/b ----

#[test]
fn tags_list_in_lexical_order_with_paging() {
    let server = Server::start();
    let bytes = push_artifact(&server, REPO, b"{}", &[b"layer"]);
    for tag in ["v2", "alpha", "1.0", "beta", "v1"] {
        put_manifest_ok(&server, REPO, tag, &bytes);
    }
    let all = json(get(&server, &format!("{REPO}/tags/list")), 200);
    assert_eq!(all, json!({"name": "s/artifact", "tags": ["1.0", "alpha", "beta", "v1", "v2"]}));

    let mut pages = Vec::new();
    let mut next = Some(format!("{REPO}/tags/list?n=2"));
    while let Some(path) = next {
        assert!(pages.len() < 5, "paging does not end");
        let response = get(&server, &path);
        next = next_link(&response);
        let page = json(response, 200);
        assert_eq!(page["name"], "s/artifact");
        pages.push(page["tags"].as_array().unwrap().iter().map(tag_name).collect::<Vec<_>>());
    }
    assert_eq!(pages, [vec!["1.0", "alpha"], vec!["beta", "v1"], vec!["v2"]]);

    // last without n, n as large as the list, and the page after the last tag
    assert_eq!(json(get(&server, &format!("{REPO}/tags/list?last=beta")), 200)["tags"], json!(["v1", "v2"]));
    let response = get(&server, &format!("{REPO}/tags/list?n=5"));
    assert_eq!(next_link(&response), None);
    assert_eq!(json(response, 200)["tags"].as_array().unwrap().len(), 5);
    let response = get(&server, &format!("{REPO}/tags/list?n=2&last=v2"));
    assert_eq!(next_link(&response), None);
    assert_eq!(json(response, 200)["tags"], json!([]));
}

// ---- deleting manifests: end-9 ----

#[test]
fn delete_manifest_by_tag_and_by_digest() {
    let server = Server::start();
    let first = push_artifact(&server, REPO, br#"{"n":1}"#, &[b"layer 1"]);
    let second = push_artifact(&server, REPO, br#"{"n":2}"#, &[b"layer 2"]);
    let first_digest = put_manifest_ok(&server, REPO, "a", &first);
    put_manifest_ok(&server, REPO, "b", &first);
    put_manifest_ok(&server, REPO, "c", &second);

    // a tag
    assert_eq!(status(&delete(&server, &format!("{REPO}/manifests/a"))), 202);
    oci_error(get(&server, &format!("{REPO}/manifests/a")), 404, "MANIFEST_UNKNOWN");
    assert_eq!(manifest(&server, REPO, "b").0, first, "the other tag stays");
    assert_eq!(manifest(&server, REPO, &first_digest).0, first, "the manifest stays");
    assert_eq!(tags(&server, REPO), ["b", "c"]);
    oci_error(delete(&server, &format!("{REPO}/manifests/a")), 404, "MANIFEST_UNKNOWN");

    // a digest, with every tag that points to it
    put_manifest_ok(&server, REPO, "a", &first);
    assert_eq!(status(&delete(&server, &format!("{REPO}/manifests/{first_digest}"))), 202);
    for reference in ["a", "b", first_digest.as_str()] {
        oci_error(get(&server, &format!("{REPO}/manifests/{reference}")), 404, "MANIFEST_UNKNOWN");
    }
    assert_eq!(tags(&server, REPO), ["c"]);
    assert_eq!(manifest(&server, REPO, "c").0, second);
    oci_error(delete(&server, &format!("{REPO}/manifests/{first_digest}")), 404, "MANIFEST_UNKNOWN");
    oci_error(delete(&server, &format!("{REPO}/manifests/{}", digest_of(b"x"))), 404, "MANIFEST_UNKNOWN");
    oci_error(delete(&server, "/v2/nospace/artifact/manifests/c"), 404, "NAME_UNKNOWN");
}

// ---- referrers: end-12a/b ----

#[test]
fn referrers_list_manifests_with_a_subject() {
    let server = Server::start();
    let subject_bytes = push_artifact(&server, REPO, br#"{"kind":"image"}"#, &[b"image layer"]);
    let subject_digest = put_manifest_ok(&server, REPO, "v1", &subject_bytes);
    let response = put_manifest(&server, REPO, "v1", &subject_bytes, OCI_MANIFEST);
    assert_eq!(header(&response, "oci-subject"), None, "a manifest without a subject");
    let subject = json!({"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": subject_bytes.len()});

    let empty = push_blob(&server, REPO, b"{}");
    let empty_config = json!({"mediaType": OCI_EMPTY, "digest": empty, "size": 2});
    let signature = "application/vnd.example.signature.v1";
    let sbom = "application/vnd.example.sbom.v1";
    let attestation = "application/vnd.example.attestation.v1+json";

    push_blob(&server, REPO, b"signature bytes");
    let signed = manifest_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": signature,
        "config": empty_config,
        "layers": [descriptor("application/octet-stream", b"signature bytes")],
        "subject": subject,
        "annotations": {"org.example.kind": "signature"},
    }));
    push_blob(&server, REPO, b"sbom bytes");
    let sbom_bytes = manifest_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": sbom,
        "config": empty_config,
        "layers": [descriptor("application/spdx+json", b"sbom bytes")],
        "subject": subject,
    }));
    // no artifactType: the config's media type stands for it
    push_blob(&server, REPO, br#"{"predicate":1}"#);
    let attested = manifest_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(attestation, br#"{"predicate":1}"#),
        "layers": [],
        "subject": subject,
    }));

    let mut expected = Vec::new();
    for (reference, bytes, artifact_type) in [
        (digest_of(&signed), &signed, signature),
        ("sbom".to_string(), &sbom_bytes, sbom),
        (digest_of(&attested), &attested, attestation),
    ] {
        let response = put_manifest(&server, REPO, &reference, bytes, OCI_MANIFEST);
        assert_eq!(status(&response), 201, "PUT referrer {reference}");
        assert_eq!(must_header(&response, "oci-subject"), subject_digest);
        assert_eq!(must_header(&response, "docker-content-digest"), digest_of(bytes));
        expected.push((digest_of(bytes), bytes.len() as u64, artifact_type.to_string()));
    }
    expected.sort();

    let referrers = |query: &str| {
        let response = get(&server, &format!("{REPO}/referrers/{subject_digest}{query}"));
        assert_eq!(must_header(&response, "content-type"), OCI_INDEX);
        let filters = header(&response, "oci-filters-applied");
        let index = json(response, 200);
        assert_eq!(index["schemaVersion"], 2, "{index}");
        assert_eq!(index["mediaType"], OCI_INDEX, "{index}");
        let manifests = index["manifests"].as_array().unwrap_or_else(|| panic!("no manifests: {index}")).clone();
        (manifests, filters)
    };
    let summary = |manifests: &[Value]| {
        let mut listed: Vec<(String, u64, String)> = manifests
            .iter()
            .map(|m| {
                assert_eq!(m["mediaType"], OCI_MANIFEST, "{m}");
                let text = |k: &str| m[k].as_str().unwrap_or_else(|| panic!("no {k} in {m}")).to_string();
                (text("digest"), m["size"].as_u64().unwrap(), text("artifactType"))
            })
            .collect();
        listed.sort();
        listed
    };

    let (all, filters) = referrers("");
    assert_eq!(summary(&all), expected);
    assert_eq!(filters, None);
    let signed_entry = all.iter().find(|m| m["digest"] == digest_of(&signed)).unwrap();
    assert_eq!(signed_entry["annotations"], json!({"org.example.kind": "signature"}));

    let (only_sbom, filters) = referrers(&format!("?artifactType={sbom}"));
    assert_eq!(summary(&only_sbom), [(digest_of(&sbom_bytes), sbom_bytes.len() as u64, sbom.to_string())]);
    assert_eq!(filters.as_deref(), Some("artifactType"));
    let (none, filters) = referrers("?artifactType=application/vnd.example.unknown");
    assert_eq!(none, Vec::<Value>::new());
    assert_eq!(filters.as_deref(), Some("artifactType"));

    // a digest nothing refers to, known or not
    for digest in [digest_of(&signed), digest_of(b"unknown")] {
        let index = json(get(&server, &format!("{REPO}/referrers/{digest}")), 200);
        assert_eq!(index["mediaType"], OCI_INDEX);
        assert_eq!(index["manifests"], json!([]), "{digest}");
    }
    oci_error(get(&server, &format!("{REPO}/referrers/sha256:nothex")), 400, "DIGEST_INVALID");

    // a deleted referrer is no longer listed
    assert_eq!(status(&delete(&server, &format!("{REPO}/manifests/{}", digest_of(&signed)))), 202);
    let (left, _) = referrers("");
    let expected_left: Vec<_> = expected.into_iter().filter(|(d, _, _)| *d != digest_of(&signed)).collect();
    assert_eq!(summary(&left), expected_left);
}

// ---- Helm charts over OCI ----

#[test]
fn chart_pushed_over_oci_becomes_a_version() {
    let server = Server::start();
    let repo = "/v2/s/demo";
    let archive = chart("demo", "1.2.3");
    let bytes = chart_manifest(&server, repo, &chart_config("demo", "1.2.3"), &archive, None);

    // under the wrong tag: refused, no version
    oci_error(put_manifest(&server, repo, "1.2.4", &bytes, OCI_MANIFEST), 400, "MANIFEST_INVALID");
    oci_error(put_manifest(&server, repo, "latest", &bytes, OCI_MANIFEST), 400, "MANIFEST_INVALID");
    assert_eq!(api_versions(&server, "s", "demo"), Vec::<String>::new());
    assert_eq!(index_versions(&server, "s", "demo"), BTreeSet::new());
    // no manifest was stored (the repository exists: its blobs were pushed)
    oci_error(get(&server, &format!("{repo}/manifests/1.2.4")), 404, "MANIFEST_UNKNOWN");
    oci_error(get(&server, &format!("{repo}/manifests/{}", digest_of(&bytes))), 404, "MANIFEST_UNKNOWN");
    // under the wrong repository (which holds the blobs too): refused, no version
    chart_manifest(&server, "/v2/s/other", &chart_config("demo", "1.2.3"), &archive, None);
    oci_error(put_manifest(&server, "/v2/s/other", "1.2.3", &bytes, OCI_MANIFEST), 400, "MANIFEST_INVALID");
    assert_eq!(api_versions(&server, "s", "other"), Vec::<String>::new());
    oci_error(get(&server, "/v2/s/other/manifests/1.2.3"), 404, "MANIFEST_UNKNOWN");

    let digest = put_manifest_ok(&server, repo, "1.2.3", &bytes);
    assert_eq!(api_versions(&server, "s", "demo"), ["1.2.3"]);
    let index = index_yaml(&server, "s");
    let entries = index["entries"]["demo"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{index}");
    assert_eq!(entries[0]["version"], "1.2.3");
    assert_eq!(entries[0]["digest"], sha256(&archive));
    assert_eq!(server.download("s", "demo", "1.2.3"), archive);
    assert_eq!(manifest(&server, repo, "1.2.3"), (bytes.clone(), OCI_MANIFEST.to_string()));
    assert_eq!(manifest(&server, repo, &digest).0, bytes);
    assert_eq!(tags(&server, repo), ["1.2.3"]);

    // the same manifest again is fine, and so is another manifest of the same archive (helm
    // stamps a creation time into each): the version keeps its first manifest
    assert_eq!(put_manifest_ok(&server, repo, "1.2.3", &bytes), digest);
    let annotated =
        chart_manifest(&server, repo, &chart_config("demo", "1.2.3"), &archive, Some(json!({"note": "again"})));
    put_manifest_ok(&server, repo, "1.2.3", &annotated);
    assert_eq!(manifest(&server, repo, "1.2.3").0, bytes);
    // another archive for the same version is refused
    let variant = ChartBuilder::new("demo", "1.2.3").with("demo/values.yaml", "replicaCount: 2\n").build();
    let changed = chart_manifest(&server, repo, &chart_config("demo", "1.2.3"), &variant, None);
    oci_error(put_manifest(&server, repo, "1.2.3", &changed, OCI_MANIFEST), 403, "DENIED");
    assert_eq!(server.download("s", "demo", "1.2.3"), archive);
    assert_eq!(manifest(&server, repo, "1.2.3").0, bytes);
    assert_eq!(api_versions(&server, "s", "demo"), ["1.2.3"]);

    // a build-metadata version, pushed under its `_` tag
    let meta_archive = chart("demo", "2.0.0+meta.1");
    let meta = chart_manifest(&server, repo, &chart_config("demo", "2.0.0+meta.1"), &meta_archive, None);
    put_manifest_ok(&server, repo, "2.0.0_meta.1", &meta);
    assert_eq!(api_versions(&server, "s", "demo"), ["1.2.3", "2.0.0+meta.1"]);
    assert_eq!(index_versions(&server, "s", "demo"), BTreeSet::from(["1.2.3".into(), "2.0.0+meta.1".into()]));
    assert_eq!(tags(&server, repo), ["1.2.3", "2.0.0_meta.1"]);
    assert_eq!(manifest(&server, repo, "2.0.0_meta.1").0, meta);
}

/// A push that is refused must leave nothing behind: not the manifest by digest, not a
/// repository. Otherwise a client that checks `HEAD manifests/<digest>` before pushing
/// (as registry clients do to skip existing content) takes the refused push as done, and
/// the refused manifest is served, listed as a referrer and keeps its blobs from gc.
#[test]
fn refused_chart_pushes_leave_nothing_behind() {
    let server = Server::start();
    let repo = "/v2/s/demo";
    let archive = chart("demo", "1.2.3");
    let bytes = chart_manifest(&server, repo, &chart_config("demo", "1.2.3"), &archive, None);
    let mut leaks = Vec::new();

    // wrong repository (its blobs pushed there too, so that the chart's name is what is wrong)
    chart_manifest(&server, "/v2/s/other", &chart_config("demo", "1.2.3"), &archive, None);
    oci_error(put_manifest(&server, "/v2/s/other", "1.2.3", &bytes, OCI_MANIFEST), 400, "MANIFEST_INVALID");
    let answer = status(&head(&server, &format!("/v2/s/other/manifests/{}", digest_of(&bytes))));
    if answer != 404 {
        leaks.push(format!("wrong repository: HEAD /v2/s/other/manifests/<digest> answers {answer}"));
    }
    let answer = status(&get(&server, "/v2/s/other/tags/list"));
    if answer != 404 {
        leaks.push(format!("wrong repository: GET /v2/s/other/tags/list answers {answer}, not NAME_UNKNOWN"));
    }

    // wrong tag
    oci_error(put_manifest(&server, repo, "1.2.4", &bytes, OCI_MANIFEST), 400, "MANIFEST_INVALID");
    let answer = status(&head(&server, &format!("{repo}/manifests/{}", digest_of(&bytes))));
    if answer != 404 {
        leaks.push(format!("wrong tag: HEAD {repo}/manifests/<digest> answers {answer}"));
    }

    // another archive for an existing version
    put_manifest_ok(&server, repo, "1.2.3", &bytes);
    let variant = ChartBuilder::new("demo", "1.2.3").with("demo/values.yaml", "replicaCount: 2\n").build();
    let changed = chart_manifest(&server, repo, &chart_config("demo", "1.2.3"), &variant, None);
    oci_error(put_manifest(&server, repo, "1.2.3", &changed, OCI_MANIFEST), 403, "DENIED");
    let answer = status(&head(&server, &format!("{repo}/manifests/{}", digest_of(&changed))));
    if answer != 404 {
        leaks
            .push(format!("denied overwrite: HEAD {repo}/manifests/<digest of the refused manifest> answers {answer}"));
    }
    assert!(leaks.is_empty(), "refused pushes left manifests behind:\n{}", leaks.join("\n"));
}

/// The tags of a chart repository are its versions. Another manifest pushed under a
/// version's tag must either be refused, or be what that tag answers afterwards; and once
/// the tag is deleted it must be gone.
#[test]
fn a_version_tag_answers_what_was_pushed_under_it() {
    let server = Server::start();
    let archive = chart("web", "0.1.0");
    json(server.upload("s", &archive), 201);
    let repo = "/v2/s/web";
    let (chart_bytes, _) = manifest(&server, repo, "0.1.0");

    let other = push_artifact(&server, repo, br#"{"not":"a chart"}"#, &[b"not a chart"]);
    let response = put_manifest(&server, repo, "0.1.0", &other, OCI_MANIFEST);
    let answer = status(&response);
    if answer == 201 {
        assert_eq!(
            manifest(&server, repo, "0.1.0").0,
            other,
            "PUT {repo}/manifests/0.1.0 answered 201, but GET of the tag answers another manifest"
        );
    } else {
        assert!(response.status().is_client_error(), "{answer}");
        let code = json(response, answer)["errors"][0]["code"].clone();
        assert!(code.is_string(), "{code}");
        assert_eq!(manifest(&server, repo, "0.1.0").0, chart_bytes);
        assert_eq!(server.download("s", "web", "0.1.0"), archive);
    }

    assert_eq!(status(&delete(&server, &format!("{repo}/manifests/0.1.0"))), 202);
    let response = get(&server, &format!("{repo}/manifests/0.1.0"));
    let answer = status(&response);
    let digest = header(&response, "docker-content-digest");
    assert_eq!(answer, 404, "the deleted tag 0.1.0 still answers a manifest ({digest:?})");
}

#[test]
fn chart_uploaded_through_the_api_can_be_pulled() {
    let mut server = Server::start();
    let archive = chart("web", "0.1.0");
    json(server.upload("s", &archive), 201);
    let repo = "/v2/s/web";

    let (bytes, content_type) = manifest(&server, repo, "0.1.0");
    assert_eq!(content_type, OCI_MANIFEST);
    let digest = digest_of(&bytes);
    let parsed: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(parsed["schemaVersion"], 2, "{parsed}");
    assert_eq!(parsed["config"]["mediaType"], HELM_CONFIG, "{parsed}");
    let layers = parsed["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{parsed}");
    assert_eq!(layers[0]["mediaType"], HELM_CHART);
    assert_eq!(layers[0]["digest"], digest_of(&archive));
    assert_eq!(layers[0]["size"], archive.len());

    assert_eq!(blob(&server, repo, &digest_of(&archive)), archive);
    let config_digest = parsed["config"]["digest"].as_str().unwrap();
    let config_bytes = blob(&server, repo, config_digest);
    assert_eq!(parsed["config"]["size"], config_bytes.len());
    let config: Value = serde_json::from_slice(&config_bytes).unwrap();
    assert_eq!((config["name"].as_str(), config["version"].as_str()), (Some("web"), Some("0.1.0")), "{config}");
    assert_eq!(config["apiVersion"], "v2", "{config}");

    let response = head(&server, &format!("{repo}/manifests/0.1.0"));
    assert_eq!(must_header(&response, "content-length"), bytes.len().to_string());
    assert_eq!(must_header(&response, "docker-content-digest"), digest);
    assert_eq!(manifest(&server, repo, &digest).0, bytes);
    assert_eq!(tags(&server, repo), ["0.1.0"]);

    // stable across reads and restarts
    assert_eq!(manifest(&server, repo, "0.1.0").0, bytes);
    server.restart();
    assert_eq!(manifest(&server, repo, "0.1.0").0, bytes);
    assert_eq!(manifest(&server, repo, &digest).0, bytes);

    // through the ChartMuseum API as well
    let cm_archive = chart("cmchart", "2.0.0");
    let response = client()
        .post(server.url("/api/s/charts"))
        .header("content-type", "application/octet-stream")
        .body(cm_archive.clone())
        .send()
        .unwrap();
    json(response, 201);
    let (cm_bytes, _) = manifest(&server, "/v2/s/cmchart", "2.0.0");
    let cm: Value = serde_json::from_slice(&cm_bytes).unwrap();
    assert_eq!(cm["layers"][0]["digest"], digest_of(&cm_archive));
    assert_eq!(blob(&server, "/v2/s/cmchart", &digest_of(&cm_archive)), cm_archive);
}

#[test]
fn build_metadata_versions_are_tags_with_underscores() {
    let server = Server::start();
    let archive = chart("app", "1.0.0-rc.1+build.5");
    json(server.upload("s", &archive), 201);
    json(server.upload("s", &chart("app", "1.0.0")), 201);

    let (bytes, _) = manifest(&server, "/v2/s/app", "1.0.0-rc.1_build.5");
    let parsed: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(parsed["layers"][0]["digest"], digest_of(&archive));
    assert_eq!(tags(&server, "/v2/s/app"), ["1.0.0", "1.0.0-rc.1_build.5"]);
    let config_digest = parsed["config"]["digest"].as_str().unwrap();
    let config: Value = serde_json::from_slice(&blob(&server, "/v2/s/app", config_digest)).unwrap();
    assert_eq!(config["version"], "1.0.0-rc.1+build.5");
}

#[test]
fn deleting_a_chart_tag_deletes_the_version_everywhere() {
    let server = Server::start();
    for version in ["1.0.0", "1.1.0", "2.0.0+b.1"] {
        json(server.upload("s", &chart("app", version)), 201);
    }
    let repo = "/v2/s/app";

    assert_eq!(status(&delete(&server, &format!("{repo}/manifests/1.0.0"))), 202);
    oci_error(get(&server, &format!("{repo}/manifests/1.0.0")), 404, "MANIFEST_UNKNOWN");
    assert_eq!(api_versions(&server, "s", "app"), ["1.1.0", "2.0.0+b.1"]);
    assert_eq!(index_versions(&server, "s", "app"), BTreeSet::from(["1.1.0".into(), "2.0.0+b.1".into()]));
    assert_eq!(status(&server.get("/spaces/s/charts/app/versions/1.0.0")), 404);
    assert_eq!(tags(&server, repo), ["1.1.0", "2.0.0_b.1"]);

    // by the `_` tag of a build-metadata version
    assert_eq!(status(&delete(&server, &format!("{repo}/manifests/2.0.0_b.1"))), 202);
    assert_eq!(api_versions(&server, "s", "app"), ["1.1.0"]);

    // by digest
    let (bytes, _) = manifest(&server, repo, "1.1.0");
    assert_eq!(status(&delete(&server, &format!("{repo}/manifests/{}", digest_of(&bytes)))), 202);
    assert_eq!(api_versions(&server, "s", "app"), Vec::<String>::new());
    assert_eq!(index_versions(&server, "s", "app"), BTreeSet::new());
    oci_error(get(&server, &format!("{repo}/manifests/1.1.0")), 404, "MANIFEST_UNKNOWN");
    oci_error(delete(&server, &format!("{repo}/manifests/1.1.0")), 404, "MANIFEST_UNKNOWN");
}

// ---- real clients, when installed ----

/// An OCI image layout (`oci:` transport) holding one small image tagged `tag`.
pub(crate) fn write_oci_layout(dir: &Path, tag: &str, file: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let layer_tar = ChartBuilder::empty().file("hello.txt", file.to_vec()).tar();
    let layer = crate::common::gzip(&layer_tar);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [digest_of(&layer_tar)]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
        "layers": [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", &layer)],
    }))
    .unwrap();
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    for data in [&layer, &config, &manifest] {
        std::fs::write(blobs.join(sha256(data)), data).unwrap();
    }
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": OCI_MANIFEST,
            "digest": digest_of(&manifest),
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    (manifest, layer)
}

#[test]
fn skopeo_copies_an_image_in_and_out() {
    let on_path = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("skopeo"))
        .find(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from("skopeo (on PATH)"));
    let Some(skopeo) = tool("skopeo", on_path) else { return };
    let server = Server::start();
    let work = TempDir::new("skopeo");
    let source = work.path.join("source");
    let (manifest_bytes, layer) = write_oci_layout(&source, "v1", b"hello from skopeo\n");
    let target = format!("docker://{}/s/img:v1", server.address());

    run(Command::new(&skopeo)
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:v1", source.display()))
        .arg(&target));

    // the registry holds the exact manifest and layer
    let (bytes, content_type) = manifest(&server, "/v2/s/img", "v1");
    assert_eq!(bytes, manifest_bytes);
    assert_eq!(content_type, OCI_MANIFEST);
    assert_eq!(blob(&server, "/v2/s/img", &digest_of(&layer)), layer);
    let raw = run(Command::new(&skopeo).args(["inspect", "--raw", "--tls-verify=false"]).arg(&target));
    assert_eq!(raw.as_bytes(), manifest_bytes);
    let tags = run(Command::new(&skopeo)
        .args(["list-tags", "--tls-verify=false"])
        .arg(format!("docker://{}/s/img", server.address())));
    let tags: Value = serde_json::from_str(&tags).unwrap();
    assert_eq!(tags["Tags"], json!(["v1"]));

    // and back out, to a directory
    let out = work.path.join("out");
    run(Command::new(&skopeo)
        .args(["copy", "--src-tls-verify=false"])
        .arg(&target)
        .arg(format!("dir:{}", out.display())));
    assert_eq!(std::fs::read(out.join("manifest.json")).unwrap(), manifest_bytes);
    assert_eq!(std::fs::read(out.join(sha256(&layer))).unwrap(), layer);
}

#[test]
fn oras_py_pushes_and_pulls_an_artifact() {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin/python");
    let Some(python) = tool("python venv", venv) else { return };
    let has_oras = Command::new(&python).args(["-c", "import oras.client"]).output().is_ok_and(|o| o.status.success());
    if !has_oras {
        assert!(std::env::var("CI").is_err(), "oras-py is not installed in .tools/venv");
        eprintln!("oras-py not installed in .tools/venv; skipping");
        return;
    }
    let server = Server::start();
    let work = TempDir::new("oras");
    let content = b"artifact pushed by oras-py\n".to_vec();
    std::fs::write(work.path.join("artifact.txt"), &content).unwrap();
    let script = r#"
import os, sys
import oras.client
host, target, outdir = sys.argv[1], sys.argv[2], sys.argv[3]
client = oras.client.OrasClient(hostname=host, insecure=True)
response = client.push(target=target, files=["artifact.txt:application/vnd.example.file.v1"])
print("push", response.status_code)
assert response.status_code == 201, response.text
files = client.pull(target=target, outdir=outdir)
print("pulled", files)
"#;
    let out = work.path.join("out");
    let target = format!("{}/s/orasart:v1", server.address());
    let stdout =
        run(Command::new(&python).current_dir(&work.path).args(["-c", script, &server.address(), &target]).arg(&out));
    assert!(stdout.contains("push 201"), "{stdout}");
    assert_eq!(std::fs::read(out.join("artifact.txt")).unwrap(), content);

    // what oras pushed is an ordinary manifest here
    let (bytes, _) = manifest(&server, "/v2/s/orasart", "v1");
    let parsed: Value = serde_json::from_slice(&bytes).unwrap();
    let layers = parsed["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{parsed}");
    assert_eq!(layers[0]["digest"], digest_of(&content));
    assert_eq!(layers[0]["mediaType"], "application/vnd.example.file.v1");
    assert_eq!(tags(&server, "/v2/s/orasart"), ["v1"]);
}

// ---- hardening: races, visibility, limits ----

fn sha512_digest(data: &[u8]) -> String {
    use sha2::Digest;
    let hex: String = sha2::Sha512::digest(data).iter().map(|b| format!("{b:02x}")).collect();
    format!("sha512:{hex}")
}

/// Two PUTs racing on one upload session, each with its own bytes and their true digest:
/// at most one completes, and every stored blob's bytes hash to its name, so nobody can
/// swap the bytes behind another's digest.
#[test]
fn racing_completions_of_one_session_never_store_foreign_bytes() {
    let server = Server::start();
    for round in 0..40 {
        let location = start_upload(&server, REPO);
        let victim = format!("victim bytes, round {round:04}").repeat(2000).into_bytes();
        let attacker = format!("hostile bytes round {round:04}").repeat(2000).into_bytes();
        assert_eq!(victim.len(), attacker.len());
        let answers: Vec<(String, u16)> = std::thread::scope(|scope| {
            let racers: Vec<_> = [&victim, &attacker]
                .into_iter()
                .map(|data| {
                    let (server, location) = (&server, &location);
                    scope.spawn(move || (digest_of(data), status(&finish(server, location, &digest_of(data), data))))
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let completed = answers.iter().filter(|(_, s)| *s == 201).count();
        assert!(completed <= 1, "round {round}: one session completed twice: {answers:?}");
        for (digest, _) in &answers {
            let response = get(&server, &format!("{REPO}/blobs/{digest}"));
            if status(&response) == 200 {
                assert_eq!(
                    digest_of(&body(response, 200)),
                    *digest,
                    "round {round}: a blob's bytes are not its digest's"
                );
            }
        }
    }
}

/// An existing blob is never replaced: a session completed with another blob's digest and
/// other bytes is refused, and the blob keeps its bytes.
#[test]
fn stored_blobs_are_never_overwritten() {
    let server = Server::start();
    let archive = chart("victim", "1.0.0");
    json(server.upload("s", &archive), 201);
    let digest = digest_of(&archive);
    let mut forged = archive.clone();
    *forged.last_mut().unwrap() ^= 1;
    let location = start_upload(&server, "/v2/s/victim");
    oci_error(finish(&server, &location, &digest, &forged), 400, "DIGEST_INVALID");
    assert_eq!(blob(&server, "/v2/s/victim", &digest), archive);
    assert_eq!(server.download("s", "victim", "1.0.0"), archive);
}

/// Deleting a blob while a chart that uses it is uploaded never breaks the version: a
/// delete only unlinks, and a chart version's blobs are refused.
#[test]
fn blob_delete_racing_an_upload_never_breaks_a_version() {
    let server = Server::start();
    for round in 0..30 {
        let version = format!("1.0.{round}");
        let archive = chart("race", &version);
        let digest = digest_of(&archive);
        std::thread::scope(|scope| {
            let deleter = scope.spawn(|| {
                for _ in 0..5 {
                    delete(&server, &format!("/v2/s/race/blobs/{digest}"));
                }
            });
            json(server.upload("s", &archive), 201);
            deleter.join().unwrap();
        });
        assert_eq!(server.download("s", "race", &version), archive, "round {round}");
        assert_eq!(blob(&server, "/v2/s/race", &digest), archive, "round {round}");
    }
}

/// A blob is served only through repositories that hold it; a mount from one that does
/// not starts an upload instead.
#[test]
fn blobs_are_visible_only_in_repositories_that_hold_them() {
    let server = Server::start();
    let digest = push_blob(&server, "/v2/s/one", b"private layer");
    assert_eq!(blob_status(&server, "/v2/s/one", &digest), 200);
    for other in ["/v2/s/two", "/v2/t/one"] {
        assert_eq!(blob_status(&server, other, &digest), 404, "{other}");
        oci_error(get(&server, &format!("{other}/blobs/{digest}")), 404, "BLOB_UNKNOWN");
    }
    // a mount naming a repository without the blob: 202 and a session, as the spec says
    let response =
        client().post(server.url(&format!("/v2/s/two/blobs/uploads/?mount={digest}&from=s/three"))).send().unwrap();
    assert_eq!(status(&response), 202);
    assert!(must_header(&response, "location").contains("/v2/s/two/blobs/uploads/"));
    assert_eq!(blob_status(&server, "/v2/s/two", &digest), 404);
    // from a repository that holds it: mounted
    let response =
        client().post(server.url(&format!("/v2/s/two/blobs/uploads/?mount={digest}&from=s/one"))).send().unwrap();
    assert_eq!(status(&response), 201);
    assert_eq!(blob(&server, "/v2/s/two", &digest), b"private layer");
    // deleting unlinks it from one repository only
    assert_eq!(status(&delete(&server, &format!("/v2/s/two/blobs/{digest}"))), 202);
    assert_eq!(blob_status(&server, "/v2/s/two", &digest), 404);
    assert_eq!(blob(&server, "/v2/s/one", &digest), b"private layer");
}

#[test]
fn sha512_blobs_and_manifests() {
    let server = Server::start();
    let data = b"a sha512 addressed layer".to_vec();
    let digest = sha512_digest(&data);
    assert_eq!(status(&post_blob(&server, REPO, &digest, &data)), 201);
    assert_eq!(blob(&server, REPO, &digest), data);
    let location = start_upload(&server, REPO);
    let location = accepted_chunk(patch(&server, &location, Some(0), &data[..10]), 10);
    assert_eq!(status(&finish(&server, &location, &digest, &data[10..])), 201);
    oci_error(finish(&server, &start_upload(&server, REPO), &sha512_digest(b"other"), &data), 400, "DIGEST_INVALID");

    let config = br#"{"sha":512}"#;
    assert_eq!(status(&post_blob(&server, REPO, &sha512_digest(config), config)), 201);
    let bytes = manifest_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": CONFIG_TYPE, "digest": sha512_digest(config), "size": config.len()},
        "layers": [{"mediaType": LAYER_TYPE, "digest": digest, "size": data.len()}],
    }));
    let manifest_digest = sha512_digest(&bytes);
    let response = put_manifest(&server, REPO, &manifest_digest, &bytes, OCI_MANIFEST);
    assert_eq!(status(&response), 201, "{}", response.text().unwrap());
    let response = get(&server, &format!("{REPO}/manifests/{manifest_digest}"));
    assert_eq!(header(&response, "docker-content-digest"), Some(manifest_digest.clone()));
    assert_eq!(body(response, 200), bytes);
    assert_eq!(status(&delete(&server, &format!("{REPO}/manifests/{manifest_digest}"))), 202);
    oci_error(get(&server, &format!("{REPO}/manifests/{manifest_digest}")), 404, "MANIFEST_UNKNOWN");
}

#[test]
fn suffix_ranges_and_chunk_ranges_that_disagree() {
    let server = Server::start();
    let data: Vec<u8> = (0..2048u32).map(|i| (i % 251) as u8).collect();
    let digest = push_blob(&server, REPO, &data);
    let response = client().get(server.url(&format!("{REPO}/blobs/{digest}"))).header("range", "bytes=-500").send();
    let response = response.unwrap();
    assert_eq!(header(&response, "content-range").as_deref(), Some("bytes 1548-2047/2048"));
    assert_eq!(body(response, 206), data[1548..]);
    let response = client().get(server.url(&format!("{REPO}/blobs/{digest}"))).header("range", "bytes=-0").send();
    oci_error(response.unwrap(), 416, "BLOB_UPLOAD_INVALID");

    // a PATCH whose Content-Range disagrees with its body
    let location = start_upload(&server, REPO);
    let response = client()
        .patch(resolve(&server, &location))
        .header("content-type", "application/octet-stream")
        .header("content-range", "0-99")
        .body(data[..10].to_vec())
        .send()
        .unwrap();
    oci_error(response, 416, "BLOB_UPLOAD_INVALID");
    // an out-of-order final chunk
    let location = accepted_chunk(patch(&server, &location, Some(0), &data[..10]), 10);
    let response = client()
        .put(resolve(&server, &with_query(&location, &format!("digest={digest}"))))
        .header("content-type", "application/octet-stream")
        .header("content-range", format!("20-{}", data.len() - 1))
        .body(data[20..].to_vec())
        .send()
        .unwrap();
    oci_error(response, 416, "BLOB_UPLOAD_INVALID");
}

#[test]
fn catalog_lists_charts_and_artifacts_with_paging() {
    let server = Server::start();
    json(server.upload("s", &chart("web", "1.0.0")), 201);
    json(server.upload("t", &chart("db", "2.0.0")), 201);
    let bytes = push_artifact(&server, "/v2/s/notes", b"{}", &[b"layer"]);
    put_manifest_ok(&server, "/v2/s/notes", "v1", &bytes);
    push_blob(&server, "/v2/s/blobs-only", b"no manifest yet");
    let all = json(get(&server, "/v2/_catalog"), 200);
    assert_eq!(all["repositories"], json!(["s/notes", "s/web", "t/db"]));
    let response = get(&server, "/v2/_catalog?n=2");
    let next = next_link(&response).expect("a next page");
    assert_eq!(json(response, 200)["repositories"], json!(["s/notes", "s/web"]));
    let response = get(&server, &next);
    assert!(next_link(&response).is_none());
    assert_eq!(json(response, 200)["repositories"], json!(["t/db"]));
}

/// Helm installs the last chart layer of a manifest: one that carries two could be checked
/// as one chart and installed as another.
#[test]
fn chart_manifests_must_be_unambiguous() {
    let server = Server::start();
    let repo = "/v2/s/demo";
    let archive = chart("demo", "1.0.0");
    let other = ChartBuilder::new("demo", "1.0.0").with("demo/values.yaml", "evil: true\n").build();
    let config = chart_config("demo", "1.0.0");
    chart_manifest(&server, repo, &config, &archive, None);
    push_blob(&server, repo, &other);
    let prov = push_blob(&server, repo, b"-----BEGIN PGP SIGNED MESSAGE-----");
    let build = |config: Value, layers: Vec<Value>| {
        manifest_bytes(&json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers}))
    };
    let helm_config = descriptor(HELM_CONFIG, &config);
    let prov_layer =
        json!({"mediaType": "application/vnd.cncf.helm.chart.provenance.v1.prov", "digest": prov, "size": 34});
    let refused = [
        build(helm_config.clone(), vec![descriptor(HELM_CHART, &archive), descriptor(HELM_CHART, &other)]),
        build(helm_config.clone(), vec![descriptor(HELM_CHART, &archive), prov_layer.clone(), prov_layer]),
        build(helm_config.clone(), vec![]),
    ];
    for bytes in refused {
        oci_error(put_manifest(&server, repo, "1.0.0", &bytes, OCI_MANIFEST), 400, "MANIFEST_INVALID");
    }
    for config in [b"not json".to_vec(), chart_config("other", "1.0.0"), chart_config("demo", "9.9.9")] {
        push_blob(&server, repo, &config);
        let bytes = build(descriptor(HELM_CONFIG, &config), vec![descriptor(HELM_CHART, &archive)]);
        oci_error(put_manifest(&server, repo, "1.0.0", &bytes, OCI_MANIFEST), 400, "MANIFEST_INVALID");
    }
    assert_eq!(api_versions(&server, "s", "demo"), Vec::<String>::new());
}

/// One tag, one owner: a chart repository's version-shaped tags belong to its charts, and
/// a chart version cannot take a tag another artifact holds.
#[test]
fn version_tags_have_one_owner() {
    let server = Server::start();
    json(server.upload("s", &chart("web", "1.0.0")), 201);
    let artifact = push_artifact(&server, "/v2/s/web", b"{}", &[b"not a chart"]);
    oci_error(put_manifest(&server, "/v2/s/web", "9.9.9", &artifact, OCI_MANIFEST), 403, "DENIED");
    assert_eq!(tags(&server, "/v2/s/web"), ["1.0.0"]);

    // an artifact first: the chart upload of that version is refused, the tag stays
    let artifact = push_artifact(&server, "/v2/s/api", b"{}", &[b"not a chart"]);
    let digest = put_manifest_ok(&server, "/v2/s/api", "2.0.0", &artifact);
    crate::common::error(server.upload("s", &chart("api", "2.0.0")), 409);
    let response = get(&server, "/v2/s/api/manifests/2.0.0");
    assert_eq!(header(&response, "docker-content-digest"), Some(digest));
}

#[test]
fn open_upload_sessions_are_capped() {
    let server = Server::start_with(&["--max-upload-sessions", "3"]);
    let sessions: Vec<String> = (0..3).map(|_| start_upload(&server, REPO)).collect();
    let response = client().post(server.url(&format!("{REPO}/blobs/uploads/"))).send().unwrap();
    oci_error(response, 429, "TOOMANYREQUESTS");
    assert_eq!(status(&delete(&server, &sessions[0])), 204);
    let location = start_upload(&server, REPO);
    // completing a session frees its place too
    let location = accepted_chunk(patch(&server, &location, Some(0), b"abc"), 3);
    assert_eq!(status(&finish(&server, &location, &digest_of(b"abc"), b"")), 201);
    start_upload(&server, REPO);
}

#[test]
fn idle_upload_sessions_expire() {
    let server = Server::start_with(&["--upload-ttl", "1"]);
    let sessions: Vec<String> = (0..3).map(|_| start_upload(&server, REPO)).collect();
    // the sweep runs every second with a 1 s TTL
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while sessions.iter().any(|s| status(&get(&server, s)) != 404) {
        assert!(std::time::Instant::now() < deadline, "idle upload sessions were never expired");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    oci_error(get(&server, &sessions[0]), 404, "BLOB_UPLOAD_UNKNOWN");
    let uploads = server.data.path.join("uploads");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !crate::common::files_under(&uploads).is_empty() {
        assert!(std::time::Instant::now() < deadline, "left behind: {:?}", crate::common::files_under(&uploads));
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

// ---- real clients and the conformance suites from ../shared/peers ----

/// Runs an OCI distribution-spec conformance suite with every category enabled against a
/// fresh server; answers its output.
fn conformance(suite: &Path, server: &Server, results: &TempDir) -> (bool, String) {
    let output = Command::new(suite)
        .arg("-test.v")
        .current_dir(&results.path)
        .env("OCI_ROOT_URL", &server.base)
        .env("OCI_NAMESPACE", "myorg/myrepo")
        .env("OCI_CROSSMOUNT_NAMESPACE", "myorg/other")
        .env("OCI_TEST_PULL", "1")
        .env("OCI_TEST_PUSH", "1")
        .env("OCI_TEST_CONTENT_DISCOVERY", "1")
        .env("OCI_TEST_CONTENT_MANAGEMENT", "1")
        .env("OCI_DELETE_MANIFEST_BEFORE_BLOBS", "1")
        .env("OCI_RESULTS_DIR", &results.path)
        .env("OCI_REPORT_DIR", &results.path)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), strip_colors(&text))
}

/// The text without terminal colour sequences (`ESC [ ... m`).
fn strip_colors(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| *c == 'm');
        } else {
            plain.push(c);
        }
    }
    plain
}

/// A count from the current suite's summary (`  Pass....: 854`).
fn summary_count(output: &str, label: &str) -> Option<u64> {
    output.lines().find_map(|line| {
        let rest = line.trim().strip_prefix(label)?;
        rest.trim_start_matches('.').trim_start_matches(':').trim().parse().ok()
    })
}

#[test]
fn oci_conformance_suite_passes_in_full() {
    let Some(suite) = crate::common::peer("oci-conformance.test") else { return };
    let server = Server::start();
    let results = TempDir::new("conformance");
    let (success, output) = conformance(&suite, &server, &results);
    let failures: Vec<&str> = output.lines().filter(|l| l.contains("failed test")).collect();
    let (pass, fail) = (summary_count(&output, "Pass"), summary_count(&output, "FAIL"));
    assert!(success && fail == Some(0), "{} failures:\n{}", failures.len(), failures.join("\n"));
    assert!(pass.is_some_and(|p| p > 800), "too few tests ran: {pass:?}\n{output}");
    eprintln!("OCI conformance (current): {} passed, 0 failed", pass.unwrap_or_default());
}

#[test]
fn oci_conformance_suite_v1_1_1_passes_in_full() {
    let Some(suite) = crate::common::peer("oci-conformance-v1.1.1.test") else { return };
    let server = Server::start();
    let results = TempDir::new("conformance");
    let (success, output) = conformance(&suite, &server, &results);
    let summary = output.lines().rev().find(|l| l.contains(" Passed") && l.contains(" Failed")).unwrap_or_default();
    assert!(success && summary.contains("| 0 Failed"), "{output}");
    let passed: u64 = summary
        .split(" Passed")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.trim_matches(|c: char| !c.is_ascii_digit()).parse().ok())
        .unwrap_or_default();
    assert!(passed >= 70, "too few specs ran: {summary}");
    eprintln!("OCI conformance (v1.1.1): {summary}");
}

/// go-containerregistry's crane against charts and images: push, copy, catalog, ls,
/// digest, manifest, delete.
#[test]
fn crane_pushes_copies_lists_and_deletes() {
    let Some(crane) = crate::common::peer("crane") else { return };
    let server = Server::start();
    let host = server.address();
    let archive = chart("web", "1.0.0");
    json(server.upload("s", &archive), 201);
    let home = TempDir::new("crane");
    let crane = |args: &[&str]| run(Command::new(&crane).args(args).env("HOME", &home.path));

    // push an image (a layer on an empty base)
    let layer = home.path.join("layer.tar");
    std::fs::write(&layer, ChartBuilder::empty().file("hello.txt", b"hi".to_vec()).tar()).unwrap();
    crane(&["append", "-f", layer.to_str().unwrap(), "-t", &format!("{host}/s/img:v1")]);
    assert_eq!(crane(&["ls", &format!("{host}/s/img")]).trim(), "v1");
    assert_eq!(crane(&["ls", &format!("{host}/s/web")]).trim(), "1.0.0");
    assert_eq!(crane(&["catalog", &host]).lines().collect::<Vec<_>>(), ["s/img", "s/web"]);

    // digest and manifest agree with what the registry answers
    let digest = crane(&["digest", &format!("{host}/s/web:1.0.0")]).trim().to_string();
    let response = head(&server, "/v2/s/web/manifests/1.0.0");
    assert_eq!(header(&response, "docker-content-digest"), Some(digest.clone()));
    let manifest: Value = serde_json::from_str(&crane(&["manifest", &format!("{host}/s/web:1.0.0")])).unwrap();
    assert_eq!(manifest["layers"][0]["digest"], digest_of(&archive));

    // copy a chart to another space: it becomes a version there; and an image
    crane(&["copy", &format!("{host}/s/web:1.0.0"), &format!("{host}/t/web:1.0.0")]);
    assert_eq!(server.download("t", "web", "1.0.0"), archive);
    crane(&["copy", &format!("{host}/s/img:v1"), &format!("{host}/t/img:v1")]);
    assert_eq!(crane(&["ls", &format!("{host}/t/img")]).trim(), "v1");

    // delete by digest
    let image = crane(&["digest", &format!("{host}/s/img:v1")]).trim().to_string();
    crane(&["delete", &format!("{host}/s/img@{image}")]);
    oci_error(get(&server, "/v2/s/img/manifests/v1"), 404, "MANIFEST_UNKNOWN");
    assert_eq!(crane(&["ls", &format!("{host}/t/img")]).trim(), "v1");
}
