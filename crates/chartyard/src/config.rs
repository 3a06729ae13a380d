//! Server settings: the seed's `config.yaml`, overridden by flags and `CHARTYARD_*`
//! environment variables.
//!
//! ```yaml
//! listen: ":8099"
//! manager:
//!   name: "simple"
//!   parameters:
//!     resourcelocker: memory
//!     storagedriver: filesystem     # or inmemory, or s3
//!     rootdirectory: ./data         # for s3: the key prefix inside the bucket
//!     locktimeout: 1000             # milliseconds; absent or 0 = fail at once when busy
//! http:                             # optional: bounds on connections and requests
//!   headertimeout: 30s              # seconds, or a duration such as "500ms", "5m"; 0 = none
//!   maxconnections: 1024
//! metrics:                          # optional: the Prometheus metrics at /metrics
//!   enabled: true                   # default true
//!   listen: ":9090"                 # optional: serve /metrics only on this extra listener
//!   access: anonymous               # with access control on: anonymous | signedin | admin
//! tls:                              # optional: serve HTTPS; both keys or neither
//!   certificate: /etc/chartyard/tls.crt   # PEM: the server's certificate, then its chain
//!   key: /etc/chartyard/tls.key           # PEM: PKCS#8, RSA or SEC1 EC private key
//! ```
//!
//! The `s3` driver takes docker distribution's parameters (`bucket`, `region`,
//! `regionendpoint`, `accesskey`, `secretkey`, `sessiontoken`, `secure`, `skipverify`,
//! `forcepathstyle`, `encrypt`, `keyid`, `storageclass`); what is absent comes from the
//! standard AWS environment and credential chain.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chartyard_storage::backend::Backend;
use chartyard_storage::s3::S3Options;
use serde::Deserialize;
use serde_json::Value;

/// A configuration problem, as one line naming the offending key.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

/// Flags (and their environment variables) that override the configuration file.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct SettingsArgs {
    /// The seed's config.yaml.
    #[arg(short = 'c', long, env = "CHARTYARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on, such as ":8099" or "127.0.0.1:8099" [config: listen].
    #[arg(long, env = "CHARTYARD_LISTEN")]
    pub listen: Option<String>,
    /// filesystem, inmemory or s3 [config: manager.parameters.storagedriver].
    #[arg(long, env = "CHARTYARD_STORAGE_DRIVER")]
    pub storage_driver: Option<String>,
    /// Where the filesystem driver stores data; for s3, the key prefix inside the bucket
    /// [config: manager.parameters.rootdirectory].
    #[arg(long, env = "CHARTYARD_ROOT_DIRECTORY")]
    pub root_directory: Option<PathBuf>,
    /// The bucket of the s3 driver [config: manager.parameters.bucket].
    #[arg(long, env = "CHARTYARD_S3_BUCKET")]
    pub s3_bucket: Option<String>,
    /// The URL of an S3-compatible server, for the s3 driver; absent for AWS
    /// [config: manager.parameters.regionendpoint].
    #[arg(long, env = "CHARTYARD_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// The bucket's region, for the s3 driver; absent = AWS_REGION or us-east-1
    /// [config: manager.parameters.region].
    #[arg(long, env = "CHARTYARD_S3_REGION")]
    pub s3_region: Option<String>,
    /// How long a writer waits for a busy version, in milliseconds; 0 fails at once
    /// [config: manager.parameters.locktimeout].
    #[arg(long, env = "CHARTYARD_LOCK_TIMEOUT")]
    pub lock_timeout: Option<u64>,
    /// Largest accepted request body in bytes [config: manager.parameters.maxuploadsize].
    #[arg(long, env = "CHARTYARD_MAX_UPLOAD_SIZE")]
    pub max_upload_size: Option<u64>,
    /// Flush every write to disk before answering [config: manager.parameters.fsync].
    #[arg(long, env = "CHARTYARD_FSYNC")]
    pub fsync: Option<bool>,
    /// Space also served at the root (/index.yaml, /api/charts) for single-tenant
    /// ChartMuseum users [config: manager.parameters.defaultspace].
    #[arg(long, env = "CHARTYARD_DEFAULT_SPACE")]
    pub default_space: Option<String>,
    /// Bytes of memory the record and index caches may hold (estimated); what falls out
    /// is read from storage again [config: manager.parameters.cachesize].
    #[arg(long, env = "CHARTYARD_CACHE_SIZE")]
    pub cache_size: Option<u64>,
    /// Let uploads replace existing versions even without ChartMuseum's `?force`, and OCI
    /// pushes replace a version with other bytes; `--allow-overwrite` alone means true
    /// [config: manager.parameters.allowoverwrite].
    #[arg(long, env = "CHARTYARD_ALLOW_OVERWRITE", num_args = 0..=1, default_missing_value = "true")]
    pub allow_overwrite: Option<bool>,
    /// Seconds an OCI upload session may stay idle before it is deleted
    /// [config: manager.parameters.uploadttl].
    #[arg(long, env = "CHARTYARD_UPLOAD_TTL")]
    pub upload_ttl: Option<u64>,
    /// Most OCI upload sessions open at once [config: manager.parameters.maxuploadsessions].
    #[arg(long, env = "CHARTYARD_MAX_UPLOAD_SESSIONS")]
    pub max_upload_sessions: Option<u64>,
    /// Refuse ChartMuseum's `?force` (which otherwise replaces an existing version);
    /// `--disable-force-overwrite` alone means true
    /// [config: manager.parameters.disableforceoverwrite].
    #[arg(long, env = "CHARTYARD_DISABLE_FORCE_OVERWRITE", num_args = 0..=1, default_missing_value = "true")]
    pub disable_force_overwrite: Option<bool>,
    /// How many chart archives are parsed at once; more wait their turn (default: the
    /// number of CPUs) [config: manager.parameters.parseconcurrency].
    #[arg(long, env = "CHARTYARD_PARSE_CONCURRENCY")]
    pub parse_concurrency: Option<u64>,
    /// How old a space's index may be when a request reads it before the server reads
    /// the space's change log for other replicas' writes, e.g. "250ms"; 0 = on every read
    /// [config: manager.parameters.indexfreshness].
    #[arg(long, env = "CHARTYARD_INDEX_FRESHNESS")]
    pub index_freshness: Option<String>,
    /// How often an index in use is compared with the version records, repairing what a
    /// replica stopped between a write and its announcement left unseen, e.g. "5m"
    /// [config: manager.parameters.reconcileinterval].
    #[arg(long, env = "CHARTYARD_RECONCILE_INTERVAL")]
    pub reconcile_interval: Option<String>,
    /// Audit entries kept per space (the newest; `chartyard gc` removes older ones)
    /// [config: manager.parameters.auditretention].
    #[arg(long, env = "CHARTYARD_AUDIT_RETENTION")]
    pub audit_retention: Option<u64>,
    /// Time a connection has to send a request's line and headers, e.g. "30s"; 0 = no
    /// limit [config: http.headertimeout].
    #[arg(long, env = "CHARTYARD_HEADER_TIMEOUT")]
    pub header_timeout: Option<String>,
    /// A connection with no request in progress is closed after this long without
    /// traffic; 0 = never [config: http.keepalivetimeout].
    #[arg(long, env = "CHARTYARD_KEEPALIVE_TIMEOUT")]
    pub keepalive_timeout: Option<String>,
    /// A request body that sends nothing for this long fails with 408; 0 = no limit
    /// [config: http.bodyidletimeout].
    #[arg(long, env = "CHARTYARD_BODY_IDLE_TIMEOUT")]
    pub body_idle_timeout: Option<String>,
    /// A request body must have arrived whole this long after the request's headers,
    /// or the request fails with 408; 0 = no limit [config: http.requesttimeout].
    #[arg(long, env = "CHARTYARD_REQUEST_TIMEOUT")]
    pub request_timeout: Option<String>,
    /// How long a stopping server (SIGTERM, Ctrl-C) lets requests in flight finish,
    /// e.g. "30s"; 0 = as long as they take [config: http.shutdowngrace].
    #[arg(long, env = "CHARTYARD_SHUTDOWN_GRACE")]
    pub shutdown_grace: Option<String>,
    /// How long a stopping server keeps serving while it answers not ready on /readyz,
    /// before it stops accepting, e.g. "5s" (default 0) [config: http.shutdowndelay].
    #[arg(long, env = "CHARTYARD_SHUTDOWN_DELAY")]
    pub shutdown_delay: Option<String>,
    /// Connections served at once; more wait to be accepted (default: from the open
    /// files limit, at most 4096) [config: http.maxconnections].
    #[arg(long, env = "CHARTYARD_MAX_CONNECTIONS")]
    pub max_connections: Option<u64>,
    /// Bytes of request bodies held at once by all requests together; a body that does
    /// not fit is refused with 503 [config: http.maxbodymemory].
    #[arg(long, env = "CHARTYARD_MAX_BODY_MEMORY")]
    pub max_body_memory: Option<u64>,
    /// Whether the server keeps and serves metrics (default true) [config: metrics.enabled].
    #[arg(long, env = "CHARTYARD_METRICS_ENABLED", num_args = 0..=1, default_missing_value = "true")]
    pub metrics_enabled: Option<bool>,
    /// Serve /metrics only on this extra address, such as ":9090", open to everyone who
    /// can reach it [config: metrics.listen].
    #[arg(long, env = "CHARTYARD_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Who may read /metrics on the main listener when access control is on:
    /// anonymous, signedin or admin [config: metrics.access].
    #[arg(long, env = "CHARTYARD_METRICS_ACCESS")]
    pub metrics_access: Option<String>,
    /// PEM file with the server's certificate followed by its chain; serves HTTPS, with
    /// --tls-key [config: tls.certificate].
    #[arg(long, env = "CHARTYARD_TLS_CERTIFICATE")]
    pub tls_certificate: Option<PathBuf>,
    /// PEM file with the certificate's private key (PKCS#8, RSA or SEC1 EC), with
    /// --tls-certificate [config: tls.key].
    #[arg(long, env = "CHARTYARD_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
}

/// Everything the server needs to start.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub listen: String,
    pub backend: Backend,
    pub lock_timeout: Duration,
    pub max_upload_bytes: usize,
    pub cache_bytes: usize,
    pub default_space: Option<String>,
    pub allow_overwrite: bool,
    pub upload_ttl: Duration,
    pub max_upload_sessions: usize,
    pub disable_force_overwrite: bool,
    /// Archives parsed at once; `None`: as many as there are CPUs.
    pub parse_concurrency: Option<usize>,
    pub index_freshness: Duration,
    pub reconcile_interval: Duration,
    /// Audit entries kept per space.
    pub audit_retention: usize,
    pub http: HttpSettings,
    /// Access control; none: open to everyone.
    pub auth: Option<chartyard_http::auth::AuthOptions>,
    /// `None`: plain HTTP.
    pub tls: Option<TlsSettings>,
    pub metrics: MetricsSettings,
}

/// The `metrics` block.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsSettings {
    pub enabled: bool,
    /// An extra listener that alone serves `/metrics`; `None`: the main one serves it.
    pub listen: Option<String>,
    pub access: chartyard_http::observe::MetricsAccess,
}

/// The certificate and key served over HTTPS (the `tls` block); the files are read (and
/// watched for changes) by the server.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsSettings {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

/// Bounds on connections and requests (the `http` block). A `None` timeout is no limit.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSettings {
    pub header_timeout: Option<Duration>,
    pub keepalive_timeout: Option<Duration>,
    pub body_idle_timeout: Option<Duration>,
    pub request_timeout: Option<Duration>,
    pub shutdown_grace: Option<Duration>,
    pub shutdown_delay: Duration,
    /// `None`: derived from the open files limit.
    pub max_connections: Option<usize>,
    pub max_body_memory: usize,
}

pub const DEFAULT_LISTEN: &str = ":8099";
pub const DEFAULT_ROOT: &str = "./data";
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 20 * 1024 * 1024;
pub const DEFAULT_UPLOAD_TTL_SECONDS: u64 = 3600;
pub const DEFAULT_MAX_UPLOAD_SESSIONS: u64 = 1024;
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a stopping server waits for requests in flight by default; a pod's
/// `terminationGracePeriodSeconds` must leave room for this and the checkpoints after it.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Most connections and archive parses a setting may ask for.
const MAX_CONNECTIONS: u64 = 1 << 20;
const MAX_PARSE_CONCURRENCY: u64 = 1024;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    manager: Option<ManagerConfig>,
    http: Option<BTreeMap<String, Value>>,
    auth: Option<crate::auth_config::AuthSection>,
    tls: Option<BTreeMap<String, Value>>,
    metrics: Option<BTreeMap<String, Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManagerConfig {
    name: Option<String>,
    parameters: Option<BTreeMap<String, Value>>,
}

/// Parameters chartyard reads; others (driver options of docker distribution that have
/// no meaning here) are reported and ignored.
const KNOWN_PARAMETERS: &[&str] = &[
    "resourcelocker",
    "storagedriver",
    "rootdirectory",
    "locktimeout",
    "maxuploadsize",
    "cachesize",
    "fsync",
    "lockerparameters",
    "defaultspace",
    "allowoverwrite",
    "uploadttl",
    "maxuploadsessions",
    "disableforceoverwrite",
    "parseconcurrency",
    "indexfreshness",
    "reconcileinterval",
    "auditretention",
    // the s3 driver's
    "bucket",
    "region",
    "regionendpoint",
    "accesskey",
    "secretkey",
    "sessiontoken",
    "secure",
    "skipverify",
    "forcepathstyle",
    "encrypt",
    "keyid",
    "storageclass",
];

/// The keys of the `http` block.
const HTTP_KEYS: &[&str] = &[
    "headertimeout",
    "keepalivetimeout",
    "bodyidletimeout",
    "requesttimeout",
    "shutdowngrace",
    "shutdowndelay",
    "maxconnections",
    "maxbodymemory",
];

/// The keys of the `metrics` block.
const METRICS_KEYS: &[&str] = &["enabled", "listen", "access"];

/// The keys of the `tls` block.
const TLS_KEYS: &[&str] = &["certificate", "key"];

fn error(message: impl Into<String>) -> ConfigError {
    ConfigError(message.into())
}

impl SettingsArgs {
    /// Reads the file (if any), applies the overrides and checks the result.
    pub fn resolve(&self) -> Result<(Settings, Vec<String>), ConfigError> {
        let file = match &self.config {
            None => FileConfig::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| error(format!("config {}: cannot read: {e}", path.display())))?;
                serde_saphyr::from_str::<Option<FileConfig>>(&text)
                    .map_err(|e| {
                        let message = e.to_string();
                        error(format!("config {}: {}", path.display(), message.lines().next().unwrap_or_default()))
                    })?
                    .unwrap_or_default()
            }
        };
        let manager = file.manager.unwrap_or_default();
        if let Some(name) = manager.name.as_deref().filter(|n| *n != "simple") {
            return Err(error(format!("manager.name: unknown manager {name:?} (expected simple)")));
        }
        // Without a configuration file, the filesystem driver in ./data; that folder is
        // not a default for the s3 driver's key prefix.
        let default_root = manager.parameters.is_none() && self.config.is_none();
        let mut parameters = manager.parameters.unwrap_or_else(|| {
            if self.config.is_some() {
                BTreeMap::new()
            } else {
                BTreeMap::from([
                    ("storagedriver".to_string(), Value::from("filesystem")),
                    ("resourcelocker".to_string(), Value::from("memory")),
                ])
            }
        });
        let mut set = |key: &str, value: Option<Value>| {
            if let Some(value) = value {
                parameters.insert(key.to_string(), value);
            }
        };
        set("storagedriver", self.storage_driver.clone().map(Value::from));
        set("rootdirectory", self.root_directory.as_ref().map(|p| Value::from(p.to_string_lossy().into_owned())));
        set("locktimeout", self.lock_timeout.map(Value::from));
        set("maxuploadsize", self.max_upload_size.map(Value::from));
        set("cachesize", self.cache_size.map(Value::from));
        set("fsync", self.fsync.map(Value::from));
        set("defaultspace", self.default_space.clone().map(Value::from));
        set("allowoverwrite", self.allow_overwrite.map(Value::from));
        set("uploadttl", self.upload_ttl.map(Value::from));
        set("maxuploadsessions", self.max_upload_sessions.map(Value::from));
        set("disableforceoverwrite", self.disable_force_overwrite.map(Value::from));
        set("parseconcurrency", self.parse_concurrency.map(Value::from));
        set("indexfreshness", self.index_freshness.clone().map(Value::from));
        set("reconcileinterval", self.reconcile_interval.clone().map(Value::from));
        set("auditretention", self.audit_retention.map(Value::from));

        let mut http = file.http.unwrap_or_default();
        if let Some(unknown) = http.keys().find(|k| !HTTP_KEYS.contains(&k.as_str())) {
            return Err(error(format!("http.{unknown}: unknown key (expected one of {})", HTTP_KEYS.join(", "))));
        }
        let mut set_http = |key: &str, value: Option<Value>| {
            if let Some(value) = value {
                http.insert(key.to_string(), value);
            }
        };
        set_http("headertimeout", self.header_timeout.clone().map(Value::from));
        set_http("keepalivetimeout", self.keepalive_timeout.clone().map(Value::from));
        set_http("bodyidletimeout", self.body_idle_timeout.clone().map(Value::from));
        set_http("requesttimeout", self.request_timeout.clone().map(Value::from));
        set_http("shutdowngrace", self.shutdown_grace.clone().map(Value::from));
        set_http("shutdowndelay", self.shutdown_delay.clone().map(Value::from));
        set_http("maxconnections", self.max_connections.map(Value::from));
        set_http("maxbodymemory", self.max_body_memory.map(Value::from));
        set("bucket", self.s3_bucket.clone().map(Value::from));
        set("regionendpoint", self.s3_endpoint.clone().map(Value::from));
        set("region", self.s3_region.clone().map(Value::from));

        let mut tls = file.tls.unwrap_or_default();
        if let Some(unknown) = tls.keys().find(|k| !TLS_KEYS.contains(&k.as_str())) {
            return Err(error(format!("tls.{unknown}: unknown key (expected one of {})", TLS_KEYS.join(", "))));
        }
        let path_value = |path: &PathBuf| Value::from(path.to_string_lossy().into_owned());
        if let Some(certificate) = &self.tls_certificate {
            tls.insert("certificate".to_string(), path_value(certificate));
        }
        if let Some(key) = &self.tls_key {
            tls.insert("key".to_string(), path_value(key));
        }

        let ignored: Vec<String> =
            parameters.keys().filter(|k| !KNOWN_PARAMETERS.contains(&k.as_str())).cloned().collect();
        let auth = file.auth.map(|section| section.options()).transpose().map_err(error)?;
        let settings = Settings {
            auth,
            listen: self.listen.clone().or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.to_string()),
            backend: backend(&parameters, default_root.then_some(DEFAULT_ROOT))?,
            lock_timeout: Duration::from_millis(number(&parameters, "locktimeout")?.unwrap_or(0)),
            max_upload_bytes: number(&parameters, "maxuploadsize")?.unwrap_or(DEFAULT_MAX_UPLOAD_BYTES) as usize,
            cache_bytes: number(&parameters, "cachesize")?
                .map_or(chartyard_storage::DEFAULT_CACHE_BYTES, |n| usize::try_from(n).unwrap_or(usize::MAX)),
            default_space: parameters
                .get("defaultspace")
                .map(|v| text(v, "defaultspace").map(str::to_string))
                .transpose()?,
            allow_overwrite: flag(&parameters, "allowoverwrite", false)?,
            upload_ttl: Duration::from_secs(number(&parameters, "uploadttl")?.unwrap_or(DEFAULT_UPLOAD_TTL_SECONDS)),
            max_upload_sessions: number(&parameters, "maxuploadsessions")?.unwrap_or(DEFAULT_MAX_UPLOAD_SESSIONS)
                as usize,
            disable_force_overwrite: flag(&parameters, "disableforceoverwrite", false)?,
            parse_concurrency: within(&parameters, "parseconcurrency", 1, MAX_PARSE_CONCURRENCY)?,
            index_freshness: duration(&parameters, "manager.parameters", "indexfreshness")?
                .unwrap_or(chartyard_storage::DEFAULT_INDEX_FRESHNESS),
            reconcile_interval: duration(&parameters, "manager.parameters", "reconcileinterval")?
                .filter(|d| !d.is_zero())
                .unwrap_or(chartyard_storage::DEFAULT_RECONCILE_INTERVAL),
            audit_retention: number(&parameters, "auditretention")?
                .map_or(chartyard_storage::audit::DEFAULT_AUDIT_RETENTION, |n| {
                    usize::try_from(n).unwrap_or(usize::MAX)
                }),
            http: HttpSettings {
                header_timeout: timeout(&http, "headertimeout", DEFAULT_HEADER_TIMEOUT)?,
                keepalive_timeout: timeout(&http, "keepalivetimeout", DEFAULT_KEEPALIVE_TIMEOUT)?,
                body_idle_timeout: timeout(&http, "bodyidletimeout", chartyard_http::DEFAULT_BODY_IDLE_TIMEOUT)?,
                request_timeout: timeout(&http, "requesttimeout", chartyard_http::DEFAULT_REQUEST_TIMEOUT)?,
                shutdown_grace: timeout(&http, "shutdowngrace", DEFAULT_SHUTDOWN_GRACE)?,
                shutdown_delay: duration(&http, "http", "shutdowndelay")?.unwrap_or_default(),
                max_connections: http_within(&http, "maxconnections", 1, MAX_CONNECTIONS)?,
                max_body_memory: http_within(&http, "maxbodymemory", 1, u64::MAX)?
                    .unwrap_or(chartyard_http::DEFAULT_MAX_BODY_MEMORY),
            },
            tls: tls_settings(&tls)?,
            metrics: self.metrics_settings(file.metrics.unwrap_or_default())?,
        };
        if let Some(space) = &settings.default_space {
            chartyard_core::names::check_name("space", space)
                .map_err(|e| error(format!("manager.parameters.defaultspace: {e}")))?;
        }
        match parameters.get("resourcelocker").map(|v| text(v, "resourcelocker")).transpose()? {
            None | Some("memory") => {}
            Some(other) => {
                return Err(error(format!(
                    "manager.parameters.resourcelocker: unknown locker {other:?} (expected memory)"
                )));
            }
        }
        if settings.upload_ttl.is_zero() {
            return Err(error("manager.parameters.uploadttl: must be greater than 0"));
        }
        if settings.max_upload_bytes == 0 {
            return Err(error("manager.parameters.maxuploadsize: must be greater than 0"));
        }
        if settings.http.max_body_memory < settings.max_upload_bytes {
            return Err(error(format!(
                "http.maxbodymemory: {} is less than manager.parameters.maxuploadsize ({}): the largest uploads could never be admitted",
                settings.http.max_body_memory, settings.max_upload_bytes
            )));
        }
        Ok((settings, ignored))
    }
}

impl SettingsArgs {
    /// The `metrics` block, with the flags' overrides.
    fn metrics_settings(&self, mut block: BTreeMap<String, Value>) -> Result<MetricsSettings, ConfigError> {
        if let Some(unknown) = block.keys().find(|k| !METRICS_KEYS.contains(&k.as_str())) {
            return Err(error(format!("metrics.{unknown}: unknown key (expected one of {})", METRICS_KEYS.join(", "))));
        }
        let overrides = [
            ("enabled", self.metrics_enabled.map(Value::from)),
            ("listen", self.metrics_listen.clone().map(Value::from)),
            ("access", self.metrics_access.clone().map(Value::from)),
        ];
        for (key, value) in overrides {
            if let Some(value) = value {
                block.insert(key.to_string(), value);
            }
        }
        let enabled = match block.get("enabled") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) if s == "true" || s == "false" => s == "true",
            Some(other) => return Err(error(format!("metrics.enabled: expected true or false, got {other}"))),
        };
        let text = |key: &str| -> Result<Option<String>, ConfigError> {
            match block.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
                Some(other) => Err(error(format!("metrics.{key}: expected a string, got {other}"))),
            }
        };
        let listen = text("listen")?;
        let access = match text("access")? {
            None => chartyard_http::observe::MetricsAccess::default(),
            Some(access) => access.parse().map_err(|e| error(format!("metrics.access: {e}")))?,
        };
        Ok(MetricsSettings { enabled, listen, access })
    }
}

fn text<'a>(value: &'a Value, key: &str) -> Result<&'a str, ConfigError> {
    value.as_str().ok_or_else(|| error(format!("manager.parameters.{key}: expected a string, got {value}")))
}

fn number(parameters: &BTreeMap<String, Value>, key: &str) -> Result<Option<u64>, ConfigError> {
    number_in(parameters, "manager.parameters", key)
}

fn number_in(map: &BTreeMap<String, Value>, block: &str, key: &str) -> Result<Option<u64>, ConfigError> {
    let Some(value) = map.get(key) else {
        return Ok(None);
    };
    let parsed = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    parsed.map(Some).ok_or_else(|| error(format!("{block}.{key}: expected a non-negative whole number, got {value}")))
}

/// A whole number of `manager.parameters` within `min..=max`.
fn within(parameters: &BTreeMap<String, Value>, key: &str, min: u64, max: u64) -> Result<Option<usize>, ConfigError> {
    bounded(number(parameters, key)?, min, max).map_err(|e| error(format!("manager.parameters.{key}: {e}")))
}

/// A whole number of the `http` block within `min..=max`.
fn http_within(http: &BTreeMap<String, Value>, key: &str, min: u64, max: u64) -> Result<Option<usize>, ConfigError> {
    bounded(number_in(http, "http", key)?, min, max).map_err(|e| error(format!("http.{key}: {e}")))
}

fn bounded(value: Option<u64>, min: u64, max: u64) -> Result<Option<usize>, String> {
    match value {
        None => Ok(None),
        Some(n) if n < min => Err(format!("must be at least {min}, got {n}")),
        Some(n) if n > max => Err(format!("must be at most {max}, got {n}")),
        Some(n) => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
    }
}

/// A timeout of the `http` block: a number of seconds or a duration such as "500ms",
/// "30s" or "5m"; zero turns it off (`None`).
fn timeout(http: &BTreeMap<String, Value>, key: &str, default: Duration) -> Result<Option<Duration>, ConfigError> {
    let duration = duration(http, "http", key)?.unwrap_or(default);
    Ok(Some(duration).filter(|d| !d.is_zero()))
}

/// A number of seconds or a duration such as "250ms", "30s", "5m"; `None` if absent.
fn duration(section: &BTreeMap<String, Value>, name: &str, key: &str) -> Result<Option<Duration>, ConfigError> {
    let Some(value) = section.get(key) else {
        return Ok(None);
    };
    let seconds = |n: f64| (n.is_finite() && n >= 0.0).then(|| Duration::from_secs_f64(n));
    let parsed = match value {
        Value::Number(n) => n.as_f64().and_then(seconds),
        Value::String(s) => {
            let s = s.trim();
            match s.parse::<f64>() {
                Ok(n) => seconds(n),
                Err(_) => humantime::parse_duration(s).ok(),
            }
        }
        _ => None,
    };
    let duration = parsed.ok_or_else(|| {
        error(format!(
            "{name}.{key}: expected a number of seconds or a duration such as \"30s\" or \"5m\", got {value}"
        ))
    })?;
    Ok(Some(duration))
}

fn flag(parameters: &BTreeMap<String, Value>, key: &str, default: bool) -> Result<bool, ConfigError> {
    Ok(optional_flag(parameters, key)?.unwrap_or(default))
}

fn optional_flag(parameters: &BTreeMap<String, Value>, key: &str) -> Result<Option<bool>, ConfigError> {
    match parameters.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s == "true" || s == "false" => Ok(Some(s == "true")),
        Some(other) => Err(error(format!("manager.parameters.{key}: expected true or false, got {other}"))),
    }
}

/// A string parameter; an empty one counts as absent, as docker distribution has it.
fn optional_text(parameters: &BTreeMap<String, Value>, key: &str) -> Result<Option<String>, ConfigError> {
    match parameters.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => Ok(Some(text(value, key)?.trim().to_string()).filter(|s| !s.is_empty())),
    }
}

/// The `tls` block: both files or neither.
fn tls_settings(tls: &BTreeMap<String, Value>) -> Result<Option<TlsSettings>, ConfigError> {
    let path = |key: &str| -> Result<Option<PathBuf>, ConfigError> {
        match tls.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(path)) if path.trim().is_empty() => Err(error(format!("tls.{key}: must not be empty"))),
            Some(Value::String(path)) => Ok(Some(PathBuf::from(path))),
            Some(other) => Err(error(format!("tls.{key}: expected a file path, got {other}"))),
        }
    };
    match (path("certificate")?, path("key")?) {
        (None, None) => Ok(None),
        (Some(certificate), Some(key)) => Ok(Some(TlsSettings { certificate, key })),
        (Some(_), None) => Err(error("tls.key: missing (tls.certificate is set; HTTPS needs both)")),
        (None, Some(_)) => Err(error("tls.certificate: missing (tls.key is set; HTTPS needs both)")),
    }
}

fn s3_backend(parameters: &BTreeMap<String, Value>) -> Result<Backend, ConfigError> {
    let options = S3Options {
        bucket: optional_text(parameters, "bucket")?.unwrap_or_default(),
        region: optional_text(parameters, "region")?,
        endpoint: optional_text(parameters, "regionendpoint")?,
        access_key: optional_text(parameters, "accesskey")?,
        secret_key: optional_text(parameters, "secretkey")?,
        session_token: optional_text(parameters, "sessiontoken")?,
        root_directory: optional_text(parameters, "rootdirectory")?.unwrap_or_default().trim_matches('/').to_string(),
        secure: optional_flag(parameters, "secure")?,
        skip_verify: flag(parameters, "skipverify", false)?,
        force_path_style: optional_flag(parameters, "forcepathstyle")?,
        encrypt: flag(parameters, "encrypt", false)?,
        key_id: optional_text(parameters, "keyid")?,
        storage_class: optional_text(parameters, "storageclass")?.map(|class| class.to_ascii_uppercase()),
    };
    options.check().map_err(|e| error(format!("manager.parameters.{e}")))?;
    Ok(Backend::S3(options))
}

fn backend(parameters: &BTreeMap<String, Value>, default_root: Option<&str>) -> Result<Backend, ConfigError> {
    let driver = parameters
        .get("storagedriver")
        .ok_or_else(|| error("manager.parameters.storagedriver: missing (expected filesystem, inmemory or s3)"))?;
    match text(driver, "storagedriver")? {
        "filesystem" => {
            let root = match parameters.get("rootdirectory") {
                Some(root) => text(root, "rootdirectory")?,
                None => default_root.ok_or_else(|| {
                    error("manager.parameters.rootdirectory: missing (required by storagedriver filesystem)")
                })?,
            };
            if root.is_empty() {
                return Err(error("manager.parameters.rootdirectory: must not be empty"));
            }
            let fsync = match parameters.get("fsync") {
                None => true,
                Some(Value::Bool(b)) => *b,
                Some(Value::String(s)) if s == "true" || s == "false" => s == "true",
                Some(other) => {
                    return Err(error(format!("manager.parameters.fsync: expected true or false, got {other}")));
                }
            };
            Ok(Backend::Filesystem { root: PathBuf::from(root), fsync })
        }
        "inmemory" => Ok(Backend::InMemory),
        "s3" => s3_backend(parameters),
        other => Err(error(format!(
            "manager.parameters.storagedriver: unknown storage driver {other:?} (expected filesystem, inmemory or s3)"
        ))),
    }
}

/// Turns the seed's listen syntax (":8099" = every interface) into a bindable address.
pub fn bind_address(listen: &str) -> String {
    match listen.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => listen.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn with_file(yaml: &str) -> Result<(Settings, Vec<String>), ConfigError> {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("chartyard-config-{}-{n}.yaml", std::process::id()));
        std::fs::File::create(&path).unwrap().write_all(yaml.as_bytes()).unwrap();
        let result = SettingsArgs { config: Some(path.clone()), ..Default::default() }.resolve();
        std::fs::remove_file(path).unwrap();
        result
    }

    #[test]
    fn the_metrics_block() {
        use chartyard_http::observe::MetricsAccess;
        let (settings, _) = SettingsArgs::default().resolve().unwrap();
        assert_eq!(settings.metrics, MetricsSettings { enabled: true, listen: None, access: MetricsAccess::Anonymous });
        let yaml = "manager:\n  parameters:\n    storagedriver: inmemory\nmetrics:\n  enabled: false\n  listen: \":9090\"\n  access: admin\n";
        let (settings, _) = with_file(yaml).unwrap();
        assert_eq!(
            settings.metrics,
            MetricsSettings { enabled: false, listen: Some(":9090".into()), access: MetricsAccess::Admin }
        );
        let flags = SettingsArgs { metrics_access: Some("signedin".into()), ..Default::default() };
        assert_eq!(flags.resolve().unwrap().0.metrics.access, MetricsAccess::SignedIn);
        for (yaml, key) in [
            ("metrics:\n  acess: admin\n", "metrics.acess"),
            ("metrics:\n  access: everyone\n", "metrics.access"),
            ("metrics:\n  enabled: maybe\n", "metrics.enabled"),
        ] {
            let yaml = format!("manager:\n  parameters:\n    storagedriver: inmemory\n{yaml}");
            assert!(with_file(&yaml).unwrap_err().to_string().contains(key), "{yaml}");
        }
    }

    #[test]
    fn defaults_without_a_file() {
        let (settings, ignored) = SettingsArgs::default().resolve().unwrap();
        assert_eq!(settings.listen, ":8099");
        assert_eq!(settings.backend, Backend::Filesystem { root: "./data".into(), fsync: true });
        assert_eq!(settings.lock_timeout, Duration::ZERO);
        assert_eq!(settings.cache_bytes, 256 * 1024 * 1024);
        assert!(ignored.is_empty());
    }

    #[test]
    fn seed_file_is_read_and_flags_override_it() {
        let yaml = "listen: \":9999\"\nmanager:\n  name: \"simple\"\n  parameters:\n    resourcelocker: memory\n    storagedriver: filesystem\n    rootdirectory: /srv/charts\n    locktimeout: 1000\n";
        let (settings, _) = with_file(yaml).unwrap();
        assert_eq!(settings.listen, ":9999");
        assert_eq!(settings.backend, Backend::Filesystem { root: "/srv/charts".into(), fsync: true });
        assert_eq!(settings.lock_timeout, Duration::from_millis(1000));
    }

    #[test]
    fn cache_size_is_read_from_the_file_and_flags() {
        let yaml = "manager:\n  parameters:\n    storagedriver: inmemory\n    cachesize: 1048576\n";
        assert_eq!(with_file(yaml).unwrap().0.cache_bytes, 1 << 20);
        let args = SettingsArgs { cache_size: Some(4096), ..Default::default() };
        assert_eq!(args.resolve().unwrap().0.cache_bytes, 4096);
        let bad = "manager:\n  parameters:\n    storagedriver: inmemory\n    cachesize: lots\n";
        assert!(with_file(bad).unwrap_err().to_string().contains("manager.parameters.cachesize"));
    }

    #[test]
    fn errors_name_the_key() {
        let bad_driver = "manager:\n  parameters:\n    storagedriver: floppy\n";
        assert!(with_file(bad_driver).unwrap_err().to_string().contains("manager.parameters.storagedriver"));
        let no_root = "manager:\n  parameters:\n    storagedriver: filesystem\n";
        assert!(with_file(no_root).unwrap_err().to_string().contains("manager.parameters.rootdirectory"));
        let no_driver = "manager:\n  parameters:\n    rootdirectory: /x\n";
        assert!(with_file(no_driver).unwrap_err().to_string().contains("storagedriver"));
        let bad_timeout = "manager:\n  parameters:\n    storagedriver: inmemory\n    locktimeout: soon\n";
        assert!(with_file(bad_timeout).unwrap_err().to_string().contains("manager.parameters.locktimeout"));
        let typo = "listen: \":1\"\nmanagr: {}\n";
        assert!(with_file(typo).unwrap_err().to_string().contains("managr"));
    }

    #[test]
    fn overwrite_switches_follow_chartmuseum() {
        #[derive(clap::Parser)]
        struct Flags {
            #[command(flatten)]
            settings: SettingsArgs,
        }
        let parse = |args: &[&str]| {
            let flags = <Flags as clap::Parser>::try_parse_from([&["serve"], args].concat()).unwrap();
            let (settings, _) = flags.settings.resolve().unwrap();
            (settings.allow_overwrite, settings.disable_force_overwrite)
        };
        assert_eq!(parse(&[]), (false, false), "?force overwrites by default; plain uploads do not");
        assert_eq!(parse(&["--allow-overwrite", "--disable-force-overwrite"]), (true, true));
        assert_eq!(parse(&["--allow-overwrite", "false", "--disable-force-overwrite=true"]), (false, true));
        let yaml = "manager:\n  parameters:\n    storagedriver: inmemory\n    allowoverwrite: true\n    disableforceoverwrite: \"true\"\n";
        let (settings, ignored) = with_file(yaml).unwrap();
        assert!(settings.allow_overwrite && settings.disable_force_overwrite && ignored.is_empty());
        let bad = "manager:\n  parameters:\n    storagedriver: inmemory\n    disableforceoverwrite: sometimes\n";
        assert!(with_file(bad).unwrap_err().to_string().contains("manager.parameters.disableforceoverwrite"));
    }

    #[test]
    fn connection_and_request_bounds_have_defaults() {
        let (settings, _) = SettingsArgs::default().resolve().unwrap();
        let http = settings.http;
        assert_eq!(http.header_timeout, Some(Duration::from_secs(30)));
        assert_eq!(http.keepalive_timeout, Some(Duration::from_secs(15)));
        assert_eq!(http.body_idle_timeout, Some(Duration::from_secs(60)));
        assert_eq!(http.request_timeout, Some(Duration::from_secs(300)));
        assert_eq!(http.max_connections, None, "derived from the open files limit");
        assert_eq!(http.max_body_memory, 256 * 1024 * 1024);
        assert_eq!(settings.parse_concurrency, None, "one per CPU");
    }

    #[test]
    fn http_block_is_read_and_flags_override_it() {
        let yaml = "manager:\n  parameters:\n    storagedriver: inmemory\n    parseconcurrency: 3\nhttp:\n  headertimeout: 5\n  keepalivetimeout: \"500ms\"\n  bodyidletimeout: 2m\n  requesttimeout: 0\n  maxconnections: 100\n  maxbodymemory: 104857600\n";
        let (settings, ignored) = with_file(yaml).unwrap();
        assert!(ignored.is_empty(), "{ignored:?}");
        assert_eq!(settings.parse_concurrency, Some(3));
        assert_eq!(settings.index_freshness, chartyard_storage::DEFAULT_INDEX_FRESHNESS);
        assert_eq!(settings.reconcile_interval, chartyard_storage::DEFAULT_RECONCILE_INTERVAL);
        let replicas = "manager:\n  parameters:\n    storagedriver: inmemory\n    indexfreshness: 100ms\n    reconcileinterval: 2m\n";
        let (replica, _) = with_file(replicas).unwrap();
        assert_eq!(replica.index_freshness, Duration::from_millis(100));
        assert_eq!(replica.reconcile_interval, Duration::from_secs(120));
        let bad = "manager:\n  parameters:\n    storagedriver: inmemory\n    indexfreshness: soon\n";
        assert!(with_file(bad).unwrap_err().to_string().contains("manager.parameters.indexfreshness"));
        let http = &settings.http;
        assert_eq!(http.header_timeout, Some(Duration::from_secs(5)));
        assert_eq!(http.keepalive_timeout, Some(Duration::from_millis(500)));
        assert_eq!(http.body_idle_timeout, Some(Duration::from_secs(120)));
        assert_eq!(http.request_timeout, None, "0 turns a timeout off");
        assert_eq!(http.max_connections, Some(100));
        assert_eq!(http.max_body_memory, 100 * 1024 * 1024);

        let args = SettingsArgs {
            storage_driver: Some("inmemory".into()),
            header_timeout: Some("1.5".into()),
            request_timeout: Some("10m".into()),
            max_connections: Some(7),
            max_body_memory: Some(50 * 1024 * 1024),
            parse_concurrency: Some(1),
            ..Default::default()
        };
        let (settings, _) = args.resolve().unwrap();
        assert_eq!(settings.http.header_timeout, Some(Duration::from_millis(1500)));
        assert_eq!(settings.http.request_timeout, Some(Duration::from_secs(600)));
        assert_eq!(settings.http.max_connections, Some(7));
        assert_eq!(settings.http.max_body_memory, 50 * 1024 * 1024);
        assert_eq!(settings.parse_concurrency, Some(1));
    }

    #[test]
    fn bad_bounds_name_their_key() {
        let base = "manager:\n  parameters:\n    storagedriver: inmemory\n";
        let cases = [
            ("http:\n  headertimout: 5\n", "http.headertimout"),
            ("http:\n  headertimeout: soon\n", "http.headertimeout"),
            ("http:\n  bodyidletimeout: -1\n", "http.bodyidletimeout"),
            ("http:\n  maxconnections: 0\n", "http.maxconnections"),
            ("http:\n  maxconnections: lots\n", "http.maxconnections"),
            ("http:\n  maxbodymemory: 1024\n", "http.maxbodymemory"),
        ];
        for (block, key) in cases {
            let message = with_file(&format!("{base}{block}")).unwrap_err().to_string();
            assert!(message.contains(key), "{block}: {message}");
        }
        let zero_parses = "manager:\n  parameters:\n    storagedriver: inmemory\n    parseconcurrency: 0\n";
        assert!(with_file(zero_parses).unwrap_err().to_string().contains("manager.parameters.parseconcurrency"));
        let args = SettingsArgs {
            storage_driver: Some("inmemory".into()),
            keepalive_timeout: Some("x".into()),
            ..Default::default()
        };
        assert!(args.resolve().unwrap_err().to_string().contains("http.keepalivetimeout"));
    }

    #[test]
    fn s3_takes_docker_distribution_parameters() {
        let yaml = "manager:\n  parameters:\n    storagedriver: s3\n    bucket: charts\n    region: eu-west-1\n    regionendpoint: http://127.0.0.1:9000\n    accesskey: AKID\n    secretkey: SECRET\n    rootdirectory: /registry/v1/\n    secure: false\n    forcepathstyle: \"true\"\n    encrypt: true\n    keyid: arn:aws:kms:eu-west-1:1:key/k\n    storageclass: standard_ia\n    v4auth: true\n";
        let (settings, ignored) = with_file(yaml).unwrap();
        let Backend::S3(options) = settings.backend else { panic!("{:?}", settings.backend) };
        assert_eq!(options.bucket, "charts");
        assert_eq!(options.region.as_deref(), Some("eu-west-1"));
        assert_eq!(options.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!((options.access_key.as_deref(), options.secret_key.as_deref()), (Some("AKID"), Some("SECRET")));
        assert_eq!(options.root_directory, "registry/v1");
        assert_eq!((options.secure, options.force_path_style, options.encrypt), (Some(false), Some(true), true));
        assert_eq!(options.key_id.as_deref(), Some("arn:aws:kms:eu-west-1:1:key/k"));
        assert_eq!(options.storage_class.as_deref(), Some("STANDARD_IA"));
        assert_eq!(ignored, ["v4auth"], "docker distribution's other options are reported, not fatal");
    }

    #[test]
    fn s3_from_flags_without_a_file_has_no_key_prefix() {
        #[derive(clap::Parser)]
        struct Flags {
            #[command(flatten)]
            settings: SettingsArgs,
        }
        let args =
            ["serve", "--storage-driver", "s3", "--s3-bucket", "b", "--s3-endpoint", "http://h:1", "--s3-region", "r"];
        let flags = <Flags as clap::Parser>::try_parse_from(args).unwrap();
        let Backend::S3(options) = flags.settings.resolve().unwrap().0.backend else { panic!() };
        assert_eq!((options.bucket.as_str(), options.root_directory.as_str()), ("b", ""));
        assert_eq!((options.endpoint.as_deref(), options.region.as_deref()), (Some("http://h:1"), Some("r")));
        let args = ["serve", "--storage-driver", "s3", "--s3-bucket", "b", "--root-directory", "prefix"];
        let flags = <Flags as clap::Parser>::try_parse_from(args).unwrap();
        let Backend::S3(options) = flags.settings.resolve().unwrap().0.backend else { panic!() };
        assert_eq!(options.root_directory, "prefix");
    }

    #[test]
    fn s3_errors_name_the_key() {
        let cases = [
            ("storagedriver: s3\n", "manager.parameters.bucket"),
            ("storagedriver: s3\n    bucket: b\n    secure: maybe\n", "manager.parameters.secure"),
            ("storagedriver: s3\n    bucket: b\n    keyid: k\n", "manager.parameters.keyid"),
            ("storagedriver: s3\n    bucket: b\n    storageclass: GLACIER\n", "manager.parameters.storageclass"),
            ("storagedriver: s3\n    bucket: b\n    rootdirectory: a/../b\n", "manager.parameters.rootdirectory"),
            ("storagedriver: s3\n    bucket: b\n    regionendpoint: ftp://x\n", "manager.parameters.regionendpoint"),
            ("storagedriver: s3\n    bucket: [b]\n", "manager.parameters.bucket"),
        ];
        for (parameters, key) in cases {
            let yaml = format!("manager:\n  parameters:\n    {parameters}");
            let message = with_file(&yaml).unwrap_err().to_string();
            assert!(message.starts_with(key) && !message.contains('\n'), "{parameters:?}: {message}");
        }
    }

    #[test]
    fn tls_block_is_read_and_flags_override_it() {
        let (settings, _) = SettingsArgs::default().resolve().unwrap();
        assert_eq!(settings.tls, None, "plain HTTP by default");
        let yaml = "manager:\n  parameters:\n    storagedriver: inmemory\ntls:\n  certificate: /etc/c.pem\n  key: /etc/k.pem\n";
        let (settings, ignored) = with_file(yaml).unwrap();
        assert!(ignored.is_empty());
        assert_eq!(settings.tls, Some(TlsSettings { certificate: "/etc/c.pem".into(), key: "/etc/k.pem".into() }));

        #[derive(clap::Parser)]
        struct Flags {
            #[command(flatten)]
            settings: SettingsArgs,
        }
        let args = ["serve", "--tls-certificate", "/a/cert.pem", "--tls-key", "/a/key.pem"];
        let flags = <Flags as clap::Parser>::try_parse_from(args).unwrap();
        let tls = flags.settings.resolve().unwrap().0.tls.unwrap();
        assert_eq!((tls.certificate.to_str(), tls.key.to_str()), (Some("/a/cert.pem"), Some("/a/key.pem")));
    }

    #[test]
    fn tls_errors_name_the_key() {
        let base = "manager:\n  parameters:\n    storagedriver: inmemory\n";
        let cases = [
            ("tls:\n  certificate: /c.pem\n", "tls.key"),
            ("tls:\n  key: /k.pem\n", "tls.certificate"),
            ("tls:\n  certificate: /c.pem\n  key: \"\"\n", "tls.key"),
            ("tls:\n  certificate: [a]\n  key: /k.pem\n", "tls.certificate"),
            ("tls:\n  cert: /c.pem\n  key: /k.pem\n", "tls.cert"),
        ];
        for (block, key) in cases {
            let message = with_file(&format!("{base}{block}")).unwrap_err().to_string();
            assert!(message.starts_with(key) && !message.contains('\n'), "{block}: {message}");
        }
        let only_certificate = SettingsArgs { tls_certificate: Some("/c.pem".into()), ..Default::default() };
        assert!(only_certificate.resolve().unwrap_err().to_string().starts_with("tls.key"));
    }

    #[test]
    fn listen_syntax() {
        assert_eq!(bind_address(":8099"), "0.0.0.0:8099");
        assert_eq!(bind_address("127.0.0.1:1"), "127.0.0.1:1");
    }
}
