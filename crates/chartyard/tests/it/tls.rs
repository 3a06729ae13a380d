//! HTTPS served by the binary itself (`tls.certificate` / `tls.key`): the API over TLS
//! with a test CA, plain HTTP refused on the TLS port, the handshake bounded by the header
//! timeout, real helm v3 and v4 with `--ca-file` (Helm repository and OCI), certificates
//! reloaded when their files change, and broken files refused at startup.

use std::io::Read;
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use reqwest::blocking::{Client, multipart};

use crate::common::{ChartBuilder, Helm, Server, TempDir, binary, run, write_file};
use crate::support_s3::run_to_exit;

/// A test CA and a server certificate it issued for 127.0.0.1 and localhost, as PEM.
struct Pki {
    ca: String,
    certificate: String,
    key: String,
}

impl Pki {
    fn new(name: &str) -> Self {
        Self::with_key(name, KeyPair::generate().unwrap())
    }

    /// The server certificate for `key` (its PEM kept as `key` gives it).
    fn with_key(name: &str, key: KeyPair) -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.distinguished_name.push(DnType::CommonName, format!("chartyard test CA {name}"));
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, format!("chartyard test server {name}"));
        let certificate = params.signed_by(&key, &issuer).unwrap();
        Self { ca: ca.pem(), certificate: certificate.pem(), key: key.serialize_pem() }
    }

    /// Writes the certificate and key as `dir/tls.crt` and `dir/tls.key` (in place, as
    /// a renewal job would), the CA as `dir/ca.crt`; answers their paths.
    fn write(&self, dir: &Path) -> Files {
        Files {
            certificate: write_file(dir, "tls.crt", self.certificate.as_bytes()),
            key: write_file(dir, "tls.key", self.key.as_bytes()),
            ca: write_file(dir, "ca.crt", self.ca.as_bytes()),
        }
    }

    /// A client trusting only this CA, opening a new connection for every request.
    fn client(&self) -> Client {
        Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(self.ca.as_bytes()).unwrap())
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap()
    }
}

struct Files {
    certificate: String,
    key: String,
    ca: String,
}

/// A server on `files`, with `extra` flags.
fn https_server(files: &Files, extra: &[&str]) -> Server {
    let args = [&["--tls-certificate", &files.certificate, "--tls-key", &files.key], extra].concat();
    let server = Server::start_with(&args);
    assert!(server.base.starts_with("https://127.0.0.1:"), "{}", server.base);
    server
}

fn address(server: &Server) -> String {
    server.base.trim_start_matches("https://").to_string()
}

/// Whether a new connection trusting only `pki`'s CA gets an answer from /health.
fn trusted_by(server: &Server, pki: &Pki) -> bool {
    pki.client().get(server.url("/health")).send().is_ok_and(|r| r.status() == 200)
}

#[test]
fn the_api_is_served_over_https_and_plain_http_is_refused() {
    let dir = TempDir::new("tls");
    let pki = Pki::new("a");
    let server = https_server(&pki.write(&dir.path), &[]);
    let client = pki.client();

    let health = client.get(server.url("/health")).send().unwrap();
    assert_eq!(health.status(), 200);

    // A request with a body and a download, through TLS.
    let archive = ChartBuilder::new("web", "1.0.0").build();
    let form = multipart::Form::new().part("chartfile", multipart::Part::bytes(archive.clone()).file_name("c.tgz"));
    let uploaded = client.post(server.api("/spaces/team/charts")).multipart(form).send().unwrap();
    assert_eq!(uploaded.status(), 201, "{:?}", uploaded.text());
    let downloaded = client.get(server.api("/spaces/team/charts/web/versions/1.0.0")).send().unwrap();
    assert_eq!(downloaded.status(), 200);
    assert_eq!(downloaded.bytes().unwrap().to_vec(), archive);

    // Plain HTTP on the TLS port gets no answer; neither does a client that does not
    // trust the certificate. The server keeps serving.
    let plain = crate::common::client().get(format!("http://{}/health", address(&server))).send();
    assert!(plain.is_err(), "plain HTTP was answered: {:?}", plain.map(|r| r.status()));
    assert!(!trusted_by(&server, &Pki::new("stranger")));
    assert!(trusted_by(&server, &pki));
}

/// A client that opens a connection and never starts the handshake is closed after the
/// header timeout, even with no keep-alive timeout to close it as idle.
#[test]
fn a_silent_connection_is_closed_after_the_header_timeout() {
    let dir = TempDir::new("tls-silent");
    let pki = Pki::new("silent");
    let server = https_server(&pki.write(&dir.path), &["--header-timeout", "1s", "--keepalive-timeout", "0"]);
    let mut silent = TcpStream::connect(address(&server)).unwrap();
    // A bound for the test only: the server closes the connection long before it.
    silent.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buffer = [0u8; 64];
    let read = silent.read(&mut buffer);
    assert!(
        matches!(read, Ok(0)) || read.as_ref().is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "the server kept a connection that never started its handshake: {read:?}"
    );
    assert!(trusted_by(&server, &pki));
}

/// With one connection slot, a connection stuck before its handshake makes room for a
/// new one instead of locking it out.
#[test]
fn a_connection_stuck_in_its_handshake_makes_room_at_the_limit() {
    let dir = TempDir::new("tls-room");
    let pki = Pki::new("room");
    let limits = ["--max-connections", "1", "--header-timeout", "0", "--keepalive-timeout", "0"];
    let server = https_server(&pki.write(&dir.path), &limits);
    let _stuck = TcpStream::connect(address(&server)).unwrap();
    assert!(trusted_by(&server, &pki));
}

#[test]
fn helm_uses_https_repositories_and_registries_with_a_ca_file() {
    let dir = TempDir::new("tls-helm");
    let pki = Pki::new("helm");
    let files = pki.write(&dir.path);
    let server = https_server(&files, &[]);
    let address = address(&server);
    let archive = ChartBuilder::new("web", "1.0.0").build();
    let form = multipart::Form::new().part("chartfile", multipart::Part::bytes(archive.clone()).file_name("c.tgz"));
    assert_eq!(pki.client().post(server.api("/spaces/apps/charts")).multipart(form).send().unwrap().status(), 201);

    for major in [3, 4] {
        let Some(helm) = Helm::new(major, "tls-helm") else { continue };
        let out = TempDir::new("tls-pull");
        let out_dir = out.path.to_str().unwrap();

        // Helm repository over HTTPS.
        let repo = format!("{}/apps", server.base);
        let refused = helm.fails(&["repo", "add", "apps", &repo]);
        assert!(refused.contains("certificate"), "helm v{major} trusted an unknown CA: {refused}");
        helm.run(&["repo", "add", "apps", &repo, "--ca-file", &files.ca]);
        helm.run(&["pull", "apps/web", "--version", "1.0.0", "-d", out_dir]);
        assert_eq!(std::fs::read(out.path.join("web-1.0.0.tgz")).unwrap(), archive, "helm v{major}");

        // OCI over HTTPS, without --plain-http. Helm v3's registry client always speaks
        // plain HTTP to a registry on a loopback address (its resolver's default for
        // localhost), whatever the flags; only v4 can be tested here.
        if major == 3 {
            continue;
        }
        let space = format!("oci{major}");
        let chart = ChartBuilder::new("api", "2.0.0").build();
        let file = write_file(&dir.path, &format!("push{major}/api-2.0.0.tgz"), &chart);
        helm.run(&["push", &file, &format!("oci://{address}/{space}"), "--ca-file", &files.ca]);
        let reference = format!("oci://{address}/{space}/api");
        helm.run(&["pull", &reference, "--version", "2.0.0", "-d", out_dir, "--ca-file", &files.ca]);
        assert_eq!(std::fs::read(out.path.join("api-2.0.0.tgz")).unwrap(), chart, "helm v{major}");
    }
}

/// New certificate files (from another CA) are served to new connections once the
/// server has seen them change; a pair that does not belong together is not taken, and
/// the server keeps serving the last good pair.
#[test]
fn changed_certificate_files_are_reloaded() {
    let dir = TempDir::new("tls-reload");
    let (first, second, third) = (Pki::new("first"), Pki::new("second"), Pki::new("third"));
    let files = first.write(&dir.path);
    let server = https_server(&files, &[]);
    assert!(trusted_by(&server, &first));
    assert!(!trusted_by(&server, &second));

    second.write(&dir.path);
    wait_until("the second certificate is served", || trusted_by(&server, &second));
    assert!(!trusted_by(&server, &first), "new connections get the new certificate only");

    // A key that does not belong to the certificate: logged, and the second pair kept.
    write_file(&dir.path, "tls.crt", third.certificate.as_bytes());
    // Several checks of the files happen meanwhile; none may take the broken pair.
    for _ in 0..6 {
        std::thread::sleep(Duration::from_secs(1));
        assert!(trusted_by(&server, &second), "the last good pair is still served");
    }
    write_file(&dir.path, "tls.key", third.key.as_bytes());
    wait_until("the third certificate is served", || trusted_by(&server, &third));
}

/// Besides PKCS#8, keys in the RSA (PKCS#1) and EC (SEC1) PEM forms that openssl and
/// older tools write are served.
#[test]
fn rsa_and_ec_keys_in_their_traditional_forms_are_served() {
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("openssl is not installed; skipping");
        return;
    }
    let dir = TempDir::new("tls-keys");
    let openssl = |args: &[&str]| {
        run(Command::new("openssl").args(args).current_dir(&dir.path));
    };
    openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "rsa8.pem"]);
    openssl(&["pkey", "-in", "rsa8.pem", "-traditional", "-out", "rsa1.pem"]);
    let ec = KeyPair::generate().unwrap();
    write_file(&dir.path, "ec8.pem", ec.serialize_pem().as_bytes());
    openssl(&["pkey", "-in", "ec8.pem", "-traditional", "-out", "sec1.pem"]);
    let read = |name: &str| std::fs::read_to_string(dir.path.join(name)).unwrap();
    let rsa = KeyPair::from_pkcs8_pem_and_sign_algo(&read("rsa8.pem"), &rcgen::PKCS_RSA_SHA256).unwrap();
    for (name, key, traditional, header) in
        [("rsa", rsa, "rsa1.pem", "BEGIN RSA PRIVATE KEY"), ("ec", ec, "sec1.pem", "BEGIN EC PRIVATE KEY")]
    {
        let pki = Pki::with_key(name, key);
        let folder = dir.path.join(name);
        let mut files = pki.write(&folder);
        let key_pem = read(traditional);
        assert!(key_pem.contains(header), "{key_pem}");
        files.key = write_file(&folder, "traditional.key", key_pem.as_bytes());
        let server = https_server(&files, &[]);
        assert!(trusted_by(&server, &pki), "{name}");
    }
}

/// Polls `done` (a bounded wait, not a timing assertion).
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 60s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn missing_or_broken_files_stop_the_server_at_startup() {
    let dir = TempDir::new("tls-bad");
    let pki = Pki::new("bad");
    let files = pki.write(&dir.path);
    let other = Pki::new("other");
    let other_key = write_file(&dir.path, "other.key", other.key.as_bytes());
    let garbage = write_file(&dir.path, "garbage.pem", b"not a certificate\n");
    let missing = dir.path.join("missing.key");
    let missing = missing.to_str().unwrap();
    let data = dir.path.join("data");
    let serve = |certificate: &str, key: &str| {
        let mut command = Command::new(binary());
        command.args(["serve", "--listen", "127.0.0.1:0", "--root-directory"]).arg(&data).args([
            "--tls-certificate",
            certificate,
            "--tls-key",
            key,
        ]);
        run_to_exit(command)
    };
    let cases = [
        (files.certificate.as_str(), missing, "tls.key"),
        (garbage.as_str(), files.key.as_str(), "tls.certificate"),
        (files.certificate.as_str(), garbage.as_str(), "tls.key"),
        (files.certificate.as_str(), other_key.as_str(), "tls.key"),
        (files.key.as_str(), files.key.as_str(), "tls.certificate"),
    ];
    for (certificate, key, named) in cases {
        let output = serve(certificate, key);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{certificate} {key}: {stderr}");
        let line = stderr.lines().last().unwrap_or_default();
        assert!(line.starts_with(&format!("chartyard: {named}:")), "{certificate} {key}: {stderr}");
    }

    // One of the two alone is a configuration error.
    let mut command = Command::new(binary());
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--root-directory"])
        .arg(&data)
        .args(["--tls-certificate", &files.certificate]);
    let output = run_to_exit(command);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("tls.key"), "{stderr}");
}
