//! Chart archives built in memory for the tests.

use std::io::Write;

/// Builds a chart archive file by file.
pub struct ChartBuilder {
    files: Vec<(String, Vec<u8>)>,
}

impl ChartBuilder {
    /// A minimal valid v2 chart `name-version`.
    pub fn new(name: &str, version: &str) -> Self {
        Self { files: Vec::new() }
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

    pub fn file(mut self, path: &str, data: impl Into<Vec<u8>>) -> Self {
        self.files.push((path.to_string(), data.into()));
        self
    }

    /// Replaces (or adds) a file.
    pub fn with(mut self, path: &str, data: impl Into<Vec<u8>>) -> Self {
        self.files.retain(|(p, _)| p != path);
        self.file(path, data)
    }

    pub fn build(&self) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, data) in &self.files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(1_700_000_000);
            builder.append_data(&mut header, path, data.as_slice()).unwrap();
        }
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&builder.into_inner().unwrap()).unwrap();
        encoder.finish().unwrap()
    }
}

/// sha256 hex of bytes.
pub fn sha256(data: &[u8]) -> String {
    chartyard_core::archive::sha256_hex(data)
}

/// `sha256:{hex}`.
pub fn digest_of(data: &[u8]) -> String {
    format!("sha256:{}", sha256(data))
}

/// A valid chart whose archive is larger than `bytes`: one file of incompressible bytes.
pub fn chart_with_noise(name: &str, version: &str, bytes: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let noise: Vec<u8> = (0..bytes)
        .map(|_| {
            // xorshift64: cheap bytes gzip cannot shrink
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let archive = ChartBuilder::new(name, version).file(&format!("{name}/files/noise.bin"), noise).build();
    assert!(archive.len() > bytes, "{} bytes", archive.len());
    archive
}
