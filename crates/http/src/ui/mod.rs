//! The web UI under `/_/ui/`: server-rendered pages over the same registry reads as the
//! APIs, and HTML forms for the writes, checked by the same [`Caller`].
//!
//! - Reading needs no JavaScript; one small embedded script adds copy buttons, live
//!   filtering and drag and drop. Every asset is embedded and served with an ETag; the
//!   pages load nothing from other hosts (the Content-Security-Policy says so too).
//! - Chart files are untrusted: READMEs are rendered by `pulldown-cmark` and sanitised by
//!   `ammonia`; every other text is escaped by the templates.
//! - With access control on, a browser signs in with a password and gets a signed
//!   session cookie valid on `/_/ui/` only; every form carries a CSRF token bound to the
//!   session, and cross-site form posts are refused whatever they carry.

mod actions;
mod assets;
mod markdown;
mod pages;

use std::collections::HashMap;

use axum::Router;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chartyard_core::RegistryError;
use chartyard_core::access::Action;
use chartyard_core::archive::Files;
use chartyard_core::record::VersionRecord;
use chartyard_storage::ListedVersions;
use std::sync::Arc;

use crate::AppState;
use crate::api_v1::{readable_spaces, search_hits};
use crate::auth::{Caller, Denied};
use crate::error::ApiError;

/// Versions listed per page of a chart page's versions table.
const VERSIONS_PER_PAGE: usize = 50;
/// Search hits per page.
const HITS_PER_PAGE: usize = 50;
/// Most bytes of one chart file a page shows.
const MAX_SHOWN_FILE: usize = 1024 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(root))
        .route("/_/ui", get(|| async { Redirect::permanent("/_/ui/") }))
        .route("/_/ui/", get(spaces_page))
        .route("/_/ui/-/search", get(search_page))
        .route("/_/ui/-/signin", get(actions::signin_page).post(actions::sign_in))
        .route("/_/ui/-/signout", post(actions::sign_out))
        .route("/_/ui/-/tokens", get(actions::tokens_page).post(actions::create_token))
        .route("/_/ui/-/tokens/{id}/revoke", post(actions::revoke_token))
        .route("/_/ui/-/spaces", post(actions::create_space))
        .route("/_/ui/-/assets/{file}", get(assets::serve))
        .route("/_/ui/{space}", get(space_page))
        .route("/_/ui/{space}/-/upload", post(actions::upload))
        .route("/_/ui/{space}/-/delete", post(actions::delete_space))
        .route("/_/ui/{space}/{chart}", get(latest_chart_page))
        .route("/_/ui/{space}/{chart}/{version}", get(chart_page))
        .route("/_/ui/{space}/{chart}/{version}/delete", post(actions::delete_version))
        .route("/_/ui/{space}/{chart}/{version}/archive", get(download_archive))
        .route("/_/ui/{space}/{chart}/{version}/provenance", get(download_provenance))
        .route("/_/ui/{space}/{chart}/{version}/templates/{*path}", get(template_page))
}

/// What every page is rendered with: the caller, and how the client reached us.
pub(crate) struct Ctx {
    app: AppState,
    caller: Caller,
    /// `scheme://host` as the client reached the server, for install snippets.
    base: String,
    /// The host (and port) the client reached.
    host: String,
    /// The request's path and query, where a sign-in returns to.
    here: String,
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Response> {
        let caller = parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::internal_message("no caller").into_response())?;
        let host = text_header(&parts.headers, "x-forwarded-host")
            .or_else(|| text_header(&parts.headers, header::HOST.as_str()))
            .unwrap_or_else(|| "localhost".into());
        let https = caller.https() || text_header(&parts.headers, "x-forwarded-proto").is_some_and(|p| p == "https");
        let base = format!("{}://{host}", if https { "https" } else { "http" });
        // A sign-in returns to the page asked for; after a refused form, to the start.
        let here = match parts.method {
            axum::http::Method::GET => {
                parts.uri.path_and_query().map_or_else(|| "/_/ui/".into(), |p| p.as_str().to_string())
            }
            _ => "/_/ui/".into(),
        };
        Ok(Self { app: app.clone(), caller, base, host, here })
    }
}

/// A header as text, without characters that could break out of where it is shown.
fn text_header(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?;
    let value = value.split(',').next()?.trim();
    let ok = !value.is_empty() && value.len() <= 256 && value.bytes().all(|b| b.is_ascii_graphic() && b != b'"');
    ok.then(|| value.to_string())
}

/// Why a page cannot be shown.
pub(crate) enum UiError {
    Denied(Denied),
    Status(StatusCode, String),
}

impl From<Denied> for UiError {
    fn from(denied: Denied) -> Self {
        Self::Denied(denied)
    }
}

impl From<RegistryError> for UiError {
    fn from(error: RegistryError) -> Self {
        ApiError::from(error).into()
    }
}

impl From<ApiError> for UiError {
    fn from(error: ApiError) -> Self {
        Self::Status(error.status(), error.message().to_string())
    }
}

type UiResult = Result<Response, UiError>;

impl Ctx {
    /// The answer of a handler: its page, or an error page.
    fn answer(&self, result: UiResult) -> Response {
        match result {
            Ok(response) => response,
            Err(UiError::Denied(Denied::Unauthenticated(message))) => {
                // A sign-in form in place of the page; no Basic challenge, which would
                // make the browser ask in its own dialog.
                let page = pages::signin(self, Some(&message), &self.here);
                html(StatusCode::UNAUTHORIZED, page)
            }
            Err(UiError::Denied(denied)) => {
                let status = denied.status();
                let mut response = html(status, pages::error(self, status, &denied.message()));
                response.headers_mut().extend(denied.headers().into_iter().filter(|(n, _)| n == header::RETRY_AFTER));
                response
            }
            Err(UiError::Status(status, message)) => html(status, pages::error(self, status, &message)),
        }
    }

    /// `Ok` if the caller may do `action` in `space`.
    fn require(&self, space: &str, action: Action) -> Result<(), UiError> {
        self.caller.require(space, action).map_err(UiError::from)
    }

    fn signed_in_user(&self) -> Option<&str> {
        self.caller.identity.user.as_deref()
    }
}

/// A rendered page with the headers every page carries.
pub(crate) fn html(status: StatusCode, markup: maud::Markup) -> Response {
    let mut response = (status, markup.into_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(assets::CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

fn ok(markup: maud::Markup) -> UiResult {
    Ok(html(StatusCode::OK, markup))
}

/// `GET /`: browsers go to the UI; everything else gets what it got before (404).
async fn root(headers: HeaderMap, uri: axum::http::Uri) -> Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.split(',').any(|t| t.trim().starts_with("text/html")));
    if wants_html {
        return Redirect::to("/_/ui/").into_response();
    }
    crate::not_found(uri).await
}

// ---- reading ----

/// A space as the space list shows it.
pub(crate) struct SpaceRow {
    name: String,
    charts: usize,
    versions: usize,
}

async fn spaces_page(ctx: Ctx) -> Response {
    let result = async {
        ctx.caller.credentials()?;
        let mut rows = Vec::new();
        for name in readable_spaces(&ctx.app, &ctx.caller).await? {
            let (charts, versions) = match ctx.app.registry.space_counts(&name).await {
                Err(RegistryError::NotFound(_)) => continue,
                counts => counts?,
            };
            rows.push(SpaceRow { name, charts, versions });
        }
        ok(pages::spaces(&ctx, &rows))
    }
    .await;
    ctx.answer(result)
}

/// A chart as a space's page lists it: its name and its latest version's index entry.
pub(crate) type ChartRow = chartyard_storage::ChartEntry;

async fn space_page(ctx: Ctx, Path(space): Path<String>, Query(query): Query<HashMap<String, String>>) -> Response {
    let result = async {
        ctx.require(&space, Action::Read)?;
        let filter = query.get("q").map(|q| q.trim().to_lowercase()).unwrap_or_default();
        let entries = ctx.app.registry.latest_index_entries(&space).await?;
        let rows: Vec<&ChartRow> =
            entries.iter().filter(|(name, entry)| filter.is_empty() || matches_filter(name, entry, &filter)).collect();
        ok(pages::space(&ctx, &space, &rows, &filter))
    }
    .await;
    ctx.answer(result)
}

/// Whether a chart's name, description or keywords contain `filter` (lower case).
fn matches_filter(name: &str, entry: &serde_json::Map<String, serde_json::Value>, filter: &str) -> bool {
    let text = |key: &str| entry.get(key).and_then(|v| v.as_str()).unwrap_or_default().to_lowercase();
    let keywords = entry.get("keywords").and_then(|k| k.as_array());
    name.to_lowercase().contains(filter)
        || text("description").contains(filter)
        || keywords.is_some_and(|k| k.iter().any(|k| k.as_str().is_some_and(|k| k.to_lowercase().contains(filter))))
}

async fn latest_chart_page(
    ctx: Ctx,
    Path((space, chart)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let result = async {
        ctx.require(&space, Action::Read)?;
        let version = ctx.app.registry.latest_version(&space, &chart).await?;
        render_chart(&ctx, &space, &chart, &version, &query).await
    }
    .await;
    ctx.answer(result)
}

async fn chart_page(
    ctx: Ctx,
    Path((space, chart, version)): Path<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let result = async {
        ctx.require(&space, Action::Read)?;
        render_chart(&ctx, &space, &chart, &version, &query).await
    }
    .await;
    ctx.answer(result)
}

/// What a chart page shows of one version.
pub(crate) struct ChartView<'a> {
    space: &'a str,
    chart: &'a str,
    version: &'a str,
    record: Arc<VersionRecord>,
    files: Arc<Files>,
    versions: ListedVersions,
    versions_start: usize,
}

async fn render_chart(ctx: &Ctx, space: &str, chart: &str, version: &str, query: &HashMap<String, String>) -> UiResult {
    let registry = &ctx.app.registry;
    let (record, files) = registry.chart_files(space, chart, version).await?;
    let start = query.get("versions").and_then(|s| s.parse().ok()).unwrap_or(0);
    let versions = registry.chart_versions_page(space, chart, start, VERSIONS_PER_PAGE).await?;
    let view = ChartView { space, chart, version, record, files, versions, versions_start: start };
    ok(pages::chart(ctx, &view))
}

async fn template_page(
    ctx: Ctx,
    Path((space, chart, version, path)): Path<(String, String, String, String)>,
) -> Response {
    let result = async {
        ctx.require(&space, Action::Read)?;
        let (_, files) = ctx.app.registry.chart_files(&space, &chart, &version).await?;
        let path = format!("templates/{path}");
        let content = files
            .get(&path)
            .ok_or_else(|| UiError::Status(StatusCode::NOT_FOUND, format!("{chart} {version} has no file {path}")))?;
        // A template is text a person reads; past this, the archive is the way to read it.
        let shown = &content[..content.len().min(MAX_SHOWN_FILE)];
        let cut = (shown.len() < content.len()).then_some(content.len());
        ok(pages::template(&ctx, &space, &chart, &version, &path, &String::from_utf8_lossy(shown), cut))
    }
    .await;
    ctx.answer(result)
}

async fn download_archive(
    ctx: Ctx,
    State(app): State<AppState>,
    Path((space, chart, version)): Path<(String, String, String)>,
) -> Response {
    let result = async {
        ctx.require(&space, Action::Read)?;
        let archive = app.registry.open_archive(&space, &chart, &version).await?;
        let headers = attachment(&format!("{chart}-{version}.tgz"), "application/gzip");
        Ok((headers, [(header::CONTENT_LENGTH, archive.size.to_string())], axum::body::Body::from_stream(archive.body))
            .into_response())
    }
    .await;
    ctx.answer(result)
}

async fn download_provenance(
    ctx: Ctx,
    State(app): State<AppState>,
    Path((space, chart, version)): Path<(String, String, String)>,
) -> Response {
    let result = async {
        ctx.require(&space, Action::Read)?;
        let prov = app.registry.provenance(&space, &chart, &version).await?;
        Ok((attachment(&format!("{chart}-{version}.tgz.prov"), "application/pgp-signature"), prov).into_response())
    }
    .await;
    ctx.answer(result)
}

/// The headers of a file download. Names and versions are checked, so `name` needs no
/// quoting beyond the quotes.
fn attachment(name: &str, content_type: &'static str) -> [(header::HeaderName, HeaderValue); 2] {
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    [(header::CONTENT_TYPE, HeaderValue::from_static(content_type)), (header::CONTENT_DISPOSITION, disposition)]
}

async fn search_page(ctx: Ctx, Query(query): Query<HashMap<String, String>>) -> Response {
    let result = async {
        let q = query.get("q").cloned().unwrap_or_default();
        let start: usize = query.get("start").and_then(|s| s.parse().ok()).unwrap_or(0);
        let hits = if q.trim().is_empty() { Vec::new() } else { search_hits(&ctx.app, &ctx.caller, &q).await? };
        ok(pages::search(&ctx, &q, &hits, start, HITS_PER_PAGE))
    }
    .await;
    ctx.answer(result)
}
