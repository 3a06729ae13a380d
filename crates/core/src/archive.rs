//! Helm chart archives (`.tgz`): loading them the way Helm's loader does, safely, and
//! rewriting single files inside them.
//!
//! Archives come from untrusted clients, so loading never touches the disk and is bounded
//! everywhere: total decompressed bytes, bytes per file, entry count, subchart nesting and
//! what the YAML files expand to, each with one budget for the whole archive (nested
//! archives and subcharts included). Links, devices, absolute paths and `..` are refused
//! outright, and the tar stream is read by Go's rules (see `untar`), so that the files
//! validated here are the files Helm installs.

use std::collections::BTreeMap;
use std::io::{self, Read};

use flate2::read::MultiGzDecoder;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::RegistryError;
use crate::error::echo;
use crate::metadata::{API_VERSION_V1, ChartMetadata, Dependency, MetadataTree, check_key_case};
use crate::yaml::{YamlBudget, from_yaml, from_yaml_within};

mod untar;

use untar::{Kind, TarReader};

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
    /// YAML nodes that the Chart.yaml, values.yaml and requirements.yaml files of the chart
    /// and of every subchart may expand to, all together, aliases counted expanded.
    pub max_yaml_nodes: u64,
    /// Bytes of YAML scalar text those files may expand to, all together.
    pub max_yaml_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_decompressed_bytes: 100 * 1024 * 1024,
            max_file_bytes: 5 * 1024 * 1024,
            max_entries: 20_000,
            max_depth: 16,
            max_yaml_nodes: 1_000_000,
            max_yaml_bytes: 16 * 1024 * 1024,
        }
    }
}

/// What is left of the [`Limits`] while an archive loads. One budget covers an archive
/// and everything nested in it; a caller that loads several archives for one answer (an
/// orchestration) shares one budget between them.
#[derive(Debug, Clone)]
pub struct LoadBudget {
    decompressed_left: u64,
    entries_left: usize,
    yaml: YamlBudget,
}

impl LoadBudget {
    pub fn new(limits: &Limits) -> Self {
        Self {
            decompressed_left: limits.max_decompressed_bytes,
            entries_left: limits.max_entries,
            yaml: YamlBudget::new(limits.max_yaml_nodes, limits.max_yaml_bytes),
        }
    }

    /// Spends `bytes` of the decompressed budget on data held outside an archive.
    fn charge(&mut self, bytes: u64, limits: &Limits) -> Result<(), RegistryError> {
        if bytes > self.decompressed_left {
            return Err(invalid(format!("decompressed size exceeds {} bytes", limits.max_decompressed_bytes)));
        }
        self.decompressed_left -= bytes;
        Ok(())
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
    /// Decompressed bytes of the archive the chart was loaded from, nested archives
    /// included (0 for a subchart that is a folder of its parent).
    pub unpacked_size: u64,
}

impl Chart {
    /// The seed's nested metadata: this chart's fields with its subcharts as `dependencies`.
    pub fn metadata_tree(&self) -> MetadataTree {
        MetadataTree(self.metadata.clone().with_dependencies(self.subchart_trees()))
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
    load_within(archive, limits, &mut LoadBudget::new(limits))
}

/// Loads and validates a chart archive, spending from `budget`. The chart's coalesced
/// values must fit the YAML budget too, so that every answer derived from a stored chart
/// is bounded.
pub fn load_within(archive: &[u8], limits: &Limits, budget: &mut LoadBudget) -> Result<Chart, RegistryError> {
    let chart = load_nested(archive, limits, budget, 0)?;
    crate::values::coalesce(&chart, limits)?;
    Ok(chart)
}

fn load_nested(archive: &[u8], limits: &Limits, budget: &mut LoadBudget, depth: usize) -> Result<Chart, RegistryError> {
    let before = budget.decompressed_left;
    let files = read_files(archive, limits, budget)?;
    let mut chart = build_chart(&view(&files), limits, budget, depth)?;
    chart.unpacked_size = before - budget.decompressed_left;
    Ok(chart)
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
            return Err(io::Error::other(format!("decompressed size exceeds {} bytes", self.limit)));
        }
        *self.left -= n as u64;
        Ok(n)
    }
}

/// The tar entries inside a gzip archive. Every gzip member is read, as Go's reader (and
/// so Helm) does, so that the registry sees the chart Helm will install.
fn tar_reader<'a>(
    archive: &'a [u8],
    left: &'a mut u64,
    entries_left: usize,
    limits: &Limits,
) -> TarReader<LimitedReader<'a, MultiGzDecoder<&'a [u8]>>> {
    let limit = limits.max_decompressed_bytes;
    TarReader::new(LimitedReader { inner: MultiGzDecoder::new(archive), left, limit }, entries_left, limits.max_entries)
}

/// Reads what follows the tar's end marker, so that a corrupt or missing gzip trailer
/// (CRC, length) is noticed rather than silently accepted.
fn check_trailer<R: Read>(tar: TarReader<R>) -> Result<(), RegistryError> {
    io::copy(&mut tar.into_inner(), &mut io::sink())
        .map(|_| ())
        .map_err(|e| invalid(format!("not a gzipped tar archive: {e}")))
}

/// A chart's files: paths inside the chart folder, and their bytes.
pub type Files = BTreeMap<String, Vec<u8>>;

/// Chart files borrowed from where they are held.
type View<'a> = BTreeMap<&'a str, &'a [u8]>;

fn view(files: &Files) -> View<'_> {
    files.iter().map(|(path, data)| (path.as_str(), data.as_slice())).collect()
}

/// A chart as files, with the chart they make: what composing new charts works on.
#[derive(Debug, Clone)]
pub struct ChartFiles {
    pub files: Files,
    pub chart: Chart,
}

/// Loads an archive's files and validates the chart they make.
pub fn load_files(archive: &[u8], limits: &Limits) -> Result<ChartFiles, RegistryError> {
    load_files_within(archive, limits, &mut LoadBudget::new(limits))
}

/// Loads an archive's files and validates the chart they make, spending from `budget`.
pub fn load_files_within(
    archive: &[u8],
    limits: &Limits,
    budget: &mut LoadBudget,
) -> Result<ChartFiles, RegistryError> {
    let before = budget.decompressed_left;
    let files = read_files(archive, limits, budget)?;
    let mut chart = build_chart(&view(&files), limits, budget, 0)?;
    chart.unpacked_size = before - budget.decompressed_left;
    Ok(ChartFiles { files, chart })
}

impl ChartFiles {
    /// The chart's own files, without its subcharts.
    pub fn own_files(&self) -> impl Iterator<Item = (&String, &Vec<u8>)> {
        self.files.iter().filter(|(path, _)| !path.starts_with("charts/"))
    }

    /// The subchart named `name` (and of `version`, when given) under `charts/`, as a
    /// folder or as an archive. Its files are taken out of this chart's (spending from
    /// `budget`); its chart was validated when this one was loaded.
    pub fn subchart(
        &self,
        name: &str,
        version: Option<&str>,
        limits: &Limits,
        budget: &mut LoadBudget,
    ) -> Result<Option<ChartFiles>, RegistryError> {
        let files = view(&self.files);
        let sources = subchart_sources(&files)?;
        // `build_chart` made `chart.subcharts` from these same sources, in this order.
        for (source, chart) in sources.values().zip(&self.chart.subcharts) {
            if chart.metadata.name != name || version.is_some_and(|v| chart.metadata.version != v) {
                continue;
            }
            let files = match source {
                Source::Folder(files) => {
                    budget.charge(files.values().map(|data| data.len() as u64).sum(), limits)?;
                    files.iter().map(|(path, data)| (path.to_string(), data.to_vec())).collect()
                }
                Source::Archive(archive) => read_files(archive, limits, budget)?,
            };
            return Ok(Some(ChartFiles { files, chart: chart.clone() }));
        }
        Ok(None)
    }
}

/// Packs chart files into an archive under `folder/`, as `helm package` lays them out.
pub fn package(folder: &str, files: &Files) -> Result<Vec<u8>, RegistryError> {
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut builder = tar::Builder::new(encoder);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    for (path, data) in files {
        append_file(&mut builder, &format!("{folder}/{path}"), data, 0o644, now).map_err(RegistryError::internal)?;
    }
    builder.into_inner().and_then(|encoder| encoder.finish()).map_err(RegistryError::internal)
}

/// Where a tar entry lands in the chart, Helm style: the first path segment is the chart
/// folder whatever its name (`./Chart.yaml` is fine), and the rest must stay inside it.
fn chart_path(raw: &str) -> Result<String, RegistryError> {
    let raw = raw.replace('\\', "/");
    let shown = echo(&raw);
    let is_drive = |p: &str| p.len() >= 2 && p.as_bytes()[1] == b':' && p.as_bytes()[0].is_ascii_alphabetic();
    let mut parts = raw.split('/');
    let first = parts.next().unwrap_or_default();
    if raw.starts_with('/') {
        return Err(invalid(format!("absolute path {shown:?}")));
    }
    if is_drive(first) {
        return Err(invalid(format!("path {shown:?} has a drive letter")));
    }
    let mut rest = Vec::new();
    for part in parts {
        match part {
            "" | "." => {}
            ".." => {
                return Err(invalid(format!("path {shown:?} references a parent directory")));
            }
            p if rest.is_empty() && is_drive(p) => {
                return Err(invalid(format!("path {shown:?} has a drive letter")));
            }
            p => rest.push(p),
        }
    }
    if first == ".." {
        return Err(invalid(format!("path {shown:?} references a parent directory")));
    }
    match rest.is_empty() {
        true if first == "Chart.yaml" => Err(invalid("Chart.yaml is not inside a chart folder")),
        true => Err(invalid(format!("{shown:?} is outside the chart folder"))),
        false => Ok(rest.join("/")),
    }
}

/// Files Helm's loader reads by unmarshalling every copy into the same metadata, so
/// that two copies in one archive merge field by field. Only one copy is unambiguous.
fn is_merged_by_helm(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name == "Chart.yaml" || name == "requirements.yaml"
}

fn read_files(archive: &[u8], limits: &Limits, budget: &mut LoadBudget) -> Result<Files, RegistryError> {
    let entries_left = budget.entries_left;
    let mut tar = tar_reader(archive, &mut budget.decompressed_left, entries_left, limits);
    let mut files = Files::new();
    while let Some(header) = tar.next_entry()? {
        if header.kind != Kind::File {
            continue;
        }
        let path = chart_path(&header.path)?;
        if header.size > limits.max_file_bytes {
            return Err(invalid(format!("{} is larger than {} bytes", echo(&path), limits.max_file_bytes)));
        }
        let data = tar.read_data(limits.max_file_bytes)?;
        // Helm keeps the last copy of any other file, as this map does.
        if is_merged_by_helm(&path) && files.contains_key(&path) {
            return Err(invalid(format!("{} appears twice; Helm would merge the copies into one chart", echo(&path))));
        }
        files.insert(path, data);
    }
    let entries_left = tar.headers_left();
    check_trailer(tar)?;
    budget.entries_left = entries_left;
    Ok(files)
}

/// A subchart in a chart's `charts/` folder.
enum Source<'a> {
    Folder(View<'a>),
    Archive(&'a [u8]),
}

/// The subcharts under `charts/`, grouped as Helm's loader groups them: by the first path
/// segment after `charts/`, skipping names that start with `.` or `_` and provenance
/// files. A name ending in `.tgz` is an archive; anything else is a folder, so a stray
/// file such as `charts/README.md` is a subchart without Chart.yaml, as Helm sees it.
fn subchart_sources<'a>(files: &View<'a>) -> Result<BTreeMap<&'a str, Source<'a>>, RegistryError> {
    let mut sources: BTreeMap<&'a str, Source<'a>> = BTreeMap::new();
    for (&path, &data) in files {
        let Some(inside) = path.strip_prefix("charts/") else {
            continue;
        };
        if inside.ends_with(".prov") {
            continue;
        }
        let (name, rest) = match inside.split_once('/') {
            Some((name, rest)) => (name, Some(rest)),
            None => (inside, None),
        };
        if name.starts_with(['.', '_']) {
            continue;
        }
        match (name.ends_with(".tgz"), rest) {
            (true, None) => {
                sources.insert(name, Source::Archive(data));
            }
            (true, Some(_)) => {
                return Err(invalid(format!("charts/{} is a folder named like a chart archive", echo(name))));
            }
            (false, rest) => {
                let entry = sources.entry(name).or_insert_with(|| Source::Folder(View::new()));
                if let (Source::Folder(folder), Some(rest)) = (entry, rest) {
                    folder.insert(rest, data);
                }
            }
        }
    }
    Ok(sources)
}

/// What `requirements.yaml` may hold. Helm unmarshals it into the chart's metadata (of
/// v1 and v2 charts alike), so any other key would change a Chart.yaml field behind the
/// registry's back: only `dependencies` is accepted.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Requirements {
    /// Absent: keep Chart.yaml's; `null`: none; a list: these.
    #[serde(default, deserialize_with = "present")]
    dependencies: Option<Option<Vec<Dependency>>>,
}

fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Option<Vec<Dependency>>>, D::Error> {
    serde::Deserialize::deserialize(deserializer).map(Some)
}

fn build_chart(
    files: &View<'_>,
    limits: &Limits,
    budget: &mut LoadBudget,
    depth: usize,
) -> Result<Chart, RegistryError> {
    if depth > limits.max_depth {
        return Err(invalid(format!("subcharts nest deeper than {}", limits.max_depth)));
    }
    let chart_yaml = files.get("Chart.yaml").ok_or_else(|| invalid("Chart.yaml file is missing"))?;
    let mut metadata: ChartMetadata = from_yaml_within(chart_yaml, "Chart.yaml", &mut budget.yaml)?;
    // Measured above: parsing it again to look at its keys is within the budget.
    check_key_case(&from_yaml(chart_yaml, "Chart.yaml")?, "Chart.yaml")?;
    if metadata.api_version.is_empty() {
        // Helm's loader treats a chart without apiVersion as a v1 chart.
        metadata.api_version = API_VERSION_V1.to_string();
    }
    if let Some(requirements) = files.get("requirements.yaml") {
        let parsed: Option<Requirements> = from_yaml_within(requirements, "requirements.yaml", &mut budget.yaml)?;
        check_key_case(&from_yaml(requirements, "requirements.yaml")?, "requirements.yaml")?;
        let requirements = parsed;
        if let Some(Requirements { dependencies: Some(dependencies) }) = requirements {
            metadata.dependencies = dependencies.unwrap_or_default();
        }
    }
    metadata.validate()?;

    let values = match files.get("values.yaml") {
        None => Map::new(),
        Some(raw) => match from_yaml_within::<Option<Value>>(raw, "values.yaml", &mut budget.yaml)? {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => map,
            Some(_) => return Err(invalid("values.yaml is not a table")),
        },
    };

    let in_subchart =
        |name: &str, e: RegistryError| RegistryError::invalid(format!("subchart charts/{}: {e}", echo(name)));
    let mut subcharts = Vec::new();
    for (name, source) in subchart_sources(files)? {
        let sub = match source {
            Source::Folder(files) => build_chart(&files, limits, budget, depth + 1),
            Source::Archive(data) => load_nested(data, limits, budget, depth + 1),
        };
        subcharts.push(sub.map_err(|e| in_subchart(name, e))?);
    }
    Ok(Chart { metadata, values, subcharts, unpacked_size: 0 })
}

/// Rewrites an archive with some chart files replaced or added (paths relative to the
/// chart folder, e.g. `values.yaml`). Every other file keeps its bytes, mode and time, so
/// the result is the same chart with only those files changed. Files are written under
/// `folder/`, the layout `helm package` produces, whatever folder the original used.
pub fn rewrite(
    archive: &[u8],
    folder: &str,
    replacements: &[(&str, Vec<u8>)],
    limits: &Limits,
) -> Result<Vec<u8>, RegistryError> {
    let mut left = limits.max_decompressed_bytes;
    let mut tar = tar_reader(archive, &mut left, limits.max_entries, limits);
    let replacements: BTreeMap<&str, &Vec<u8>> = replacements.iter().map(|(p, d)| (*p, d)).collect();
    let mut replaced = std::collections::BTreeSet::new();
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut builder = tar::Builder::new(encoder);
    let broken = |e: io::Error| invalid(e.to_string());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    while let Some(header) = tar.next_entry()? {
        if header.kind != Kind::File {
            continue;
        }
        let path = chart_path(&header.path)?;
        // Every copy of a replaced file gets the new content: whichever one a reader
        // takes, it sees the change.
        let data = match replacements.get(path.as_str()) {
            Some(new) => {
                replaced.insert(path.clone());
                (*new).clone()
            }
            None => tar.read_data(limits.max_file_bytes)?,
        };
        append_file(&mut builder, &format!("{folder}/{path}"), &data, header.mode, header.mtime).map_err(broken)?;
    }
    check_trailer(tar)?;
    for (path, data) in replacements.iter().filter(|(p, _)| !replaced.contains(**p)) {
        append_file(&mut builder, &format!("{folder}/{path}"), data, 0o644, now).map_err(broken)?;
    }
    builder.into_inner().and_then(|encoder| encoder.finish()).map_err(broken)
}

/// Appends a regular file with a fresh header (no stale name prefix or link fields).
fn append_file<W: io::Write>(
    builder: &mut tar::Builder<W>,
    path: &str,
    data: &[u8],
    mode: u32,
    mtime: u64,
) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(mode);
    header.set_mtime(mtime);
    header.set_size(data.len() as u64);
    builder.append_data(&mut header, path, data)
}
