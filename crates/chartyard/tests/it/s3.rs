//! The `s3` storage driver against a real S3-compatible server: moto's `moto_server`
//! from `.tools/venv` (scripts/install-test-tools.sh). Every test runs the chartyard
//! binary against a bucket of its own moto process; where moto is not installed the
//! tests skip, except under CI, where that is a failure.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::Barrier;

use crate::common::{ChartBuilder, TempDir, client, error, helm, json, noise, sha256};
use crate::support_s3::{
    Moto, OCI_MANIFEST, S3Server, chartyard, push_blob, push_blob_in_chunks, run_to_exit, sorted_strings, write_config,
};
use serde_json::{Value, json};
// ---- tests ----

/// Every protocol over one bucket: the seed API, the Helm repository with real helm,
/// OCI blobs and manifests, deletes, gc, and a restart that finds everything again.
#[test]
fn every_api_works_on_s3_and_data_survives_a_restart() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("charts");
    let dir = TempDir::new("s3-config");
    let config = write_config(&dir.path, &moto.endpoint, "charts", "registry/v1");
    let mut server = S3Server::start(&["--config", &config]);

    // /api/v1: upload, a second upload of one version, listings, byte-exact download
    let v1 = ChartBuilder::new("demo", "1.0.0").build();
    let v2 = ChartBuilder::new("demo", "2.0.0").with("demo/values.yaml", "replicaCount: 2\n").build();
    json(server.upload("team", &v1), 201);
    json(server.upload("team", &v2), 201);
    error(server.upload("team", &v1), 409);
    let charts = json(server.get("/api/v1/spaces/team/charts"), 200);
    assert_eq!(charts, json!({"metadata": {"total": 1, "itemsLength": 1}, "items": ["demo"]}));
    let versions = json(server.get("/api/v1/spaces/team/charts/demo/versions"), 200);
    assert_eq!(sorted_strings(&versions["items"]), ["1.0.0", "2.0.0"]);
    let response = server.download("team", "demo", "1.0.0");
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().unwrap().as_ref(), v1.as_slice());

    // the space as a Helm repository
    let index: Value = chartyard_core::yaml::from_yaml(&server.bytes("/team/index.yaml"), "index").unwrap();
    let entries = index["entries"]["demo"].as_array().unwrap();
    let mut digests: Vec<String> = entries.iter().map(|e| e["digest"].as_str().unwrap().to_string()).collect();
    let mut expected = vec![sha256(&v1), sha256(&v2)];
    digests.sort();
    expected.sort();
    assert_eq!(digests, expected);
    if let Some(helm) = helm(3) {
        let home = TempDir::new("s3-helm");
        let run = |args: &[&str]| {
            let output = Command::new(&helm)
                .args(args)
                .env("HELM_CONFIG_HOME", home.path.join("config"))
                .env("HELM_CACHE_HOME", home.path.join("cache"))
                .env("HELM_DATA_HOME", home.path.join("data"))
                .env("HOME", &home.path)
                .output()
                .unwrap();
            assert!(output.status.success(), "helm {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        };
        let out = home.path.join("pulled");
        std::fs::create_dir_all(&out).unwrap();
        run(&["repo", "add", "team", &server.url("/team")]);
        run(&["pull", "team/demo", "--version", "1.0.0", "-d", out.to_str().unwrap()]);
        assert_eq!(std::fs::read(out.join("demo-1.0.0.tgz")).unwrap(), v1);
        run(&["pull", "team/demo", "-d", out.to_str().unwrap()]);
        assert_eq!(std::fs::read(out.join("demo-2.0.0.tgz")).unwrap(), v2);
    }

    // OCI: a layer larger than one multipart part, pushed in chunks; a config in one
    // request; a manifest under a tag; all read back byte-exact.
    let repo = "/v2/team/artifact";
    let layer = noise(11 * 1024 * 1024, 1);
    let layer_digest = push_blob_in_chunks(&server, repo, &layer, 6 * 1024 * 1024);
    let config_blob = br#"{"kind":"example"}"#;
    let config_digest = push_blob(&server, repo, config_blob);
    let manifest = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.example.config.v1+json",
            "digest": config_digest,
            "size": config_blob.len(),
        },
        "layers": [{"mediaType": "application/vnd.example.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
    }))
    .unwrap();
    let response = client()
        .put(server.url(&format!("{repo}/manifests/v1")))
        .header("content-type", OCI_MANIFEST)
        .body(manifest.clone())
        .send()
        .unwrap();
    assert_eq!(response.status(), 201, "PUT manifest: {}", response.text().unwrap());
    assert_eq!(server.bytes(&format!("{repo}/manifests/v1")), manifest);
    assert!(server.bytes(&format!("{repo}/blobs/{layer_digest}")) == layer, "layer differs");
    assert_eq!(server.bytes(&format!("{repo}/blobs/{config_digest}")), config_blob);
    // S3 deletes absent keys without complaint; the registry still answers 404.
    let response = client().delete(server.url(&format!("{repo}/manifests/no-such-tag"))).send().unwrap();
    assert_eq!(response.status(), 404);

    // deletes, then garbage collection through the same configuration
    assert_eq!(
        client().delete(server.url("/api/v1/spaces/team/charts/demo/versions/1.0.0")).send().unwrap().status(),
        204
    );
    assert_eq!(
        client().delete(server.url("/api/v1/spaces/team/charts/demo/versions/1.0.0")).send().unwrap().status(),
        404
    );
    assert_eq!(server.download("team", "demo", "1.0.0").status(), 404);
    let output = run_to_exit(chartyard(&["gc", "--config", &config, "--grace-seconds", "0"]));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "gc: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.starts_with("referenced blobs: "), "{stdout}");

    // Everything sits under the key prefix, and neither the startup probe, the uploads
    // nor their multipart parts left anything behind.
    let keys = moto.keys("charts");
    assert!(keys.iter().all(|k| k.starts_with("registry/v1/")), "{keys:?}");
    assert!(!keys.iter().any(|k| k.contains("_probe") || k.contains("/uploads/")), "{keys:?}");
    let blob_key = |digest: &str| {
        let hex = digest.trim_start_matches("sha256:");
        format!("registry/v1/blobs/sha256/{}/{hex}", &hex[..2])
    };
    assert!(!keys.contains(&blob_key(&sha256(&v1))), "gc removes the deleted version's archive: {keys:?}");
    assert!(keys.contains(&blob_key(&layer_digest)) && keys.contains(&blob_key(&sha256(&v2))), "{keys:?}");
    assert_eq!(moto.open_multipart_uploads("charts"), 0);

    // A new process on the same bucket serves the same data.
    server.restart();
    assert_eq!(server.bytes("/api/v1/spaces/team/charts/demo/versions/2.0.0"), v2);
    assert_eq!(server.download("team", "demo", "1.0.0").status(), 404);
    assert_eq!(server.bytes(&format!("{repo}/manifests/v1")), manifest);
    assert!(server.bytes(&format!("{repo}/blobs/{layer_digest}")) == layer, "layer differs after restart");
    let index: Value = chartyard_core::yaml::from_yaml(&server.bytes("/team/index.yaml"), "index").unwrap();
    assert_eq!(index["entries"]["demo"].as_array().unwrap().len(), 1);
}

/// Two servers on one bucket (configured by flags and the AWS environment) race to
/// create the same versions: create-if-absent in the bucket gives exactly one 201.
#[test]
fn two_servers_on_one_bucket_create_a_version_once() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("shared");
    let args = [
        "--storage-driver",
        "s3",
        "--s3-bucket",
        "shared",
        "--s3-endpoint",
        &moto.endpoint,
        "--s3-region",
        "eu-west-1",
    ];
    let servers = [S3Server::start(&args), S3Server::start(&args)];
    for round in 0..3 {
        let version = format!("1.0.{round}");
        let archives: Vec<Vec<u8>> = (0..2)
            .map(|n| ChartBuilder::new("race", &version).with("race/values.yaml", format!("server: {n}\n")).build())
            .collect();
        let barrier = Barrier::new(2);
        let statuses: Vec<u16> = std::thread::scope(|scope| {
            let uploads: Vec<_> = servers
                .iter()
                .zip(&archives)
                .map(|(server, archive)| {
                    let barrier = &barrier;
                    scope.spawn(move || {
                        barrier.wait();
                        server.upload("team", archive).status().as_u16()
                    })
                })
                .collect();
            uploads.into_iter().map(|upload| upload.join().unwrap()).collect()
        });
        let mut sorted = statuses.clone();
        sorted.sort();
        assert_eq!(sorted, [201, 409], "round {round}: {statuses:?}");
        // Both servers serve the winner's bytes.
        let winner = &archives[statuses.iter().position(|s| *s == 201).unwrap()];
        for server in &servers {
            assert_eq!(&server.bytes(&format!("/api/v1/spaces/team/charts/race/versions/{version}")), winner);
        }
    }
    let versions = json(servers[1].get("/api/v1/spaces/team/charts/race/versions"), 200);
    assert_eq!(sorted_strings(&versions["items"]), ["1.0.0", "1.0.1", "1.0.2"]);
}

/// `chartyard serve` on a bucket, expected to stop by itself (refused at startup).
fn serve_until_exit(bucket: &str, endpoint: &str) -> std::process::Output {
    let args = ["serve", "--listen", "127.0.0.1:0", "--storage-driver", "s3", "--s3-bucket", bucket];
    run_to_exit(chartyard(&[&args[..], &["--s3-endpoint", endpoint]].concat()))
}

/// A bucket that is not there stops the server at startup with one line.
#[test]
fn a_missing_bucket_is_refused_at_startup() {
    let Some(moto) = Moto::start() else { return };
    let output = serve_until_exit("no-such-bucket", &moto.endpoint);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    let line = stderr.lines().last().unwrap_or_default();
    assert!(line.starts_with("chartyard: s3 bucket no-such-bucket: probing conditional writes failed"), "{stderr}");
    assert!(line.contains("NoSuchBucket"), "{stderr}");
}

/// An S3 endpoint that ignores conditional writes (moto behind a proxy that drops
/// `If-None-Match` and `If-Match`) is refused at startup with one line naming what
/// failed, and the probe's object is removed.
#[test]
fn a_store_ignoring_conditional_writes_is_refused_at_startup() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("careless");
    let proxy = drop_conditions_proxy(moto.address().to_string());
    let output = serve_until_exit("careless", &format!("http://{proxy}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("chartyard:")).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].starts_with("chartyard: s3 bucket careless: cannot guarantee conditional writes:"), "{stderr}");
    assert!(lines[0].contains("second create-if-absent") && lines[0].contains("ignores the condition"), "{stderr}");
    assert!(moto.keys("careless").is_empty(), "{:?}", moto.keys("careless"));

    // The same bucket, reached directly, passes.
    let server =
        S3Server::start(&["--storage-driver", "s3", "--s3-bucket", "careless", "--s3-endpoint", &moto.endpoint]);
    json(server.upload("team", &ChartBuilder::new("ok", "1.0.0").build()), 201);
}

/// A plain HTTP proxy to `upstream` that removes `If-Match` and `If-None-Match` from
/// every request; one request per connection. Answers its address.
fn drop_conditions_proxy(upstream: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for connection in listener.incoming().map_while(Result::ok) {
            let upstream = upstream.clone();
            std::thread::spawn(move || {
                let _ = forward_without_conditions(connection, &upstream);
            });
        }
    });
    address
}

fn forward_without_conditions(client: TcpStream, upstream: &str) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = String::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line == "\r\n" {
            break;
        }
        let name = line.split(':').next().unwrap_or_default().trim().to_ascii_lowercase();
        if name == "content-length" {
            length = line.split(':').nth(1).unwrap_or_default().trim().parse().unwrap_or(0);
        }
        if !["if-match", "if-none-match", "connection"].contains(&name.as_str()) {
            head.push_str(&line);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let mut server = TcpStream::connect(upstream)?;
    server.write_all(head.as_bytes())?;
    server.write_all(b"Connection: close\r\n\r\n")?;
    server.write_all(&body)?;
    let mut response = Vec::new();
    server.read_to_end(&mut response)?;
    let mut client = client;
    client.write_all(&response)?;
    client.shutdown(std::net::Shutdown::Both)
}

/// https endpoints are verified (rustls): moto's self-signed certificate is refused at
/// startup, and accepted with `skipverify: true`.
#[test]
fn tls_certificates_are_verified_unless_skipverify() {
    let Some(moto) = Moto::start_with(true) else { return };
    moto.create_bucket("tls");
    let output = serve_until_exit("tls", &moto.endpoint);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let line = stderr.lines().last().unwrap_or_default();
    assert!(line.starts_with("chartyard: s3 bucket tls: probing conditional writes failed"), "{stderr}");
    assert!(line.contains("certificate"), "{stderr}");

    let dir = TempDir::new("s3-tls");
    let config = dir.path.join("config.yaml");
    let yaml = format!(
        "manager:\n  parameters:\n    storagedriver: s3\n    bucket: tls\n    \
         regionendpoint: {}\n    skipverify: true\n",
        moto.address()
    );
    std::fs::write(&config, yaml).unwrap();
    let server = S3Server::start(&["--config", config.to_str().unwrap()]);
    let archive = ChartBuilder::new("secure", "1.0.0").build();
    json(server.upload("team", &archive), 201);
    assert_eq!(server.bytes("/api/v1/spaces/team/charts/secure/versions/1.0.0"), archive);
}

/// `encrypt` and `storageclass` reach the bucket: every object an upload writes is stored
/// with SSE-S3 and the configured class; with `keyid`, SSE-KMS with that key.
#[test]
fn encryption_and_storage_class_apply_to_every_write() {
    let Some(moto) = Moto::start() else { return };
    let dir = TempDir::new("s3-sse");
    let cases = [
        ("sse-s3", "encrypt: true\n    storageclass: standard_ia\n", "AES256", None),
        ("sse-kms", "encrypt: true\n    keyid: chartyard-test-key\n", "aws:kms", Some("chartyard-test-key")),
    ];
    for (bucket, parameters, algorithm, key_id) in cases {
        moto.create_bucket(bucket);
        let config = dir.path.join(format!("{bucket}.yaml"));
        let yaml = format!(
            "manager:\n  parameters:\n    storagedriver: s3\n    bucket: {bucket}\n    \
             regionendpoint: {}\n    {parameters}",
            moto.endpoint
        );
        std::fs::write(&config, yaml).unwrap();
        let server = S3Server::start(&["--config", config.to_str().unwrap()]);
        let archive = ChartBuilder::new("sealed", "1.0.0").build();
        json(server.upload("team", &archive), 201);
        assert_eq!(server.bytes("/api/v1/spaces/team/charts/sealed/versions/1.0.0"), archive);

        let keys = moto.keys(bucket);
        assert!(keys.iter().any(|k| k.ends_with("1.0.0.json")), "{keys:?}");
        let stored = moto.encryption_and_class(bucket);
        assert_eq!(stored.as_object().unwrap().len(), keys.len(), "{stored}");
        for (key, object) in stored.as_object().unwrap() {
            assert_eq!(object["ServerSideEncryption"], algorithm, "{bucket} {key}: {object}");
            if let Some(key_id) = key_id {
                let sent = object["SSEKMSKeyId"].as_str().unwrap_or_default();
                assert!(sent.ends_with(key_id), "{bucket} {key}: {object}");
            } else {
                assert_eq!(object["StorageClass"], "STANDARD_IA", "{bucket} {key}: {object}");
            }
        }
    }
}
