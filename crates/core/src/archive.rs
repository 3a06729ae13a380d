//! Helm chart archives (`.tgz`): loading them the way Helm's loader does, safely, and
//! rewriting single files inside them.
//!
//! Archives come from untrusted clients, so loading never touches the disk and is bounded
//! everywhere: total decompressed bytes, bytes per file, entry count, subchart nesting and
//! YAML size. Links, devices, absolute paths and `..` are refused outright.

use std::collections::BTreeMap;
use std::io::{self, Read};

use flate2::read::GzDecoder;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::RegistryError;
use crate::metadata::{API_VERSION_V1, ChartMetadata, Dependency, MetadataTree};
use crate::yaml::from_yaml;

/// Bounds on what one uploaded archive may expand to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Decompressed bytes of the archive and all archives nested in it (Helm: 100 MiB).
    pub max_decompressed_bytes: u64,
    /// Bytes of any single file (Helm: 5 MiB).
    pub max_file_bytes: u64,
    /// Tar entries, counted across nested archives.
    pub max_entries: usize,
    /// How deep subcharts may nest.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_decompressed_bytes: 100 * 1024 * 1024,
            max_file_bytes: 5 * 1024 * 1024,
            max_entries: 20_000,
            max_depth: 16,
        }
    }
}

/// A loaded chart: what the registry needs to know about an archive.
#[derive(Debug, Clone)]
pub struct Chart {
    pub metadata: ChartMetadata,
    /// The chart's own `values.yaml`, as a table (empty when absent).
    pub values: Map<String, Value>,
    /// Subcharts found under `charts/`, as folders or archives, sorted by folder name.
    pub subcharts: Vec<Chart>,
}

impl Chart {
    /// The seed's nested metadata: this chart's fields with its subcharts as `dependencies`.
    pub fn metadata_tree(&self) -> MetadataTree {
        MetadataTree(
            self.metadata
                .clone()
                .with_dependencies(self.subchart_trees()),
        )
    }

    /// The nested metadata of the subcharts.
    pub fn subchart_trees(&self) -> Vec<MetadataTree> {
        self.subcharts.iter().map(Chart::metadata_tree).collect()
    }
}

/// sha256 of the archive bytes, lower-case hex: Helm's index `digest`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn invalid(message: impl Into<String>) -> RegistryError {
    RegistryError::invalid(format!("chart archive is invalid: {}", message.into()))
}

/// Loads and validates a chart archive.
pub fn load(archive: &[u8], limits: &Limits) -> Result<Chart, RegistryError> {
    let mut budget = Budget {
        decompressed_left: limits.max_decompressed_bytes,
        entries_left: limits.max_entries,
    };
    load_nested(archive, limits, &mut budget, 0)
}

struct Budget {
    decompressed_left: u64,
    entries_left: usize,
}

fn load_nested(
    archive: &[u8],
    limits: &Limits,
    budget: &mut Budget,
    depth: usize,
) -> Result<Chart, RegistryError> {
    if depth > limits.max_depth {
        return Err(invalid(format!(
            "subcharts nest deeper than {}",
            limits.max_depth
        )));
    }
    let files = read_files(archive, limits, budget)?;
    build_chart(files, limits, budget, depth)
}

/// Counts decompressed bytes and fails once the archive's budget is spent.
struct LimitedReader<'a, R> {
    inner: R,
    left: &'a mut u64,
    limit: u64,
}

impl<R: Read> Read for LimitedReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > *self.left {
            return Err(io::Error::other(format!(
                "decompressed size exceeds {} bytes",
                self.limit
            )));
        }
        *self.left -= n as u64;
        Ok(n)
    }
}

/// One file of an archive: its path inside the chart folder and its bytes.
type Files = BTreeMap<String, Vec<u8>>;

/// Where a tar entry lands in the chart, Helm style: the first path segment is the chart
/// folder whatever its name (`./Chart.yaml` is fine), and the rest must stay inside it.
/// `Ok(None)` means "not a chart file" (the folder entry itself).
fn chart_path(raw: &str) -> Result<Option<String>, RegistryError> {
    let raw = raw.replace('\\', "/");
    if raw.starts_with('/') {
        return Err(invalid(format!("absolute path {raw:?}")));
    }
    let mut parts = raw.split('/');
    let first = parts.next().unwrap_or_default();
    let mut rest = Vec::new();
    for part in parts {
        match part {
            "" | "." => {}
            ".." => {
                return Err(invalid(format!(
                    "path {raw:?} references a parent directory"
                )));
            }
            p if p.len() >= 2
                && p.as_bytes()[1] == b':'
                && p.as_bytes()[0].is_ascii_alphabetic()
                && rest.is_empty() =>
            {
                return Err(invalid(format!("path {raw:?} has a drive letter")));
            }
            p => rest.push(p),
        }
    }
    if first == ".." {
        return Err(invalid(format!(
            "path {raw:?} references a parent directory"
        )));
    }
    if rest.is_empty() {
        if first == "Chart.yaml" {
            return Err(invalid("Chart.yaml is not inside a chart folder"));
        }
        return Ok(None);
    }
    Ok(Some(rest.join("/")))
}

fn read_files(
    archive: &[u8],
    limits: &Limits,
    budget: &mut Budget,
) -> Result<Files, RegistryError> {
    let limit = limits.max_decompressed_bytes;
    let reader = LimitedReader {
        inner: GzDecoder::new(archive),
        left: &mut budget.decompressed_left,
        limit,
    };
    let mut tar = tar::Archive::new(reader);
    let mut files = Files::new();
    let entries = tar
        .entries()
        .map_err(|e| invalid(format!("not a gzipped tar archive: {e}")))?;
    let mut entries_left = budget.entries_left;
    for entry in entries {
        let mut entry = entry.map_err(|e| invalid(format!("not a gzipped tar archive: {e}")))?;
        if entries_left == 0 {
            return Err(invalid(format!("more than {} entries", limits.max_entries)));
        }
        entries_left -= 1;
        let kind = entry.header().entry_type();
        let raw_path = String::from_utf8(entry.path_bytes().into_owned())
            .map_err(|_| invalid("an entry's path is not UTF-8"))?;
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            tar::EntryType::Directory | tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => {
                continue;
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                return Err(invalid(format!(
                    "{raw_path:?} is a link; charts may only hold regular files"
                )));
            }
            other => {
                return Err(invalid(format!(
                    "{raw_path:?} is a {other:?} entry; charts may only hold regular files"
                )));
            }
        }
        let Some(path) = chart_path(&raw_path)? else {
            continue;
        };
        let size = entry.header().size().map_err(|e| invalid(e.to_string()))?;
        if size > limits.max_file_bytes {
            return Err(invalid(format!(
                "{path} is larger than {} bytes",
                limits.max_file_bytes
            )));
        }
        let mut data = Vec::with_capacity(size as usize);
        entry
            .by_ref()
            .take(limits.max_file_bytes + 1)
            .read_to_end(&mut data)
            .map_err(|e| invalid(format!("reading {path}: {e}")))?;
        if data.len() as u64 > limits.max_file_bytes {
            return Err(invalid(format!(
                "{path} is larger than {} bytes",
                limits.max_file_bytes
            )));
        }
        files.insert(path, data);
    }
    budget.entries_left = entries_left;
    Ok(files)
}

fn build_chart(
    mut files: Files,
    limits: &Limits,
    budget: &mut Budget,
    depth: usize,
) -> Result<Chart, RegistryError> {
    let chart_yaml = files
        .remove("Chart.yaml")
        .ok_or_else(|| invalid("Chart.yaml file is missing"))?;
    let mut metadata: ChartMetadata = from_yaml(&chart_yaml, "Chart.yaml")?;
    if metadata.api_version.is_empty() {
        // Helm's loader treats a chart without apiVersion as a v1 chart.
        metadata.api_version = API_VERSION_V1.to_string();
    }
    if metadata.api_version == API_VERSION_V1
        && let Some(requirements) = files.remove("requirements.yaml")
    {
        #[derive(serde::Deserialize)]
        struct Requirements {
            #[serde(default)]
            dependencies: Vec<Dependency>,
        }
        let requirements: Option<Requirements> = from_yaml(&requirements, "requirements.yaml")?;
        metadata.dependencies = requirements.map(|r| r.dependencies).unwrap_or_default();
    }
    metadata.validate()?;

    let values = match files.remove("values.yaml") {
        None => Map::new(),
        Some(raw) => match from_yaml::<Option<Value>>(&raw, "values.yaml")? {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => map,
            Some(_) => return Err(invalid("values.yaml is not a table")),
        },
    };

    // Group charts/<name>/... folders and charts/<name>.tgz archives as Helm does.
    let mut folders: BTreeMap<String, Files> = BTreeMap::new();
    let mut archives: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (path, data) in files {
        let Some(inside) = path.strip_prefix("charts/") else {
            continue;
        };
        match inside.split_once('/') {
            Some((name, rest)) if !name.starts_with(['.', '_']) => {
                folders
                    .entry(name.to_string())
                    .or_default()
                    .insert(rest.to_string(), data);
            }
            None if inside.ends_with(".tgz") && !inside.starts_with(['.', '_']) => {
                archives.insert(inside.to_string(), data);
            }
            _ => {}
        }
    }
    let mut subcharts = Vec::new();
    let mut keyed: BTreeMap<String, Chart> = BTreeMap::new();
    for (name, files) in folders {
        let sub = build_chart(files, limits, budget, depth + 1).map_err(|e| {
            RegistryError::invalid(format!("subchart charts/{name}: {}", message(&e)))
        })?;
        keyed.insert(name, sub);
    }
    for (name, data) in archives {
        let sub = load_nested(&data, limits, budget, depth + 1).map_err(|e| {
            RegistryError::invalid(format!("subchart charts/{name}: {}", message(&e)))
        })?;
        keyed.insert(name, sub);
    }
    subcharts.extend(keyed.into_values());
    Ok(Chart {
        metadata,
        values,
        subcharts,
    })
}

fn message(e: &RegistryError) -> String {
    e.to_string()
}

/// Rewrites an archive with some chart files replaced or added (paths relative to the
/// chart folder, e.g. `values.yaml`). Every other file is copied with its header, so the
/// result is the same chart with only those files changed. The files are written under
/// `folder/`, the layout `helm package` produces, whatever folder the original used.
pub fn rewrite(
    archive: &[u8],
    folder: &str,
    replacements: &[(&str, Vec<u8>)],
    limits: &Limits,
) -> Result<Vec<u8>, RegistryError> {
    let mut left = limits.max_decompressed_bytes;
    let reader = LimitedReader {
        inner: GzDecoder::new(archive),
        left: &mut left,
        limit: limits.max_decompressed_bytes,
    };
    let mut tar = tar::Archive::new(reader);
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut builder = tar::Builder::new(encoder);
    let mut pending: BTreeMap<&str, &Vec<u8>> = replacements.iter().map(|(p, d)| (*p, d)).collect();
    let broken = |e: io::Error| invalid(e.to_string());
    for entry in tar.entries().map_err(broken)? {
        let mut entry = entry.map_err(broken)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(path) = chart_path(&raw_path)? else {
            continue;
        };
        let data = match pending.remove(path.as_str()) {
            Some(new) => new.clone(),
            None => {
                let mut data = Vec::new();
                entry.read_to_end(&mut data).map_err(broken)?;
                data
            }
        };
        let mut header = entry.header().clone();
        header.set_size(data.len() as u64);
        builder
            .append_data(&mut header, format!("{folder}/{path}"), data.as_slice())
            .map_err(broken)?;
    }
    for (path, data) in pending {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(data.len() as u64);
        header.set_mtime(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        );
        builder
            .append_data(&mut header, format!("{folder}/{path}"), data.as_slice())
            .map_err(broken)?;
    }
    let encoder = builder.into_inner().map_err(broken)?;
    encoder.finish().map_err(broken)
}
