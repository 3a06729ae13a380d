//! API tokens and the bearer-token signing key, kept in the store so that every replica
//! knows every token and checks every other replica's bearer tokens.
//!
//! A token's secret is never stored: the record holds its SHA-256 (a token has 256 random
//! bits, so a plain hash is as strong as a slow one). Revoking deletes the record, so a
//! revoked token is unknown everywhere once caches of it expire.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use chartyard_core::RegistryError;
use chartyard_core::access::TokenLimits;
use serde::{Deserialize, Serialize};

use crate::gateway::{Created, Gateway};
use crate::keys::{JSON_SUFFIX, StorageKey};

type Result<T> = std::result::Result<T, RegistryError>;

/// A stored API token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: String,
    /// The user it acts for.
    pub owner: String,
    /// Hex SHA-256 of the secret.
    pub hash: String,
    /// Seconds since the Unix epoch.
    pub created: u64,
    /// Seconds since the Unix epoch; none: never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
    #[serde(flatten)]
    pub limits: TokenLimits,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

impl TokenRecord {
    pub fn expired(&self, now: SystemTime) -> bool {
        self.expires.is_some_and(|expires| seconds(now) >= expires)
    }
}

/// Seconds since the Unix epoch.
pub fn seconds(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A token as listed: its record and when it was last used.
#[derive(Debug, Clone)]
pub struct ListedToken {
    pub record: TokenRecord,
    pub last_used: Option<SystemTime>,
}

pub struct Tokens {
    gateway: Gateway,
}

impl Tokens {
    pub(crate) fn new(gateway: Gateway) -> Self {
        Self { gateway }
    }

    /// Stores a new token; ids are random, so one that exists already is an error.
    pub async fn create(&self, record: &TokenRecord) -> Result<()> {
        match self.gateway.create_json(StorageKey::Token { id: &record.id }, record).await? {
            Created::Created(_) => Ok(()),
            Created::Exists => Err(RegistryError::AlreadyExists(format!("token {}", record.id))),
        }
    }

    pub async fn get(&self, id: &str) -> Result<Option<TokenRecord>> {
        self.gateway.get_json(StorageKey::Token { id }).await
    }

    /// Every token with its last use, oldest first.
    pub async fn list(&self) -> Result<Vec<ListedToken>> {
        let objects = self.gateway.list(StorageKey::Tokens).await?;
        let used: std::collections::HashMap<String, SystemTime> = objects
            .iter()
            .filter_map(|o| {
                let id = o.location.filename()?.strip_suffix(".used")?;
                Some((id.to_string(), SystemTime::from(o.last_modified)))
            })
            .collect();
        let mut tokens = Vec::new();
        for object in &objects {
            let Some(id) = object.location.filename().and_then(|f| f.strip_suffix(JSON_SUFFIX)) else { continue };
            // Revoked between the listing and this read: not a token any more.
            if let Some(record) = self.get(id).await? {
                tokens.push(ListedToken { last_used: used.get(id).copied(), record });
            }
        }
        tokens.sort_by(|a, b| (a.record.created, &a.record.id).cmp(&(b.record.created, &b.record.id)));
        Ok(tokens)
    }

    /// Records a use of the token now.
    pub async fn mark_used(&self, id: &str) -> Result<()> {
        self.gateway.put(StorageKey::TokenUse { id }, Bytes::new()).await
    }

    /// Deletes the token; `false` if there was none.
    pub async fn revoke(&self, id: &str) -> Result<bool> {
        let existed = self.gateway.delete(StorageKey::Token { id }).await?;
        let _ = self.gateway.delete(StorageKey::TokenUse { id }).await;
        Ok(existed)
    }

    /// The key bearer tokens are signed with: the stored one, or `candidate` if there is
    /// none yet (whichever replica creates it first wins; the others read it).
    pub async fn signing_key(&self, candidate: &[u8]) -> Result<Vec<u8>> {
        let key = StorageKey::SigningKey;
        if let Created::Created(_) = self.gateway.create(key, Bytes::copy_from_slice(candidate)).await? {
            return Ok(candidate.to_vec());
        }
        match self.gateway.get(key).await? {
            Some(object) if object.bytes.len() >= 32 => Ok(object.bytes.to_vec()),
            _ => Err(RegistryError::Internal("the stored bearer token signing key is missing or short".into())),
        }
    }
}

/// How long after its last recorded use a token's use is recorded again.
pub const USE_RECORD_INTERVAL: Duration = Duration::from_secs(60);
