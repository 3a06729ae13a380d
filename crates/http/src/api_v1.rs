//! The seed's `/api/v1` API, route for route, with its JSON shapes and status codes.

use std::collections::HashMap;

use axum::Extension;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post, put};
use chartyard_core::access::Action;
use chartyard_core::error::bounded;
use chartyard_core::metadata::ChartMetadata;
use chartyard_core::names::latest;
use chartyard_core::paging::Page;
use chartyard_core::policy::SpacePolicy;
use chartyard_core::wire::{ChartLink, Link, ListResponse, Metadata, SearchHit};
use chartyard_storage::StoredVersion;
use chartyard_storage::compose::Composed;
use serde::Serialize;
use serde_json::Value;

use crate::AppState;
use crate::auth::{self, Caller, Protocol};
use crate::error::ApiError;
use crate::space::delete_options;

type ApiResult<T> = Result<T, ApiError>;

/// The multipart field the seed's clients upload archives in.
const CHART_FILE_FIELD: &str = "chartfile";

pub fn routes() -> Router<AppState> {
    use Action::{Admin, Delete, Read, Write};
    const VERSION: &str = "/spaces/{space}/charts/{chart}/versions/{version}";
    Router::new()
        // Listing is filtered to what the caller may read; creating checks the named space.
        .route("/spaces", get(list_spaces).post(create_space))
        // Answers only from the spaces the caller may read.
        .route("/search", get(search))
        .route("/spaces/{space}", to(Admin, delete(delete_space)))
        .route("/spaces/{space}/audit", to(Admin, get(space_audit)))
        .route("/spaces/{space}/policy", to(Read, get(get_policy)).merge(to(Admin, put(set_policy))))
        .route("/spaces/{space}/charts", to(Read, get(list_charts)).merge(to(Write, post(upload_or_compose))))
        .route("/spaces/{space}/charts/{chart}", to(Delete, delete(delete_chart)))
        .route("/spaces/{space}/charts/{chart}/versions", to(Read, get(list_versions)))
        .route(
            VERSION,
            to(Read, get(download)).merge(to(Write, put(replace))).merge(to(Delete, delete(delete_version))),
        )
        .route(
            &format!("{VERSION}/manifests/metadata"),
            to(Read, get(version_metadata)).merge(to(Write, put(update_metadata))),
        )
        .route(
            &format!("{VERSION}/manifests/values"),
            to(Read, get(version_values)).merge(to(Write, put(update_values))),
        )
        .route("/spaces/{space}/metadata", to(Read, get(space_metadata)))
        .route("/spaces/{space}/metadata/latest", to(Read, get(space_latest_metadata)))
        .route("/spaces/{space}/charts/{chart}/metadata", to(Read, get(chart_metadata)))
        .route("/spaces/{space}/charts/{chart}/metadata/latest", to(Read, get(chart_latest_metadata)))
        .method_not_allowed_fallback(method_not_allowed)
}

/// `route`, for callers who may do `action` in the path's space.
fn to(action: Action, route: MethodRouter<AppState>) -> MethodRouter<AppState> {
    auth::guard(Protocol::Api, action, route)
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this resource")
}

/// The OpenAPI document of this API, as the seed served it.
pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], include_str!("openapi.json")).into_response()
}

fn version_link(space: &str, chart: &str, version: &str) -> String {
    format!("/api/v1/spaces/{space}/charts/{chart}/versions/{version}")
}

fn chart_link(stored: &StoredVersion) -> ChartLink {
    ChartLink {
        space: stored.space.clone(),
        chart: stored.chart.clone(),
        version: stored.version.clone(),
        link: version_link(&stored.space, &stored.chart, &stored.version),
    }
}

/// One page of `items`, in the seed's list shape.
fn page_of<T: Serialize>(query: &HashMap<String, String>, items: Vec<T>) -> ApiResult<Response> {
    let page = Page::parse(query.get("start").map(String::as_str), query.get("limit").map(String::as_str))?;
    let total = items.len();
    let range = page.range(total);
    let items: Vec<T> = items.into_iter().skip(range.start).take(range.len()).collect();
    Ok(axum::Json(ListResponse::new(total, items)).into_response())
}

// ---- spaces ----

async fn list_spaces(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    page_of(&query, readable_spaces(&app, &caller).await?)
}

/// The spaces the caller may read; refused credentials are a 401, not an empty list.
pub(crate) async fn readable_spaces(app: &AppState, caller: &Caller) -> ApiResult<Vec<String>> {
    caller.credentials()?;
    let mut spaces = app.registry.list_spaces().await?;
    spaces.retain(|space| caller.allows(space, Action::Read));
    Ok(spaces)
}

async fn create_space(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let space = query
        .get("space")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request("can't find param space in request"))?;
    caller.require(space, Action::Admin)?;
    app.registry.create_space(space).await?;
    let link = Link { name: space.clone(), link: format!("/api/v1/spaces/{space}") };
    Ok((StatusCode::CREATED, axum::Json(link)).into_response())
}

async fn delete_space(State(app): State<AppState>, Path(space): Path<String>) -> ApiResult<StatusCode> {
    app.registry.delete_space(&space).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Most audit entries one page holds (each is one read from the store).
pub const MAX_AUDIT_PAGE: usize = 1000;

/// `GET /api/v1/spaces/{space}/audit?start=&limit=`: the space's audit log, newest first,
/// paged like every list (a page holds at most [`MAX_AUDIT_PAGE`] entries).
async fn space_audit(
    State(app): State<AppState>,
    Path(space): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let page = Page::parse(query.get("start").map(String::as_str), query.get("limit").map(String::as_str))?;
    let (start, limit) = match (usize::try_from(page.start), usize::try_from(page.limit)) {
        (Ok(start), Ok(limit)) => (start, limit.min(MAX_AUDIT_PAGE)),
        // Like every list: a negative start or limit is an empty page.
        _ => (0, 0),
    };
    let (total, entries) = app.registry.audit_page(&space, start, limit).await?;
    Ok(axum::Json(ListResponse::new(total, entries)).into_response())
}

// ---- search ----

/// `GET /api/v1/search?q=WORDS`: the charts of every space the caller may read whose
/// name, keywords or description hold every word, best match first (the exact name, then
/// names, keywords, descriptions), each at its latest version; paged like every list.
async fn search(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let hits = search_hits(&app, &caller, query.get("q").map(String::as_str).unwrap_or_default()).await?;
    page_of(&query, hits)
}

/// Every chart matching `q` in the spaces the caller may read, at its latest version,
/// best first (the API's and the web UI's search).
pub(crate) async fn search_hits(app: &AppState, caller: &Caller, q: &str) -> ApiResult<Vec<SearchHit>> {
    let spaces = readable_spaces(app, caller).await?;
    let words = chartyard_core::search::Query::parse(q)?;
    let mut hits = Vec::new();
    for space in spaces {
        let entries = match app.registry.latest_index_entries(&space).await {
            // Deleted since it was listed.
            Err(chartyard_core::RegistryError::NotFound(_)) => continue,
            entries => entries?,
        };
        for (chart, entry) in entries.iter() {
            let text = |key: &str| entry.get(key).and_then(Value::as_str).map(str::to_string);
            let keywords: Vec<String> = entry
                .get("keywords")
                .and_then(Value::as_array)
                .map(|k| k.iter().filter_map(|k| k.as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            let description = text("description").unwrap_or_default();
            let searchable =
                chartyard_core::search::Searchable { name: chart, description: &description, keywords: &keywords };
            let Some(rank) = words.rank(searchable) else { continue };
            let version = text("version").unwrap_or_default();
            let hit = SearchHit {
                link: version_link(&space, chart, &version),
                space: space.clone(),
                version,
                app_version: text("appVersion"),
                description,
                keywords,
                icon: text("icon"),
                deprecated: entry.get("deprecated").and_then(Value::as_bool).unwrap_or(false),
                chart: chart.clone(),
            };
            hits.push((rank, hit));
        }
    }
    hits.sort_by(|(a, x), (b, y)| (a, &x.chart, &x.space).cmp(&(b, &y.chart, &y.space)));
    Ok(hits.into_iter().map(|(_, hit)| hit).collect())
}

// ---- charts ----

async fn list_charts(
    State(app): State<AppState>,
    Path(space): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    page_of(&query, app.registry.list_charts(&space).await?)
}

/// A multipart body uploads an archive; any other body is an orchestration config that
/// composes a new chart from stored ones (`?dryRun=true` previews it).
async fn upload_or_compose(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(space): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    request: Request,
) -> ApiResult<Response> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if content_type.contains("multipart/form-data") {
        let archive = chart_file(request).await?;
        let stored = app.registry.upload(&space, archive).await?;
        return Ok((StatusCode::CREATED, axum::Json(chart_link(&stored))).into_response());
    }
    let body = Bytes::from_request(request, &()).await?;
    let dry_run = query.get("dryRun").is_some_and(|v| v.is_empty() || v == "true");
    // The target's write was checked by the route; every stored part must be readable.
    let composition = chartyard_core::compose::parse(&body)?;
    for (part_space, _, _) in composition.stored_parts() {
        caller.require(&part_space, Action::Read)?;
    }
    match app.registry.compose_parsed(&space, composition, dry_run).await? {
        Composed::Stored(stored) => Ok((StatusCode::CREATED, axum::Json(chart_link(&stored))).into_response()),
        Composed::Preview { metadata, values } => {
            Ok(axum::Json(serde_json::json!({ "metadata": metadata, "values": values })).into_response())
        }
    }
}

/// The bytes of the `chartfile` field of a multipart body.
async fn chart_file(request: Request) -> ApiResult<Bytes> {
    let mut multipart = Multipart::from_request(request, &())
        .await
        .map_err(|e| ApiError::bad_request(format!("body is not multipart/form-data: {}", e.body_text())))?;
    while let Some(field) = multipart.next_field().await? {
        if field.name() == Some(CHART_FILE_FIELD) {
            return Ok(field.bytes().await?);
        }
    }
    Err(ApiError::bad_request(format!("can't find param {CHART_FILE_FIELD} in request")))
}

async fn delete_chart(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((space, chart)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    app.registry.delete_chart_as(&space, &chart, delete_options(Some(&caller))).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- policies ----

async fn get_policy(State(app): State<AppState>, Path(space): Path<String>) -> ApiResult<axum::Json<SpacePolicy>> {
    Ok(axum::Json(SpacePolicy::clone(&*app.registry.policy(&space).await?)))
}

/// Replaces a space's policy with the one in the body; answers it as stored.
async fn set_policy(
    State(app): State<AppState>,
    Path(space): Path<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<axum::Json<SpacePolicy>> {
    let policy = SpacePolicy::parse(&body?)?;
    Ok(axum::Json(SpacePolicy::clone(&*app.registry.set_policy(&space, policy).await?)))
}

// ---- versions ----

async fn list_versions(
    State(app): State<AppState>,
    Path((space, chart)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let versions = app.registry.chart_versions(&space, &chart).await?;
    page_of(&query, versions.into_iter().map(|v| v.version).collect())
}

async fn download(
    State(app): State<AppState>,
    Path((space, chart, version)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    Ok(archive_response(&app, &space, &chart, &version).await?)
}

/// A version's archive, streamed with its length: the exact stored bytes.
pub(crate) async fn archive_response(
    app: &AppState,
    space: &str,
    chart: &str,
    version: &str,
) -> Result<Response, chartyard_core::RegistryError> {
    let archive = app.registry.open_archive(space, chart, version).await?;
    let headers = [
        (header::CONTENT_TYPE, "application/gzip".to_string()),
        (header::CONTENT_LENGTH, archive.size.to_string()),
        (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{chart}-{version}.tgz\"")),
    ];
    Ok((headers, Body::from_stream(archive.body)).into_response())
}

async fn replace(
    State(app): State<AppState>,
    Path((space, chart, version)): Path<(String, String, String)>,
    request: Request,
) -> ApiResult<Response> {
    let archive = chart_file(request).await?;
    let stored = app.registry.replace(&space, &chart, &version, archive).await?;
    Ok(axum::Json(chart_link(&stored)).into_response())
}

async fn delete_version(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((space, chart, version)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    app.registry.delete_version_as(&space, &chart, &version, delete_options(Some(&caller))).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- metadata and values ----

async fn version_metadata(
    State(app): State<AppState>,
    Path((space, chart, version)): Path<(String, String, String)>,
) -> ApiResult<axum::Json<Metadata>> {
    Ok(axum::Json(app.registry.version(&space, &chart, &version).await?.metadata_tree()))
}

async fn update_metadata(
    State(app): State<AppState>,
    Path((space, chart, version)): Path<(String, String, String)>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<axum::Json<Metadata>> {
    let mut fields: Value = serde_json::from_slice(&body?)
        .map_err(|e| ApiError::bad_request(format!("body should be chart metadata in JSON: {}", bounded(&e, 512))))?;
    let object = fields.as_object_mut().ok_or_else(|| ApiError::bad_request("body should be a JSON object"))?;
    // In this API `dependencies` lists the subcharts; they are not editable here.
    object.remove("dependencies");
    let metadata: ChartMetadata = serde_json::from_value(fields)
        .map_err(|e| ApiError::bad_request(format!("body should be chart metadata in JSON: {}", bounded(&e, 512))))?;
    let stored = app.registry.update_metadata(&space, &chart, &version, metadata).await?;
    Ok(axum::Json(stored.record.metadata_tree()))
}

async fn version_values(
    State(app): State<AppState>,
    Path((space, chart, version)): Path<(String, String, String)>,
) -> ApiResult<axum::Json<Value>> {
    Ok(axum::Json(app.registry.values(&space, &chart, &version).await?))
}

async fn update_values(
    State(app): State<AppState>,
    Path((space, chart, version)): Path<(String, String, String)>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<axum::Json<Value>> {
    let values: Value = serde_json::from_slice(&body?)
        .map_err(|e| ApiError::bad_request(format!("values should be a JSON object: {}", bounded(&e, 512))))?;
    Ok(axum::Json(app.registry.update_values(&space, &chart, &version, values).await?))
}

async fn space_metadata(
    State(app): State<AppState>,
    Path(space): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let versions = app.registry.space_versions(&space).await?;
    page_of(&query, versions.iter().map(|v| v.record.metadata_tree()).collect())
}

/// The latest version of each chart in a space, by chart name.
async fn space_latest_metadata(
    State(app): State<AppState>,
    Path(space): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let versions = app.registry.space_versions(&space).await?;
    let latest: Vec<Metadata> =
        versions.chunk_by(|a, b| a.chart == b.chart).filter_map(latest_of).map(|v| v.record.metadata_tree()).collect();
    page_of(&query, latest)
}

async fn chart_metadata(
    State(app): State<AppState>,
    Path((space, chart)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let versions = app.registry.chart_versions(&space, &chart).await?;
    page_of(&query, versions.iter().map(|v| v.record.metadata_tree()).collect())
}

async fn chart_latest_metadata(
    State(app): State<AppState>,
    Path((space, chart)): Path<(String, String)>,
) -> ApiResult<axum::Json<Metadata>> {
    let versions = app.registry.chart_versions(&space, &chart).await?;
    let newest = latest_of(&versions).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "metadata not found"))?;
    Ok(axum::Json(newest.record.metadata_tree()))
}

/// The "latest" version among one chart's versions.
fn latest_of(versions: &[StoredVersion]) -> Option<&StoredVersion> {
    let newest = latest(versions.iter().map(|v| v.version.as_str()))?;
    versions.iter().find(|v| v.version == newest)
}
