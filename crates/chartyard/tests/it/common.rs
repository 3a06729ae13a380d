//! Test harness: runs the real `chartyard` binary on a loopback port and talks HTTP to it,
//! builds chart archives, and runs the external tools (helm, peers) the tests drive.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use reqwest::blocking::{Client, Response, multipart};
use serde_json::Value;

pub const SEED_TEST1: &[u8] = include_bytes!("../fixtures/test1.tgz");
pub const SEED_TEST2: &[u8] = include_bytes!("../fixtures/test2.tgz");

/// A running server with its own data directory, killed when dropped.
pub struct Server {
    child: Child,
    pub base: String,
    pub data: TempDir,
    extra_args: Vec<String>,
    /// The configuration files of a server started with access control.
    pub config: Option<TempDir>,
    /// What the server has logged so far.
    pub logs: Logs,
}

impl Server {
    /// A filesystem-backed server in a fresh directory.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    pub fn start_with(extra_args: &[&str]) -> Self {
        let data = TempDir::new("data");
        let extra_args: Vec<String> = extra_args.iter().map(|s| s.to_string()).collect();
        let (child, base, logs) = spawn(&data.path, &extra_args);
        Self { child, base, data, extra_args, config: None, logs }
    }

    /// A filesystem-backed server with access control: every user of [`USERS`] is in an
    /// htpasswd file, and `auth` holds the rest of the `auth` section (each line indented
    /// by two spaces), e.g. `"  admins: [admin]\n  faileddelay: 1ms\n"`.
    pub fn start_with_auth(auth: &str, extra_args: &[&str]) -> Self {
        let config = auth_config(auth, "manager:\n  parameters:\n    storagedriver: filesystem\n");
        let mut args = vec!["--config".to_string(), config.path.join("config.yaml").display().to_string()];
        args.extend(extra_args.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut server = Self::start_with(&args);
        server.config = Some(config);
        server
    }

    /// Kills the process at once (SIGKILL): nothing gets to clean up.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks the server to stop (SIGTERM) and waits up to `patience` for it to exit;
    /// answers its exit status and how long it took (`None`: still running, then killed).
    pub fn terminate(&mut self, patience: Duration) -> (Option<std::process::ExitStatus>, Duration) {
        let started = std::time::Instant::now();
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        while started.elapsed() < patience {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (Some(status), started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        (None, started.elapsed())
    }

    /// Kills the server and starts a new one on the same data.
    pub fn restart(&mut self) {
        self.kill();
        let (child, base, logs) = spawn(&self.data.path, &self.extra_args);
        self.child = child;
        self.base = base;
        self.logs = logs;
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    pub fn address(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }

    pub fn get(&self, path: &str) -> Response {
        client().get(self.api(path)).send().unwrap()
    }

    /// Uploads an archive as the seed's clients do (multipart field `chartfile`).
    pub fn upload(&self, space: &str, archive: &[u8]) -> Response {
        let form =
            multipart::Form::new().part("chartfile", multipart::Part::bytes(archive.to_vec()).file_name("chart.tgz"));
        client().post(self.api(&format!("/spaces/{space}/charts"))).multipart(form).send().unwrap()
    }

    pub fn replace(&self, space: &str, chart: &str, version: &str, archive: &[u8]) -> Response {
        let form =
            multipart::Form::new().part("chartfile", multipart::Part::bytes(archive.to_vec()).file_name("chart.tgz"));
        client()
            .put(self.api(&format!("/spaces/{space}/charts/{chart}/versions/{version}")))
            .multipart(form)
            .send()
            .unwrap()
    }

    pub fn create_space(&self, space: &str) -> Response {
        client().post(self.api(&format!("/spaces?space={space}"))).send().unwrap()
    }

    pub fn delete(&self, path: &str) -> Response {
        client().delete(self.api(path)).send().unwrap()
    }

    pub fn put_json(&self, path: &str, body: &Value) -> Response {
        client().put(self.api(path)).json(body).send().unwrap()
    }

    pub fn download(&self, space: &str, chart: &str, version: &str) -> Vec<u8> {
        let response = self.get(&format!("/spaces/{space}/charts/{chart}/versions/{version}"));
        assert_eq!(response.status(), 200, "download {space}/{chart}/{version}");
        response.bytes().unwrap().to_vec()
    }

    /// Whether the server still answers.
    pub fn healthy(&self) -> bool {
        client().get(self.url("/health")).send().is_ok_and(|r| r.status() == 200)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The users of access-controlled test servers: name and password.
pub const USERS: &[(&str, &str)] =
    &[("admin", "admin-pw"), ("alice", "alice-pw"), ("bob", "bob-pw"), ("carol", "carol-pw")];

/// The password of a user of [`USERS`].
pub fn password(user: &str) -> &'static str {
    USERS.iter().find(|(name, _)| *name == user).map(|(_, password)| *password).expect("a test user")
}

/// A folder with `htpasswd` (every user of [`USERS`], bcrypt cost 4 so tests stay fast)
/// and `config.yaml`: `head` (the storage part) and an `auth` section of the htpasswd
/// file and `auth`'s lines.
pub fn auth_config(auth: &str, head: &str) -> TempDir {
    let dir = TempDir::new("config");
    let htpasswd: String = USERS
        .iter()
        .map(|(user, password)| chartyard_testkit::htpasswd_line(Path::new(binary()), user, password))
        .collect();
    std::fs::write(dir.path.join("htpasswd"), htpasswd).unwrap();
    let config = format!("{head}auth:\n  htpasswd: {}\n{auth}", dir.path.join("htpasswd").display());
    std::fs::write(dir.path.join("config.yaml"), config).unwrap();
    dir
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_chartyard")
}

fn spawn(data: &Path, extra_args: &[String]) -> (Child, String, Logs) {
    let mut command = Command::new(binary());
    command.args(["serve", "--listen", "127.0.0.1:0", "--root-directory"]).arg(data).args(extra_args);
    start_logged_process(command)
}

/// The lines a server logged (its last 10,000).
#[derive(Clone, Default)]
pub struct Logs(std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<String>>>);

impl Logs {
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().iter().cloned().collect()
    }

    fn push(&self, line: String) {
        let mut lines = self.0.lock().unwrap();
        if lines.len() == 10_000 {
            lines.pop_front();
        }
        lines.push_back(line);
    }
}

/// Starts a server process and waits for the address it reports ("listening on ...").
/// Its stderr keeps being drained so the server never blocks on a full pipe; with
/// `CHARTYARD_TEST_LOGS` set, it is echoed.
pub fn start_process(command: Command) -> (Child, String) {
    let (child, base, _) = start_logged_process(command);
    (child, base)
}

/// [`start_process`], keeping what the server logs.
pub fn start_logged_process(mut command: Command) -> (Child, String, Logs) {
    let mut child = command
        .env("CHARTYARD_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chartyard");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let logs = Logs::default();
    let kept = logs.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            kept.push(line.clone());
            if let Some(rest) = line.split("listening on ").nth(1) {
                // In a JSON line the address ends the message string.
                let base = rest.split(|c: char| c.is_whitespace() || c == '"').next().unwrap_or_default().to_string();
                let _ = tx.send(base);
            }
            if std::env::var_os("CHARTYARD_TEST_LOGS").is_some() {
                eprintln!("[server] {line}");
            }
        }
    });
    let base = rx.recv_timeout(Duration::from_secs(30)).expect("server did not report its address");
    (child, base, logs)
}

/// Signs in to the web UI at `base`; answers the session cookie (`name=value`).
pub fn ui_session(base: &str, user: &str, password: &str) -> String {
    let plain = Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let form = [("username", user), ("password", password)];
    let response = plain.post(format!("{base}/_/ui/-/signin")).form(&form).send().unwrap();
    assert_eq!(response.status(), 303, "signing in to the web UI");
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_string()
}

pub fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(60)).build().unwrap()
}

/// JSON body of a response, asserting its status.
pub fn json(response: Response, status: u16) -> Value {
    let actual = response.status().as_u16();
    let text = response.text().unwrap();
    assert_eq!(actual, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"))
}

/// Asserts a seed-style error answer and returns its message.
pub fn error(response: Response, status: u16) -> String {
    let body = json(response, status);
    let reason = body["reason"].as_str().unwrap_or_else(|| panic!("no reason in {body}"));
    assert!(["ReasonRequest", "ReasonInternal", "ResourceLocking"].contains(&reason), "{body}");
    body["message"].as_str().unwrap_or_else(|| panic!("no message in {body}")).to_string()
}

pub use chartyard_testkit::{
    ChartBuilder, TempDir, chart_with_noise, descriptor, digest_of, gzip, manifest_bytes, noise, sha256, unpack,
};

/// A real Helm binary, when the test tools are installed (`scripts/install-test-tools.sh`).
/// Under CI a missing binary is a failure, elsewhere the caller skips.
pub fn helm(major: u8) -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../.tools/helm{major}/helm"));
    tool(&format!("helm v{major}"), path)
}

/// A test tool: `path` if it exists; under CI a missing tool is a failure, elsewhere the
/// caller skips (with a message).
pub fn tool(name: &str, path: PathBuf) -> Option<PathBuf> {
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var("CI").is_err(),
        "{name} is not installed at {}; run scripts/install-test-tools.sh",
        path.display()
    );
    eprintln!("{name} not installed ({}); skipping", path.display());
    None
}

/// Runs a command that must succeed; answers its stdout.
pub fn run(command: &mut Command) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{command:?} failed:\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// A real helm binary with its own isolated configuration, cache, data and plugin folders.
pub struct Helm {
    pub major: u8,
    binary: PathBuf,
    pub home: TempDir,
    plain_http: bool,
}

impl Helm {
    /// Helm `major`, or `None` (the test skips) where it is not installed.
    pub fn new(major: u8, label: &str) -> Option<Self> {
        Some(Self { major, binary: helm(major)?, home: TempDir::new(&format!("{label}{major}")), plain_http: false })
    }

    /// Passes `--plain-http` to the commands that talk to an OCI registry (`push`, `pull`,
    /// `show`, `template`): v4 needs it for any http registry, v3 when it lists tags.
    pub fn plain_http(mut self) -> Self {
        self.plain_http = true;
        self
    }

    /// Where plugins are looked up (`HELM_PLUGINS`).
    pub fn plugins(&self) -> PathBuf {
        self.home.path.join("plugins")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command.args(args);
        if self.plain_http && matches!(args.first(), Some(&("push" | "pull" | "show" | "template"))) {
            command.arg("--plain-http");
        }
        let home = &self.home.path;
        command
            .env("HELM_PLUGINS", self.plugins())
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_DATA_HOME", home.join("data"))
            .env("HOME", home);
        command
    }

    pub fn output(&self, args: &[&str]) -> std::process::Output {
        self.command(args).output().unwrap()
    }

    /// Runs helm, asserting success; answers stdout and stderr together.
    pub fn run(&self, args: &[&str]) -> String {
        let output = self.output(args);
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "helm v{} {args:?} failed: {text}", self.major);
        text
    }

    /// Runs helm, asserting failure; answers stdout and stderr together.
    pub fn fails(&self, args: &[&str]) -> String {
        let output = self.output(args);
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(!output.status.success(), "helm v{} {args:?} should fail: {text}", self.major);
        text
    }
}

/// Writes `bytes` to `dir/name` (creating folders); answers the path as a string.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_string()
}

/// Every regular file below `dir`, sorted (none if it does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// `space/chart/version` of every version record under a data directory
/// (`charts/{space}/{generation}/{chart}/{version}.json`), asserting that each is whole
/// JSON; only a store's staging files (`{version}.json#N`) may sit beside them.
pub fn record_files(data: &Path) -> std::collections::BTreeSet<String> {
    let charts = data.join("charts");
    let mut records = std::collections::BTreeSet::new();
    for path in files_under(&charts) {
        let relative = path.strip_prefix(&charts).unwrap().to_str().unwrap().to_string();
        let Some(stem) = relative.strip_suffix(".json") else {
            assert!(relative.contains(".json#"), "unexpected file under charts/: {relative}");
            continue;
        };
        let bytes = std::fs::read(&path).unwrap();
        let record: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!("partial or corrupt record {relative} ({e}): {:?}", String::from_utf8_lossy(&bytes))
        });
        assert!(record["digest"].is_string(), "{relative}: {record}");
        let parts: Vec<&str> = stem.split('/').collect();
        assert_eq!(parts.len(), 4, "{relative}");
        records.insert(format!("{}/{}/{}", parts[0], parts[2], parts[3]));
    }
    records
}

/// The config blob `helm push` writes for a `ChartBuilder` chart: Chart.yaml's fields as
/// JSON.
pub fn chart_config(name: &str, version: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "v2",
        "name": name,
        "version": version,
        "description": format!("test chart {name}"),
    }))
    .unwrap()
}

/// A peer program from `shared/peers` (the folder beside the repository): `{name}.xz`
/// decompressed once into a cache folder under `target/`, made executable, and put in
/// place by a rename, so that tests running at once never see half a file. `None`, with a
/// message, where the peers folder is absent (the test then skips).
pub fn peer(name: &str) -> Option<PathBuf> {
    let peers = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/peers");
    let source = peers.join(format!("{name}.xz"));
    let Ok(meta) = std::fs::metadata(&source) else {
        eprintln!("peer {name} is not in {}; skipping", peers.display());
        return None;
    };
    // Named after the compressed size too, so a changed peer is unpacked again.
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("peers");
    let target = cache.join(format!("{name}-{}", meta.len()));
    if target.exists() {
        return Some(target);
    }
    std::fs::create_dir_all(&cache).unwrap();
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let partial = cache.join(format!(".{name}-{}-{n}.partial", std::process::id()));
    let output = std::fs::File::create(&partial).unwrap();
    let status = Command::new("xz").arg("-dc").arg(&source).stdout(output).status().expect("run xz");
    assert!(status.success(), "xz -dc {} failed", source.display());
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&partial, &target).unwrap();
    Some(target)
}

/// A file beside the peer programs (such as a plugin manifest), if the folder is there.
pub fn peer_file(name: &str) -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/peers").join(name);
    path.exists().then_some(path)
}
