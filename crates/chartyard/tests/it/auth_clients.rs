//! Real clients against an access-controlled server: helm v3 and v4 (OCI with `registry
//! login`, classic repositories, `cm-push`), oras-py, crane and skopeo, each with right and
//! wrong credentials; and two replicas on one bucket sharing API tokens, their revocation
//! and the bearer-token signing key. Wrong credentials must fail with an authentication
//! error and store nothing. A client that is not installed is skipped (with a message),
//! except under CI.
//!
//! The users (see `common::USERS`): `admin` is a global admin, `alice` may write and `bob`
//! may read in `team-*`, `carol` has no grant; everyone may read `public-*`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::{ChartBuilder, Helm, Server, TempDir, auth_config, client, files_under, json, password, tool};
use crate::support_s3::{Moto, S3Server, write_config};
use reqwest::blocking::{RequestBuilder, Response, multipart};
use serde_json::{Value, json};

const AUTH: &str = concat!(
    "  admins: [admin]\n",
    "  anonymous:\n",
    "    - spaces: [\"public-*\"]\n",
    "      role: read\n",
    "  rules:\n",
    "    - spaces: [\"team-*\"]\n",
    "      users: {alice: write, bob: read}\n",
    "  faileddelay: 1ms\n",
    "  maxfailures: 100000\n",
);

// ---- helpers ----

/// `request` with `user`'s right password.
fn as_user(request: RequestBuilder, user: &str) -> RequestBuilder {
    request.basic_auth(user, Some(password(user)))
}

/// Uploads an archive as the global admin (through `/api/v1`).
fn admin_upload(server: &Server, space: &str, archive: &[u8]) {
    let form =
        multipart::Form::new().part("chartfile", multipart::Part::bytes(archive.to_vec()).file_name("chart.tgz"));
    let request = client().post(server.api(&format!("/spaces/{space}/charts"))).multipart(form);
    json(as_user(request, "admin").send().unwrap(), 201);
}

/// The versions of a chart as the admin sees them; none for an unknown chart.
fn versions(server: &Server, space: &str, chart: &str) -> Vec<String> {
    let request = client().get(server.api(&format!("/spaces/{space}/charts/{chart}/versions?limit=1000")));
    let response = as_user(request, "admin").send().unwrap();
    if response.status() == 404 {
        return Vec::new();
    }
    let body = json(response, 200);
    body["items"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

/// The tags of an OCI repository as the admin sees them; none for an unknown repository.
fn tags(server: &Server, repository: &str) -> Vec<String> {
    let request = client().get(server.url(&format!("/v2/{repository}/tags/list")));
    let response = as_user(request, "admin").send().unwrap();
    if response.status() == 404 {
        return Vec::new();
    }
    let body = json(response, 200);
    body["tags"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

/// What the server stored of charts, spaces and OCI content (every file under those
/// folders of its data directory): the same before and after a refused request.
fn stored(server: &Server) -> BTreeSet<String> {
    let data = &server.data.path;
    files_under(data)
        .into_iter()
        .map(|path| path.strip_prefix(data).unwrap().to_str().unwrap().to_string())
        .filter(|path| ["spaces/", "charts/", "oci/", "uploads/", "blobs/", "log/"].iter().any(|p| path.starts_with(p)))
        .collect()
}

/// Whether a client's output reports an authentication failure (401; OCI clients that
/// were given a bearer token without the scope they asked for report `insufficient_scope`).
fn unauthenticated(text: &str) -> bool {
    let text = text.to_lowercase();
    ["401", "unauthorized", "authentication required", "insufficient_scope"].iter().any(|s| text.contains(s))
}

/// Whether a client's output reports a refusal to a signed-in user (403).
fn forbidden(text: &str) -> bool {
    let text = text.to_lowercase();
    ["403", "forbidden", "denied"].iter().any(|s| text.contains(s))
}

/// stdout and stderr of a finished command, together.
fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Runs a command that must succeed; answers its output.
fn succeeds(command: &mut Command) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(output.status.success(), "{command:?} failed: {}", text(&output));
    text(&output)
}

/// Runs a command that must fail; answers its output.
fn fails(command: &mut Command) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(!output.status.success(), "{command:?} should fail: {}", text(&output));
    text(&output)
}

/// A new API token of `user` (created with the password): its id and secret text.
fn create_token(base: &str, user: &str, request: Value) -> (String, String) {
    let response = as_user(client().post(format!("{base}/_/tokens")), user).json(&request).send().unwrap();
    let body = json(response, 201);
    let token = body["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("cyt_"), "{body}");
    (body["id"].as_str().unwrap().to_string(), token)
}

fn revoke_token(base: &str, user: &str, id: &str) {
    let response = as_user(client().delete(format!("{base}/_/tokens/{id}")), user).send().unwrap();
    assert_eq!(response.status(), 204);
}

/// An API token of the right shape that the server never issued.
const UNKNOWN_TOKEN: &str = "cyt_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

// ---- helm over OCI ----

#[test]
fn helm_registry_login_push_pull_and_logout() {
    let server = Server::start_with_auth(AUTH, &[]);
    let host = server.address();
    for major in [3, 4] {
        let Some(helm) = Helm::new(major, "auth-oci").map(Helm::plain_http) else { continue };
        let work = TempDir::new("auth-oci-work");
        let out = TempDir::new("auth-oci-pull");
        let dir = out.path.to_str().unwrap();
        let (team, public) = (format!("team-oci{major}"), format!("public-oci{major}"));
        let shared = ChartBuilder::new("shared", "1.0.0").build();
        admin_upload(&server, &public, &shared);
        let login = |user: &str, password: &str| {
            let mut args = vec!["registry", "login", host.as_str(), "--username", user, "--password", password];
            if major >= 4 {
                args.push("--plain-http");
            }
            helm.output(&args)
        };
        let v1 = ChartBuilder::new("web", "1.0.0").build();
        let v1_path = write(&work, "web-1.0.0.tgz", &v1);
        let registry = format!("oci://{host}/{team}");

        // Wrong credentials: the login fails, and so does a push with them.
        let before = stored(&server);
        let refused = login("alice", "wrong");
        assert!(!refused.status.success(), "helm v{major} logged in with a wrong password: {}", text(&refused));
        assert!(unauthenticated(&text(&refused)), "helm v{major}: {}", text(&refused));
        let refused = helm.fails(&["push", &v1_path, &registry, "--username", "alice", "--password", "wrong"]);
        assert!(unauthenticated(&refused), "helm v{major}: {refused}");
        let refused = helm.fails(&["push", &v1_path, &registry]);
        assert!(unauthenticated(&refused), "helm v{major} anonymous push: {refused}");
        assert_eq!(stored(&server), before, "helm v{major}: refused pushes stored something");
        assert!(versions(&server, &team, "web").is_empty());

        // Right credentials: alice (write) pushes and pulls.
        let logged_in = login("alice", password("alice"));
        assert!(logged_in.status.success(), "helm v{major}: {}", text(&logged_in));
        assert!(text(&logged_in).contains("Login Succeeded"), "{}", text(&logged_in));
        helm.run(&["push", &v1_path, &registry]);
        assert_eq!(versions(&server, &team, "web"), ["1.0.0"]);
        let record = format!("charts/{team}/");
        assert!(stored(&server).iter().any(|path| path.starts_with(&record)), "stored() sees records");
        helm.run(&["pull", &format!("{registry}/web"), "--version", "1.0.0", "-d", dir]);
        assert_eq!(std::fs::read(out.path.join("web-1.0.0.tgz")).unwrap(), v1);

        // bob (read) pulls, but his push is refused and stores nothing.
        assert!(login("bob", password("bob")).status.success());
        std::fs::remove_file(out.path.join("web-1.0.0.tgz")).unwrap();
        helm.run(&["pull", &format!("{registry}/web"), "--version", "1.0.0", "-d", dir]);
        assert_eq!(std::fs::read(out.path.join("web-1.0.0.tgz")).unwrap(), v1);
        let v2_path = write(&work, "web-1.1.0.tgz", &ChartBuilder::new("web", "1.1.0").build());
        let before = stored(&server);
        let refused = helm.fails(&["push", &v2_path, &registry]);
        assert!(forbidden(&refused), "helm v{major}: {refused}");
        assert_eq!(stored(&server), before, "helm v{major}: bob's refused push stored something");
        assert_eq!(versions(&server, &team, "web"), ["1.0.0"]);

        // Logged out: team spaces are closed, public ones open to anonymous pulls.
        helm.run(&["registry", "logout", &host]);
        let refused = helm.fails(&["pull", &format!("{registry}/web"), "--version", "1.0.0", "-d", dir]);
        assert!(unauthenticated(&refused), "helm v{major} anonymous pull from {team}: {refused}");
        helm.run(&["pull", &format!("oci://{host}/{public}/shared"), "--version", "1.0.0", "-d", dir]);
        assert_eq!(std::fs::read(out.path.join("shared-1.0.0.tgz")).unwrap(), shared);

        // An API token as the password (any user name); revoked, it no longer signs in.
        let (id, token) = create_token(&server.base, "alice", json!({"spaces": ["team-*"], "description": "helm"}));
        let logged_in = login("ci", &token);
        assert!(logged_in.status.success(), "helm v{major} with a token: {}", text(&logged_in));
        let v3_path = write(&work, "web-1.2.0.tgz", &ChartBuilder::new("web", "1.2.0").build());
        helm.run(&["push", &v3_path, &registry]);
        assert_eq!(versions(&server, &team, "web"), ["1.0.0", "1.2.0"]);
        revoke_token(&server.base, "alice", &id);
        let v4_path = write(&work, "web-1.3.0.tgz", &ChartBuilder::new("web", "1.3.0").build());
        let before = stored(&server);
        let refused = helm.fails(&["push", &v4_path, &registry]);
        assert!(unauthenticated(&refused), "helm v{major} with a revoked token: {refused}");
        assert_eq!(stored(&server), before);
        let refused = login("ci", &token);
        assert!(!refused.status.success() && unauthenticated(&text(&refused)), "{}", text(&refused));
        helm.run(&["registry", "logout", &host]);
    }
}

/// Writes `bytes` to a file of `dir`; answers its path.
fn write(dir: &TempDir, name: &str, bytes: &[u8]) -> String {
    crate::common::write_file(&dir.path, name, bytes)
}

// ---- helm classic repositories ----

#[test]
fn helm_repo_add_and_pull_with_basic_credentials() {
    let server = Server::start_with_auth(AUTH, &[]);
    let app = ChartBuilder::new("app", "1.0.0").build();
    let shared = ChartBuilder::new("shared", "2.0.0").build();
    admin_upload(&server, "team-repo", &app);
    admin_upload(&server, "public-repo", &shared);
    let url = server.url("/team-repo");
    for major in [3, 4] {
        let Some(helm) = Helm::new(major, "auth-repo") else { continue };
        let out = TempDir::new("auth-repo-pull");
        let dir = out.path.to_str().unwrap();

        // Wrong or missing credentials: the repository cannot be added.
        let refused = helm.fails(&["repo", "add", "wrong", &url, "--username", "alice", "--password", "wrong"]);
        assert!(unauthenticated(&refused), "helm v{major}: {refused}");
        let refused = helm.fails(&["repo", "add", "nobody", &url]);
        assert!(unauthenticated(&refused), "helm v{major} anonymous: {refused}");
        let refused = helm.fails(&["repo", "add", "carol", &url, "--username", "carol", "--password", "carol-pw"]);
        assert!(forbidden(&refused), "helm v{major} carol: {refused}");
        let listed = helm.output(&["repo", "list"]);
        for name in ["wrong", "nobody", "carol"] {
            assert!(!text(&listed).contains(name), "helm v{major} kept {name}: {}", text(&listed));
        }

        // Right credentials: alice (write) and bob (read) add it and pull.
        for user in ["alice", "bob"] {
            let name = format!("team-{user}");
            helm.run(&["repo", "add", &name, &url, "--username", user, "--password", password(user)]);
            helm.run(&["pull", &format!("{name}/app"), "--version", "1.0.0", "-d", dir]);
            assert_eq!(std::fs::read(out.path.join("app-1.0.0.tgz")).unwrap(), app, "helm v{major} {user}");
            std::fs::remove_file(out.path.join("app-1.0.0.tgz")).unwrap();
        }
        // An API token works as the password.
        let (_, token) = create_token(&server.base, "bob", json!({"role": "read"}));
        helm.run(&["repo", "add", "by-token", &url, "--username", "ci", "--password", &token]);
        helm.run(&["pull", "by-token/app", "-d", dir]);
        assert_eq!(std::fs::read(out.path.join("app-1.0.0.tgz")).unwrap(), app, "helm v{major} token");

        // A public space needs no credentials.
        helm.run(&["repo", "add", "public", &server.url("/public-repo")]);
        helm.run(&["pull", "public/shared", "-d", dir]);
        assert_eq!(std::fs::read(out.path.join("shared-2.0.0.tgz")).unwrap(), shared);
    }
}

// ---- helm cm-push ----

#[test]
fn helm_cm_push_with_passwords_and_api_tokens() {
    let server = Server::start_with_auth(AUTH, &[]);
    let mut ran = 0;
    for major in [3, 4] {
        let Some(helm) = crate::cm_push::helm_with_cm_push(major) else { continue };
        let work = TempDir::new("auth-cm-push");
        let space = format!("team-cm{major}");
        let url = server.url(&format!("/{space}"));
        let chart = |name: &str| write(&work, &format!("{name}-1.0.0.tgz"), &ChartBuilder::new(name, "1.0.0").build());
        let (basic, by_token, as_password, later) = (chart("basic"), chart("token"), chart("topass"), chart("later"));
        let (id, token) = create_token(&server.base, "alice", json!({"spaces": ["team-*"], "description": "ci"}));
        let (_, bobs_token) = create_token(&server.base, "bob", json!({}));

        // Wrong credentials, unknown tokens and readers are refused; nothing is stored.
        let before = stored(&server);
        let refused = helm.fails(&["cm-push", &basic, &url, "--username", "alice", "--password", "wrong"]);
        assert!(unauthenticated(&refused), "helm v{major}: {refused}");
        let refused = helm.fails(&["cm-push", &basic, &url]);
        assert!(unauthenticated(&refused), "helm v{major} anonymous: {refused}");
        let refused = helm.fails(&["cm-push", &basic, &url, "--access-token", UNKNOWN_TOKEN]);
        assert!(unauthenticated(&refused), "helm v{major} unknown token: {refused}");
        let refused = helm.fails(&["cm-push", &basic, &url, "--access-token", "not-a-token"]);
        assert!(unauthenticated(&refused), "helm v{major} malformed token: {refused}");
        let refused = helm.fails(&["cm-push", &basic, &url, "--username", "bob", "--password", "bob-pw"]);
        assert!(forbidden(&refused), "helm v{major} bob: {refused}");
        let refused = helm.fails(&["cm-push", &basic, &url, "--access-token", &bobs_token]);
        assert!(forbidden(&refused), "helm v{major} bob's token: {refused}");
        assert_eq!(stored(&server), before, "helm v{major}: refused pushes stored something");

        // Right credentials: a password, an API token, an API token as the password.
        helm.run(&["cm-push", &basic, &url, "--username", "alice", "--password", password("alice")]);
        helm.run(&["cm-push", &by_token, &url, "--access-token", &token]);
        helm.run(&["cm-push", &as_password, &url, "--username", "alice", "--password", &token]);
        for name in ["basic", "token", "topass"] {
            assert_eq!(versions(&server, &space, name), ["1.0.0"], "helm v{major} {name}");
        }

        // Credentials of a repository added by name are used.
        let named = format!("cm{major}");
        helm.run(&["repo", "add", &named, &url, "--username", "alice", "--password", password("alice")]);
        let by_name = chart("byname");
        helm.run(&["cm-push", &by_name, &named]);
        assert_eq!(versions(&server, &space, "byname"), ["1.0.0"]);

        // A revoked token is refused.
        revoke_token(&server.base, "alice", &id);
        let before = stored(&server);
        let refused = helm.fails(&["cm-push", &later, &url, "--access-token", &token]);
        assert!(unauthenticated(&refused), "helm v{major} revoked token: {refused}");
        assert_eq!(stored(&server), before);
        assert!(versions(&server, &space, "later").is_empty());
        ran += 1;
    }
    eprintln!("helm cm-push with credentials checked with {ran} helm version(s)");
}

// ---- oras-py ----

/// Python from `.tools/venv` with oras-py, or `None` (the test skips) outside CI.
fn oras_python() -> Option<PathBuf> {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin/python");
    let python = tool("python venv", venv)?;
    let has_oras = Command::new(&python).args(["-c", "import oras.client"]).output().is_ok_and(|o| o.status.success());
    if !has_oras {
        assert!(std::env::var("CI").is_err(), "oras-py is not installed in .tools/venv");
        eprintln!("oras-py not installed in .tools/venv; skipping");
        return None;
    }
    Some(python)
}

/// Logs in (with a user name, into its own docker config) with auth backend `token` (bearer
/// tokens of the token endpoint) or `basic` (Basic credentials on every request), then
/// pushes `artifact.txt` of the working folder or pulls into `out`; exits with 3 if the
/// registry refused. oras-py retries failed requests after waits of up to 83 s: the
/// retries of refused requests are made without them.
const ORAS_SCRIPT: &str = r#"
import os, sys, types
import oras.client, oras.decorator
oras.decorator.time = types.SimpleNamespace(sleep=lambda seconds: None)
host, user, password, backend, action, target, out = sys.argv[1:8]
client = oras.client.OrasClient(hostname=host, insecure=True, auth_backend=backend)
if user:
    print("login", client.login(username=user, password=password, hostname=host,
                               config_path=os.path.join(os.getcwd(), "docker-config.json")))
try:
    if action == "push":
        response = client.push(target=target, files=["artifact.txt:application/vnd.example.file.v1"])
        print("push", response.status_code)
        if response.status_code != 201:
            sys.exit(3)
    else:
        print("pulled", client.pull(target=target, outdir=out))
except Exception as error:
    print("refused:", type(error).__name__, error)
    sys.exit(3)
"#;

/// oras-py's default (`token`) backend keeps the first bearer token it gets and answers a
/// new challenge with it again: it pushes only where that token already grants push.
/// A push starts with a read (does the blob exist?), so its first token grants pull, and
/// this registry, like distribution, answers a push with it with a new challenge (401,
/// `insufficient_scope`), which oras-py cannot follow. So pushes go with the `basic`
/// backend, and pulls with either.
#[test]
fn oras_logs_in_pushes_and_pulls() {
    let Some(python) = oras_python() else { return };
    let server = Server::start_with_auth(AUTH, &[]);
    let host = server.address();
    let work = TempDir::new("auth-oras");
    let content = b"artifact pushed by oras-py with credentials\n".to_vec();
    std::fs::write(work.path.join("artifact.txt"), &content).unwrap();
    let out = work.path.join("out");
    let oras = |user: &str, backend: &str, action: &str, target: &str| {
        let password = match user {
            "" => "",
            "wrong" => "wrong",
            user => password(user),
        };
        let user = if user == "wrong" { "alice" } else { user };
        let target = format!("{host}/{target}");
        let mut command = Command::new(&python);
        command.current_dir(&work.path).args(["-c", ORAS_SCRIPT, &host, user, password, backend, action, &target]);
        command.arg(&out);
        command
    };

    // Wrong credentials, anonymous callers and readers cannot push; nothing is stored.
    let before = stored(&server);
    for (user, backend) in [("wrong", "token"), ("wrong", "basic"), ("", "token"), ("bob", "token"), ("bob", "basic")] {
        let refused = fails(&mut oras(user, backend, "push", "team-oras/art:v1"));
        assert!(refused.contains("refused"), "{user} {backend}: {refused}");
    }
    assert_eq!(stored(&server), before, "refused oras pushes stored something");
    assert!(tags(&server, "team-oras/art").is_empty());

    // alice pushes; alice and bob pull; wrong credentials and anonymous callers cannot.
    let pushed = succeeds(&mut oras("alice", "basic", "push", "team-oras/art:v1"));
    assert!(pushed.contains("Login Succeeded") && pushed.contains("push 201"), "{pushed}");
    assert_eq!(tags(&server, "team-oras/art"), ["v1"]);
    for (user, backend) in [("alice", "token"), ("bob", "token"), ("bob", "basic")] {
        succeeds(&mut oras(user, backend, "pull", "team-oras/art:v1"));
        assert_eq!(std::fs::read(out.join("artifact.txt")).unwrap(), content, "{user} {backend}");
        std::fs::remove_dir_all(&out).unwrap();
    }
    for (user, backend) in [("wrong", "token"), ("wrong", "basic"), ("", "token"), ("carol", "token")] {
        let refused = fails(&mut oras(user, backend, "pull", "team-oras/art:v1"));
        assert!(refused.contains("refused"), "{user} {backend}: {refused}");
        assert!(!out.join("artifact.txt").exists());
    }

    // A public space: the admin pushes, anyone pulls.
    succeeds(&mut oras("admin", "basic", "push", "public-oras/art:v1"));
    succeeds(&mut oras("", "token", "pull", "public-oras/art:v1"));
    assert_eq!(std::fs::read(out.join("artifact.txt")).unwrap(), content);
}

// ---- crane ----

#[test]
fn crane_logs_in_pushes_pulls_lists_and_catalogs() {
    let Some(crane) = crate::common::peer("crane") else { return };
    let server = Server::start_with_auth(AUTH, &[]);
    let host = server.address();
    admin_upload(&server, "public-crane", &ChartBuilder::new("shared", "1.0.0").build());
    admin_upload(&server, "secret-crane", &ChartBuilder::new("hidden", "1.0.0").build());
    let work = TempDir::new("auth-crane");
    let layer = work.path.join("layer.tar");
    std::fs::write(&layer, ChartBuilder::empty().file("hello.txt", b"hi".to_vec()).tar()).unwrap();
    let layer = layer.to_str().unwrap().to_string();
    // Each user has a home folder of its own (the docker config `crane auth login` writes).
    let homes: Vec<(&str, TempDir)> = ["alice", "bob", "wrong", "anonymous", "token"]
        .into_iter()
        .map(|user| (user, TempDir::new("crane-home")))
        .collect();
    let crane = |home: &str, args: &[&str]| {
        let home = &homes.iter().find(|(user, _)| *user == home).unwrap().1.path;
        let mut command = Command::new(&crane);
        command.args(args).env("HOME", home).env("DOCKER_CONFIG", home.join(".docker"));
        command
    };
    succeeds(&mut crane("alice", &["auth", "login", &host, "-u", "alice", "-p", password("alice")]));
    succeeds(&mut crane("bob", &["auth", "login", &host, "-u", "bob", "-p", password("bob")]));
    // crane stores what it is given without asking the registry: the wrong password
    // shows when it is used.
    succeeds(&mut crane("wrong", &["auth", "login", &host, "-u", "alice", "-p", "wrong"]));
    let (_, token) = create_token(&server.base, "alice", json!({"role": "read"}));
    succeeds(&mut crane("token", &["auth", "login", &host, "-u", "ci", "-p", &token]));
    let image = format!("{host}/team-crane/img:v1");

    // Wrong credentials, anonymous callers and readers cannot push; nothing is stored.
    let before = stored(&server);
    let refused = fails(&mut crane("wrong", &["append", "-f", &layer, "-t", &image]));
    assert!(unauthenticated(&refused), "{refused}");
    let refused = fails(&mut crane("anonymous", &["append", "-f", &layer, "-t", &image]));
    assert!(unauthenticated(&refused), "{refused}");
    let refused = fails(&mut crane("bob", &["append", "-f", &layer, "-t", &image]));
    assert!(forbidden(&refused), "{refused}");
    assert_eq!(stored(&server), before, "refused crane pushes stored something");
    assert!(tags(&server, "team-crane/img").is_empty());

    // alice pushes, copies and lists; bob pulls and lists.
    succeeds(&mut crane("alice", &["append", "-f", &layer, "-t", &image]));
    assert_eq!(tags(&server, "team-crane/img"), ["v1"]);
    assert!(stored(&server).iter().any(|path| path.starts_with("oci/team-crane/")), "stored() sees OCI content");
    succeeds(&mut crane("alice", &["copy", &image, &format!("{host}/team-crane/copy:v1")]));
    assert_eq!(tags(&server, "team-crane/copy"), ["v1"]);
    for user in ["alice", "bob"] {
        let listed = succeeds(&mut crane(user, &["ls", &format!("{host}/team-crane/img")]));
        assert_eq!(listed.trim(), "v1", "{user}");
        let tarball = work.path.join(format!("{user}.tar"));
        succeeds(&mut crane(user, &["pull", &image, tarball.to_str().unwrap()]));
        assert!(std::fs::metadata(&tarball).unwrap().len() > 0);
    }
    // alice's read-only token lists and pulls, but cannot push.
    let listed = succeeds(&mut crane("token", &["ls", &format!("{host}/team-crane/img")]));
    assert_eq!(listed.trim(), "v1");
    let refused = fails(&mut crane("token", &["append", "-f", &layer, "-t", &format!("{host}/team-crane/img:v2")]));
    assert!(forbidden(&refused), "{refused}");
    assert_eq!(tags(&server, "team-crane/img"), ["v1"]);
    let refused = fails(&mut crane("wrong", &["ls", &format!("{host}/team-crane/img")]));
    assert!(unauthenticated(&refused), "{refused}");
    let refused = fails(&mut crane("anonymous", &["pull", &image, work.path.join("anon.tar").to_str().unwrap()]));
    assert!(unauthenticated(&refused), "{refused}");

    // The catalog lists only the repositories of spaces the caller may read.
    let catalog = |user: &str| {
        let listed = succeeds(&mut crane(user, &["catalog", &host]));
        listed.lines().map(str::to_string).collect::<Vec<_>>()
    };
    let team = ["public-crane/shared", "team-crane/copy", "team-crane/img"];
    assert_eq!(catalog("alice"), team);
    assert_eq!(catalog("bob"), team);
    assert_eq!(catalog("anonymous"), ["public-crane/shared"]);
    let refused = fails(&mut crane("wrong", &["catalog", &host]));
    assert!(unauthenticated(&refused), "{refused}");
    let admin = client().get(server.url("/v2/_catalog"));
    let all = json(as_user(admin, "admin").send().unwrap(), 200);
    assert_eq!(
        all["repositories"],
        json!(["public-crane/shared", "secret-crane/hidden", "team-crane/copy", "team-crane/img"])
    );
}

// ---- skopeo ----

fn skopeo() -> Option<PathBuf> {
    let on_path = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("skopeo"))
        .find(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from("skopeo (on PATH)"));
    tool("skopeo", on_path)
}

#[test]
fn skopeo_copies_in_and_out_with_credentials() {
    let Some(skopeo) = skopeo() else { return };
    let server = Server::start_with_auth(AUTH, &[]);
    let work = TempDir::new("auth-skopeo");
    let source = work.path.join("source");
    let (manifest_bytes, layer) = crate::oci_spec::write_oci_layout(&source, "v1", b"hello from skopeo\n");
    let target = format!("docker://{}/team-skopeo/img:v1", server.address());
    // No credentials but the ones given: an empty home and an auth file of its own.
    let skopeo = |args: &[&str], creds: Option<&str>| {
        let mut command = Command::new(&skopeo);
        command
            .env("HOME", &work.path)
            .env("REGISTRY_AUTH_FILE", work.path.join("auth.json"))
            .args(["copy", "--src-tls-verify=false", "--dest-tls-verify=false"])
            .args(creds)
            .args(args);
        command
    };
    let layout = format!("oci:{}:v1", source.display());
    let copy_in = |creds: Option<&str>| skopeo(&[&layout, &target], creds);
    let out = work.path.join("out");
    let dir = format!("dir:{}", out.display());
    let copy_out = |creds: Option<&str>| skopeo(&[&target, &dir], creds);

    // Wrong credentials, anonymous callers and readers cannot copy in; nothing is stored.
    let before = stored(&server);
    let refused = fails(&mut copy_in(Some("--dest-creds=alice:wrong")));
    assert!(unauthenticated(&refused), "{refused}");
    let refused = fails(&mut copy_in(None));
    assert!(unauthenticated(&refused), "{refused}");
    let refused = fails(&mut copy_in(Some("--dest-creds=bob:bob-pw")));
    assert!(forbidden(&refused), "{refused}");
    assert_eq!(stored(&server), before, "refused skopeo copies stored something");

    // alice copies in; the registry holds the exact manifest and layer.
    succeeds(&mut copy_in(Some("--dest-creds=alice:alice-pw")));
    assert_eq!(tags(&server, "team-skopeo/img"), ["v1"]);
    let manifest = client().get(server.url("/v2/team-skopeo/img/manifests/v1"));
    let manifest = as_user(manifest, "admin").header("accept", "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(manifest.send().unwrap().bytes().unwrap().to_vec(), manifest_bytes);

    // Out again: wrong credentials and anonymous callers cannot, bob (read) can.
    let refused = fails(&mut copy_out(Some("--src-creds=bob:wrong")));
    assert!(unauthenticated(&refused), "{refused}");
    let refused = fails(&mut copy_out(None));
    assert!(unauthenticated(&refused), "{refused}");
    assert!(!out.join("manifest.json").exists());
    succeeds(&mut copy_out(Some("--src-creds=bob:bob-pw")));
    assert_eq!(std::fs::read(out.join("manifest.json")).unwrap(), manifest_bytes);
    assert_eq!(std::fs::read(out.join(crate::common::sha256(&layer))).unwrap(), layer);
}

// ---- two replicas on one bucket ----

/// Polls `check` until it holds (at most a minute: a liveness bound, not a timing claim).
fn eventually(what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match check() {
            Ok(()) => return,
            Err(last) if Instant::now() > deadline => panic!("{what}: still {last}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn bearer(request: RequestBuilder, token: &str) -> Response {
    request.bearer_auth(token).send().unwrap()
}

/// A bearer token of `server`'s token endpoint for these Basic credentials and scope.
fn token_endpoint(server: &S3Server, user: &str, password: &str, scope: &str) -> String {
    let url = server.url(&format!("/_/token?service=chartyard&scope={scope}"));
    let body = json(client().get(url).basic_auth(user, Some(password)).send().unwrap(), 200);
    body["token"].as_str().unwrap().to_string()
}

#[test]
fn replicas_share_tokens_revocations_and_the_signing_key() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("auth");
    let dir = TempDir::new("auth-replicas");
    let head = std::fs::read_to_string(write_config(&dir.path, &moto.endpoint, "auth", "replicas")).unwrap();
    let config = auth_config(&format!("{AUTH}  tokencachettl: 1s\n"), &head);
    let path = config.path.join("config.yaml");
    let path = path.to_str().unwrap();
    let (a, b) = (S3Server::start(&["--config", path]), S3Server::start(&["--config", path]));
    let whoami = |server: &S3Server, token: &str| bearer(client().get(server.url("/_/whoami")), token);
    let versions = "/api/v1/spaces/team-rep/charts/web/versions";

    // An API token made on A works on B, as a bearer token and as a Basic password.
    let (id, token) = create_token(&a.base, "alice", json!({"spaces": ["team-*"], "role": "write"}));
    let form = multipart::Form::new()
        .part("chartfile", multipart::Part::bytes(ChartBuilder::new("web", "1.0.0").build()).file_name("c.tgz"));
    json(bearer(client().post(a.url("/api/v1/spaces/team-rep/charts")).multipart(form), &token), 201);
    for server in [&a, &b] {
        let me = json(whoami(server, &token), 200);
        assert_eq!((me["user"].as_str(), me["token"].as_str()), (Some("alice"), Some(id.as_str())), "{me}");
        let listed = json(client().get(server.url(versions)).basic_auth("ci", Some(&token)).send().unwrap(), 200);
        assert_eq!(listed["items"], json!(["1.0.0"]));
    }

    // Bearer tokens of A's token endpoint work on B: one signed in with a password, one
    // with the API token.
    let scope = "repository:team-rep/web:pull";
    let by_password = token_endpoint(&a, "alice", password("alice"), scope);
    let by_token = token_endpoint(&a, "ci", &token, scope);
    for jwt in [&by_password, &by_token] {
        let tags = json(bearer(client().get(b.url("/v2/team-rep/web/tags/list")), jwt), 200);
        assert_eq!(tags["tags"], json!(["1.0.0"]));
        assert_eq!(bearer(client().get(b.url("/v2/")), jwt).status(), 200);
    }
    // A web UI session signed in on A is good on B: the cookie is signed, not stored.
    let cookie = crate::common::ui_session(&a.base, "alice", password("alice"));
    for server in [&a, &b] {
        let page = client().get(server.url("/_/ui/team-rep/web")).header("cookie", &cookie).send().unwrap();
        assert_eq!(page.status(), 200, "{}", server.base);
        assert!(page.text().unwrap().contains(r#"id="whoami">alice<"#));
    }

    // One signed with another key is refused.
    let (signed, signature) = by_password.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { 'B' } else { 'A' };
    let forged = format!("{signed}.{flipped}{}", &signature[1..]);
    let refused = bearer(client().get(b.url("/v2/team-rep/web/tags/list")), &forged);
    assert_eq!(refused.status(), 401);
    assert!(refused.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer realm="));

    // Revoked on A: the token and the bearer token made from it stop working on both
    // replicas (B trusts what it read for `tokencachettl`); the password's bearer token
    // goes on working.
    revoke_token(&a.base, "alice", &id);
    assert_eq!(whoami(&a, &token).status(), 401, "the replica that revoked it forgets it at once");
    eventually("the revoked token is refused on B", || {
        let status = whoami(&b, &token).status();
        if status == 401 { Ok(()) } else { Err(format!("{status}")) }
    });
    for server in [&a, &b] {
        let refused = bearer(client().get(server.url(versions)), &token);
        assert_eq!(refused.status(), 401);
        let refused = client().get(server.url(versions)).basic_auth("ci", Some(&token)).send().unwrap();
        assert_eq!(refused.status(), 401);
        let tags = bearer(client().get(server.url("/v2/team-rep/web/tags/list")), &by_token);
        assert_eq!(tags.status(), 401, "a bearer token of a revoked API token");
        let tags = bearer(client().get(server.url("/v2/team-rep/web/tags/list")), &by_password);
        assert_eq!(tags.status(), 200);
        let mine = json(as_user(client().get(server.url("/_/tokens")), "alice").send().unwrap(), 200);
        assert_eq!(mine["metadata"]["total"], 0, "{mine}");
    }
    // An upload with the revoked token stores nothing.
    let form = multipart::Form::new()
        .part("chartfile", multipart::Part::bytes(ChartBuilder::new("web", "2.0.0").build()).file_name("c.tgz"));
    let refused = bearer(client().post(b.url("/api/v1/spaces/team-rep/charts")).multipart(form), &token);
    assert_eq!(refused.status(), 401);
    let listed = json(as_user(client().get(b.url(versions)), "bob").send().unwrap(), 200);
    assert_eq!(listed["items"], json!(["1.0.0"]));
}
