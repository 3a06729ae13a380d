//! The seed's own end-to-end scenarios (its `test/space` and `test/chart` suites), run
//! against the real server with the seed's test charts.

use crate::common::{SEED_TEST1, SEED_TEST2, Server, error, json};
use serde_json::json;

#[test]
fn spaces_scenario() {
    let server = Server::start();
    let valid = ["test", "teXa-sd--_t", "test_Space"];
    for space in valid {
        let link = json(server.create_space(space), 201);
        assert_eq!(link, json!({"name": space, "link": format!("/api/v1/spaces/{space}")}));
    }
    for space in ["_srsd", "_11srsd", "-11srsd"] {
        error(server.create_space(space), 400);
    }
    error(server.create_space("test"), 409);

    let list = json(server.get("/spaces?start=0&limit=100000"), 200);
    let mut sorted = valid.to_vec();
    sorted.sort();
    assert_eq!(list, json!({"metadata": {"total": 3, "itemsLength": 3}, "items": sorted}));

    for space in valid {
        assert_eq!(server.delete(&format!("/spaces/{space}")).status(), 204);
    }
    assert_eq!(json(server.get("/spaces"), 200)["metadata"]["total"], 0);
    error(server.delete("/spaces/test"), 404);
}

#[test]
fn charts_scenario() {
    let server = Server::start();
    let (space, chart, version) = ("library", "test", "1.0.0");

    // upload, then the same version again and into a chart path it does not match
    let link = json(server.upload(space, SEED_TEST1), 201);
    assert_eq!(
        link,
        json!({"space": space, "chart": chart, "version": version,
               "link": "/api/v1/spaces/library/charts/test/versions/1.0.0"})
    );
    error(server.upload(space, SEED_TEST1), 409);

    // list charts and versions
    let charts = json(server.get(&format!("/spaces/{space}/charts?start=0&limit=100000")), 200);
    assert_eq!(charts, json!({"metadata": {"total": 1, "itemsLength": 1}, "items": [chart]}));
    let versions = json(server.get(&format!("/spaces/{space}/charts/{chart}/versions")), 200);
    assert_eq!(versions, json!({"metadata": {"total": 1, "itemsLength": 1}, "items": [version]}));

    // chart metadata list
    let metadata = json(server.get(&format!("/spaces/{space}/charts/{chart}/metadata")), 200);
    assert_eq!(metadata["metadata"]["total"], 1);
    assert_eq!(metadata["items"][0]["name"], chart);
    assert_eq!(metadata["items"][0]["version"], version);

    // version metadata round trip
    let path = format!("/spaces/{space}/charts/{chart}/versions/{version}");
    let mut md = json(server.get(&format!("{path}/manifests/metadata")), 200);
    assert_eq!((md["name"].as_str(), md["version"].as_str()), (Some(chart), Some(version)));
    md["description"] = json!("test manipulating metadata");
    md["icon"] = json!("http://test.test");
    let updated = json(server.put_json(&format!("{path}/manifests/metadata"), &md), 200);
    assert_eq!(updated["description"], "test manipulating metadata");
    assert_eq!(updated["icon"], "http://test.test");
    assert_eq!(json(server.get(&format!("{path}/manifests/metadata")), 200), updated);

    // values round trip
    let mut values = json(server.get(&format!("{path}/manifests/values")), 200);
    assert_eq!(values["replicaCount"], 3);
    assert_eq!(values["cpu"], json!({"requests": "1000m", "limits": "1000m"}));
    assert_eq!(values["memory"], json!({"requests": "128Mi", "limits": "128Mi"}));
    values["replicaCount"] = json!(4);
    let updated = json(server.put_json(&format!("{path}/manifests/values"), &values), 200);
    assert_eq!(updated["replicaCount"], 4);
    assert_eq!(json(server.get(&format!("{path}/manifests/values")), 200)["replicaCount"], 4);
    // the metadata change survived the values change
    assert_eq!(json(server.get(&format!("{path}/manifests/metadata")), 200)["icon"], "http://test.test");

    // replace with test2 (same name and version, other values); a mismatching path fails
    let replaced = json(server.replace(space, chart, version, SEED_TEST2), 200);
    assert_eq!(
        replaced,
        json!({"space": space, "chart": chart, "version": version,
               "link": "/api/v1/spaces/library/charts/test/versions/1.0.0"})
    );
    error(server.replace(space, "xxxx", "1.0.1", SEED_TEST2), 400);

    // download gives exactly what was stored: test2
    assert_eq!(server.download(space, chart, version), SEED_TEST2);
    let values = json(server.get(&format!("{path}/manifests/values")), 200);
    assert_eq!(values["cpu"], json!({"requests": "2000m", "limits": "2000m"}));
    assert_eq!(values["memory"], json!({"requests": "256Mi", "limits": "256Mi"}));

    // deleting the last version removes the chart, not the space
    assert_eq!(server.delete(&path).status(), 204);
    let charts = json(server.get(&format!("/spaces/{space}/charts")), 200);
    assert_eq!(charts["metadata"], json!({"total": 0, "itemsLength": 0}));
    error(server.get(&format!("/spaces/{space}/charts/{chart}/versions")), 404);

    // upload again, delete the whole chart
    json(server.upload(space, SEED_TEST1), 201);
    assert_eq!(server.delete(&format!("/spaces/{space}/charts/{chart}")).status(), 204);
    let charts = json(server.get(&format!("/spaces/{space}/charts")), 200);
    assert_eq!(charts["metadata"], json!({"total": 0, "itemsLength": 0}));
    error(server.delete(&format!("/spaces/{space}/charts/{chart}")), 404);
}
