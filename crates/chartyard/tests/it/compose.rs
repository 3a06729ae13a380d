//! Orchestration: composing a new chart from stored charts with the seed's JSON config
//! (`POST /api/v1/spaces/{space}/charts` with a non-multipart body).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{
    ChartBuilder, SEED_TEST1, Server, TempDir, client, error, helm, json, record_files, sha256, unpack,
};
use reqwest::blocking::Response;
use serde_json::{Value, json};

// ---- helpers ----

/// Posts an orchestration config as JSON.
fn compose(server: &Server, space: &str, config: &Value) -> Response {
    post_raw(server, &format!("/spaces/{space}/charts"), config.to_string().into_bytes())
}

fn dry_run(server: &Server, space: &str, config: &Value) -> Response {
    post_raw(server, &format!("/spaces/{space}/charts?dryRun=true"), config.to_string().into_bytes())
}

fn post_raw(server: &Server, path: &str, body: Vec<u8>) -> Response {
    client().post(server.api(path)).header("content-type", "application/json").body(body).send().unwrap()
}

fn yaml(files: &BTreeMap<String, Vec<u8>>, path: &str) -> Value {
    let data = files.get(path).unwrap_or_else(|| panic!("{path} missing from {:?}", files.keys()));
    let text = std::str::from_utf8(data).unwrap();
    serde_saphyr::from_str::<Value>(text).unwrap_or_else(|e| panic!("{path} is not YAML ({e}): {text}"))
}

struct HelmRun {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn run_helm(helm: &Path, args: &[&str]) -> HelmRun {
    let output = Command::new(helm).args(args).output().unwrap();
    HelmRun {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn helm_ok(helm: &Path, args: &[&str]) -> String {
    let run = run_helm(helm, args);
    assert!(run.ok, "{} {args:?} failed:\n{}\n{}", helm.display(), run.stdout, run.stderr);
    run.stdout
}

fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path
}

fn names(body: &Value) -> Vec<String> {
    body["items"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

fn spaces(server: &Server) -> Vec<String> {
    names(&json(server.get("/spaces?limit=1000"), 200))
}

fn dependency_names(metadata: &Value) -> Vec<String> {
    match &metadata["dependencies"] {
        Value::Null => Vec::new(),
        deps => deps.as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap().to_string()).collect(),
    }
}

fn dependency<'a>(metadata: &'a Value, name: &str) -> &'a Value {
    metadata["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("no dependency {name} in {metadata}"))
}

fn package(space: &str, chart: &str, version: &str) -> Value {
    json!({"independent": true, "space": space, "chart": chart, "version": version})
}

// ---- the issue's example, with generated charts ----

fn web_chart() -> Vec<u8> {
    ChartBuilder::empty()
        .file(
            "web/Chart.yaml",
            "apiVersion: v2\nname: web\nversion: 1.0.0\ndescription: the web tier\n\
             dependencies:\n- name: sidecar\n  version: 0.2.0\n- name: unrelated\n  version: 0.1.0\n",
        )
        .file(
            "web/Chart.lock",
            "dependencies:\n- name: sidecar\n  repository: \"\"\n  version: 0.2.0\n- name: unrelated\n  repository: \"\"\n  version: 0.1.0\n\
             digest: sha256:0000000000000000000000000000000000000000000000000000000000000000\n\
             generated: \"2024-01-01T00:00:00Z\"\n",
        )
        .file("web/values.yaml", "replicas: 1\ntier: web-default-tier\n")
        .file(
            "web/templates/web.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-{{ .Chart.Name }}\ndata:\n  \
             replicas: {{ .Values.replicas | quote }}\n  tier: {{ .Values.tier | quote }}\n",
        )
        .file("web/charts/sidecar/Chart.yaml", "apiVersion: v2\nname: sidecar\nversion: 0.2.0\ndescription: a sidecar\n")
        .file("web/charts/sidecar/values.yaml", "port: 8080\nmode: sidecar-default-mode\n")
        .file(
            "web/charts/sidecar/templates/sidecar.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-{{ .Chart.Name }}\ndata:\n  \
             port: {{ .Values.port | quote }}\n  mode: {{ .Values.mode | quote }}\n",
        )
        .file("web/charts/unrelated/Chart.yaml", "apiVersion: v2\nname: unrelated\nversion: 0.1.0\n")
        .file("web/charts/unrelated/values.yaml", "marker: unrelated-marker\n")
        .file(
            "web/charts/unrelated/templates/unrelated.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-{{ .Chart.Name }}\ndata:\n  \
             marker: {{ .Values.marker | quote }}\n",
        )
        .build()
}

fn postgres_chart() -> Vec<u8> {
    ChartBuilder::empty()
        .file("postgres/Chart.yaml", "apiVersion: v2\nname: postgres\nversion: 12.1.0\ndescription: a database\n")
        .file("postgres/values.yaml", "storage: 8Gi\nengine: postgres-default-engine\n")
        .file(
            "postgres/templates/db.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-{{ .Chart.Name }}\ndata:\n  \
             storage: {{ .Values.storage | quote }}\n  engine: {{ .Values.engine | quote }}\n",
        )
        .build()
}

fn issue_config() -> Value {
    json!({
        "save": {"chart": "shop", "version": "3.0.0", "description": "web shop stack", "legacyValues": false},
        "configs": {
            "package": package("base", "web", "1.0.0"),
            "_config": {"replicas": 5},
            "db": {"package": package("base", "postgres", "12.1.0"), "_config": {"storage": "50Gi"}},
            "proxy": {
                "package": {"independent": false, "space": "base", "chart": "sidecar", "version": "0.2.0"},
                "_config": {"port": 9443}
            }
        }
    })
}

/// A server with web 1.0.0 (subcharts sidecar and unrelated) and postgres 12.1.0 in `base`.
fn issue_server() -> Server {
    let server = Server::start();
    json(server.upload("base", &web_chart()), 201);
    json(server.upload("base", &postgres_chart()), 201);
    server
}

#[test]
fn composes_the_issue_example_into_a_chart_helm_installs() {
    let server = issue_server();
    let link = json(compose(&server, "base", &issue_config()), 201);
    assert_eq!(
        link,
        json!({"space": "base", "chart": "shop", "version": "3.0.0",
               "link": "/api/v1/spaces/base/charts/shop/versions/3.0.0"})
    );

    // The archive: the root's own files, the listed children renamed, nothing else.
    let archive = server.download("base", "shop", "3.0.0");
    chartyard_core::archive::load(&archive, &chartyard_core::archive::Limits::default()).expect("composed chart loads");
    let files = unpack(&archive);
    let paths: BTreeSet<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(
        paths,
        BTreeSet::from([
            "shop/Chart.yaml",
            "shop/values.yaml",
            "shop/templates/web.yaml",
            "shop/charts/db/Chart.yaml",
            "shop/charts/db/values.yaml",
            "shop/charts/db/templates/db.yaml",
            "shop/charts/proxy/Chart.yaml",
            "shop/charts/proxy/values.yaml",
            "shop/charts/proxy/templates/sidecar.yaml",
        ]),
        "the unrelated subchart and the stale Chart.lock are dropped"
    );
    let chart = yaml(&files, "shop/Chart.yaml");
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(
        (&chart["name"], &chart["version"], &chart["description"]),
        (&json!("shop"), &json!("3.0.0"), &json!("web shop stack"))
    );
    let deps: Vec<(String, String)> = chart["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["name"].as_str().unwrap().into(), d["version"].as_str().unwrap().into()))
        .collect();
    assert_eq!(deps, [("db".to_string(), "12.1.0".to_string()), ("proxy".into(), "0.2.0".into())]);
    assert_eq!(yaml(&files, "shop/charts/db/Chart.yaml")["name"], "db");
    assert_eq!(yaml(&files, "shop/charts/db/Chart.yaml")["version"], "12.1.0");
    assert_eq!(yaml(&files, "shop/charts/proxy/Chart.yaml")["name"], "proxy");
    assert_eq!(yaml(&files, "shop/values.yaml"), json!({"replicas": 5, "tier": "web-default-tier"}));
    assert_eq!(
        yaml(&files, "shop/charts/db/values.yaml"),
        json!({"storage": "50Gi", "engine": "postgres-default-engine"})
    );
    assert_eq!(yaml(&files, "shop/charts/proxy/values.yaml"), json!({"port": 9443, "mode": "sidecar-default-mode"}));

    // Real Helm lints, renders and lists it.
    let dir = TempDir::new("compose-issue");
    let tgz = write(&dir.path, "shop-3.0.0.tgz", &archive);
    let tgz = tgz.to_str().unwrap();
    let mut tested = 0;
    for major in [3, 4] {
        let Some(helm) = helm(major) else { continue };
        tested += 1;
        helm_ok(&helm, &["lint", tgz]);
        let rendered = helm_ok(&helm, &["template", "x", tgz]);
        for expected in [
            "name: x-shop",
            "replicas: \"5\"",
            "tier: \"web-default-tier\"",
            "name: x-db",
            "storage: \"50Gi\"",
            "engine: \"postgres-default-engine\"",
            "name: x-proxy",
            "port: \"9443\"",
            "mode: \"sidecar-default-mode\"",
        ] {
            assert!(rendered.contains(expected), "helm v{major}: {expected:?} not in\n{rendered}");
        }
        for unexpected in ["unrelated", "replicas: \"1\"", "8Gi", "8080", "sidecar-x"] {
            assert!(!rendered.contains(unexpected), "helm v{major}: {unexpected:?} in\n{rendered}");
        }
        let listed = helm_ok(&helm, &["dependency", "list", tgz]);
        let rows: Vec<Vec<&str>> = listed
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .filter(|r| !r.is_empty())
            .collect();
        let dep_names: Vec<&str> = rows.iter().map(|r| r[0]).collect();
        assert_eq!(dep_names, ["db", "proxy"], "helm v{major}:\n{listed}");
        for row in &rows {
            assert!(["ok", "unpacked"].contains(row.last().unwrap()), "helm v{major}:\n{listed}");
        }
    }
    eprintln!("helm versions exercised: {tested}");

    // The registry's own views of the new version.
    let metadata = json(server.get("/spaces/base/charts/shop/versions/3.0.0/manifests/metadata"), 200);
    assert_eq!(metadata["name"], "shop");
    assert_eq!(metadata["version"], "3.0.0");
    assert_eq!(metadata["apiVersion"], "v2");
    assert_eq!(metadata["description"], "web shop stack");
    assert_eq!(dependency_names(&metadata), ["db", "proxy"]);
    assert_eq!(dependency(&metadata, "db")["version"], "12.1.0");
    assert_eq!(dependency(&metadata, "proxy")["version"], "0.2.0");
    assert_eq!(dependency_names(dependency(&metadata, "db")), Vec::<String>::new());
    let values = json(server.get("/spaces/base/charts/shop/versions/3.0.0/manifests/values"), 200);
    assert_eq!(
        values,
        json!({"replicas": 5, "tier": "web-default-tier",
               "db": {"storage": "50Gi", "engine": "postgres-default-engine"},
               "proxy": {"port": 9443, "mode": "sidecar-default-mode"}})
    );
    assert_eq!(names(&json(server.get("/spaces/base/charts/shop/versions"), 200)), ["3.0.0"]);
    assert_eq!(names(&json(server.get("/spaces/base/charts?limit=100"), 200)), ["postgres", "shop", "web"]);
    let index = client().get(server.url("/base/index.yaml")).send().unwrap();
    assert_eq!(index.status(), 200);
    let index = index.text().unwrap();
    assert!(
        index.contains("charts/shop-3.0.0.tgz") && index.contains(&format!("digest: {}", sha256(&archive))),
        "{index}"
    );
    let manifest = client().get(server.url("/v2/base/shop/manifests/3.0.0")).send().unwrap();
    assert_eq!(manifest.status(), 200, "OCI pull of the composed version");
    let manifest: Value = manifest.json().unwrap();
    assert!(manifest.to_string().contains(&sha256(&archive)), "the OCI chart layer is the stored archive: {manifest}");
    // The parts are untouched.
    assert_eq!(server.download("base", "web", "1.0.0"), web_chart());
    assert_eq!(server.download("base", "postgres", "12.1.0"), postgres_chart());
}

#[test]
fn subcharts_are_found_in_their_own_parents_archive() {
    let server = Server::start();
    // postgres carries a packaged subchart, metrics, as charts/metrics-0.1.0.tgz, which
    // has a subchart of its own, probe.
    let metrics = ChartBuilder::empty()
        .file("metrics/Chart.yaml", "apiVersion: v2\nname: metrics\nversion: 0.1.0\n")
        .file("metrics/charts/probe/Chart.yaml", "apiVersion: v2\nname: probe\nversion: 0.0.3\n")
        .file("metrics/charts/probe/values.yaml", "path: /healthz\nperiod: 5\n")
        .file(
            "metrics/charts/probe/templates/p.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-{{ .Chart.Name }}\ndata:\n  \
             path: {{ .Values.path | quote }}\n  period: {{ .Values.period | quote }}\n",
        )
        .file("metrics/values.yaml", "interval: 30s\nport: 9187\n")
        .file(
            "metrics/templates/m.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-{{ .Chart.Name }}\ndata:\n  \
             interval: {{ .Values.interval | quote }}\n  port: {{ .Values.port | quote }}\n",
        )
        .build();
    let postgres = ChartBuilder::empty()
        .file("postgres/Chart.yaml", "apiVersion: v2\nname: postgres\nversion: 12.1.0\n")
        .file("postgres/values.yaml", "storage: 8Gi\n")
        .file("postgres/charts/metrics-0.1.0.tgz", metrics)
        .build();
    json(server.upload("base", &web_chart()), 201);
    json(server.upload("base", &postgres), 201);

    // metrics is a subchart of db (postgres), not of the root (web); no version = any.
    let config = json!({
        "save": {"chart": "stack", "version": "1.0.0"},
        "configs": {
            "package": package("base", "web", "1.0.0"),
            "db": {
                "package": package("base", "postgres", "12.1.0"),
                "exporter": {
                    "package": {"independent": false, "chart": "metrics"},
                    "_config": {"interval": "10s"},
                    "pr": {"package": {"independent": false, "chart": "probe", "version": "0.0.3"}, "_config": {"period": 7}}
                }
            },
            "side": {"package": {"independent": false, "chart": "sidecar"}}
        }
    });
    json(compose(&server, "base", &config), 201);
    let files = unpack(&server.download("base", "stack", "1.0.0"));
    assert_eq!(yaml(&files, "stack/charts/db/charts/exporter/Chart.yaml")["name"], "exporter");
    assert_eq!(yaml(&files, "stack/charts/db/charts/exporter/values.yaml"), json!({"interval": "10s", "port": 9187}));
    assert!(!files.keys().any(|p| p.ends_with(".tgz")), "the packaged original is replaced: {:?}", files.keys());
    let db = yaml(&files, "stack/charts/db/Chart.yaml");
    assert_eq!(db["apiVersion"], "v2");
    assert_eq!(db["dependencies"], json!([{"name": "exporter", "version": "0.1.0"}]));
    let exporter = yaml(&files, "stack/charts/db/charts/exporter/Chart.yaml");
    assert_eq!(exporter["dependencies"], json!([{"name": "pr", "version": "0.0.3"}]));
    assert_eq!(yaml(&files, "stack/charts/db/charts/exporter/charts/pr/Chart.yaml")["name"], "pr");
    assert_eq!(
        yaml(&files, "stack/charts/db/charts/exporter/charts/pr/values.yaml"),
        json!({"path": "/healthz", "period": 7})
    );
    let metadata = json(server.get("/spaces/base/charts/stack/versions/1.0.0/manifests/metadata"), 200);
    assert_eq!(dependency_names(&metadata), ["db", "side"]);
    assert_eq!(dependency_names(dependency(&metadata, "db")), ["exporter"]);
    assert_eq!(dependency_names(dependency(dependency(&metadata, "db"), "exporter")), ["pr"]);
    if let Some(helm) = helm(3) {
        let dir = TempDir::new("compose-nested");
        let tgz = write(&dir.path, "stack.tgz", &server.download("base", "stack", "1.0.0"));
        let rendered = helm_ok(&helm, &["template", "x", tgz.to_str().unwrap()]);
        for expected in
            ["name: x-exporter", "interval: \"10s\"", "port: \"9187\"", "name: x-pr", "period: \"7\"", "/healthz"]
        {
            assert!(rendered.contains(expected), "{expected:?} not in\n{rendered}");
        }
    }

    // The root's archive has no metrics subchart: looking there is a 404 naming it.
    let before = record_files(&server.data.path);
    let wrong_parent = json!({
        "save": {"chart": "stack", "version": "2.0.0"},
        "configs": {"package": package("base", "web", "1.0.0"), "exporter": {"package": {"independent": false, "chart": "metrics"}}}
    });
    let message = error(compose(&server, "base", &wrong_parent), 404);
    assert!(message.contains("subchart") && message.contains("metrics"), "{message}");
    assert_eq!(record_files(&server.data.path), before);
}

// ---- real charts from the corpus ----

#[test]
fn composes_real_charts_with_a_renamed_child() {
    let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/charts/real");
    let (Ok(exporter), Ok(ksm)) = (
        std::fs::read(real.join("prometheus-node-exporter-4.56.1.tgz")),
        std::fs::read(real.join("kube-state-metrics-8.4.0.tgz")),
    ) else {
        eprintln!("shared chart corpus not found at {}; skipping", real.display());
        return;
    };
    let server = Server::start();
    json(server.upload("real", &exporter), 201);
    json(server.upload("real", &ksm), 201);
    let config = json!({
        "save": {"chart": "monitoring", "version": "1.0.0", "description": "node exporter with kube-state-metrics"},
        "configs": {
            "package": package("real", "prometheus-node-exporter", "4.56.1"),
            "_config": {"service": {"port": 9999}},
            "ksm": {"package": package("real", "kube-state-metrics", "8.4.0"), "_config": {"replicas": 3}}
        }
    });
    json(compose(&server, "real", &config), 201);
    let archive = server.download("real", "monitoring", "1.0.0");
    let files = unpack(&archive);
    assert_eq!(yaml(&files, "monitoring/charts/ksm/Chart.yaml")["name"], "ksm");
    let root_values = yaml(&files, "monitoring/values.yaml");
    assert_eq!(root_values["service"]["port"], 9999);
    assert_eq!(root_values["service"]["type"], "ClusterIP", "sibling defaults are kept");
    assert_eq!(root_values["image"]["registry"], "quay.io");
    let ksm_values = yaml(&files, "monitoring/charts/ksm/values.yaml");
    assert_eq!(ksm_values["replicas"], 3);
    assert_eq!(ksm_values["service"]["port"], 8080);
    assert_eq!(ksm_values["image"]["registry"], "registry.k8s.io");

    let dir = TempDir::new("compose-real");
    let tgz = write(&dir.path, "monitoring-1.0.0.tgz", &archive);
    let tgz = tgz.to_str().unwrap();
    for major in [3, 4] {
        let Some(helm) = helm(major) else { continue };
        helm_ok(&helm, &["lint", tgz]);
        let rendered = helm_ok(&helm, &["template", "x", tgz]);
        for expected in [
            "port: 9999",                                             // root override
            "quay.io/prometheus/node-exporter:",                      // root default kept
            "replicas: 3",                                            // child override
            "registry.k8s.io/kube-state-metrics/kube-state-metrics:", // child default kept
            "port: 8080",                                             // child default kept
        ] {
            assert!(rendered.contains(expected), "helm v{major}: {expected:?} not rendered");
        }
        assert!(!rendered.contains("port: 9100"), "helm v{major}: the root's default port is overridden");
        assert!(!rendered.contains("replicas: 1\n"), "helm v{major}: the child's default replicas is overridden");
        let values = helm_ok(&helm, &["show", "values", tgz]);
        assert!(values.contains("port: 9999"), "helm v{major}: {values}");
    }
}

// ---- the seed's own example ----

fn seed_config(legacy: bool) -> Value {
    let test = package("library", "test", "1.0.0");
    json!({
        "save": {"chart": "testX", "version": "1.0.1", "description": "composed from the seed's test chart", "legacyValues": legacy},
        "configs": {
            "package": test,
            "_config": {"storage1": "ssd"},
            "chartB": {
                "package": test,
                "_config": {"storage2": "ssd"},
                "chartD": {"package": test, "_config": {"storage3": "ssd"}}
            },
            "chartC": {"package": test, "_config": {"storage4": "ssd"}}
        }
    })
}

fn seed_defaults(extra: Value) -> Value {
    let mut values = json!({
        "replicaCount": 3,
        "cpu": {"requests": "1000m", "limits": "1000m"},
        "memory": {"requests": "128Mi", "limits": "128Mi"}
    });
    for (k, v) in extra.as_object().unwrap() {
        values[k] = v.clone();
    }
    values
}

#[test]
fn composes_the_seed_three_level_example() {
    let server = Server::start();
    json(server.upload("library", SEED_TEST1), 201);
    let link = json(compose(&server, "library", &seed_config(false)), 201);
    assert_eq!(link["link"], "/api/v1/spaces/library/charts/testX/versions/1.0.1");

    let metadata = json(server.get("/spaces/library/charts/testX/versions/1.0.1/manifests/metadata"), 200);
    assert_eq!(metadata["name"], "testX");
    assert_eq!(metadata["version"], "1.0.1");
    assert_eq!(metadata["apiVersion"], "v2", "a v1 root with dependencies becomes v2");
    assert_eq!(dependency_names(&metadata), ["chartB", "chartC"]);
    let chart_b = dependency(&metadata, "chartB");
    assert_eq!(chart_b["version"], "1.0.0");
    assert_eq!(dependency_names(chart_b), ["chartD"]);
    assert_eq!(dependency_names(dependency(chart_b, "chartD")), Vec::<String>::new());
    assert_eq!(dependency_names(dependency(&metadata, "chartC")), Vec::<String>::new());

    let values = json(server.get("/spaces/library/charts/testX/versions/1.0.1/manifests/values"), 200);
    let expected = seed_defaults(json!({
        "storage1": "ssd",
        "chartB": seed_defaults(json!({"storage2": "ssd", "chartD": seed_defaults(json!({"storage3": "ssd"}))})),
        "chartC": seed_defaults(json!({"storage4": "ssd"})),
    }));
    assert_eq!(values, expected);

    let archive = server.download("library", "testX", "1.0.1");
    let files = unpack(&archive);
    for dir in ["testX/charts/chartB", "testX/charts/chartB/charts/chartD", "testX/charts/chartC"] {
        let chart = yaml(&files, &format!("{dir}/Chart.yaml"));
        assert_eq!(chart["name"], dir.rsplit('/').next().unwrap());
        assert!(files.contains_key(&format!("{dir}/templates/deployment.yaml")), "{:?}", files.keys());
    }
    assert_eq!(yaml(&files, "testX/charts/chartB/Chart.yaml")["apiVersion"], "v2");
    assert_eq!(yaml(&files, "testX/charts/chartC/Chart.yaml")["apiVersion"], "v1", "a leaf keeps its apiVersion");

    let dir = TempDir::new("compose-seed");
    let tgz = write(&dir.path, "testX-1.0.1.tgz", &archive);
    let tgz = tgz.to_str().unwrap();
    for major in [3, 4] {
        let Some(helm) = helm(major) else { continue };
        let rendered = helm_ok(&helm, &["template", "x", tgz]);
        for name in ["dp-testX", "dp-chartB", "dp-chartC", "dp-chartD"] {
            assert!(rendered.contains(&format!("name: {name}")), "helm v{major}: {name} not in\n{rendered}");
        }
        assert_eq!(rendered.matches("replicas: 3").count(), 4, "helm v{major}:\n{rendered}");
        // The seed chart itself fails lint (its Deployment lacks matchLabels); the
        // composition must add no error of its own.
        let lint = run_helm(&helm, &["lint", tgz]);
        let errors: Vec<&str> =
            lint.stdout.lines().chain(lint.stderr.lines()).filter(|l| l.contains("[ERROR]")).collect();
        for line in &errors {
            assert!(
                line.contains("must contain matchLabels or matchExpressions"),
                "helm v{major}: lint error the seed chart does not have: {line}\n{}\n{}",
                lint.stdout,
                lint.stderr
            );
        }
    }
}

#[test]
fn legacy_values_nest_every_config_in_the_root_values() {
    let server = Server::start();
    json(server.upload("library", SEED_TEST1), 201);
    json(compose(&server, "library", &seed_config(true)), 201);
    let files = unpack(&server.download("library", "testX", "1.0.1"));
    assert_eq!(
        yaml(&files, "testX/values.yaml"),
        json!({
            "_config": {"storage1": "ssd"},
            "chartB": {"_config": {"storage2": "ssd"}, "chartD": {"_config": {"storage3": "ssd"}}},
            "chartC": {"_config": {"storage4": "ssd"}}
        })
    );
    for dir in ["testX/charts/chartB", "testX/charts/chartB/charts/chartD", "testX/charts/chartC"] {
        assert_eq!(yaml(&files, &format!("{dir}/values.yaml")), json!({}), "{dir}/values.yaml");
    }
    let metadata = json(server.get("/spaces/library/charts/testX/versions/1.0.1/manifests/metadata"), 200);
    assert_eq!(dependency_names(&metadata), ["chartB", "chartC"]);
    assert_eq!(dependency_names(dependency(&metadata, "chartB")), ["chartD"]);
}

// ---- dry run ----

#[test]
fn dry_run_previews_and_stores_nothing() {
    let server = issue_server();
    let records = record_files(&server.data.path);
    let charts = json(server.get("/spaces/base/charts?limit=100"), 200);

    let preview = json(dry_run(&server, "base", &issue_config()), 200);
    assert_eq!(preview.as_object().unwrap().keys().collect::<Vec<_>>(), ["metadata", "values"]);
    let metadata = &preview["metadata"];
    assert_eq!((&metadata["name"], &metadata["version"]), (&json!("shop"), &json!("3.0.0")));
    assert_eq!(metadata["description"], "web shop stack");
    assert_eq!(dependency_names(metadata), ["db", "proxy"]);
    assert_eq!(dependency(metadata, "proxy")["version"], "0.2.0");
    assert_eq!(
        preview["values"],
        json!({"replicas": 5, "tier": "web-default-tier",
               "db": {"storage": "50Gi", "engine": "postgres-default-engine"},
               "proxy": {"port": 9443, "mode": "sidecar-default-mode"}})
    );
    // Any non-multipart body is a config, with or without a content type (`curl -d`).
    let untyped =
        client().post(server.api("/spaces/base/charts?dryRun=true")).body(issue_config().to_string()).send().unwrap();
    assert_eq!(json(untyped, 200), preview);
    // `?dryRun` with no value is a dry run as well.
    let bare = post_raw(&server, "/spaces/base/charts?dryRun", issue_config().to_string().into_bytes());
    assert_eq!(json(bare, 200), preview);

    assert_eq!(record_files(&server.data.path), records, "a dry run writes no version");
    assert_eq!(json(server.get("/spaces/base/charts?limit=100"), 200), charts);
    error(server.get("/spaces/base/charts/shop/versions/3.0.0/manifests/metadata"), 404);
    let index = client().get(server.url("/base/index.yaml")).send().unwrap().text().unwrap();
    assert!(!index.contains("shop"), "{index}");

    // The real thing afterwards works and stores exactly what was previewed.
    json(compose(&server, "base", &issue_config()), 201);
    let stored = json(server.get("/spaces/base/charts/shop/versions/3.0.0/manifests/metadata"), 200);
    assert_eq!(&stored, metadata);
    assert_eq!(json(server.get("/spaces/base/charts/shop/versions/3.0.0/manifests/values"), 200), preview["values"]);
    let mut expected = records.clone();
    expected.insert("base/shop/3.0.0".into());
    assert_eq!(record_files(&server.data.path), expected);

    // Now that it exists, a dry run of the same target is a conflict, as the real one is.
    error(dry_run(&server, "base", &issue_config()), 409);
}

#[test]
fn concurrent_compositions_of_one_target_store_one() {
    let server = issue_server();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let server = &server;
                scope.spawn(move || {
                    let mut config = issue_config();
                    config["configs"]["_config"] = json!({"replicas": i});
                    compose(server, "base", &config).status().as_u16()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 5, "{statuses:?}");
    let files = unpack(&server.download("base", "shop", "3.0.0"));
    let replicas = yaml(&files, "shop/values.yaml")["replicas"].as_u64().unwrap();
    assert!(replicas < 6);
    let values = json(server.get("/spaces/base/charts/shop/versions/3.0.0/manifests/values"), 200);
    assert_eq!(values["replicas"], replicas, "the record and the archive are the same composition");
    assert!(record_files(&server.data.path).contains("base/shop/3.0.0"));
}

#[test]
fn null_in_a_config_deletes_a_default() {
    let server = issue_server();
    let mut config = issue_config();
    config["configs"]["_config"] = json!({"replicas": 5, "tier": null});
    config["configs"]["db"]["_config"] = json!({"engine": null, "extra": {"nested": true}});
    config["configs"]["proxy"]["_config"] = Value::Null; // no values: the defaults as they are
    json(compose(&server, "base", &config), 201);
    let files = unpack(&server.download("base", "shop", "3.0.0"));
    assert_eq!(yaml(&files, "shop/values.yaml"), json!({"replicas": 5}));
    assert_eq!(yaml(&files, "shop/charts/db/values.yaml"), json!({"storage": "8Gi", "extra": {"nested": true}}));
    assert_eq!(yaml(&files, "shop/charts/proxy/values.yaml"), json!({"port": 8080, "mode": "sidecar-default-mode"}));
}

// ---- errors ----

/// A change that breaks the issue's config.
type Edit = Box<dyn Fn(&mut Value)>;

#[test]
fn refused_configs_store_nothing() {
    let server = issue_server();
    json(server.create_space("empty"), 201);
    let records = record_files(&server.data.path);
    let all_spaces = spaces(&server);
    let charts = json(server.get("/spaces/base/charts?limit=100"), 200);
    let check_unchanged = |case: &str| {
        assert_eq!(record_files(&server.data.path), records, "{case}: records changed");
        assert_eq!(spaces(&server), all_spaces, "{case}: spaces changed");
        assert_eq!(json(server.get("/spaces/base/charts?limit=100"), 200), charts, "{case}: charts changed");
    };

    // 400: the config itself is wrong.
    let raw_cases: [(&str, &[u8]); 4] = [
        ("malformed JSON", b"{\"save\": {\"chart\": \"shop\""),
        ("not an object", b"[1, 2]"),
        ("empty body", b""),
        ("YAML instead of JSON", b"save:\n  chart: shop\n"),
    ];
    for (case, body) in raw_cases {
        let message = error(post_raw(&server, "/spaces/base/charts", body.to_vec()), 400);
        assert!(message.contains("config"), "{case}: {message}");
        check_unchanged(case);
    }
    let edits: Vec<(&str, Edit, &str)> = vec![
        (
            "no save",
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("save");
            }),
            "save",
        ),
        (
            "no configs",
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("configs");
            }),
            "configs",
        ),
        (
            "no save.chart",
            Box::new(|c| {
                c["save"].as_object_mut().unwrap().remove("chart");
            }),
            "save.chart",
        ),
        ("empty save.chart", Box::new(|c| c["save"]["chart"] = json!("")), "save.chart"),
        ("invalid save.chart", Box::new(|c| c["save"]["chart"] = json!("a/b")), "save.chart"),
        (
            "no save.version",
            Box::new(|c| {
                c["save"].as_object_mut().unwrap().remove("version");
            }),
            "save.version",
        ),
        ("invalid save.version", Box::new(|c| c["save"]["version"] = json!("3.0")), "3.0"),
        ("child name with a space", Box::new(|c| c["configs"]["bad child"] = c["configs"]["db"].clone()), "bad child"),
        ("child name with underscore", Box::new(|c| c["configs"]["_x"] = c["configs"]["db"].clone()), "_x"),
        (
            "grandchild name",
            Box::new(|c| c["configs"]["db"]["no/slash"] = json!({"package": package("base", "postgres", "12.1.0")})),
            "no/slash",
        ),
        (
            "child version",
            Box::new(|c| c["configs"]["db"]["package"]["version"] = json!("latest")),
            "configs.db.package.version",
        ),
        (
            "subchart version",
            Box::new(|c| c["configs"]["proxy"]["package"]["version"] = json!("v0.2")),
            "configs.proxy.package.version",
        ),
        ("child without package", Box::new(|c| c["configs"]["db"] = json!({"_config": {}})), "configs.db.package"),
        ("node is a number", Box::new(|c| c["configs"]["db"] = json!(5)), "configs.db"),
        ("node is a string", Box::new(|c| c["configs"]["db"] = json!("postgres")), "configs.db"),
        ("node is an array", Box::new(|c| c["configs"]["db"] = json!([])), "configs.db"),
        ("_config is an array", Box::new(|c| c["configs"]["_config"] = json!([1])), "_config"),
        ("_config is a string", Box::new(|c| c["configs"]["db"]["_config"] = json!("x")), "configs.db._config"),
        ("root not independent", Box::new(|c| c["configs"]["package"]["independent"] = json!(false)), "independent"),
        ("package is a string", Box::new(|c| c["configs"]["db"]["package"] = json!("postgres")), "configs.db.package"),
        (
            "package without independent",
            Box::new(|c| {
                c["configs"]["db"]["package"].as_object_mut().unwrap().remove("independent");
            }),
            "configs.db.package",
        ),
        (
            "independent is a string",
            Box::new(|c| c["configs"]["db"]["package"]["independent"] = json!("true")),
            "configs.db.package",
        ),
        (
            "invalid package space",
            Box::new(|c| c["configs"]["db"]["package"]["space"] = json!("../base")),
            "configs.db.package.space",
        ),
    ];
    for (case, edit, named) in &edits {
        let mut config = issue_config();
        edit(&mut config);
        let message = error(compose(&server, "base", &config), 400);
        assert!(message.contains(named), "{case}: message should name {named:?}: {message}");
        check_unchanged(case);
    }

    // 404: something the config names does not exist.
    let message = error(compose(&server, "nowhere", &issue_config()), 404);
    assert!(message.contains("nowhere"), "target space: {message}");
    check_unchanged("missing target space");
    let not_found: Vec<(&str, Edit, &[&str])> = vec![
        ("root chart", Box::new(|c| c["configs"]["package"]["chart"] = json!("webx")), &["webx"]),
        ("root version", Box::new(|c| c["configs"]["package"]["version"] = json!("9.9.9")), &["web", "9.9.9"]),
        ("root space", Box::new(|c| c["configs"]["package"]["space"] = json!("ghost")), &["ghost"]),
        ("child chart", Box::new(|c| c["configs"]["db"]["package"]["chart"] = json!("mysql")), &["mysql"]),
        ("child version", Box::new(|c| c["configs"]["db"]["package"]["version"] = json!("13.0.0")), &["13.0.0"]),
        ("child space", Box::new(|c| c["configs"]["db"]["package"]["space"] = json!("ghost")), &["ghost"]),
        (
            "subchart name",
            Box::new(|c| c["configs"]["proxy"]["package"]["chart"] = json!("nginx")),
            &["subchart", "nginx"],
        ),
        (
            "subchart version",
            Box::new(|c| c["configs"]["proxy"]["package"]["version"] = json!("0.3.0")),
            &["subchart", "sidecar", "0.3.0"],
        ),
        (
            "subchart of a subchart-less parent",
            Box::new(|c| c["configs"]["db"]["side"] = json!({"package": {"independent": false, "chart": "sidecar"}})),
            &["subchart", "sidecar", "postgres"],
        ),
    ];
    for (case, edit, named) in &not_found {
        let mut config = issue_config();
        edit(&mut config);
        let message = error(compose(&server, "base", &config), 404);
        for name in *named {
            assert!(message.contains(name), "{case}: message should name {name:?}: {message}");
        }
        check_unchanged(case);
        // A dry run answers the same.
        assert_eq!(error(dry_run(&server, "base", &config), 404), message, "{case}: dry run");
        check_unchanged(case);
    }
    // A stored target in another space that is missing: also nothing created.
    let message = error(
        compose(&server, "empty", &{
            let mut c = issue_config();
            c["configs"]["package"]["chart"] = json!("webx");
            c
        }),
        404,
    );
    assert!(message.contains("webx"), "{message}");
    check_unchanged("missing part, other target space");

    // 409: the target version exists.
    let mut existing = issue_config();
    existing["save"] = json!({"chart": "web", "version": "1.0.0"});
    let message = error(compose(&server, "base", &existing), 409);
    assert!(message.contains("web"), "{message}");
    check_unchanged("target is an uploaded version");
    assert_eq!(server.download("base", "web", "1.0.0"), web_chart());

    json(compose(&server, "base", &issue_config()), 201);
    let composed = server.download("base", "shop", "3.0.0");
    let records = record_files(&server.data.path);
    let mut again = issue_config();
    again["configs"]["_config"] = json!({"replicas": 7});
    let message = error(compose(&server, "base", &again), 409);
    assert!(message.contains("shop"), "{message}");
    assert_eq!(record_files(&server.data.path), records);
    assert_eq!(server.download("base", "shop", "3.0.0"), composed, "the first composition is kept");
}

// ---- limits ----

/// A chart with `count` tiny extra files.
fn many_files_chart(name: &str, count: usize) -> ChartBuilder {
    let mut chart = ChartBuilder::new(name, "1.0.0");
    for i in 0..count {
        chart = chart.file(&format!("{name}/files/f{i}.txt"), "x");
    }
    chart
}

#[test]
fn composed_charts_are_held_to_the_archive_limits() {
    let server = Server::start();
    // Each part is well within the entry limit (20,000); three of them together are not.
    json(server.upload("parts", &many_files_chart("big", 7_000).build()), 201);
    let config = json!({
        "save": {"chart": "huge", "version": "1.0.0"},
        "configs": {
            "package": package("parts", "big", "1.0.0"),
            "one": {"package": package("parts", "big", "1.0.0")},
            "two": {"package": package("parts", "big", "1.0.0")}
        }
    });
    // What an upload of a chart that size gets.
    let refused = server.upload("other", &many_files_chart("huge", 21_100).build());
    let status = refused.status().as_u16();
    let upload_message = error(refused, status);
    assert!((400..500).contains(&status), "{status}: {upload_message}");

    let records = record_files(&server.data.path);
    let message = error(dry_run(&server, "parts", &config), status);
    assert_eq!(record_files(&server.data.path), records);
    let stored_message = error(compose(&server, "parts", &config), status);
    assert_eq!(stored_message, message);
    assert_eq!(record_files(&server.data.path), records, "nothing stored");
    eprintln!("over-limit composition: {status} {message}");

    // Two parts stay under the limit and compose.
    let fits = json!({
        "save": {"chart": "fits", "version": "1.0.0"},
        "configs": {"package": package("parts", "big", "1.0.0"), "one": {"package": package("parts", "big", "1.0.0")}}
    });
    json(compose(&server, "parts", &fits), 201);
    let files = unpack(&server.download("parts", "fits", "1.0.0"));
    assert_eq!(files.keys().filter(|p| p.contains("/files/")).count(), 14_000);
}

#[test]
fn the_upload_size_limit_is_on_request_bodies() {
    let server = Server::start_with(&["--max-upload-size", "8192"]);
    // Four parts, each with about 3 KiB of its own incompressible data: each uploads
    // under the limit.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let parts = ["blob0", "blob1", "blob2", "blob3"];
    for name in parts {
        let noise: String = (0..3500)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                char::from(b'!' + (state % 90) as u8)
            })
            .collect();
        let part = ChartBuilder::new(name, "1.0.0").file(&format!("{name}/files/noise.txt"), noise).build();
        assert!(part.len() < 4096, "{}", part.len());
        json(server.upload("s", &part), 201);
    }

    // A config over the body limit is refused before anything happens.
    let records = record_files(&server.data.path);
    let mut big = json!({
        "save": {"chart": "big", "version": "1.0.0"},
        "configs": {"package": package("s", "blob0", "1.0.0"), "_config": {"padding": "p".repeat(10_000)}}
    });
    let response = compose(&server, "s", &big);
    assert_eq!(response.status(), 413, "{}", response.text().unwrap());
    assert_eq!(record_files(&server.data.path), records);

    // A composed chart is held to the upload limit too: four parts of about 3 KiB each
    // make an archive over 8 KiB, which no client could have uploaded.
    big["configs"]["_config"] = json!({});
    for name in &parts[1..] {
        big["configs"][name] = json!({"package": package("s", name, "1.0.0")});
    }
    for response in [dry_run(&server, "s", &big), compose(&server, "s", &big)] {
        let message = error(response, 400);
        assert!(message.contains("more than the 8192 bytes an upload may have"), "{message}");
    }
    assert_eq!(record_files(&server.data.path), records, "nothing stored");

    // Two of them fit.
    let pair = json!({
        "save": {"chart": "pair", "version": "1.0.0"},
        "configs": {"package": package("s", "blob0", "1.0.0"), "one": {"package": package("s", "blob1", "1.0.0")}}
    });
    json(compose(&server, "s", &pair), 201);
    let composed = server.download("s", "pair", "1.0.0");
    assert!(composed.len() <= 8192, "{}", composed.len());
    assert_eq!(unpack(&composed).keys().filter(|p| p.ends_with("noise.txt")).count(), 2);
}

/// A chart `name` whose files decompress to about `mib` MiB of zeros (a small archive).
fn zeros_chart(name: &str, mib: usize) -> Vec<u8> {
    let mut chart = ChartBuilder::new(name, "1.0.0");
    for i in 0..mib {
        chart = chart.file(&format!("{name}/files/zeros-{i}"), vec![0u8; 1024 * 1024]);
    }
    let archive = chart.build();
    assert!(archive.len() < 1024 * 1024, "{} bytes", archive.len());
    archive
}

/// A config whose root and `children` children all name `space/chart/1.0.0`.
fn repeated(space: &str, chart: &str, children: usize) -> Value {
    let mut configs = json!({"package": package(space, chart, "1.0.0")});
    for i in 0..children {
        configs[format!("copy{i}")] = json!({"package": package(space, chart, "1.0.0")});
    }
    json!({"save": {"chart": "many", "version": "1.0.0"}, "configs": configs})
}

#[test]
fn a_small_config_naming_a_large_chart_many_times_is_refused_before_loading() {
    // A 4 KiB config naming one 24 MiB (decompressed) chart 40 times would expand to
    // almost 1 GiB; what the stored records say is enough to refuse it.
    let server = Server::start();
    json(server.upload("base", &zeros_chart("big", 24)), 201);
    let records = record_files(&server.data.path);
    let config = repeated("base", "big", 39);
    assert!(config.to_string().len() < 4096);
    for response in [dry_run(&server, "base", &config), compose(&server, "base", &config)] {
        let message = error(response, 400);
        assert!(message.contains("its parts expand to"), "{message}");
        assert!(message.contains("more than the 104857600 bytes a chart may have"), "{message}");
    }
    assert_eq!(record_files(&server.data.path), records, "nothing stored");
    assert!(server.healthy());

    // Three copies fit, and the chart is fetched once for all three.
    json(compose(&server, "base", &repeated("base", "big", 2)), 201);
    let files = unpack(&server.download("base", "many", "1.0.0"));
    assert_eq!(files.keys().filter(|p| p.contains("/files/zeros-")).count(), 3 * 24);
}

#[test]
fn configs_naming_too_many_parts_are_refused() {
    let server = Server::start();
    json(server.upload("base", &ChartBuilder::new("small", "1.0.0").build()), 201);
    let records = record_files(&server.data.path);
    let message = error(compose(&server, "base", &repeated("base", "small", 64)), 400);
    assert!(message.contains("more than 64 parts"), "{message}");
    assert_eq!(record_files(&server.data.path), records);
    json(compose(&server, "base", &repeated("base", "small", 63)), 201);
}

/// Removes what a record says about the archive's decompressed size, as records written
/// before it was recorded lack it.
fn forget_unpacked_sizes(server: &Server) {
    for path in crate::common::files_under(&server.data.path.join("charts")) {
        if path.extension().is_some_and(|e| e == "json") {
            let mut record: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            assert!(record.as_object_mut().unwrap().remove("unpacked_size").is_some(), "{}", path.display());
            std::fs::write(&path, serde_json::to_vec(&record).unwrap()).unwrap();
        }
    }
}

#[test]
fn parts_load_under_one_shared_budget() {
    // Without sizes in the records, the parts are loaded one by one under one budget for
    // all of them, which stops at the first overrun.
    let mut server = Server::start();
    json(server.upload("base", &zeros_chart("a", 60)), 201);
    json(server.upload("base", &zeros_chart("b", 60)), 201);
    forget_unpacked_sizes(&server);
    server.restart();
    let records = record_files(&server.data.path);
    let two = json!({
        "save": {"chart": "ab", "version": "1.0.0"},
        "configs": {"package": package("base", "a", "1.0.0"), "b": {"package": package("base", "b", "1.0.0")}}
    });
    let message = error(compose(&server, "base", &two), 400);
    assert!(message.contains("part base/b/1.0.0"), "{message}");
    assert!(message.contains("decompressed size exceeds 104857600 bytes"), "{message}");

    // One part named twice is loaded once, and its two copies are over the limit of the
    // composed chart, found while it is written.
    let twice = repeated("base", "a", 1);
    let message = error(dry_run(&server, "base", &twice), 400);
    assert!(message.contains("the composed chart would be larger than 104857600 bytes"), "{message}");
    assert_eq!(record_files(&server.data.path), records, "nothing stored");
    assert!(server.healthy());
}

/// A subchart renamed in the composition keeps the settings its parent had for it.
#[test]
fn renamed_subcharts_keep_their_parents_settings() {
    let server = Server::start();
    let parent = ChartBuilder::new("old", "1.0.0")
        .with("old/values.yaml", "sub:\n  y: from-parent\n")
        .file("old/charts/sub/Chart.yaml", "apiVersion: v2\nname: sub\nversion: 0.0.1\n")
        .file("old/charts/sub/values.yaml", "y: \"2\"\nz: kept\n")
        .build();
    json(server.upload("base", &parent), 201);
    let config = serde_json::json!({
        "save": {"chart": "new", "version": "1.0.0"},
        "configs": {"package": {"independent": true, "space": "base", "chart": "old", "version": "1.0.0"},
                    "s": {"package": {"independent": false, "chart": "sub"}}}});
    let response = client().post(server.api("/spaces/base/charts")).json(&config).send().unwrap();
    json(response, 201);
    let composed =
        chartyard_core::archive::load_files(&server.download("base", "new", "1.0.0"), &Default::default()).unwrap();
    assert_eq!(composed.chart.values.get("s"), Some(&serde_json::json!({"y": "from-parent"})));
    assert!(!composed.chart.values.contains_key("sub"), "{:?}", composed.chart.values);
    let values = json(server.get("/spaces/base/charts/new/versions/1.0.0/manifests/values"), 200);
    assert_eq!(values["s"], serde_json::json!({"y": "from-parent", "z": "kept"}));
}
