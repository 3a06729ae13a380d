//! What chartyard's tests share, in every crate: chart archives built in memory (hostile
//! ones included), temporary folders, incompressible bytes and digests. A dev-dependency
//! only; nothing here reaches the binary.

use std::io::Write;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

/// Every regular file of a gzipped tar archive, by its path in the archive.
pub fn unpack(archive: &[u8]) -> std::collections::BTreeMap<String, Vec<u8>> {
    use std::io::Read;
    let mut files = std::collections::BTreeMap::new();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().unwrap().to_string_lossy().trim_start_matches("./").to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        files.insert(path, data);
    }
    files
}

/// A directory removed when dropped.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(label: &str) -> Self {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("chartyard-test-{}-{label}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Builds chart archives for tests, including hostile ones.
pub struct ChartBuilder {
    entries: Vec<(String, Vec<u8>, tar::EntryType)>,
}

impl ChartBuilder {
    /// A minimal valid v2 chart `name-version` with a values.yaml and one template.
    pub fn new(name: &str, version: &str) -> Self {
        Self::empty()
            .file(
                &format!("{name}/Chart.yaml"),
                format!("apiVersion: v2\nname: {name}\nversion: {version}\ndescription: test chart {name}\n"),
            )
            .file(&format!("{name}/values.yaml"), "replicaCount: 1\n")
            .file(
                &format!("{name}/templates/configmap.yaml"),
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  replicas: {{ .Values.replicaCount | quote }}\n",
            )
    }

    pub fn empty() -> Self {
        Self { entries: Vec::new() }
    }

    pub fn file(mut self, path: &str, data: impl Into<Vec<u8>>) -> Self {
        self.entries.push((path.to_string(), data.into(), tar::EntryType::Regular));
        self
    }

    /// An entry of another kind (links point at `/etc/passwd`).
    pub fn entry(mut self, path: &str, data: impl Into<Vec<u8>>, kind: tar::EntryType) -> Self {
        self.entries.push((path.to_string(), data.into(), kind));
        self
    }

    /// Replaces (or adds) a file.
    pub fn with(mut self, path: &str, data: impl Into<Vec<u8>>) -> Self {
        self.entries.retain(|(p, _, _)| p != path);
        self.file(path, data)
    }

    /// The tar stream, paths written as given (`..` and absolute ones included).
    pub fn tar(&self) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data, kind) in &self.entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_mode(0o644);
            header.set_mtime(1_700_000_000);
            if kind.is_symlink() || kind.is_hard_link() {
                header.set_size(0);
                set_raw_path(&mut header, path);
                header.set_link_name("/etc/passwd").unwrap();
                header.set_cksum();
                builder.append(&header, std::io::empty()).unwrap();
            } else {
                header.set_size(data.len() as u64);
                set_raw_path(&mut header, path);
                header.set_cksum();
                builder.append(&header, data.as_slice()).unwrap();
            }
        }
        builder.into_inner().unwrap()
    }

    /// The archive: the tar stream gzip-compressed.
    pub fn build(&self) -> Vec<u8> {
        gzip(&self.tar())
    }
}

/// Writes a path into a header as-is (the tar crate's setters refuse `..` and `/`).
fn set_raw_path(header: &mut tar::Header, path: &str) {
    let name = &mut header.as_old_mut().name;
    name.fill(0);
    name[..path.len()].copy_from_slice(path.as_bytes());
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// `len` bytes no compressor shrinks (xorshift from `seed`), so that a blob or file really
/// is as large as it says.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    // Spread small seeds apart; xorshift never leaves zero.
    let mut seed = (seed ^ 0x2545_f491_4f6c_dd1d).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A valid chart whose archive is larger than `bytes`: one file of incompressible bytes.
pub fn chart_with_noise(name: &str, version: &str, bytes: usize) -> Vec<u8> {
    let archive = ChartBuilder::new(name, version).file(&format!("{name}/files/noise.bin"), noise(bytes, 1)).build();
    assert!(archive.len() > bytes, "{} bytes", archive.len());
    archive
}

/// sha256 hex of bytes.
pub fn sha256(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// `sha256:{hex}`.
pub fn digest_of(data: &[u8]) -> String {
    format!("sha256:{}", sha256(data))
}

/// The OCI descriptor of `data`.
pub fn descriptor(media_type: &str, data: &[u8]) -> serde_json::Value {
    serde_json::json!({"mediaType": media_type, "digest": digest_of(data), "size": data.len()})
}

/// Manifest bytes, pretty-printed with a trailing newline so that any re-serialization
/// by a server would show.
pub fn manifest_bytes(manifest: &serde_json::Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(manifest).expect("JSON values serialize");
    bytes.push(b'\n');
    bytes
}

/// An htpasswd line for `user` (bcrypt cost 4, so tests stay fast), made by the chartyard
/// binary at `binary` (`chartyard hash-password`).
pub fn htpasswd_line(binary: &std::path::Path, user: &str, password: &str) -> String {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(binary)
        .args(["hash-password", "--cost", "4", user])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run chartyard hash-password");
    child
        .stdin
        .as_mut()
        .expect("piped stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("write the password");
    let output = child.wait_with_output().expect("chartyard hash-password ends");
    assert!(output.status.success(), "chartyard hash-password {user} failed");
    String::from_utf8(output.stdout).expect("an htpasswd line is text")
}
