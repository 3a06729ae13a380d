//! The ChartMuseum API per space (`/api/{space}/...`), for `helm cm-push` and the CI
//! scripts written against ChartMuseum: its routes, status codes and `{"error"}` bodies.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
use chartyard_core::RegistryError;
use chartyard_core::access::Action;
use chartyard_core::names::latest;
use chartyard_storage::UploadOptions;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::space::SpaceName;

/// An error in ChartMuseum's shape: `{"error": "..."}`.
#[derive(Debug)]
pub struct CmError {
    status: StatusCode,
    message: String,
}

impl CmError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: crate::error::bounded_message(message) }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl From<RegistryError> for CmError {
    fn from(error: RegistryError) -> Self {
        let api = crate::error::ApiError::from(error);
        Self { status: api.status(), message: api.message().to_string() }
    }
}

impl IntoResponse for CmError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(json!({ "error": self.message }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            // Helm and ChartMuseum clients answer a Basic challenge with their credentials.
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static(crate::auth::BASIC_CHALLENGE),
            );
        }
        response
    }
}

type CmResult<T> = Result<T, CmError>;

/// Routes under an API root (`/api/{space}` or `/api` for the default space).
pub fn routes(prefix: &str) -> Router<AppState> {
    use Action::{Delete, Read, Write};
    Router::new()
        .route(&format!("{prefix}/charts"), to(Read, get(list_charts)).merge(to(Write, post(upload))))
        .route(&format!("{prefix}/prov"), to(Write, post(upload_provenance)))
        .route(&format!("{prefix}/charts/{{name}}"), to(Read, get(chart_versions)))
        .route(
            &format!("{prefix}/charts/{{name}}/{{version}}"),
            to(Read, get(chart_version)).merge(to(Delete, delete(delete_version))),
        )
}

/// `route`, for callers who may do `action` in the request's space.
pub(crate) fn to(action: Action, route: MethodRouter<AppState>) -> MethodRouter<AppState> {
    crate::auth::guard(crate::auth::Protocol::ChartMuseum, action, route)
}

/// The archive (and provenance) of an upload: a raw body, or multipart fields `chart`
/// and `prov`.
async fn upload_parts(request: Request) -> CmResult<(Option<Bytes>, Option<Bytes>)> {
    let content_type =
        request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    if !content_type.starts_with("multipart/form-data") {
        let body = Bytes::from_request(request, &()).await.map_err(|e| CmError::new(e.status(), e.body_text()))?;
        return Ok((Some(body), None));
    }
    let mut multipart = Multipart::from_request(request, &()).await.map_err(|e| CmError::bad_request(e.body_text()))?;
    let (mut chart, mut prov) = (None, None);
    while let Some(field) = multipart.next_field().await.map_err(|e| CmError::new(e.status(), e.body_text()))? {
        let name = field.name().unwrap_or_default().to_string();
        let data = field.bytes().await.map_err(|e| CmError::new(e.status(), e.body_text()))?;
        match name.as_str() {
            "chart" => chart = Some(data),
            "prov" => prov = Some(data),
            _ => {}
        }
    }
    Ok((chart, prov))
}

async fn upload(
    State(app): State<AppState>,
    SpaceName(space): SpaceName,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> CmResult<Response> {
    let (chart, provenance) = upload_parts(request).await?;
    // As on ChartMuseum: `?force` replaces an existing version unless that is disabled,
    // and `allow_overwrite` replaces it even unasked. `force=false` is no force.
    let force = query.get("force").is_some_and(|v| v != "false");
    let overwrite = app.allow_overwrite || (force && app.allow_force_overwrite);
    let saved = match (chart, provenance) {
        (Some(chart), provenance) if !chart.is_empty() => {
            let options = UploadOptions { provenance, overwrite, ..Default::default() };
            app.registry.upload_with(&space, chart, options).await.map_err(|e| match e {
                RegistryError::AlreadyExists(_) => CmError::new(StatusCode::CONFLICT, "file already exists"),
                e => e.into(),
            })
        }
        (_, Some(provenance)) => app.registry.put_provenance(&space, provenance).await.map_err(CmError::from),
        _ => Err(CmError::bad_request("no chart in the request (a raw .tgz body or multipart field chart)")),
    };
    saved?;
    Ok((StatusCode::CREATED, axum::Json(json!({ "saved": true }))).into_response())
}

async fn upload_provenance(
    State(app): State<AppState>,
    SpaceName(space): SpaceName,
    request: Request,
) -> CmResult<Response> {
    let provenance = match upload_parts(request).await? {
        (_, Some(prov)) => prov,
        (Some(raw), None) if !raw.is_empty() => raw,
        _ => return Err(CmError::bad_request("no provenance file in the request")),
    };
    app.registry.put_provenance(&space, provenance).await?;
    Ok((StatusCode::CREATED, axum::Json(json!({ "saved": true }))).into_response())
}

/// Every chart with its versions' index entries; `offset` and `limit` page over charts.
async fn list_charts(
    State(app): State<AppState>,
    SpaceName(space): SpaceName,
    Query(query): Query<HashMap<String, String>>,
) -> CmResult<Response> {
    let number = |name: &str| -> CmResult<Option<usize>> {
        query
            .get(name)
            .map(|v| v.parse().map_err(|_| CmError::bad_request(format!("{name} should be a non-negative number"))))
            .transpose()
    };
    let (offset, limit) = (number("offset")?.unwrap_or(0), number("limit")?);
    let entries = app.registry.index_entries(&space).await?;
    let charts: Map<String, Value> = entries
        .into_iter()
        .skip(offset)
        .take(limit.unwrap_or(usize::MAX))
        .map(|(name, versions)| (name, Value::Array(versions.into_iter().map(Value::Object).collect())))
        .collect();
    Ok(axum::Json(charts).into_response())
}

async fn chart_versions(
    State(app): State<AppState>,
    SpaceName(space): SpaceName,
    Path(params): Path<HashMap<String, String>>,
) -> CmResult<Response> {
    let name = params.get("name").cloned().unwrap_or_default();
    let versions = app.registry.chart_index_entries(&space, &name).await.map_err(chart_not_found)?;
    Ok(axum::Json(versions).into_response())
}

async fn chart_version(
    State(app): State<AppState>,
    SpaceName(space): SpaceName,
    Path(params): Path<HashMap<String, String>>,
) -> CmResult<Response> {
    let (name, version) = name_and_version(&params);
    let versions = app.registry.chart_index_entries(&space, &name).await.map_err(chart_not_found)?;
    let wanted = if version == "latest" {
        latest(versions.iter().filter_map(|e| e.get("version").and_then(Value::as_str))).map(str::to_string)
    } else {
        Some(version)
    };
    let entry = versions
        .into_iter()
        .find(|e| wanted.as_deref().is_some_and(|w| e.get("version").and_then(Value::as_str) == Some(w)))
        .ok_or_else(|| CmError::not_found("improper constraint: version not found"))?;
    Ok(axum::Json(entry).into_response())
}

async fn delete_version(
    State(app): State<AppState>,
    axum::Extension(caller): axum::Extension<crate::auth::Caller>,
    SpaceName(space): SpaceName,
    Path(params): Path<HashMap<String, String>>,
) -> CmResult<Response> {
    let (name, version) = name_and_version(&params);
    let options = crate::space::delete_options(Some(&caller));
    app.registry.delete_version_as(&space, &name, &version, options).await.map_err(chart_not_found)?;
    Ok(axum::Json(json!({ "deleted": true })).into_response())
}

fn name_and_version(params: &HashMap<String, String>) -> (String, String) {
    (params.get("name").cloned().unwrap_or_default(), params.get("version").cloned().unwrap_or_default())
}

fn chart_not_found(error: RegistryError) -> CmError {
    match error {
        RegistryError::NotFound(_) => CmError::not_found("chart not found"),
        e => e.into(),
    }
}
