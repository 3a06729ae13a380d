//! The binary's API token commands (`token create|list|revoke`) and `login`/`logout`, run
//! as processes against a real server with access control. Every command gets its own
//! config folder (`CHARTYARD_CONFIG_DIR`), so no test reads or writes the real home.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::{RequestBuilder, multipart};
use serde_json::Value;

use crate::cli::describe;
use crate::common::{SEED_TEST1, Server, TempDir, binary, client, password};

const AUTH: &str = "  admins: [admin]\n  rules:\n    - spaces: [\"team-*\"]\n      users: {alice: write, bob: read}\n  faileddelay: 1ms\n  maxfailures: 10000\n";

// ---- running the binary ----

/// `chartyard --server <server> <args>` with `config` as its config folder and no
/// connection settings from the environment.
fn command(server: &str, config: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(binary());
    command
        .arg("--server")
        .arg(server)
        .args(args)
        .env("CHARTYARD_CONFIG_DIR", config)
        .env_remove("CHARTYARD_SERVER")
        .env_remove("CHARTYARD_USERNAME")
        .env_remove("CHARTYARD_PASSWORD")
        .env_remove("CHARTYARD_TOKEN")
        .stdin(Stdio::null());
    command
}

/// Runs a command that must succeed; answers its stdout.
fn ok(mut command: Command, args: &[&str]) -> String {
    let output = command.output().expect("run chartyard");
    assert!(output.status.success(), "{}", describe(args, &output));
    String::from_utf8(output.stdout).expect("stdout is UTF-8")
}

/// Runs a command that must fail with exit status 1 and one `chartyard: ...` line;
/// answers that line.
fn fails(mut command: Command, args: &[&str]) -> String {
    let output = command.output().expect("run chartyard");
    let text = describe(args, &output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(output.stdout.is_empty(), "{text}");
    let stderr = String::from_utf8_lossy(&output.stderr).trim_end().to_string();
    assert!(stderr.starts_with("chartyard: "), "{text}");
    assert_eq!(stderr.lines().count(), 1, "{text}");
    stderr
}

/// `args` signed in as `user` by flags.
fn as_user<'a>(user: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["--username", user, "--password", password(user)];
    all.extend_from_slice(args);
    all
}

/// `token create` as `user` with `extra` options: the token, alone on stdout's last line.
fn create_token(server: &Server, config: &Path, user: &str, extra: &[&str]) -> String {
    let mut args = vec!["token", "create"];
    args.extend_from_slice(extra);
    let args = as_user(user, &args);
    let stdout = ok(command(&server.base, config, &args), &args);
    let token = stdout.lines().last().unwrap_or_default().to_string();
    assert!(token.starts_with("cyt_") && !token.contains(' '), "the last line is the token: {stdout:?}");
    token
}

// ---- the API, to see what the credentials do ----

/// Status and body of `GET /_/whoami`.
fn whoami(request: RequestBuilder) -> (u16, Value) {
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Value::Null))
}

fn whoami_basic(server: &Server, user: &str, password: &str) -> (u16, Value) {
    whoami(client().get(server.url("/_/whoami")).basic_auth(user, Some(password)))
}

fn whoami_bearer(server: &Server, token: &str) -> (u16, Value) {
    whoami(client().get(server.url("/_/whoami")).bearer_auth(token))
}

/// Uploads the seed's test chart to `space` with a bearer token; answers the status.
fn upload(server: &Server, space: &str, token: &str) -> u16 {
    let form =
        multipart::Form::new().part("chartfile", multipart::Part::bytes(SEED_TEST1.to_vec()).file_name("chart.tgz"));
    let request = client().post(server.api(&format!("/spaces/{space}/charts"))).bearer_auth(token).multipart(form);
    request.send().unwrap().status().as_u16()
}

/// Spaces created by the admin.
fn create_spaces(server: &Server, spaces: &[&str]) {
    for space in spaces {
        let request =
            client().post(server.api(&format!("/spaces?space={space}"))).basic_auth("admin", Some("admin-pw"));
        assert_eq!(request.send().unwrap().status(), 201, "create {space}");
    }
}

fn credentials(config: &Path) -> Value {
    let text = std::fs::read_to_string(config.join("credentials.json")).expect("credentials.json");
    serde_json::from_str(&text).unwrap()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

// ---- tokens ----

#[test]
fn tokens_are_created_listed_used_and_revoked() {
    let server = Server::start_with_auth(AUTH, &[]);
    let config = TempDir::new("cli-config");
    let token = create_token(&server, &config.path, "alice", &["--description", "ci of web"]);

    // The printed token signs in as alice, as a Basic password (any user name) and as a
    // bearer token.
    let (status, who) = whoami_basic(&server, "anyone", &token);
    assert_eq!(status, 200, "{who}");
    assert_eq!(who["user"], "alice");
    let id = who["token"].as_str().expect("the token's id").to_string();
    assert!(token.starts_with(&format!("cyt_{id}_")), "{token} has id {id}");
    let (status, who) = whoami_bearer(&server, &token);
    assert_eq!((status, who["user"].as_str()), (200, Some("alice")), "{who}");

    // Listed for its owner, as JSON, YAML and a table; not for bob.
    let args = as_user("alice", &["-o", "json", "token", "list"]);
    let listed: Value = serde_json::from_str(&ok(command(&server.base, &config.path, &args), &args)).unwrap();
    let listed = listed.as_array().expect("a JSON array");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["owner"], "alice");
    assert_eq!(listed[0]["description"], "ci of web");
    assert!(listed[0].get("token").is_none(), "a listing never shows the secret: {listed:?}");
    let args = as_user("alice", &["-o", "yaml", "token", "list"]);
    let yaml = ok(command(&server.base, &config.path, &args), &args);
    let from_yaml: Value = chartyard_core::yaml::from_yaml(yaml.as_bytes(), "stdout").unwrap();
    assert_eq!(from_yaml[0]["id"], id.as_str(), "{yaml}");
    let args = as_user("alice", &["token", "list"]);
    let table = ok(command(&server.base, &config.path, &args), &args);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    for header in ["ID", "OWNER", "SPACES", "ROLE", "CREATED", "EXPIRES", "LAST USED"] {
        assert!(lines[0].contains(header), "{table}");
    }
    assert!(lines[1].starts_with(&id) && lines[1].contains("alice"), "{table}");
    assert!(!table.contains(&token), "{table}");
    let args = as_user("bob", &["-o", "json", "token", "list"]);
    assert_eq!(ok(command(&server.base, &config.path, &args), &args).trim(), "[]");

    // Every user's tokens are for global admins only.
    let args = as_user("admin", &["-o", "json", "token", "list", "--all"]);
    let all: Value = serde_json::from_str(&ok(command(&server.base, &config.path, &args), &args)).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 1, "{all}");
    let args = as_user("alice", &["token", "list", "--all"]);
    let error = fails(command(&server.base, &config.path, &args), &args);
    assert!(error.contains("403") && error.contains("global admins"), "{error}");

    // `-o json` prints the whole object, secret included.
    let args = as_user("alice", &["-o", "json", "token", "create", "--role", "read"]);
    let created: Value = serde_json::from_str(&ok(command(&server.base, &config.path, &args), &args)).unwrap();
    let second = created["token"].as_str().expect("the token").to_string();
    assert_eq!((created["owner"].as_str(), created["role"].as_str()), (Some("alice"), Some("read")), "{created}");
    assert_eq!(whoami_bearer(&server, &second).0, 200);

    // Tokens are not made with tokens.
    let args = ["--token", token.as_str(), "token", "create"];
    let error = fails(command(&server.base, &config.path, &args), &args);
    assert!(error.contains("403") && error.contains("password"), "{error}");

    // Revoked: it stops working at once, the other token does not.
    let args = as_user("alice", &["token", "revoke", &id]);
    let done = ok(command(&server.base, &config.path, &args), &args);
    assert!(done.contains(&id), "{done}");
    assert_eq!(whoami_basic(&server, "anyone", &token).0, 401);
    assert_eq!(whoami_bearer(&server, &token).0, 401);
    assert_eq!(whoami_bearer(&server, &second).0, 200);
    let args = as_user("alice", &["-o", "json", "token", "list"]);
    let listed: Value = serde_json::from_str(&ok(command(&server.base, &config.path, &args), &args)).unwrap();
    let ids: Vec<&str> = listed.as_array().unwrap().iter().filter_map(|t| t["id"].as_str()).collect();
    assert_eq!(ids, [created["id"].as_str().unwrap()]);

    // Revoking it again, or someone else's token: 404.
    let args = as_user("alice", &["token", "revoke", &id]);
    let error = fails(command(&server.base, &config.path, &args), &args);
    assert!(error.contains("404"), "{error}");
    let second_id = created["id"].as_str().unwrap();
    let args = as_user("bob", &["token", "revoke", second_id]);
    let error = fails(command(&server.base, &config.path, &args), &args);
    assert!(error.contains("404"), "{error}");
    assert_eq!(whoami_bearer(&server, &second).0, 200, "bob revoked nothing");
}

#[test]
fn read_tokens_cannot_upload_and_space_patterns_limit_tokens() {
    let server = Server::start_with_auth(AUTH, &[]);
    let config = TempDir::new("cli-config");
    create_spaces(&server, &["team-a", "team-b"]);

    let read = create_token(&server, &config.path, "alice", &["--role", "read"]);
    assert_eq!(upload(&server, "team-a", &read), 403, "a read token does not upload");
    let only_a = create_token(&server, &config.path, "alice", &["--space", "team-a"]);
    assert_eq!(upload(&server, "team-b", &only_a), 403, "team-b is outside the token's spaces");
    assert_eq!(upload(&server, "team-a", &only_a), 201);
    let versions = server.api("/spaces/team-a/charts/test/versions");
    let listed = client().get(&versions).bearer_auth(&read).send().unwrap();
    assert_eq!(listed.status(), 200, "a read token reads");

    // Several patterns: each one's spaces.
    let both = create_token(&server, &config.path, "alice", &["--space", "team-a", "--space", "team-b"]);
    assert_eq!(upload(&server, "team-b", &both), 201);
    let args = as_user("alice", &["-o", "json", "token", "list"]);
    let listed: Value = serde_json::from_str(&ok(command(&server.base, &config.path, &args), &args)).unwrap();
    let spaces: Vec<Value> = listed.as_array().unwrap().iter().map(|t| t["spaces"].clone()).collect();
    assert!(spaces.contains(&serde_json::json!(["team-a", "team-b"])), "{listed}");

    // A token never gives more than its owner has: bob only reads.
    let bobs = create_token(&server, &config.path, "bob", &["--role", "write"]);
    assert_eq!(upload(&server, "team-a", &bobs), 403);

    // Bad options are the server's clear 400, or clap's usage error.
    let args = as_user("alice", &["token", "create", "--expires", "soon"]);
    let error = fails(command(&server.base, &config.path, &args), &args);
    assert!(error.contains("400") && error.contains("soon"), "{error}");
    let args = as_user("alice", &["token", "create", "--role", "owner"]);
    let output = command(&server.base, &config.path, &args).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", describe(&args, &output));
}

#[test]
fn tokens_expire() {
    let server = Server::start_with_auth(AUTH, &[]);
    let config = TempDir::new("cli-config");
    let token = create_token(&server, &config.path, "alice", &["--expires", "1s"]);
    let args = as_user("alice", &["-o", "json", "token", "list"]);
    let listed: Value = serde_json::from_str(&ok(command(&server.base, &config.path, &args), &args)).unwrap();
    assert!(listed[0]["expires"].is_string(), "{listed}");

    let deadline = Instant::now() + Duration::from_secs(30);
    let message = loop {
        let response = client().get(server.url("/_/whoami")).bearer_auth(&token).send().unwrap();
        if response.status() == 401 {
            break response.json::<Value>().unwrap()["message"].as_str().unwrap_or_default().to_string();
        }
        assert_eq!(response.status(), 200);
        assert!(Instant::now() < deadline, "a token made to live 1s still works after 30s");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(message.contains("expired"), "{message}");
}

// ---- login and logout ----

#[test]
fn login_saves_credentials_that_later_commands_use() {
    let server = Server::start_with_auth(AUTH, &[]);
    let config = TempDir::new("cli-config");
    let base = server.base.as_str();

    // Without credentials, creating a space is refused.
    let args = ["spaces", "create", "team-a"];
    let error = fails(command(base, &config.path, &args), &args);
    assert!(error.contains("401") && error.contains("chartyard login"), "says how to sign in: {error}");

    let args = as_user("admin", &["login"]);
    let said = ok(command(base, &config.path, &args), &args);
    assert!(said.contains("logged in") && said.contains("admin"), "{said}");
    let file = config.path.join("credentials.json");
    #[cfg(unix)]
    assert_eq!(mode(&file), 0o600, "only the owner reads saved passwords");
    let saved = credentials(&config.path);
    assert_eq!(saved["servers"][base]["username"], "admin", "{saved}");

    // Later commands need no flags.
    let args = ["-o", "json", "spaces", "create", "team-a"];
    ok(command(base, &config.path, &args), &args);
    let args = ["token", "create"];
    let token = ok(command(base, &config.path, &args), &args).lines().last().unwrap().to_string();
    assert_eq!(whoami_bearer(&server, &token).1["user"], "admin");

    // Flags and environment variables win over saved credentials.
    let args = ["--username", "bob", "--password", "wrong", "spaces", "create", "team-b"];
    let error = fails(command(base, &config.path, &args), &args);
    assert!(error.contains("401"), "{error}");
    let args = ["spaces", "create", "team-b"];
    let mut from_env = command(base, &config.path, &args);
    from_env.env("CHARTYARD_USERNAME", "bob").env("CHARTYARD_PASSWORD", password("bob"));
    let error = fails(from_env, &args);
    assert!(error.contains("403"), "bob may not create spaces: {error}");

    // A login with a token (read from stdin) replaces the entry; commands sign in with it.
    let args = ["login", "--password-stdin"];
    let mut login = command(&format!("{base}/"), &config.path, &args);
    let mut child = login.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), format!("{token}\n").as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", describe(&args, &output));
    let saved = credentials(&config.path);
    assert_eq!(saved["servers"][base], serde_json::json!({"token": token}), "one entry per server URL: {saved}");
    let args = ["-o", "json", "token", "list"];
    let listed: Value = serde_json::from_str(&ok(command(base, &config.path, &args), &args)).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");

    // A user and a password from stdin.
    let args = ["--username", "alice", "login", "--password-stdin"];
    let mut login = command(base, &config.path, &args);
    let mut child = login.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"alice-pw\n").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", describe(&args, &output));
    assert_eq!(credentials(&config.path)["servers"][base]["username"], "alice");
}

#[test]
fn login_follows_the_config_folder_variables() {
    let server = Server::start_with_auth(AUTH, &[]);
    let xdg = TempDir::new("cli-xdg");
    let args = as_user("alice", &["login"]);
    let mut login = command(&server.base, &xdg.path, &args);
    login.env_remove("CHARTYARD_CONFIG_DIR").env("XDG_CONFIG_HOME", &xdg.path);
    ok(login, &args);
    let saved = credentials(&xdg.path.join("chartyard"));
    assert_eq!(saved["servers"][server.base.as_str()]["username"], "alice");

    let home = TempDir::new("cli-home");
    let mut login = command(&server.base, &home.path, &args);
    login.env_remove("CHARTYARD_CONFIG_DIR").env_remove("XDG_CONFIG_HOME").env("HOME", &home.path);
    ok(login, &args);
    let saved = credentials(&home.path.join(".config").join("chartyard"));
    assert_eq!(saved["servers"][server.base.as_str()]["username"], "alice");
}

#[test]
fn login_with_wrong_credentials_fails_and_saves_nothing() {
    let server = Server::start_with_auth(AUTH, &[]);
    let config = TempDir::new("cli-config");
    let base = server.base.as_str();
    let file = config.path.join("credentials.json");

    let args = ["--username", "alice", "--password", "wrong", "login"];
    let error = fails(command(base, &config.path, &args), &args);
    assert!(error.contains("cannot log in") && error.contains("401"), "{error}");
    assert!(!file.exists(), "nothing saved");
    let args = ["--token", "cyt_0123456789abcdef_notatokennotatokennotatokennotatoken", "login"];
    let error = fails(command(base, &config.path, &args), &args);
    assert!(error.contains("401"), "{error}");
    assert!(!file.exists(), "nothing saved");
    let args = ["login"];
    let error = fails(command(base, &config.path, &args), &args);
    assert!(error.contains("--username") && error.contains("--token"), "{error}");
    let args = ["--username", "alice", "login"];
    let error = fails(command(base, &config.path, &args), &args);
    assert!(error.contains("--password"), "{error}");
    assert!(!file.exists(), "nothing saved");

    // A failed login keeps what an earlier one saved.
    let args = as_user("alice", &["login"]);
    ok(command(base, &config.path, &args), &args);
    let before = std::fs::read(&file).unwrap();
    let args = ["--username", "admin", "--password", "wrong", "login"];
    fails(command(base, &config.path, &args), &args);
    assert_eq!(std::fs::read(&file).unwrap(), before);

    // A file that is not credentials is a clear error, not a panic, and left alone.
    std::fs::write(&file, "not json").unwrap();
    let args = ["spaces", "list"];
    let error = fails(command(base, &config.path, &args), &args);
    assert!(error.contains("credentials.json") && error.contains("not a credentials file"), "{error}");
    assert_eq!(std::fs::read(&file).unwrap(), b"not json");
}

#[test]
fn logout_forgets_one_server() {
    let server = Server::start_with_auth(AUTH, &[]);
    let config = TempDir::new("cli-config");
    // One server under two URLs: two entries.
    let other = server.base.replace("127.0.0.1", "localhost");
    for base in [server.base.as_str(), other.as_str()] {
        let args = as_user("alice", &["login"]);
        ok(command(base, &config.path, &args), &args);
    }
    let args = ["-o", "json", "token", "list"];
    ok(command(&server.base, &config.path, &args), &args);

    let args = ["logout"];
    let said = ok(command(&server.base, &config.path, &args), &args);
    assert!(said.contains("logged out"), "{said}");
    let saved = credentials(&config.path);
    let servers: Vec<&String> = saved["servers"].as_object().unwrap().keys().collect();
    assert_eq!(servers, [&other], "{saved}");
    #[cfg(unix)]
    assert_eq!(mode(&config.path.join("credentials.json")), 0o600);
    let args = ["token", "list"];
    let error = fails(command(&server.base, &config.path, &args), &args);
    assert!(error.contains("401"), "signed out: {error}");
    ok(command(&other, &config.path, &args), &args);

    // Logging out again is no error; the last logout leaves no file.
    let args = ["logout"];
    let said = ok(command(&server.base, &config.path, &args), &args);
    assert!(said.contains("not logged in"), "{said}");
    ok(command(&other, &config.path, &args), &args);
    assert!(!config.path.join("credentials.json").exists());
}

/// `chartyard audit SPACE -o json` as `user`, once the log holds `count` entries (they
/// are stored in the background after each answer).
fn audit_entries(server: &Server, config: &Path, user: &str, count: usize) -> Vec<Value> {
    let args = as_user(user, &["-o", "json", "audit", "team-a"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listed: Value = serde_json::from_str(&ok(command(&server.base, config, &args), &args)).unwrap();
        let entries = listed.as_array().unwrap().clone();
        if entries.len() >= count || Instant::now() > deadline {
            return entries;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_audit_command_shows_a_space_log_to_its_admins() {
    let server = Server::start_with_auth(AUTH, &[]);
    let config = TempDir::new("cli-config");
    create_spaces(&server, &["team-a"]);
    let token = create_token(&server, &config.path, "alice", &[]);
    assert_eq!(upload(&server, "team-a", &token), 201);
    let bobs = create_token(&server, &config.path, "bob", &[]);
    assert_eq!(upload(&server, "team-a", &bobs), 403);

    // Newest first: bob's refused upload, alice's upload with her token, the creation.
    let entries = audit_entries(&server, &config.path, "admin", 3);
    let seen: Vec<(&str, u64)> =
        entries.iter().map(|e| (e["user"].as_str().unwrap(), e["status"].as_u64().unwrap())).collect();
    assert_eq!(seen, [("bob", 403), ("alice", 201), ("admin", 201)], "{entries:#?}");
    assert!(entries[0]["via"].as_str().unwrap().starts_with("token:"), "{entries:#?}");
    assert!(entries[1]["via"].as_str().unwrap().starts_with("token:"), "{entries:#?}");
    assert_eq!(entries[2]["via"], "password");
    assert_eq!(entries[1]["route"], "/api/v1/spaces/{space}/charts");
    assert_eq!(entries[1]["client"], "127.0.0.1");

    // The table, and paging.
    let args = as_user("admin", &["audit", "team-a", "--start", "1", "--limit", "1"]);
    let table = ok(command(&server.base, &config.path, &args), &args);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(lines[0].starts_with("TIME") && lines[0].contains("STATUS"), "{table}");
    assert!(lines[1].contains("alice") && lines[1].contains("201"), "{table}");

    // Only the space's admins read it.
    let args = as_user("alice", &["audit", "team-a"]);
    let error = fails(command(&server.base, &config.path, &args), &args);
    assert!(error.contains("403"), "{error}");
}
