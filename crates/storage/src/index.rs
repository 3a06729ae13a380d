//! Per-space repository indexes, kept in memory and updated entry by entry.
//!
//! An index is built once per space from the version records (never from archives), then
//! every write through this registry inserts or removes single entries. The full
//! `index.yaml` is assembled from pre-rendered fragments when first asked for after a
//! change, and served from those ready bytes until the next change.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use chartyard_core::RegistryError;
use chartyard_core::index;
use chartyard_core::names::compare_versions;
use chartyard_core::record::VersionRecord;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::cache::WeightedLru;

/// A version string ordered by SemVer precedence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VersionOrder(pub String);

impl Ord for VersionOrder {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_versions(&self.0, &other.0)
    }
}

impl PartialOrd for VersionOrder {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// One version in the index: its record (shared with the record cache) and its entry
/// pre-rendered as YAML.
struct IndexedVersion {
    chart: String,
    record: Arc<VersionRecord>,
    yaml: String,
}

impl IndexedVersion {
    fn entry(&self) -> Map<String, Value> {
        index::entry(&self.record, index::archive_url(&self.chart, &self.record.metadata.version))
    }
}

/// The ready bytes of an index.
pub struct RenderedIndex {
    pub yaml: Bytes,
    /// Changes with every change of the index, and between processes.
    pub etag: String,
    generated: String,
    yaml_gzip: OnceLock<Bytes>,
    /// `index.json`, made on first request: few clients ask for it.
    json: OnceLock<Bytes>,
}

impl RenderedIndex {
    /// `index.json`; present when the index was fetched with `SpaceIndex::rendered_json`.
    pub fn json(&self) -> Bytes {
        self.json.get().cloned().unwrap_or_default()
    }

    /// `index.yaml` gzip-compressed, made on first request.
    pub fn yaml_gzip(&self) -> Bytes {
        self.yaml_gzip
            .get_or_init(|| {
                use std::io::Write;
                let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                let _ = encoder.write_all(&self.yaml);
                encoder.finish().unwrap_or_default().into()
            })
            .clone()
    }
}

/// The index of one generation of a space.
pub(crate) struct SpaceIndex {
    pub generation: String,
    charts: BTreeMap<String, BTreeMap<VersionOrder, IndexedVersion>>,
    /// Estimated bytes held: see [`SpaceIndex::weight`].
    weight: usize,
    revision: u64,
    rendered: Option<Arc<RenderedIndex>>,
}

impl SpaceIndex {
    pub fn new(generation: String) -> Self {
        Self { generation, charts: BTreeMap::new(), weight: 0, revision: 0, rendered: None }
    }

    /// Roughly the bytes this index holds: per version its YAML fragment, its share of
    /// the rendered index, and its parsed record (about twice the fragment); the record is
    /// shared with the record cache, so the estimate errs high.
    pub fn weight(&self) -> usize {
        512 + self.weight
    }

    fn version_weight(version: &IndexedVersion) -> usize {
        4 * version.yaml.len() + version.chart.len() + 256
    }

    /// Adds or replaces a version's entry; the same record again changes nothing.
    pub fn insert(&mut self, chart: &str, version: &str, record: &Arc<VersionRecord>) -> Result<(), RegistryError> {
        let key = VersionOrder(version.to_string());
        if self
            .charts
            .get(chart)
            .and_then(|versions| versions.get(&key))
            .is_some_and(|v| Arc::ptr_eq(&v.record, record))
        {
            return Ok(());
        }
        let yaml = index::entry_yaml(&index::entry(record, index::archive_url(chart, version)))?;
        let indexed = IndexedVersion { chart: chart.to_string(), record: record.clone(), yaml };
        self.weight += Self::version_weight(&indexed);
        if let Some(replaced) = self.charts.entry(chart.to_string()).or_default().insert(key, indexed) {
            self.weight -= Self::version_weight(&replaced);
        }
        self.changed();
        Ok(())
    }

    /// Removes a version's entry, if it has one; a chart without versions goes too.
    pub fn remove(&mut self, chart: &str, version: &str) {
        let Some(versions) = self.charts.get_mut(chart) else {
            return;
        };
        let Some(removed) = versions.remove(&VersionOrder(version.to_string())) else {
            return;
        };
        self.weight -= Self::version_weight(&removed);
        if versions.is_empty() {
            self.charts.remove(chart);
        }
        self.changed();
    }

    fn changed(&mut self) {
        self.revision += 1;
        self.rendered = None;
    }

    /// The entries of every chart, newest version first.
    pub fn entries(&self) -> Vec<(String, Vec<Map<String, Value>>)> {
        self.charts
            .iter()
            .map(|(name, versions)| (name.clone(), versions.values().rev().map(IndexedVersion::entry).collect()))
            .collect()
    }

    /// The entries of one chart, newest version first.
    pub fn chart_entries(&self, chart: &str) -> Option<Vec<Map<String, Value>>> {
        self.charts.get(chart).map(|versions| versions.values().rev().map(IndexedVersion::entry).collect())
    }

    /// The ready bytes, assembled if anything changed since the last time. The ETag is
    /// derived from the entries alone (not from the `generated` time or the process), so
    /// every replica holding the same versions answers the same weak ETag.
    pub fn rendered(&mut self) -> Arc<RenderedIndex> {
        if let Some(rendered) = &self.rendered {
            return rendered.clone();
        }
        let generated = humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string();
        let charts = self.charts.iter().map(|(name, versions)| {
            (name.as_str(), versions.values().rev().map(|v| v.yaml.as_str()).collect::<Vec<_>>())
        });
        let yaml = index::index_yaml(&generated, charts.clone());
        let mut digest = Sha256::new();
        for (name, fragments) in charts {
            digest.update(name.as_bytes());
            digest.update(b"\0");
            for fragment in fragments {
                digest.update(fragment.as_bytes());
                digest.update(b"\0");
            }
        }
        let hex: String = digest.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect();
        let rendered = Arc::new(RenderedIndex {
            yaml: yaml.into(),
            etag: format!("W/\"{hex}\""),
            generated,
            yaml_gzip: OnceLock::new(),
            json: OnceLock::new(),
        });
        self.rendered = Some(rendered.clone());
        rendered
    }

    /// The ready bytes with `index.json` made too.
    pub fn rendered_json(&mut self) -> Arc<RenderedIndex> {
        let rendered = self.rendered();
        rendered.json.get_or_init(|| index::index_json(&rendered.generated, self.entries()).into());
        rendered
    }
}

/// A space's index, loaded on first use, behind the lock that orders the writes to it.
pub(crate) type IndexSlot = Arc<tokio::sync::Mutex<Option<SpaceIndex>>>;

/// What a slot weighs while its index is not loaded.
const EMPTY_SLOT_WEIGHT: usize = 256;

/// The slots of spaces' indexes, least recently used first out; one in use is never
/// evicted.
pub(crate) struct Indexes {
    slots: Mutex<WeightedLru<String, IndexSlot>>,
}

impl Indexes {
    pub fn new(cache_bytes: usize) -> Self {
        Self { slots: Mutex::new(WeightedLru::new(cache_bytes, |slot| Arc::strong_count(slot) > 1)) }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, WeightedLru<String, IndexSlot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many slots are held, and their weight.
    pub fn stats(&self) -> (usize, usize) {
        let slots = self.slots();
        (slots.len(), slots.weight())
    }

    /// The slot of a space's index if one is held; it stays held while the answer lives.
    pub fn held(&self, space: &str) -> Option<IndexSlot> {
        self.slots().get(&space.to_string()).cloned()
    }

    /// The slot of a space's index, made (empty) if none is held.
    pub fn slot(&self, space: &str) -> IndexSlot {
        let mut slots = self.slots();
        if let Some(slot) = slots.get(&space.to_string()) {
            return slot.clone();
        }
        let slot = IndexSlot::default();
        slots.insert(space.to_string(), slot.clone(), EMPTY_SLOT_WEIGHT + space.len());
        slot
    }

    /// Accounts for a slot once its user is done with it: its new weight, or, with no
    /// index loaded and nobody else holding it, its removal.
    pub fn release(&self, space: &str, slot: IndexSlot, weight: Option<usize>) {
        let key = space.to_string();
        let mut slots = self.slots();
        let held = slots.get(&key).is_some_and(|held| Arc::ptr_eq(held, &slot));
        // Ours and the table's: no one else can reach it without the table's lock.
        let unused = Arc::strong_count(&slot) == 2;
        drop(slot);
        match weight {
            _ if !held => {}
            None if unused => {
                slots.remove(&key);
            }
            weight => slots.reweigh(&key, space.len() + weight.unwrap_or(EMPTY_SLOT_WEIGHT)),
        }
    }

    /// Drops a space's slot; answers it, for its user to empty under its lock.
    pub fn remove(&self, space: &str) -> Option<IndexSlot> {
        self.slots().remove(&space.to_string())
    }
}
