//! `chartyard mirror`: copies a Helm repository into a space. Any repository with an
//! `index.yaml` is a source (ChartMuseum, GitHub Pages, another chartyard space). Versions
//! the space has already are skipped, so a mirror can be run again, or resumed after an
//! interruption, and copies only what is missing.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, bail};
use chartyard_client::{Client, Error, Page, reqwest};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Serialize)]
pub struct MirrorReport {
    pub copied: usize,
    pub with_provenance: usize,
    pub skipped: usize,
}

/// The parts of an index a mirror needs.
#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    entries: BTreeMap<String, Vec<Entry>>,
}

#[derive(Deserialize)]
struct Entry {
    version: String,
    #[serde(default)]
    urls: Vec<String>,
}

pub async fn mirror(client: &Client, source_url: &str, space: &str) -> anyhow::Result<MirrorReport> {
    let source = source_url.trim_end_matches('/');
    let http = reqwest::Client::new();
    let index_url = format!("{source}/index.yaml");
    let response = http.get(&index_url).send().await.with_context(|| format!("cannot fetch {index_url}"))?;
    if !response.status().is_success() {
        bail!("{index_url} answered {}", response.status());
    }
    let index: Index = chartyard_core::yaml::from_yaml(&response.bytes().await?, &index_url)?;
    let base = reqwest::Url::parse(&format!("{source}/")).with_context(|| format!("{source_url} is not a URL"))?;
    match client.create_space(space).await {
        Ok(_) => {}
        Err(Error::Api { status: 409, .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let mut report = MirrorReport::default();
    for (chart, entries) in index.entries {
        let present: BTreeSet<String> = match client.list_versions(space, &chart, Page::all()).await {
            Ok(list) => list.items.into_iter().collect(),
            Err(Error::Api { status: 404, .. }) => BTreeSet::new(),
            Err(e) => return Err(e.into()),
        };
        for entry in entries {
            if present.contains(&entry.version) {
                report.skipped += 1;
                continue;
            }
            let url = entry.urls.first().with_context(|| format!("{chart} {} has no url", entry.version))?;
            // As Helm does: relative to the repository URL (with a trailing slash).
            let url =
                base.join(url).with_context(|| format!("{chart} {}: bad url {url:?}", entry.version))?.to_string();
            let archive = fetch(&http, &url).await?.with_context(|| format!("{url} not found"))?;
            let provenance = fetch(&http, &format!("{url}.prov")).await?;
            let stored = match provenance {
                Some(prov) => client.upload_with_provenance(space, archive, Some(prov)).await.map(|_| true),
                None => client.upload_chart(space, archive).await.map(|_| false),
            };
            match stored {
                Ok(with_provenance) => {
                    report.copied += 1;
                    report.with_provenance += usize::from(with_provenance);
                }
                // Stored meanwhile by someone else: nothing missing any more.
                Err(Error::Api { status: 409, .. }) => report.skipped += 1,
                Err(e) => return Err(anyhow::Error::from(e).context(format!("storing {chart} {}", entry.version))),
            }
        }
    }
    Ok(report)
}

/// The body at `url`, `None` for a 404.
async fn fetch(http: &reqwest::Client, url: &str) -> anyhow::Result<Option<bytes::Bytes>> {
    let response = http.get(url).send().await.with_context(|| format!("cannot fetch {url}"))?;
    match response.status() {
        status if status.is_success() => Ok(Some(response.bytes().await?)),
        reqwest::StatusCode::NOT_FOUND => Ok(None),
        status => bail!("{url} answered {status}"),
    }
}
