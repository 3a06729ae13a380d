//! The Helm chart in deploy/chart and the Dockerfile: real helm v3 and v4 lint and render
//! the chart in both storage modes, the manifests are checked against Kubernetes' schemas
//! offline (kubernetes-validate, from .tools/venv), and the config.yaml the chart renders
//! starts the real server on loopback (filesystem; access control with TLS; s3 on moto).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{
    Helm, SEED_TEST1, TempDir, USERS, binary, client, password, record_files, start_process, tool, write_file,
};
use crate::support_s3::Moto;
use reqwest::blocking::multipart;
use serde_json::{Value, json};

/// The Kubernetes version whose schemas the manifests are checked against.
const KUBERNETES: &str = "1.30.0";

fn chart_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/chart")
}

/// The chart's folder, as helm takes it.
fn chart() -> &'static str {
    static DIR: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DIR.get_or_init(|| chart_dir().display().to_string())
}

fn s3_values() -> String {
    chart_dir().join("ci/s3-values.yaml").display().to_string()
}

/// Helm v3 and v4 (an empty list where neither is installed, outside CI).
fn helms() -> Vec<Helm> {
    [3, 4].into_iter().filter_map(|major| Helm::new(major, "chart")).collect()
}

/// `helm template` of the chart with `args`; answers the manifests as helm printed them.
fn render(helm: &Helm, args: &[&str]) -> String {
    let mut all = vec!["template", "release", chart(), "--namespace", "registry"];
    all.extend_from_slice(args);
    let output = helm.output(&all);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "helm v{} template {args:?} failed: {stderr}", helm.major);
    String::from_utf8(output.stdout).unwrap()
}

/// The YAML documents of `helm template`'s output, as text (empty ones dropped).
fn documents(manifests: &str) -> Vec<String> {
    let mut documents = vec![String::new()];
    for line in manifests.lines() {
        if line == "---" {
            documents.push(String::new());
        } else {
            let last = documents.last_mut().unwrap();
            last.push_str(line);
            last.push('\n');
        }
    }
    documents.retain(|d| d.lines().any(|l| !l.trim().is_empty() && !l.starts_with('#')));
    documents
}

/// The parsed objects of `helm template`'s output.
fn objects(manifests: &str) -> Vec<Value> {
    documents(manifests)
        .iter()
        .map(|text| serde_saphyr::from_str::<Value>(text).unwrap_or_else(|e| panic!("not YAML ({e}): {text}")))
        .collect()
}

/// The one object of `kind` (panics if there is not exactly one).
fn object(objects: &[Value], kind: &str) -> Value {
    let found: Vec<&Value> = objects.iter().filter(|o| o["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "expected one {kind}, found {}", found.len());
    found[0].clone()
}

fn kinds(objects: &[Value]) -> Vec<String> {
    let mut kinds: Vec<String> = objects.iter().map(|o| o["kind"].as_str().unwrap().to_string()).collect();
    kinds.sort();
    kinds
}

/// The config.yaml in the rendered ConfigMap, as text.
fn config_text(objects: &[Value]) -> String {
    object(objects, "ConfigMap")["data"]["config.yaml"].as_str().expect("config.yaml in the ConfigMap").to_string()
}

fn config(objects: &[Value]) -> Value {
    serde_saphyr::from_str(&config_text(objects)).unwrap()
}

/// The chartyard container of the rendered Deployment.
fn container(objects: &[Value]) -> Value {
    let deployment = object(objects, "Deployment");
    let containers = deployment["spec"]["template"]["spec"]["containers"].as_array().unwrap().clone();
    assert_eq!(containers.len(), 1);
    containers[0].clone()
}

/// Checks every non-CRD manifest against Kubernetes' own schemas (strict: unknown fields
/// fail), offline, with kubernetes-validate; answers the kinds it skipped.
fn validate(manifests: &str) -> Vec<String> {
    let Some(validator) = tool(
        "kubernetes-validate",
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin/kubernetes-validate"),
    ) else {
        return Vec::new();
    };
    let dir = TempDir::new("validate");
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for (i, document) in documents(manifests).iter().enumerate() {
        let object: Value = serde_saphyr::from_str(document).unwrap();
        // The Prometheus Operator's ServiceMonitor is a CRD: Kubernetes has no schema for it.
        if object["apiVersion"].as_str().unwrap().starts_with("monitoring.coreos.com/") {
            skipped.push(object["kind"].as_str().unwrap().to_string());
            continue;
        }
        files.push(write_file(&dir.path, &format!("{i}.yaml"), document.as_bytes()));
    }
    let output =
        Command::new(validator).args(["--kubernetes-version", KUBERNETES, "--strict"]).args(&files).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "kubernetes-validate failed:\n{text}");
    assert_eq!(text.matches(" passed for resource ").count(), files.len(), "{text}");
    skipped
}

/// Every setting the chart has turned on at once, in filesystem mode.
const EVERYTHING_ON: &[&str] = &[
    "--set",
    "ingress.enabled=true,ingress.className=nginx,ingress.hosts[0].host=charts.example.com",
    "--set",
    "ingress.tls[0].secretName=charts-tls,ingress.tls[0].hosts[0]=charts.example.com",
    "--set",
    "tls.enabled=true,tls.existingSecret=chartyard-tls",
    "--set",
    "auth.enabled=true,auth.htpasswd.existingSecret=chartyard-htpasswd,auth.settings.admins[0]=admin",
    "--set",
    "metrics.serviceMonitor.enabled=true,metrics.listener.enabled=true,metrics.access=signedin",
    "--set",
    "http.shutdowngrace=1m,http.headertimeout=10s,parameters.maxuploadsize=52428800",
    "--set",
    "storage.filesystem.storageClass=fast,storage.filesystem.size=50Gi",
];

#[test]
fn chart_metadata_names_the_workspace_version() {
    let text = std::fs::read_to_string(chart_dir().join("Chart.yaml")).unwrap();
    let metadata: Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(metadata["apiVersion"], "v2");
    assert_eq!(metadata["name"], "chartyard");
    assert_eq!(metadata["version"], "0.1.0");
    assert_eq!(metadata["appVersion"], env!("CARGO_PKG_VERSION"), "appVersion follows the workspace version");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(chart_dir().join("values.schema.json")).unwrap())
        .expect("values.schema.json is JSON");
    assert_eq!(schema["properties"]["storage"]["properties"]["mode"]["enum"], json!(["filesystem", "s3"]));
    assert!(chart_dir().join("README.md").exists());
    assert!(chart_dir().join("templates/NOTES.txt").exists());
}

#[test]
fn lint_strict_passes_with_helm_v3_and_v4_in_both_modes() {
    for helm in helms() {
        let out = helm.run(&["lint", "--strict", chart()]);
        assert!(out.contains("1 chart(s) linted, 0 chart(s) failed"), "{out}");
        let out = helm.run(&["lint", "--strict", chart(), "-f", &s3_values()]);
        assert!(out.contains("1 chart(s) linted, 0 chart(s) failed"), "{out}");
        let mut args = vec!["lint", "--strict", chart()];
        args.extend_from_slice(EVERYTHING_ON);
        let out = helm.run(&args);
        assert!(out.contains("1 chart(s) linted, 0 chart(s) failed"), "{out}");
    }
}

#[test]
fn both_modes_render_manifests_that_kubernetes_schemas_accept() {
    let s3 = s3_values();
    for helm in helms() {
        let default = render(&helm, &[]);
        assert_eq!(
            kinds(&objects(&default)),
            ["ConfigMap", "Deployment", "PersistentVolumeClaim", "Service", "ServiceAccount"],
            "helm v{}",
            helm.major
        );
        assert!(validate(&default).is_empty());

        let s3_mode = render(&helm, &["-f", &s3, "--set", "tls.enabled=true,tls.existingSecret=chartyard-tls"]);
        assert_eq!(
            kinds(&objects(&s3_mode)),
            [
                "ConfigMap",
                "Deployment",
                "Ingress",
                "PodDisruptionBudget",
                "Service",
                "ServiceAccount",
                "ServiceMonitor"
            ],
            "helm v{}",
            helm.major
        );
        assert_eq!(validate(&s3_mode), ["ServiceMonitor"]);

        let everything = render(&helm, EVERYTHING_ON);
        assert_eq!(validate(&everything), ["ServiceMonitor"]);
        let rendered = objects(&everything);
        // The ServiceMonitor's shape, by hand (no schema for a CRD here).
        let monitor = object(&rendered, "ServiceMonitor");
        assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
        assert_eq!(monitor["metadata"]["name"], "release-chartyard");
        assert_eq!(
            monitor["spec"]["selector"]["matchLabels"],
            object(&rendered, "Deployment")["spec"]["selector"]["matchLabels"]
        );
        assert_eq!(monitor["spec"]["namespaceSelector"]["matchNames"], json!(["registry"]));
        let endpoints = monitor["spec"]["endpoints"].as_array().unwrap();
        assert_eq!(endpoints.len(), 1);
        assert_eq!(endpoints[0]["port"], "metrics");
        assert_eq!(endpoints[0]["path"], "/metrics");
        assert_eq!(endpoints[0]["scheme"], "http");
        assert_eq!(endpoints[0]["interval"], "30s");
        // Without its own listener, /metrics is scraped on the http port, over TLS if on.
        let on_http = objects(&render(
            &helm,
            &["--set", "metrics.serviceMonitor.enabled=true,tls.enabled=true,tls.existingSecret=t"],
        ));
        let endpoint = &object(&on_http, "ServiceMonitor")["spec"]["endpoints"][0];
        assert_eq!((endpoint["port"].as_str(), endpoint["scheme"].as_str()), (Some("http"), Some("https")));
        // metrics.enabled=false: no ServiceMonitor, and the server is told.
        let off = objects(&render(&helm, &["--set", "metrics.enabled=false,metrics.serviceMonitor.enabled=true"]));
        assert!(!kinds(&off).contains(&"ServiceMonitor".to_string()));
        assert_eq!(config(&off)["metrics"], json!({"enabled": false}));

        let ingress = object(&rendered, "Ingress");
        assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
        assert_eq!(ingress["spec"]["tls"], json!([{"secretName": "charts-tls", "hosts": ["charts.example.com"]}]));
        let rule = &ingress["spec"]["rules"][0];
        assert_eq!(rule["host"], "charts.example.com");
        assert_eq!(
            rule["http"]["paths"][0]["backend"]["service"],
            json!({"name": "release-chartyard", "port": {"name": "http"}})
        );
        assert_eq!(ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/backend-protocol"], "HTTPS");
        let claim = object(&rendered, "PersistentVolumeClaim");
        assert_eq!(claim["spec"]["storageClassName"], "fast");
        assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "50Gi");
    }
}

#[test]
fn filesystem_mode_refuses_more_than_one_replica() {
    for helm in helms() {
        let args = ["template", "release", chart(), "--set", "storage.mode=filesystem,replicaCount=2"];
        let out = helm.fails(&args);
        assert!(
            out.contains("storage.mode=filesystem runs exactly one replica")
                && out.contains("replicaCount=2")
                && out.contains("use storage.mode=s3 to run several replicas"),
            "helm v{}: {out}",
            helm.major
        );
        // One replica, or s3 with several, render.
        let one = objects(&render(&helm, &["--set", "replicaCount=1"]));
        assert_eq!(object(&one, "Deployment")["spec"]["replicas"], 1);
        let three = objects(&render(&helm, &["-f", &s3_values(), "--set", "replicaCount=3"]));
        assert_eq!(object(&three, "Deployment")["spec"]["replicas"], 3);
        // s3 without a bucket, and unknown values, are refused by the schema.
        let out = helm.fails(&["template", "release", chart(), "--set", "storage.mode=s3"]);
        assert!(out.contains("bucket"), "helm v{}: {out}", helm.major);
        let out = helm.fails(&["template", "release", chart(), "--set", "storage.filesystem.sise=1Gi"]);
        assert!(out.contains("sise"), "helm v{}: {out}", helm.major);
        let out = helm.fails(&["template", "release", chart(), "--set", "http.shutdowngrace=soon"]);
        assert!(out.contains("shutdowngrace"), "helm v{}: {out}", helm.major);
    }
}

#[test]
fn the_deployment_is_hardened_probed_and_rolls_on_config_changes() {
    let Some(helm) = Helm::new(3, "chart") else { return };
    let rendered = objects(&render(&helm, &[]));
    let deployment = object(&rendered, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(deployment["spec"]["strategy"], json!({"type": "Recreate"}));
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(pod["securityContext"]["runAsGroup"], 65532);
    assert_eq!(pod["securityContext"]["fsGroup"], 65532);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(pod["automountServiceAccountToken"], false);
    // The server's default shutdown grace is 30 s; the pod gets more before SIGKILL.
    assert_eq!(pod["terminationGracePeriodSeconds"], 5 + 30 + 15, "delay, grace and room for checkpoints");

    let app = container(&rendered);
    assert_eq!(app["image"], format!("chartyard:{}", env!("CARGO_PKG_VERSION")));
    assert_eq!(app["args"], json!(["serve", "--config", "/etc/chartyard/config.yaml"]));
    let security = &app["securityContext"];
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["runAsUser"], 65532);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(app["ports"], json!([{"name": "http", "containerPort": 8099, "protocol": "TCP"}]));
    assert_eq!(app["livenessProbe"]["httpGet"], json!({"path": "/livez", "port": "http"}));
    assert_eq!(app["readinessProbe"]["httpGet"], json!({"path": "/readyz", "port": "http"}));
    assert_eq!(app["startupProbe"]["httpGet"], json!({"path": "/livez", "port": "http"}));
    assert!(app["resources"]["requests"]["memory"].is_string() && app["resources"]["limits"]["memory"].is_string());
    let mounts: Vec<(String, String)> = app["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap().to_string(), m["mountPath"].as_str().unwrap().to_string()))
        .collect();
    for expected in [("config", "/etc/chartyard/config.yaml"), ("tmp", "/tmp"), ("data", "/data")] {
        assert!(mounts.contains(&(expected.0.to_string(), expected.1.to_string())), "{mounts:?}");
    }
    let volumes = pod["volumes"].as_array().unwrap();
    assert!(volumes.contains(&json!({"name": "tmp", "emptyDir": {}})), "{volumes:?}");
    assert!(volumes.contains(&json!({"name": "data", "persistentVolumeClaim": {"claimName": "release-chartyard"}})));
    let existing = objects(&render(&helm, &["--set", "storage.filesystem.existingClaim=mine"]));
    assert!(!kinds(&existing).contains(&"PersistentVolumeClaim".to_string()));
    assert!(
        object(&existing, "Deployment")["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "data", "persistentVolumeClaim": {"claimName": "mine"}}))
    );
    let service = object(&rendered, "Service");
    assert_eq!(
        service["spec"]["ports"],
        json!([{"name": "http", "port": 8099, "targetPort": "http", "protocol": "TCP"}])
    );
    assert_eq!(service["spec"]["selector"], deployment["spec"]["selector"]["matchLabels"]);

    // A changed config.yaml changes the pod template, so the pods roll.
    let checksum = |objects: &[Value]| {
        object(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let changed = objects(&render(&helm, &["--set", "parameters.maxuploadsize=1048576"]));
    assert_eq!(checksum(&rendered).len(), 64);
    assert_ne!(checksum(&rendered), checksum(&changed));
    assert_eq!(checksum(&rendered), checksum(&objects(&render(&helm, &[]))));

    // s3: several replicas rolling one at a time, a disruption budget, keys from a Secret.
    let s3 = objects(&render(
        &helm,
        &[
            "-f",
            &s3_values(),
            "--set",
            "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::1:role/r",
        ],
    ));
    let deployment = object(&s3, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(deployment["spec"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(object(&s3, "PodDisruptionBudget")["spec"]["minAvailable"], 1);
    assert!(!kinds(&s3).contains(&"PersistentVolumeClaim".to_string()));
    let app = container(&s3);
    assert_eq!(
        app["env"],
        json!([
            {"name": "AWS_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": {"name": "chartyard-s3", "key": "access-key-id"}}},
            {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {"secretKeyRef": {"name": "chartyard-s3", "key": "secret-access-key"}}}
        ])
    );
    assert!(!app["volumeMounts"].as_array().unwrap().iter().any(|m| m["mountPath"] == "/data"));
    assert_eq!(
        object(&s3, "ServiceAccount")["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::1:role/r"
    );
    // One replica on s3: no disruption budget that could never be met.
    let single = objects(&render(&helm, &["-f", &s3_values(), "--set", "replicaCount=1"]));
    assert!(!kinds(&single).contains(&"PodDisruptionBudget".to_string()));
    // Without a Secret, the pod's own identity: no keys in the environment.
    let identity = objects(&render(&helm, &["-f", &s3_values(), "--set", "storage.s3.existingSecret="]));
    assert!(container(&identity)["env"].is_null());

    // Everything on: TLS probes, the metrics port, the grace above http.shutdowngrace.
    let rendered = objects(&render(&helm, EVERYTHING_ON));
    let app = container(&rendered);
    assert_eq!(app["readinessProbe"]["httpGet"]["scheme"], "HTTPS");
    assert_eq!(app["livenessProbe"]["httpGet"]["scheme"], "HTTPS");
    assert_eq!(
        app["ports"],
        json!([
            {"name": "http", "containerPort": 8099, "protocol": "TCP"},
            {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}
        ])
    );
    assert_eq!(
        object(&rendered, "Service")["spec"]["ports"][1],
        json!({"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"})
    );
    assert_eq!(
        object(&rendered, "Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
        5 + 60 + 15
    );
    let settings = config(&rendered);
    assert_eq!(settings["http"], json!({"shutdowngrace": "1m", "shutdowndelay": "5s", "headertimeout": "10s"}));
    assert_eq!(settings["metrics"], json!({"listen": ":9090", "access": "signedin"}));
    assert_eq!(settings["auth"], json!({"htpasswd": "/etc/chartyard/auth/htpasswd", "admins": ["admin"]}));
    assert_eq!(
        settings["tls"],
        json!({"certificate": "/etc/chartyard/tls/tls.crt", "key": "/etc/chartyard/tls/tls.key"})
    );
    assert_eq!(settings["manager"]["parameters"]["maxuploadsize"], 52428800);
    let volumes = object(&rendered, "Deployment")["spec"]["template"]["spec"]["volumes"].clone();
    let volumes = volumes.as_array().unwrap();
    assert!(volumes.iter().any(|v| v["name"] == "htpasswd" && v["secret"]["secretName"] == "chartyard-htpasswd"));
    assert!(volumes.iter().any(|v| v["name"] == "tls" && v["secret"]["secretName"] == "chartyard-tls"));
}

/// Writes the rendered config.yaml with the pod's paths (`/data`, `/etc/chartyard/`)
/// moved under `dir`; answers its path.
fn local_config(text: &str, dir: &Path) -> String {
    let data = dir.join("data");
    let text = text
        .replace("rootdirectory: /data\n", &format!("rootdirectory: {}\n", data.display()))
        .replace("/etc/chartyard/", &format!("{}/", dir.display()));
    write_file(dir, "config.yaml", text.as_bytes())
}

fn upload(base: &str, space: &str, http: &reqwest::blocking::Client) -> u16 {
    let form = multipart::Form::new().part("chartfile", multipart::Part::bytes(SEED_TEST1.to_vec()).file_name("c.tgz"));
    http.post(format!("{base}/api/v1/spaces/{space}/charts")).multipart(form).send().unwrap().status().as_u16()
}

#[test]
fn the_rendered_filesystem_config_runs_the_server() {
    let Some(helm) = Helm::new(3, "chart") else { return };
    let rendered = objects(&render(&helm, &[]));
    let text = config_text(&rendered);
    let parsed = config(&rendered);
    assert_eq!(parsed["listen"], ":8099");
    assert_eq!(
        parsed["manager"],
        json!({"name": "simple", "parameters": {"resourcelocker": "memory", "storagedriver": "filesystem", "rootdirectory": "/data"}})
    );
    let dir = TempDir::new("chart-fs");
    let config_file = local_config(&text, &dir.path);
    let mut command = Command::new(binary());
    command.args(["serve", "--config", &config_file, "--listen", "127.0.0.1:0"]);
    let (mut child, base) = start_process(command);
    let health: Value = client().get(format!("{base}/health")).send().unwrap().json().unwrap();
    assert_eq!(health, json!({"healthy": true}));
    assert_eq!(upload(&base, "apps", &client()), 201);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(Vec::from_iter(record_files(&dir.path.join("data"))), ["apps/test/1.0.0"]);
}

#[test]
fn the_rendered_config_with_access_control_and_tls_runs_the_server() {
    let Some(helm) = Helm::new(4, "chart") else { return };
    let rendered = objects(&render(
        &helm,
        &[
            "--set",
            "tls.enabled=true,tls.existingSecret=chartyard-tls",
            "--set",
            "auth.enabled=true,auth.htpasswd.existingSecret=chartyard-htpasswd,auth.settings.admins[0]=admin",
            "--set",
            "auth.settings.anonymous[0].spaces[0]=public-*,auth.settings.anonymous[0].role=read",
            "--set",
            "metrics.access=signedin,http.shutdowngrace=1m",
        ],
    ));
    let dir = TempDir::new("chart-auth-tls");
    // The files the chart mounts from the Secrets, where the moved paths point.
    let htpasswd: String = USERS
        .iter()
        .map(|(user, password)| chartyard_testkit::htpasswd_line(Path::new(binary()), user, password))
        .collect();
    write_file(&dir.path, "auth/htpasswd", htpasswd.as_bytes());
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let certificate = params.signed_by(&key, &issuer).unwrap();
    write_file(&dir.path, "tls/tls.crt", certificate.pem().as_bytes());
    write_file(&dir.path, "tls/tls.key", key.serialize_pem().as_bytes());

    let config_file = local_config(&config_text(&rendered), &dir.path);
    let mut command = Command::new(binary());
    command.args(["serve", "--config", &config_file, "--listen", "127.0.0.1:0"]);
    let (mut child, base) = start_process(command);
    assert!(base.starts_with("https://"), "{base}");
    let https = reqwest::blocking::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let health: Value = https.get(format!("{base}/health")).send().unwrap().json().unwrap();
    assert_eq!(health, json!({"healthy": true}));
    // Access control is on: anonymous writes are refused, the admin from the values may.
    // (A request without a body: the server answers an unauthenticated upload before
    // reading its body and closes the connection, which a client still sending may see
    // as a broken pipe instead of the 401.)
    let anonymous = https.post(format!("{base}/api/v1/spaces?space=public-apps")).send().unwrap();
    assert_eq!(anonymous.status(), 401);
    let form = multipart::Form::new().part("chartfile", multipart::Part::bytes(SEED_TEST1.to_vec()).file_name("c.tgz"));
    let status = https
        .post(format!("{base}/api/v1/spaces/public-apps/charts"))
        .basic_auth("admin", Some(password("admin")))
        .multipart(form)
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 201);
    // ... and anonymous reads of public-* are allowed by the rendered rules.
    let index = https.get(format!("{base}/public-apps/index.yaml")).send().unwrap();
    assert_eq!(index.status(), 200);
    // The probes the chart points at, and /metrics for signed-in callers only.
    assert_eq!(https.get(format!("{base}/readyz")).send().unwrap().status(), 200);
    assert_eq!(https.get(format!("{base}/livez")).send().unwrap().status(), 200);
    assert_eq!(https.get(format!("{base}/metrics")).send().unwrap().status(), 401);
    let metrics = https.get(format!("{base}/metrics")).basic_auth("admin", Some(password("admin"))).send().unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(metrics.text().unwrap().contains("chartyard_build_info"));
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn the_rendered_s3_config_runs_the_server_on_a_bucket() {
    let Some(helm) = Helm::new(3, "chart") else { return };
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("chart-bucket");
    let endpoint = format!("storage.s3.endpoint={}", moto.endpoint);
    let rendered = objects(&render(
        &helm,
        &[
            "-f",
            &s3_values(),
            "--set",
            "storage.s3.bucket=chart-bucket,storage.s3.region=us-east-1,storage.s3.prefix=/registry",
            "--set",
            &endpoint,
            "--set",
            "auth.enabled=false,tls.enabled=false",
        ],
    ));
    let parsed = config(&rendered);
    assert_eq!(
        parsed["manager"]["parameters"],
        json!({
            "resourcelocker": "memory", "storagedriver": "s3", "bucket": "chart-bucket", "region": "us-east-1",
            "regionendpoint": moto.endpoint, "rootdirectory": "/registry", "forcepathstyle": true
        })
    );
    // The keys come from the environment, as the chart passes them from the Secret.
    let dir = TempDir::new("chart-s3");
    let config_file = local_config(&config_text(&rendered), &dir.path);
    let mut command = crate::support_s3::chartyard(&["serve", "--config", &config_file, "--listen", "127.0.0.1:0"]);
    command.current_dir(&dir.path);
    let (mut child, base) = start_process(command);
    let health: Value = client().get(format!("{base}/health")).send().unwrap().json().unwrap();
    assert_eq!(health, json!({"healthy": true}));
    assert_eq!(upload(&base, "apps", &client()), 201);
    child.kill().unwrap();
    child.wait().unwrap();
    let keys = moto.keys("chart-bucket");
    assert!(!keys.is_empty() && keys.iter().all(|k| k.starts_with("registry/")), "{keys:?}");
}

#[test]
fn the_dockerfile_builds_the_binary_and_runs_it_as_nonroot() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let instructions: Vec<&str> =
        text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let from: Vec<&&str> = instructions.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(from.len(), 2, "a build stage and a runtime stage: {from:?}");
    assert!(from[0].starts_with("FROM rust:1-bookworm AS "), "{from:?}");
    assert_eq!(*from[1], "FROM gcr.io/distroless/cc-debian12:nonroot");
    assert!(text.contains("cargo build --release --locked --bin chartyard"));
    let last_user = instructions.iter().rev().find(|l| l.starts_with("USER ")).unwrap();
    assert_eq!(*last_user, "USER 65532:65532");
    assert!(instructions.contains(&"EXPOSE 8099"));
    assert!(instructions.contains(&r#"ENTRYPOINT ["/usr/local/bin/chartyard"]"#));
    assert!(instructions.contains(&r#"CMD ["serve", "--config", "/etc/chartyard/config.yaml"]"#));
    let ignored = std::fs::read_to_string(root.join(".dockerignore")).unwrap();
    for path in ["target", ".tools", ".git"] {
        assert!(ignored.lines().any(|l| l == path), ".dockerignore leaves out {path}");
    }
}

#[test]
fn the_install_notes_tell_where_the_registry_is() {
    // helm v4 renders an install without a cluster (v3's client-side dry run asks one).
    let Some(helm) = Helm::new(4, "chart") else { return };
    let out = helm.run(&["install", "charts", chart(), "--namespace", "registry", "--dry-run=client"]);
    let notes = out.split("NOTES:").nth(1).expect("install notes");
    assert!(notes.contains("port-forward service/charts-chartyard 8099:8099"), "{notes}");
    assert!(notes.contains("http://charts-chartyard.registry.svc:8099/"), "{notes}");
    assert!(notes.contains("Access control is off"), "{notes}");
    let out = helm.run(&["install", "charts", chart(), "-f", &s3_values(), "--dry-run=client"]);
    let notes = out.split("NOTES:").nth(1).expect("install notes");
    assert!(notes.contains("https://charts.example.com/"), "{notes}");
    assert!(notes.contains("s3 storage, 2 replica(s)"), "{notes}");
    assert!(!notes.contains("Access control is off"), "{notes}");
}
