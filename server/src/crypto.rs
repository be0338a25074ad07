//! Encryption at rest: XChaCha20-Poly1305 with a random 256-bit key per
//! database, a random 192-bit nonce per write and the document id as
//! associated data (a body moved to another id does not decrypt). Database
//! keys are wrapped by the server's master key, kept outside the data
//! directory (a file created with mode 0600, or `ROOKERY_MASTER_KEY`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};

const NONCE_LEN: usize = 24;
const WRAP_AAD: &[u8] = b"rookery-database-key-v1";

/// What can go wrong with keys.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("{0}")]
    InvalidKey(String),
    #[error("decryption failed: wrong key or tampered data")]
    Tampered,
    #[error("master key file '{path}': {error}")]
    MasterKeyFile { path: PathBuf, error: String },
}

/// A 256-bit key (a database key or the master key).
#[derive(Clone)]
pub struct Key([u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// A new random key.
    #[must_use]
    pub fn random() -> Self {
        let mut k = [0u8; 32];
        OsRng.fill_bytes(&mut k);
        Self(k)
    }

    /// Parses base64 of 32 bytes.
    ///
    /// # Errors
    /// `InvalidKey` when it is not base64 of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| CryptoError::InvalidKey("a key must be base64 of 32 bytes".into()))?;
        let bytes: [u8; 32] = raw.try_into().map_err(|_| CryptoError::InvalidKey("a key must be base64 of 32 bytes".into()))?;
        Ok(Self(bytes))
    }

    /// Base64 of the key.
    #[must_use]
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }

    /// A value that identifies the key without revealing it, stored beside
    /// data so that a wrong key is detected before anything is written.
    #[must_use]
    pub fn check(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"rookery-key-check-v1");
        h.update(self.0);
        hex::encode(h.finalize())
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&self.0).into())
    }

    /// `nonce || ciphertext` of `plaintext`, bound to `aad`.
    #[must_use]
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let mut out = nonce.to_vec();
        // Encryption with a valid key and nonce cannot fail.
        let sealed = self.cipher().encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad }).unwrap_or_default();
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens what [`Key::seal`] made.
    ///
    /// # Errors
    /// `Tampered` for a wrong key, a wrong `aad` or changed bytes.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < NONCE_LEN {
            return Err(CryptoError::Tampered);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        self.cipher().decrypt(XNonce::from_slice(nonce), Payload { msg: body, aad }).map_err(|_| CryptoError::Tampered)
    }

    /// Wraps a database key with this (master) key.
    #[must_use]
    pub fn wrap(&self, database_key: &Key) -> Vec<u8> {
        self.seal(WRAP_AAD, &database_key.0)
    }

    /// Unwraps a database key.
    ///
    /// # Errors
    /// `Tampered` when this is not the key that wrapped it.
    pub fn unwrap_key(&self, wrapped: &[u8]) -> Result<Key, CryptoError> {
        let raw = self.open(WRAP_AAD, wrapped)?;
        Ok(Key(raw.try_into().map_err(|_| CryptoError::Tampered)?))
    }
}

/// Where the master key comes from: `ROOKERY_MASTER_KEY`, else a file that is
/// created (mode 0600) the first time an encrypted database needs it.
#[derive(Debug)]
pub struct MasterKeySource {
    file: PathBuf,
    from_env: Option<String>,
    loaded: OnceLock<Key>,
}

impl MasterKeySource {
    /// A source reading `file` (and `ROOKERY_MASTER_KEY` first, when set).
    #[must_use]
    pub fn new(file: PathBuf) -> Self {
        Self { file, from_env: std::env::var("ROOKERY_MASTER_KEY").ok().filter(|v| !v.is_empty()), loaded: OnceLock::new() }
    }

    /// The master key; created when `create` and none exists yet.
    ///
    /// # Errors
    /// A malformed key, or a file that cannot be read or created.
    pub fn get(&self, create: bool) -> Result<Option<Key>, CryptoError> {
        if let Some(k) = self.loaded.get() {
            return Ok(Some(k.clone()));
        }
        let key = if let Some(text) = &self.from_env {
            Key::from_base64(text).map_err(|_| CryptoError::InvalidKey("ROOKERY_MASTER_KEY must be base64 of 32 bytes".into()))?
        } else {
            match std::fs::read_to_string(&self.file) {
                Ok(text) => Key::from_base64(&text).map_err(|e| self.file_error(&e.to_string()))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => self.create_file()?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(self.file_error(&e.to_string())),
            }
        };
        Ok(Some(self.loaded.get_or_init(|| key).clone()))
    }

    fn create_file(&self) -> Result<Key, CryptoError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let key = Key::random();
        if let Some(parent) = self.file.parent() {
            std::fs::create_dir_all(parent).map_err(|e| self.file_error(&e.to_string()))?;
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&self.file)
            .map_err(|e| self.file_error(&e.to_string()))?;
        f.write_all(key.to_base64().as_bytes()).and_then(|()| f.sync_all()).map_err(|e| self.file_error(&e.to_string()))?;
        tracing::warn!(file = %self.file.display(), "created the master key file: keep it safe and back it up apart from the data");
        Ok(key)
    }

    fn file_error(&self, error: &str) -> CryptoError {
        CryptoError::MasterKeyFile { path: self.file.clone(), error: error.to_string() }
    }

    /// The file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.file
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_tampering() {
        let k = Key::random();
        let sealed = k.seal(b"users/1", b"{\"secret\":1}");
        assert_eq!(k.open(b"users/1", &sealed).expect("opens"), b"{\"secret\":1}");
        assert!(k.open(b"users/2", &sealed).is_err(), "bound to the id");
        let mut bad = sealed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(k.open(b"users/1", &bad).is_err(), "tampering is detected");
        assert!(Key::random().open(b"users/1", &sealed).is_err(), "another key fails");
        assert_ne!(k.seal(b"a", b"x"), k.seal(b"a", b"x"), "a fresh nonce every time");
    }

    #[test]
    fn wrapping_and_master_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let source = MasterKeySource { file: dir.path().join("keys/master.key"), from_env: None, loaded: OnceLock::new() };
        assert!(source.get(false).expect("reads").is_none());
        let master = source.get(true).expect("creates").expect("a key");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(source.path()).expect("exists").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let db = Key::random();
        let wrapped = master.wrap(&db);
        assert_eq!(master.unwrap_key(&wrapped).expect("unwraps").check(), db.check());
        let again = MasterKeySource { file: source.path().to_path_buf(), from_env: None, loaded: OnceLock::new() };
        assert_eq!(again.get(false).expect("reads").expect("a key").check(), master.check());
        assert!(Key::from_base64("short").is_err());
    }
}
