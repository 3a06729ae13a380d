//! The moto S3 harness shared by the s3 and replica tests: a moto server per test
//! (`.tools/venv`, installed by scripts/install-test-tools.sh), chartyard servers on its
//! buckets, and OCI helpers. Where moto is not installed the tests skip, except under CI,
//! where that is a failure.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{client, sha256, start_process};
use reqwest::blocking::{Response, multipart};
use serde_json::Value;

const ACCESS_KEY: &str = "AKIDCHARTYARDTEST";
const SECRET_KEY: &str = "chartyard-test-secret";

// ---- moto ----

/// A moto S3 server on a loopback port, killed when dropped.
pub(crate) struct Moto {
    child: Child,
    /// `http://127.0.0.1:{port}` (`https://` with TLS)
    pub(crate) endpoint: String,
}

impl Moto {
    /// Starts moto, or `None` (the test skips) where it is not installed outside CI.
    pub(crate) fn start() -> Option<Self> {
        Self::start_with(false)
    }

    /// With `tls`, moto serves https with a self-signed certificate of its own.
    pub(crate) fn start_with(tls: bool) -> Option<Self> {
        let binary = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin/moto_server");
        if !binary.exists() {
            assert!(std::env::var("CI").is_err(), "moto_server is not installed; run scripts/install-test-tools.sh");
            eprintln!("moto_server not installed; skipping");
            return None;
        }
        // moto takes a port number: take a free one from the system.
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .args(tls.then_some("-s"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let scheme = if tls { "https" } else { "http" };
        let moto = Self { child, endpoint: format!("{scheme}://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(60);
        while moto.client().get(&moto.endpoint).send().is_err() {
            assert!(Instant::now() < deadline, "moto_server did not answer on {}", moto.endpoint);
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(moto)
    }

    pub(crate) fn address(&self) -> &str {
        self.endpoint.split_once("://").unwrap().1
    }

    /// A client for moto itself (its own certificate is self-signed).
    pub(crate) fn client(&self) -> reqwest::blocking::Client {
        reqwest::blocking::Client::builder().danger_accept_invalid_certs(true).build().unwrap()
    }

    /// Creates a bucket. moto takes an unsigned `PUT /{bucket}`.
    pub(crate) fn create_bucket(&self, bucket: &str) {
        let response = self.client().put(format!("{}/{bucket}", self.endpoint)).send().unwrap();
        assert_eq!(response.status(), 200, "create bucket {bucket}: {}", response.text().unwrap());
    }

    /// Every key in a bucket (up to 1000, plenty here), as moto lists them.
    pub(crate) fn keys(&self, bucket: &str) -> Vec<String> {
        let response = self.client().get(format!("{}/{bucket}?list-type=2", self.endpoint)).send().unwrap();
        assert_eq!(response.status(), 200);
        let text = response.text().unwrap();
        assert!(text.contains("<IsTruncated>false</IsTruncated>"), "{text}");
        text.split("<Key>").skip(1).map(|rest| rest.split("</Key>").next().unwrap().to_string()).collect()
    }

    /// `{key: {ServerSideEncryption, SSEKMSKeyId, StorageClass}}` of every object in a
    /// bucket, from signed HEAD requests (moto refuses unsigned reads of objects) made by
    /// boto3, which comes with moto.
    pub(crate) fn encryption_and_class(&self, bucket: &str) -> Value {
        let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin/python");
        let script = r#"
import json, sys, boto3
endpoint, bucket = sys.argv[1:3]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
found = {}
for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
    head = s3.head_object(Bucket=bucket, Key=item["Key"])
    found[item["Key"]] = {k: head.get(k) for k in ("ServerSideEncryption", "SSEKMSKeyId", "StorageClass")}
print(json.dumps(found))
"#;
        let output = Command::new(python).args(["-c", script, &self.endpoint, bucket]).output().unwrap();
        assert!(output.status.success(), "boto3: {}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice(&output.stdout).unwrap()
    }

    /// Multipart uploads started and neither completed nor aborted.
    pub(crate) fn open_multipart_uploads(&self, bucket: &str) -> usize {
        let response = self.client().get(format!("{}/{bucket}?uploads", self.endpoint)).send().unwrap();
        response.text().unwrap().matches("<Upload>").count()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- chartyard on S3 ----

/// A config.yaml for the s3 driver on a moto bucket.
pub(crate) fn write_config(dir: &Path, endpoint: &str, bucket: &str, root: &str) -> String {
    let path = dir.join(format!("{bucket}.yaml"));
    let yaml = format!(
        "listen: \"127.0.0.1:0\"\n\
         manager:\n  name: simple\n  parameters:\n    resourcelocker: memory\n    storagedriver: s3\n    \
         bucket: {bucket}\n    region: us-east-1\n    regionendpoint: {endpoint}\n    accesskey: {ACCESS_KEY}\n    \
         secretkey: {SECRET_KEY}\n    rootdirectory: /{root}\n    forcepathstyle: true\n    secure: false\n"
    );
    std::fs::write(&path, yaml).unwrap();
    path.to_str().unwrap().to_string()
}

/// The chartyard command, its S3 settings in `args` and credentials in the environment
/// (where the AWS credential chain finds them).
pub(crate) fn chartyard(args: &[&str]) -> Command {
    let mut command = Command::new(crate::common::binary());
    command.args(args).env("AWS_ACCESS_KEY_ID", ACCESS_KEY).env("AWS_SECRET_ACCESS_KEY", SECRET_KEY);
    command
}

/// A chartyard server on S3, killed when dropped.
pub(crate) struct S3Server {
    child: Child,
    pub(crate) base: String,
    args: Vec<String>,
}

impl S3Server {
    /// `chartyard serve` with these arguments (the S3 settings).
    pub(crate) fn start(args: &[&str]) -> Self {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let (child, base) = Self::spawn(&args);
        Self { child, base, args }
    }

    fn spawn(args: &[String]) -> (Child, String) {
        let mut command = chartyard(&["serve", "--listen", "127.0.0.1:0"]);
        command.args(args);
        start_process(command)
    }

    /// Kills the server at once (SIGKILL): nothing gets to clean up.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills the server (SIGKILL) and starts another on the same bucket.
    pub(crate) fn restart(&mut self) {
        self.kill();
        let (child, base) = Self::spawn(&self.args);
        self.child = child;
        self.base = base;
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) fn get(&self, path: &str) -> Response {
        client().get(self.url(path)).send().unwrap()
    }

    pub(crate) fn upload(&self, space: &str, archive: &[u8]) -> Response {
        let form =
            multipart::Form::new().part("chartfile", multipart::Part::bytes(archive.to_vec()).file_name("chart.tgz"));
        client().post(self.url(&format!("/api/v1/spaces/{space}/charts"))).multipart(form).send().unwrap()
    }

    pub(crate) fn download(&self, space: &str, chart: &str, version: &str) -> Response {
        self.get(&format!("/api/v1/spaces/{space}/charts/{chart}/versions/{version}"))
    }

    pub(crate) fn bytes(&self, path: &str) -> Vec<u8> {
        let response = self.get(path);
        assert_eq!(response.status(), 200, "GET {path}");
        response.bytes().unwrap().to_vec()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a command that must exit by itself (within a minute), with its output.
pub(crate) fn run_to_exit(mut command: Command) -> Output {
    let mut child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{command:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

// ---- OCI helpers ----

pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

pub(crate) fn digest_of(data: &[u8]) -> String {
    format!("sha256:{}", sha256(data))
}

pub(crate) fn header(response: &Response, name: &str) -> String {
    let value = response.headers().get(name).unwrap_or_else(|| panic!("no {name} in {:?}", response.headers()));
    value.to_str().unwrap().to_string()
}

/// Pushes a blob in chunks (PATCH each, then PUT with the digest): each chunk becomes a
/// part of the upload, and the whole is renamed onto the blob.
pub(crate) fn push_blob_in_chunks(server: &S3Server, repo: &str, data: &[u8], chunk: usize) -> String {
    let response = client().post(server.url(&format!("{repo}/blobs/uploads/"))).send().unwrap();
    assert_eq!(response.status(), 202);
    let mut location = header(&response, "location");
    for (n, piece) in data.chunks(chunk).enumerate() {
        let start = n * chunk;
        let response = client()
            .patch(server.url(&location))
            .header("content-type", "application/octet-stream")
            .header("content-range", format!("{start}-{}", start + piece.len() - 1))
            .body(piece.to_vec())
            .send()
            .unwrap();
        assert_eq!(response.status(), 202, "PATCH at {start}");
        assert_eq!(header(&response, "range"), format!("0-{}", start + piece.len() - 1));
        location = header(&response, "location");
    }
    let digest = digest_of(data);
    let separator = if location.contains('?') { '&' } else { '?' };
    let response = client().put(server.url(&format!("{location}{separator}digest={digest}"))).send().unwrap();
    assert_eq!(response.status(), 201, "completing the upload: {}", response.text().unwrap());
    digest
}

/// Pushes a blob in one request (`POST ?digest=`).
pub(crate) fn push_blob(server: &S3Server, repo: &str, data: &[u8]) -> String {
    let digest = digest_of(data);
    let response = client()
        .post(server.url(&format!("{repo}/blobs/uploads/?digest={digest}")))
        .header("content-type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .unwrap();
    assert_eq!(response.status(), 201, "push blob: {}", response.text().unwrap());
    digest
}

/// The strings of a JSON array, sorted.
pub(crate) fn sorted_strings(items: &Value) -> Vec<String> {
    let mut strings: Vec<String> = items.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    strings.sort();
    strings
}
