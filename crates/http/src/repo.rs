//! Every space as a classic Helm chart repository: `index.yaml` (and `index.json`), chart
//! archives and provenance files, served from the same store as the other APIs.

use std::collections::HashMap;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chartyard_core::RegistryError;
use chartyard_core::error::echo;
use chartyard_core::names::{is_valid_name, parse_version};

use crate::AppState;
use crate::chartmuseum::{CmError, to};
use crate::space::SpaceName;
use chartyard_core::access::Action;

/// Routes under a repository root (`/{space}` or `/` for the default space).
pub fn routes(prefix: &str) -> Router<AppState> {
    Router::new()
        .route(&format!("{prefix}/index.yaml"), to(Action::Read, get(index_yaml)))
        .route(&format!("{prefix}/index.json"), to(Action::Read, get(index_json)))
        .route(&format!("{prefix}/charts/{{file}}"), to(Action::Read, get(chart_file)))
}

async fn index_yaml(
    State(app): State<AppState>,
    SpaceName(space): SpaceName,
    headers: HeaderMap,
) -> Result<Response, CmError> {
    let index = app.registry.space_index(&space).await?;
    // Helm sends no Accept-Encoding and does not decompress: gzip only when asked for.
    let gzipped = accepts_gzip(&headers).then(|| index.yaml_gzip());
    // Each encoding is its own representation, with its own tag.
    let etag = match gzipped {
        Some(_) => format!("{}-gzip\"", index.etag.trim_end_matches('"')),
        None => index.etag.clone(),
    };
    Ok(index_response(&headers, &etag, "application/x-yaml", index.yaml.clone(), gzipped))
}

async fn index_json(
    State(app): State<AppState>,
    SpaceName(space): SpaceName,
    headers: HeaderMap,
) -> Result<Response, CmError> {
    let index = app.registry.space_index_json(&space).await?;
    Ok(index_response(&headers, &index.etag, "application/json", index.json(), None))
}

/// An index answer with its ETag: 304 when the client has it already.
fn index_response(
    headers: &HeaderMap,
    etag: &str,
    content_type: &'static str,
    body: Bytes,
    gzipped: Option<Bytes>,
) -> Response {
    let mut response = if not_modified(headers, etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = Response::new(Body::from(gzipped.clone().unwrap_or(body)));
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        if gzipped.is_some() {
            response.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        response
    };
    let out = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(etag) {
        out.insert(header::ETAG, etag);
    }
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    out.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    response
}

fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        // Weak comparison (RFC 9110 §8.8.3.2), as for any GET.
        .any(|tag| tag.trim() == "*" || tag.trim().trim_start_matches("W/") == etag.trim_start_matches("W/"))
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(
        |coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|p| p.trim().replace(' ', "") == "q=0");
            name.eq_ignore_ascii_case("gzip") && !refused
        },
    )
}

/// `{name}-{version}.tgz` or `.tgz.prov`.
async fn chart_file(
    State(app): State<AppState>,
    SpaceName(space): SpaceName,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Response, CmError> {
    let file = params.get("file").map(String::as_str).unwrap_or_default();
    let (stem, provenance) = match (file.strip_suffix(".tgz.prov"), file.strip_suffix(".tgz")) {
        (Some(stem), _) => (stem, true),
        (None, Some(stem)) => (stem, false),
        _ => return Err(CmError::not_found(format!("{} is not a chart archive or provenance file", echo(file)))),
    };
    if provenance {
        let (chart, version) = resolve_file_name(&app, &space, stem).await?;
        let prov = app.registry.provenance(&space, &chart, &version).await?;
        return Ok(([(header::CONTENT_TYPE, "application/pgp-signature")], prov).into_response());
    }
    // Opening the archive is the lookup: one read of the index per split tried.
    for (chart, version) in splits(stem) {
        match crate::api_v1::archive_response(&app, &space, chart, version).await {
            Err(RegistryError::NotFound(_)) => continue,
            answer => return Ok(answer?),
        }
    }
    Err(CmError::not_found(format!("{}.tgz not found", echo(stem))))
}

/// The ways `name-version` splits into a valid name and a valid version (names and
/// pre-releases both contain dashes).
fn splits(stem: &str) -> impl Iterator<Item = (&str, &str)> {
    stem.match_indices('-')
        .map(|(i, _)| (&stem[..i], &stem[i + 1..]))
        .filter(|(chart, version)| is_valid_name(chart) && parse_version(version).is_ok())
}

/// Splits `name-version` where both parts are valid and the version exists. Names and
/// pre-releases both contain dashes, so every split is tried.
pub(crate) async fn resolve_file_name(app: &AppState, space: &str, stem: &str) -> Result<(String, String), CmError> {
    for (chart, version) in splits(stem) {
        match app.registry.version(space, chart, version).await {
            Ok(_) => return Ok((chart.to_string(), version.to_string())),
            Err(RegistryError::NotFound(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(CmError::not_found(format!("{}.tgz not found", echo(stem))))
}
