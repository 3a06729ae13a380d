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
}

pub const DEFAULT_LISTEN: &str = ":8099";
pub const DEFAULT_ROOT: &str = "./data";
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 20 * 1024 * 1024;
pub const DEFAULT_UPLOAD_TTL_SECONDS: u64 = 3600;
pub const DEFAULT_MAX_UPLOAD_SESSIONS: u64 = 1024;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    manager: Option<ManagerConfig>,
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
        set("bucket", self.s3_bucket.clone().map(Value::from));
        set("regionendpoint", self.s3_endpoint.clone().map(Value::from));
        set("region", self.s3_region.clone().map(Value::from));

        let ignored: Vec<String> =
            parameters.keys().filter(|k| !KNOWN_PARAMETERS.contains(&k.as_str())).cloned().collect();
        let settings = Settings {
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
        Ok((settings, ignored))
    }
}

fn text<'a>(value: &'a Value, key: &str) -> Result<&'a str, ConfigError> {
    value.as_str().ok_or_else(|| error(format!("manager.parameters.{key}: expected a string, got {value}")))
}

fn number(parameters: &BTreeMap<String, Value>, key: &str) -> Result<Option<u64>, ConfigError> {
    let Some(value) = parameters.get(key) else {
        return Ok(None);
    };
    let parsed = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    parsed
        .map(Some)
        .ok_or_else(|| error(format!("manager.parameters.{key}: expected a non-negative whole number, got {value}")))
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
    fn listen_syntax() {
        assert_eq!(bind_address(":8099"), "0.0.0.0:8099");
        assert_eq!(bind_address("127.0.0.1:1"), "127.0.0.1:1");
    }
}
