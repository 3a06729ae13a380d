//! Access control through the real server: sign-in safety (throttling, reloads, logs) and
//! the startup line of an open server. The per-route matrix lives in the http crate's
//! tests; real clients in `auth_clients`.

use crate::common::{Server, USERS, client, password};

const AUTH: &str = "  admins: [admin]\n  rules:\n    - spaces: [\"team-*\"]\n      users: {alice: write, bob: read}\n  faileddelay: 1ms\n";

#[test]
fn users_of_the_htpasswd_file_sign_in_and_others_do_not() {
    let server = Server::start_with_auth(AUTH, &[]);
    let spaces = server.api("/spaces");
    assert_eq!(client().get(&spaces).send().unwrap().status(), 200, "anonymous callers list what they may read");
    for (user, password) in USERS {
        let status = client().get(&spaces).basic_auth(user, Some(password)).send().unwrap().status();
        assert_eq!(status, 200, "{user}");
    }
    let wrong = client().get(&spaces).basic_auth("alice", Some("nope")).send().unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic "));
    let created = client().post(server.api("/spaces?space=team-a")).basic_auth("admin", Some(password("admin"))).send();
    assert_eq!(created.unwrap().status(), 201);
    let by_alice =
        client().post(server.api("/spaces?space=team-b")).basic_auth("alice", Some(password("alice"))).send();
    assert_eq!(by_alice.unwrap().status(), 403, "write does not create spaces");
}

#[test]
fn a_client_with_too_many_failed_logins_is_refused_for_a_while_and_others_are_not() {
    let auth = "  anonymous:\n    - spaces: [\"public-*\"]\n      role: read\n  admins: [admin]\n  faileddelay: 1ms\n  maxfailures: 3\n";
    let server = Server::start_with_auth(auth, &[]);
    let spaces = server.api("/spaces");
    for _ in 0..3 {
        let status = client().get(&spaces).basic_auth("alice", Some("guess")).send().unwrap().status();
        assert_eq!(status, 401);
    }
    // Even right credentials are not checked now: guessing on costs nothing but time.
    let refused = client().get(&spaces).basic_auth("alice", Some(password("alice"))).send().unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "60");
    let token = client().get(server.url("/_/token")).basic_auth("alice", Some(password("alice"))).send().unwrap();
    assert_eq!(token.status(), 429, "the token endpoint counts the same failures");
    // Callers without credentials are not throttled.
    assert_eq!(client().get(&spaces).send().unwrap().status(), 200);
}

#[test]
fn a_failed_login_is_answered_late_and_a_good_one_is_not() {
    let auth = "  admins: [admin]\n  faileddelay: 600ms\n  maxfailures: 100\n";
    let server = Server::start_with_auth(auth, &[]);
    let spaces = server.api("/spaces");
    let started = std::time::Instant::now();
    assert_eq!(client().get(&spaces).basic_auth("admin", Some("wrong")).send().unwrap().status(), 401);
    // The delay is a floor the server applies, not a measurement of speed.
    assert!(started.elapsed() >= std::time::Duration::from_millis(600), "answered after {:?}", started.elapsed());
}

#[test]
fn the_htpasswd_file_is_read_again_when_it_changes() {
    let server = Server::start_with_auth(AUTH, &[]);
    let spaces = server.api("/spaces");
    let htpasswd = server.config.as_ref().unwrap().path.join("htpasswd");
    let sign_in =
        |user: &str, password: &str| client().get(&spaces).basic_auth(user, Some(password)).send().unwrap().status();
    assert_eq!(sign_in("alice", password("alice")), 200);
    let session = crate::common::ui_session(&server.base, "alice", password("alice"));
    let tokens_page = || client().get(server.url("/_/ui/-/tokens")).header("cookie", &session).send().unwrap().status();
    assert_eq!(tokens_page(), 200);
    // Alice's line goes, Dave's comes.
    let dave = chartyard_testkit::htpasswd_line(std::path::Path::new(crate::common::binary()), "dave", "dave-pw");
    let kept: String = std::fs::read_to_string(&htpasswd)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("alice:"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&htpasswd, format!("{kept}{dave}")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while sign_in("dave", "dave-pw") != 200 {
        assert!(std::time::Instant::now() < deadline, "the new user never signed in");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(sign_in("alice", password("alice")), 401, "a removed user's remembered sign-in is forgotten");
    assert_eq!(tokens_page(), 401, "a removed user's web UI session ends");
}

#[test]
fn logs_carry_no_credentials_and_one_audit_line_per_write() {
    let server = Server::start_with_auth(AUTH, &[]);
    let admin = ("admin", password("admin"));
    assert_eq!(
        client().post(server.api("/spaces?space=team-a")).basic_auth(admin.0, Some(admin.1)).send().unwrap().status(),
        201
    );
    let created: serde_json::Value = client()
        .post(server.url("/_/tokens"))
        .basic_auth("alice", Some(password("alice")))
        .body(r#"{"description":"ci"}"#)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let token = created["token"].as_str().unwrap().to_string();
    let archive = crate::common::ChartBuilder::new("audited", "1.0.0").build();
    let upload = client().post(server.url("/api/team-a/charts")).bearer_auth(&token).body(archive).send().unwrap();
    assert_eq!(upload.status(), 201);
    client().get(server.url("/team-a/index.yaml")).basic_auth("x", Some(&token)).send().unwrap();
    client().get(server.api("/spaces")).basic_auth("bob", Some("bob-guess")).send().unwrap();
    let secret = token.rsplit('_').next().unwrap().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let lines = loop {
        let lines = server.logs.lines();
        if lines.iter().any(|l| l.contains("chartyard::audit") && l.contains("path=\"/api/team-a/charts\"")) {
            break lines;
        }
        assert!(std::time::Instant::now() < deadline, "no audit line for the upload:\n{}", lines.join("\n"));
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    for line in &lines {
        for (_, password) in USERS {
            assert!(!line.contains(password), "a password in the log: {line}");
        }
        assert!(!line.contains(&secret) && !line.contains("bob-guess"), "a credential in the log: {line}");
    }
    let audit: Vec<&String> = lines.iter().filter(|l| l.contains("chartyard::audit")).collect();
    assert_eq!(audit.len(), 3, "one line per write (the space, the token, the upload): {audit:#?}");
    let upload_line = audit.iter().find(|l| l.contains("path=\"/api/team-a/charts\"")).unwrap();
    for part in ["user=\"alice\"", "via=\"token:", "client=127.0.0.1", "status=201"] {
        assert!(upload_line.contains(part), "{part} missing from {upload_line}");
    }
}

#[test]
fn an_open_server_says_so_once_at_startup() {
    let server = Server::start();
    let lines = server.logs.lines();
    let open: Vec<&String> = lines.iter().filter(|l| l.contains("access control is off")).collect();
    assert_eq!(open.len(), 1, "{lines:#?}");
    let secured = Server::start_with_auth(AUTH, &[]);
    assert!(!secured.logs.lines().iter().any(|l| l.contains("access control is off")));
}

#[test]
fn a_token_revokes_only_itself() {
    let server = Server::start_with_auth(AUTH, &[]);
    let create = |body: &str| -> serde_json::Value {
        let response = client()
            .post(server.url("/_/tokens"))
            .basic_auth("alice", Some(password("alice")))
            .body(body.to_string())
            .send()
            .unwrap();
        assert_eq!(response.status(), 201);
        response.json().unwrap()
    };
    let (reader, writer) = (create(r#"{"role":"read"}"#), create(r#"{"role":"write"}"#));
    let revoke = |token: &serde_json::Value, id: &serde_json::Value| {
        let url = server.url(&format!("/_/tokens/{}", id.as_str().unwrap()));
        client().delete(url).bearer_auth(token["token"].as_str().unwrap()).send().unwrap().status()
    };
    assert_eq!(revoke(&reader, &writer["id"]), 403, "a read token must not end its owner's write token");
    assert_eq!(revoke(&reader, &reader["id"]), 204);
    assert_eq!(revoke(&reader, &reader["id"]), 401, "the read token is gone");
    let by_password = client()
        .delete(server.url(&format!("/_/tokens/{}", writer["id"].as_str().unwrap())))
        .basic_auth("alice", Some(password("alice")))
        .send()
        .unwrap();
    assert_eq!(by_password.status(), 204);
}

#[test]
fn behind_a_trusted_proxy_failed_logins_count_per_forwarded_client() {
    let auth = "  admins: [admin]\n  faileddelay: 1ms\n  maxfailures: 2\n  trustedproxies: [127.0.0.1]\n";
    let server = Server::start_with_auth(auth, &[]);
    let spaces = server.api("/spaces");
    let sign_in = |client_address: &str, password: &str| {
        crate::common::client()
            .get(&spaces)
            .header("x-forwarded-for", client_address)
            .basic_auth("admin", Some(password))
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(sign_in("10.1.1.1", "guess"), 401);
    assert_eq!(sign_in("10.1.1.1", "guess"), 401);
    assert_eq!(sign_in("10.1.1.1", password("admin")), 429);
    assert_eq!(sign_in("10.1.1.2", password("admin")), 200, "another client behind the same proxy");
    // What a client prepends is not believed: the proxy appended the real address last.
    assert_eq!(sign_in("10.1.1.2, 10.1.1.1", password("admin")), 429);

    let direct = Server::start_with_auth("  admins: [admin]\n  faileddelay: 1ms\n  maxfailures: 2\n", &[]);
    let spaces = direct.api("/spaces");
    for address in ["10.2.0.1", "10.2.0.2"] {
        let status = client()
            .get(&spaces)
            .header("x-forwarded-for", address)
            .basic_auth("admin", Some("guess"))
            .send()
            .unwrap()
            .status();
        assert_eq!(status, 401);
    }
    let status =
        client().get(&spaces).header("x-forwarded-for", "10.2.0.3").basic_auth("admin", Some(password("admin"))).send();
    assert_eq!(status.unwrap().status(), 429, "without trusted proxies the header is ignored");
}

#[test]
fn search_answers_only_from_spaces_the_caller_may_read() {
    let auth = "  admins: [admin]\n  anonymous:\n    - spaces: [\"public-*\"]\n      role: read\n  rules:\n    - spaces: [\"team-*\"]\n      users: {alice: write}\n  faileddelay: 1ms\n";
    let server = Server::start_with_auth(auth, &[]);
    for space in ["team-a", "public-x"] {
        let archive = crate::common::ChartBuilder::new("findme", "1.0.0").build();
        let upload = client()
            .post(server.url(&format!("/api/{space}/charts")))
            .basic_auth("admin", Some(password("admin")))
            .body(archive)
            .send();
        assert_eq!(upload.unwrap().status(), 201);
    }
    let spaces_found = |who: Option<&str>| -> Vec<String> {
        let mut request = client().get(server.api("/search?q=findme"));
        if let Some(user) = who {
            request = request.basic_auth(user, Some(password(user)));
        }
        let body: serde_json::Value = request.send().unwrap().json().unwrap();
        body["items"].as_array().unwrap().iter().map(|i| i["space"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(spaces_found(Some("alice")), ["public-x", "team-a"]);
    assert_eq!(spaces_found(Some("carol")), ["public-x"]);
    assert_eq!(spaces_found(None), ["public-x"]);
    let refused = client().get(server.api("/search?q=findme")).basic_auth("alice", Some("wrong")).send().unwrap();
    assert_eq!(refused.status(), 401);
}
