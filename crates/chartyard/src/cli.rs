//! The client commands of the `chartyard` binary: thin wrappers over `chartyard-client`
//! that print tables for people or JSON (`-o json`) and YAML (`-o yaml`) for scripts.
//! `login` keeps credentials per server in `credentials.json` (see [`credentials`]), used
//! by every command that is given none.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use bytes::Bytes;
use chartyard_client::{Client, NewToken, Page, Role, Token};
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
    /// Basic-auth user (without one, the credentials `login` saved for the server).
    #[arg(long, global = true, env = "CHARTYARD_USERNAME")]
    pub username: Option<String>,
    /// Basic-auth password.
    #[arg(long, global = true, env = "CHARTYARD_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Bearer token (an API token, `cyt_...`).
    #[arg(long, global = true, env = "CHARTYARD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
    Yaml,
}

/// The most an API token may do in a space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenRole {
    Read,
    Write,
    Admin,
}

impl From<TokenRole> for Role {
    fn from(role: TokenRole) -> Self {
        match role {
            TokenRole::Read => Role::Read,
            TokenRole::Write => Role::Write,
            TokenRole::Admin => Role::Admin,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token that signs in as you (needs your password, not a token). The
    /// token is printed once, alone on the last line; the server keeps only its hash.
    Create {
        /// Limit the token to spaces matching this pattern (`team-*`); repeat for more.
        #[arg(long = "space", value_name = "PATTERN")]
        spaces: Vec<String>,
        /// The most the token may do in a space (default: what you may do).
        #[arg(long, value_enum)]
        role: Option<TokenRole>,
        /// How long the token works (`30d`, `12h`; default: the longest the server allows).
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
        /// A note shown when tokens are listed.
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
    },
    /// List your API tokens.
    List {
        /// Every user's tokens (global admins only).
        #[arg(long)]
        all: bool,
    },
    /// Revoke an API token: it stops working at once.
    Revoke { id: String },
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
pub enum PolicyCommand {
    /// Show a space's policy.
    Get { space: String },
    /// Set a space's policy: from a JSON file, or from flags changing the current one.
    Set {
        space: String,
        /// The whole policy as JSON (`-` for stdin); replaces the current one.
        #[arg(long, conflicts_with_all = ["immutable", "quota_versions", "quota_bytes", "keep_last", "max_age_days", "keep_stable", "require_provenance"])]
        file: Option<PathBuf>,
        /// Stored versions can never be replaced, rewritten or deleted (but by global admins).
        #[arg(long)]
        immutable: Option<bool>,
        /// The most versions the space may hold.
        #[arg(long)]
        quota_versions: Option<u64>,
        /// The most bytes of chart archives the space may hold.
        #[arg(long)]
        quota_bytes: Option<u64>,
        /// Retention: keep the newest N versions of each chart (stored, not applied yet).
        #[arg(long)]
        keep_last: Option<u64>,
        /// Retention: keep versions younger than D days (stored, not applied yet).
        #[arg(long)]
        max_age_days: Option<u64>,
        /// Retention: keep every stable version (stored, not applied yet).
        #[arg(long)]
        keep_stable: bool,
        /// Refuse uploads without a provenance file.
        #[arg(long, num_args = 0..=1, default_missing_value = "true")]
        require_provenance: Option<bool>,
    },
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
    /// Search the charts of every space you may read by name, keywords and description.
    Search {
        /// Every word must match.
        #[arg(required = true)]
        words: Vec<String>,
    },
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
    /// Show a space's audit log, newest first (space admins only).
    Audit {
        space: String,
        /// Skip this many of the newest entries.
        #[arg(long, default_value_t = 0)]
        start: u64,
        /// Show at most this many entries.
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Show or set a space's policy (immutability, quota, provenance, retention).
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Check credentials (--username with --password, --token, or --password-stdin) against
    /// the server and save them for it; later commands without credentials use them.
    Login {
        /// Read the password from stdin (with --username), or else an API token.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Forget the credentials saved for the server.
    Logout,
}

/// Uploads and downloads over this size get a progress bar when stderr is a terminal.
const PROGRESS_THRESHOLD: u64 = 4 * 1024 * 1024;

pub fn run(connection: Connection, command: ClientCommand) -> anyhow::Result<()> {
    let runtime = || tokio::runtime::Builder::new_current_thread().enable_all().build();
    match command {
        ClientCommand::Login { password_stdin } => runtime()?.block_on(login(&connection, password_stdin)),
        ClientCommand::Logout => logout(&connection),
        command => {
            // Credentials given as flags or in the environment win over saved ones.
            let saved = match given(&connection)? {
                Some(given) => given,
                None => credentials::load(&connection.server)?.unwrap_or_default(),
            };
            let client = saved.client(&connection.server)?;
            let result = runtime()?.block_on(execute(&client, connection.output, command));
            match result {
                Err(e) if saved == credentials::Saved::default() && status(&e) == Some(401) => Err(anyhow::anyhow!(
                    "{e:#}; log in with `chartyard login`, or pass --username and --password, or --token"
                )),
                result => result,
            }
        }
    }
}

/// The HTTP status of a server's error answer.
fn status(error: &anyhow::Error) -> Option<u16> {
    error.downcast_ref::<chartyard_client::Error>().and_then(chartyard_client::Error::status)
}

/// The credentials given by flags or environment variables, if any.
fn given(connection: &Connection) -> anyhow::Result<Option<credentials::Saved>> {
    Ok(match (&connection.username, &connection.password, &connection.token) {
        (Some(user), password, _) => Some(credentials::Saved::basic(user, password.as_deref().unwrap_or_default())),
        (None, _, Some(token)) => Some(credentials::Saved::token(token)),
        (None, Some(_), None) => anyhow::bail!("--password needs --username (or use --token)"),
        (None, None, None) => None,
    })
}

/// `login`: the credentials must sign in (`GET /_/whoami`) before they are saved.
async fn login(connection: &Connection, password_stdin: bool) -> anyhow::Result<()> {
    let server = credentials::server_key(&connection.server);
    let saved = if password_stdin {
        anyhow::ensure!(
            connection.password.is_none() && connection.token.is_none(),
            "--password-stdin takes the place of --password and --token"
        );
        let mut secret = String::new();
        std::io::stdin().take(64 * 1024).read_to_string(&mut secret).context("cannot read stdin")?;
        let secret = secret.trim_end_matches(['\r', '\n']);
        anyhow::ensure!(!secret.is_empty() && !secret.contains('\n'), "stdin holds no password (one line expected)");
        match &connection.username {
            Some(user) => credentials::Saved::basic(user, secret),
            None => credentials::Saved::token(secret),
        }
    } else {
        match (&connection.username, &connection.password, &connection.token) {
            (Some(user), Some(password), _) => credentials::Saved::basic(user, password),
            (Some(_), None, _) => anyhow::bail!("--username needs --password or --password-stdin"),
            (None, _, Some(token)) => credentials::Saved::token(token),
            (None, Some(_), None) => anyhow::bail!("--password needs --username"),
            (None, None, None) => {
                anyhow::bail!("login needs --username with --password or --password-stdin, or --token")
            }
        }
    };
    let client = saved.client(&server)?;
    let who = client.whoami().await.with_context(|| format!("cannot log in to {server}"))?;
    if who.access_control && who.user.is_none() {
        anyhow::bail!("cannot log in to {server}: the server signed these credentials in as nobody");
    }
    let path = credentials::save(&server, saved)?;
    if !who.access_control {
        eprintln!("note: {server} does not check credentials (access control is off)");
    }
    let out = Printer { output: connection.output };
    match out.output {
        Output::Json | Output::Yaml => out.value(&who),
        Output::Table => {
            let user = who.user.as_deref().unwrap_or("anonymous");
            let token = who.token.as_deref().map(|id| format!(" with token {id}")).unwrap_or_default();
            out.done(&format!("logged in to {server} as {user}{token}; saved in {}", path.display()))
        }
    }
}

/// `logout`: forgets the server's saved credentials; nothing saved is not an error.
fn logout(connection: &Connection) -> anyhow::Result<()> {
    let server = credentials::server_key(&connection.server);
    let out = Printer { output: connection.output };
    if credentials::remove(&server)? {
        out.done(&format!("logged out of {server}"))
    } else {
        out.done(&format!("not logged in to {server}"))
    }
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
        ClientCommand::Audit { space, start, limit } => {
            let entries = client.audit(&space, start, limit).await?;
            match out.output {
                Output::Json | Output::Yaml => out.value(&entries.items),
                Output::Table => {
                    let rows: Vec<Vec<String>> = entries
                        .items
                        .iter()
                        .map(|e| {
                            let target = match (&e.chart, &e.version) {
                                (Some(chart), Some(version)) => format!("{chart} {version}"),
                                (Some(chart), None) => chart.clone(),
                                _ => String::new(),
                            };
                            vec![
                                e.time.clone(),
                                e.user.clone(),
                                e.via.clone(),
                                e.client.clone(),
                                e.method.clone(),
                                e.path.clone(),
                                target,
                                e.status.to_string(),
                            ]
                        })
                        .collect();
                    print_table(&["TIME", "USER", "VIA", "CLIENT", "METHOD", "PATH", "CHART", "STATUS"], &rows);
                    Ok(())
                }
            }
        }
        ClientCommand::Search { words } => {
            let hits = client.search(&words.join(" "), Page::all()).await?;
            match out.output {
                Output::Json | Output::Yaml => out.value(&hits.items),
                Output::Table => {
                    let rows: Vec<Vec<String>> = hits
                        .items
                        .iter()
                        .map(|h| {
                            let app_version = h.app_version.clone().unwrap_or_default();
                            vec![
                                h.space.clone(),
                                h.chart.clone(),
                                h.version.clone(),
                                app_version,
                                h.description.clone(),
                            ]
                        })
                        .collect();
                    print_table(&["SPACE", "CHART", "VERSION", "APP VERSION", "DESCRIPTION"], &rows);
                    Ok(())
                }
            }
        }
        ClientCommand::Versions { space, chart } => {
            let metadata = client.chart_metadata(&space, &chart, Page::all()).await?;
            match out.output {
                Output::Json | Output::Yaml => out.value(&metadata.items),
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
                Output::Json | Output::Yaml => {
                    out.value(&serde_json::json!({ "chart": chart, "version": version, "path": path }))
                }
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
                Output::Json | Output::Yaml => out.value(&report),
                Output::Table => out.done(&format!(
                    "mirrored {source_url} into {space}: {} copied ({} with provenance), {} already there",
                    report.copied, report.with_provenance, report.skipped
                )),
            }
        }
        ClientCommand::Token(command) => token(client, &out, command).await,
        ClientCommand::Policy(command) => policy(client, &out, command).await,
        ClientCommand::Login { .. } | ClientCommand::Logout => unreachable!("run handles login and logout"),
    }
}

async fn policy(client: &Client, out: &Printer, command: PolicyCommand) -> anyhow::Result<()> {
    use chartyard_client::{Quota, Retention, SpacePolicy};
    match command {
        PolicyCommand::Get { space } => out.document(&client.policy(&space).await?),
        PolicyCommand::Set {
            space,
            file,
            immutable,
            quota_versions,
            quota_bytes,
            keep_last,
            max_age_days,
            keep_stable,
            require_provenance,
        } => {
            let policy = match file {
                Some(file) => {
                    let bytes = if file.as_os_str() == "-" {
                        let mut bytes = Vec::new();
                        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)?;
                        bytes
                    } else {
                        read(&file)?.to_vec()
                    };
                    serde_json::from_slice(&bytes)
                        .with_context(|| format!("{} is not a space policy in JSON", file.display()))?
                }
                None => {
                    let mut policy: SpacePolicy = client.policy(&space).await?;
                    if immutable.is_some() {
                        policy.immutable = immutable;
                    }
                    if require_provenance.is_some() {
                        policy.requireprovenance = require_provenance;
                    }
                    if quota_versions.is_some() || quota_bytes.is_some() {
                        let quota = policy.quota.get_or_insert_with(Quota::default);
                        quota.maxversions = quota_versions.or(quota.maxversions);
                        quota.maxbytes = quota_bytes.or(quota.maxbytes);
                    }
                    if keep_last.is_some() || max_age_days.is_some() || keep_stable {
                        let retention = policy.retention.get_or_insert_with(Retention::default);
                        retention.keeplast = keep_last.or(retention.keeplast);
                        retention.maxagedays = max_age_days.or(retention.maxagedays);
                        if keep_stable {
                            retention.keepstable = Some(true);
                        }
                    }
                    policy
                }
            };
            out.document(&client.set_policy(&space, &policy).await?)
        }
    }
}

async fn token(client: &Client, out: &Printer, command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create { spaces, role, expires, description } => {
            let request =
                NewToken { spaces, role: role.map(Role::from), expires, description: description.unwrap_or_default() };
            let token = client.create_token(&request).await?;
            if out.output != Output::Table {
                return out.value(&token);
            }
            let secret = token.token.as_deref().context("the server's answer holds no token")?;
            eprintln!(
                "created token {} for {} ({} in {}, expires {}); store it now, it is not shown again",
                token.id,
                token.owner,
                token.role.map_or("owner's role", Role::as_str),
                spaces_text(&token),
                token.expires.as_deref().unwrap_or("never"),
            );
            println!("{secret}");
            Ok(())
        }
        TokenCommand::List { all } => {
            let tokens = client.list_tokens(all).await?;
            if out.output != Output::Table {
                return out.value(&tokens);
            }
            let rows: Vec<Vec<String>> = tokens
                .iter()
                .map(|t| {
                    vec![
                        t.id.clone(),
                        t.owner.clone(),
                        spaces_text(t),
                        t.role.map_or("owner's", Role::as_str).to_string(),
                        t.created.clone(),
                        t.expires.clone().unwrap_or_else(|| "never".into()),
                        t.last_used.clone().unwrap_or_else(|| "never".into()),
                    ]
                })
                .collect();
            print_table(&["ID", "OWNER", "SPACES", "ROLE", "CREATED", "EXPIRES", "LAST USED"], &rows);
            Ok(())
        }
        TokenCommand::Revoke { id } => {
            client.revoke_token(&id).await?;
            out.done(&format!("revoked token {id}"))
        }
    }
}

/// A token's space patterns for people: `all spaces` when it is not limited.
fn spaces_text(token: &Token) -> String {
    if token.spaces.is_empty() { "all spaces".into() } else { token.spaces.join(",") }
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
            Output::Yaml => print!("{}", chartyard_core::yaml::to_yaml(value)?),
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
            Output::Table | Output::Yaml => {
                print!("{}", chartyard_core::yaml::to_yaml(&serde_json::to_value(value)?)?)
            }
        }
        Ok(())
    }

    fn list(&self, items: &[String], header: &str) -> anyhow::Result<()> {
        match self.output {
            Output::Json => println!("{}", serde_json::to_string_pretty(items)?),
            Output::Yaml => print!("{}", chartyard_core::yaml::to_yaml(&items)?),
            Output::Table => print_table(&[header], &items.iter().map(|i| vec![i.clone()]).collect::<Vec<_>>()),
        }
        Ok(())
    }

    fn done(&self, message: &str) -> anyhow::Result<()> {
        match self.output {
            Output::Json => println!("{}", serde_json::json!({ "ok": true, "message": message })),
            Output::Yaml => {
                print!("{}", chartyard_core::yaml::to_yaml(&serde_json::json!({ "ok": true, "message": message }))?)
            }
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

/// Credentials saved by `login`, per server URL, in `credentials.json` of the config folder
/// (`$CHARTYARD_CONFIG_DIR`, else `$XDG_CONFIG_HOME/chartyard`, else
/// `~/.config/chartyard`). The file is readable by its owner only (0600), and replaced
/// whole through a temporary file, so a crash never leaves half of it.
mod credentials {
    use std::collections::BTreeMap;
    use std::io::Write;
    use std::path::PathBuf;

    use anyhow::Context;
    use chartyard_client::Client;
    use serde::{Deserialize, Serialize};

    const FILE: &str = "credentials.json";
    /// A larger file is not one `login` wrote.
    const MAX_FILE: u64 = 1 << 20;

    /// One server's credentials: a user and password, or a token.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Saved {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub username: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub password: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub token: Option<String>,
    }

    impl Saved {
        pub fn basic(user: &str, password: &str) -> Self {
            Self { username: Some(user.into()), password: Some(password.into()), token: None }
        }

        pub fn token(token: &str) -> Self {
            Self { username: None, password: None, token: Some(token.into()) }
        }

        /// A client of `server` sending these credentials (none: anonymous).
        pub fn client(&self, server: &str) -> anyhow::Result<Client> {
            let mut builder = Client::builder(server);
            if let Some(user) = &self.username {
                builder = builder.basic_auth(user, self.password.clone().unwrap_or_default());
            } else if let Some(token) = &self.token {
                builder = builder.bearer_token(token);
            }
            Ok(builder.build()?)
        }
    }

    #[derive(Debug, Default, Serialize, Deserialize)]
    struct File {
        #[serde(default)]
        servers: BTreeMap<String, Saved>,
    }

    /// The key of a server: its URL without a trailing slash.
    pub fn server_key(server: &str) -> String {
        server.trim_end_matches('/').to_string()
    }

    fn folder() -> anyhow::Result<PathBuf> {
        let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        if let Some(dir) = set("CHARTYARD_CONFIG_DIR") {
            return Ok(dir);
        }
        if let Some(dir) = set("XDG_CONFIG_HOME").filter(|d| d.is_absolute()) {
            return Ok(dir.join("chartyard"));
        }
        let home = set("HOME").context("no config folder: set CHARTYARD_CONFIG_DIR or HOME")?;
        Ok(home.join(".config").join("chartyard"))
    }

    fn read(path: &std::path::Path) -> anyhow::Result<File> {
        let file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(File::default()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_FILE + 1), &mut text)
            .with_context(|| format!("cannot read {}", path.display()))?;
        anyhow::ensure!(text.len() as u64 <= MAX_FILE, "{} is larger than credentials ever are", path.display());
        serde_json::from_slice(&text)
            .with_context(|| format!("{} is not a credentials file; remove it and log in again", path.display()))
    }

    fn write(path: &std::path::Path, file: &File) -> anyhow::Result<()> {
        if file.servers.is_empty() {
            return match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(e).with_context(|| format!("cannot remove {}", path.display()))
                }
                _ => Ok(()),
            };
        }
        let dir = path.parent().expect("the file is in a folder");
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let partial = dir.join(format!(".{FILE}.{}.partial", std::process::id()));
        let _ = std::fs::remove_file(&partial);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let result = options.open(&partial).and_then(|mut out| {
            out.write_all(&serde_json::to_vec_pretty(file).map_err(std::io::Error::other)?)?;
            out.write_all(b"\n")?;
            out.sync_all()
        });
        if let Err(e) = result.and_then(|()| std::fs::rename(&partial, path)) {
            let _ = std::fs::remove_file(&partial);
            return Err(e).with_context(|| format!("cannot write {}", path.display()));
        }
        Ok(())
    }

    /// The credentials saved for `server`, if any.
    pub fn load(server: &str) -> anyhow::Result<Option<Saved>> {
        // Without a config folder there is nothing saved.
        let Ok(dir) = folder() else { return Ok(None) };
        Ok(read(&dir.join(FILE))?.servers.remove(&server_key(server)))
    }

    /// Saves `saved` for `server`, keeping other servers' entries; answers the file's path.
    pub fn save(server: &str, saved: Saved) -> anyhow::Result<PathBuf> {
        let path = folder()?.join(FILE);
        let mut file = read(&path)?;
        file.servers.insert(server_key(server), saved);
        write(&path, &file)?;
        Ok(path)
    }

    /// Removes `server`'s entry; answers whether there was one.
    pub fn remove(server: &str) -> anyhow::Result<bool> {
        let path = folder()?.join(FILE);
        let mut file = read(&path)?;
        if file.servers.remove(&server_key(server)).is_none() {
            return Ok(false);
        }
        write(&path, &file)?;
        Ok(true)
    }
}
