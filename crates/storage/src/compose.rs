//! Orchestration over the store: fetches the parts a config names and stores the chart
//! composed from them as an ordinary version.

use bytes::Bytes;
use chartyard_core::archive::{self, ChartFiles};
use chartyard_core::compose::{self, Node, Part};
use chartyard_core::metadata::MetadataTree;
use chartyard_core::{RegistryError, values};
use futures::future::BoxFuture;
use serde_json::Value;

use crate::registry::{Registry, StoredVersion};

type Result<T> = std::result::Result<T, RegistryError>;

/// What composing answers.
pub enum Composed {
    /// The new chart, stored.
    Stored(StoredVersion),
    /// A dry run: what the new chart would be.
    Preview { metadata: Box<MetadataTree>, values: Value },
}

impl Registry {
    /// Composes a chart from the orchestration config `body` into `space`; with `dry_run`,
    /// stores nothing and answers what would be stored.
    pub async fn compose(&self, space: &str, body: &[u8], dry_run: bool) -> Result<Composed> {
        let composition = compose::parse(body)?;
        let save = &composition.save;
        self.require_generation(space).await?;
        match self.version(space, &save.chart, &save.version).await {
            Ok(_) => return Err(RegistryError::AlreadyExists(format!("{space}/{}/{}", save.chart, save.version))),
            Err(RegistryError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let root = self.resolve(&composition.root, None).await?;
        let files = compose::compose(save, &root)?;
        let archive = Bytes::from(archive::package(&save.chart, &files)?);
        if dry_run {
            let chart = self.load_chart(archive).await?;
            return Ok(Composed::Preview {
                metadata: Box::new(chart.metadata_tree()),
                values: values::coalesce(&chart),
            });
        }
        Ok(Composed::Stored(self.upload(space, archive).await?))
    }

    /// Fetches a node's chart and, recursively, its children's.
    fn resolve<'a>(&'a self, node: &'a Node, parent: Option<&'a ChartFiles>) -> BoxFuture<'a, Result<Part>> {
        Box::pin(async move {
            let package = &node.package;
            let files = if package.independent {
                let archive = self.archive_of(&package.space, &package.chart, &package.version).await?;
                let limits = self.options.limits;
                self.blocking(move || archive::load_files(&archive, &limits)).await?
            } else {
                let version = Some(package.version.as_str()).filter(|v| !v.is_empty());
                let parent = parent.ok_or_else(|| RegistryError::invalid("the root must be an independent chart"))?;
                parent.subchart(&package.chart, version, &self.options.limits)?.ok_or_else(|| {
                    let wanted = match version {
                        Some(version) => format!("{} {version}", package.chart),
                        None => package.chart.clone(),
                    };
                    RegistryError::not_found(format!("subchart {wanted} of {}", parent.chart.metadata.name))
                })?
            };
            let mut children = Vec::with_capacity(node.children.len());
            for child in &node.children {
                children.push(self.resolve(child, Some(&files)).await?);
            }
            Ok(Part {
                key: node.key.clone(),
                files,
                from_parent: !package.independent,
                config: node.config.clone(),
                children,
            })
        })
    }
}
