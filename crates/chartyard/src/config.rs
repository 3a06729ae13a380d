//! Server settings: the seed's `config.yaml`, overridden by flags and `CHARTYARD_*`
//! environment variables.
//!
//! ```yaml
//! listen: ":8099"
//! manager:
//!   name: "simple"
//!   parameters:
//!     resourcelocker: memory
//!     storagedriver: filesystem     # or inmemory
//!     rootdirectory: ./data
//!     locktimeout: 1000             # milliseconds; absent or 0 = fail at once when busy
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chartyard_storage::backend::Backend;
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
    /// filesystem or inmemory [config: manager.parameters.storagedriver].
    #[arg(long, env = "CHARTYARD_STORAGE_DRIVER")]
    pub storage_driver: Option<String>,
    /// Where the filesystem driver stores data [config: manager.parameters.rootdirectory].
    #[arg(long, env = "CHARTYARD_ROOT_DIRECTORY")]
    pub root_directory: Option<PathBuf>,
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
        let mut parameters = manager.parameters.unwrap_or_else(|| {
            if self.config.is_some() {
                BTreeMap::new()
            } else {
                BTreeMap::from([
                    ("storagedriver".to_string(), Value::from("filesystem")),
                    ("rootdirectory".to_string(), Value::from(DEFAULT_ROOT)),
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

        let ignored: Vec<String> =
            parameters.keys().filter(|k| !KNOWN_PARAMETERS.contains(&k.as_str())).cloned().collect();
        let settings = Settings {
            listen: self.listen.clone().or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.to_string()),
            backend: backend(&parameters)?,
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
    match parameters.get(key) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" || s == "false" => Ok(s == "true"),
        Some(other) => Err(error(format!("manager.parameters.{key}: expected true or false, got {other}"))),
    }
}

fn backend(parameters: &BTreeMap<String, Value>) -> Result<Backend, ConfigError> {
    let driver = parameters
        .get("storagedriver")
        .ok_or_else(|| error("manager.parameters.storagedriver: missing (expected filesystem or inmemory)"))?;
    match text(driver, "storagedriver")? {
        "filesystem" => {
            let root = parameters.get("rootdirectory").ok_or_else(|| {
                error("manager.parameters.rootdirectory: missing (required by storagedriver filesystem)")
            })?;
            let root = text(root, "rootdirectory")?;
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
        other => Err(error(format!(
            "manager.parameters.storagedriver: unknown storage driver {other:?} (expected filesystem or inmemory)"
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
    fn listen_syntax() {
        assert_eq!(bind_address(":8099"), "0.0.0.0:8099");
        assert_eq!(bind_address("127.0.0.1:1"), "127.0.0.1:1");
    }
}
