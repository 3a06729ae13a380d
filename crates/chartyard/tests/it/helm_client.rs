//! Archives stored and rewritten by the server stay charts that real Helm v3 and v4 read.

use std::path::Path;
use std::process::Command;

use crate::common::{ChartBuilder, SEED_TEST1, Server, TempDir, helm, json, run, sha256};
use serde_json::json;

fn helm_output(helm: &Path, args: &[&str]) -> String {
    run(Command::new(helm).args(args))
}

#[test]
fn helm_reads_downloads_after_values_and_metadata_updates() {
    let server = Server::start();
    let dir = TempDir::new("helm");
    json(server.upload("s", &ChartBuilder::new("app", "1.0.0").build()), 201);
    json(server.upload("s", SEED_TEST1), 201);
    let app = "/spaces/s/charts/app/versions/1.0.0/manifests";
    json(server.put_json(&format!("{app}/values"), &json!({"replicaCount": 7, "mode": "on"})), 200);
    let mut md = json(server.get(&format!("{app}/metadata")), 200);
    md["description"] = json!("rewritten by the registry");
    md["appVersion"] = json!("1.10");
    json(server.put_json(&format!("{app}/metadata"), &md), 200);
    json(server.put_json("/spaces/s/charts/test/versions/1.0.0/manifests/values", &json!({"replicaCount": 5, "cpu": {"requests": "1", "limits": "2"}, "memory": {"requests": "1Gi", "limits": "2Gi"}})), 200);

    let app_tgz = dir.path.join("app-1.0.0.tgz");
    std::fs::write(&app_tgz, server.download("s", "app", "1.0.0")).unwrap();
    let seed_tgz = dir.path.join("test-1.0.0.tgz");
    std::fs::write(&seed_tgz, server.download("s", "test", "1.0.0")).unwrap();

    for major in [3, 4] {
        let Some(helm) = helm(major) else { continue };
        let chart = helm_output(&helm, &["show", "chart", app_tgz.to_str().unwrap()]);
        assert!(chart.contains("description: rewritten by the registry"), "{chart}");
        assert!(chart.contains("appVersion: \"1.10\""), "helm v{major} reads appVersion as a string: {chart}");
        let values = helm_output(&helm, &["show", "values", app_tgz.to_str().unwrap()]);
        assert!(values.contains("replicaCount: 7") && values.contains("\"on\""), "{values}");
        let rendered = helm_output(&helm, &["template", "x", app_tgz.to_str().unwrap()]);
        assert!(rendered.contains("replicas: \"7\""), "{rendered}");
        let rendered = helm_output(&helm, &["template", "x", seed_tgz.to_str().unwrap()]);
        assert!(rendered.contains("replicas: 5"), "{rendered}");
    }
}

#[test]
fn every_corpus_chart_uploads_and_downloads_byte_identical() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/charts");
    let Ok(manifest) = std::fs::read_to_string(corpus.join("manifest.tsv")) else {
        eprintln!("shared chart corpus not found; skipping");
        return;
    };
    let server = Server::start();
    let mut expected = Vec::new();
    for line in manifest.lines().skip(1).filter(|l| l.starts_with("real/")) {
        let cols: Vec<&str> = line.split('\t').collect();
        let archive = std::fs::read(corpus.join(cols[0])).unwrap();
        assert_eq!(sha256(&archive), cols[8]);
        let link = json(server.upload("real", &archive), 201);
        assert_eq!((link["chart"].as_str().unwrap(), link["version"].as_str().unwrap()), (cols[1], cols[2]));
        expected.push((cols[1].to_string(), cols[2].to_string(), cols[8].to_string(), cols[3].to_string()));
    }
    assert_eq!(expected.len(), 145);
    let all = json(server.get("/spaces/real/metadata?limit=1000"), 200);
    assert_eq!(all["metadata"]["total"], 145);
    for (name, version, digest, api_version) in &expected {
        assert_eq!(sha256(&server.download("real", name, version)), *digest, "{name}-{version}");
        let md = json(
            server.get(&format!(
                "/spaces/real/charts/{name}/versions/{}/manifests/metadata",
                version.replace('+', "%2B")
            )),
            200,
        );
        assert_eq!(md["apiVersion"], api_version.as_str(), "{name}-{version}");
    }
}
