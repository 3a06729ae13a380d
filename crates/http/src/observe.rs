//! What operators see of requests: an id per request (`X-Request-Id`), the HTTP metrics,
//! the upload and download counters, one log line per request, and the `/metrics` route
//! that renders them all.
//!
//! Every label has a bounded set of values: routes are the router's templates
//! (`unmatched` for what no route takes), methods the standard ones (`_OTHER` for the
//! rest), status codes what the server answers.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::header::{self, HeaderName};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chartyard_storage::Registry;
use http_body::{Frame, SizeHint};
use metrics_exporter_prometheus::PrometheusHandle;
use tracing::Instrument;

use crate::auth::Caller;
use crate::error::ApiError;

/// The header a request id travels in, both ways.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest request id taken from a client; a longer one is replaced by a new id.
const MAX_REQUEST_ID: usize = 128;

/// The id of a request, in its extensions (also in its `X-Request-Id` header).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Who made a request, as the identity layer found it: left in the response's extensions
/// for the request's log line.
#[derive(Debug, Clone)]
pub struct LoggedCaller {
    pub user: String,
    pub client: Option<IpAddr>,
}

/// The client's id if it is a usable one (1 to 128 visible ASCII characters), else a new
/// one: 16 random bytes in hex.
fn request_id(headers: &HeaderMap) -> String {
    let given = headers
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= MAX_REQUEST_ID && id.bytes().all(|b| b.is_ascii_graphic()));
    if let Some(id) = given {
        return id.to_string();
    }
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No randomness: still unique within the process.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        bytes[..8].copy_from_slice(&n.to_be_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The method as a label: the standard ones, else `_OTHER`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

/// Whether a request moves a chart in or out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Upload,
    Download,
}

/// What a request is to the upload and download counters: its direction and API, from
/// its method and route. An OCI pull counts once, at its manifest's `GET`; a push at its
/// manifest's `PUT`. Provenance files are not charts.
fn transfer(method: &Method, route: &str, path: &str) -> Option<(Direction, &'static str)> {
    use Direction::{Download, Upload};
    let get = *method == Method::GET;
    let chart_file = !path.ends_with(".prov");
    match route {
        "/api/v1/spaces/{space}/charts" if *method == Method::POST => Some((Upload, "v1")),
        "/api/v1/spaces/{space}/charts/{chart}/versions/{version}" if *method == Method::PUT => Some((Upload, "v1")),
        "/api/v1/spaces/{space}/charts/{chart}/versions/{version}" if get => Some((Download, "v1")),
        "/api/{space}/charts" | "/api/charts" if *method == Method::POST => Some((Upload, "chartmuseum")),
        "/{space}/charts/{file}" | "/charts/{file}" if get && chart_file => Some((Download, "repo")),
        "/v2/{space}/{name}/manifests/{reference}" if *method == Method::PUT => Some((Upload, "oci")),
        "/v2/{space}/{name}/manifests/{reference}" if get => Some((Download, "oci")),
        "/_/ui/{space}/-/upload" if *method == Method::POST => Some((Upload, "ui")),
        "/_/ui/{space}/{chart}/{version}/archive" if get => Some((Download, "ui")),
        _ => None,
    }
}

fn result_label(status: StatusCode) -> &'static str {
    if status.is_server_error() {
        "server_error"
    } else if status.is_client_error() {
        "client_error"
    } else {
        "ok"
    }
}

/// The layer: gives the request its id, counts it as active while it runs, and once its
/// response body has gone out (or was dropped) records its metrics and log line.
pub async fn observe(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id(request.headers());
    let id_header = HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("-"));
    request.headers_mut().insert(REQUEST_ID.clone(), id_header.clone());
    request.extensions_mut().insert(RequestId(id.clone()));
    let method = request.method().clone();
    let method_label = method_label(&method);
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_string(), |m| m.as_str().into());
    let mut path = request.uri().path().to_string();
    chartyard_core::error::shorten(&mut path, 512);
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let transfer = transfer(&method, &route, &path);
    let active = Active::start(method_label);

    let bytes_in = Arc::new(AtomicU64::new(0));
    let request = request.map(|body| Body::new(Counted { inner: body, bytes: bytes_in.clone() }));
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route);
    let mut response = next.run(request).instrument(span.clone()).await;

    let status = response.status();
    let caller = response.extensions_mut().remove::<LoggedCaller>();
    let reason = if status.is_client_error() { take_reason(&mut response).await } else { None };
    response.headers_mut().insert(REQUEST_ID.clone(), id_header);
    let record = Record {
        started,
        id,
        method,
        method_label,
        route,
        path,
        status,
        user: caller.as_ref().map_or_else(|| "anonymous".to_string(), |c| c.user.clone()),
        client: caller.and_then(|c| c.client).or(peer),
        reason,
        transfer,
        bytes_in,
        span,
        _active: active,
    };
    response.map(|body| Body::new(Observed { inner: body, bytes_out: 0, record: Some(record) }))
}

/// Counts a request as active from its head until its record is made (or it is dropped).
struct Active(&'static str);

impl Active {
    fn start(method: &'static str) -> Self {
        metrics::gauge!("http_server_active_requests", "http_request_method" => method).increment(1.0);
        Self(method)
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        metrics::gauge!("http_server_active_requests", "http_request_method" => self.0).decrement(1.0);
    }
}

/// The message of a small error body (`message`, `error`, or an OCI error's first
/// `message`), for the log line; the body is put back as it was.
async fn take_reason(response: &mut Response) -> Option<String> {
    const MAX: u64 = 8 * 1024;
    let size = http_body::Body::size_hint(response.body()).exact()?;
    if size > MAX {
        return None;
    }
    let body = std::mem::take(response.body_mut());
    let bytes = axum::body::to_bytes(body, MAX as usize).await.ok()?;
    *response.body_mut() = Body::from(bytes.clone());
    let mut reason = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(json) => {
            let text = json
                .get("message")
                .or_else(|| json.get("error_description"))
                .or_else(|| json.get("error"))
                .or_else(|| json.pointer("/errors/0/message"))
                .and_then(|m| m.as_str())?;
            text.to_string()
        }
        Err(_) => String::from_utf8_lossy(&bytes).trim().to_string(),
    };
    chartyard_core::error::shorten(&mut reason, 300);
    (!reason.is_empty()).then_some(reason)
}

/// What is known of a request when its response head is ready.
struct Record {
    started: Instant,
    id: String,
    method: Method,
    method_label: &'static str,
    route: String,
    path: String,
    status: StatusCode,
    user: String,
    client: Option<IpAddr>,
    reason: Option<String>,
    transfer: Option<(Direction, &'static str)>,
    bytes_in: Arc<AtomicU64>,
    span: tracing::Span,
    _active: Active,
}

impl Record {
    fn finish(self, bytes_out: u64) {
        let elapsed = self.started.elapsed();
        let bytes_in = self.bytes_in.load(Ordering::Relaxed);
        let (method, route) = (self.method_label, self.route.clone());
        metrics::histogram!(
            "http_server_request_duration_seconds",
            "http_request_method" => method,
            "http_route" => route.clone(),
            "http_response_status_code" => self.status.as_str().to_string(),
        )
        .record(elapsed.as_secs_f64());
        metrics::histogram!("http_server_request_body_size_bytes", "http_request_method" => method, "http_route" => route.clone())
            .record(bytes_in as f64);
        metrics::histogram!("http_server_response_body_size_bytes", "http_request_method" => method, "http_route" => route)
            .record(bytes_out as f64);
        if let Some((direction, api)) = self.transfer {
            let result = result_label(self.status);
            match direction {
                Direction::Upload => metrics::counter!("chartyard_uploads_total", "api" => api, "result" => result),
                Direction::Download => metrics::counter!("chartyard_downloads_total", "api" => api, "result" => result),
            }
            .increment(1);
        }
        let Record { id, method, route, path, status, user, client, reason, span, .. } = self;
        let _entered = span.enter();
        let duration_ms = (elapsed.as_secs_f64() * 1e6).round() / 1e3;
        let client = client.map(|ip| ip.to_string()).unwrap_or_default();
        let reason = reason.as_deref();
        let status = status.as_u16();
        macro_rules! line {
            ($level:ident) => {
                tracing::$level!(
                    target: "chartyard::request",
                    request_id = %id,
                    method = %method,
                    route = %route,
                    path = %path,
                    status,
                    duration_ms,
                    client = %client,
                    user = %user,
                    bytes_in,
                    bytes_out,
                    reason,
                    "request"
                )
            };
        }
        if status >= 500 {
            line!(warn);
        } else {
            line!(info);
        }
    }
}

/// A request body that counts the bytes read from it.
struct Counted {
    inner: Body,
    bytes: Arc<AtomicU64>,
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that counts the bytes sent and makes the request's record when it is
/// dropped: sent whole, failed, or given up by the client.
struct Observed {
    inner: Body,
    bytes_out: u64,
    record: Option<Record>,
}

impl http_body::Body for Observed {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.bytes_out += data.len() as u64;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Observed {
    fn drop(&mut self) {
        if let Some(record) = self.record.take() {
            record.finish(self.bytes_out);
        }
    }
}

// ---- the /metrics route ----

/// Who may read `/metrics` on the main listener when access control is on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MetricsAccess {
    /// Everyone.
    #[default]
    Anonymous,
    /// Any signed-in caller.
    SignedIn,
    /// Global admins.
    Admin,
}

impl std::str::FromStr for MetricsAccess {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "anonymous" => Ok(Self::Anonymous),
            "signedin" => Ok(Self::SignedIn),
            "admin" => Ok(Self::Admin),
            other => Err(format!("unknown access {other:?} (expected anonymous, signedin or admin)")),
        }
    }
}

/// Most spaces named in the per-space gauges; the rest are summed as `_other`.
pub const MAX_SPACES_NAMED: usize = 100;

/// The metrics exposition: what the process's recorder holds, and the numbers read from
/// the registry at scrape time.
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
    registry: Arc<Registry>,
}

impl Metrics {
    pub fn new(handle: PrometheusHandle, registry: Arc<Registry>) -> Self {
        Self { handle, registry }
    }

    /// The Prometheus text exposition.
    pub async fn render(&self) -> String {
        let mut text = self.handle.render();
        render_indexes(&mut text, self.registry.index_stats().await);
        text
    }

    /// A router with `GET /metrics` alone, open to everyone (the separate listener of
    /// `metrics.listen`).
    pub fn router(self) -> Router {
        let metrics = self;
        Router::new().route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move { exposition(&metrics).await }
            }),
        )
    }
}

async fn exposition(metrics: &Metrics) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], metrics.render().await).into_response()
}

/// `GET /metrics` on the main listener, for the callers `access` admits.
pub(crate) async fn metrics_route(metrics: Metrics, access: MetricsAccess, caller: Option<Caller>) -> Response {
    if let Some(caller) = caller.filter(|c| !c.is_open()) {
        let allowed = match access {
            MetricsAccess::Anonymous => Ok(()),
            MetricsAccess::SignedIn => caller.require_signed_in().map(|_| ()),
            MetricsAccess::Admin => caller.require_signed_in().and_then(|user| {
                if caller.is_global_admin() {
                    Ok(())
                } else {
                    Err(crate::auth::Denied::Forbidden(format!("{user} may not read the metrics")))
                }
            }),
        };
        if let Err(denied) = allowed {
            return ApiError::from(denied).into_response();
        }
    }
    exposition(&metrics).await
}

/// Appends the gauges of the loaded indexes: versions and charts per space (the
/// [`MAX_SPACES_NAMED`] largest named, the rest summed as `_other`), the change log
/// position of each named space, and the replica staleness.
fn render_indexes(text: &mut String, mut stats: Vec<chartyard_storage::IndexStats>) {
    use std::fmt::Write;
    stats.sort_by(|a, b| b.versions.cmp(&a.versions).then_with(|| a.space.cmp(&b.space)));
    let staleness = stats.iter().map(|s| s.since_log_read).max().unwrap_or(Duration::ZERO);
    let named = stats.len().min(MAX_SPACES_NAMED);
    let rest = &stats[named..];
    let mut family = |name: &str, help: &str, value: &dyn Fn(&chartyard_storage::IndexStats) -> u64, other: bool| {
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} gauge");
        for s in &stats[..named] {
            let _ = writeln!(text, "{name}{{space=\"{}\"}} {}", escape(&s.space), value(s));
        }
        if other && !rest.is_empty() {
            let _ = writeln!(text, "{name}{{space=\"_other\"}} {}", rest.iter().map(value).sum::<u64>());
        }
    };
    family("chartyard_index_versions", "Chart versions in the loaded index of a space.", &|s| s.versions as u64, true);
    family("chartyard_index_charts", "Charts in the loaded index of a space.", &|s| s.charts as u64, true);
    family(
        "chartyard_changelog_position",
        "The last change log entry a space's loaded index holds.",
        &|s| s.position,
        false,
    );
    let _ = writeln!(
        text,
        "# HELP chartyard_replica_staleness_seconds How long ago the loaded index read least recently read its change log.\n\
         # TYPE chartyard_replica_staleness_seconds gauge\nchartyard_replica_staleness_seconds {}",
        staleness.as_secs_f64()
    );
}

/// A label value as the text format writes it.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_taken_when_usable() {
        let mut headers = HeaderMap::new();
        headers.insert(&REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&headers), "abc-123");
        headers.insert(&REQUEST_ID, HeaderValue::from_str(&"x".repeat(129)).unwrap());
        assert_eq!(request_id(&headers).len(), 32);
        headers.insert(&REQUEST_ID, HeaderValue::from_static("has space"));
        let made = request_id(&headers);
        assert_eq!(made.len(), 32);
        assert!(made.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(request_id(&HeaderMap::new()), request_id(&HeaderMap::new()));
    }

    #[test]
    fn methods_outside_the_standard_set_are_other() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"PROPFIND").unwrap()), "_OTHER");
    }

    #[test]
    fn only_the_largest_spaces_are_named() {
        let stats = (0..105)
            .map(|i| chartyard_storage::IndexStats {
                space: format!("s{i:03}"),
                charts: 1,
                versions: i,
                position: 7,
                since_log_read: Duration::from_secs(i as u64),
            })
            .collect();
        let mut text = String::new();
        render_indexes(&mut text, stats);
        let versions: Vec<&str> = text.lines().filter(|l| l.starts_with("chartyard_index_versions{")).collect();
        assert_eq!(versions.len(), 101);
        assert!(versions.contains(&"chartyard_index_versions{space=\"s104\"} 104"));
        // s000..s004 are the smallest: summed.
        assert!(versions.contains(&"chartyard_index_versions{space=\"_other\"} 10"));
        assert_eq!(text.lines().filter(|l| l.starts_with("chartyard_changelog_position{")).count(), 100);
        assert!(text.contains("chartyard_replica_staleness_seconds 104\n"));
    }
}
