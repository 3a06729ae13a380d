//! Every `/api/v1` route with its shapes, ordering, paging and "latest" rules.

use crate::common::{ChartBuilder, Server, client, error, json, sha256};
use serde_json::{Value, json};

fn names(body: &Value) -> Vec<String> {
    body["items"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

#[test]
fn listings_sort_and_page_like_the_seed() {
    let server = Server::start();
    // Uploading into a missing space creates it.
    for chart in ["zeta", "Alpha", "alpha", "beta-2", "beta_1", "0chart"] {
        json(server.upload("s", &ChartBuilder::new(chart, "1.0.0").build()), 201);
    }
    let all = json(server.get("/spaces/s/charts?limit=100"), 200);
    assert_eq!(names(&all), ["0chart", "Alpha", "alpha", "beta-2", "beta_1", "zeta"], "byte order");

    // default limit is 10
    for i in 0..12 {
        json(server.create_space(&format!("sp{i:02}")), 201);
    }
    let page = json(server.get("/spaces"), 200);
    assert_eq!(page["metadata"], json!({"total": 13, "itemsLength": 10}));
    assert_eq!(names(&page)[0], "s");
    let page = json(server.get("/spaces?start=10"), 200);
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
        let page = json(server.get(&format!("/spaces?{query}")), 200);
        assert_eq!(page["metadata"], json!({"total": 13, "itemsLength": expected}), "{query}");
    }
    for query in ["start=abc", "limit=1.5", "limit=ten"] {
        error(server.get(&format!("/spaces?{query}")), 400);
    }
}

#[test]
fn versions_sort_by_semver_and_latest_prefers_stable() {
    let server = Server::start();
    let versions = ["1.10.0", "1.2.0", "1.2.0-rc.1", "0.9.0", "2.0.0-alpha.1", "1.2.0-alpha+build.5"];
    for v in versions {
        json(server.upload("s", &ChartBuilder::new("app", v).build()), 201);
    }
    let listed = json(server.get("/spaces/s/charts/app/versions?limit=100"), 200);
    assert_eq!(names(&listed), ["0.9.0", "1.2.0-alpha+build.5", "1.2.0-rc.1", "1.2.0", "1.10.0", "2.0.0-alpha.1"]);

    let latest = json(server.get("/spaces/s/charts/app/metadata/latest"), 200);
    assert_eq!(latest["version"], "1.10.0");
    let all = json(server.get("/spaces/s/charts/app/metadata?limit=100"), 200);
    assert_eq!(all["metadata"]["total"], 6);
    assert_eq!(all["items"][5]["version"], "2.0.0-alpha.1");

    // only pre-releases: the highest pre-release is latest
    for v in ["3.0.0-beta.1", "3.0.0-beta.2"] {
        json(server.upload("s", &ChartBuilder::new("pre", v).build()), 201);
    }
    assert_eq!(json(server.get("/spaces/s/charts/pre/metadata/latest"), 200)["version"], "3.0.0-beta.2");

    let space_latest = json(server.get("/spaces/s/metadata/latest"), 200);
    let pairs: Vec<(String, String)> = space_latest["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap().into(), m["version"].as_str().unwrap().into()))
        .collect();
    assert_eq!(pairs, [("app".to_string(), "1.10.0".to_string()), ("pre".into(), "3.0.0-beta.2".into())]);
    let space_all = json(server.get("/spaces/s/metadata?limit=3&start=6"), 200);
    assert_eq!(space_all["metadata"], json!({"total": 8, "itemsLength": 2}));
    assert_eq!(space_all["items"][0]["name"], "pre");

    // a build-metadata version is addressable in every route
    let path = "/spaces/s/charts/app/versions/1.2.0-alpha+build.5";
    let url_path = path.replace('+', "%2B");
    assert_eq!(json(server.get(&format!("{url_path}/manifests/metadata")), 200)["version"], "1.2.0-alpha+build.5");
    assert_eq!(server.delete(&url_path).status(), 204);
    error(server.get(&format!("{url_path}/manifests/metadata")), 404);
}

#[test]
fn metadata_nests_subcharts_and_values_coalesce() {
    let server = Server::start();
    let db = ChartBuilder::new("db", "12.1.0").with("db/values.yaml", "port: 5432\nstorage:\n  size: 8Gi\n").build();
    let app = ChartBuilder::new("web", "1.0.0")
        .with(
            "web/Chart.yaml",
            "apiVersion: v2\nname: web\nversion: 1.0.0\nappVersion: \"2.1\"\nkeywords: [shop]\nmaintainers:\n- name: ops\n  email: ops@example.com\ndependencies:\n- name: db\n  version: ~12.1.0\n  repository: https://charts.example.com\n- name: cache\n  version: 1.x\n",
        )
        .with("web/values.yaml", "replicas: 2\ndb:\n  storage:\n    size: 50Gi\n")
        .file("web/charts/db-12.1.0.tgz", db)
        .file("web/charts/cache/Chart.yaml", "apiVersion: v2\nname: cache\nversion: 1.4.0\n")
        .file("web/charts/cache/values.yaml", "ttl: 60\n")
        .build();
    json(server.upload("shop", &app), 201);
    let md = json(server.get("/spaces/shop/charts/web/versions/1.0.0/manifests/metadata"), 200);
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

    let values = json(server.get("/spaces/shop/charts/web/versions/1.0.0/manifests/values"), 200);
    assert_eq!(values, json!({"replicas": 2, "db": {"port": 5432, "storage": {"size": "50Gi"}}, "cache": {"ttl": 60}}));

    // Updating metadata keeps declared dependencies in Chart.yaml (helm still sees them).
    let mut update = md.clone();
    update["description"] = json!("new description");
    json(server.put_json("/spaces/shop/charts/web/versions/1.0.0/manifests/metadata", &update), 200);
    let archive = server.download("shop", "web", "1.0.0");
    let loaded = chartyard_core::archive::load(&archive, &Default::default()).unwrap();
    assert_eq!(loaded.metadata.description, "new description");
    let declared: Vec<&str> = loaded.metadata.dependencies.iter().map(|d| d.repository.as_str()).collect();
    assert_eq!(declared, ["https://charts.example.com", ""]);
    assert_eq!(loaded.subcharts.len(), 2);
}

#[test]
fn downloads_are_exact_and_support_head() {
    let server = Server::start();
    let archive = ChartBuilder::new("app", "1.0.0").build();
    json(server.upload("s", &archive), 201);
    let url = server.api("/spaces/s/charts/app/versions/1.0.0");
    let response = client().get(&url).send().unwrap();
    assert_eq!(response.headers()["content-type"], "application/gzip");
    assert_eq!(response.headers()["content-length"], archive.len().to_string().as_str());
    assert_eq!(sha256(&response.bytes().unwrap()), sha256(&archive));
    let head = client().head(&url).send().unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], archive.len().to_string().as_str());
    error(server.get("/spaces/s/charts/app/versions/9.9.9"), 404);
    error(server.get("/spaces/nope/charts/app/versions/1.0.0"), 404);
}

#[test]
fn missing_resources_answer_404() {
    let server = Server::start();
    error(server.get("/spaces/nope/charts"), 404);
    error(server.get("/spaces/nope/metadata"), 404);
    error(server.get("/spaces/nope/metadata/latest"), 404);
    error(server.get("/spaces/nope/charts/c/versions"), 404);
    error(server.get("/spaces/nope/charts/c/metadata"), 404);
    error(server.get("/spaces/nope/charts/c/metadata/latest"), 404);
    error(server.get("/spaces/nope/charts/c/versions/1.0.0/manifests/values"), 404);
    error(server.put_json("/spaces/nope/charts/c/versions/1.0.0/manifests/values", &json!({})), 404);
    error(server.replace("nope", "app", "1.0.0", &ChartBuilder::new("app", "1.0.0").build()), 404);
    error(server.delete("/spaces/nope"), 404);
    error(server.delete("/spaces/nope/charts/c"), 404);
    error(server.delete("/spaces/nope/charts/c/versions/1.0.0"), 404);
    json(server.create_space("empty"), 201);
    assert_eq!(json(server.get("/spaces/empty/charts"), 200)["metadata"]["total"], 0);
    assert_eq!(json(server.get("/spaces/empty/metadata/latest"), 200)["items"], json!([]));
}

#[test]
fn spaces_are_independent() {
    let server = Server::start();
    let one = ChartBuilder::new("app", "1.0.0").build();
    let two = ChartBuilder::new("app", "1.0.0").with("app/values.yaml", "replicaCount: 2\n").build();
    json(server.upload("a", &one), 201);
    json(server.upload("b", &two), 201);
    assert_eq!(server.download("a", "app", "1.0.0"), one);
    assert_eq!(server.download("b", "app", "1.0.0"), two);
    assert_eq!(server.delete("/spaces/a").status(), 204);
    assert_eq!(server.download("b", "app", "1.0.0"), two);
    // a deleted space can be made again, empty
    json(server.create_space("a"), 201);
    assert_eq!(json(server.get("/spaces/a/charts"), 200)["metadata"]["total"], 0);
}

#[test]
fn a_json_body_is_an_orchestration_config() {
    let server = Server::start();
    let response = client().post(server.api("/spaces/s/charts")).json(&json!({"save": {}})).send().unwrap();
    let message = error(response, 400);
    assert!(message.contains("save.chart is required"), "{message}");
}

#[test]
fn apidocs_describe_every_route_the_server_has() {
    let server = Server::start();
    let doc = json(client().get(server.url("/apidocs.json")).send().unwrap(), 200);
    assert_eq!(doc["swagger"], "2.0");
    assert_eq!(doc["basePath"], "/api/v1");
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(paths.len(), 12);
    for (template, operations) in paths {
        let path = template.replace("{space}", "nospace").replace("{chart}", "nochart").replace("{version}", "9.9.9");
        for method in operations.as_object().unwrap().keys() {
            let response = client().request(method.to_uppercase().parse().unwrap(), server.api(&path)).send().unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().unwrap_or(Value::Null);
            // A documented route exists: it may fail on the missing space, but never as
            // "no such route" or "method not allowed".
            assert!(status != 405 && body["message"] != "no such route", "{method} {template}: {status} {body}");
        }
    }
    assert_eq!(json(client().get(server.url("/health")).send().unwrap(), 200), json!({"healthy": true}));
}
