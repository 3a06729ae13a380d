//! The HTTP server loop: accepts connections up to a limit and serves each one with hyper
//! under the connection timeouts.
//!
//! - At most `max_connections` connections are served at once. A connection that
//!   arrives at the limit takes the place of the one that has waited longest for a
//!   request (idle keep-alive, or headers still arriving), so clients that hold
//!   connections open without sending requests cannot lock others out. When every
//!   connection has a request in progress, new ones wait in the listen backlog.
//! - A request's line and headers must arrive within `header_timeout` of the connection
//!   being ready for them (hyper's header read timeout, which also runs while a
//!   keep-alive connection waits for its next request).
//! - A connection with no request being handled is closed after `keepalive_timeout`
//!   without traffic in either direction: idle keep-alive connections, and clients that
//!   stopped reading an answer.
//! - On shutdown the server stops accepting, closes connections that wait for a request
//!   and lets requests in progress finish (at most `shutdown_grace`).
//!
//! Request bodies are bounded per request by `chartyard_http::limits`.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::time::Instant;
use tower::ServiceExt;

/// Bounds on connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_timeout: Option<Duration>,
    pub keepalive_timeout: Option<Duration>,
    pub max_connections: usize,
    /// How long shutdown waits for requests in progress; `None`: as long as they take.
    pub shutdown_grace: Option<Duration>,
}

/// Serves `app` on `listener` until `shutdown` completes, then drains connections.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let connections = Arc::new(Connections::default());
    let (stop, stopping) = watch::channel(false);
    tokio::pin!(shutdown);
    'accept: loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
        };
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            // At the limit: the connection waiting longest for a request makes room; when
            // all have requests in progress, wait until one ends or starts waiting.
            Err(_) => loop {
                connections.evict_longest_waiting();
                tokio::select! {
                    biased;
                    () = &mut shutdown => break 'accept,
                    slot = slots.clone().acquire_owned() => break slot.expect("the connection slots are never closed"),
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            },
        };
        // Without TCP_NODELAY a response written as headers then body stalls on delayed ACKs.
        let _ = stream.set_nodelay(true);
        let (app, stopping) = (app.clone(), stopping.clone());
        let activity = connections.register();
        tokio::spawn(async move {
            serve_connection(stream, peer, app, limits, &activity, stopping).await;
            drop(activity);
            drop(slot);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection gives its slot back when it ends.
    let all = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
    let drained = slots.acquire_many(all);
    match limits.shutdown_grace {
        Some(grace) => {
            if tokio::time::timeout(grace, drained).await.is_err() {
                tracing::warn!("stopping with requests still in progress after {}s", grace.as_secs());
            }
        }
        None => {
            let _ = drained.await;
        }
    }
    Ok(())
}

/// An accept that failed: a connection reset before it was accepted is nothing; anything
/// else (such as running out of file descriptors) is logged and retried after a pause,
/// so the loop does not spin.
async fn accept_failed(error: io::Error) {
    use io::ErrorKind::*;
    if matches!(error.kind(), ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted) {
        return;
    }
    tracing::error!(%error, "cannot accept connections");
    tokio::time::sleep(Duration::from_millis(250)).await;
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: ConnectionLimits,
    activity: &Registered,
    mut stopping: watch::Receiver<bool>,
) {
    let activity = activity.0.clone();
    let io = TokioIo::new(Tracked { inner: stream, activity: activity.clone() });
    let requests = activity.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        let handling = Busy::start(&requests, Stage::Handling);
        // Who is asking: access control limits failed logins per client and the audit log
        // says where each write came from.
        request.extensions_mut().insert(ConnectInfo(peer));
        let answer = app.clone().oneshot(request);
        let requests = requests.clone();
        async move {
            let response = answer.await;
            // The answer's body is written after this; the connection stays busy (not
            // waiting for a request) until it is.
            let responding = Busy::start(&requests, Stage::Responding);
            drop(handling);
            response.map(|r| r.map(|body| Body::new(Responding { body, _busy: responding })))
        }
    });
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut shutting_down = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection closed");
                }
                return;
            }
            _ = stopping.changed(), if !shutting_down => {
                if activity.waiting() {
                    return;
                }
                shutting_down = true;
                connection.as_mut().graceful_shutdown();
            }
            () = activity.evicted.notified(), if !shutting_down => {
                if activity.waiting() {
                    tracing::debug!("closing a connection that waited longest for a request, to make room");
                    return;
                }
                // It started a request just now: let that finish, then close.
                shutting_down = true;
                connection.as_mut().graceful_shutdown();
            }
            () = idle(&activity, limits.keepalive_timeout) => {
                tracing::debug!("closing a connection idle for {:?}", activity.idle_for());
                return;
            }
        }
    }
}

/// Completes once the connection has had no request being handled and no traffic for
/// `limit` (an answer whose client stopped reading counts as no traffic); never without
/// a limit.
async fn idle(activity: &Activity, limit: Option<Duration>) {
    let Some(limit) = limit else {
        return std::future::pending().await;
    };
    loop {
        let idle_for = activity.idle_for();
        let handling = activity.handling.load(Ordering::Relaxed) > 0;
        if !handling && idle_for >= limit {
            return;
        }
        let wait = if handling { limit } else { limit - idle_for };
        tokio::time::sleep(wait).await;
    }
}

/// The live connections, so that one can be chosen to make room at the limit.
struct Connections {
    epoch: Instant,
    next: AtomicU64,
    live: Mutex<HashMap<u64, Arc<Activity>>>,
}

impl Default for Connections {
    fn default() -> Self {
        Self { epoch: Instant::now(), next: AtomicU64::new(0), live: Mutex::default() }
    }
}

impl Connections {
    fn register(self: &Arc<Self>) -> Registered {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity::new(self.epoch));
        self.live.lock().unwrap_or_else(|e| e.into_inner()).insert(id, activity.clone());
        Registered(activity, id, self.clone())
    }

    /// Asks the connection that has waited longest for a request to close, if any.
    fn evict_longest_waiting(&self) {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        // Ties (the same millisecond) go to the older connection.
        let victim = live
            .iter()
            .filter(|(_, a)| a.waiting() && !a.evicting.load(Ordering::Relaxed))
            .min_by_key(|(id, a)| (a.waiting_since.load(Ordering::Relaxed), **id))
            .map(|(_, a)| a);
        if let Some(victim) = victim {
            victim.evicting.store(true, Ordering::Relaxed);
            victim.evicted.notify_one();
        }
    }
}

/// A connection's entry in [`Connections`], removed when dropped.
struct Registered(Arc<Activity>, u64, Arc<Connections>);

impl Drop for Registered {
    fn drop(&mut self) {
        self.2.live.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.1);
    }
}

/// What a connection is doing: when it last moved bytes, whether a request is being
/// handled or answered, and since when it has waited for a request.
struct Activity {
    epoch: Instant,
    /// Milliseconds from `epoch` to the last read or write that moved bytes.
    last: AtomicU64,
    /// Milliseconds from `epoch` to when the connection last started waiting for a request.
    waiting_since: AtomicU64,
    /// Requests between their head and their answer's head.
    handling: AtomicUsize,
    /// Answers whose bodies are being written.
    responding: AtomicUsize,
    evicting: AtomicBool,
    evicted: Notify,
}

impl Activity {
    fn new(epoch: Instant) -> Self {
        let now = epoch.elapsed().as_millis() as u64;
        Self {
            epoch,
            last: AtomicU64::new(now),
            waiting_since: AtomicU64::new(now),
            handling: AtomicUsize::new(0),
            responding: AtomicUsize::new(0),
            evicting: AtomicBool::new(false),
            evicted: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn touch(&self) {
        self.last.store(self.now(), Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        Duration::from_millis(self.now().saturating_sub(self.last.load(Ordering::Relaxed)))
    }

    fn counter(&self, stage: Stage) -> &AtomicUsize {
        match stage {
            Stage::Handling => &self.handling,
            Stage::Responding => &self.responding,
        }
    }

    /// Whether the connection waits for a request: none is being handled or answered.
    fn waiting(&self) -> bool {
        self.handling.load(Ordering::Relaxed) == 0 && self.responding.load(Ordering::Relaxed) == 0
    }
}

/// Where a request is: handled (between its head and its answer's head), or answered
/// (its answer's body being written).
#[derive(Clone, Copy)]
enum Stage {
    Handling,
    Responding,
}

/// Counts one request at a stage while it lives.
struct Busy {
    activity: Arc<Activity>,
    stage: Stage,
}

impl Busy {
    fn start(activity: &Arc<Activity>, stage: Stage) -> Self {
        activity.counter(stage).fetch_add(1, Ordering::Relaxed);
        Self { activity: activity.clone(), stage }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let activity = &self.activity;
        activity.counter(self.stage).fetch_sub(1, Ordering::Relaxed);
        activity.touch();
        if activity.waiting() {
            activity.waiting_since.store(activity.now(), Ordering::Relaxed);
        }
    }
}

/// An answer's body; the connection counts as answering until it is written (or dropped).
struct Responding {
    body: Body,
    _busy: Busy,
}

impl http_body::Body for Responding {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// A TCP stream that records when it last moved bytes.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        result
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Raises the soft limit on open files to the hard limit, so that the connection limit
/// is what bounds connections; answers the soft limit in effect.
#[cfg(unix)]
pub fn raise_open_files_limit() -> Option<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    // An unlimited hard limit still has a ceiling in the kernel; ask for a high one.
    let wanted = if limit.rlim_max == libc::RLIM_INFINITY { 1 << 20 } else { limit.rlim_max };
    if limit.rlim_cur < wanted {
        let raised = libc::rlimit { rlim_cur: wanted, rlim_max: limit.rlim_max };
        // SAFETY: setrlimit only reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = wanted;
        }
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
    Some(limit.rlim_cur as u64)
}

#[cfg(not(unix))]
pub fn raise_open_files_limit() -> Option<u64> {
    None
}

/// The default connection limit: half the open files (a download holds its connection
/// and its file) after a reserve for the process itself, at most 4096.
pub fn default_max_connections(open_files: Option<u64>) -> usize {
    const RESERVED: u64 = 64;
    const MOST: u64 = 4096;
    match open_files {
        Some(files) => (files.saturating_sub(RESERVED) / 2).clamp(16, MOST) as usize,
        None => 1024,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_connection_limit_follows_open_files() {
        assert_eq!(default_max_connections(Some(1024)), 480);
        assert_eq!(default_max_connections(Some(1 << 20)), 4096);
        assert_eq!(default_max_connections(Some(10)), 16);
        assert_eq!(default_max_connections(None), 1024);
    }
}
