//! The client commands of the `chartyard` binary: thin wrappers over `chartyard-client`
//! that print tables for people or JSON (`-o json`) for scripts.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use bytes::Bytes;
use chartyard_client::{Client, Page};
use clap::{Args, Subcommand, ValueEnum};
use futures::StreamExt;
use serde::Serialize;
use serde_json::Value;

/// Where the server is and how to talk to it.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// The chartyard server.
    #[arg(long, global = true, env = "CHARTYARD_SERVER", default_value = "http://127.0.0.1:8099")]
    pub server: String,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    /// Basic-auth user.
    #[arg(long, global = true, env = "CHARTYARD_USERNAME")]
    pub username: Option<String>,
    /// Basic-auth password.
    #[arg(long, global = true, env = "CHARTYARD_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Bearer token.
    #[arg(long, global = true, env = "CHARTYARD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum SpacesCommand {
    /// List spaces.
    List,
    /// Create a space.
    Create { name: String },
    /// Delete a space and everything in it.
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum ChartsCommand {
    /// List the charts of a space.
    List { space: String },
}

/// The client commands.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Manage spaces.
    #[command(subcommand)]
    Spaces(SpacesCommand),
    /// List charts.
    #[command(subcommand)]
    Charts(ChartsCommand),
    /// List the versions of a chart.
    Versions { space: String, chart: String },
    /// Upload a chart archive (with its provenance file).
    Push {
        space: String,
        file: PathBuf,
        #[arg(long)]
        prov: Option<PathBuf>,
    },
    /// Download a chart version (the latest when no version is given).
    Pull {
        space: String,
        chart: String,
        version: Option<String>,
        /// Where to write the archive.
        #[arg(short = 'd', long, default_value = ".")]
        destination: PathBuf,
    },
    /// Delete a chart version, or the whole chart.
    Delete { space: String, chart: String, version: Option<String> },
    /// Show a version's metadata, or replace it from a JSON file.
    Metadata {
        space: String,
        chart: String,
        version: String,
        #[arg(long)]
        set_file: Option<PathBuf>,
    },
    /// Show a version's values, or replace them from a JSON or YAML file.
    Values {
        space: String,
        chart: String,
        version: String,
        #[arg(long)]
        set_file: Option<PathBuf>,
    },
    /// Compose a new chart from stored charts with an orchestration config.
    Compose {
        space: String,
        config: PathBuf,
        /// Show what would be stored, store nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Copy every chart version (and provenance) a space lacks from a Helm repository
    /// (another chartyard space, ChartMuseum, GitHub Pages, any index.yaml).
    Mirror { source_url: String, space: String },
}

/// Uploads and downloads over this size get a progress bar when stderr is a terminal.
const PROGRESS_THRESHOLD: u64 = 4 * 1024 * 1024;

pub fn run(connection: Connection, command: ClientCommand) -> anyhow::Result<()> {
    let mut builder = Client::builder(connection.server.clone());
    if let Some(user) = &connection.username {
        builder = builder.basic_auth(user, connection.password.clone().unwrap_or_default());
    } else if let Some(token) = &connection.token {
        builder = builder.bearer_token(token);
    }
    let client = builder.build()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(execute(&client, connection.output, command))
}

async fn execute(client: &Client, output: Output, command: ClientCommand) -> anyhow::Result<()> {
    let out = Printer { output };
    match command {
        ClientCommand::Spaces(SpacesCommand::List) => {
            let spaces = client.list_spaces(Page::all()).await?;
            out.list(&spaces.items, "SPACE")
        }
        ClientCommand::Spaces(SpacesCommand::Create { name }) => out.value(&client.create_space(&name).await?),
        ClientCommand::Spaces(SpacesCommand::Delete { name }) => {
            client.delete_space(&name).await?;
            out.done(&format!("deleted space {name}"))
        }
        ClientCommand::Charts(ChartsCommand::List { space }) => {
            let charts = client.list_charts(&space, Page::all()).await?;
            out.list(&charts.items, "CHART")
        }
        ClientCommand::Versions { space, chart } => {
            let metadata = client.chart_metadata(&space, &chart, Page::all()).await?;
            match out.output {
                Output::Json => out.value(&metadata.items),
                Output::Table => {
                    let rows: Vec<Vec<String>> = metadata
                        .items
                        .iter()
                        .rev()
                        .map(|m| vec![m.0.version.clone(), m.0.app_version.clone(), m.0.description.clone()])
                        .collect();
                    print_table(&["VERSION", "APP VERSION", "DESCRIPTION"], &rows);
                    Ok(())
                }
            }
        }
        ClientCommand::Push { space, file, prov } => {
            let archive = read(&file)?;
            match prov {
                Some(prov) => {
                    client.upload_with_provenance(&space, archive, Some(read(&prov)?)).await?;
                    out.done(&format!("pushed {} with its provenance to {space}", file.display()))
                }
                None => {
                    let link = match progress_bar(archive.len() as u64, "uploading") {
                        Some(bar) => {
                            let length = archive.len() as u64;
                            let link =
                                client.upload_chart_stream(&space, progress_body(archive, bar.clone()), length).await;
                            bar.finish_and_clear();
                            link?
                        }
                        None => client.upload_chart(&space, archive).await?,
                    };
                    out.value(&link)
                }
            }
        }
        ClientCommand::Pull { space, chart, version, destination } => {
            let version = match version {
                Some(version) => version,
                None => client.chart_latest_metadata(&space, &chart).await?.0.version,
            };
            let path = destination.join(format!("{chart}-{version}.tgz"));
            download(client, &space, &chart, &version, &path).await?;
            match out.output {
                Output::Json => out.value(&serde_json::json!({ "chart": chart, "version": version, "path": path })),
                Output::Table => out.done(&format!("pulled {chart} {version} to {}", path.display())),
            }
        }
        ClientCommand::Delete { space, chart, version } => {
            match &version {
                Some(version) => client.delete_version(&space, &chart, version).await?,
                None => client.delete_chart(&space, &chart).await?,
            }
            out.done(&format!("deleted {chart} {}", version.as_deref().unwrap_or("(all versions)")))
        }
        ClientCommand::Metadata { space, chart, version, set_file } => {
            let metadata = match set_file {
                Some(file) => {
                    let body: Value = serde_json::from_slice(&read(&file)?)
                        .with_context(|| format!("{} is not JSON", file.display()))?;
                    client.update_version_metadata(&space, &chart, &version, &body).await?
                }
                None => client.version_metadata(&space, &chart, &version).await?,
            };
            out.document(&metadata)
        }
        ClientCommand::Values { space, chart, version, set_file } => {
            let values = match set_file {
                Some(file) => {
                    let bytes = read(&file)?;
                    let body: Value = if file.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                        chartyard_core::yaml::from_yaml(&bytes, &file.display().to_string())?
                    } else {
                        serde_json::from_slice(&bytes).with_context(|| format!("{} is not JSON", file.display()))?
                    };
                    client.update_version_values(&space, &chart, &version, &body).await?
                }
                None => client.version_values(&space, &chart, &version).await?,
            };
            out.document(&values)
        }
        ClientCommand::Compose { space, config, dry_run } => {
            let config: Value =
                serde_json::from_slice(&read(&config)?).with_context(|| format!("{} is not JSON", config.display()))?;
            if dry_run {
                let preview = client.preview_composition(&space, &config).await?;
                out.document(&serde_json::json!({ "metadata": preview.metadata, "values": preview.values }))
            } else {
                out.value(&client.compose_chart(&space, &config).await?)
            }
        }
        ClientCommand::Mirror { source_url, space } => {
            let report = crate::mirror::mirror(client, &source_url, &space).await?;
            match out.output {
                Output::Json => out.value(&report),
                Output::Table => out.done(&format!(
                    "mirrored {source_url} into {space}: {} copied ({} with provenance), {} already there",
                    report.copied, report.with_provenance, report.skipped
                )),
            }
        }
    }
}

fn read(path: &Path) -> anyhow::Result<Bytes> {
    Ok(std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?.into())
}

fn progress_bar(total: u64, message: &str) -> Option<indicatif::ProgressBar> {
    if total < PROGRESS_THRESHOLD || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_message(message.to_string());
    Some(bar)
}

/// The archive as a body sent in 256 KiB pieces, moving the bar as each is taken.
fn progress_body(archive: Bytes, bar: indicatif::ProgressBar) -> chartyard_client::reqwest::Body {
    const PIECE: usize = 256 * 1024;
    let pieces: Vec<Bytes> =
        (0..archive.len()).step_by(PIECE).map(|i| archive.slice(i..(i + PIECE).min(archive.len()))).collect();
    let stream = futures::stream::iter(pieces).map(move |piece| {
        bar.inc(piece.len() as u64);
        Ok::<_, std::io::Error>(piece)
    });
    chartyard_client::reqwest::Body::wrap_stream(stream)
}

/// Streams a version's archive to a file, through a temporary name so a failed download
/// leaves no partial archive.
async fn download(client: &Client, space: &str, chart: &str, version: &str, path: &Path) -> anyhow::Result<()> {
    let response = client.download_version_response(space, chart, version).await?;
    let bar = progress_bar(response.content_length().unwrap_or(0), "downloading");
    let partial = path.with_extension("tgz.part");
    let mut file = std::fs::File::create(&partial).with_context(|| format!("cannot write {}", partial.display()))?;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        file.write_all(&chunk)?;
        if let Some(bar) = &bar {
            bar.inc(chunk.len() as u64);
        }
    }
    file.sync_all()?;
    std::fs::rename(&partial, path)?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(())
}

struct Printer {
    output: Output,
}

impl Printer {
    fn value<T: Serialize>(&self, value: &T) -> anyhow::Result<()> {
        match self.output {
            Output::Json => println!("{}", serde_json::to_string_pretty(value)?),
            Output::Table => {
                let value = serde_json::to_value(value)?;
                let rows: Vec<Vec<String>> = value
                    .as_object()
                    .map(|o| {
                        o.iter()
                            .map(|(k, v)| vec![k.clone(), v.as_str().map_or(v.to_string(), str::to_string)])
                            .collect()
                    })
                    .unwrap_or_default();
                print_table(&["FIELD", "VALUE"], &rows);
            }
        }
        Ok(())
    }

    /// Documents (metadata, values) print as YAML for people, JSON for scripts.
    fn document<T: Serialize>(&self, value: &T) -> anyhow::Result<()> {
        match self.output {
            Output::Json => println!("{}", serde_json::to_string_pretty(value)?),
            Output::Table => print!("{}", chartyard_core::yaml::to_yaml(&serde_json::to_value(value)?)?),
        }
        Ok(())
    }

    fn list(&self, items: &[String], header: &str) -> anyhow::Result<()> {
        match self.output {
            Output::Json => println!("{}", serde_json::to_string_pretty(items)?),
            Output::Table => print_table(&[header], &items.iter().map(|i| vec![i.clone()]).collect::<Vec<_>>()),
        }
        Ok(())
    }

    fn done(&self, message: &str) -> anyhow::Result<()> {
        match self.output {
            Output::Json => println!("{}", serde_json::json!({ "ok": true, "message": message })),
            Output::Table => println!("{message}"),
        }
        Ok(())
    }
}

fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}
