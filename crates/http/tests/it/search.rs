//! `GET /api/v1/search`: every space's charts, ranked, at their latest versions, paged.

use serde_json::Value;

use crate::app::TestApp;
use crate::charts::ChartBuilder;

fn chart(name: &str, version: &str, description: &str, keywords: &[&str]) -> Vec<u8> {
    let keywords = if keywords.is_empty() { String::new() } else { format!("keywords: [{}]\n", keywords.join(", ")) };
    ChartBuilder::new(name, version)
        .with(
            &format!("{name}/Chart.yaml"),
            format!("apiVersion: v2\nname: {name}\nversion: {version}\nappVersion: \"7.2\"\ndescription: {description}\n{keywords}"),
        )
        .build()
}

async fn seeded() -> TestApp {
    let app = TestApp::new();
    for (space, name, version, description, keywords) in [
        ("apps", "redis", "1.0.0", "An in-memory store", &[][..]),
        ("apps", "redis", "1.1.0", "An in-memory store", &[]),
        ("apps", "redis", "2.0.0-rc.1", "An in-memory store", &[]),
        ("apps", "redis-cluster", "3.0.0", "Sharded", &[]),
        ("apps", "valkey", "1.0.0", "A fork", &["redis", "cache"]),
        ("apps", "nginx", "1.0.0", "A web server that fronts redis", &[]),
        ("tools", "redis", "9.0.0", "Another space's redis", &[]),
        ("tools", "postgres", "1.0.0", "A database", &["sql"]),
    ] {
        assert_eq!(app.upload(space, &chart(name, version, description, keywords)).await.status, 201);
    }
    app
}

fn found(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| format!("{}/{}", i["space"].as_str().unwrap(), i["chart"].as_str().unwrap()))
        .collect()
}

#[tokio::test]
async fn exact_names_come_first_then_names_keywords_and_descriptions() {
    let app = seeded().await;
    let body = app.get("/search?q=Redis").await.json(200);
    assert_eq!(found(&body), ["apps/redis", "tools/redis", "apps/redis-cluster", "apps/valkey", "apps/nginx"]);
    assert_eq!(body["metadata"]["total"], 5);
    let first = &body["items"][0];
    assert_eq!(first["version"], "1.1.0", "the latest stable version, as helm pull takes");
    assert_eq!(first["appVersion"], "7.2");
    assert_eq!(first["description"], "An in-memory store");
    assert_eq!(first["link"], "/api/v1/spaces/apps/charts/redis/versions/1.1.0");
    assert_eq!(body["items"][3]["keywords"], serde_json::json!(["redis", "cache"]));
}

#[tokio::test]
async fn every_word_must_match_and_results_are_paged() {
    let app = seeded().await;
    assert_eq!(found(&app.get("/search?q=web%20redis").await.json(200)), ["apps/nginx"]);
    assert_eq!(found(&app.get("/search?q=sql").await.json(200)), ["tools/postgres"]);
    assert_eq!(found(&app.get("/search?q=nothing-like-it").await.json(200)), Vec::<String>::new());
    let page = app.get("/search?q=redis&start=1&limit=2").await.json(200);
    assert_eq!(found(&page), ["tools/redis", "apps/redis-cluster"]);
    assert_eq!(page["metadata"]["total"], 5);
    assert_eq!(page["metadata"]["itemsLength"], 2);
}

#[tokio::test]
async fn a_missing_or_overlong_query_is_a_bad_request() {
    let app = seeded().await;
    for path in ["/search", "/search?q=", "/search?q=%20%20"] {
        let body = app.get(path).await.json(400);
        assert!(body["message"].as_str().unwrap().contains("q"), "{path}: {body}");
    }
    let long = "x".repeat(300);
    assert_eq!(app.get(&format!("/search?q={long}")).await.status, 400);
}
