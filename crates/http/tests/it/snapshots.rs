//! The exact wire bodies of representative answers, as snapshots (`insta`): a change to
//! any of them shows as a diff to review. Times the registry stamps are redacted.

use serde_json::Value;

use crate::app::TestApp;
use crate::charts::{ChartBuilder, digest_of};

/// Replaces the value of every `created:` / `generated:` line (times of upload and of
/// rendering) with a placeholder.
fn redact_times(yaml: &str) -> String {
    yaml.lines()
        .map(|line| {
            let trimmed = line.trim_start();
            for key in ["created:", "generated:"] {
                if trimmed.starts_with(key) {
                    let indent = &line[..line.len() - trimmed.len()];
                    return format!("{indent}{key} \"[time]\"");
                }
            }
            line.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn pretty(body: &Value) -> String {
    serde_json::to_string_pretty(body).unwrap()
}

/// A space with two charts, one of them in two versions.
async fn small_space() -> TestApp {
    let app = TestApp::new();
    for (name, version) in [("web", "1.0.0"), ("web", "1.1.0-rc.1"), ("db", "2.0.0")] {
        app.upload("shop", &ChartBuilder::new(name, version).build()).await.json(201);
    }
    app
}

#[tokio::test]
async fn api_v1_version_listing() {
    let app = small_space().await;
    let body = app.get("/spaces/shop/charts/web/versions").await.json(200);
    insta::assert_snapshot!("api_v1_version_listing", pretty(&body));
    let body = app.get("/spaces/shop/charts/web/metadata/latest").await.json(200);
    insta::assert_snapshot!("api_v1_latest_metadata", pretty(&body));
}

#[tokio::test]
async fn api_v1_error_body() {
    let app = small_space().await;
    let response = app.get("/spaces/shop/charts/web/versions/9.9.9").await;
    response.error(404);
    insta::assert_snapshot!("api_v1_error_body", pretty(&response.json(404)));
}

#[tokio::test]
async fn oci_error_body() {
    let app = small_space().await;
    let response = app.get_url(&format!("/v2/shop/web/blobs/{}", digest_of(b"never pushed"))).await;
    let body = response.json(404);
    insta::assert_snapshot!("oci_error_body", pretty(&body));
    let response = app.get_url("/v2/shop/web/manifests/9.9.9").await;
    insta::assert_snapshot!("oci_manifest_unknown_body", pretty(&response.json(404)));
}

#[tokio::test]
async fn index_yaml_of_a_small_space() {
    let app = small_space().await;
    let response = app.get_url("/shop/index.yaml").await;
    assert_eq!(response.status, 200, "{}", response.text());
    insta::assert_snapshot!("index_yaml_of_a_small_space", redact_times(&response.text()));
}
