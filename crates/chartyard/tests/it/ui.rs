//! The web UI in a real browser: each test starts the server, seeds it through the API with
//! real charts from the shared corpus (or one built here), and runs a scenario script,
//! `tests/ui/<scenario>.mjs`, that drives Debian's chromium through playwright-core, checks
//! the pages against the UI's URL and HTML contract, runs axe-core on them and saves
//! screenshots into `target/ui-artifacts/<scenario>/`. The script gets `BASE_URL`,
//! `UI_ARTIFACTS` and `SCENARIO_DATA` (a JSON file of what the page must show, taken from
//! the archives themselves) and must exit 0. chromium and the npm packages come from
//! `scripts/install-test-tools.sh`; without them these tests fail.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{ChartBuilder, Helm, Server, TempDir, client, password, sha256};

/// One browser at a time: the machine's cores are few and chromium is heavy.
static BROWSER: Mutex<()> = Mutex::new(());

const CHROMIUM: &str = "/usr/bin/chromium";

/// A scenario that has not finished after this long is killed (and fails): a hung browser
/// must not hang the suite.
const SCENARIO_LIMIT: Duration = Duration::from_secs(600);

fn ui_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui")
}

/// `target/ui-artifacts/<scenario>`.
fn artifacts_dir(scenario: &str) -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("the target folder");
    target.join("ui-artifacts").join(scenario)
}

/// `target/ui-artifacts/<scenario>`, emptied.
fn artifacts(scenario: &str) -> PathBuf {
    let dir = artifacts_dir(scenario);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Fails, naming the install script, unless chromium, node and the npm packages are there.
fn assert_tools() {
    let install = "run scripts/install-test-tools.sh to install the browser test tools";
    assert!(Path::new(CHROMIUM).exists(), "{CHROMIUM} is missing; {install}");
    let node = Command::new("node").arg("--version").output();
    assert!(node.is_ok_and(|o| o.status.success()), "node is not on PATH; {install}");
    for file in ["playwright-core/package.json", "axe-core/axe.min.js"] {
        let path = ui_dir().join("node_modules").join(file);
        assert!(path.exists(), "{} is missing; {install}", path.display());
    }
}

/// Runs `tests/ui/<scenario>.mjs` against `server` with `data` as its `SCENARIO_DATA` and
/// `env`, asserting that it exits 0; its output is shown either way.
fn run_scenario(scenario: &str, server: &Server, data: &Value, env: &[(&str, &str)]) {
    let _one = BROWSER.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    assert_tools();
    let dir = artifacts(scenario);
    let data_file = dir.join("scenario.json");
    std::fs::write(&data_file, serde_json::to_vec_pretty(data).unwrap()).unwrap();
    let (stdout_file, stderr_file) = (dir.join("node.stdout.txt"), dir.join("node.stderr.txt"));
    let mut child = Command::new("node")
        .arg(ui_dir().join(format!("{scenario}.mjs")))
        .current_dir(ui_dir())
        .env("BASE_URL", &server.base)
        .env("UI_ARTIFACTS", &dir)
        .env("SCENARIO_DATA", &data_file)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_file).unwrap())
        .stderr(std::fs::File::create(&stderr_file).unwrap())
        .spawn()
        .expect("start node");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > SCENARIO_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = std::fs::read_to_string(&stdout_file).unwrap_or_default();
    let stderr = std::fs::read_to_string(&stderr_file).unwrap_or_default();
    let outcome = match status {
        Some(status) if status.success() => {
            eprintln!("{scenario}.mjs:\n{stdout}{stderr}");
            return;
        }
        Some(status) => format!("{scenario}.mjs failed ({status})"),
        None => format!("{scenario}.mjs did not finish within {SCENARIO_LIMIT:?}"),
    };
    let log = server.logs.lines();
    panic!(
        "{outcome}; screenshots in {}\n--- stdout ---\n{stdout}--- stderr ---\n{stderr}--- server log (last lines) ---\n{}",
        dir.display(),
        log[log.len().saturating_sub(15)..].join("\n"),
    );
}

// ---- seeding ----

/// A chart of the shared corpus (`../shared/charts/real`): its path and bytes. `None` (the
/// test skips, with a message) where the corpus is absent, except under CI.
fn real(file: &str) -> Option<(PathBuf, Vec<u8>)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/charts/real").join(file);
    match std::fs::read(&path) {
        Ok(bytes) => Some((path.canonicalize().unwrap(), bytes)),
        Err(error) => {
            assert!(std::env::var("CI").is_err(), "{}: {error}", path.display());
            eprintln!("shared chart corpus not found ({}: {error}); skipping", path.display());
            None
        }
    }
}

/// Every regular file of a chart archive, by its path below the chart's folder.
fn unpack(archive: &[u8]) -> BTreeMap<String, Vec<u8>> {
    crate::common::unpack(archive)
        .into_iter()
        .filter_map(|(path, data)| Some((path.split_once('/')?.1.to_string(), data)))
        .collect()
}

/// Uploads `archive` into `space` through `/api/v1` (as `user`, when given); answers what
/// a page of that version must show: name, version, archive digest, Chart.yaml (as JSON),
/// README, values.yaml, values.schema.json and the templates.
fn seed(server: &Server, user: Option<&str>, space: &str, archive: &[u8]) -> Value {
    let form = reqwest::blocking::multipart::Form::new()
        .part("chartfile", reqwest::blocking::multipart::Part::bytes(archive.to_vec()).file_name("chart.tgz"));
    let mut request = client().post(server.api(&format!("/spaces/{space}/charts"))).multipart(form);
    if let Some(user) = user {
        request = request.basic_auth(user, Some(password(user)));
    }
    let response = request.send().unwrap();
    let status = response.status();
    let body: Value = response.json().unwrap_or(Value::Null);
    assert_eq!(status, 201, "upload into {space}: {body}");
    let files = unpack(archive);
    let text = |name: &str| files.get(name).map(|bytes| String::from_utf8_lossy(bytes).to_string());
    let templates: BTreeMap<&str, String> = files
        .iter()
        .filter(|(name, _)| name.starts_with("templates/"))
        .map(|(name, bytes)| (name.as_str(), String::from_utf8_lossy(bytes).to_string()))
        .collect();
    let chart_yaml = text("Chart.yaml").expect("Chart.yaml");
    let metadata: Value = serde_saphyr::from_str(&chart_yaml).expect("Chart.yaml is YAML");
    json!({
        "space": space,
        "chart": body["chart"],
        "version": body["version"],
        "sha256": sha256(archive),
        "metadata": metadata,
        "readme": text("README.md"),
        "schema": text("values.schema.json"),
        "values": text("values.yaml"),
        "templates": templates,
    })
}

/// Creates a space through `/api/v1` as `user` (an admin of it).
fn create_space_as(server: &Server, user: &str, space: &str) {
    let response = client()
        .post(server.api(&format!("/spaces?space={space}")))
        .basic_auth(user, Some(password(user)))
        .send()
        .unwrap();
    assert_eq!(response.status(), 201, "create {space} as {user}");
}

// ---- scenarios ----

#[test]
fn the_browser_harness_loads_server_pages_blocks_other_hosts_and_runs_axe() {
    let server = Server::start();
    run_scenario("harness", &server, &json!({}), &[]);
}

#[test]
fn browse_spaces_charts_and_versions_of_real_charts() {
    let (Some(old), Some(new), Some(snmp), Some(apache)) = (
        real("alertmanager-0.24.1.tgz"),
        real("alertmanager-1.42.0.tgz"),
        real("alertmanager-snmp-notifier-2.1.1.tgz"),
        real("apache-11.4.30.tgz"),
    ) else {
        return;
    };
    let server = Server::start();
    let older = seed(&server, None, "prom", &old.1);
    let latest = seed(&server, None, "prom", &new.1);
    let other = seed(&server, None, "prom", &snmp.1);
    seed(&server, None, "web", &apache.1);
    let data = json!({
        "space": "prom",
        "counts": {"prom": 2, "web": 1},
        "latest": latest,
        "older": older,
        "other": other,
        "versions": [latest["version"], older["version"]],
        "template": "templates/statefulset.yaml",
    });
    run_scenario("browse", &server, &data, &[]);
    run_install_snippets(&latest);
}

/// Runs the install snippets the chart page showed (saved by `browse.mjs`) with real helm,
/// `helm install` made `helm template` (no cluster here): both render the chart.
fn run_install_snippets(latest: &Value) {
    let saved = artifacts_dir("browse").join("snippets.json");
    let snippets: Value = serde_json::from_slice(&std::fs::read(&saved).unwrap()).unwrap();
    for major in [3, 4] {
        let Some(helm) = Helm::new(major, "ui-snippets") else { continue };
        for protocol in ["repo", "oci"] {
            let snippet = snippets[protocol].as_str().unwrap();
            let mut rendered = String::new();
            for line in snippet.lines().filter(|l| !l.trim().is_empty()) {
                let mut args: Vec<&str> = line.split_whitespace().collect();
                assert_eq!(args.first(), Some(&"helm"), "{protocol} snippet line: {line}");
                args.remove(0);
                if args.first() == Some(&"install") {
                    args[0] = "template";
                }
                rendered = helm.run(&args);
            }
            let chart = latest["chart"].as_str().unwrap();
            assert!(
                rendered.contains("kind: StatefulSet")
                    && rendered.contains(&format!("chart: {chart}-{}", latest["version"].as_str().unwrap())),
                "helm v{major} rendered the {protocol} snippet's chart:\n{snippet}\n{rendered}"
            );
        }
    }
}

#[test]
fn search_ranks_the_exact_name_first_and_agrees_with_the_api() {
    let mut seeds = vec![
        ("prom", "alertmanager-1.42.0.tgz".to_string()),
        ("prom", "alertmanager-snmp-notifier-2.1.1.tgz".to_string()),
        ("prom", "prometheus-29.27.0.tgz".to_string()),
        ("prom", "kube-prometheus-11.3.11.tgz".to_string()),
        ("mirror", "alertmanager-0.24.1.tgz".to_string()),
        ("mirror", "prometheus-19.7.2.tgz".to_string()),
    ];
    // Enough exporters, in two spaces, that their search fills more than one page.
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/charts/real");
    if let Ok(entries) = std::fs::read_dir(&corpus) {
        let mut exporters: Vec<String> = entries
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|name| name.starts_with("prometheus-") && name.contains("-exporter-"))
            .collect();
        exporters.sort();
        seeds.extend(exporters.iter().map(|name| ("exporters", name.clone())));
        seeds.extend(exporters.into_iter().map(|name| ("exporters-mirror", name)));
    }
    let mut archives = Vec::new();
    for (space, file) in &seeds {
        let Some((_, bytes)) = real(file) else { return };
        archives.push((*space, bytes));
    }
    let server = Server::start();
    for (space, bytes) in &archives {
        seed(&server, None, space, bytes);
    }
    let data = json!({"exact": "alertmanager", "many": "exporter", "none": "nosuchwordanywhere"});
    run_scenario("search", &server, &data, &[]);
}

#[test]
fn sign_in_create_upload_delete_tokens_and_sign_out_through_the_ui() {
    let (Some(first), Some(second)) = (real("alertmanager-1.42.0.tgz"), real("alertmanager-0.24.1.tgz")) else {
        return;
    };
    let auth =
        "  admins: [admin]\n  rules:\n    - spaces: [\"alice-*\"]\n      users: {alice: admin}\n  faileddelay: 1ms\n";
    let server = Server::start_with_auth(auth, &[]);
    let described = |(path, bytes): &(PathBuf, Vec<u8>)| {
        let files = unpack(bytes);
        let metadata: Value = serde_saphyr::from_str(&String::from_utf8_lossy(&files["Chart.yaml"])).unwrap();
        json!({"file": path, "chart": metadata["name"], "version": metadata["version"]})
    };
    // The corpus has no provenance files: the first upload carries one made here, shaped as
    // `helm package --sign` writes it (the server checks its claims, not the signature).
    let folder = TempDir::new("ui-prov");
    let mut upload = described(&first);
    // Clear-signed text: lines starting with '-' are dash-escaped.
    let chart_yaml: String = String::from_utf8_lossy(&unpack(&first.1)["Chart.yaml"])
        .lines()
        .map(|line| if line.starts_with('-') { format!("- {line}\n") } else { format!("{line}\n") })
        .collect();
    let prov = format!(
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n{chart_yaml}\n...\nfiles:\n  {}-{}.tgz: sha256:{}\n\
         -----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n",
        upload["chart"].as_str().unwrap(),
        upload["version"].as_str().unwrap(),
        sha256(&first.1)
    );
    let prov_file = folder.path.join("chart.tgz.prov");
    std::fs::write(&prov_file, &prov).unwrap();
    upload["prov"] = json!(prov_file);
    upload["provSha256"] = json!(sha256(prov.as_bytes()));
    let data = json!({
        "space": "alice-ui",
        "tokenSpace": "alice-token",
        "upload": upload,
        "drop": described(&second),
    });
    run_scenario("actions", &server, &data, &[("UI_USER", "alice"), ("UI_PASSWORD", password("alice"))]);
    // What the UI did is in the store: the token's space exists, the UI's space does not.
    let listed: Value = client()
        .get(server.api("/spaces"))
        .basic_auth("admin", Some(password("admin")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let text = listed.to_string();
    assert!(text.contains("alice-token") && !text.contains("\"alice-ui\""), "{text}");
}

#[test]
fn a_private_space_is_invisible_to_others_in_pages_and_search() {
    let (Some(private), Some(public)) = (real("alertmanager-1.42.0.tgz"), real("apache-11.4.30.tgz")) else {
        return;
    };
    let auth = concat!(
        "  admins: [admin]\n",
        "  anonymous:\n    - spaces: [\"public-*\"]\n      role: read\n",
        "  rules:\n    - spaces: [\"private-alice\"]\n      users: {alice: read}\n",
        "  faileddelay: 1ms\n",
    );
    let server = Server::start_with_auth(auth, &[]);
    create_space_as(&server, "admin", "private-alice");
    create_space_as(&server, "admin", "public-charts");
    let hidden = seed(&server, Some("admin"), "private-alice", &private.1);
    let open = seed(&server, Some("admin"), "public-charts", &public.1);
    let data = json!({"hidden": hidden, "open": open, "template": "templates/statefulset.yaml"});
    let env = [
        ("UI_READER", "alice"),
        ("UI_READER_PASSWORD", password("alice")),
        ("UI_OTHER", "bob"),
        ("UI_OTHER_PASSWORD", password("bob")),
    ];
    run_scenario("privacy", &server, &data, &env);
}

/// A README with the usual ways of running script from Markdown and HTML.
const HOSTILE_README: &str = r##"# Hostile README

Plain text before the attacks.

<script>window.pwned=1</script>

[x](javascript:window.pwned=1)

<img src=x onerror="window.pwned=1">

<a href="#" onclick="window.pwned=1">click me</a>

[upper](JaVaScRiPt:window.pwned=1)

<a href="&#106;avascript:window.pwned=1">entity</a>

<a href=" javascript:window.pwned=1">space</a>

<svg><script>window.pwned=1</script><a xlink:href="javascript:window.pwned=1"><text y="20">svg</text></a></svg>

<iframe src="javascript:window.pwned=1"></iframe>

<iframe srcdoc="<script>parent.pwned=1</script>"></iframe>

<object data="javascript:window.pwned=1"></object>

<form action="javascript:window.pwned=1"><button formaction="javascript:window.pwned=1">go</button></form>

<div style="background:url(javascript:window.pwned=1)" onmouseover="window.pwned=1">hover me</div>

<details open ontoggle="window.pwned=1"><summary>toggle</summary>inside</details>

<meta http-equiv="refresh" content="0;url=javascript:window.pwned=1">

<base href="javascript:window.pwned=1//">

[ref link][r]

[r]: javascript:window.pwned=1

Plain text after the attacks.
"##;

#[test]
fn a_readme_with_script_renders_inert() {
    let chart_yaml = concat!(
        "apiVersion: v2\nname: hostile\nversion: 0.1.0\n",
        "description: '<img src=x onerror=\"window.pwned=1\"> described'\n",
        "home: 'javascript:window.pwned=1'\n",
        "sources: ['javascript:window.pwned=1']\n",
        "maintainers:\n  - name: '<b onmouseover=\"window.pwned=1\">m</b>'\n    url: 'javascript:window.pwned=1'\n",
        "keywords: ['<script>window.pwned=1</script>']\n",
    );
    let archive = ChartBuilder::empty()
        .file("hostile/Chart.yaml", chart_yaml)
        .file("hostile/README.md", HOSTILE_README)
        .file("hostile/values.yaml", "note: \"</pre><script>window.pwned=1</script>\"\n")
        .file(
            "hostile/templates/configmap.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  note: \"</pre><img src=x onerror=window.pwned=1>\"\n",
        )
        .build();
    let server = Server::start();
    let chart = seed(&server, None, "sanity", &archive);
    let data = json!({
        "chart": chart,
        "template": "templates/configmap.yaml",
        "plain": ["Plain text before the attacks.", "Plain text after the attacks."],
    });
    run_scenario("sanitise", &server, &data, &[]);
}
