//! A client for chartyard's `/api/v1` API (the seed's REST API), its ChartMuseum-style
//! uploads and its own routes under `/_/` (who the credentials sign in as, API tokens).
//! The JSON types are the server's own ([`chartyard_core::wire`]), so the two cannot drift
//! apart.
//!
//! ```no_run
//! # async fn example() -> Result<(), chartyard_client::Error> {
//! use chartyard_client::{Client, Page};
//!
//! let client = Client::builder("http://127.0.0.1:8099").basic_auth("ci", "secret").build()?;
//! client.create_space("library").await?;
//! let archive = std::fs::read("mychart-1.0.0.tgz").unwrap();
//! let link = client.upload_chart("library", archive).await?;
//! println!("stored at {}", link.link);
//! let versions = client.list_versions("library", "mychart", Page::all()).await?;
//! assert_eq!(versions.items, ["1.0.0"]);
//! # Ok(())
//! # }
//! ```

use std::time::Duration;

use bytes::Bytes;
use chartyard_core::wire::{ChartLink, ErrorBody, Link, ListResponse, Metadata};
use reqwest::{Method, RequestBuilder, StatusCode, multipart};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use chartyard_core::access::Role;
pub use chartyard_core::metadata::ChartMetadata;
pub use chartyard_core::policy::{Quota, Retention, SpacePolicy};
pub use chartyard_core::wire::{AuditEntry, SearchHit};
/// The HTTP client underneath, for callers that need the same version.
pub use reqwest;

/// What a call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error: its status, `message` and `reason`.
    #[error("{message} (HTTP {status}, {reason})")]
    Api { status: u16, message: String, reason: String },
    /// The request did not complete (connection, timeout, TLS, ...); the cause is its
    /// `source`.
    #[error("request failed")]
    Transport(#[from] reqwest::Error),
    /// The server's answer was not what the API promises.
    #[error("unexpected answer: {0}")]
    Decode(String),
}

impl Error {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Which slice of a list to ask for (`start`, `limit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub start: u64,
    pub limit: u64,
}

impl Page {
    /// The server's default page: the first 10 items.
    pub fn first() -> Self {
        Self { start: 0, limit: 10 }
    }

    /// Everything, in one page.
    pub fn all() -> Self {
        Self { start: 0, limit: u64::MAX >> 1 }
    }
}

/// Credentials sent with every request.
#[derive(Debug, Clone)]
pub enum Auth {
    Basic { user: String, password: String },
    Bearer(String),
}

/// Builds a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    base: String,
    timeout: Duration,
    auth: Option<Auth>,
}

impl ClientBuilder {
    /// Time allowed for each request (default 60 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn basic_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth = Some(Auth::Basic { user: user.into(), password: password.into() });
        self
    }

    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.auth = Some(Auth::Bearer(token.into()));
        self
    }

    pub fn build(self) -> Result<Client> {
        let http = reqwest::Client::builder().timeout(self.timeout).build()?;
        Ok(Client { http, base: self.base.trim_end_matches('/').to_string(), auth: self.auth })
    }
}

/// The answer to composing a chart with `dry_run`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct ComposePreview {
    pub metadata: Metadata,
    pub values: Value,
}

/// Who a client's credentials sign in as (`GET /_/whoami`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoAmI {
    /// The signed-in user; none for anonymous callers and on servers without access control.
    pub user: Option<String>,
    /// Whether the server checks credentials at all.
    #[serde(rename = "accesscontrol")]
    pub access_control: bool,
    /// Whether the caller is a global admin (everyone is, without access control).
    pub admin: bool,
    /// The id of the API token the caller signed in with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// What a new API token may do (`POST /_/tokens`); every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NewToken {
    /// Space patterns (`team-*`) the token is limited to; none: every space its owner may use.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub spaces: Vec<String>,
    /// The most the token may do in a space; none: what its owner may do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// How long the token lives (`30d`, `12h`, `1h 30m`); none: the longest the server
    /// allows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// A note for people listing tokens (`ci of project x`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// An API token as the server shows it. The secret (`token`) is only in the answer to
/// [`Client::create_token`]; the server keeps only its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    pub id: String,
    /// The user the token signs in as.
    pub owner: String,
    /// Space patterns the token is limited to; empty: not limited by space.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spaces: Vec<String>,
    /// The most the token may do; none: what its owner may do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// When it was created (RFC 3339).
    pub created: String,
    /// When it stops working (RFC 3339); none: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// When it was last used (RFC 3339, roughly); none: never.
    #[serde(default, rename = "lastused", skip_serializing_if = "Option::is_none")]
    pub last_used: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The token itself (`cyt_...`), to send as a password or bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// Tokens asked for per request when listing them all.
const TOKEN_PAGE: u64 = 100;

/// A client of one chartyard server.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    auth: Option<Auth>,
}

fn segment(value: &str) -> String {
    // Names are [A-Za-z0-9_-]; versions may carry `+`, which a path must escape.
    value.replace('%', "%25").replace('+', "%2B").replace('/', "%2F")
}

impl Client {
    /// A builder for a server at `base` (e.g. `http://127.0.0.1:8099`).
    pub fn builder(base: impl Into<String>) -> ClientBuilder {
        ClientBuilder { base: base.into(), timeout: Duration::from_secs(60), auth: None }
    }

    /// A client with default settings.
    pub fn new(base: impl Into<String>) -> Result<Self> {
        Self::builder(base).build()
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.auth {
            None => request,
            Some(Auth::Basic { user, password }) => request.basic_auth(user, Some(password)),
            Some(Auth::Bearer(token)) => request.bearer_auth(token),
        }
    }

    /// Sends a request and checks its status; API errors become [`Error::Api`].
    async fn send(&self, request: RequestBuilder) -> Result<reqwest::Response> {
        let response = request.send().await?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        Err(match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) => Error::Api { status: status.as_u16(), message: body.message, reason: body.reason },
            Err(_) => {
                // ChartMuseum-style bodies say {"error": "..."}.
                let message = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
                    .unwrap_or(text);
                Error::Api { status: status.as_u16(), message, reason: String::new() }
            }
        })
    }

    async fn json<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T> {
        let response = self.send(request).await?;
        let bytes = response.bytes().await?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Decode(e.to_string()))
    }

    async fn empty(&self, request: RequestBuilder) -> Result<()> {
        self.send(request).await.map(|_| ())
    }

    fn paged(&self, path: &str, page: Page) -> RequestBuilder {
        self.request(Method::GET, path).query(&[("start", page.start), ("limit", page.limit)])
    }

    fn version_path(space: &str, chart: &str, version: &str) -> String {
        format!("/api/v1/spaces/{}/charts/{}/versions/{}", segment(space), segment(chart), segment(version))
    }

    // ---- spaces ----

    pub async fn list_spaces(&self, page: Page) -> Result<ListResponse<String>> {
        self.json(self.paged("/api/v1/spaces", page)).await
    }

    pub async fn create_space(&self, space: &str) -> Result<Link> {
        self.json(self.request(Method::POST, "/api/v1/spaces").query(&[("space", space)])).await
    }

    pub async fn delete_space(&self, space: &str) -> Result<()> {
        self.empty(self.request(Method::DELETE, &format!("/api/v1/spaces/{}", segment(space)))).await
    }

    /// The space's audit log from entry `start` (0: the newest) on, at most `limit`
    /// entries (the server sends at most 1000 a page), newest first; for space admins.
    pub async fn audit(&self, space: &str, start: u64, limit: u64) -> Result<ListResponse<AuditEntry>> {
        let page = Page { start, limit };
        self.json(self.paged(&format!("/api/v1/spaces/{}/audit", segment(space)), page)).await
    }

    /// A space's policy (every field absent: no rules).
    pub async fn policy(&self, space: &str) -> Result<SpacePolicy> {
        self.json(self.request(Method::GET, &format!("/api/v1/spaces/{}/policy", segment(space)))).await
    }

    /// Replaces a space's policy (space admins only); answers it as stored.
    pub async fn set_policy(&self, space: &str, policy: &SpacePolicy) -> Result<SpacePolicy> {
        let path = format!("/api/v1/spaces/{}/policy", segment(space));
        self.json(self.request(Method::PUT, &path).json(policy)).await
    }

    // ---- search ----

    /// The charts of every space the caller may read whose name, keywords or description
    /// hold every word of `words`, best match first, each at its latest version.
    pub async fn search(&self, words: &str, page: Page) -> Result<ListResponse<SearchHit>> {
        self.json(self.paged("/api/v1/search", page).query(&[("q", words)])).await
    }

    // ---- charts ----

    pub async fn list_charts(&self, space: &str, page: Page) -> Result<ListResponse<String>> {
        self.json(self.paged(&format!("/api/v1/spaces/{}/charts", segment(space)), page)).await
    }

    /// Uploads a chart archive (`.tgz`); a missing space is created.
    pub async fn upload_chart(&self, space: &str, archive: impl Into<Bytes>) -> Result<ChartLink> {
        let part = multipart::Part::stream(reqwest::Body::from(archive.into())).file_name("chart.tgz");
        let form = multipart::Form::new().part("chartfile", part);
        let path = format!("/api/v1/spaces/{}/charts", segment(space));
        self.json(self.request(Method::POST, &path).multipart(form)).await
    }

    /// Uploads a chart archive from a streaming body of `length` bytes (for large archives,
    /// or to follow the upload's progress); a missing space is created.
    pub async fn upload_chart_stream(&self, space: &str, body: reqwest::Body, length: u64) -> Result<ChartLink> {
        let part = multipart::Part::stream_with_length(body, length).file_name("chart.tgz");
        let form = multipart::Form::new().part("chartfile", part);
        let path = format!("/api/v1/spaces/{}/charts", segment(space));
        self.json(self.request(Method::POST, &path).multipart(form)).await
    }

    /// Composes a new chart from stored charts with an orchestration config.
    pub async fn compose_chart(&self, space: &str, config: &Value) -> Result<ChartLink> {
        let path = format!("/api/v1/spaces/{}/charts", segment(space));
        self.json(self.request(Method::POST, &path).json(config)).await
    }

    /// What composing would produce, without storing anything.
    pub async fn preview_composition(&self, space: &str, config: &Value) -> Result<ComposePreview> {
        let path = format!("/api/v1/spaces/{}/charts", segment(space));
        self.json(self.request(Method::POST, &path).query(&[("dryRun", "true")]).json(config)).await
    }

    pub async fn delete_chart(&self, space: &str, chart: &str) -> Result<()> {
        let path = format!("/api/v1/spaces/{}/charts/{}", segment(space), segment(chart));
        self.empty(self.request(Method::DELETE, &path)).await
    }

    // ---- versions ----

    pub async fn list_versions(&self, space: &str, chart: &str, page: Page) -> Result<ListResponse<String>> {
        let path = format!("/api/v1/spaces/{}/charts/{}/versions", segment(space), segment(chart));
        self.json(self.paged(&path, page)).await
    }

    /// The exact stored archive of a version.
    pub async fn download_version(&self, space: &str, chart: &str, version: &str) -> Result<Bytes> {
        Ok(self.send(self.request(Method::GET, &Self::version_path(space, chart, version))).await?.bytes().await?)
    }

    /// A version's archive as a response to stream (for large archives and progress).
    pub async fn download_version_response(
        &self,
        space: &str,
        chart: &str,
        version: &str,
    ) -> Result<reqwest::Response> {
        self.send(self.request(Method::GET, &Self::version_path(space, chart, version))).await
    }

    /// Replaces a version's archive; it must hold that chart and version.
    pub async fn replace_version(
        &self,
        space: &str,
        chart: &str,
        version: &str,
        archive: impl Into<Bytes>,
    ) -> Result<ChartLink> {
        let part = multipart::Part::stream(reqwest::Body::from(archive.into())).file_name("chart.tgz");
        let form = multipart::Form::new().part("chartfile", part);
        self.json(self.request(Method::PUT, &Self::version_path(space, chart, version)).multipart(form)).await
    }

    pub async fn delete_version(&self, space: &str, chart: &str, version: &str) -> Result<()> {
        self.empty(self.request(Method::DELETE, &Self::version_path(space, chart, version))).await
    }

    // ---- metadata and values ----

    pub async fn version_metadata(&self, space: &str, chart: &str, version: &str) -> Result<Metadata> {
        let path = format!("{}/manifests/metadata", Self::version_path(space, chart, version));
        self.json(self.request(Method::GET, &path)).await
    }

    /// Replaces a version's Chart.yaml fields (name and version must stay).
    pub async fn update_version_metadata(
        &self,
        space: &str,
        chart: &str,
        version: &str,
        metadata: &Value,
    ) -> Result<Metadata> {
        let path = format!("{}/manifests/metadata", Self::version_path(space, chart, version));
        self.json(self.request(Method::PUT, &path).json(metadata)).await
    }

    pub async fn version_values(&self, space: &str, chart: &str, version: &str) -> Result<Value> {
        let path = format!("{}/manifests/values", Self::version_path(space, chart, version));
        self.json(self.request(Method::GET, &path)).await
    }

    /// Replaces a version's values.yaml; answers the version's values afterwards.
    pub async fn update_version_values(
        &self,
        space: &str,
        chart: &str,
        version: &str,
        values: &Value,
    ) -> Result<Value> {
        let path = format!("{}/manifests/values", Self::version_path(space, chart, version));
        self.json(self.request(Method::PUT, &path).json(values)).await
    }

    pub async fn space_metadata(&self, space: &str, page: Page) -> Result<ListResponse<Metadata>> {
        self.json(self.paged(&format!("/api/v1/spaces/{}/metadata", segment(space)), page)).await
    }

    pub async fn space_latest_metadata(&self, space: &str, page: Page) -> Result<ListResponse<Metadata>> {
        self.json(self.paged(&format!("/api/v1/spaces/{}/metadata/latest", segment(space)), page)).await
    }

    pub async fn chart_metadata(&self, space: &str, chart: &str, page: Page) -> Result<ListResponse<Metadata>> {
        let path = format!("/api/v1/spaces/{}/charts/{}/metadata", segment(space), segment(chart));
        self.json(self.paged(&path, page)).await
    }

    pub async fn chart_latest_metadata(&self, space: &str, chart: &str) -> Result<Metadata> {
        let path = format!("/api/v1/spaces/{}/charts/{}/metadata/latest", segment(space), segment(chart));
        self.json(self.request(Method::GET, &path)).await
    }

    // ---- sign-in and API tokens ----

    /// Who this client's credentials sign in as. Credentials the server refuses are an
    /// [`Error::Api`] with status 401.
    pub async fn whoami(&self) -> Result<WhoAmI> {
        self.json(self.request(Method::GET, "/_/whoami")).await
    }

    /// Creates an API token for the signed-in user; the answer holds the token itself,
    /// which the server never shows again. Needs a password: a client signed in with a
    /// token gets 403.
    pub async fn create_token(&self, token: &NewToken) -> Result<Token> {
        self.json(self.request(Method::POST, "/_/tokens").json(token)).await
    }

    /// The signed-in user's tokens, or with `all` every user's (global admins only; others
    /// get 403). Reads every page.
    pub async fn list_tokens(&self, all: bool) -> Result<Vec<Token>> {
        let mut tokens = Vec::new();
        loop {
            let mut request = self.paged("/_/tokens", Page { start: tokens.len() as u64, limit: TOKEN_PAGE });
            if all {
                request = request.query(&[("all", "true")]);
            }
            let page: ListResponse<Token> = self.json(request).await?;
            let done = page.items.is_empty() || tokens.len() + page.items.len() >= page.metadata.total;
            tokens.extend(page.items);
            if done {
                return Ok(tokens);
            }
        }
    }

    /// Revokes a token: it stops working at once, and so do bearer tokens made from it.
    /// Only its owner or a global admin may; for anyone else it is absent (404).
    pub async fn revoke_token(&self, id: &str) -> Result<()> {
        self.empty(self.request(Method::DELETE, &format!("/_/tokens/{}", segment(id)))).await
    }

    // ---- ChartMuseum-style and health ----

    /// Uploads a chart with its provenance file the ChartMuseum way (`/api/{space}/charts`).
    pub async fn upload_with_provenance(
        &self,
        space: &str,
        archive: impl Into<Bytes>,
        provenance: Option<Bytes>,
    ) -> Result<()> {
        let mut form = multipart::Form::new()
            .part("chart", multipart::Part::stream(reqwest::Body::from(archive.into())).file_name("chart.tgz"));
        if let Some(prov) = provenance {
            form = form.part("prov", multipart::Part::stream(reqwest::Body::from(prov)).file_name("chart.tgz.prov"));
        }
        self.empty(self.request(Method::POST, &format!("/api/{}/charts", segment(space))).multipart(form)).await
    }

    /// Whether the server answers its health check.
    pub async fn health(&self) -> Result<bool> {
        let response = self.request(Method::GET, "/health").send().await?;
        Ok(response.status() == StatusCode::OK)
    }
}
