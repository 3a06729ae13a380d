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
//! - With TLS, the handshake runs inside the connection's slot and must complete within
//!   `header_timeout` (and is closed like an idle connection after `keepalive_timeout`
//!   without traffic), so a client that opens a socket and sends nothing cannot hold a
//!   slot. Only `http/1.1` is offered over ALPN. The certificate and key files are checked
//!   every few seconds and reloaded when they change: new handshakes get the new pair,
//!   established connections keep theirs, and a pair that cannot be used is logged and
//!   the previous one kept.
//!
//! Request bodies are bounded per request by `chartyard_http::limits`.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::uri::Scheme;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, ServerConfig};
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

/// Serves `app` on `listener` until `shutdown` completes, then drains connections. With
/// `tls`, every connection is a TLS connection terminated here.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    tls: Option<TlsAcceptor>,
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
        let (app, mut stopping, tls) = (app.clone(), stopping.clone(), tls.clone());
        let activity = connections.register();
        tokio::spawn(async move {
            let stream = Tracked { inner: stream, activity: activity.0.clone() };
            match tls {
                None => serve_connection(stream, peer, app, limits, &activity, stopping, None).await,
                Some(acceptor) => {
                    if let Some(stream) = handshake(&acceptor, stream, peer, limits, &activity.0, &mut stopping).await {
                        serve_connection(stream, peer, app, limits, &activity, stopping, Some(Scheme::HTTPS)).await;
                    }
                }
            }
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

/// Runs the TLS handshake of a new connection. It ends the connection (answering `None`)
/// when the handshake fails, takes longer than `header_timeout`, moves no bytes for
/// `keepalive_timeout`, or when the server stops or needs the slot: until the handshake is
/// done, the connection waits for a request like any other.
async fn handshake(
    acceptor: &TlsAcceptor,
    stream: Tracked,
    peer: SocketAddr,
    limits: ConnectionLimits,
    activity: &Arc<Activity>,
    stopping: &mut watch::Receiver<bool>,
) -> Option<tokio_rustls::server::TlsStream<Tracked>> {
    let deadline = async {
        match limits.header_timeout {
            Some(limit) => tokio::time::sleep(limit).await,
            None => std::future::pending().await,
        }
    };
    // Failures are the clients' (wrong certificate trust, plain HTTP on the TLS port,
    // scanners): worth a debug line, not an error.
    tokio::select! {
        result = acceptor.accept(stream) => match result {
            Ok(stream) => Some(stream),
            Err(error) => {
                tracing::debug!(%peer, %error, "TLS handshake failed");
                None
            }
        },
        () = deadline => {
            tracing::debug!(%peer, "closing a connection that did not complete its TLS handshake in time");
            None
        }
        () = idle(activity, limits.keepalive_timeout) => {
            tracing::debug!(%peer, "closing a connection idle during its TLS handshake");
            None
        }
        () = activity.evicted.notified() => {
            tracing::debug!(%peer, "closing a connection still in its TLS handshake, to make room");
            None
        }
        _ = stopping.changed() => None,
    }
}

/// Serves the requests of one connection (`io`: the plain TCP stream, or the TLS stream
/// over it). `scheme` is `Some(Scheme::HTTPS)` on TLS connections: it is inserted into
/// every request's extensions (as `axum::http::uri::Scheme`), so that handlers building
/// absolute URLs know the client reached the server over HTTPS; plain connections carry
/// no `Scheme`.
async fn serve_connection<I>(
    io: I,
    peer: SocketAddr,
    app: Router,
    limits: ConnectionLimits,
    activity: &Registered,
    mut stopping: watch::Receiver<bool>,
    scheme: Option<Scheme>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = activity.0.clone();
    let io = TokioIo::new(io);
    let requests = activity.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        let handling = Busy::start(&requests, Stage::Handling);
        // Who is asking: access control limits failed logins per client and the audit log
        // says where each write came from.
        request.extensions_mut().insert(ConnectInfo(peer));
        if let Some(scheme) = &scheme {
            request.extensions_mut().insert(scheme.clone());
        }
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

/// How often the certificate and key files are checked for changes.
const CERTIFICATE_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// What identifies a version of a file without reading it: modification time, size and
/// inode (a file replaced by a rename, as mounted Kubernetes secrets are, is another
/// inode); `None` while the file cannot be seen.
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some((meta.modified().ok()?, meta.len(), inode))
}

/// The served certificate chain and key: read from their PEM files at startup, and read
/// again by [`Certificates::watch`] when the files change. As the TLS configuration's
/// certificate resolver, it hands every new handshake the current pair; connections keep
/// the pair they were established with.
#[derive(Debug)]
pub struct Certificates {
    certificate: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' stamps when the current pair (or the last broken one) was read.
    seen: Mutex<[Stamp; 2]>,
}

impl Certificates {
    /// Reads the pair; an error names the configuration key of the file at fault
    /// (`tls.certificate` or `tls.key`).
    pub fn load(certificate: &Path, key: &Path) -> Result<Arc<Self>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let seen = [stamp(certificate), stamp(key)];
        let pair = load_pair(certificate, key, &provider)?;
        Ok(Arc::new(Self {
            certificate: certificate.to_path_buf(),
            key: key.to_path_buf(),
            provider,
            current: RwLock::new(Arc::new(pair)),
            seen: Mutex::new(seen),
        }))
    }

    /// The TLS acceptor serving these certificates: TLS 1.2 and 1.3 with ring's
    /// algorithms, no client certificates, ALPN `http/1.1` only (the server speaks
    /// HTTP/1.1).
    pub fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, String> {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS configuration: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// Checks the files every few seconds and reloads the pair when either changed; runs
    /// until the runtime stops.
    pub async fn watch(self: Arc<Self>) {
        loop {
            tokio::time::sleep(CERTIFICATE_CHECK_INTERVAL).await;
            let this = self.clone();
            let _ = tokio::task::spawn_blocking(move || this.reload_if_changed()).await;
        }
    }

    /// Reads the pair again if either file changed since it was last read. A pair that
    /// cannot be used is logged once (until the files change again) and the current one
    /// kept.
    fn reload_if_changed(&self) {
        // Stamped before reading: a change made while the files are read is seen next time.
        let now = [stamp(&self.certificate), stamp(&self.key)];
        {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if *seen == now {
                return;
            }
            *seen = now;
        }
        match load_pair(&self.certificate, &self.key, &self.provider) {
            Ok(pair) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(pair);
                tracing::info!(certificate = %self.certificate.display(), "reloaded the TLS certificate and key");
            }
            Err(error) => tracing::error!(
                %error,
                "the changed TLS certificate or key cannot be used; still serving the previous pair"
            ),
        }
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

/// Reads a PEM certificate chain and its private key (PKCS#8, RSA or SEC1 EC) and checks
/// that they belong together.
fn load_pair(certificate: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let read = |name: &str, path: &Path| {
        std::fs::read(path).map_err(|e| format!("tls.{name}: cannot read {}: {e}", path.display()))
    };
    let chain_pem = read("certificate", certificate)?;
    let chain = CertificateDer::pem_slice_iter(&chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls.certificate: {}: not a PEM certificate chain: {e}", certificate.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "tls.certificate: {}: no certificate in it (expected PEM \"BEGIN CERTIFICATE\" blocks)",
            certificate.display()
        ));
    }
    let key_pem = read("key", key)?;
    let private_key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        format!("tls.key: {}: no private key in it (expected a PEM PKCS#8, RSA or EC private key): {e}", key.display())
    })?;
    let signing_key = provider
        .key_provider
        .load_private_key(private_key)
        .map_err(|e| format!("tls.key: {}: unusable private key: {e}", key.display()))?;
    let pair = CertifiedKey::new(chain, signing_key);
    match pair.keys_match() {
        // The provider could not tell (a key type without a public key to compare).
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(pair),
        Err(rustls::Error::InconsistentKeys(_)) => Err(format!(
            "tls.key: {} does not belong to the first certificate in {}",
            key.display(),
            certificate.display()
        )),
        Err(e) => Err(format!("tls.certificate: {}: unusable certificate: {e}", certificate.display())),
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
