//! Space policies against the real binary: a quota raced by 20 concurrent uploads is never
//! passed, and `chartyard policy get|set` round-trips a policy.

use std::process::Command;
use std::sync::Barrier;

use serde_json::{Value, json};

use crate::common::{ChartBuilder, Server, TempDir, binary, chart_with_noise, json};

fn chart(name: &str, version: &str) -> Vec<u8> {
    ChartBuilder::new(name, version).build()
}

/// The number of versions stored in a space.
fn stored_versions(server: &Server, space: &str) -> u64 {
    let body = json(server.get(&format!("/spaces/{space}/metadata?limit=1000")), 200);
    body["metadata"]["total"].as_u64().unwrap()
}

/// 20 uploads released together into a space 2 versions short of its quota: exactly 2 are
/// stored, the others get 413 naming the limit, and none is a 5xx.
#[test]
fn concurrent_uploads_never_pass_a_quota() {
    let server = Server::start();
    for version in ["1.0.0", "1.0.1", "1.0.2"] {
        assert_eq!(server.upload("q", &chart("web", version)).status(), 201);
    }
    let policy = json!({"quota": {"maxversions": 5}});
    assert_eq!(json(server.put_json("/spaces/q/policy", &policy), 200), policy);

    let barrier = Barrier::new(20);
    let statuses: Vec<(u16, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..20)
            .map(|n| {
                let (server, barrier) = (&server, &barrier);
                scope.spawn(move || {
                    let archive = chart("race", &format!("2.0.{n}"));
                    barrier.wait();
                    let response = server.upload("q", &archive);
                    (response.status().as_u16(), response.text().unwrap_or_default())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let stored = statuses.iter().filter(|(status, _)| *status == 201).count();
    for (status, body) in &statuses {
        assert!(*status == 201 || *status == 413, "{status}: {body}");
        if *status == 413 {
            assert!(body.contains("may hold 5 versions"), "{body}");
        }
    }
    assert_eq!(stored, 2, "{statuses:?}");
    assert_eq!(stored_versions(&server, "q"), 5);

    // The same with a byte quota: room for two more archives of this size, not three
    // (archives of the chart differ by a few bytes of version; half an archive is spare).
    let archive = |version: &str| chart_with_noise("bytes", version, 4096);
    let size = archive("1.0.0").len() as u64;
    let policy = json!({"quota": {"maxbytes": 7 * size + size / 2}});
    assert_eq!(server.delete("/spaces/q").status(), 204);
    for n in 0..5 {
        assert_eq!(server.upload("q", &archive(&format!("1.0.{n}"))).status(), 201);
    }
    assert_eq!(json(server.put_json("/spaces/q/policy", &policy), 200), policy);
    let barrier = Barrier::new(20);
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..20)
            .map(|n| {
                let (server, barrier) = (&server, &barrier);
                scope.spawn(move || {
                    let archive = archive(&format!("2.0.{n}"));
                    barrier.wait();
                    server.upload("q", &archive).status().as_u16()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(statuses.iter().all(|s| *s == 201 || *s == 413), "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 2, "{statuses:?}");
    assert_eq!(stored_versions(&server, "q"), 7);
}

fn chartyard(server: &Server, args: &[&str]) -> std::process::Output {
    Command::new(binary())
        .arg("--server")
        .arg(server.url(""))
        .args(args)
        .env_remove("CHARTYARD_SERVER")
        .env_remove("CHARTYARD_USERNAME")
        .env_remove("CHARTYARD_PASSWORD")
        .env_remove("CHARTYARD_TOKEN")
        .output()
        .expect("run chartyard")
}

fn ok_json(server: &Server, args: &[&str]) -> Value {
    let mut all = vec!["-o", "json"];
    all.extend_from_slice(args);
    let output = chartyard(server, &all);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{args:?}: {stdout} {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {stdout}"))
}

#[test]
fn cli_gets_and_sets_a_policy() {
    let server = Server::start();
    assert_eq!(server.create_space("team").status(), 201);
    assert_eq!(ok_json(&server, &["policy", "get", "team"]), json!({}));

    // Flags change the current policy field by field.
    let set = ok_json(&server, &["policy", "set", "team", "--immutable", "true", "--quota-versions", "10"]);
    assert_eq!(set, json!({"immutable": true, "quota": {"maxversions": 10}}));
    let set = ok_json(
        &server,
        &[
            "policy",
            "set",
            "team",
            "--quota-bytes",
            "1000000",
            "--keep-last",
            "3",
            "--max-age-days",
            "30",
            "--keep-stable",
            "--require-provenance",
        ],
    );
    let expected = json!({"immutable": true, "quota": {"maxversions": 10, "maxbytes": 1_000_000},
        "retention": {"keeplast": 3, "maxagedays": 30, "keepstable": true}, "requireprovenance": true});
    assert_eq!(set, expected);
    assert_eq!(ok_json(&server, &["policy", "get", "team"]), expected);
    assert_eq!(json(server.get("/spaces/team/policy"), 200), expected);

    // A file replaces it whole.
    let dir = TempDir::new("policy");
    let file = dir.path.join("policy.json");
    std::fs::write(&file, br#"{"immutable": false}"#).unwrap();
    let set = ok_json(&server, &["policy", "set", "team", "--file", file.to_str().unwrap()]);
    assert_eq!(set, json!({"immutable": false}));

    // What the server refuses is an error exit with its message.
    std::fs::write(&file, br#"{"quota": {"maxversions": 0}}"#).unwrap();
    let output = chartyard(&server, &["policy", "set", "team", "--file", file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("maxversions should be at least 1"));
    let output = chartyard(&server, &["policy", "get", "nospace"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(ok_json(&server, &["policy", "get", "team"]), json!({"immutable": false}));
}
