//! Checking credentials: users (htpasswd and inline, bcrypt), API tokens, the bearer
//! tokens of the token endpoint, and the caches and limits that keep checking cheap and
//! bounded.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chartyard_core::RegistryError;
use chartyard_core::access::{Policy, Scope};
use chartyard_storage::Registry;
use chartyard_storage::tokens::{TokenRecord, USE_RECORD_INTERVAL, seconds};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use super::{Identity, Proof};

/// API tokens start with this, so a password field can tell them from passwords.
pub const TOKEN_PREFIX: &str = "cyt_";
/// Issuer and audience of bearer tokens.
const ISSUER: &str = "chartyard";
/// Most entries of each verification cache; a full cache drops what expired, then all.
const MAX_CACHED: usize = 4096;
/// Most clients whose failures are counted at once.
const MAX_TRACKED_CLIENTS: usize = 16_384;
/// The window failed logins are counted in.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Longest credentials looked at; anything longer is refused unread.
const MAX_CREDENTIALS: usize = 4096;
/// A bcrypt hash no password matches in practice, checked for unknown users so that a
/// wrong user name costs as long as a wrong password.
const UNKNOWN_USER_HASH: &str = "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy";

/// Settings of access control.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthOptions {
    pub policy: Policy,
    /// An htpasswd file of bcrypt users, read again when it changes.
    pub htpasswd: Option<PathBuf>,
    /// Users given in the configuration: name → bcrypt hash.
    pub users: BTreeMap<String, String>,
    /// How long a bearer token of the token endpoint lives.
    pub bearer_ttl: Duration,
    /// Longest lifetime of an API token; none: tokens may never expire.
    pub token_max_ttl: Option<Duration>,
    /// How long an answer to wrong credentials is held back.
    pub failure_delay: Duration,
    /// Failed logins a client may have in a minute before its credentials are refused
    /// unchecked (429) until the minute is over.
    pub max_failures: u32,
    /// How long a successful password check is remembered.
    pub cache_ttl: Duration,
    /// How long an API token read from the store is trusted before it is read again: the
    /// longest a token revoked on another replica keeps working here.
    pub token_cache_ttl: Duration,
    /// The token endpoint's URL as clients reach it; none: built from each request's host.
    pub realm: Option<String>,
    /// The `service` of bearer tokens.
    pub service: String,
    /// bcrypt checks that run at once (each keeps a CPU busy for ~100 ms).
    pub bcrypt_concurrency: usize,
    /// How long a web UI sign-in lasts.
    pub session_ttl: Duration,
    /// Proxies whose `X-Forwarded-For` names the client (for failed-login limits and the
    /// audit log); behind an ingress, every client would otherwise be the ingress.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl AuthOptions {
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            htpasswd: None,
            users: BTreeMap::new(),
            bearer_ttl: Duration::from_secs(300),
            token_max_ttl: None,
            failure_delay: Duration::from_millis(500),
            max_failures: 10,
            cache_ttl: Duration::from_secs(60),
            token_cache_ttl: Duration::from_secs(5),
            realm: None,
            service: "chartyard".into(),
            bcrypt_concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
            trusted_proxies: Vec::new(),
            session_ttl: Duration::from_secs(12 * 3600),
        }
    }
}

/// Users and their bcrypt hashes, with the htpasswd file's state when read.
#[derive(Default)]
struct Users {
    hashes: HashMap<String, String>,
    stamp: Option<(SystemTime, u64)>,
}

struct Remembered<T> {
    value: T,
    at: Instant,
}

/// A small map whose entries expire; full, it drops the expired ones, then everything.
struct Expiring<K, V> {
    entries: HashMap<K, Remembered<V>>,
    ttl: Duration,
}

impl<K: std::hash::Hash + Eq, V: Clone> Expiring<K, V> {
    fn new(ttl: Duration) -> Self {
        Self { entries: HashMap::new(), ttl }
    }

    fn get(&self, key: &K) -> Option<V> {
        self.entries.get(key).filter(|e| e.at.elapsed() < self.ttl).map(|e| e.value.clone())
    }

    fn insert(&mut self, key: K, value: V) {
        if self.entries.len() >= MAX_CACHED {
            let ttl = self.ttl;
            self.entries.retain(|_, e| e.at.elapsed() < ttl);
            if self.entries.len() >= MAX_CACHED {
                self.entries.clear();
            }
        }
        self.entries.insert(key, Remembered { value, at: Instant::now() });
    }

    fn remove(&mut self, key: &K) {
        self.entries.remove(key);
    }
}

/// Failed logins of one client in the current window.
struct Failures {
    count: u32,
    since: Instant,
}

/// The claims of a bearer token.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    exp: u64,
    nbf: u64,
    iat: u64,
    jti: String,
    #[serde(default)]
    access: Vec<Scope>,
    /// The API token it was issued for, checked again on each use so that revoking the
    /// token also ends the bearer tokens issued from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tid: Option<String>,
}

/// What a web UI session cookie holds (signed).
#[derive(Debug, Serialize, Deserialize)]
struct SessionClaims {
    sub: String,
    exp: u64,
    sid: String,
    pwd: String,
}

/// Users, tokens and the policy, with the caches that keep checking them cheap.
pub struct AccessControl {
    pub(crate) options: AuthOptions,
    pub(super) default_space: Option<String>,
    registry: Arc<Registry>,
    users: RwLock<Users>,
    /// Password checks that succeeded, by a hash of the credentials.
    verified: Mutex<Expiring<[u8; 32], String>>,
    /// Token records read from the store (none: no such token).
    tokens: Mutex<Expiring<String, Option<TokenRecord>>>,
    /// When each token's use was last recorded.
    uses: Mutex<Expiring<String, ()>>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
    bcrypt: Semaphore,
    signing_key: Vec<u8>,
}

impl AccessControl {
    /// Sets access control up: reads the htpasswd file and the signing key (creating it
    /// on the first start).
    pub async fn open(
        registry: Arc<Registry>,
        options: AuthOptions,
        default_space: Option<String>,
    ) -> Result<Arc<Self>, String> {
        let mut candidate = [0u8; 32];
        getrandom::fill(&mut candidate).map_err(|e| format!("no randomness for the signing key: {e}"))?;
        let signing_key = registry
            .tokens()
            .signing_key(&candidate)
            .await
            .map_err(|e| format!("cannot read or create the bearer token signing key: {e}"))?;
        let access = Self {
            verified: Mutex::new(Expiring::new(options.cache_ttl)),
            tokens: Mutex::new(Expiring::new(options.token_cache_ttl)),
            uses: Mutex::new(Expiring::new(USE_RECORD_INTERVAL)),
            failures: Mutex::new(HashMap::new()),
            bcrypt: Semaphore::new(options.bcrypt_concurrency.max(1)),
            users: RwLock::new(Users::default()),
            default_space,
            registry,
            signing_key,
            options,
        };
        access.reload_users(true)?;
        Ok(Arc::new(access))
    }

    /// Reads the htpasswd file again if it changed (or `force`); a file that cannot be
    /// read keeps the users read before.
    pub fn reload_users(&self, force: bool) -> Result<(), String> {
        let mut hashes: HashMap<String, String> = HashMap::new();
        let mut stamp = None;
        if let Some(path) = &self.options.htpasswd {
            let meta = std::fs::metadata(path).map_err(|e| format!("auth.htpasswd {}: {e}", path.display()))?;
            let now = (meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta.len());
            if !force && self.users.read().expect("users lock").stamp == Some(now) {
                return Ok(());
            }
            let text = std::fs::read_to_string(path).map_err(|e| format!("auth.htpasswd {}: {e}", path.display()))?;
            hashes = parse_htpasswd(&text).map_err(|e| format!("auth.htpasswd {}: {e}", path.display()))?;
            stamp = Some(now);
        }
        for (user, hash) in &self.options.users {
            if !is_bcrypt(hash) {
                return Err(format!("auth.users.{user}: only bcrypt hashes ($2a$, $2b$, $2y$) are accepted"));
            }
            hashes.insert(user.clone(), hash.clone());
        }
        let count = hashes.len();
        *self.users.write().expect("users lock") = Users { hashes, stamp };
        // A changed password or a removed user must not pass on a remembered check.
        *self.verified.lock().expect("cache lock") = Expiring::new(self.options.cache_ttl);
        if !force {
            tracing::info!(users = count, "reloaded the htpasswd file");
        }
        Ok(())
    }

    /// The token endpoint's URL.
    pub(super) fn realm(&self, headers: &HeaderMap, https: bool) -> String {
        if let Some(realm) = &self.options.realm {
            return realm.clone();
        }
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
        let host: String = host.chars().filter(|c| !c.is_control() && *c != '"' && *c != '\\').take(256).collect();
        format!("{}://{host}/_/token", if https { "https" } else { "http" })
    }

    /// Checks a request's credentials.
    pub(super) async fn check(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> (Identity, Proof) {
        let Some(value) = headers.get(header::AUTHORIZATION) else { return (Identity::default(), Proof::Accepted) };
        if self.throttled(peer) {
            return (Identity::default(), Proof::Throttled);
        }
        let result = match parse_authorization(value) {
            Some(Credentials::Basic { user, password }) => self.sign_in(&user, &password).await,
            Some(Credentials::Bearer(token)) if token.starts_with(TOKEN_PREFIX) => self.api_token(&token).await,
            Some(Credentials::Bearer(token)) => self.bearer(&token).await,
            None => Err(Failure::Rejected("malformed Authorization header")),
        };
        match result {
            Ok(identity) => (identity, Proof::Accepted),
            Err(Failure::Unavailable(error)) => {
                tracing::error!(%error, "cannot check credentials");
                (Identity::default(), Proof::Unavailable)
            }
            Err(Failure::Rejected(why)) => {
                self.failed(peer);
                tokio::time::sleep(self.options.failure_delay).await;
                (Identity::default(), Proof::Rejected(why))
            }
        }
    }

    /// A user name and a password, or an API token in the password field.
    pub(crate) async fn sign_in(&self, user: &str, password: &str) -> Result<Identity, Failure> {
        if password.starts_with(TOKEN_PREFIX) {
            return self.api_token(password).await;
        }
        let key: [u8; 32] = Sha256::new()
            .chain_update(user.as_bytes())
            .chain_update([0])
            .chain_update(password.as_bytes())
            .finalize()
            .into();
        if let Some(user) = self.verified.lock().expect("cache lock").get(&key) {
            return Ok(Identity { user: Some(user), ..Identity::default() });
        }
        let hash = self.users.read().expect("users lock").hashes.get(user).cloned();
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| UNKNOWN_USER_HASH.to_string());
        let _permit = self.bcrypt.acquire().await.map_err(|_| Failure::Unavailable("closed".into()))?;
        let password = password.to_string();
        let matches = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
            .await
            .unwrap_or(false);
        if !(matches && known) {
            return Err(Failure::Rejected("wrong user name or password"));
        }
        self.verified.lock().expect("cache lock").insert(key, user.to_string());
        Ok(Identity { user: Some(user.to_string()), ..Identity::default() })
    }

    /// An API token (`cyt_{id}_{secret}`).
    async fn api_token(&self, token: &str) -> Result<Identity, Failure> {
        let (id, secret) = parse_api_token(token).ok_or(Failure::Rejected("malformed API token"))?;
        let record = self.token_record(id).await?.ok_or(Failure::Rejected("unknown or revoked API token"))?;
        let hash = hex(&Sha256::digest(secret.as_bytes()));
        if !bool::from(hash.as_bytes().ct_eq(record.hash.as_bytes())) {
            return Err(Failure::Rejected("unknown or revoked API token"));
        }
        if record.expired(SystemTime::now()) {
            return Err(Failure::Rejected("expired API token"));
        }
        self.record_use(id);
        Ok(Identity {
            user: Some(record.owner.clone()),
            token: Some((record.id.clone(), record.limits.clone())),
            ..Identity::default()
        })
    }

    /// The stored token `id`, through the short cache.
    async fn token_record(&self, id: &str) -> Result<Option<TokenRecord>, Failure> {
        if let Some(record) = self.tokens.lock().expect("cache lock").get(&id.to_string()) {
            return Ok(record);
        }
        let record = self.registry.tokens().get(id).await.map_err(|e| Failure::Unavailable(e.to_string()))?;
        self.tokens.lock().expect("cache lock").insert(id.to_string(), record.clone());
        Ok(record)
    }

    /// Records a token's use in the store, at most once a minute per token.
    fn record_use(&self, id: &str) {
        {
            let mut uses = self.uses.lock().expect("cache lock");
            if uses.get(&id.to_string()).is_some() {
                return;
            }
            uses.insert(id.to_string(), ());
        }
        let (registry, id) = (self.registry.clone(), id.to_string());
        tokio::spawn(async move {
            if let Err(error) = registry.tokens().mark_used(&id).await {
                tracing::debug!(%error, "cannot record a token's use");
            }
        });
    }

    /// Forgets what this process knew of a token (it was revoked here).
    pub(crate) fn forget_token(&self, id: &str) {
        self.tokens.lock().expect("cache lock").remove(&id.to_string());
    }

    /// A bearer token of the token endpoint.
    async fn bearer(&self, token: &str) -> Result<Identity, Failure> {
        let claims = self.verify(token).ok_or(Failure::Rejected("invalid or expired bearer token"))?;
        let mut identity = Identity {
            user: (!claims.sub.is_empty()).then(|| claims.sub.clone()),
            scopes: Some(claims.access),
            ..Identity::default()
        };
        if let Some(id) = claims.tid {
            let record = self.token_record(&id).await?.ok_or(Failure::Rejected("unknown or revoked API token"))?;
            if record.expired(SystemTime::now()) {
                return Err(Failure::Rejected("expired API token"));
            }
            identity.token = Some((id, record.limits));
        }
        Ok(identity)
    }

    /// Signs a bearer token for `identity` with `scopes`.
    pub(super) fn sign(&self, identity: &Identity, scopes: Vec<Scope>) -> (String, u64) {
        let now = seconds(SystemTime::now());
        let ttl = self.options.bearer_ttl.as_secs().max(1);
        let mut jti = [0u8; 12];
        let _ = getrandom::fill(&mut jti);
        let claims = Claims {
            iss: ISSUER.into(),
            sub: identity.user.clone().unwrap_or_default(),
            aud: self.options.service.clone(),
            exp: now + ttl,
            nbf: now.saturating_sub(60),
            iat: now,
            jti: hex(&jti),
            access: scopes,
            tid: identity.token.as_ref().map(|(id, _)| id.clone()),
        };
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let signed = format!("{header}.{payload}");
        let signature = URL_SAFE_NO_PAD.encode(self.mac(signed.as_bytes()).finalize().into_bytes());
        (format!("{signed}.{signature}"), ttl)
    }

    fn mac(&self, message: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.signing_key).expect("HMAC takes keys of any length");
        mac.update(message);
        mac
    }

    /// The claims of a bearer token this registry (or a replica) signed and that is
    /// current. The algorithm is always HS256: the header is not read, so no token can
    /// choose how it is checked.
    fn verify(&self, token: &str) -> Option<Claims> {
        let (signed, signature) = token.rsplit_once('.')?;
        let (_, payload) = signed.split_once('.')?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        self.mac(signed.as_bytes()).verify_slice(&signature).ok()?;
        let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        let now = seconds(SystemTime::now());
        (claims.iss == ISSUER && claims.aud == self.options.service && claims.nbf <= now && now < claims.exp)
            .then_some(claims)
    }

    /// A web UI session for `user`: the cookie's value. It is signed, not stored, so every
    /// replica accepts it; it names the user's password hash (by a digest), so changing
    /// the password or removing the user ends it.
    pub(crate) fn start_session(&self, user: &str) -> Option<String> {
        let fingerprint = self.password_fingerprint(user)?;
        let mut sid = [0u8; 16];
        getrandom::fill(&mut sid).ok()?;
        let session = SessionClaims {
            sub: user.to_string(),
            exp: seconds(SystemTime::now()) + self.options.session_ttl.as_secs().max(60),
            sid: hex(&sid),
            pwd: fingerprint,
        };
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&session).ok()?);
        let signature =
            URL_SAFE_NO_PAD.encode(self.mac(format!("session.{payload}").as_bytes()).finalize().into_bytes());
        Some(format!("{payload}.{signature}"))
    }

    /// The user and session id of a current session cookie.
    pub(super) fn session(&self, cookie: &str) -> Option<(String, String)> {
        if cookie.len() > MAX_CREDENTIALS {
            return None;
        }
        let (payload, signature) = cookie.split_once('.')?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        self.mac(format!("session.{payload}").as_bytes()).verify_slice(&signature).ok()?;
        let session: SessionClaims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        let current = self.password_fingerprint(&session.sub)?;
        (seconds(SystemTime::now()) < session.exp && bool::from(current.as_bytes().ct_eq(session.pwd.as_bytes())))
            .then_some((session.sub, session.sid))
    }

    /// The CSRF token of a session: forms of the web UI carry it, and a cross-site page
    /// cannot read it.
    pub(super) fn csrf_token(&self, sid: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(format!("csrf.{sid}").as_bytes()).finalize().into_bytes())
    }

    /// A digest of the user's current password hash; none for an unknown user.
    fn password_fingerprint(&self, user: &str) -> Option<String> {
        let users = self.users.read().expect("users lock");
        users.hashes.get(user).map(|hash| hex(&Sha256::digest(hash.as_bytes())[..12]))
    }

    /// Where a request comes from: the peer, unless the peer is a trusted proxy, in which
    /// case the last address of `X-Forwarded-For` that is not one (a client can prepend
    /// anything to that header, but not what the proxies appended after it).
    pub(super) fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let trusted = |ip: &IpAddr| self.options.trusted_proxies.iter().any(|net| net.contains(ip));
        if !trusted(&peer) {
            return peer;
        }
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse::<IpAddr>().ok())
            .collect::<Vec<_>>();
        forwarded.iter().rev().find(|ip| !trusted(ip)).or(forwarded.first()).copied().unwrap_or(peer)
    }

    pub(super) fn throttled(&self, peer: Option<IpAddr>) -> bool {
        let Some(ip) = peer else { return false };
        let failures = self.failures.lock().expect("failures lock");
        failures.get(&ip).is_some_and(|f| f.since.elapsed() < FAILURE_WINDOW && f.count >= self.options.max_failures)
    }

    pub(super) fn failed(&self, peer: Option<IpAddr>) {
        let Some(ip) = peer else { return };
        let mut failures = self.failures.lock().expect("failures lock");
        if failures.len() >= MAX_TRACKED_CLIENTS {
            failures.retain(|_, f| f.since.elapsed() < FAILURE_WINDOW);
            if failures.len() >= MAX_TRACKED_CLIENTS {
                failures.clear();
            }
        }
        let entry = failures.entry(ip).or_insert(Failures { count: 0, since: Instant::now() });
        if entry.since.elapsed() >= FAILURE_WINDOW {
            *entry = Failures { count: 0, since: Instant::now() };
        }
        entry.count += 1;
    }
}

/// Why credentials were not accepted.
pub(crate) enum Failure {
    Rejected(&'static str),
    Unavailable(String),
}

enum Credentials {
    Basic { user: String, password: String },
    Bearer(String),
}

fn parse_authorization(value: &HeaderValue) -> Option<Credentials> {
    if value.len() > MAX_CREDENTIALS {
        return None;
    }
    let value = value.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = String::from_utf8(STANDARD.decode(rest).ok()?).ok()?;
        let (user, password) = decoded.split_once(':')?;
        return Some(Credentials::Basic { user: user.to_string(), password: password.to_string() });
    }
    if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        return Some(Credentials::Bearer(rest.to_string()));
    }
    None
}

/// `cyt_{id}_{secret}` → `(id, secret)`.
fn parse_api_token(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.strip_prefix(TOKEN_PREFIX)?.split_once('_')?;
    let id_ok = id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit());
    (id_ok && (32..=128).contains(&secret.len())).then_some((id, secret))
}

/// A new API token: its id and the whole token text.
pub(crate) fn new_api_token() -> Result<(String, String, String), String> {
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    getrandom::fill(&mut id).and_then(|()| getrandom::fill(&mut secret)).map_err(|e| e.to_string())?;
    let (id, secret) = (hex(&id), URL_SAFE_NO_PAD.encode(secret));
    let hash = hex(&Sha256::digest(secret.as_bytes()));
    Ok((format!("{TOKEN_PREFIX}{id}_{secret}"), id, hash))
}

fn is_bcrypt(hash: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p))
}

/// `user:hash` lines; only bcrypt hashes are accepted (MD5, SHA1 and crypt are weak).
fn parse_htpasswd(text: &str) -> Result<HashMap<String, String>, String> {
    let mut users = HashMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (user, hash) = line.split_once(':').ok_or_else(|| format!("line {}: not user:hash", number + 1))?;
        if !is_bcrypt(hash) {
            return Err(format!("line {} ({user}): only bcrypt hashes are accepted (htpasswd -B)", number + 1));
        }
        users.insert(user.to_string(), hash.to_string());
    }
    Ok(users)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks a token's request against the limits: `Err` explains what is wrong.
pub(crate) fn token_expiry(access: &AccessControl, expires_in: Option<Duration>) -> Result<Option<u64>, String> {
    let now = seconds(SystemTime::now());
    match (expires_in, access.options.token_max_ttl) {
        (None, None) => Ok(None),
        (None, Some(max)) => Ok(Some(now + max.as_secs())),
        (Some(ttl), Some(max)) if ttl > max => {
            Err(format!("tokens may live at most {}", humantime::format_duration(max)))
        }
        (Some(ttl), _) => Ok(Some(now + ttl.as_secs().max(1))),
    }
}

impl From<RegistryError> for Failure {
    fn from(error: RegistryError) -> Self {
        Self::Unavailable(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htpasswd_accepts_bcrypt_only() {
        let users = parse_htpasswd("# users\nalice:$2y$05$abcdefghijklmnopqrstuu\n\n").unwrap();
        assert!(users.contains_key("alice"));
        assert!(parse_htpasswd("bob:$apr1$xyz$abc").unwrap_err().contains("bcrypt"));
        assert!(parse_htpasswd("carol:{SHA}abc").is_err());
        assert!(parse_htpasswd("no colon").is_err());
    }

    #[test]
    fn api_tokens_parse_back() {
        let (token, id, hash) = new_api_token().unwrap();
        let (parsed_id, secret) = parse_api_token(&token).unwrap();
        assert_eq!(parsed_id, id);
        assert_eq!(hex(&Sha256::digest(secret.as_bytes())), hash);
        assert!(parse_api_token("cyt_short_x").is_none());
        assert!(parse_api_token("password").is_none());
    }

    #[test]
    fn authorization_headers_parse() {
        let basic = HeaderValue::from_str(&format!("Basic {}", STANDARD.encode("alice:pa:ss"))).unwrap();
        assert!(
            matches!(parse_authorization(&basic), Some(Credentials::Basic { user, password }) if user == "alice" && password == "pa:ss")
        );
        let bearer = HeaderValue::from_static("bearer abc");
        assert!(matches!(parse_authorization(&bearer), Some(Credentials::Bearer(t)) if t == "abc"));
        assert!(parse_authorization(&HeaderValue::from_static("Basic !!!")).is_none());
        assert!(parse_authorization(&HeaderValue::from_static("Digest x")).is_none());
    }
}
