//! Liveness and readiness probes: `GET /livez` answers while the process runs;
//! `GET /readyz` answers 200 only once startup is done, while the store answers and
//! before shutdown begins, else 503 naming the check that failed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chartyard_storage::Registry;
use serde_json::json;

/// How long a storage check's answer is reused: probes from several sources cost the
/// store one request per interval.
const STORAGE_CHECK_TTL: Duration = Duration::from_secs(2);
/// How long a storage check may take before the store counts as unreachable.
const STORAGE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The readiness of the server, shared by the probes and whoever starts and stops it.
pub struct Readiness {
    registry: Arc<Registry>,
    started: AtomicBool,
    draining: AtomicBool,
    /// The last storage check: when, and what it found.
    storage: tokio::sync::Mutex<Option<(Instant, Result<(), String>)>>,
}

impl Readiness {
    /// Not ready until [`Readiness::set_started`].
    pub fn new(registry: Arc<Registry>) -> Arc<Self> {
        Arc::new(Self {
            registry,
            started: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            storage: tokio::sync::Mutex::new(None),
        })
    }

    /// Startup is done: the server takes requests.
    pub fn set_started(&self) {
        self.started.store(true, Ordering::Relaxed);
    }

    /// Shutdown has begun: load balancers should send no new requests.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn is_started(&self) -> bool {
        self.started.load(Ordering::Relaxed)
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Whether the store answers a metadata request, checked at most every
    /// [`STORAGE_CHECK_TTL`]; concurrent probes wait for the one check in flight.
    async fn storage(&self) -> Result<(), String> {
        let mut last = self.storage.lock().await;
        if let Some((at, found)) = last.as_ref()
            && at.elapsed() < STORAGE_CHECK_TTL
        {
            return found.clone();
        }
        let found = match tokio::time::timeout(STORAGE_CHECK_TIMEOUT, self.registry.check_storage()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => {
                tracing::warn!(%error, "readiness: the store failed a check");
                Err("unavailable: the store answered with an error".to_string())
            }
            Err(_) => {
                tracing::warn!(timeout = ?STORAGE_CHECK_TIMEOUT, "readiness: the store did not answer a check in time");
                Err(format!("unavailable: no answer within {}s", STORAGE_CHECK_TIMEOUT.as_secs()))
            }
        };
        *last = Some((Instant::now(), found.clone()));
        found
    }

    /// The `/readyz` answer.
    pub async fn probe(&self) -> Response {
        let started = self.is_started();
        let draining = self.is_draining();
        let storage = self.storage().await;
        let ready = started && !draining && storage.is_ok();
        let body = json!({
            "status": if ready { "ready" } else { "not ready" },
            "checks": {
                "startup": if started { "done" } else { "pending" },
                "storage": storage.err().unwrap_or_else(|| "ok".to_string()),
                "draining": draining,
            }
        });
        let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
        (status, axum::Json(body)).into_response()
    }
}

/// `GET /livez`: the process answers; nothing else is checked.
pub async fn livez() -> Response {
    axum::Json(json!({ "status": "alive" })).into_response()
}
