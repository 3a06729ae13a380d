//! The `auth` section of the configuration file: users, groups, grants and token settings.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chartyard_core::access::{AnonymousRule, Policy, Rule};
use chartyard_http::auth::AuthOptions;
use serde::Deserialize;

/// `auth:` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    /// An htpasswd file of bcrypt users (`htpasswd -B`), read again when it changes.
    htpasswd: Option<PathBuf>,
    /// Users given inline: name → bcrypt hash.
    #[serde(default)]
    users: BTreeMap<String, String>,
    /// Group → its members.
    #[serde(default)]
    groups: BTreeMap<String, Vec<String>>,
    /// Users who are admin of every space.
    #[serde(default)]
    admins: Vec<String>,
    /// Roles of every caller, signed in or not.
    #[serde(default)]
    anonymous: Vec<AnonymousRule>,
    /// Roles of users and groups by space pattern.
    #[serde(default)]
    rules: Vec<Rule>,
    /// Whether `write` may delete versions (otherwise only `admin`); on by default, as
    /// ChartMuseum's single write permission includes deleting.
    writeincludesdelete: Option<bool>,
    /// Longest lifetime of an API token (`90d`); none: tokens may be created without expiry.
    tokenmaxttl: Option<String>,
    /// Lifetime of the OCI token endpoint's bearer tokens (default 5m).
    bearerttl: Option<String>,
    /// How long a web UI sign-in lasts (default 12h).
    sessionttl: Option<String>,
    /// How long an answer to wrong credentials is held back (default 500ms).
    faileddelay: Option<String>,
    /// Failed logins per client and minute before its credentials are refused unchecked.
    maxfailures: Option<u32>,
    /// How long a successful password check is remembered (default 60s).
    cachettl: Option<String>,
    /// How long a token read from the store is trusted (default 5s): the longest a token
    /// revoked on another replica keeps working on this one.
    tokencachettl: Option<String>,
    /// The token endpoint's URL as clients reach it (behind a proxy that changes the host).
    realm: Option<String>,
    /// The `service` bearer tokens are issued for (default `chartyard`).
    service: Option<String>,
    /// Addresses or networks (`10.0.0.0/8`) of proxies whose `X-Forwarded-For` is believed.
    #[serde(default)]
    trustedproxies: Vec<String>,
}

fn duration(key: &str, value: &Option<String>) -> Result<Option<Duration>, String> {
    value
        .as_deref()
        .map(|text| humantime::parse_duration(text).map_err(|e| format!("auth.{key}: {text:?} is not a duration: {e}")))
        .transpose()
}

impl AuthSection {
    /// The access control settings; errors name the key.
    pub fn options(self) -> Result<AuthOptions, String> {
        for (group, members) in &self.groups {
            if members.is_empty() {
                return Err(format!("auth.groups.{group}: a group needs members"));
            }
        }
        let policy = Policy::new(
            self.admins,
            self.anonymous,
            self.rules,
            &self.groups,
            self.writeincludesdelete.unwrap_or(true),
        )
        .map_err(|e| format!("auth.rules: {e}"))?;
        let mut options = AuthOptions::new(policy);
        options.htpasswd = self.htpasswd;
        options.users = self.users;
        options.token_max_ttl = duration("tokenmaxttl", &self.tokenmaxttl)?;
        if let Some(ttl) = duration("bearerttl", &self.bearerttl)? {
            if ttl < Duration::from_secs(10) || ttl > Duration::from_secs(24 * 3600) {
                return Err("auth.bearerttl: must be between 10s and 24h".into());
            }
            options.bearer_ttl = ttl;
        }
        if let Some(ttl) = duration("sessionttl", &self.sessionttl)? {
            if ttl < Duration::from_secs(60) || ttl > Duration::from_secs(30 * 24 * 3600) {
                return Err("auth.sessionttl: must be between 1m and 30d".into());
            }
            options.session_ttl = ttl;
        }
        if let Some(delay) = duration("faileddelay", &self.faileddelay)? {
            if delay > Duration::from_secs(10) {
                return Err("auth.faileddelay: at most 10s".into());
            }
            options.failure_delay = delay;
        }
        if let Some(max) = self.maxfailures {
            options.max_failures = max.max(1);
        }
        if let Some(ttl) = duration("cachettl", &self.cachettl)? {
            options.cache_ttl = ttl;
        }
        if let Some(ttl) = duration("tokencachettl", &self.tokencachettl)? {
            options.token_cache_ttl = ttl;
        }
        for proxy in &self.trustedproxies {
            let net = proxy
                .parse::<ipnet::IpNet>()
                .or_else(|_| proxy.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("auth.trustedproxies: {proxy:?} is not an address or a network"))?;
            options.trusted_proxies.push(net);
        }
        options.realm = self.realm;
        if let Some(service) = self.service {
            options.service = service;
        }
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<AuthOptions, String> {
        serde_saphyr::from_str::<AuthSection>(yaml).map_err(|e| e.to_string())?.options()
    }

    #[test]
    fn the_documented_example_is_read() {
        let options = parse(
            r#"
htpasswd: /etc/chartyard/htpasswd
users:
  ci: "$2y$10$abcdefghijklmnopqrstuv"
groups:
  platform: [alice, bob]
admins: [root]
anonymous:
  - spaces: ["public-*"]
    role: read
rules:
  - spaces: ["team-a-*", "shared"]
    users: {carol: write}
    groups: {platform: admin}
tokenmaxttl: 90d
bearerttl: 10m
sessionttl: 8h
trustedproxies: [10.0.0.0/8, 192.168.1.7]
"#,
        )
        .unwrap();
        use chartyard_core::access::{Caller, Role};
        assert_eq!(options.policy.role(Caller::user("bob"), "team-a-x"), Some(Role::Admin));
        assert_eq!(options.policy.role(Caller::user("carol"), "shared"), Some(Role::Write));
        assert_eq!(options.policy.role(Caller::ANONYMOUS, "public-x"), Some(Role::Read));
        assert_eq!(options.bearer_ttl, Duration::from_secs(600));
        assert_eq!(options.session_ttl, Duration::from_secs(8 * 3600));
        assert_eq!(options.token_max_ttl, Some(Duration::from_secs(90 * 86400)));
        assert_eq!(options.trusted_proxies.len(), 2);
    }

    #[test]
    fn mistakes_name_their_key() {
        assert!(parse("rules: [{spaces: ['*'], groups: {nobody: read}}]").unwrap_err().contains("nobody"));
        assert!(parse("bearerttl: forever").unwrap_err().contains("auth.bearerttl"));
        assert!(parse("anonymous: [{spaces: ['x'], role: owner}]").is_err());
        assert!(parse("unknownkey: 1").is_err());
        assert!(parse("trustedproxies: [ingress]").unwrap_err().contains("auth.trustedproxies"));
    }
}
