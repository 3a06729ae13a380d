//! The OCI distribution API's refusals, in process: each answers the spec's error shape
//! (`{"errors":[{"code","message"}]}`) with the spec's code and status, and stores nothing.

use axum::body::Body;
use axum::http::Method;
use serde_json::json;

use crate::app::{TestApp, TestResponse};
use crate::charts::{descriptor, digest_of, manifest_bytes, sha256};

const REPO: &str = "/v2/s/artifact";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_TYPE: &str = "application/vnd.example.config.v1+json";
const LAYER_TYPE: &str = "application/vnd.example.layer.v1.tar";
const OCTETS: Option<&str> = Some("application/octet-stream");

/// `location` with one more query parameter.
fn with_query(location: &str, query: &str) -> String {
    let separator = if location.contains('?') { '&' } else { '?' };
    format!("{location}{separator}{query}")
}

async fn post_blob(app: &TestApp, repo: &str, digest: &str, data: &[u8]) -> TestResponse {
    app.send(Method::POST, &format!("{repo}/blobs/uploads/?digest={digest}"), data.to_vec(), OCTETS).await
}

/// Pushes a blob in one request (`POST ...?digest=`); answers its digest.
async fn push_blob(app: &TestApp, repo: &str, data: &[u8]) -> String {
    let digest = digest_of(data);
    let response = post_blob(app, repo, &digest, data).await;
    assert_eq!(response.status, 201, "push blob {digest}: {}", response.text());
    digest
}

/// Starts an upload session; answers its Location.
async fn start_upload(app: &TestApp, repo: &str) -> String {
    let response = app.send(Method::POST, &format!("{repo}/blobs/uploads/"), Body::empty(), None).await;
    assert_eq!(response.status, 202, "start upload: {:?}", response.headers);
    assert!(!response.header("docker-upload-uuid").unwrap_or_default().is_empty());
    response.header("location").expect("Location").to_string()
}

/// PATCHes a chunk with `Content-Range: start-end`.
async fn patch(app: &TestApp, location: &str, start: usize, chunk: &[u8]) -> TestResponse {
    let request = axum::http::Request::builder()
        .method(Method::PATCH)
        .uri(location)
        .header("content-type", "application/octet-stream")
        .header("content-length", chunk.len().to_string())
        .header("content-range", format!("{start}-{}", start + chunk.len() - 1))
        .body(Body::from(chunk.to_vec()))
        .unwrap();
    app.request(request).await
}

/// Completes an upload with a final (possibly empty) chunk.
async fn finish(app: &TestApp, location: &str, digest: &str, last: &[u8]) -> TestResponse {
    app.send(Method::PUT, &with_query(location, &format!("digest={digest}")), last.to_vec(), OCTETS).await
}

/// Asserts a 202 chunk answer holding `end` bytes so far; answers the next Location.
fn accepted_chunk(response: TestResponse, end: usize) -> String {
    assert_eq!(response.status, 202, "chunk: {} {:?}", response.text(), response.headers);
    assert_eq!(response.header("range"), Some(format!("0-{}", end - 1).as_str()), "{:?}", response.headers);
    response.header("location").expect("Location").to_string()
}

async fn blob_status(app: &TestApp, repo: &str, digest: &str) -> u16 {
    app.head_url(&format!("{repo}/blobs/{digest}")).await.status
}

/// An image manifest of a generic artifact, after pushing its config and layers.
async fn push_artifact(app: &TestApp, repo: &str, config: &[u8], layers: &[&[u8]]) -> Vec<u8> {
    push_blob(app, repo, config).await;
    for layer in layers {
        push_blob(app, repo, layer).await;
    }
    manifest_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(CONFIG_TYPE, config),
        "layers": layers.iter().map(|l| descriptor(LAYER_TYPE, l)).collect::<Vec<_>>(),
    }))
}

async fn put_manifest(app: &TestApp, repo: &str, reference: &str, bytes: &[u8], content_type: &str) -> TestResponse {
    app.send(Method::PUT, &format!("{repo}/manifests/{reference}"), bytes.to_vec(), Some(content_type)).await
}

/// Puts a manifest, asserting 201 and its digest; answers the digest.
async fn put_manifest_ok(app: &TestApp, repo: &str, reference: &str, bytes: &[u8]) -> String {
    let response = put_manifest(app, repo, reference, bytes, OCI_MANIFEST).await;
    assert_eq!(response.status, 201, "PUT {repo}/manifests/{reference}: {}", response.text());
    let expected = digest_of(bytes);
    assert_eq!(response.header("docker-content-digest"), Some(expected.as_str()));
    expected
}

async fn manifest(app: &TestApp, repo: &str, reference: &str) -> Vec<u8> {
    let response = app.get_url(&format!("{repo}/manifests/{reference}")).await;
    assert_eq!(response.status, 200, "GET {repo}/manifests/{reference}: {}", response.text());
    assert_eq!(response.header("docker-content-digest"), Some(digest_of(&response.body).as_str()));
    response.body.to_vec()
}

async fn tags(app: &TestApp, repo: &str) -> Vec<String> {
    let body = app.get_url(&format!("{repo}/tags/list")).await.json(200);
    body["tags"]
        .as_array()
        .unwrap_or_else(|| panic!("no tags in {body}"))
        .iter()
        .map(|t| t.as_str().unwrap().into())
        .collect()
}

#[tokio::test]
async fn version_check_answers_with_the_api_version_header() {
    let app = TestApp::new();
    for path in ["/v2/", "/v2"] {
        let response = app.get_url(path).await;
        assert_eq!(response.status, 200, "{path}");
        assert_eq!(response.header("docker-distribution-api-version"), Some("registry/2.0"), "{path}");
    }
}

#[tokio::test]
async fn unknown_blob_is_blob_unknown() {
    let app = TestApp::new();
    let digest = digest_of(b"never pushed");
    app.get_url(&format!("{REPO}/blobs/{digest}")).await.oci_error(404, "BLOB_UNKNOWN");
    assert_eq!(blob_status(&app, REPO, &digest).await, 404);
    // also in a space that does not exist
    app.get_url(&format!("/v2/nospace/artifact/blobs/{digest}")).await.oci_error(404, "BLOB_UNKNOWN");
}

#[tokio::test]
async fn wrong_digest_is_rejected_and_the_blob_is_not_stored() {
    let app = TestApp::new();
    let data = b"the real bytes".to_vec();
    let claimed = digest_of(b"other bytes");

    // two-request monolithic upload
    let location = start_upload(&app, REPO).await;
    finish(&app, &location, &claimed, &data).await.oci_error(400, "DIGEST_INVALID");
    assert_eq!(blob_status(&app, REPO, &claimed).await, 404);
    assert_eq!(blob_status(&app, REPO, &digest_of(&data)).await, 404);

    // single request
    post_blob(&app, REPO, &claimed, &data).await.oci_error(400, "DIGEST_INVALID");
    assert_eq!(blob_status(&app, REPO, &claimed).await, 404);
    assert_eq!(blob_status(&app, REPO, &digest_of(&data)).await, 404);

    // chunked, with the digest of only the first chunk
    let location = start_upload(&app, REPO).await;
    let location = accepted_chunk(patch(&app, &location, 0, b"the real").await, 8);
    finish(&app, &location, &digest_of(b"the real"), b" bytes").await.oci_error(400, "DIGEST_INVALID");
    assert_eq!(blob_status(&app, REPO, &digest_of(b"the real")).await, 404);
    assert_eq!(blob_status(&app, REPO, &digest_of(&data)).await, 404);
}

#[tokio::test]
async fn malformed_digests_are_rejected() {
    let app = TestApp::new();
    let data = b"some bytes".to_vec();
    let hex = sha256(&data);
    for bad in ["sha256:xyz", "md5:0123", &format!("sha256:{}", hex.to_uppercase()), &hex, "sha256:"] {
        post_blob(&app, REPO, bad, &data).await.oci_error(400, "DIGEST_INVALID");
        let location = start_upload(&app, REPO).await;
        finish(&app, &location, bad, &data).await.oci_error(400, "DIGEST_INVALID");
        app.get_url(&format!("{REPO}/blobs/{bad}")).await.oci_error(400, "DIGEST_INVALID");
    }
    // a PUT that names no digest
    let location = start_upload(&app, REPO).await;
    app.send(Method::PUT, &location, data.clone(), None).await.oci_error(400, "DIGEST_INVALID");
    assert_eq!(blob_status(&app, REPO, &digest_of(&data)).await, 404);
}

#[tokio::test]
async fn manifest_errors() {
    let app = TestApp::new();
    let config = br#"{"kind":"example"}"#;
    let good = push_artifact(&app, REPO, config, &[b"layer"]).await;
    put_manifest_ok(&app, REPO, "v1", &good).await;

    // a layer that was never pushed
    let missing = manifest_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(CONFIG_TYPE, config),
        "layers": [descriptor(LAYER_TYPE, b"never pushed")],
    }));
    put_manifest(&app, REPO, "missing", &missing, OCI_MANIFEST).await.oci_error(400, "MANIFEST_BLOB_UNKNOWN");
    app.get_url(&format!("{REPO}/manifests/missing")).await.oci_error(404, "MANIFEST_UNKNOWN");
    // a config that was never pushed
    let missing_config = manifest_bytes(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(CONFIG_TYPE, b"{\"never\":1}"),
        "layers": [],
    }));
    put_manifest(&app, REPO, "missing", &missing_config, OCI_MANIFEST).await.oci_error(400, "MANIFEST_BLOB_UNKNOWN");

    // not JSON, not a manifest, or saying another media type than the request
    for bad in [&b"{not json"[..], b"", b"[]", br#"{"schemaVersion":1}"#, br#"{"schemaVersion":2}"#] {
        put_manifest(&app, REPO, "bad", bad, OCI_MANIFEST).await.oci_error(400, "MANIFEST_INVALID");
    }
    let docker = "application/vnd.docker.distribution.manifest.v2+json";
    put_manifest(&app, REPO, "bad", &good, docker).await.oci_error(400, "MANIFEST_INVALID");
    app.get_url(&format!("{REPO}/manifests/bad")).await.oci_error(404, "MANIFEST_UNKNOWN");

    // by digest, the bytes must have that digest
    let wrong = digest_of(b"something else");
    put_manifest(&app, REPO, &wrong, &good, OCI_MANIFEST).await.oci_error(400, "DIGEST_INVALID");
    app.get_url(&format!("{REPO}/manifests/{wrong}")).await.oci_error(404, "MANIFEST_UNKNOWN");

    // unknown tag and digest
    app.get_url(&format!("{REPO}/manifests/nope")).await.oci_error(404, "MANIFEST_UNKNOWN");
    app.get_url(&format!("{REPO}/manifests/{}", digest_of(b"nope"))).await.oci_error(404, "MANIFEST_UNKNOWN");
    assert_eq!(app.head_url(&format!("{REPO}/manifests/nope")).await.status, 404);

    // unknown space (and repository)
    app.get_url("/v2/nospace/artifact/manifests/v1").await.oci_error(404, "NAME_UNKNOWN");
    app.get_url("/v2/nospace/artifact/tags/list").await.oci_error(404, "NAME_UNKNOWN");
    app.get_url("/v2/s/nothing/tags/list").await.oci_error(404, "NAME_UNKNOWN");
    let message = app.get_url("/v2/s/nothing/manifests/v1").await.oci_error(404, "MANIFEST_UNKNOWN");
    assert!(!message.is_empty());

    // a repository name is exactly {space}/{name}
    for path in [
        "/v2/a/b/c/tags/list",
        "/v2/a/b/c/manifests/v1",
        "/v2/a/b/c/blobs/uploads/",
        "/v2/artifact/tags/list",
        "/v2/artifact/manifests/v1",
    ] {
        let response = if path.ends_with("uploads/") {
            app.send(Method::POST, path, Body::empty(), None).await
        } else {
            app.get_url(path).await
        };
        response.oci_error(400, "NAME_INVALID");
    }
    put_manifest(&app, "/v2/a/b/c", "v1", &good, OCI_MANIFEST).await.oci_error(400, "NAME_INVALID");
    app.get_url("/v2/s/bad.name/tags/list").await.oci_error(400, "NAME_INVALID");

    // everything refused left the repository as it was
    assert_eq!(tags(&app, REPO).await, ["v1"]);
    assert_eq!(manifest(&app, REPO, "v1").await, good);
}

#[tokio::test]
async fn unsupported_operations_answer_oci_errors() {
    let app = TestApp::new();
    let response = app.send(Method::POST, &format!("{REPO}/tags/list"), Body::empty(), None).await;
    response.oci_error(405, "UNSUPPORTED");
    let response = app.send(Method::PUT, &format!("{REPO}/referrers/{}", digest_of(b"x")), Body::empty(), None).await;
    response.oci_error(405, "UNSUPPORTED");
    // a path that is no endpoint at all still answers in the spec's error shape
    let response = app.get_url(&format!("{REPO}/something")).await;
    assert!((400..500).contains(&response.status), "{}", response.status);
    response.oci_error(response.status, "UNSUPPORTED");
}

#[tokio::test]
async fn list_paging_numbers_must_be_counts() {
    let app = TestApp::new();
    let bytes = push_artifact(&app, REPO, b"{}", &[b"layer"]).await;
    put_manifest_ok(&app, REPO, "v1", &bytes).await;
    for n in ["-1", "abc", "99999999999999999999999"] {
        app.get_url(&format!("{REPO}/tags/list?n={n}")).await.oci_error(400, "PAGINATION_NUMBER_INVALID");
        app.get_url(&format!("/v2/_catalog?n={n}")).await.oci_error(400, "PAGINATION_NUMBER_INVALID");
    }
}
