//! Bounds on request bodies: how long the server waits for them, and how many of their
//! bytes all requests together may hold at once.
//!
//! - A body that sends nothing for the idle timeout, or has not arrived whole within the
//!   request timeout of the request's head, fails; the request is answered 408 and its
//!   connection closed, whatever the handler made of the failed read.
//! - Every body is admitted against one budget of bytes shared by all requests
//!   ([`BodyLimits::memory`]). A body of known length reserves its length (at most the
//!   largest accepted body) before a byte of it is read; a chunked body reserves its bytes
//!   as they arrive. What cannot be admitted is answered 503 with `Retry-After`. A
//!   reservation is held until the handler has answered, since handlers buffer the bodies
//!   they parse (archives, manifests, JSON).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::error::ApiError;

/// Seconds a client is asked to wait before retrying a request refused for lack of room.
const RETRY_AFTER_SECONDS: u32 = 5;

/// The shared state of the body bounds.
#[derive(Debug)]
pub struct BodyLimits {
    /// A body that sends nothing for this long fails.
    pub idle_timeout: Option<Duration>,
    /// A body must have arrived whole this long after its request's head.
    pub request_timeout: Option<Duration>,
    /// The largest body one request may send (what a body of known length reserves at most).
    pub max_body_bytes: usize,
    /// Bytes of request bodies that may be held at once, by all requests together.
    memory: Arc<Semaphore>,
    capacity: usize,
}

impl BodyLimits {
    pub fn new(
        idle_timeout: Option<Duration>,
        request_timeout: Option<Duration>,
        max_body_bytes: usize,
        max_body_memory: usize,
    ) -> Self {
        let capacity = max_body_memory.min(Semaphore::MAX_PERMITS);
        Self { idle_timeout, request_timeout, max_body_bytes, memory: Arc::new(Semaphore::new(capacity)), capacity }
    }

    /// Bytes of request bodies held right now.
    pub fn held_bytes(&self) -> usize {
        self.capacity - self.memory.available_permits()
    }

    /// Takes `bytes` from the budget at once, or nothing.
    fn reserve(&self, bytes: u64) -> Option<OwnedSemaphorePermit> {
        let bytes = usize::try_from(bytes).ok()?;
        if bytes > self.capacity {
            return None;
        }
        let mut left = bytes;
        let mut held: Option<OwnedSemaphorePermit> = None;
        while left > 0 {
            let step = left.min(u32::MAX as usize);
            // On failure, what was taken so far goes back when `held` drops.
            let permit = self.memory.clone().try_acquire_many_owned(step as u32).ok()?;
            match held.as_mut() {
                Some(held) => held.merge(permit),
                None => held = Some(permit),
            }
            left -= step;
        }
        held
    }
}

/// Why a request's body failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Idle(Duration),
    Deadline(Duration),
    NoRoom,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Idle(d) => write!(f, "the request body sent nothing for {}", humanize(*d)),
            Failure::Deadline(d) => write!(f, "the request body did not arrive within {}", humanize(*d)),
            Failure::NoRoom => f.write_str("the server holds as many request bodies as it has room for; retry later"),
        }
    }
}

impl std::error::Error for Failure {}

fn humanize(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

/// What a request's body did, seen by the middleware once the handler has answered.
#[derive(Default)]
struct Watch {
    failure: Mutex<Option<Failure>>,
    /// Bytes a chunked body has been admitted for so far.
    admitted: Mutex<Option<OwnedSemaphorePermit>>,
}

impl Watch {
    fn fail(&self, failure: Failure) {
        let mut slot = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert(failure);
    }

    fn failure(&self) -> Option<Failure> {
        *self.failure.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn release(&self) {
        self.admitted.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// A request body under the bounds.
struct GuardedBody {
    inner: Body,
    limits: Arc<BodyLimits>,
    watch: Arc<Watch>,
    /// Whether each frame is admitted against the budget as it arrives (bodies of unknown
    /// length; a known length was reserved up front).
    count_frames: bool,
    /// When the last frame arrived (or the body was first read).
    last_frame: Option<Instant>,
    idle: Option<Pin<Box<Sleep>>>,
    deadline: Option<Pin<Box<Sleep>>>,
    failed: Option<Failure>,
}

impl GuardedBody {
    fn fail(&mut self, failure: Failure) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        self.failed = Some(failure);
        self.watch.fail(failure);
        Poll::Ready(Some(Err(axum::Error::new(failure))))
    }

    fn admit(&self, bytes: usize) -> bool {
        if bytes == 0 {
            return true;
        }
        let Some(permit) = self.limits.reserve(bytes as u64) else {
            return false;
        };
        let mut admitted = self.watch.admitted.lock().unwrap_or_else(|e| e.into_inner());
        match admitted.as_mut() {
            Some(held) => held.merge(permit),
            None => *admitted = Some(permit),
        }
        true
    }
}

impl HttpBody for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if let Some(failure) = this.failed {
            return Poll::Ready(Some(Err(axum::Error::new(failure))));
        }
        let last = *this.last_frame.get_or_insert_with(Instant::now);
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.last_frame = Some(Instant::now());
                if this.count_frames
                    && let Some(data) = frame.data_ref()
                    && !this.admit(data.len())
                {
                    return this.fail(Failure::NoRoom);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                if let Some(deadline) = this.deadline.as_mut()
                    && deadline.as_mut().poll(cx).is_ready()
                {
                    return this.fail(Failure::Deadline(this.limits.request_timeout.unwrap_or_default()));
                }
                if let Some(timeout) = this.limits.idle_timeout {
                    let due = last + timeout;
                    let idle = this.idle.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
                    if idle.deadline() != due {
                        idle.as_mut().reset(due);
                    }
                    ready!(idle.as_mut().poll(cx));
                    return this.fail(Failure::Idle(timeout));
                }
                Poll::Pending
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The middleware: admits the body, guards it while the handler runs, and answers for it
/// when it failed.
pub async fn guard_body(State(limits): State<Arc<BodyLimits>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let length = request.body().size_hint().exact();
    if length == Some(0) {
        return next.run(request).await;
    }
    let path = request.uri().path().to_string();
    let reserved = match length {
        Some(length) => match limits.reserve(length.min(limits.max_body_bytes as u64)) {
            Some(permit) => Some(permit),
            None => return refusal(&path, Failure::NoRoom),
        },
        None => None,
    };
    let watch = Arc::new(Watch::default());
    let (parts, body) = request.into_parts();
    let guarded = GuardedBody {
        inner: body,
        limits: limits.clone(),
        watch: watch.clone(),
        count_frames: length.is_none(),
        last_frame: None,
        idle: None,
        deadline: limits.request_timeout.map(|t| Box::pin(tokio::time::sleep_until(started + t))),
        failed: None,
    };
    let response = next.run(Request::from_parts(parts, Body::new(guarded))).await;
    drop(reserved);
    watch.release();
    match watch.failure() {
        Some(failure) => refusal(&path, failure),
        None => response,
    }
}

/// The answer to a request whose body failed or found no room, in the error shape of the
/// API it was sent to. The connection is closed after it: the rest of the body is unread.
fn refusal(path: &str, failure: Failure) -> Response {
    let status = match failure {
        Failure::Idle(_) | Failure::Deadline(_) => StatusCode::REQUEST_TIMEOUT,
        Failure::NoRoom => StatusCode::SERVICE_UNAVAILABLE,
    };
    let message = failure.to_string();
    tracing::warn!(path, %status, "{message}");
    let mut response = if path == "/v2" || path.starts_with("/v2/") {
        let code = if failure == Failure::NoRoom { "TOOMANYREQUESTS" } else { "UNKNOWN" };
        let body = json!({"errors": [{"code": code, "message": message, "detail": null}]});
        (status, axum::Json(body)).into_response()
    } else if path.starts_with("/api/v1/") {
        ApiError::new(status, message).into_response()
    } else {
        (status, axum::Json(json!({ "error": message }))).into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    if failure == Failure::NoRoom {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_come_out_of_one_budget_and_go_back() {
        let limits = BodyLimits::new(None, None, 100, 250);
        let first = limits.reserve(100).unwrap();
        let second = limits.reserve(100).unwrap();
        assert_eq!(limits.held_bytes(), 200);
        assert!(limits.reserve(100).is_none(), "a third body does not fit");
        assert_eq!(limits.held_bytes(), 200, "a refused reservation holds nothing");
        drop(first);
        assert!(limits.reserve(100).is_some());
        drop(second);
        assert_eq!(limits.held_bytes(), 0);
        assert!(limits.reserve(251).is_none(), "more than the whole budget never fits");
    }
}
