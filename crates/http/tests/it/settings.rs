//! Settings of the HTTP layer and the registry, set through `TestApp::builder()`.

use axum::body::Body;
use axum::http::Method;
use futures::TryStreamExt;
use object_store::ObjectStore;

use crate::app::TestApp;
use crate::charts::{ChartBuilder, chart_with_noise};

#[tokio::test]
async fn the_default_space_answers_at_the_root() {
    let app = TestApp::builder().default_space("main").build();
    app.upload("main", &ChartBuilder::new("app", "1.0.0").build()).await.json(201);
    app.upload("other", &ChartBuilder::new("elsewhere", "1.0.0").build()).await.json(201);
    assert_eq!(app.registry.list_spaces().await.unwrap(), ["main", "other"]);
    let root = app.get_url("/index.yaml").await;
    assert_eq!(root.status, 200, "{}", root.text());
    assert_eq!(root.text(), app.get_url("/main/index.yaml").await.text());
    assert!(root.text().contains("app-1.0.0.tgz") && !root.text().contains("elsewhere"), "{}", root.text());
    let charts = app.get_url("/api/charts").await.json(200);
    assert_eq!(charts["app"][0]["version"], "1.0.0", "{charts}");
    // without one, the root is no repository
    let app = TestApp::new();
    assert_eq!(app.get_url("/index.yaml").await.status, 404);
}

#[tokio::test]
async fn bodies_over_the_upload_limit_are_refused_and_store_nothing() {
    let app = TestApp::builder().http(|options| options.max_body_bytes = 16 * 1024).build();
    let message = app.upload("s", &chart_with_noise("big", "1.0.0", 64 * 1024)).await.error(413);
    assert!(!message.is_empty());
    let objects: Vec<_> = app.store.list(None).try_collect().await.unwrap();
    assert!(objects.is_empty(), "{objects:?}");
    // a chart under the limit is stored
    app.upload("s", &ChartBuilder::new("small", "1.0.0").build()).await.json(201);
}

#[tokio::test]
async fn open_upload_sessions_are_capped() {
    let app = TestApp::builder().registry(|options| options.max_upload_sessions = 2).build();
    let start = || app.send(Method::POST, "/v2/s/artifact/blobs/uploads/", Body::empty(), None);
    let first = start().await;
    assert_eq!(first.status, 202, "{}", first.text());
    assert_eq!(start().await.status, 202);
    start().await.oci_error(429, "TOOMANYREQUESTS");
    // cancelling a session frees its place
    let location = first.header("location").unwrap().to_string();
    assert_eq!(app.send(Method::DELETE, &location, Body::empty(), None).await.status, 204);
    assert_eq!(start().await.status, 202);
}
