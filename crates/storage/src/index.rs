//! Per-space repository indexes, kept in memory and updated entry by entry.
//!
//! An index is built once per space from the version records (never from archives), then
//! every write through this registry inserts or removes single entries. The full
//! `index.yaml` is assembled from pre-rendered fragments when first asked for after a
//! change, and served from those ready bytes until the next change.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use chartyard_core::RegistryError;
use chartyard_core::index;
use chartyard_core::names::compare_versions;
use chartyard_core::record::VersionRecord;
use serde::{Deserialize, Serialize};
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

/// One version in the index: what a download and the rendered index need, and no more
/// (the parsed record stays in the record cache, which may evict it).
struct IndexedVersion {
    /// The entry pre-rendered as YAML.
    yaml: Box<str>,
    /// The archive's sha256 (hex) and size, so a download reads the blob and nothing else.
    digest: Box<str>,
    size: u64,
    /// Whether the version has a provenance file (the UI's versions table shows it).
    provenance: bool,
    /// The record's ETag when read, so a reconcile can tell which records changed.
    e_tag: Option<Box<str>>,
    /// The ticket of the read this entry comes from (see [`ReadTicket`]).
    read: u64,
}

/// Orders the reads of records that set index entries. A ticket is drawn right before a
/// record is read; the store answers a read with a state at least as new as any commit
/// finished before the read began, so of two reads of one version the one with the later
/// ticket saw the newer state. An entry is only ever set from a read with a later ticket
/// than the one it holds, so reads may run outside the index's lock, in any order.
pub(crate) type ReadTicket = u64;

/// How long a removed version's ticket is kept, against slower reads that began before
/// the removal (store requests time out well before this).
const TOMBSTONE_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// A chart's name and its index entries, newest version first.
pub(crate) type ChartEntries = (String, Vec<Map<String, Value>>);

/// A chart's name and the index entry of one of its versions.
pub type ChartEntry = (String, Map<String, Value>);

/// A page of a chart's versions: each index entry with whether the version has a
/// provenance file, newest first, and how many versions the chart has.
#[derive(Debug, Clone)]
pub struct ListedVersions {
    pub total: usize,
    pub entries: Vec<(Map<String, Value>, bool)>,
}

/// What a download needs of a version.
#[derive(Debug, Clone)]
pub(crate) struct Located {
    pub digest: String,
    pub size: u64,
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

/// The index of one generation of a space, with how far it has followed the space's
/// change log.
pub(crate) struct SpaceIndex {
    pub generation: String,
    charts: BTreeMap<String, BTreeMap<VersionOrder, IndexedVersion>>,
    /// Estimated bytes held: see [`SpaceIndex::weight`].
    weight: usize,
    rendered: Option<Arc<RenderedIndex>>,
    /// Each chart's latest entry, parsed, until the next change (chart lists and search
    /// read it on every request; at most one entry per chart).
    latest: Option<Arc<Vec<ChartEntry>>>,
    /// Every change announced by log entries up to this number is applied.
    pub seq: u64,
    /// Entries of this process's own log writes, by number: how many of their changes
    /// their writers have set here (right after the write) of how many, and whether one
    /// of them could not be (a later read held the version) so the entry must be read.
    /// Reading an entry whose changes were all set would only read the same records again.
    own: HashMap<u64, OwnEntry>,
    /// When the log was last read.
    pub checked: Instant,
    /// Whether the log was read to its end since the index was loaded (an index read
    /// from a checkpoint must be, once, even where nobody else writes).
    pub caught_up: bool,
    /// When a request last used the index.
    pub used: Instant,
    /// The log number of the newest checkpoint known to be stored.
    pub checkpoint_seq: u64,
    /// Changes this process's writers set here since that checkpoint.
    pub written_since_checkpoint: usize,
    /// The ETag the checkpoint was read or written at, for replacing it.
    pub checkpoint_tag: Option<String>,
    /// Versions removed lately, with the ticket of the read that removed them.
    removed: HashMap<(String, String), (ReadTicket, Instant)>,
    /// When the index was last compared with the records themselves, and whether ever.
    pub reconciled: Instant,
    pub reconciled_once: bool,
}

/// The stored form of a checkpoint; `format` changes whenever a fragment would be
/// rendered differently, so an old checkpoint is never served as new.
#[derive(Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    pub format: u32,
    pub seq: u64,
    pub charts: Vec<CheckpointChart>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct CheckpointChart {
    pub name: String,
    pub versions: Vec<CheckpointVersion>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct CheckpointVersion {
    pub version: String,
    pub yaml: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub provenance: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e_tag: Option<String>,
}

/// What the writers of one of this process's log entries have set in an index.
#[derive(Debug, Default, Clone, Copy)]
struct OwnEntry {
    settled: usize,
    changes: usize,
    unapplied: bool,
}

/// See [`Checkpoint::format`].
pub(crate) const CHECKPOINT_FORMAT: u32 = 2;

impl SpaceIndex {
    pub fn new(generation: String) -> Self {
        let now = Instant::now();
        Self {
            generation,
            charts: BTreeMap::new(),
            weight: 0,
            rendered: None,
            latest: None,
            seq: 0,
            own: HashMap::new(),
            checked: now,
            caught_up: false,
            used: now,
            checkpoint_seq: 0,
            written_since_checkpoint: 0,
            checkpoint_tag: None,
            removed: HashMap::new(),
            reconciled: now,
            reconciled_once: false,
        }
    }

    /// How many changes past its checkpoint make an index due for a new one: a sixteenth
    /// of it, at least 64, so a start reads a tail of at most that.
    pub fn checkpoint_interval(&self) -> usize {
        (self.len() / 16).max(64)
    }

    /// Roughly the bytes this index holds: per version its YAML fragment, its share of
    /// the rendered index, the digest, the keys and the map's own overhead.
    pub fn weight(&self) -> usize {
        512 + self.weight
    }

    fn version_weight(chart: &str, version: &str, indexed: &IndexedVersion) -> usize {
        2 * indexed.yaml.len()
            + indexed.digest.len()
            + indexed.e_tag.as_ref().map_or(0, |t| t.len())
            + chart.len()
            + version.len()
            + 160
    }

    /// How many charts the index holds.
    pub fn chart_count(&self) -> usize {
        self.charts.len()
    }

    /// The archive bytes and versions the index holds, as a quota counts them.
    pub fn usage(&self) -> chartyard_core::policy::Usage {
        let versions = self.charts.values().flat_map(BTreeMap::values);
        let (bytes, count) = versions.fold((0u64, 0u64), |(b, n), v| (b.saturating_add(v.size), n + 1));
        chartyard_core::policy::Usage { bytes, versions: count }
    }

    /// How many versions the index holds.
    pub fn len(&self) -> usize {
        self.charts.values().map(BTreeMap::len).sum()
    }

    /// Whether a read with `ticket` is older than what the index holds of a version.
    fn outdated(&self, chart: &str, version: &str, ticket: ReadTicket) -> bool {
        let held = self.charts.get(chart).and_then(|versions| versions.get(&VersionOrder(version.to_string())));
        held.is_some_and(|held| held.read > ticket)
            || self.removed.get(&(chart.to_string(), version.to_string())).is_some_and(|(read, _)| *read > ticket)
    }

    /// Sets a version's entry from its record as a read with `ticket` found it at `e_tag`,
    /// unless a later read set it already; answers whether the entry is now what this
    /// read found.
    pub fn insert(
        &mut self,
        chart: &str,
        version: &str,
        record: &VersionRecord,
        e_tag: Option<&str>,
        ticket: ReadTicket,
    ) -> Result<bool, RegistryError> {
        let key = VersionOrder(version.to_string());
        // What it holds already (read by another, maybe later, read of the same record).
        if let Some(held) = self.charts.get_mut(chart).and_then(|versions| versions.get_mut(&key))
            && e_tag.is_some()
            && held.e_tag.as_deref() == e_tag
        {
            held.read = held.read.max(ticket);
            return Ok(true);
        }
        if self.outdated(chart, version, ticket) {
            return Ok(false);
        }
        let yaml = index::entry_yaml(&index::entry(record, index::archive_url(chart, version)))?;
        let indexed = IndexedVersion {
            yaml: yaml.into(),
            digest: record.digest.as_str().into(),
            size: record.size,
            provenance: record.provenance.is_some(),
            e_tag: e_tag.map(Into::into),
            read: ticket,
        };
        self.removed.remove(&(chart.to_string(), version.to_string()));
        self.put(chart, key, indexed);
        Ok(true)
    }

    fn put(&mut self, chart: &str, key: VersionOrder, indexed: IndexedVersion) {
        self.weight += Self::version_weight(chart, &key.0, &indexed);
        let versions = match self.charts.get_mut(chart) {
            Some(versions) => versions,
            None => self.charts.entry(chart.to_string()).or_default(),
        };
        let version = key.0.clone();
        if let Some(replaced) = versions.insert(key, indexed) {
            self.weight -= Self::version_weight(chart, &version, &replaced);
        }
        self.changed();
    }

    /// Removes a version's entry, as a read with `ticket` found it gone, unless a later
    /// read set it; a chart without versions goes too. Answers whether it was this read's
    /// to remove.
    pub fn remove(&mut self, chart: &str, version: &str, ticket: ReadTicket) -> bool {
        if self.outdated(chart, version, ticket) {
            // A later read found it gone too: that is what this one would have set.
            return self.locate(chart, version).is_none();
        }
        if self.removed.len() >= 1024 {
            self.removed.retain(|_, (_, at)| at.elapsed() < TOMBSTONE_TTL);
        }
        self.removed.insert((chart.to_string(), version.to_string()), (ticket, Instant::now()));
        let Some(versions) = self.charts.get_mut(chart) else {
            return true;
        };
        let Some(removed) = versions.remove(&VersionOrder(version.to_string())) else {
            return true;
        };
        self.weight -= Self::version_weight(chart, version, &removed);
        if versions.is_empty() {
            self.charts.remove(chart);
        }
        self.changed();
        true
    }

    /// What a download of a version needs, if the index holds it.
    pub fn locate(&self, chart: &str, version: &str) -> Option<Located> {
        let indexed = self.charts.get(chart)?.get(&VersionOrder(version.to_string()))?;
        Some(Located { digest: indexed.digest.to_string(), size: indexed.size })
    }

    /// The versions where a listing of the records, begun with `ticket`, disagrees with
    /// the index (by ETag, or presence): those set by a later read are left out, as the
    /// listing may not show their change. Without ETags, every listed version counts.
    pub fn differences(
        &self,
        listed: &HashMap<(String, String), Option<String>>,
        ticket: ReadTicket,
    ) -> Vec<(String, String)> {
        let mut differ = Vec::new();
        for ((chart, version), e_tag) in listed {
            let held = self.charts.get(chart).and_then(|versions| versions.get(&VersionOrder(version.clone())));
            let agrees = e_tag.is_some() && held.is_some_and(|held| held.e_tag.as_deref() == e_tag.as_deref());
            if !agrees && !self.outdated(chart, version, ticket) {
                differ.push((chart.clone(), version.clone()));
            }
        }
        for (chart, versions) in &self.charts {
            for (version, held) in versions {
                if held.read <= ticket && !listed.contains_key(&(chart.clone(), version.0.clone())) {
                    differ.push((chart.clone(), version.0.clone()));
                }
            }
        }
        differ
    }

    /// Notes that a writer of this process's log entry `seq` (holding `changes` changes)
    /// has set its change here (`applied`), or could not.
    pub fn settled_own(&mut self, seq: u64, changes: usize, applied: bool) {
        self.written_since_checkpoint += 1;
        if seq > self.seq {
            let own = self.own.entry(seq).or_insert(OwnEntry { changes, ..OwnEntry::default() });
            own.settled += 1;
            own.unapplied |= !applied;
        }
    }

    /// Whether every change of this process's entry `seq` was set here by its writer.
    pub fn own_applied(&self, seq: u64) -> bool {
        self.own.get(&seq).is_some_and(|own| own.settled >= own.changes && !own.unapplied)
    }

    /// Whether a writer of this process's entry `seq` has yet to settle its change here.
    pub fn own_unsettled(&self, seq: u64) -> bool {
        self.own.get(&seq).is_none_or(|own| own.settled < own.changes)
    }

    /// Records that every entry up to `seq` is applied.
    pub fn followed_to(&mut self, seq: u64) {
        self.seq = self.seq.max(seq);
        let followed = self.seq;
        self.own.retain(|own, _| *own > followed);
        self.checked = Instant::now();
        self.caught_up = true;
    }

    /// The stored form of this index at its log number.
    pub fn checkpoint(&self) -> Checkpoint {
        let charts = self
            .charts
            .iter()
            .map(|(name, versions)| CheckpointChart {
                name: name.clone(),
                versions: versions
                    .iter()
                    .map(|(version, indexed)| CheckpointVersion {
                        version: version.0.clone(),
                        yaml: indexed.yaml.to_string(),
                        digest: indexed.digest.to_string(),
                        size: indexed.size,
                        provenance: indexed.provenance,
                        e_tag: indexed.e_tag.as_deref().map(str::to_string),
                    })
                    .collect(),
            })
            .collect();
        Checkpoint { format: CHECKPOINT_FORMAT, seq: self.seq, charts }
    }

    /// An index read back from a checkpoint of `generation`, read with `ticket`.
    pub fn from_checkpoint(generation: String, checkpoint: Checkpoint, ticket: ReadTicket) -> Self {
        let mut index = Self::new(generation);
        index.seq = checkpoint.seq;
        index.checkpoint_seq = checkpoint.seq;
        for chart in checkpoint.charts {
            // Stored in version order: collecting sorted keys is linear.
            let versions: BTreeMap<VersionOrder, IndexedVersion> = chart
                .versions
                .into_iter()
                .map(|v| {
                    let indexed = IndexedVersion {
                        yaml: v.yaml.into(),
                        digest: v.digest.into(),
                        size: v.size,
                        provenance: v.provenance,
                        e_tag: v.e_tag.map(Into::into),
                        read: ticket,
                    };
                    index.weight += Self::version_weight(&chart.name, &v.version, &indexed);
                    (VersionOrder(v.version), indexed)
                })
                .collect();
            if !versions.is_empty() {
                index.charts.insert(chart.name, versions);
            }
        }
        index
    }

    fn changed(&mut self) {
        self.rendered = None;
        self.latest = None;
    }

    /// The entries of every chart, newest version first.
    pub fn entries(&self) -> Result<Vec<ChartEntries>, RegistryError> {
        self.charts.iter().map(|(name, versions)| Ok((name.clone(), Self::parsed(versions)?))).collect()
    }

    /// The entry of each chart's latest version (the newest stable one, as `helm pull`
    /// without a version takes, or the newest if none is stable).
    pub fn latest_entries(&mut self) -> Result<Arc<Vec<ChartEntry>>, RegistryError> {
        if let Some(latest) = &self.latest {
            return Ok(latest.clone());
        }
        let mut latest = Vec::with_capacity(self.charts.len());
        for (name, versions) in &self.charts {
            let Some((_, indexed)) = Self::latest(versions) else { continue };
            latest.push((name.clone(), index::parse_entry_yaml(&indexed.yaml)?));
        }
        let latest = Arc::new(latest);
        self.latest = Some(latest.clone());
        Ok(latest)
    }

    /// The entries of one chart, newest version first.
    pub fn chart_entries(&self, chart: &str) -> Option<Result<Vec<Map<String, Value>>, RegistryError>> {
        self.charts.get(chart).map(Self::parsed)
    }

    /// One page of a chart's versions, newest first, with whether each has a provenance
    /// file, and how many there are: only the page's entries are parsed.
    pub fn chart_page(&self, chart: &str, start: usize, limit: usize) -> Option<Result<ListedVersions, RegistryError>> {
        let versions = self.charts.get(chart)?;
        let page = versions.values().rev().skip(start).take(limit);
        let entries: Result<Vec<_>, RegistryError> =
            page.map(|v| Ok((index::parse_entry_yaml(&v.yaml)?, v.provenance))).collect();
        Some(entries.map(|entries| ListedVersions { total: versions.len(), entries }))
    }

    /// The version `helm pull` without a version takes: the newest stable one, or the
    /// newest if none is stable.
    pub fn latest_version(&self, chart: &str) -> Option<String> {
        Self::latest(self.charts.get(chart)?).map(|(version, _)| version.0.clone())
    }

    fn latest(versions: &BTreeMap<VersionOrder, IndexedVersion>) -> Option<(&VersionOrder, &IndexedVersion)> {
        // Versions are in precedence order: the newest stable one is usually the last.
        let newest_stable = versions.iter().rev().find(|(v, _)| chartyard_core::names::is_stable(&v.0));
        newest_stable.or_else(|| versions.iter().next_back())
    }

    fn parsed(versions: &BTreeMap<VersionOrder, IndexedVersion>) -> Result<Vec<Map<String, Value>>, RegistryError> {
        versions.values().rev().map(|v| index::parse_entry_yaml(&v.yaml)).collect()
    }

    /// The ready bytes, assembled if anything changed since the last time. The ETag is
    /// derived from the entries alone (not from the `generated` time or the process), so
    /// every replica holding the same versions answers the same weak ETag.
    pub fn rendered(&mut self) -> Arc<RenderedIndex> {
        if let Some(rendered) = &self.rendered {
            return rendered.clone();
        }
        let generated = humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string();
        let charts = self
            .charts
            .iter()
            .map(|(name, versions)| (name.as_str(), versions.values().rev().map(|v| &*v.yaml).collect::<Vec<_>>()));
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
    pub fn rendered_json(&mut self) -> Result<Arc<RenderedIndex>, RegistryError> {
        let rendered = self.rendered();
        if rendered.json.get().is_none() {
            let json = index::index_json(&rendered.generated, self.entries()?);
            let _ = rendered.json.set(json.into());
        }
        Ok(rendered)
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

    /// The spaces whose index slots are held now.
    pub fn spaces(&self) -> Vec<String> {
        self.slots().keys().cloned().collect()
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
