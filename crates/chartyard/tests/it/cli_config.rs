//! Starting the binary: defaults, the seed's config.yaml, overrides and config errors.

use std::process::Command;

use crate::common::{ChartBuilder, SEED_TEST1, Server, TempDir, binary, client, json, record_files, start_process};
use reqwest::blocking::multipart;

/// Runs `chartyard` with `args` in `dir` until it reports its address; returns the child
/// and the address it printed.
fn start(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (std::process::Child, String) {
    let mut command = Command::new(binary());
    command.args(args).current_dir(dir).envs(env.iter().copied());
    start_process(command)
}

fn upload(base: &str, space: &str, archive: &[u8]) -> u16 {
    let form = multipart::Form::new().part("chartfile", multipart::Part::bytes(archive.to_vec()).file_name("c.tgz"));
    client().post(format!("{base}/api/v1/spaces/{space}/charts")).multipart(form).send().unwrap().status().as_u16()
}

#[test]
fn serve_without_arguments_listens_on_8099_and_stores_under_data() {
    let dir = TempDir::new("defaults");
    let (mut child, address) = start(&dir.path, &["serve"], &[]);
    assert_eq!(address, "http://0.0.0.0:8099");
    assert_eq!(upload("http://127.0.0.1:8099", "test", SEED_TEST1), 201);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(Vec::from_iter(record_files(&dir.path.join("data"))), ["test/test/1.0.0"]);
    assert!(dir.path.join("data/spaces/test.json").exists());
}

#[test]
fn seed_config_file_is_honoured_and_overridden_by_env_and_flags() {
    let dir = TempDir::new("config");
    let config = dir.path.join("config.yaml");
    std::fs::write(
        &config,
        "listen: \"127.0.0.1:0\"\nmanager:\n  name: \"simple\"\n  parameters:\n    resourcelocker: memory\n    storagedriver: filesystem\n    rootdirectory: ./from-file\n    locktimeout: 1000\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();

    let (mut child, base) = start(&dir.path, &["serve", "--config", config], &[]);
    assert_eq!(upload(&base, "s", SEED_TEST1), 201);
    child.kill().unwrap();
    assert_eq!(Vec::from_iter(record_files(&dir.path.join("from-file"))), ["s/test/1.0.0"]);

    let (mut child, base) = start(&dir.path, &["serve", "-c", config], &[("CHARTYARD_ROOT_DIRECTORY", "from-env")]);
    assert_eq!(upload(&base, "s", SEED_TEST1), 201);
    child.kill().unwrap();
    assert_eq!(Vec::from_iter(record_files(&dir.path.join("from-env"))), ["s/test/1.0.0"]);

    let (mut child, base) = start(
        &dir.path,
        &["serve", "-c", config, "--root-directory", "from-flag"],
        &[("CHARTYARD_ROOT_DIRECTORY", "from-env")],
    );
    assert_eq!(upload(&base, "s", SEED_TEST1), 201);
    child.kill().unwrap();
    assert_eq!(Vec::from_iter(record_files(&dir.path.join("from-flag"))), ["s/test/1.0.0"]);

    // the in-memory driver keeps nothing on disk
    let (mut child, base) = start(&dir.path, &["serve", "-c", config, "--storage-driver", "inmemory"], &[]);
    assert_eq!(upload(&base, "mem", &ChartBuilder::new("app", "1.0.0").build()), 201);
    let listed = json(client().get(format!("{base}/api/v1/spaces/mem/charts")).send().unwrap(), 200);
    assert_eq!(listed["items"], serde_json::json!(["app"]));
    child.kill().unwrap();
    assert_eq!(Vec::from_iter(record_files(&dir.path.join("from-file"))), ["s/test/1.0.0"]);
}

#[test]
fn config_errors_exit_with_one_line_naming_the_key() {
    let dir = TempDir::new("bad-config");
    let cases = [
        ("manager:\n  parameters:\n    storagedriver: floppy\n", "manager.parameters.storagedriver"),
        ("manager:\n  parameters:\n    storagedriver: filesystem\n", "manager.parameters.rootdirectory"),
        ("manager:\n  parameters:\n    rootdirectory: ./x\n", "manager.parameters.storagedriver"),
        (
            "manager:\n  parameters:\n    storagedriver: inmemory\n    resourcelocker: redis\n",
            "manager.parameters.resourcelocker",
        ),
        (
            "manager:\n  parameters:\n    storagedriver: inmemory\n    locktimeout: -5\n",
            "manager.parameters.locktimeout",
        ),
        ("manager:\n  name: fancy\n", "manager.name"),
        ("lisen: \":1\"\n", "lisen"),
        ("listen: [\n", "config"),
    ];
    for (i, (yaml, key)) in cases.iter().enumerate() {
        let path = dir.path.join(format!("c{i}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        let output = Command::new(binary()).args(["serve", "--config"]).arg(&path).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{yaml}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{yaml}: {stderr}");
        assert!(stderr.contains(key), "{yaml}: expected {key} in {stderr}");
    }
    let missing = Command::new(binary()).args(["serve", "--config", "/nonexistent/config.yaml"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/config.yaml"));
}

/// The filesystem driver has no compare-and-swap, so one root is served by one process: a
/// second server on it stops at once with one line saying why, and the first keeps
/// serving. Once the first is gone (even killed), the root can be served again.
#[test]
fn a_second_server_on_one_filesystem_root_is_refused() {
    let mut first = Server::start();
    json(first.upload("s", &ChartBuilder::new("app", "1.0.0").build()), 201);
    let output = Command::new(binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--root-directory"])
        .arg(&first.data.path)
        .env("CHARTYARD_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("another chartyard server is using"), "{stderr}");
    assert!(first.healthy());
    first.restart(); // kill -9, then a new server on the same root
    assert_eq!(first.download("s", "app", "1.0.0"), ChartBuilder::new("app", "1.0.0").build());
}
