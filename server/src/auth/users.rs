//! Users and API keys: argon2id password hashes and key hashes in the system
//! database's internal keyspace, their checks and the failed-sign-in limit.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::access::FailureLimiter;
use super::identity::Identity;
use super::sessions::Sessions;
use crate::storage::{DatabaseHandle, StorageError};
use rookery_types::Role;

const USER_PREFIX: &str = "auth/users/";
const KEY_PREFIX: &str = "auth/apikeys/";

/// What can go wrong managing credentials.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    Invalid(String),
    #[error("not found")]
    NotFound,
    #[error("an API key named '{0}' already exists")]
    KeyExists(String),
    #[error("'{0}' is the last administrator: create another Admin user or API key first, so that the server is never left without one")]
    LastAdministrator(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StoredUser {
    name: String,
    role: Role,
    /// PHC string of an argon2id hash.
    password_hash: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StoredKey {
    name: String,
    role: Role,
    /// Hex SHA-256 of the secret (a 256-bit random value: a slow hash adds nothing).
    secret_sha256: String,
}

/// Users and API keys of a server.
pub struct Authenticator {
    system: Arc<DatabaseHandle>,
    /// Verified `(user, sha256(password))` pairs, so that argon2 runs once per
    /// password, not once per request. Cleared whenever a user changes.
    verified: RwLock<HashMap<(String, [u8; 32]), Role>>,
    /// Whether the server runs open (development mode): decided when it
    /// starts, from whether any credential exists. A change can only close it
    /// (the first credential); nothing at runtime opens it again.
    open: std::sync::atomic::AtomicBool,
    /// Serializes changes to credentials, so that two requests cannot each
    /// remove "one of two" administrators.
    changes: std::sync::Mutex<()>,
    /// Bounds the argon2 hashes computed at once (each takes ~19 MiB and a core).
    hashing: HashPermits,
    /// Bumped by every change to a user or key: a password verified while a
    /// change happened is neither cached nor turned into a session.
    generation: std::sync::atomic::AtomicU64,
    pub sessions: Sessions,
    pub limiter: FailureLimiter,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Credentials stored in `system`.
    #[must_use]
    pub fn new(system: Arc<DatabaseHandle>, max_failures: u32) -> Self {
        let auth = Self {
            system,
            verified: RwLock::default(),
            open: std::sync::atomic::AtomicBool::new(false),
            changes: std::sync::Mutex::new(()),
            hashing: HashPermits::new(MAX_CONCURRENT_HASHES),
            generation: std::sync::atomic::AtomicU64::new(0),
            sessions: Sessions::default(),
            limiter: FailureLimiter::new(max_failures),
        };
        let open = !auth.has_credentials();
        auth.open.store(open, std::sync::atomic::Ordering::SeqCst);
        auth
    }

    fn has_credentials(&self) -> bool {
        let internal = self.system.store().internal();
        internal.prefix(USER_PREFIX).next().is_some() || internal.prefix(KEY_PREFIX).next().is_some()
    }

    /// True when no user and no API key exist: the server runs open.
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.open.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Once a credential exists the server is protected, for good.
    fn close_if_protected(&self) {
        if self.has_credentials() {
            self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// Serializes a change; the generation moves when it starts and when it ends.
    fn lock_changes(&self) -> ChangeGuard<'_> {
        let guard = self.changes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        ChangeGuard { _guard: guard, generation: &self.generation }
    }

    /// The generation of the credentials (see the field).
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Administrators other than the user or key stored under `except`.
    fn other_admins(&self, except: &str) -> usize {
        let users = self.users().into_iter().filter(|u| u.role == Role::Admin && user_key(&u.name) != except).count();
        let keys = self.keys().into_iter().filter(|k| k.role == Role::Admin && api_key_key(&k.name) != except).count();
        users + keys
    }

    /// Refuses a change that would leave a protected server without an
    /// administrator (`key` is the credential being removed or downgraded).
    fn keep_an_admin(&self, key: &str, name: &str, was_admin: bool) -> Result<(), AuthError> {
        if was_admin && self.other_admins(key) == 0 {
            return Err(AuthError::LastAdministrator(name.to_string()));
        }
        Ok(())
    }

    /// True when at least one user or key has the `Admin` role.
    #[must_use]
    pub fn has_admin(&self) -> bool {
        self.users().iter().any(|u| u.role == Role::Admin) || self.keys().iter().any(|k| k.role == Role::Admin)
    }

    /// Creates or replaces a user.
    ///
    /// # Errors
    /// `Invalid` for a bad name or an empty password; storage errors.
    pub fn put_user(&self, name: &str, password: &str, role: Role) -> Result<bool, AuthError> {
        validate_principal(name)?;
        if password.is_empty() {
            return Err(AuthError::Invalid("a password must not be empty".into()));
        }
        let salt = SaltString::generate(&mut OsRng);
        let hash = {
            let _permit = self.hashing.acquire();
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map_err(|e| AuthError::Invalid(format!("cannot hash the password: {e}")))?
                .to_string()
        };
        let key = user_key(name);
        let _changes = self.lock_changes();
        let existing: Option<StoredUser> = self.read(&key)?;
        self.require_admin_first(role)?;
        if role != Role::Admin {
            self.keep_an_admin(&key, name, existing.as_ref().is_some_and(|u| u.role == Role::Admin))?;
        }
        let user = StoredUser { name: name.to_string(), role, password_hash: hash };
        self.write(&key, &user)?;
        self.forget_verified();
        // A new password or role applies to the user's open sessions at once: they end.
        self.sessions.drop_user(name);
        Ok(existing.is_none())
    }

    /// On a server with no credential yet, the first one must be an
    /// administrator: anything else would lock everyone out of the admin routes.
    fn require_admin_first(&self, role: Role) -> Result<(), AuthError> {
        if role != Role::Admin && !self.has_credentials() {
            return Err(AuthError::Invalid("the first user or API key of a server must have the Admin role".into()));
        }
        Ok(())
    }

    /// Deletes a user.
    ///
    /// # Errors
    /// `NotFound`, storage errors.
    pub fn delete_user(&self, name: &str) -> Result<(), AuthError> {
        let key = user_key(name);
        let _changes = self.lock_changes();
        let user: StoredUser = self.read(&key)?.ok_or(AuthError::NotFound)?;
        self.keep_an_admin(&key, &user.name, user.role == Role::Admin)?;
        self.remove(&key)?;
        self.sessions.drop_user(name);
        self.forget_verified();
        Ok(())
    }

    /// Creates an API key; returns `name/secret` (the secret is shown once).
    ///
    /// # Errors
    /// `Invalid`, `KeyExists`, storage errors.
    pub fn create_api_key(&self, name: &str, role: Role) -> Result<String, AuthError> {
        validate_principal(name)?;
        let key = api_key_key(name);
        let _changes = self.lock_changes();
        if self.system.store().internal().get(&key).map_err(StorageError::from)?.is_some() {
            return Err(AuthError::KeyExists(name.to_string()));
        }
        self.require_admin_first(role)?;
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut secret);
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
        let stored = StoredKey { name: name.to_string(), role, secret_sha256: hex::encode(Sha256::digest(secret.as_bytes())) };
        self.write(&key, &stored)?;
        Ok(format!("{name}/{secret}"))
    }

    /// Deletes an API key.
    ///
    /// # Errors
    /// `NotFound`, storage errors.
    pub fn delete_api_key(&self, name: &str) -> Result<(), AuthError> {
        let key = api_key_key(name);
        let _changes = self.lock_changes();
        let stored: StoredKey = self.read(&key)?.ok_or(AuthError::NotFound)?;
        self.keep_an_admin(&key, &stored.name, stored.role == Role::Admin)?;
        self.remove(&key)
    }

    /// The identity of a password already verified (no hashing): the fast
    /// path, safe on an async worker. `None` means "not known yet", not "wrong".
    #[must_use]
    pub fn cached_password(&self, name: &str, password: &str) -> Option<Identity> {
        let fingerprint: [u8; 32] = Sha256::digest(password.as_bytes()).into();
        let role = self.verified.read().ok()?.get(&(name.to_ascii_lowercase(), fingerprint)).copied()?;
        Some(Identity { name: name.to_string(), role, development: false })
    }

    /// Checks a user name and password. Runs argon2 on a miss (blocking: call
    /// it from a blocking thread); at most [`MAX_CONCURRENT_HASHES`] at once.
    #[must_use]
    pub fn verify_password(&self, name: &str, password: &str) -> Option<Identity> {
        let fingerprint: [u8; 32] = Sha256::digest(password.as_bytes()).into();
        let cache_key = (name.to_ascii_lowercase(), fingerprint);
        if let Some(role) = self.verified.read().ok().and_then(|v| v.get(&cache_key).copied()) {
            return Some(Identity { name: name.to_string(), role, development: false });
        }
        let generation = self.generation();
        let raw = self.system.store().internal().get(user_key(&cache_key.0)).ok()??;
        let user: StoredUser = serde_json::from_slice(&raw).ok()?;
        let parsed = PasswordHash::new(&user.password_hash).ok()?;
        {
            let _permit = self.hashing.acquire();
            Argon2::default().verify_password(password.as_bytes(), &parsed).ok()?;
        }
        // A change happened meanwhile: the record read may be stale.
        if self.generation() != generation {
            return None;
        }
        if let Ok(mut v) = self.verified.write() {
            v.insert(cache_key, user.role);
        }
        Some(Identity { name: user.name, role: user.role, development: false })
    }

    /// Checks an API key `name/secret`, in constant time over the secret.
    #[must_use]
    pub fn verify_api_key(&self, token: &str) -> Option<Identity> {
        let (name, secret) = token.split_once('/')?;
        let raw = self.system.store().internal().get(api_key_key(name)).ok()??;
        let stored: StoredKey = serde_json::from_slice(&raw).ok()?;
        let actual = hex::encode(Sha256::digest(secret.as_bytes()));
        if bool::from(actual.as_bytes().ct_eq(stored.secret_sha256.as_bytes())) {
            Some(Identity { name: stored.name, role: stored.role, development: false })
        } else {
            None
        }
    }

    fn read<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, AuthError> {
        match self.system.store().internal().get(key).map_err(StorageError::from)? {
            None => Ok(None),
            Some(raw) => serde_json::from_slice(&raw).map(Some).map_err(|e| StorageError::Corrupt(format!("{key}: {e}")).into()),
        }
    }

    fn users(&self) -> Vec<StoredUser> {
        self.list(USER_PREFIX)
    }

    fn keys(&self) -> Vec<StoredKey> {
        self.list(KEY_PREFIX)
    }

    fn list<T: serde::de::DeserializeOwned>(&self, prefix: &str) -> Vec<T> {
        self.system
            .store()
            .internal()
            .prefix(prefix)
            .filter_map(|g| g.value().ok())
            .filter_map(|v| serde_json::from_slice(&v).ok())
            .collect()
    }

    fn write(&self, key: &str, value: &impl Serialize) -> Result<(), AuthError> {
        let raw = serde_json::to_vec(value).map_err(|e| AuthError::Invalid(e.to_string()))?;
        self.system.store().internal().insert(key, raw).map_err(StorageError::from)?;
        self.system.store().persist()?;
        self.close_if_protected();
        Ok(())
    }

    fn remove(&self, key: &str) -> Result<(), AuthError> {
        if self.system.store().internal().get(key).map_err(StorageError::from)?.is_none() {
            return Err(AuthError::NotFound);
        }
        self.system.store().internal().remove(key).map_err(StorageError::from)?;
        self.system.store().persist()?;
        Ok(())
    }

    fn forget_verified(&self) {
        if let Ok(mut v) = self.verified.write() {
            v.clear();
        }
    }
}

/// Holding the credentials' change lock; dropping it moves the generation.
struct ChangeGuard<'a> {
    _guard: std::sync::MutexGuard<'a, ()>,
    generation: &'a std::sync::atomic::AtomicU64,
}

impl Drop for ChangeGuard<'_> {
    fn drop(&mut self) {
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Where a user is stored.
fn user_key(name: &str) -> String {
    format!("{USER_PREFIX}{}", name.to_ascii_lowercase())
}

/// Where an API key is stored.
fn api_key_key(name: &str) -> String {
    format!("{KEY_PREFIX}{}", name.to_ascii_lowercase())
}

/// Argon2 hashes computed at once, server-wide.
pub const MAX_CONCURRENT_HASHES: usize = 2;

/// A counting semaphore for blocking threads.
#[derive(Debug)]
struct HashPermits {
    free: std::sync::Mutex<usize>,
    freed: std::sync::Condvar,
}

struct HashPermit<'a>(&'a HashPermits);

impl HashPermits {
    fn new(n: usize) -> Self {
        Self { free: std::sync::Mutex::new(n), freed: std::sync::Condvar::new() }
    }

    fn acquire(&self) -> HashPermit<'_> {
        let mut free = self.free.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        *free -= 1;
        HashPermit(self)
    }
}

impl Drop for HashPermit<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
        self.0.freed.notify_one();
    }
}

/// User and key names: the database-name alphabet.
fn validate_principal(name: &str) -> Result<(), AuthError> {
    if rookery_types::is_valid_database_name(name) {
        Ok(())
    } else {
        Err(AuthError::Invalid(format!("'{}' is not a valid name: use 1 to 64 of A-Z a-z 0-9 _ . -", name.escape_debug())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Catalog, Durability};

    fn auth() -> (tempfile::TempDir, Authenticator) {
        let dir = tempfile::tempdir().expect("tempdir");
        let catalog =
            Catalog::open(dir.path(), Durability::Os, crate::crypto::MasterKeySource::new(dir.path().join("master.key"))).expect("opens");
        (dir, Authenticator::new(catalog.system(), 20))
    }

    #[test]
    fn users_and_keys() {
        let (_d, auth) = auth();
        assert!(auth.is_open());
        // The first credential must be an administrator.
        assert!(matches!(auth.put_user("ann", "s3cret", Role::ReadOnly), Err(AuthError::Invalid(_))));
        assert!(auth.is_open());
        assert!(auth.put_user("root", "r00t", Role::Admin).expect("creates"));
        assert!(!auth.is_open());
        assert!(auth.has_admin());
        assert!(auth.put_user("ann", "s3cret", Role::ReadOnly).expect("creates"));
        assert_eq!(auth.verify_password("ann", "s3cret").map(|i| i.role), Some(Role::ReadOnly));
        assert_eq!(auth.verify_password("ANN", "s3cret").map(|i| i.role), Some(Role::ReadOnly), "cached and case-insensitive");
        assert!(auth.verify_password("ann", "wrong").is_none());
        assert!(auth.verify_password("bob", "s3cret").is_none());
        // Changing the password invalidates the cache.
        auth.put_user("ann", "new", Role::Admin).expect("replaces");
        assert!(auth.verify_password("ann", "s3cret").is_none());
        // The last administrator stays: neither deleted nor downgraded.
        auth.delete_user("root").expect("another admin exists");
        assert!(matches!(auth.delete_user("ann"), Err(AuthError::LastAdministrator(_))));
        assert!(matches!(auth.put_user("ann", "new", Role::ReadWrite), Err(AuthError::LastAdministrator(_))));
        assert!(!auth.is_open());

        let token = auth.create_api_key("ci", Role::ReadWrite).expect("creates");
        assert!(token.starts_with("ci/") && token.len() > 40);
        assert_eq!(auth.verify_api_key(&token).map(|i| i.role), Some(Role::ReadWrite));
        assert!(auth.verify_api_key("ci/wrong").is_none());
        assert!(matches!(auth.create_api_key("ci", Role::Admin), Err(AuthError::KeyExists(_))));
        auth.delete_api_key("ci").expect("deletes");
        assert!(auth.verify_api_key(&token).is_none());
        assert!(matches!(auth.delete_api_key("ci"), Err(AuthError::NotFound)));
        assert!(matches!(auth.put_user("a/b", "x", Role::Admin), Err(AuthError::Invalid(_))));
        // The hash is stored, not the password.
        let raw = auth.system.store().internal().get("auth/users/ann").expect("get").expect("stored");
        let text = String::from_utf8_lossy(&raw);
        assert!(text.contains("$argon2id$") && !text.contains("\"new\""));
    }
}
