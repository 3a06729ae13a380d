//! The OCI distribution API under `/v2/`: `helm push`/`pull oci://` and any OCI client.
//! Repository names are always `{space}/{name}`, so every endpoint is a typed route that
//! carries the action it needs; paths of any other shape get the spec's errors.

use std::collections::HashMap;

use axum::Extension;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, delete, get, on, post, put};
use chartyard_core::RegistryError;
use chartyard_core::access::Action;
use chartyard_core::error::echo;
use chartyard_core::oci;
use chartyard_storage::oci::{ByteRange, ByteStream, ChunkRange};
use futures::{StreamExt, TryStreamExt};
use serde_json::json;

use crate::AppState;
use crate::auth::{self, Caller, Protocol};

const API_VERSION_HEADER: &str = "docker-distribution-api-version";
const DIGEST_HEADER: &str = "docker-content-digest";
const UPLOAD_UUID_HEADER: &str = "docker-upload-uuid";

pub fn routes() -> Router<AppState> {
    use Action::{Delete, Read, Write};
    const REPOSITORY: &str = "/v2/{space}/{name}";
    let route = |path: &str| format!("{REPOSITORY}{path}");
    Router::new()
        .route("/v2", get(version_check))
        .route("/v2/", get(version_check))
        // Lists only what the caller may read.
        .route("/v2/_catalog", get(catalog))
        .route(&route("/tags/list"), to(Read, get(tags)))
        .route(
            &route("/manifests/{reference}"),
            to(Read, get(manifest)).merge(to(Write, put(manifest))).merge(to(Delete, delete(manifest))),
        )
        .route(&route("/blobs/{digest}"), to(Read, get(blob)).merge(to(Delete, delete(blob))))
        .route(&route("/blobs/uploads"), to(Write, post(start_upload)))
        .route(&route("/blobs/uploads/"), to(Write, post(start_upload)))
        .route(
            &route("/blobs/uploads/{id}"),
            to(
                Write,
                on(MethodFilter::PATCH.or(MethodFilter::PUT).or(MethodFilter::GET).or(MethodFilter::DELETE), upload),
            ),
        )
        .route(&route("/referrers/{digest}"), to(Read, get(referrers)))
        .method_not_allowed_fallback(method_not_allowed)
}

/// `route`, for callers who may do `action` in the repository's space (or whose bearer
/// token's scope allows it).
fn to(action: Action, route: MethodRouter<AppState>) -> MethodRouter<AppState> {
    auth::guard(Protocol::Oci, action, route)
}

/// `GET /v2/`: with access control on, 401 with the token endpoint's challenge until the
/// client comes with credentials, as clients expect before they log in or pull.
async fn version_check(Extension(caller): Extension<Caller>, headers: HeaderMap) -> Response {
    if let Some(denied) = caller.challenge_ping(&headers) {
        return denied;
    }
    ([(API_VERSION_HEADER, "registry/2.0")], axum::Json(json!({}))).into_response()
}

async fn method_not_allowed(request: Request) -> Error {
    Error::Unsupported(format!("{} is not supported on {}", request.method(), echo(request.uri().path())))
}

/// The answer to a path under `/v2/` no route matched: a name of another shape than
/// `{space}/{name}`, or no endpoint of the spec.
pub(crate) fn not_an_endpoint(path: &str) -> Option<Response> {
    let rest = path.strip_prefix("/v2/")?;
    Some(match parse(rest) {
        Err(error) => error.into_response(),
        Ok(_) => Error::Unsupported(format!("/v2/{} is not an OCI distribution endpoint", echo(rest))).into_response(),
    })
}

/// The query parameters of a request.
type QueryMap = Query<HashMap<String, String>>;

async fn tags(
    State(app): State<AppState>,
    Path((space, name)): Path<(String, String)>,
    Query(query): QueryMap,
) -> Result<Response, Error> {
    let tags = app.registry.tags(&space, &name).await?;
    let (tags, link) = page(tags, &query, &format!("/v2/{space}/{name}/tags/list"))?;
    let body = json!({ "name": format!("{space}/{name}"), "tags": tags });
    Ok(with_link(axum::Json(body).into_response(), link))
}

async fn manifest(
    State(app): State<AppState>,
    Path((space, name, reference)): Path<(String, String, String)>,
    Query(query): QueryMap,
    request: Request,
) -> Result<Response, Error> {
    dispatch(&app, &space, &name, Target::Manifest(&reference), &query, request).await
}

async fn blob(
    State(app): State<AppState>,
    Path((space, name, digest)): Path<(String, String, String)>,
    Query(query): QueryMap,
    request: Request,
) -> Result<Response, Error> {
    dispatch(&app, &space, &name, Target::Blob(&digest), &query, request).await
}

async fn start_upload(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((space, name)): Path<(String, String)>,
    Query(mut query): QueryMap,
    request: Request,
) -> Result<Response, Error> {
    // A mount reads the blob from another repository: one the caller may not pull from
    // is not mounted (a new upload session, as for a repository without the blob).
    if query.get("from").is_some_and(|from| !caller.may_pull(from)) {
        query.remove("mount");
    }
    dispatch(&app, &space, &name, Target::Upload(""), &query, request).await
}

async fn upload(
    State(app): State<AppState>,
    Path((space, name, id)): Path<(String, String, String)>,
    Query(query): QueryMap,
    request: Request,
) -> Result<Response, Error> {
    dispatch(&app, &space, &name, Target::Upload(&id), &query, request).await
}

async fn referrers(
    State(app): State<AppState>,
    Path((space, name, digest)): Path<(String, String, String)>,
    Query(query): QueryMap,
    request: Request,
) -> Result<Response, Error> {
    dispatch(&app, &space, &name, Target::Referrers(&digest), &query, request).await
}

/// An error in the spec's shape: `{"errors":[{"code","message","detail"}]}`.
enum Error {
    Registry(RegistryError),
    /// `n` of a paged listing is not a count.
    PaginationNumberInvalid(String),
    /// Not an endpoint or a method of the spec.
    Unsupported(String),
}

impl From<RegistryError> for Error {
    fn from(error: RegistryError) -> Self {
        Self::Registry(error)
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            Self::PaginationNumberInvalid(message) => (StatusCode::BAD_REQUEST, "PAGINATION_NUMBER_INVALID", message),
            Self::Unsupported(message) => (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED", message),
            Self::Registry(RegistryError::Internal(detail)) => {
                tracing::error!(error = %detail, "OCI request failed");
                let body = json!({"errors": [{"code": "UNKNOWN", "message": "internal server error", "detail": null}]});
                return (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response();
            }
            Self::Registry(error) => {
                let (status, code) = crate::error::oci_status(&error);
                (status, code, error.to_string())
            }
        };
        let message = crate::error::bounded_message(message);
        let body = json!({"errors": [{"code": code, "message": message, "detail": null}]});
        (status, [(API_VERSION_HEADER, "registry/2.0")], axum::Json(body)).into_response()
    }
}

/// What the path after `/v2/` asks for.
enum Target<'a> {
    Tags,
    Manifest(&'a str),
    Blob(&'a str),
    Upload(&'a str),
    Referrers(&'a str),
}

/// Splits `{name}/{operation}`; `name` is `{space}/{repository}`.
fn parse(rest: &str) -> Result<(&str, &str, Target<'_>), Error> {
    let (name, target) = if let Some(name) = rest.strip_suffix("/tags/list") {
        (name, Target::Tags)
    } else if let Some((name, id)) = rest.rsplit_once("/blobs/uploads/") {
        (name, Target::Upload(id))
    } else if let Some(name) = rest.strip_suffix("/blobs/uploads") {
        (name, Target::Upload(""))
    } else if let Some((name, reference)) = rest.rsplit_once("/manifests/") {
        (name, Target::Manifest(reference))
    } else if let Some((name, digest)) = rest.rsplit_once("/blobs/") {
        (name, Target::Blob(digest))
    } else if let Some((name, digest)) = rest.rsplit_once("/referrers/") {
        (name, Target::Referrers(digest))
    } else {
        return Err(Error::Unsupported(format!("/v2/{} is not an OCI distribution endpoint", echo(rest))));
    };
    match name.split_once('/') {
        Some((space, repository)) if !repository.contains('/') => Ok((space, repository, target)),
        _ => Err(Error::Registry(RegistryError::InvalidName(format!(
            "repository {:?} must be {{space}}/{{name}}",
            echo(name)
        )))),
    }
}

async fn dispatch(
    app: &AppState,
    space: &str,
    name: &str,
    target: Target<'_>,
    query: &HashMap<String, String>,
    request: Request,
) -> Result<Response, Error> {
    let method = request.method().clone();
    let (space, name) = (space.to_string(), name.to_string());
    let base = format!("/v2/{space}/{name}");
    let registry = &app.registry;
    match (target, method) {
        (Target::Manifest(reference), method @ (Method::GET | Method::HEAD)) => {
            let manifest = registry.get_manifest(&space, &name, reference).await?;
            let headers = [
                (header::CONTENT_TYPE, manifest.media_type),
                (header::CONTENT_LENGTH, manifest.bytes.len().to_string()),
                (header::HeaderName::from_static(DIGEST_HEADER), manifest.digest.clone()),
                (header::ETAG, format!("\"{}\"", manifest.digest)),
            ];
            let body = if method == Method::HEAD { Body::empty() } else { Body::from(manifest.bytes) };
            Ok((headers, body).into_response())
        }
        (Target::Manifest(reference), Method::PUT) => {
            let reference = reference.to_string();
            let content_type = content_type(request.headers());
            let bytes = axum::body::to_bytes(request.into_body(), app.max_manifest_bytes)
                .await
                .map_err(|e| Error::Registry(RegistryError::OverMaximum(format!("manifest body: {e}"))))?;
            let subject =
                oci::Manifest::parse(&bytes, content_type.as_deref()).ok().and_then(|m| m.subject.map(|s| s.digest));
            let digest = registry
                .put_manifest(&space, &name, &reference, bytes, content_type.as_deref(), app.allow_overwrite)
                .await?;
            let mut response = created(&format!("{base}/manifests/{digest}"), &digest);
            if let Some(subject) = subject.and_then(|s| HeaderValue::from_str(&s).ok()) {
                response.headers_mut().insert("oci-subject", subject);
            }
            Ok(response)
        }
        (Target::Manifest(reference), Method::DELETE) => {
            let options = crate::space::delete_options(request.extensions().get::<Caller>());
            registry.delete_manifest_as(&space, &name, reference, options).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        (Target::Blob(digest), method @ (Method::GET | Method::HEAD)) => {
            let range = parse_range(request.headers())?;
            let blob = registry.open_blob(&space, &name, digest, range).await?;
            let status = if range.is_some() { StatusCode::PARTIAL_CONTENT } else { StatusCode::OK };
            let digest = oci::parse_digest(digest).map(|d| d.to_string()).unwrap_or_default();
            let mut headers = vec![
                (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                (header::CONTENT_LENGTH, (blob.range.end - blob.range.start).to_string()),
                (header::HeaderName::from_static(DIGEST_HEADER), digest),
                (header::ACCEPT_RANGES, "bytes".to_string()),
            ];
            if range.is_some() {
                headers.push((
                    header::CONTENT_RANGE,
                    format!("bytes {}-{}/{}", blob.range.start, blob.range.end - 1, blob.size),
                ));
            }
            let body = if method == Method::HEAD { Body::empty() } else { Body::from_stream(blob.body) };
            let mut response = (status, body).into_response();
            for (name, value) in headers {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    response.headers_mut().insert(name, value);
                }
            }
            Ok(response)
        }
        (Target::Blob(digest), Method::DELETE) => {
            // Unlinks the blob from this repository; only garbage collection removes bytes.
            registry.delete_blob(&space, &name, digest).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        (Target::Upload(""), Method::POST) => {
            // A mount from a repository that does not hold the blob falls through to a new
            // upload session, as the spec says.
            if let (Some(digest), Some(from)) = (query.get("mount"), query.get("from"))
                && registry.mount_blob(&space, &name, digest, from).await?
            {
                return Ok(created(&format!("{base}/blobs/{digest}"), digest));
            }
            if let Some(digest) = query.get("digest") {
                registry.put_whole_blob(&space, &name, digest, body_stream(request)).await?;
                return Ok(created(&format!("{base}/blobs/{digest}"), digest));
            }
            let id = registry.start_upload(&space, &name).await?;
            Ok(upload_accepted(&base, &id, 0))
        }
        (Target::Upload(id), Method::PATCH) if !id.is_empty() => {
            let id = id.to_string();
            let chunk = chunk_range(request.headers())?;
            let end = registry.append_upload(&space, &name, &id, chunk, body_stream(request)).await?;
            Ok(upload_accepted(&base, &id, end))
        }
        (Target::Upload(id), Method::PUT) if !id.is_empty() => {
            let id = id.to_string();
            let digest = query
                .get("digest")
                .ok_or_else(|| Error::Registry(RegistryError::InvalidDigest("PUT needs ?digest=".into())))?;
            let chunk = chunk_range(request.headers())?;
            registry.finish_upload(&space, &name, &id, digest, chunk, body_stream(request)).await?;
            Ok(created(&format!("{base}/blobs/{digest}"), digest))
        }
        (Target::Upload(id), Method::GET) if !id.is_empty() => {
            let end = registry.upload_offset(&space, &name, id).await?;
            let mut response = upload_accepted(&base, id, end);
            *response.status_mut() = StatusCode::NO_CONTENT;
            Ok(response)
        }
        (Target::Upload(id), Method::DELETE) if !id.is_empty() => {
            registry.cancel_upload(&space, &name, id).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (Target::Referrers(digest), Method::GET) => {
            let artifact_type = query.get("artifactType").map(String::as_str);
            let manifests = registry.referrers(&space, &name, digest, artifact_type).await?;
            let index = json!({ "schemaVersion": 2, "mediaType": oci::OCI_INDEX_MEDIA_TYPE, "manifests": manifests });
            let mut response = ([(header::CONTENT_TYPE, oci::OCI_INDEX_MEDIA_TYPE)], index.to_string()).into_response();
            if artifact_type.is_some() {
                response.headers_mut().insert("oci-filters-applied", HeaderValue::from_static("artifactType"));
            }
            Ok(response)
        }
        (_, method) => Err(Error::Unsupported(format!("{method} is not supported on {base}"))),
    }
}

/// `GET /v2/_catalog` with `n` and `last`: every repository, a chart's included.
async fn catalog(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    if let Some(refused) = caller.refused(Protocol::Oci, &headers) {
        return Ok(refused);
    }
    let mut repositories = app.registry.catalog().await?;
    repositories
        .retain(|repository| repository.split_once('/').is_some_and(|(space, _)| caller.allows(space, Action::Read)));
    let (repositories, link) = page(repositories, &query, "/v2/_catalog")?;
    Ok(with_link(axum::Json(json!({ "repositories": repositories })).into_response(), link))
}

/// The page `n` and `last` select from a sorted list, and the `Link` to the next one.
fn page(
    mut items: Vec<String>,
    query: &HashMap<String, String>,
    path: &str,
) -> Result<(Vec<String>, Option<String>), Error> {
    if let Some(last) = query.get("last") {
        items.retain(|t| t.as_str() > last.as_str());
    }
    let Some(n) = query.get("n") else { return Ok((items, None)) };
    let n: usize =
        n.parse().map_err(|_| Error::PaginationNumberInvalid(format!("n must be a count, not {:?}", echo(n))))?;
    if items.len() <= n {
        return Ok((items, None));
    }
    items.truncate(n);
    let link = items.last().map(|last| format!("<{path}?n={n}&last={last}>; rel=\"next\""));
    Ok((items, link))
}

fn with_link(mut response: Response, link: Option<String>) -> Response {
    if let Some(link) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(header::LINK, link);
    }
    response
}

fn created(location: &str, digest: &str) -> Response {
    (
        StatusCode::CREATED,
        [
            (header::LOCATION, location.to_string()),
            (header::HeaderName::from_static(DIGEST_HEADER), digest.to_string()),
        ],
    )
        .into_response()
}

fn upload_accepted(base: &str, id: &str, end: u64) -> Response {
    let range = if end == 0 { "0-0".to_string() } else { format!("0-{}", end - 1) };
    (
        StatusCode::ACCEPTED,
        [
            (header::LOCATION, format!("{base}/blobs/uploads/{id}")),
            (header::RANGE, range),
            (header::HeaderName::from_static(UPLOAD_UUID_HEADER), id.to_string()),
            (header::CONTENT_LENGTH, "0".to_string()),
        ],
    )
        .into_response()
}

fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
}

fn body_stream(request: Request) -> ByteStream {
    request.into_body().into_data_stream().map_err(|e| e.to_string()).boxed()
}

/// `Range: bytes=start-[end]` or `bytes=-n` of a blob GET.
fn parse_range(headers: &HeaderMap) -> Result<Option<ByteRange>, Error> {
    let Some(value) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else { return Ok(None) };
    let invalid = || {
        Error::Registry(RegistryError::RangeNotSatisfiable(format!("range {:?} is not bytes=start-end", echo(value))))
    };
    let spec = value.strip_prefix("bytes=").ok_or_else(invalid)?;
    let (start, end) = spec.split_once('-').ok_or_else(invalid)?;
    if start.is_empty() {
        return Ok(Some(ByteRange::Suffix(end.parse().map_err(|_| invalid())?)));
    }
    let start = start.parse().map_err(|_| invalid())?;
    let end = if end.is_empty() { None } else { Some(end.parse().map_err(|_| invalid())?) };
    if end.is_some_and(|end| end < start) {
        return Err(invalid());
    }
    Ok(Some(ByteRange::From { start, end }))
}

/// What a chunk's `Content-Range: start-end` and `Content-Length` say about it.
fn chunk_range(headers: &HeaderMap) -> Result<ChunkRange, Error> {
    let length = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let Some(value) = headers.get(header::CONTENT_RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(ChunkRange { start: None, len: length });
    };
    let invalid = || {
        Error::Registry(RegistryError::RangeNotSatisfiable(format!("Content-Range {:?} is not start-end", echo(value))))
    };
    let spec = value.trim_start_matches("bytes ").trim_start_matches("bytes=");
    let spec = spec.split('/').next().unwrap_or(spec);
    let (start, end) = spec.split_once('-').ok_or_else(invalid)?;
    let start: u64 = start.trim().parse().map_err(|_| invalid())?;
    let end: u64 = end.trim().parse().map_err(|_| invalid())?;
    if end < start {
        return Err(invalid());
    }
    let len = end - start + 1;
    if length.is_some_and(|l| l != len) {
        return Err(Error::Registry(RegistryError::RangeNotSatisfiable(format!(
            "Content-Range {} says {len} bytes, Content-Length {}",
            echo(value),
            length.unwrap_or_default()
        ))));
    }
    Ok(ChunkRange { start: Some(start), len: Some(len) })
}
