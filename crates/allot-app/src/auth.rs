//! API keys and roles.
//!
//! A key is 32 random bytes from the operating system, shown once as `allot_<64 hex>` and
//! stored only as the hex SHA-256 digest. Lookup is by digest: comparing digests of a
//! secret leaks nothing useful about the secret through timing, so a hash-map lookup is
//! safe here (argon2 is for low-entropy human passwords, not 256-bit random keys).

use std::collections::HashMap;
use std::sync::RwLock;

use allot_core::{ChannelId, NodeId};
use sha2::{Digest, Sha256};

use crate::{App, AppError, Result};

/// What a key may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Everything.
    Admin,
    /// A sales channel: its own orders (later issues).
    Channel(ChannelId),
    /// A fulfillment node: its own fulfillment orders (later issues).
    Node(NodeId),
}

impl Role {
    /// Parses `admin`, `channel:<channel_id>` or `node:<node_id>`.
    pub fn parse(text: &str) -> Result<Role, String> {
        match text.split_once(':') {
            None if text == "admin" => Ok(Role::Admin),
            Some(("channel", id)) => ChannelId::parse(id).map(Role::Channel).map_err(|e| format!("channel id: {e}")),
            Some(("node", id)) => NodeId::parse(id).map(Role::Node).map_err(|e| format!("node id: {e}")),
            _ => Err(format!("{text:?} is not a role: expected admin, channel:<channel_id> or node:<node_id>")),
        }
    }

    pub fn to_text(&self) -> String {
        match self {
            Role::Admin => "admin".to_owned(),
            Role::Channel(c) => format!("channel:{c}"),
            Role::Node(n) => format!("node:{n}"),
        }
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub key_id: String,
    pub role: Role,
}

impl Principal {
    /// Admin-only actions: network, catalog and inventory writes (for now).
    pub fn require_admin(&self, action: &'static str) -> Result<()> {
        match self.role {
            Role::Admin => Ok(()),
            _ => Err(AppError::Forbidden { action }),
        }
    }
}

/// A freshly created key; `secret` is shown once and never stored.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub key_id: String,
    pub secret: String,
    pub role: Role,
}

/// Digest → principal, filled on first use of each key.
#[derive(Default)]
pub(crate) struct KeyCache(RwLock<HashMap<String, Principal>>);

fn digest_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| {
        AppError::Store(allot_store::StoreError::BadConfig(format!("operating system randomness unavailable: {e}")))
    })?;
    Ok(hex::encode(buf))
}

/// Longest bearer token looked at; anything longer is rejected without hashing.
pub const KEY_MAX_LEN: usize = 256;

impl App {
    /// Resolves a bearer token to its principal; unknown keys are `Unauthenticated`.
    pub async fn authenticate(&self, token: &str) -> Result<Principal> {
        if token.is_empty() || token.len() > KEY_MAX_LEN {
            return Err(AppError::Unauthenticated);
        }
        let digest = digest_hex(token);
        if let Some(p) = self.inner.keys.0.read().unwrap_or_else(|p| p.into_inner()).get(&digest) {
            return Ok(p.clone());
        }
        let stored = self.inner.store.key_by_digest(&digest).await?.ok_or(AppError::Unauthenticated)?;
        let role = Role::parse(&stored.role)
            .map_err(|e| AppError::Store(allot_store::StoreError::Corrupt { table: "api_keys", detail: e }))?;
        let principal = Principal { key_id: stored.key_id, role };
        self.inner.keys.0.write().unwrap_or_else(|p| p.into_inner()).insert(digest, principal.clone());
        Ok(principal)
    }

    /// Creates a key with a role; the secret is returned once.
    pub async fn create_key(&self, role: Role) -> Result<NewKey> {
        let secret = format!("allot_{}", random_hex(32)?);
        self.store_key(&secret, &role).await
    }

    async fn store_key(&self, secret: &str, role: &Role) -> Result<NewKey> {
        let key_id = format!("key_{}", uuid::Uuid::now_v7().simple());
        let mut tx = self.inner.store.begin().await?;
        tx.insert_key(&key_id, &digest_hex(secret), &role.to_text(), self.now_ms()).await?;
        tx.commit().await?;
        Ok(NewKey { key_id, secret: secret.to_owned(), role: role.clone() })
    }

    /// Makes sure an admin can get in. With `configured` (from `ALLOT_ADMIN_KEY`) that key
    /// becomes an admin key if it is not one yet. Without it, and only while the database
    /// holds no key at all, an admin key is generated and returned so it can be printed
    /// once. Returns `None` when nothing was generated.
    pub async fn bootstrap_admin(&self, configured: Option<&str>) -> Result<Option<NewKey>> {
        if let Some(secret) = configured {
            if secret.len() < 16 || secret.len() > KEY_MAX_LEN {
                return Err(AppError::invalid("ALLOT_ADMIN_KEY", "must be 16 to 256 characters"));
            }
            if self.inner.store.key_by_digest(&digest_hex(secret)).await?.is_none() {
                self.store_key(secret, &Role::Admin).await?;
            }
            return Ok(None);
        }
        let mut tx = self.inner.store.begin().await?;
        if tx.key_count().await? > 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let secret = format!("allot_{}", random_hex(32)?);
        let key_id = format!("key_{}", uuid::Uuid::now_v7().simple());
        tx.insert_key(&key_id, &digest_hex(&secret), "admin", self.now_ms()).await?;
        tx.commit().await?;
        Ok(Some(NewKey { key_id, secret, role: Role::Admin }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_print() {
        assert_eq!(Role::parse("admin"), Ok(Role::Admin));
        assert_eq!(Role::parse("channel:web").map(|r| r.to_text()), Ok("channel:web".to_owned()));
        assert_eq!(Role::parse("node:DC-1").map(|r| r.to_text()), Ok("node:DC-1".to_owned()));
        assert!(Role::parse("root").is_err());
        assert!(Role::parse("channel:").is_err());
        assert!(Role::parse("node:a/b").is_err());
    }
}
