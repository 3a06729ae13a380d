//! Every `/api/v1` route with its shapes, ordering, paging and "latest" rules, in process.

use axum::http::Method;
use serde_json::{Value, json};

use crate::app::{TestApp, api};
use crate::charts::{ChartBuilder, sha256};

fn names(body: &Value) -> Vec<String> {
    body["items"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn listings_sort_and_page_like_the_seed() {
    let app = TestApp::new();
    // Uploading into a missing space creates it.
    for chart in ["zeta", "Alpha", "alpha", "beta-2", "beta_1", "0chart"] {
        app.upload("s", &ChartBuilder::new(chart, "1.0.0").build()).await.json(201);
    }
    let all = app.get("/spaces/s/charts?limit=100").await.json(200);
    assert_eq!(names(&all), ["0chart", "Alpha", "alpha", "beta-2", "beta_1", "zeta"], "byte order");

    // default limit is 10
    for i in 0..12 {
        app.create_space(&format!("sp{i:02}")).await.json(201);
    }
    let page = app.get("/spaces").await.json(200);
    assert_eq!(page["metadata"], json!({"total": 13, "itemsLength": 10}));
    assert_eq!(names(&page)[0], "s");
    let page = app.get("/spaces?start=10").await.json(200);
    assert_eq!(page["metadata"], json!({"total": 13, "itemsLength": 3}));
    assert_eq!(names(&page), ["sp09", "sp10", "sp11"]);
    for (query, expected) in [
        ("start=13", 0),
        ("start=-1", 0),
        ("limit=-1", 0),
        ("limit=0", 0),
        ("start=12&limit=5", 1),
        ("start=&limit=", 10),
    ] {
        let page = app.get(&format!("/spaces?{query}")).await.json(200);
        assert_eq!(page["metadata"], json!({"total": 13, "itemsLength": expected}), "{query}");
    }
    for query in ["start=abc", "limit=1.5", "limit=ten"] {
        app.get(&format!("/spaces?{query}")).await.error(400);
    }
}

#[tokio::test]
async fn versions_sort_by_semver_and_latest_prefers_stable() {
    let app = TestApp::new();
    let versions = ["1.10.0", "1.2.0", "1.2.0-rc.1", "0.9.0", "2.0.0-alpha.1", "1.2.0-alpha+build.5"];
    for v in versions {
        app.upload("s", &ChartBuilder::new("app", v).build()).await.json(201);
    }
    let listed = app.get("/spaces/s/charts/app/versions?limit=100").await.json(200);
    assert_eq!(names(&listed), ["0.9.0", "1.2.0-alpha+build.5", "1.2.0-rc.1", "1.2.0", "1.10.0", "2.0.0-alpha.1"]);

    let latest = app.get("/spaces/s/charts/app/metadata/latest").await.json(200);
    assert_eq!(latest["version"], "1.10.0");
    let all = app.get("/spaces/s/charts/app/metadata?limit=100").await.json(200);
    assert_eq!(all["metadata"]["total"], 6);
    assert_eq!(all["items"][5]["version"], "2.0.0-alpha.1");

    // only pre-releases: the highest pre-release is latest
    for v in ["3.0.0-beta.1", "3.0.0-beta.2"] {
        app.upload("s", &ChartBuilder::new("pre", v).build()).await.json(201);
    }
    assert_eq!(app.get("/spaces/s/charts/pre/metadata/latest").await.json(200)["version"], "3.0.0-beta.2");

    let space_latest = app.get("/spaces/s/metadata/latest").await.json(200);
    let pairs: Vec<(String, String)> = space_latest["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap().into(), m["version"].as_str().unwrap().into()))
        .collect();
    assert_eq!(pairs, [("app".to_string(), "1.10.0".to_string()), ("pre".into(), "3.0.0-beta.2".into())]);
    let space_all = app.get("/spaces/s/metadata?limit=3&start=6").await.json(200);
    assert_eq!(space_all["metadata"], json!({"total": 8, "itemsLength": 2}));
    assert_eq!(space_all["items"][0]["name"], "pre");

    // a build-metadata version is addressable in every route
    let path = "/spaces/s/charts/app/versions/1.2.0-alpha+build.5";
    let url_path = path.replace('+', "%2B");
    let metadata = app.get(&format!("{url_path}/manifests/metadata")).await.json(200);
    assert_eq!(metadata["version"], "1.2.0-alpha+build.5");
    assert_eq!(app.delete(&url_path).await.status, 204);
    app.get(&format!("{url_path}/manifests/metadata")).await.error(404);
}

#[tokio::test]
async fn metadata_nests_subcharts_and_values_coalesce() {
    let app = TestApp::new();
    let db = ChartBuilder::new("db", "12.1.0").with("db/values.yaml", "port: 5432\nstorage:\n  size: 8Gi\n").build();
    let web = ChartBuilder::new("web", "1.0.0")
        .with(
            "web/Chart.yaml",
            "apiVersion: v2\nname: web\nversion: 1.0.0\nappVersion: \"2.1\"\nkeywords: [shop]\nmaintainers:\n- name: ops\n  email: ops@example.com\ndependencies:\n- name: db\n  version: ~12.1.0\n  repository: https://charts.example.com\n- name: cache\n  version: 1.x\n",
        )
        .with("web/values.yaml", "replicas: 2\ndb:\n  storage:\n    size: 50Gi\n")
        .file("web/charts/db-12.1.0.tgz", db)
        .file("web/charts/cache/Chart.yaml", "apiVersion: v2\nname: cache\nversion: 1.4.0\n")
        .file("web/charts/cache/values.yaml", "ttl: 60\n")
        .build();
    app.upload("shop", &web).await.json(201);
    let md = app.get("/spaces/shop/charts/web/versions/1.0.0/manifests/metadata").await.json(200);
    assert_eq!(md["appVersion"], "2.1");
    assert_eq!(md["keywords"], json!(["shop"]));
    assert_eq!(md["maintainers"], json!([{"name": "ops", "email": "ops@example.com"}]));
    let deps: Vec<(&str, &str)> = md["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["name"].as_str().unwrap(), d["version"].as_str().unwrap()))
        .collect();
    assert_eq!(deps, [("cache", "1.4.0"), ("db", "12.1.0")], "subcharts, not declared dependencies");

    let values = app.get("/spaces/shop/charts/web/versions/1.0.0/manifests/values").await.json(200);
    assert_eq!(values, json!({"replicas": 2, "db": {"port": 5432, "storage": {"size": "50Gi"}}, "cache": {"ttl": 60}}));

    // Updating metadata keeps declared dependencies in Chart.yaml (helm still sees them).
    let mut update = md.clone();
    update["description"] = json!("new description");
    app.put_json("/spaces/shop/charts/web/versions/1.0.0/manifests/metadata", &update).await.json(200);
    let archive = app.download("shop", "web", "1.0.0").await;
    let loaded = chartyard_core::archive::load(&archive, &Default::default()).unwrap();
    assert_eq!(loaded.metadata.description, "new description");
    let declared: Vec<&str> = loaded.metadata.dependencies.iter().map(|d| d.repository.as_str()).collect();
    assert_eq!(declared, ["https://charts.example.com", ""]);
    assert_eq!(loaded.subcharts.len(), 2);
}

#[tokio::test]
async fn downloads_are_exact_and_support_head() {
    let app = TestApp::new();
    let archive = ChartBuilder::new("app", "1.0.0").build();
    app.upload("s", &archive).await.json(201);
    let path = "/spaces/s/charts/app/versions/1.0.0";
    let response = app.get(path).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/gzip"));
    assert_eq!(response.header("content-length"), Some(archive.len().to_string().as_str()));
    assert_eq!(sha256(&response.body), sha256(&archive));
    let head = app.head_url(&api(path)).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some(archive.len().to_string().as_str()));
    assert!(head.body.is_empty());
    app.get("/spaces/s/charts/app/versions/9.9.9").await.error(404);
    app.get("/spaces/nope/charts/app/versions/1.0.0").await.error(404);
}

#[tokio::test]
async fn missing_resources_answer_404() {
    let app = TestApp::new();
    app.get("/spaces/nope/charts").await.error(404);
    app.get("/spaces/nope/metadata").await.error(404);
    app.get("/spaces/nope/metadata/latest").await.error(404);
    app.get("/spaces/nope/charts/c/versions").await.error(404);
    app.get("/spaces/nope/charts/c/metadata").await.error(404);
    app.get("/spaces/nope/charts/c/metadata/latest").await.error(404);
    app.get("/spaces/nope/charts/c/versions/1.0.0/manifests/values").await.error(404);
    app.put_json("/spaces/nope/charts/c/versions/1.0.0/manifests/values", &json!({})).await.error(404);
    app.replace("nope", "app", "1.0.0", &ChartBuilder::new("app", "1.0.0").build()).await.error(404);
    app.delete("/spaces/nope").await.error(404);
    app.delete("/spaces/nope/charts/c").await.error(404);
    app.delete("/spaces/nope/charts/c/versions/1.0.0").await.error(404);
    app.create_space("empty").await.json(201);
    assert_eq!(app.get("/spaces/empty/charts").await.json(200)["metadata"]["total"], 0);
    assert_eq!(app.get("/spaces/empty/metadata/latest").await.json(200)["items"], json!([]));
}

#[tokio::test]
async fn spaces_are_independent() {
    let app = TestApp::new();
    let one = ChartBuilder::new("app", "1.0.0").build();
    let two = ChartBuilder::new("app", "1.0.0").with("app/values.yaml", "replicaCount: 2\n").build();
    app.upload("a", &one).await.json(201);
    app.upload("b", &two).await.json(201);
    assert_eq!(app.download("a", "app", "1.0.0").await, one);
    assert_eq!(app.download("b", "app", "1.0.0").await, two);
    assert_eq!(app.delete("/spaces/a").await.status, 204);
    assert_eq!(app.download("b", "app", "1.0.0").await, two);
    // a deleted space can be made again, empty
    app.create_space("a").await.json(201);
    assert_eq!(app.get("/spaces/a/charts").await.json(200)["metadata"]["total"], 0);
}

#[tokio::test]
async fn a_json_body_is_an_orchestration_config() {
    let app = TestApp::new();
    let message = app.post_json("/spaces/s/charts", &json!({"save": {}})).await.error(400);
    assert!(message.contains("save.chart is required"), "{message}");
}

#[tokio::test]
async fn apidocs_describe_every_route_the_server_has() {
    let app = TestApp::new();
    let doc = app.get_url("/apidocs.json").await.json(200);
    assert_eq!(doc["swagger"], "2.0");
    assert_eq!(doc["basePath"], "/api/v1");
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(paths.len(), 15);
    for (template, operations) in paths {
        let path = template.replace("{space}", "nospace").replace("{chart}", "nochart").replace("{version}", "9.9.9");
        for method in operations.as_object().unwrap().keys() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let response = app.send(method.clone(), &api(&path), axum::body::Body::empty(), None).await;
            let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
            // A documented route exists: it may fail on the missing space, but never as
            // "no such route" or "method not allowed".
            let status = response.status;
            assert!(status != 405 && body["message"] != "no such route", "{method} {template}: {status} {body}");
        }
    }
    assert_eq!(app.get_url("/health").await.json(200), json!({"healthy": true}));
}
