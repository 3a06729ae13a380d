//! Orchestration over the store: fetches the parts a config names and stores the chart
//! composed from them as an ordinary version.
//!
//! A config is a few bytes that can name one large stored chart many times, so what it
//! costs is bounded before anything is opened and while parts load: the config names at
//! most [`compose::MAX_PARTS`] parts; the records of the stored parts must declare no more
//! decompressed bytes, all parts counted, than one chart may have; each distinct stored
//! chart is fetched and parsed once, one at a time, under one budget shared by every part
//! (the first overrun stops the work); and the composed chart is held to the limits of an
//! upload, decompressed and compressed, as it is written.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use chartyard_core::archive::{self, ChartFiles, Limits, LoadBudget};
use chartyard_core::compose::{self, Composition, Node, Part, Save};
use chartyard_core::error::echo;
use chartyard_core::metadata::MetadataTree;
use chartyard_core::{RegistryError, values};
use serde_json::Value;

use crate::records::StoredVersion;
use crate::registry::Registry;

type Result<T> = std::result::Result<T, RegistryError>;

/// What composing answers.
pub enum Composed {
    /// The new chart, stored.
    Stored(StoredVersion),
    /// A dry run: what the new chart would be.
    Preview { metadata: Box<MetadataTree>, values: Value },
}

/// A stored chart a config names: `(space, chart, version)`.
type StoredPart = (String, String, String);

/// The stored parts of a config, in the order the config names them, with repeats.
impl Registry {
    /// Composes a chart from the orchestration config `body` into `space`; with `dry_run`,
    /// stores nothing and answers what would be stored.
    pub async fn compose(&self, space: &str, body: &[u8], dry_run: bool) -> Result<Composed> {
        self.compose_parsed(space, compose::parse(body)?, dry_run).await
    }

    /// [`Registry::compose`] of a config parsed already (by a caller that checks who may
    /// read its parts).
    pub async fn compose_parsed(&self, space: &str, composition: Composition, dry_run: bool) -> Result<Composed> {
        let save = &composition.save;
        self.require_generation(space).await?;
        match self.version(space, &save.chart, &save.version).await {
            Ok(_) => return Err(RegistryError::AlreadyExists(format!("{space}/{}/{}", save.chart, save.version))),
            Err(RegistryError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let limits = self.options.limits;

        // Before opening any archive: every stored part exists, and what the records say
        // the parts expand to (each time a part is named) fits one chart.
        let named = composition.stored_parts();
        let mut declared: u64 = 0;
        for (part_space, chart, version) in &named {
            let record = self.version(part_space, chart, version).await?;
            declared = declared.saturating_add(record.unpacked_size.unwrap_or(0));
        }
        if declared > limits.max_decompressed_bytes {
            return Err(RegistryError::invalid(format!(
                "orchestration config is invalid: its parts expand to {declared} bytes, more than the {} bytes a \
                 chart may have",
                limits.max_decompressed_bytes
            )));
        }

        // Each distinct stored chart once, one at a time, under one budget for all parts.
        let mut budget = LoadBudget::new(&limits);
        let mut loaded: HashMap<StoredPart, Arc<ChartFiles>> = HashMap::new();
        for key in named {
            if loaded.contains_key(&key) {
                continue;
            }
            let archive = self.archive_of(&key.0, &key.1, &key.2).await?;
            let (files, rest) = self
                .blocking(move || {
                    let files = archive::load_files_within(&archive, &limits, &mut budget);
                    Ok((files, budget))
                })
                .await?;
            budget = rest;
            let files = files.map_err(|e| match e {
                RegistryError::Invalid(message) => RegistryError::invalid(format!(
                    "part {}/{}/{}: {message}",
                    echo(&key.0),
                    echo(&key.1),
                    echo(&key.2)
                )),
                other => other,
            })?;
            loaded.insert(key, Arc::new(files));
        }

        let root = composition.root.clone();
        let save_owned = save.clone();
        let max_archive_bytes = self.options.max_blob_bytes;
        let archive = self
            .blocking(move || {
                let root = resolve(&root, None, &loaded, &limits, &mut budget)?;
                drop(loaded);
                build(&save_owned, &root, &limits, max_archive_bytes)
            })
            .await?;
        if dry_run {
            let chart = self.load_chart(archive).await?;
            let values = values::coalesce(&chart, &limits)?;
            return Ok(Composed::Preview { metadata: Box::new(chart.metadata_tree()), values });
        }
        Ok(Composed::Stored(self.upload(space, archive).await?))
    }
}

/// The parts of a node and its children, from the loaded stored charts and the subcharts
/// inside them.
fn resolve(
    node: &Node,
    parent: Option<&ChartFiles>,
    loaded: &HashMap<StoredPart, Arc<ChartFiles>>,
    limits: &Limits,
    budget: &mut LoadBudget,
) -> Result<Part> {
    let package = &node.package;
    let files = if package.independent {
        let key = (package.space.clone(), package.chart.clone(), package.version.clone());
        loaded.get(&key).cloned().ok_or_else(|| RegistryError::internal("a stored part was not loaded"))?
    } else {
        let version = Some(package.version.as_str()).filter(|v| !v.is_empty());
        let parent = parent.ok_or_else(|| RegistryError::invalid("the root must be an independent chart"))?;
        let found = parent.subchart(&package.chart, version, limits, budget)?.ok_or_else(|| {
            let wanted = match version {
                Some(version) => format!("{} {version}", package.chart),
                None => package.chart.clone(),
            };
            RegistryError::not_found(format!("subchart {wanted} of {}", parent.chart.metadata.name))
        })?;
        Arc::new(found)
    };
    let mut children = Vec::with_capacity(node.children.len());
    for child in &node.children {
        children.push(resolve(child, Some(&files), loaded, limits, budget)?);
    }
    Ok(Part { key: node.key.clone(), files, from_parent: !package.independent, config: node.config.clone(), children })
}

/// The archive of the composed chart, within the limits of an upload.
fn build(save: &Save, root: &Part, limits: &Limits, max_archive_bytes: usize) -> Result<Bytes> {
    let files = compose::compose(save, root, limits)?;
    let archive = archive::package(&save.chart, &files)?;
    if archive.len() > max_archive_bytes {
        return Err(RegistryError::invalid(format!(
            "the composed chart would be a {} byte archive, more than the {max_archive_bytes} bytes an upload may have",
            archive.len()
        )));
    }
    Ok(Bytes::from(archive))
}
