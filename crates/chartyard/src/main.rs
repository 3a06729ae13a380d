//! The `chartyard` command: runs the registry server and its maintenance tasks.

mod auth_config;
mod cli;
mod config;
mod mirror;
mod server;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chartyard_http::observe::Metrics;
use chartyard_http::probes::Readiness;
use chartyard_http::{HttpOptions, Operations};
use chartyard_storage::{Registry, RegistryOptions};
use clap::{Parser, Subcommand, ValueEnum};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::config::{Settings, SettingsArgs, bind_address};

#[derive(Debug, Parser)]
#[command(name = "chartyard", version, about = "A Helm chart registry")]
struct Cli {
    /// Log line format (serve, gc).
    #[arg(long, global = true, env = "CHARTYARD_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
    #[command(flatten)]
    connection: cli::Connection,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the registry server.
    Serve(SettingsArgs),
    /// Delete stored blobs (archives, OCI manifests and configs) no chart version needs.
    Gc {
        #[command(flatten)]
        settings: SettingsArgs,
        /// Keep unreferenced blobs younger than this many seconds (uploads in flight).
        #[arg(long, default_value_t = 3600)]
        grace_seconds: u64,
    },
    /// Print a shell completion script.
    Completions { shell: clap_complete::Shell },
    /// Print an htpasswd line (bcrypt) for USER, with the password read from stdin.
    HashPassword {
        user: String,
        /// bcrypt cost: each check takes about 2^cost × 0.1 ms.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(4..=16))]
        cost: u32,
    },
    #[command(flatten)]
    Client(cli::ClientCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (args, grace) = match cli.command {
        Command::Serve(ref args) => (args, None),
        Command::Gc { ref settings, grace_seconds } => (settings, Some(Duration::from_secs(grace_seconds))),
        Command::Completions { shell } => {
            // Written whole, so a closed pipe (`| head`) is not a panic.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut <Cli as clap::CommandFactory>::command(), "chartyard", &mut script);
            let _ = std::io::Write::write_all(&mut std::io::stdout(), &script);
            return ExitCode::SUCCESS;
        }
        Command::HashPassword { user, cost } => {
            return match hash_password(&user, cost) {
                Ok(line) => {
                    println!("{line}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("chartyard: {e:#}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Client(command) => {
            return match cli::run(cli.connection, command) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("chartyard: {e:#}");
                    ExitCode::FAILURE
                }
            };
        }
    };
    let traces = init_logging(cli.log_format);
    let settings = match args.resolve() {
        Ok((settings, ignored)) => {
            if !ignored.is_empty() {
                tracing::warn!(parameters = ?ignored, "ignoring manager.parameters chartyard does not use");
            }
            settings
        }
        Err(e) => {
            eprintln!("chartyard: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match grace {
        None => serve(settings),
        Some(grace) => gc(settings, grace),
    };
    // The spans of the last moments go out before the process ends.
    if let Some(provider) = traces
        && let Err(e) = provider.shutdown()
    {
        eprintln!("chartyard: sending the last traces: {e}");
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chartyard: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `user:$2y$...` for an htpasswd file; the password is stdin's first line.
fn hash_password(user: &str, cost: u32) -> anyhow::Result<String> {
    anyhow::ensure!(!user.is_empty() && !user.contains(':'), "a user name is not empty and has no ':'");
    let mut password = String::new();
    std::io::stdin().read_line(&mut password)?;
    let password = password.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(!password.is_empty(), "no password on stdin");
    let hash = bcrypt::hash_with_result(password, cost)?.format_for_version(bcrypt::Version::TwoY);
    Ok(format!("{user}:{hash}"))
}

/// Logs to stderr (text or JSON lines), and traces over OTLP when the standard
/// `OTEL_EXPORTER_OTLP_*ENDPOINT` variables name a collector; answers the tracer provider
/// to flush at exit.
fn init_logging(format: LogFormat) -> Option<opentelemetry_sdk::trace::SdkTracerProvider> {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_env("CHARTYARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal());
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().boxed(),
    };
    let (traces, provider) = match otlp_traces() {
        Ok(Some(provider)) => {
            use opentelemetry::trace::TracerProvider as _;
            let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("chartyard"));
            (Some(layer), Some(provider))
        }
        Ok(None) => (None, None),
        Err(e) => {
            eprintln!("chartyard: traces are off: {e}");
            (None, None)
        }
    };
    tracing_subscriber::registry().with(filter).with(fmt).with(traces).init();
    provider
}

/// A tracer provider exporting spans over OTLP/HTTP in batches, when the environment
/// asks for one (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
/// unless `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`). The exporter reads
/// the other `OTEL_*` variables itself (headers, timeout, `OTEL_SERVICE_NAME`,
/// `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_BSP_*`).
fn otlp_traces() -> anyhow::Result<Option<opentelemetry_sdk::trace::SdkTracerProvider>> {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let wanted = set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
        || std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|v| v.eq_ignore_ascii_case("none"));
    if !wanted || disabled {
        return Ok(None);
    }
    use opentelemetry_otlp::WithExportConfig as _;
    // The exporter's HTTP client is reqwest with rustls and no crypto provider of its
    // own (the one object_store uses): give it ring, as the S3 driver does.
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build()?;
    let mut resource = opentelemetry_sdk::Resource::builder();
    if !set("OTEL_SERVICE_NAME") {
        resource = resource.with_service_name("chartyard");
    }
    let resource =
        resource.with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION"))).build();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    Ok(Some(provider))
}

/// Histogram buckets of durations, in seconds.
const SECONDS_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
/// Histogram buckets of body sizes, in bytes: 256 B to 64 MiB by fours.
const BYTES_BUCKETS: &[f64] =
    &[256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0, 67108864.0];

/// Installs the process's metrics recorder (once: the process serves one registry).
fn install_metrics() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)?
        .set_buckets_for_metric(Matcher::Suffix("_bytes".into()), BYTES_BUCKETS)?
        .install_recorder()?;
    metrics::gauge!("chartyard_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    Ok(handle)
}

/// Drains the recorder's histogram samples into their buckets now and then, so they do
/// not pile up between scrapes.
async fn metrics_upkeep(handle: PrometheusHandle) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        handle.run_upkeep();
    }
}

/// Serves `/metrics` alone on `listen`.
async fn serve_metrics(listen: &str, metrics: Metrics) -> anyhow::Result<()> {
    let address = bind_address(listen);
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {address} for metrics: {e}"))?;
    tracing::info!("serving metrics on http://{}/metrics", listener.local_addr()?);
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, metrics.router()).await {
            tracing::error!(%error, "the metrics listener stopped");
        }
    });
    Ok(())
}

fn registry(settings: &Settings) -> anyhow::Result<Arc<Registry>> {
    let opened = settings.backend.open().map_err(anyhow::Error::msg)?;
    let options = RegistryOptions {
        lock_timeout: settings.lock_timeout,
        conditional_updates: opened.conditional_updates,
        deletes_report_missing: opened.deletes_report_missing,
        max_blob_bytes: settings.max_upload_bytes,
        max_upload_sessions: settings.max_upload_sessions,
        cache_bytes: settings.cache_bytes,
        parse_concurrency: settings.parse_concurrency.unwrap_or_else(chartyard_storage::default_parse_concurrency),
        index_freshness: settings.index_freshness,
        reconcile_interval: settings.reconcile_interval,
        audit_retention: settings.audit_retention,
        shared_store: opened.shared,
        ..RegistryOptions::default()
    };
    Ok(Arc::new(Registry::new(opened.store, options)))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    // Chart parsing recurses through YAML and nested subcharts: give threads room for the
    // deepest input the parse budgets allow.
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().thread_stack_size(8 << 20).build()?)
}

/// Reads the htpasswd file again whenever it changes.
async fn reload_users(access: Arc<chartyard_http::auth::AccessControl>) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(error) = access.reload_users(false) {
            tracing::error!(%error, "cannot reload users; the ones read before stay");
        }
    }
}

fn serve(settings: Settings) -> anyhow::Result<()> {
    // Read first, so a missing or broken file stops the server before it claims storage.
    let certificates = match &settings.tls {
        Some(tls) => Some(server::Certificates::load(&tls.certificate, &tls.key).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let tls = certificates.as_ref().map(server::Certificates::acceptor).transpose().map_err(anyhow::Error::msg)?;
    let _claim = settings.backend.claim_for_serving().map_err(anyhow::Error::msg)?;
    let open_files = server::raise_open_files_limit();
    let limits = server::ConnectionLimits {
        header_timeout: settings.http.header_timeout,
        keepalive_timeout: settings.http.keepalive_timeout,
        max_connections: settings.http.max_connections.unwrap_or_else(|| server::default_max_connections(open_files)),
        shutdown_grace: settings.http.shutdown_grace,
    };
    if let Some(files) = open_files
        && limits.max_connections as u64 > files / 2
    {
        tracing::warn!(
            max_connections = limits.max_connections,
            open_files = files,
            "the connection limit is high for the open files limit; the process may run out of file descriptors"
        );
    }
    let registry = registry(&settings)?;
    let metrics_handle = if settings.metrics.enabled { Some(install_metrics()?) } else { None };
    let metrics = metrics_handle.clone().map(|handle| Metrics::new(handle, registry.clone()));
    let readiness = Readiness::new(registry.clone());
    let operations = Operations {
        readiness: Some(readiness.clone()),
        // With a listener of their own, the metrics are not on the main one.
        metrics: metrics.clone().filter(|_| settings.metrics.listen.is_none()).map(|m| (m, settings.metrics.access)),
    };
    let http_options = HttpOptions {
        max_body_bytes: settings.max_upload_bytes,
        default_space: settings.default_space.clone(),
        allow_overwrite: settings.allow_overwrite,
        disable_force_overwrite: settings.disable_force_overwrite,
        body_idle_timeout: settings.http.body_idle_timeout,
        request_timeout: settings.http.request_timeout,
        max_body_memory: settings.http.max_body_memory,
    };
    runtime()?.block_on(async move {
        let access = match settings.auth.clone() {
            None => {
                tracing::warn!(
                    "access control is off: anyone who can reach this server may read, write and delete every space \
                     (configure an `auth` section to turn it on)"
                );
                None
            }
            Some(options) => {
                let access = chartyard_http::auth::AccessControl::open(
                    registry.clone(),
                    options,
                    settings.default_space.clone(),
                )
                .await
                .map_err(anyhow::Error::msg)?;
                tokio::spawn(reload_users(access.clone()));
                Some(access)
            }
        };
        let app = chartyard_http::app_with_operations(registry.clone(), &http_options, access, operations);
        if let Some(handle) = metrics_handle {
            tokio::spawn(metrics_upkeep(handle));
        }
        if let (Some(metrics), Some(listen)) = (metrics, &settings.metrics.listen) {
            serve_metrics(listen, metrics).await?;
        }
        // The default space answers at the root from the start, so `helm repo add` works
        // against a fresh server.
        if let Some(space) = &settings.default_space {
            match registry.create_space(space).await {
                Ok(()) | Err(chartyard_core::RegistryError::AlreadyExists(_)) => {}
                Err(e) => anyhow::bail!("default space {space}: {e}"),
            }
        }
        registry.expire_uploads(settings.upload_ttl).await?;
        registry.count_uploads().await?;
        tokio::spawn(sweep_uploads(registry.clone(), settings.upload_ttl));
        tokio::spawn(maintain(registry.clone()));
        if let Some(certificates) = certificates {
            tokio::spawn(certificates.watch());
        }
        let address = bind_address(&settings.listen);
        let listener = tokio::net::TcpListener::bind(&address)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {address}: {e}"))?;
        let local = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        tracing::info!(
            storage = settings.backend.driver_name(),
            backend = ?settings.backend,
            max_connections = limits.max_connections,
            "listening on {scheme}://{local}"
        );
        readiness.set_started();
        // Not ready from the signal on; still serving for `shutdowndelay`, so that load
        // balancers that poll readiness stop sending before the listener closes.
        let delay = settings.http.shutdown_delay;
        let draining = async {
            shutdown_signal().await;
            readiness.set_draining();
            tracing::info!(delay = ?delay, "stopping: not ready; the listener closes after the delay");
            tokio::time::sleep(delay).await;
        };
        server::serve(listener, app, limits, tls, draining).await?;
        // The next start reads one checkpoint per space instead of every record; a store
        // that does not answer does not hold the shutdown up for long.
        if tokio::time::timeout(Duration::from_secs(10), registry.checkpoint_all()).await.is_err() {
            tracing::warn!("storing checkpoints took too long; the next start reads records instead");
        }
        tracing::info!("stopped");
        Ok(())
    })
}

/// Deletes OCI upload sessions left idle for longer than `ttl`, every quarter of it (at
/// most every minute), so abandoned uploads never pile up.
async fn sweep_uploads(registry: Arc<Registry>, ttl: Duration) {
    let period = (ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        tokio::time::sleep(period).await;
        match registry.expire_uploads(ttl).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "expired idle upload sessions"),
            Err(e) => tracing::warn!(error = %e, "expiring idle upload sessions failed"),
        }
    }
}

/// Follows the change logs of the spaces in use (other replicas' writes), reconciles and
/// checkpoints their indexes: about once a second.
async fn maintain(registry: Arc<Registry>) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        registry.maintain().await;
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
}

fn gc(settings: Settings, grace: Duration) -> anyhow::Result<()> {
    let registry = registry(&settings)?;
    let report = runtime()?.block_on(registry.collect_garbage(grace))?;
    let staging = settings.backend.remove_abandoned_writes(grace).map_err(anyhow::Error::msg)?;
    println!(
        "referenced blobs: {}, deleted blobs: {} ({} bytes), deleted records of deleted spaces: {}, \
         deleted idle uploads: {}, deleted audit entries: {}, deleted staging files of unfinished writes: {} \
         ({} bytes)",
        report.referenced_blobs,
        report.deleted_blobs,
        report.deleted_bytes,
        report.deleted_stale_records,
        report.deleted_uploads,
        report.deleted_audit_entries,
        staging.files,
        staging.bytes
    );
    Ok(())
}
