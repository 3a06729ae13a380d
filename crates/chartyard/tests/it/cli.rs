//! The client commands of the `chartyard` binary, run as a process against a real server:
//! their JSON (`-o json`) and table output, their effect on the server, their error exits,
//! shell completions, and `mirror` from another chartyard and from static repositories.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{ChartBuilder, SEED_TEST1, Server, TempDir, binary, client, helm, json, sha256};
use serde_json::{Value, json};

// ---- running the binary ----

/// `chartyard --server <server> <args>`, with no connection settings from the environment.
fn command(server: &str, args: &[&str]) -> Command {
    let mut command = Command::new(binary());
    command
        .arg("--server")
        .arg(server)
        .args(args)
        .env_remove("CHARTYARD_SERVER")
        .env_remove("CHARTYARD_USERNAME")
        .env_remove("CHARTYARD_PASSWORD")
        .env_remove("CHARTYARD_TOKEN");
    command
}

fn run(server: &str, args: &[&str]) -> Output {
    command(server, args).output().expect("run chartyard")
}

/// A failed command's exit code and output, for assertion messages.
pub(crate) fn describe(args: &[&str], output: &Output) -> String {
    format!(
        "chartyard {args:?} exited with {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs a command that must succeed; answers its stdout.
fn ok(server: &str, args: &[&str]) -> String {
    let output = run(server, args);
    assert!(output.status.success(), "{}", describe(args, &output));
    String::from_utf8(output.stdout).expect("stdout is UTF-8")
}

/// Runs a command with `-o json` that must succeed; answers its stdout parsed.
fn ok_json(server: &str, args: &[&str]) -> Value {
    let mut all = vec!["-o", "json"];
    all.extend_from_slice(args);
    let stdout = ok(server, &all);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("chartyard {args:?} printed no JSON ({e}): {stdout}"))
}

/// Runs a command that must fail: exit status 1, nothing on stdout, one `chartyard: ...`
/// line on stderr; answers stderr.
fn fails(server: &str, args: &[&str]) -> String {
    let output = run(server, args);
    let text = describe(args, &output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(output.stdout.is_empty(), "{text}");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(stderr.starts_with("chartyard: "), "{text}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{text}");
    stderr
}

/// The `message` of the server's error answer to a request.
fn server_message(response: reqwest::blocking::Response, status: u16) -> String {
    let body = json(response, status);
    body["message"].as_str().unwrap_or_else(|| panic!("no message in {body}")).to_string()
}

fn write(dir: &Path, name: &str, data: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A v2 chart with an appVersion and a description of its own.
fn chart(name: &str, version: &str, app_version: &str) -> Vec<u8> {
    ChartBuilder::new(name, version)
        .with(
            &format!("{name}/Chart.yaml"),
            format!(
                "apiVersion: v2\nname: {name}\nversion: {version}\nappVersion: \"{app_version}\"\n\
                 description: {name} at {version}\n"
            ),
        )
        .build()
}

/// A provenance file for an archive, shaped as `helm package --sign` writes it (the
/// registry checks the claims, not the signature).
fn provenance(name: &str, version: &str, archive: &[u8]) -> String {
    format!(
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\napiVersion: v2\nname: {name}\nversion: {version}\n\
         description: {name} at {version}\n\n...\nfiles:\n  {name}-{version}.tgz: sha256:{}\n\
         -----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n",
        sha256(archive)
    )
}

fn get_bytes(url: &str) -> (u16, Vec<u8>) {
    let response = client().get(url).send().unwrap();
    (response.status().as_u16(), response.bytes().unwrap().to_vec())
}

/// Table rows as their whitespace-separated cells.
fn rows(table: &str) -> Vec<Vec<String>> {
    table.lines().map(|line| line.split_whitespace().map(str::to_string).collect()).collect()
}

/// The rows of a `FIELD VALUE` table under its header, sorted by field.
fn field_rows(table: &str) -> Vec<Vec<String>> {
    let mut rows = rows(table);
    assert_eq!(rows.first().map(Vec::as_slice), Some(&["FIELD".to_string(), "VALUE".to_string()][..]), "{table}");
    rows.remove(0);
    rows.sort();
    rows
}

// ---- spaces, charts, versions ----

#[test]
fn spaces_create_list_and_delete() {
    let server = Server::start();
    let base = server.base.as_str();

    let created = ok_json(base, &["spaces", "create", "team-a"]);
    assert_eq!(created, json!({"name": "team-a", "link": "/api/v1/spaces/team-a"}));
    let table = ok(base, &["spaces", "create", "team-b"]);
    assert_eq!(field_rows(&table), [vec!["link", "/api/v1/spaces/team-b"], vec!["name", "team-b"]]);

    let listed = ok_json(base, &["spaces", "list"]);
    assert_eq!(listed, json!(["team-a", "team-b"]));
    assert_eq!(listed, json(server.get("/spaces?limit=100"), 200)["items"], "the CLI lists what the server has");
    assert_eq!(rows(&ok(base, &["spaces", "list"])), [vec!["SPACE"], vec!["team-a"], vec!["team-b"]]);

    // The server may also come from the environment.
    let from_env = Command::new(binary()).args(["-o", "json", "spaces", "list"]).env("CHARTYARD_SERVER", base).output();
    let from_env = from_env.unwrap();
    assert!(from_env.status.success(), "{}", describe(&["spaces", "list"], &from_env));
    assert_eq!(serde_json::from_slice::<Value>(&from_env.stdout).unwrap(), json!(["team-a", "team-b"]));

    let conflict = server_message(server.create_space("team-a"), 409);
    let stderr = fails(base, &["spaces", "create", "team-a"]);
    assert!(stderr.contains(&conflict) && stderr.contains("HTTP 409"), "{stderr}");

    let deleted = ok_json(base, &["spaces", "delete", "team-a"]);
    assert_eq!(deleted, json!({"ok": true, "message": "deleted space team-a"}));
    assert_eq!(ok(base, &["spaces", "delete", "team-b"]).trim_end(), "deleted space team-b");
    assert_eq!(ok_json(base, &["spaces", "list"]), json!([]));
    assert_eq!(json(server.get("/spaces"), 200)["items"], json!([]));

    let missing = server_message(server.delete("/spaces/team-a"), 404);
    let stderr = fails(base, &["spaces", "delete", "team-a"]);
    assert!(stderr.contains(&missing) && stderr.contains("HTTP 404"), "{stderr}");
}

#[test]
fn push_then_list_charts_and_versions() {
    let server = Server::start();
    let base = server.base.as_str();
    let dir = TempDir::new("cli-push");
    let versions = [("1.0.0", "10.0"), ("1.10.0", "11.0"), ("1.2.0", "10.2"), ("2.0.0-rc.1", "12.0-rc")];
    for (version, app_version) in versions {
        let file = write(&dir.path, &format!("app-{version}.tgz"), chart("app", version, app_version));
        let pushed = ok_json(base, &["push", "shop", text(&file)]);
        assert_eq!(
            pushed,
            json!({"space": "shop", "chart": "app", "version": version,
                   "link": format!("/api/v1/spaces/shop/charts/app/versions/{version}")})
        );
        assert_eq!(server.download("shop", "app", version), std::fs::read(&file).unwrap(), "stored as pushed");
    }
    let seed = write(&dir.path, "test-1.0.0.tgz", SEED_TEST1);
    let table = ok(base, &["push", "shop", text(&seed)]);
    assert_eq!(
        field_rows(&table),
        [
            vec!["chart", "test"],
            vec!["link", "/api/v1/spaces/shop/charts/test/versions/1.0.0"],
            vec!["space", "shop"],
            vec!["version", "1.0.0"],
        ]
    );

    assert_eq!(ok_json(base, &["charts", "list", "shop"]), json!(["app", "test"]));
    assert_eq!(rows(&ok(base, &["charts", "list", "shop"])), [vec!["CHART"], vec!["app"], vec!["test"]]);

    // JSON: the server's metadata objects, as it orders them (version precedence).
    let listed = ok_json(base, &["versions", "shop", "app"]);
    assert_eq!(listed, json(server.get("/spaces/shop/charts/app/metadata?limit=100"), 200)["items"]);
    let listed = listed.as_array().unwrap();
    let numbers: Vec<&str> = listed.iter().map(|m| m["version"].as_str().unwrap()).collect();
    assert_eq!(numbers, ["1.0.0", "1.2.0", "1.10.0", "2.0.0-rc.1"]);
    for metadata in listed {
        let version = metadata["version"].as_str().unwrap();
        let app_version = versions.iter().find(|(v, _)| *v == version).unwrap().1;
        assert_eq!(
            *metadata,
            json!({"apiVersion": "v2", "name": "app", "version": version, "appVersion": app_version,
                   "description": format!("app at {version}")})
        );
    }

    // Table: newest first, with the app version and description.
    let table = ok(base, &["versions", "shop", "app"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0], "VERSION     APP VERSION  DESCRIPTION");
    assert_eq!(
        rows(&table)[1..],
        [
            vec!["2.0.0-rc.1", "12.0-rc", "app", "at", "2.0.0-rc.1"],
            vec!["1.10.0", "11.0", "app", "at", "1.10.0"],
            vec!["1.2.0", "10.2", "app", "at", "1.2.0"],
            vec!["1.0.0", "10.0", "app", "at", "1.0.0"]
        ]
    );
    // The columns line up under their headers.
    let app_column = lines[0].find("APP VERSION").unwrap();
    let description_column = lines[0].find("DESCRIPTION").unwrap();
    for line in &lines[1..] {
        assert_eq!(line[app_column..].split_whitespace().next(), line.split_whitespace().nth(1), "{table}");
        assert!(line[description_column..].starts_with("app at "), "{table}");
    }

    // A pushed duplicate is refused with the server's message.
    let duplicate = write(&dir.path, "dup.tgz", chart("app", "1.0.0", "10.0"));
    let conflict = server_message(server.upload("shop", &std::fs::read(&duplicate).unwrap()), 409);
    let stderr = fails(base, &["push", "shop", text(&duplicate)]);
    assert!(stderr.contains(&conflict) && stderr.contains("HTTP 409"), "{stderr}");
}

#[test]
fn pull_writes_the_exact_archive_and_defaults_to_the_latest_stable_version() {
    let server = Server::start();
    let base = server.base.as_str();
    let archives: Vec<(&str, Vec<u8>)> =
        ["1.0.0", "1.2.0", "1.10.0", "2.0.0-rc.1"].iter().map(|v| (*v, chart("web", v, "1"))).collect();
    for (_, archive) in &archives {
        json(server.upload("pulls", archive), 201);
    }
    let archive_of = |version: &str| archives.iter().find(|(v, _)| *v == version).unwrap().1.clone();

    let dir = TempDir::new("cli-pull");
    let pulled = ok_json(base, &["pull", "pulls", "web", "1.2.0", "-d", text(&dir.path)]);
    let path = dir.path.join("web-1.2.0.tgz");
    assert_eq!(pulled, json!({"chart": "web", "version": "1.2.0", "path": text(&path)}));
    assert_eq!(std::fs::read(&path).unwrap(), archive_of("1.2.0"));

    // No version: the highest stable one, not the pre-release.
    let latest = ok_json(base, &["pull", "pulls", "web", "--destination", text(&dir.path)]);
    let path = dir.path.join("web-1.10.0.tgz");
    assert_eq!(latest, json!({"chart": "web", "version": "1.10.0", "path": text(&path)}));
    assert_eq!(sha256(&std::fs::read(&path).unwrap()), sha256(&archive_of("1.10.0")));

    // A pre-release by name; table output says where it went.
    let table = ok(base, &["pull", "pulls", "web", "2.0.0-rc.1", "-d", text(&dir.path)]);
    let path = dir.path.join("web-2.0.0-rc.1.tgz");
    assert_eq!(table.trim_end(), format!("pulled web 2.0.0-rc.1 to {}", path.display()));
    assert_eq!(std::fs::read(&path).unwrap(), archive_of("2.0.0-rc.1"));

    // The default destination is the working directory; nothing partial is left behind.
    let cwd = TempDir::new("cli-pull-cwd");
    let output = command(base, &["pull", "pulls", "web", "1.0.0"]).current_dir(&cwd.path).output().unwrap();
    assert!(output.status.success(), "{}", describe(&["pull"], &output));
    assert_eq!(std::fs::read(cwd.path.join("web-1.0.0.tgz")).unwrap(), archive_of("1.0.0"));
    let mut names: Vec<String> = std::fs::read_dir(&dir.path)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .chain(std::fs::read_dir(&cwd.path).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()))
        .collect();
    names.sort();
    assert_eq!(names, ["web-1.0.0.tgz", "web-1.10.0.tgz", "web-1.2.0.tgz", "web-2.0.0-rc.1.tgz"]);
}

#[test]
fn metadata_shows_and_replaces_chart_yaml_fields() {
    let server = Server::start();
    let base = server.base.as_str();
    json(server.upload("meta", &chart("app", "1.0.0", "3.1")), 201);
    let original = json!({"apiVersion": "v2", "name": "app", "version": "1.0.0", "appVersion": "3.1",
                          "description": "app at 1.0.0"});

    assert_eq!(ok_json(base, &["metadata", "meta", "app", "1.0.0"]), original);
    assert_eq!(json(server.get("/spaces/meta/charts/app/versions/1.0.0/manifests/metadata"), 200), original);
    // Table output is the YAML of the same document.
    let yaml = ok(base, &["metadata", "meta", "app", "1.0.0"]);
    assert_eq!(chartyard_core::yaml::from_yaml::<Value>(yaml.as_bytes(), "stdout").unwrap(), original);
    assert!(yaml.contains("description: app at 1.0.0"), "{yaml}");

    let dir = TempDir::new("cli-metadata");
    let wanted = json!({"apiVersion": "v2", "name": "app", "version": "1.0.0", "appVersion": "4.0",
                        "description": "rewritten by the CLI", "keywords": ["shop", "web"],
                        "home": "https://example.com/app", "annotations": {"team": "payments"}});
    let file = write(&dir.path, "metadata.json", serde_json::to_vec_pretty(&wanted).unwrap());
    let answered = ok_json(base, &["metadata", "meta", "app", "1.0.0", "--set-file", text(&file)]);
    assert_eq!(answered, wanted);

    // The server answers the new fields, and so does the archive it serves.
    assert_eq!(json(server.get("/spaces/meta/charts/app/versions/1.0.0/manifests/metadata"), 200), wanted);
    assert_eq!(ok_json(base, &["metadata", "meta", "app", "1.0.0"]), wanted);
    let versions = ok_json(base, &["versions", "meta", "app"]);
    assert_eq!(versions, json!([wanted]));
    let index = String::from_utf8(get_bytes(&server.url("/meta/index.yaml")).1).unwrap();
    assert!(index.contains("rewritten by the CLI"), "{index}");

    // Table output of an update prints the YAML answer.
    let again = json!({"apiVersion": "v2", "name": "app", "version": "1.0.0", "description": "second"});
    let file = write(&dir.path, "again.json", again.to_string());
    let yaml = ok(base, &["metadata", "meta", "app", "1.0.0", "--set-file", text(&file)]);
    assert_eq!(chartyard_core::yaml::from_yaml::<Value>(yaml.as_bytes(), "stdout").unwrap(), again);

    // A name that is not the chart's is refused with the server's message.
    let renamed = json!({"apiVersion": "v2", "name": "other", "version": "1.0.0"});
    let refused =
        server_message(server.put_json("/spaces/meta/charts/app/versions/1.0.0/manifests/metadata", &renamed), 400);
    let file = write(&dir.path, "renamed.json", renamed.to_string());
    let stderr = fails(base, &["metadata", "meta", "app", "1.0.0", "--set-file", text(&file)]);
    assert!(stderr.contains(&refused) && stderr.contains("HTTP 400"), "{stderr}");
    assert_eq!(ok_json(base, &["metadata", "meta", "app", "1.0.0"]), again, "a refused update changes nothing");
}

#[test]
fn values_show_and_replace_from_json_and_yaml_files() {
    let server = Server::start();
    let base = server.base.as_str();
    json(server.upload("vals", &chart("app", "1.0.0", "1")), 201);
    let values_path = "/spaces/vals/charts/app/versions/1.0.0/manifests/values";

    assert_eq!(ok_json(base, &["values", "vals", "app", "1.0.0"]), json!({"replicaCount": 1}));
    assert_eq!(ok(base, &["values", "vals", "app", "1.0.0"]).trim_end(), "replicaCount: 1");

    let dir = TempDir::new("cli-values");
    let from_json = json!({"replicaCount": 3, "image": {"repository": "nginx", "tag": "1.27"}, "ports": [80, 443]});
    let file = write(&dir.path, "values.json", serde_json::to_vec(&from_json).unwrap());
    assert_eq!(ok_json(base, &["values", "vals", "app", "1.0.0", "--set-file", text(&file)]), from_json);
    assert_eq!(json(server.get(values_path), 200), from_json);
    assert_eq!(ok_json(base, &["values", "vals", "app", "1.0.0"]), from_json);

    let yaml = "replicaCount: 5\nservice:\n  type: ClusterIP\n  port: 8080\nenabled: true\nname: \"web\"\n";
    let from_yaml = json!({"replicaCount": 5, "service": {"type": "ClusterIP", "port": 8080}, "enabled": true,
                           "name": "web"});
    let file = write(&dir.path, "values.yaml", yaml);
    assert_eq!(ok_json(base, &["values", "vals", "app", "1.0.0", "--set-file", text(&file)]), from_yaml);
    assert_eq!(json(server.get(values_path), 200), from_yaml);
    // `.yml` is YAML too, and table output prints YAML.
    let file = write(&dir.path, "more.yml", "replicaCount: 7\n");
    let printed = ok(base, &["values", "vals", "app", "1.0.0", "--set-file", text(&file)]);
    assert_eq!(printed.trim_end(), "replicaCount: 7");
    assert_eq!(json(server.get(values_path), 200), json!({"replicaCount": 7}));

    // The new values.yaml is in the archive the server serves.
    let archive = server.download("vals", "app", "1.0.0");
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive.as_slice()));
    let mut found = None;
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_str() == Some("app/values.yaml") {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
            found = Some(text);
        }
    }
    assert_eq!(found.as_deref().map(str::trim_end), Some("replicaCount: 7"));

    // Values must be an object: the server's refusal is shown.
    let refused = server_message(server.put_json(values_path, &json!([1, 2])), 400);
    let file = write(&dir.path, "list.json", "[1, 2]");
    let stderr = fails(base, &["values", "vals", "app", "1.0.0", "--set-file", text(&file)]);
    assert!(stderr.contains(&refused) && stderr.contains("HTTP 400"), "{stderr}");
    assert_eq!(json(server.get(values_path), 200), json!({"replicaCount": 7}));
}

#[test]
fn compose_previews_with_dry_run_and_then_stores_the_chart() {
    let server = Server::start();
    let base = server.base.as_str();
    json(server.upload("stack", &chart("web", "1.0.0", "1.25")), 201);
    json(server.upload("stack", &chart("db", "2.0.0", "16")), 201);
    let dir = TempDir::new("cli-compose");
    let config = json!({
        "save": {"chart": "shop", "version": "3.0.0", "description": "web and db"},
        "configs": {
            "package": {"independent": true, "space": "stack", "chart": "web", "version": "1.0.0"},
            "_config": {"replicaCount": 4, "tier": "frontend"},
            "database": {
                "package": {"independent": true, "space": "stack", "chart": "db", "version": "2.0.0"},
                "_config": {"replicaCount": 2}
            }
        }
    });
    let file = write(&dir.path, "shop.json", serde_json::to_vec_pretty(&config).unwrap());

    let preview = ok_json(base, &["compose", "stack", text(&file), "--dry-run"]);
    let metadata = &preview["metadata"];
    assert_eq!(metadata["name"], "shop");
    assert_eq!(metadata["version"], "3.0.0");
    assert_eq!(metadata["description"], "web and db");
    assert_eq!(metadata["apiVersion"], "v2");
    assert_eq!(metadata["appVersion"], "1.25", "the root's own fields are kept");
    let dependencies = metadata["dependencies"].as_array().unwrap();
    assert_eq!(dependencies.len(), 1, "{metadata}");
    assert_eq!(dependencies[0]["name"], "database");
    assert_eq!(dependencies[0]["version"], "2.0.0");
    assert_eq!(
        preview["values"],
        json!({"replicaCount": 4, "tier": "frontend", "database": {"replicaCount": 2}}),
        "{preview}"
    );
    // Dry run stores nothing.
    assert_eq!(ok_json(base, &["charts", "list", "stack"]), json!(["db", "web"]));
    let missing = server_message(server.get("/spaces/stack/charts/shop/versions"), 404);
    let stderr = fails(base, &["versions", "stack", "shop"]);
    assert!(stderr.contains(&missing), "{stderr}");
    // The preview in table form is YAML.
    let yaml = ok(base, &["compose", "stack", text(&file), "--dry-run"]);
    assert_eq!(chartyard_core::yaml::from_yaml::<Value>(yaml.as_bytes(), "stdout").unwrap(), preview);

    let stored = ok_json(base, &["compose", "stack", text(&file)]);
    assert_eq!(
        stored,
        json!({"space": "stack", "chart": "shop", "version": "3.0.0",
               "link": "/api/v1/spaces/stack/charts/shop/versions/3.0.0"})
    );
    assert_eq!(ok_json(base, &["charts", "list", "stack"]), json!(["db", "shop", "web"]));
    let versions = ok_json(base, &["versions", "stack", "shop"]);
    assert_eq!(versions.as_array().unwrap().len(), 1);
    assert_eq!(versions[0], preview["metadata"], "stored what the preview showed");
    assert_eq!(ok_json(base, &["values", "stack", "shop", "3.0.0"]), preview["values"]);
    let dest = TempDir::new("cli-compose-pull");
    ok(base, &["pull", "stack", "shop", "-d", text(&dest.path)]);
    assert_eq!(std::fs::read(dest.path.join("shop-3.0.0.tgz")).unwrap(), server.download("stack", "shop", "3.0.0"));

    // Composing the same version again is a conflict; a config that is not JSON never
    // reaches the server.
    let stderr = fails(base, &["compose", "stack", text(&file)]);
    assert!(stderr.contains("HTTP 409"), "{stderr}");
    let bad = write(&dir.path, "bad.json", "save:\n  chart: x\n");
    let stderr = fails(base, &["compose", "stack", text(&bad), "--dry-run"]);
    assert!(stderr.contains(&format!("{} is not JSON", bad.display())), "{stderr}");
    // A config naming a missing chart: the server's message.
    let mut missing_part = config.clone();
    missing_part["save"]["version"] = json!("4.0.0");
    missing_part["configs"]["database"]["package"]["chart"] = json!("nosuch");
    let file = write(&dir.path, "missing.json", missing_part.to_string());
    let stderr = fails(base, &["compose", "stack", text(&file), "--dry-run"]);
    assert!(stderr.contains("nosuch") && stderr.contains("HTTP 404"), "{stderr}");
}

#[test]
fn delete_removes_a_version_then_the_whole_chart() {
    let server = Server::start();
    let base = server.base.as_str();
    for version in ["1.0.0", "1.1.0", "2.0.0"] {
        json(server.upload("del", &chart("app", version, "1")), 201);
    }
    json(server.upload("del", &chart("keep", "0.1.0", "1")), 201);

    let deleted = ok_json(base, &["delete", "del", "app", "1.1.0"]);
    assert_eq!(deleted, json!({"ok": true, "message": "deleted app 1.1.0"}));
    assert_eq!(json(server.get("/spaces/del/charts/app/versions"), 200)["items"], json!(["1.0.0", "2.0.0"]));
    let listed: Vec<Value> = ok_json(base, &["versions", "del", "app"]).as_array().unwrap().clone();
    assert_eq!(listed.iter().map(|m| m["version"].clone()).collect::<Vec<_>>(), [json!("1.0.0"), json!("2.0.0")]);
    assert_eq!(get_bytes(&server.api("/spaces/del/charts/app/versions/1.1.0")).0, 404);

    // Deleting it again: the server's not-found message.
    let missing = server_message(server.delete("/spaces/del/charts/app/versions/1.1.0"), 404);
    let stderr = fails(base, &["delete", "del", "app", "1.1.0"]);
    assert!(stderr.contains(&missing) && stderr.contains("HTTP 404"), "{stderr}");

    let table = ok(base, &["delete", "del", "app"]);
    assert_eq!(table.trim_end(), "deleted app (all versions)");
    assert_eq!(ok_json(base, &["charts", "list", "del"]), json!(["keep"]));
    assert_eq!(get_bytes(&server.api("/spaces/del/charts/app/versions")).0, 404);
    assert_eq!(get_bytes(&server.api("/spaces/del/charts/app/versions/2.0.0")).0, 404);
    let index = String::from_utf8(get_bytes(&server.url("/del/index.yaml")).1).unwrap();
    assert!(!index.contains("app-"), "{index}");
    assert!(index.contains("keep"), "{index}");

    let stderr = fails(base, &["delete", "del", "app"]);
    assert!(stderr.contains("HTTP 404"), "{stderr}");
    let json_deleted = ok_json(base, &["delete", "del", "keep"]);
    assert_eq!(json_deleted, json!({"ok": true, "message": "deleted keep (all versions)"}));
    assert_eq!(ok_json(base, &["charts", "list", "del"]), json!([]));
}

#[test]
fn push_with_provenance_serves_the_provenance_file() {
    let server = Server::start();
    let base = server.base.as_str();
    let dir = TempDir::new("cli-prov");
    let archive = chart("signed", "1.2.3", "1");
    let file = write(&dir.path, "signed-1.2.3.tgz", &archive);
    let prov = provenance("signed", "1.2.3", &archive);
    let prov_file = write(&dir.path, "signed-1.2.3.tgz.prov", &prov);

    let pushed = ok_json(base, &["push", "secure", text(&file), "--prov", text(&prov_file)]);
    assert_eq!(pushed["ok"], true, "{pushed}");
    assert!(pushed["message"].as_str().unwrap().contains("with its provenance"), "{pushed}");

    assert_eq!(get_bytes(&server.url("/secure/charts/signed-1.2.3.tgz.prov")), (200, prov.clone().into_bytes()));
    assert_eq!(get_bytes(&server.url("/secure/charts/signed-1.2.3.tgz")), (200, archive.clone()));
    assert_eq!(ok_json(base, &["versions", "secure", "signed"])[0]["version"], "1.2.3");

    // A provenance file for other bytes is refused and nothing is stored.
    let other = chart("signed", "1.2.4", "1");
    let other_file = write(&dir.path, "signed-1.2.4.tgz", &other);
    let wrong = write(&dir.path, "wrong.prov", provenance("signed", "1.2.4", &archive));
    let stderr = fails(base, &["push", "secure", text(&other_file), "--prov", text(&wrong)]);
    assert!(stderr.contains("provenance is invalid") && stderr.contains("HTTP 400"), "{stderr}");
    assert_eq!(json(server.get("/spaces/secure/charts/signed/versions"), 200)["items"], json!(["1.2.3"]));

    // Table output of a push with provenance.
    let prov_file = write(&dir.path, "right.prov", provenance("signed", "1.2.4", &other));
    let table = ok(base, &["push", "secure", text(&other_file), "--prov", text(&prov_file)]);
    assert_eq!(table.trim_end(), format!("pushed {} with its provenance to secure", other_file.display()));
    assert_eq!(get_bytes(&server.url("/secure/charts/signed-1.2.4.tgz.prov")).1, std::fs::read(&prov_file).unwrap());
}

// ---- errors ----

#[test]
fn errors_exit_non_zero_with_the_servers_message() {
    let server = Server::start();
    let base = server.base.as_str();
    json(server.upload("errs", &chart("app", "1.0.0", "1")), 201);
    let dir = TempDir::new("cli-errors");

    // A missing space.
    let missing_space = server_message(server.get("/spaces/nospace/charts"), 404);
    for args in [&["charts", "list", "nospace"][..], &["versions", "nospace", "app"], &["pull", "nospace", "app"]] {
        let stderr = fails(base, args);
        assert!(stderr.contains(&missing_space) && stderr.contains("HTTP 404"), "{args:?}: {stderr}");
        assert!(stderr.contains("ReasonInternal"), "{args:?}: {stderr}");
    }

    // A missing chart.
    let missing_chart = server_message(server.get("/spaces/errs/charts/nochart/metadata"), 404);
    for args in [&["versions", "errs", "nochart"][..], &["delete", "errs", "nochart"]] {
        let stderr = fails(base, args);
        assert!(stderr.contains(&missing_chart) && stderr.contains("HTTP 404"), "{args:?}: {stderr}");
    }
    let stderr = fails(base, &["pull", "errs", "nochart", "-d", text(&dir.path)]);
    assert!(stderr.contains("HTTP 404"), "{stderr}");

    // A missing version; a failed pull leaves no file.
    let missing_version = server_message(server.get("/spaces/errs/charts/app/versions/9.9.9"), 404);
    for args in [
        &["pull", "errs", "app", "9.9.9", "-d", text(&dir.path)][..],
        &["metadata", "errs", "app", "9.9.9"],
        &["values", "errs", "app", "9.9.9"],
        &["delete", "errs", "app", "9.9.9"],
    ] {
        let stderr = fails(base, args);
        assert!(stderr.contains(&missing_version) && stderr.contains("HTTP 404"), "{args:?}: {stderr}");
    }
    assert_eq!(std::fs::read_dir(&dir.path).unwrap().count(), 0, "a failed pull writes nothing");

    // An invalid chart file.
    let garbage = write(&dir.path, "garbage.tgz", "this is not a gzipped tarball");
    let invalid = server_message(server.upload("errs", b"this is not a gzipped tarball"), 400);
    let stderr = fails(base, &["push", "errs", text(&garbage)]);
    assert!(stderr.contains(&invalid) && stderr.contains("HTTP 400") && stderr.contains("ReasonRequest"), "{stderr}");
    let no_chart_yaml = write(&dir.path, "empty.tgz", ChartBuilder::empty().file("x/README.md", "hi").build());
    let invalid = server_message(server.upload("errs", &std::fs::read(&no_chart_yaml).unwrap()), 400);
    let stderr = fails(base, &["push", "errs", text(&no_chart_yaml)]);
    assert!(stderr.contains(&invalid), "{stderr}");
    assert_eq!(json(server.get("/spaces/errs/charts"), 200)["items"], json!(["app"]));

    // An invalid space name.
    let invalid_name = server_message(server.create_space("bad.name"), 400);
    let stderr = fails(base, &["spaces", "create", "bad.name"]);
    assert!(stderr.contains(&invalid_name) && stderr.contains("ReasonRequest"), "{stderr}");

    // Unreadable files: missing, or a directory.
    let nowhere = dir.path.join("nowhere.tgz");
    for args in [
        &["push", "errs", text(&nowhere)][..],
        &["push", "errs", text(&garbage), "--prov", text(&nowhere)],
        &["metadata", "errs", "app", "1.0.0", "--set-file", text(&nowhere)],
        &["values", "errs", "app", "1.0.0", "--set-file", text(&nowhere)],
        &["compose", "errs", text(&nowhere)],
    ] {
        let stderr = fails(base, args);
        assert!(stderr.contains(&format!("cannot read {}", nowhere.display())), "{args:?}: {stderr}");
    }
    let stderr = fails(base, &["push", "errs", text(&dir.path)]);
    assert!(stderr.contains(&format!("cannot read {}", dir.path.display())), "{stderr}");

    // Bad JSON (and YAML) in --set-file, refused before anything is sent.
    let bad_json = write(&dir.path, "bad.json", "{\"description\": ");
    let stderr = fails(base, &["metadata", "errs", "app", "1.0.0", "--set-file", text(&bad_json)]);
    assert!(stderr.contains(&format!("{} is not JSON", bad_json.display())), "{stderr}");
    let stderr = fails(base, &["values", "errs", "app", "1.0.0", "--set-file", text(&bad_json)]);
    assert!(stderr.contains(&format!("{} is not JSON", bad_json.display())), "{stderr}");
    let yaml_as_json = write(&dir.path, "values.txt", "replicaCount: 2\n");
    let stderr = fails(base, &["values", "errs", "app", "1.0.0", "--set-file", text(&yaml_as_json)]);
    assert!(stderr.contains("is not JSON"), "only .yaml and .yml are read as YAML: {stderr}");
    let bad_yaml = write(&dir.path, "bad.yaml", "replicaCount: [1, 2\n");
    let stderr = fails(base, &["values", "errs", "app", "1.0.0", "--set-file", text(&bad_yaml)]);
    assert!(stderr.contains("bad.yaml"), "{stderr}");
    assert_eq!(
        json(server.get("/spaces/errs/charts/app/versions/1.0.0/manifests/values"), 200),
        json!({"replicaCount": 1}),
        "refused files change nothing"
    );
    assert_eq!(
        json(server.get("/spaces/errs/charts/app/versions/1.0.0/manifests/metadata"), 200)["description"],
        "app at 1.0.0"
    );

    // An unreachable server.
    for args in [&["spaces", "list"][..], &["-o", "json", "charts", "list", "errs"], &["pull", "errs", "app"]] {
        let stderr = fails("http://127.0.0.1:1", args);
        assert!(stderr.contains("request failed") && stderr.contains("127.0.0.1:1"), "{args:?}: {stderr}");
    }
    let stderr = fails("http://127.0.0.1:1", &["push", "errs", text(&garbage)]);
    assert!(stderr.contains("request failed"), "{stderr}");
}

#[test]
fn completions_for_bash_zsh_and_fish() {
    for (shell, marker) in [("bash", "complete -F"), ("zsh", "#compdef chartyard"), ("fish", "complete -c chartyard")] {
        let output = Command::new(binary()).args(["completions", shell]).output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", describe(&["completions", shell], &output));
        let script = String::from_utf8(output.stdout).unwrap();
        assert!(!script.trim().is_empty(), "{shell}");
        assert!(script.contains("chartyard"), "{shell}: {script}");
        assert!(script.contains(marker), "{shell}: no {marker:?}");
        for subcommand in ["spaces", "push", "pull", "mirror", "compose"] {
            assert!(script.contains(subcommand), "{shell} completes {subcommand}");
        }
    }
    let output = Command::new(binary()).args(["completions", "tcsh"]).output().unwrap();
    assert!(!output.status.success(), "an unknown shell is refused");
}

// ---- mirror ----

/// Every version of a space as `chart version → sha256 of its archive`.
fn digests(server: &Server, space: &str) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    for chart in json(server.get(&format!("/spaces/{space}/charts?limit=1000")), 200)["items"].as_array().unwrap() {
        let chart = chart.as_str().unwrap();
        let versions = json(server.get(&format!("/spaces/{space}/charts/{chart}/versions?limit=1000")), 200);
        for version in versions["items"].as_array().unwrap() {
            let version = version.as_str().unwrap();
            found.push((chart.to_string(), version.to_string(), sha256(&server.download(space, chart, version))));
        }
    }
    found
}

#[test]
fn mirror_copies_a_chartyard_space_to_another_server() {
    let source = Server::start();
    let destination = Server::start();
    let signed = chart("signed", "1.0.0", "1");
    let prov = provenance("signed", "1.0.0", &signed);
    let form = reqwest::blocking::multipart::Form::new()
        .part("chart", reqwest::blocking::multipart::Part::bytes(signed.clone()).file_name("signed-1.0.0.tgz"))
        .part("prov", reqwest::blocking::multipart::Part::bytes(prov.clone().into_bytes()).file_name("x.prov"));
    let saved = client().post(source.url("/api/upstream/charts")).multipart(form).send().unwrap();
    assert_eq!(saved.status(), 201);
    for (name, version) in [("app", "1.0.0"), ("app", "1.1.0"), ("app", "2.0.0-rc.1"), ("tool", "0.3.0+build.7")] {
        json(source.upload("upstream", &chart(name, version, "1")), 201);
    }
    json(source.upload("upstream", SEED_TEST1), 201);
    let expected = digests(&source, "upstream");
    assert_eq!(expected.len(), 6);

    let url = source.url("/upstream");
    let report = ok_json(&destination.base, &["mirror", &url, "copy"]);
    assert_eq!(report, json!({"copied": 6, "with_provenance": 1, "skipped": 0}));
    assert_eq!(digests(&destination, "copy"), expected, "every version, byte for byte");
    assert_eq!(get_bytes(&destination.url("/copy/charts/signed-1.0.0.tgz.prov")), (200, prov.clone().into_bytes()));
    assert_eq!(get_bytes(&destination.url("/copy/charts/app-1.0.0.tgz.prov")).0, 404, "no provenance invented");
    // Metadata travels with the archive.
    assert_eq!(
        json(destination.get("/spaces/copy/charts/app/metadata?limit=100"), 200),
        json(source.get("/spaces/upstream/charts/app/metadata?limit=100"), 200)
    );

    // Again: nothing is missing, nothing is copied.
    let report = ok_json(&destination.base, &["mirror", &url, "copy"]);
    assert_eq!(report, json!({"copied": 0, "with_provenance": 0, "skipped": 6}));
    assert_eq!(digests(&destination, "copy"), expected);

    // A partial copy gets only what it lacks (with its provenance).
    assert_eq!(destination.delete("/spaces/copy/charts/signed/versions/1.0.0").status(), 204);
    assert_eq!(destination.delete("/spaces/copy/charts/app/versions/1.1.0").status(), 204);
    let report = ok_json(&destination.base, &["mirror", &format!("{url}/"), "copy"]);
    assert_eq!(report, json!({"copied": 2, "with_provenance": 1, "skipped": 4}));
    assert_eq!(digests(&destination, "copy"), expected);
    assert_eq!(get_bytes(&destination.url("/copy/charts/signed-1.0.0.tgz.prov")), (200, prov.into_bytes()));

    // Table output, into an existing space that already has other charts.
    json(destination.upload("second", &chart("local", "1.0.0", "1")), 201);
    let table = ok(&destination.base, &["mirror", &url, "second"]);
    assert_eq!(table.trim_end(), format!("mirrored {url} into second: 6 copied (1 with provenance), 0 already there"));
    let mut with_local = expected.clone();
    with_local.push(("local".into(), "1.0.0".into(), sha256(&chart("local", "1.0.0", "1"))));
    with_local.sort();
    assert_eq!(digests(&destination, "second"), with_local);

    // A source without an index (a space nobody uploaded to has an empty one): a failure
    // naming the URL, nothing created.
    let stderr = fails(&destination.base, &["mirror", &source.url("/no/repository"), "third"]);
    assert!(stderr.contains(&source.url("/no/repository/index.yaml")) && stderr.contains("404"), "{stderr}");
    assert!(!json(destination.get("/spaces"), 200)["items"].as_array().unwrap().contains(&json!("third")));
    // An unreachable destination.
    let stderr = fails("http://127.0.0.1:1", &["mirror", &url, "copy"]);
    assert!(stderr.contains("request failed"), "{stderr}");
}

/// A static file server over a directory, as GitHub Pages would be: GET answers 200 with
/// the file or 404. Records the paths asked for.
struct StaticServer {
    base: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl StaticServer {
    fn start(root: &Path) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (root, log) = (root.to_path_buf(), requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (root, log) = (root.clone(), log.clone());
                std::thread::spawn(move || {
                    let _ = answer(stream, &root, &log);
                });
            }
        });
        Self { base, requests }
    }

    fn take_requests(&self) -> Vec<String> {
        std::mem::take(&mut *self.requests.lock().unwrap())
    }
}

fn answer(stream: TcpStream, root: &Path, log: &Mutex<Vec<String>>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim_end().is_empty() {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or("/"));
    let path = target.split(['?', '#']).next().unwrap_or("/");
    log.lock().unwrap().push(path.to_string());
    let file = Some(root.join(path.trim_start_matches('/')))
        .filter(|_| method == "GET" && !path.split('/').any(|segment| segment == ".."))
        .filter(|file| file.is_file())
        .and_then(|file| std::fs::read(file).ok());
    let mut stream = stream;
    match file {
        Some(body) => {
            write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())?;
            stream.write_all(&body)?;
        }
        None => stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?,
    }
    stream.flush()
}

#[test]
fn mirror_copies_a_static_repository_indexed_by_helm() {
    let Some(helm) = helm(3) else {
        println!("helm v3 is not installed and CI is unset: skipping the helm-indexed static repository");
        return;
    };
    let repo = TempDir::new("cli-static-repo");
    let site = StaticServer::start(&repo.path);
    let mut archives = Vec::new();
    for (name, version) in [("alpha", "1.0.0"), ("alpha", "1.1.0"), ("beta", "0.1.0"), ("beta", "0.2.0-rc.1")] {
        let archive = chart(name, version, "1");
        write(&repo.path, &format!("{name}-{version}.tgz"), &archive);
        archives.push((name, version, archive));
    }
    let (_, _, signed) = &archives[0];
    let prov = provenance("alpha", "1.0.0", signed);
    write(&repo.path, "alpha-1.0.0.tgz.prov", &prov);

    let home = TempDir::new("cli-helm-home");
    let output = Command::new(&helm)
        .args(["repo", "index"])
        .arg(&repo.path)
        .arg("--url")
        .arg(format!("{}/", site.base))
        .env("HELM_CONFIG_HOME", home.path.join("config"))
        .env("HELM_CACHE_HOME", home.path.join("cache"))
        .env("HELM_DATA_HOME", home.path.join("data"))
        .env("HOME", &home.path)
        .output()
        .unwrap();
    assert!(output.status.success(), "helm repo index: {}", String::from_utf8_lossy(&output.stderr));
    let index = std::fs::read_to_string(repo.path.join("index.yaml")).unwrap();
    assert!(index.contains(&format!("{}/alpha-1.0.0.tgz", site.base)), "absolute urls: {index}");

    let destination = Server::start();
    let report = ok_json(&destination.base, &["mirror", &site.base, "pages"]);
    assert_eq!(report, json!({"copied": 4, "with_provenance": 1, "skipped": 0}));
    for (name, version, archive) in &archives {
        assert_eq!(sha256(&destination.download("pages", name, version)), sha256(archive), "{name} {version}");
    }
    assert_eq!(get_bytes(&destination.url("/pages/charts/alpha-1.0.0.tgz.prov")), (200, prov.into_bytes()));
    assert_eq!(get_bytes(&destination.url("/pages/charts/alpha-1.1.0.tgz.prov")).0, 404);
    let fetched = site.take_requests();
    for (name, version, _) in &archives {
        assert!(fetched.contains(&format!("/{name}-{version}.tgz")), "{fetched:?}");
    }

    // Run again: only the index is fetched.
    let report = ok_json(&destination.base, &["mirror", &site.base, "pages"]);
    assert_eq!(report, json!({"copied": 0, "with_provenance": 0, "skipped": 4}));
    assert_eq!(site.take_requests(), ["/index.yaml"]);
}

/// An index.yaml written by hand: one version per chart, `(name, version, archive, url)`.
fn index_yaml(entries: &[(&str, &str, &[u8], &str)]) -> String {
    let mut index = String::from("apiVersion: v1\nentries:\n");
    for (name, version, archive, url) in entries {
        index.push_str(&format!(
            "  {name}:\n  - apiVersion: v2\n    name: {name}\n    version: {version}\n    digest: {}\n    \
             urls:\n    - {url}\n",
            sha256(archive)
        ));
    }
    index.push_str("generated: \"2024-01-01T00:00:00Z\"\n");
    index
}

#[test]
fn mirror_resolves_relative_urls_against_the_source_url() {
    let root = TempDir::new("cli-relative-repo");
    std::fs::create_dir_all(root.path.join("repo/charts")).unwrap();
    let x = chart("x", "1.0.0", "1");
    let y = chart("y", "2.0.0", "1");
    let z = chart("z", "0.0.1", "1");
    write(&root.path.join("repo/charts"), "x-1.0.0.tgz", &x);
    write(&root.path.join("repo/charts"), "y-2.0.0.tgz", &y);
    write(&root.path.join("repo"), "z-0.0.1.tgz", &z);
    let index = index_yaml(&[
        ("x", "1.0.0", &x, "charts/x-1.0.0.tgz"),
        ("y", "2.0.0", &y, "./charts/y-2.0.0.tgz"),
        ("z", "0.0.1", &z, "z-0.0.1.tgz"),
    ]);
    write(&root.path.join("repo"), "index.yaml", index);
    let site = StaticServer::start(&root.path);

    let destination = Server::start();
    let source = format!("{}/repo", site.base);
    let report = ok_json(&destination.base, &["mirror", &source, "relative"]);
    assert_eq!(report, json!({"copied": 3, "with_provenance": 0, "skipped": 0}));
    assert_eq!(destination.download("relative", "x", "1.0.0"), x);
    assert_eq!(destination.download("relative", "y", "2.0.0"), y);
    assert_eq!(destination.download("relative", "z", "0.0.1"), z);
    let fetched = site.take_requests();
    for path in ["/repo/index.yaml", "/repo/charts/x-1.0.0.tgz", "/repo/charts/y-2.0.0.tgz", "/repo/z-0.0.1.tgz"] {
        assert!(fetched.contains(&path.to_string()), "{path} in {fetched:?}");
    }

    // A trailing slash on the source changes nothing; a missing archive is an error
    // naming its URL.
    std::fs::remove_file(root.path.join("repo/charts/x-1.0.0.tgz")).unwrap();
    assert_eq!(destination.delete("/spaces/relative/charts/x").status(), 204);
    let stderr = fails(&destination.base, &["mirror", &format!("{source}/"), "relative"]);
    assert!(stderr.contains(&format!("{source}/charts/x-1.0.0.tgz not found")), "{stderr}");
}

#[test]
fn mirror_resolves_root_relative_urls_as_helm_does() {
    // Helm resolves an index's urls against the repository URL as URL references
    // (RFC 3986): `/pool/w-1.0.0.tgz` is at the server's root, not below the repository.
    let root = TempDir::new("cli-root-relative-repo");
    std::fs::create_dir_all(root.path.join("repo")).unwrap();
    std::fs::create_dir_all(root.path.join("pool")).unwrap();
    let w = chart("w", "1.0.0", "1");
    write(&root.path.join("pool"), "w-1.0.0.tgz", &w);
    let index = index_yaml(&[("w", "1.0.0", &w, "/pool/w-1.0.0.tgz")]);
    write(&root.path.join("repo"), "index.yaml", index);
    let site = StaticServer::start(&root.path);

    let destination = Server::start();
    let report = ok_json(&destination.base, &["mirror", &format!("{}/repo", site.base), "rooted"]);
    assert_eq!(report, json!({"copied": 1, "with_provenance": 0, "skipped": 0}));
    assert_eq!(destination.download("rooted", "w", "1.0.0"), w);
    assert!(site.take_requests().contains(&"/pool/w-1.0.0.tgz".to_string()));
}

#[test]
fn search_lists_the_best_matches_first() {
    let server = Server::start();
    for (space, name, version) in
        [("apps", "nginx", "1.0.0"), ("apps", "nginx-ingress", "2.0.0"), ("tools", "nginx", "3.0.0")]
    {
        assert_eq!(server.upload(space, &chart(name, version, "1.25")).status(), 201);
    }
    let table = rows(&ok(&server.base, &["search", "nginx"]));
    let found: Vec<(&str, &str, &str)> =
        table[1..].iter().map(|r| (r[0].as_str(), r[1].as_str(), r[2].as_str())).collect();
    assert_eq!(table[0][..3], ["SPACE", "CHART", "VERSION"]);
    assert_eq!(found, [("apps", "nginx", "1.0.0"), ("tools", "nginx", "3.0.0"), ("apps", "nginx-ingress", "2.0.0")]);
    let json = ok_json(&server.base, &["search", "ingress", "-o", "json"]);
    assert_eq!(json[0]["chart"], "nginx-ingress");
    assert_eq!(json.as_array().unwrap().len(), 1);
}
