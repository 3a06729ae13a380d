//! chartyard's HTTP front-ends. Each protocol is a thin adapter: it parses the request,
//! calls one [`Registry`](chartyard_storage::Registry) operation and renders the answer.
//! Status codes exist only here ([`error`]).

pub mod api_v1;
pub mod audit;
pub mod auth;
pub mod chartmuseum;
pub mod error;
pub mod limits;
pub mod observe;
pub mod oci;
pub mod probes;
pub mod repo;
mod server_routes;
mod space;
mod ui;

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chartyard_storage::Registry;
use tower_http::catch_panic::CatchPanicLayer;

use crate::error::ApiError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<Registry>,
    /// The space served at the root (`/index.yaml`, `/api/charts`), if any.
    pub default_space: Option<String>,
    /// Whether an upload may replace an existing version without being asked to
    /// (ChartMuseum's `--allow-overwrite`); the only way an OCI push of other bytes under
    /// an existing version's tag replaces it.
    pub allow_overwrite: bool,
    /// Whether ChartMuseum's `?force` replaces an existing version (on unless
    /// `--disable-force-overwrite`, as on ChartMuseum).
    pub allow_force_overwrite: bool,
    /// Largest OCI manifest accepted.
    pub max_manifest_bytes: usize,
    /// Access control; none: everyone may do everything.
    pub access: Option<Arc<auth::AccessControl>>,
}

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Largest request body accepted (uploads, JSON), in bytes.
    pub max_body_bytes: usize,
    /// The space served at the root for single-tenant ChartMuseum users.
    pub default_space: Option<String>,
    /// Whether uploads replace existing versions even without `?force`.
    pub allow_overwrite: bool,
    /// Whether ChartMuseum's `?force` is refused (a conflict, as without it).
    pub disable_force_overwrite: bool,
    /// A request body that sends nothing for this long fails with 408.
    pub body_idle_timeout: Option<Duration>,
    /// A request body must have arrived whole this long after the request's head, or
    /// the request fails with 408.
    pub request_timeout: Option<Duration>,
    /// Bytes of request bodies all requests together may hold at once; a body that
    /// does not fit is refused with 503.
    pub max_body_memory: usize,
}

pub const DEFAULT_BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
pub const DEFAULT_MAX_BODY_MEMORY: usize = 256 * 1024 * 1024;

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            max_body_bytes: 20 * 1024 * 1024,
            default_space: None,
            allow_overwrite: false,
            disable_force_overwrite: false,
            body_idle_timeout: Some(DEFAULT_BODY_IDLE_TIMEOUT),
            request_timeout: Some(DEFAULT_REQUEST_TIMEOUT),
            max_body_memory: DEFAULT_MAX_BODY_MEMORY,
        }
    }
}

/// What operators reach besides the APIs: the readiness the probes report and the
/// metrics route.
#[derive(Clone, Default)]
pub struct Operations {
    /// `None`: a readiness of the application's own, started at once.
    pub readiness: Option<Arc<probes::Readiness>>,
    /// `GET /metrics` on this application and who may read it; `None`: no such route.
    pub metrics: Option<(observe::Metrics, observe::MetricsAccess)>,
}

/// The whole HTTP application, open to everyone; tests drive it over a real socket.
pub fn app(registry: Arc<Registry>, options: &HttpOptions) -> Router {
    app_with_access(registry, options, None)
}

/// The whole HTTP application under `access` control (none: open).
pub fn app_with_access(
    registry: Arc<Registry>,
    options: &HttpOptions,
    access: Option<Arc<auth::AccessControl>>,
) -> Router {
    app_with_operations(registry, options, access, Operations::default())
}

/// The whole HTTP application under `access` control, with the probes and metrics of
/// `operations`.
pub fn app_with_operations(
    registry: Arc<Registry>,
    options: &HttpOptions,
    access: Option<Arc<auth::AccessControl>>,
    operations: Operations,
) -> Router {
    let readiness = operations.readiness.unwrap_or_else(|| {
        let readiness = probes::Readiness::new(registry.clone());
        readiness.set_started();
        readiness
    });
    let identify = auth::IdentifyState {
        access: access.clone(),
        audit: Some(audit::AuditQueue::new(registry.clone())),
        default_space: options.default_space.clone(),
    };
    let state = AppState {
        registry,
        default_space: options.default_space.clone(),
        allow_overwrite: options.allow_overwrite,
        allow_force_overwrite: !options.disable_force_overwrite,
        max_manifest_bytes: 4 * 1024 * 1024,
        access: access.clone(),
    };
    let mut router = Router::new()
        .nest("/api/v1", api_v1::routes())
        .merge(chartmuseum::routes("/api/{space}"))
        .merge(repo::routes("/{space}"))
        .merge(oci::routes())
        .merge(server_routes::routes())
        .merge(ui::routes());
    if options.default_space.is_some() {
        router = router.merge(chartmuseum::routes("/api")).merge(repo::routes(""));
    }
    if let Some((metrics, metrics_access)) = operations.metrics {
        let route = move |caller: Option<Extension<auth::Caller>>| {
            observe::metrics_route(metrics.clone(), metrics_access, caller.map(|Extension(c)| c))
        };
        router = router.route("/metrics", get(route));
    }
    router
        .route("/apidocs.json", get(api_v1::openapi))
        .route("/health", get(health))
        .route("/livez", get(probes::livez))
        .route("/readyz", get(move || async move { readiness.probe().await }))
        .route("/info", get(info))
        .fallback(not_found)
        .with_state(state)
        // Who is asking, for the guard each route carries (see `auth`).
        .layer(from_fn_with_state(identify, auth::identify))
        .layer(DefaultBodyLimit::max(options.max_body_bytes))
        .layer(from_fn_with_state(Arc::new(body_limits(options)), limits::guard_body))
        .layer(CatchPanicLayer::custom(|_| ApiError::internal_message("internal server error").into_response()))
        // Request ids, metrics and one log line per request; internal errors are logged
        // where they happen, with their cause.
        .layer(from_fn(observe::observe))
}

fn body_limits(options: &HttpOptions) -> limits::BodyLimits {
    limits::BodyLimits::new(
        options.body_idle_timeout,
        options.request_timeout,
        options.max_body_bytes,
        options.max_body_memory,
    )
}

async fn health() -> Response {
    axum::Json(serde_json::json!({ "healthy": true })).into_response()
}

async fn info() -> Response {
    axum::Json(serde_json::json!({ "version": env!("CARGO_PKG_VERSION") })).into_response()
}

async fn not_found(uri: axum::http::Uri) -> Response {
    oci::not_an_endpoint(uri.path())
        .unwrap_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "no such route").into_response())
}
