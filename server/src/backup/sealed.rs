//! Encrypted backup sets: every data file is cut into chunks sealed with
//! XChaCha20-Poly1305 under the set key, so a set is safe to store anywhere.
//!
//! A sealed file is a sequence of frames `[last u8][len u32 LE][nonce || ciphertext]`.
//! Each chunk's associated data binds it to its set id and file name, its
//! index and whether it is the last one, so chunks cannot be reordered, moved
//! between files or sets, or dropped from the end without the open failing.
//! The manifest carries a MAC under the set key, so its counts, etags, links
//! and file hashes cannot be changed either. Checksums are of the sealed
//! bytes: a set verifies without its key.
//!
//! The set key is a raw 256-bit key (`BackupEncryptionKey`) or derived from a
//! passphrase with argon2id; the salt and parameters are in the manifest.

use std::io::{self, Read, Write};

use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use rand_core::{OsRng, RngCore};
use serde_json::{json, Value};

use crate::crypto::Key;

/// Plain bytes per chunk.
pub const CHUNK_BYTES: usize = 256 * 1024;
const ARGON_MEMORY_KIB: u32 = 19 * 1024;
const ARGON_ITERATIONS: u32 = 2;
const ARGON_PARALLELISM: u32 = 1;

/// How a set key is given.
#[derive(Debug, Clone)]
pub enum SetSecret {
    /// Base64 of 32 bytes.
    Key(String),
    Passphrase(String),
}

impl SetSecret {
    /// The secret of a request's `BackupEncryptionKey` / `BackupPassphrase` (at most one).
    ///
    /// # Errors
    /// Both were given.
    pub fn from_request(key: Option<&String>, passphrase: Option<&String>) -> Result<Option<Self>, String> {
        match (key, passphrase) {
            (Some(_), Some(_)) => Err("Give BackupEncryptionKey or BackupPassphrase, not both.".into()),
            (Some(k), None) => Ok(Some(Self::Key(k.clone()))),
            (None, Some(p)) => Ok(Some(Self::Passphrase(p.clone()))),
            (None, None) => Ok(None),
        }
    }
}

/// A set key and its manifest description (no secret in it).
#[derive(Debug, Clone)]
pub struct SetKey {
    pub key: Key,
    pub description: Value,
}

impl SetKey {
    /// A key for a new set.
    ///
    /// # Errors
    /// A raw key that is not base64 of 32 bytes; an empty passphrase.
    pub fn for_new_set(secret: &SetSecret) -> Result<Self, String> {
        let (key, kdf) = match secret {
            SetSecret::Key(text) => (Key::from_base64(text).map_err(|e| format!("BackupEncryptionKey: {e}"))?, json!({"Name": "Raw"})),
            SetSecret::Passphrase(p) => {
                let mut salt = [0u8; 16];
                OsRng.fill_bytes(&mut salt);
                let kdf = json!({
                    "Name": "Argon2id",
                    "Salt": base64::engine::general_purpose::STANDARD.encode(salt),
                    "MemoryKiB": ARGON_MEMORY_KIB,
                    "Iterations": ARGON_ITERATIONS,
                    "Parallelism": ARGON_PARALLELISM,
                });
                (derive(p, &kdf)?, kdf)
            }
        };
        let description = json!({"Algorithm": "XChaCha20-Poly1305", "ChunkBytes": CHUNK_BYTES, "Kdf": kdf, "KeyCheck": key.check()});
        Ok(Self { key, description })
    }

    /// The key of an existing set from what the restore request gives.
    ///
    /// # Errors
    /// `Ok(None)`-free: a message when the secret does not fit the set
    /// (wrong kind, malformed) or does not match its key check.
    pub fn for_existing_set(description: &Value, secret: &SetSecret) -> Result<Key, String> {
        let kdf = description.get("Kdf").cloned().unwrap_or(Value::Null);
        let key = match (kdf.get("Name").and_then(Value::as_str), secret) {
            (Some("Raw"), SetSecret::Key(text)) => Key::from_base64(text).map_err(|e| format!("BackupEncryptionKey: {e}"))?,
            (Some("Argon2id"), SetSecret::Passphrase(p)) => derive(p, &kdf)?,
            (Some("Raw"), SetSecret::Passphrase(_)) => {
                return Err("this set was encrypted with a key (BackupEncryptionKey), not a passphrase".into())
            }
            (Some("Argon2id"), SetSecret::Key(_)) => {
                return Err("this set was encrypted with a passphrase (BackupPassphrase), not a key".into())
            }
            _ => return Err("the set's key derivation is not one this server knows".into()),
        };
        if description.get("KeyCheck").and_then(Value::as_str) != Some(key.check().as_str()) {
            return Err("this is not the key of the backup set".into());
        }
        Ok(key)
    }
}

fn derive(passphrase: &str, kdf: &Value) -> Result<Key, String> {
    if passphrase.is_empty() {
        return Err("a passphrase must not be empty".into());
    }
    let number = |name: &str| {
        kdf.get(name).and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok()).ok_or_else(|| format!("the set's Kdf lacks {name}"))
    };
    let salt = kdf
        .get("Salt")
        .and_then(Value::as_str)
        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        .ok_or("the set's Kdf lacks its Salt")?;
    check_description(&json!({"Kdf": kdf}))?;
    let params = Params::new(number("MemoryKiB")?, number("Iterations")?, number("Parallelism")?, Some(32)).map_err(|e| e.to_string())?;
    let mut out = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), &salt, &mut out)
        .map_err(|e| e.to_string())?;
    Key::from_base64(&base64::engine::general_purpose::STANDARD.encode(out)).map_err(|e| e.to_string())
}

/// The name a chunk is bound to: from format version 2 on, the set id and
/// the file name, so that a file moved from another set under the same key
/// is refused as tampering; version 1 sets bound the file name only.
#[must_use]
pub fn chunk_file_id(format_version: u32, set_id: &str, name: &str) -> String {
    if format_version >= 2 {
        // The NUL bytes keep it apart from any version 1 binding: a file name
        // can never hold one, so no version 1 manifest can name a file whose
        // binding is a version 2 chunk's.
        format!("\0v2\0{set_id}\0{name}")
    } else {
        name.to_string()
    }
}

/// Associated data of a manifest's MAC.
const MANIFEST_MAC_AAD: &[u8] = b"rookery-manifest-mac-v2";

/// A MAC of a manifest's canonical bytes under the set key (base64): the
/// SHA-256 of the bytes, sealed. Any change to the manifest (counts, etags,
/// links, file hashes) is then tampering for a reader with the key.
#[must_use]
pub fn manifest_mac(key: &Key, canonical: &[u8]) -> String {
    let digest = <sha2::Sha256 as sha2::Digest>::digest(canonical);
    base64::engine::general_purpose::STANDARD.encode(key.seal(MANIFEST_MAC_AAD, &digest))
}

/// Checks [`manifest_mac`].
///
/// # Errors
/// A message when the MAC does not match (or is malformed).
pub fn check_manifest_mac(key: &Key, canonical: &[u8], mac: &str) -> Result<(), String> {
    let raw = base64::engine::general_purpose::STANDARD.decode(mac).map_err(|_| "the manifest's Mac is not base64".to_string())?;
    let opened = key
        .open(MANIFEST_MAC_AAD, &raw)
        .map_err(|_| "the manifest was changed after it was written (its Mac does not match)".to_string())?;
    let digest = <sha2::Sha256 as sha2::Digest>::digest(canonical);
    if opened.as_slice() != digest.as_slice() {
        return Err("the manifest was changed after it was written (its Mac does not match)".into());
    }
    Ok(())
}

/// Upper bounds on a passphrase set's key derivation, so that a hostile
/// manifest cannot make a restore allocate or compute without bound.
pub const MAX_KDF_MEMORY_KIB: u64 = 1024 * 1024;
pub const MAX_KDF_ITERATIONS: u64 = 64;
pub const MAX_KDF_PARALLELISM: u64 = 16;

/// Checks a manifest's set-encryption description without the key:
/// algorithm known, KDF parameters within bounds.
///
/// # Errors
/// Why the description is refused.
pub fn check_description(description: &Value) -> Result<(), String> {
    let kdf = description.get("Kdf").ok_or("the set's encryption has no Kdf")?;
    match kdf.get("Name").and_then(Value::as_str) {
        Some("Raw") => Ok(()),
        Some("Argon2id") => {
            for (name, max) in [("MemoryKiB", MAX_KDF_MEMORY_KIB), ("Iterations", MAX_KDF_ITERATIONS), ("Parallelism", MAX_KDF_PARALLELISM)]
            {
                match kdf.get(name).and_then(Value::as_u64) {
                    Some(n) if (1..=max).contains(&n) => {}
                    _ => return Err(format!("the set's Kdf {name} is missing or outside 1..={max}")),
                }
            }
            Ok(())
        }
        _ => Err("the set's key derivation is not one this server knows".into()),
    }
}

fn chunk_aad(file: &str, index: u64, last: bool) -> Vec<u8> {
    let mut aad = b"rookery-set-chunk-v1/".to_vec();
    aad.extend_from_slice(file.as_bytes());
    aad.push(0);
    aad.extend_from_slice(&index.to_le_bytes());
    aad.push(u8::from(last));
    aad
}

/// Seals what is written into chunks.
pub struct ChunkSealer<W: Write> {
    inner: W,
    key: Key,
    file: String,
    buffer: Vec<u8>,
    index: u64,
}

impl<W: Write> ChunkSealer<W> {
    /// Seals into `inner` the data file `file`.
    pub fn new(inner: W, key: Key, file: &str) -> Self {
        Self { inner, key, file: file.to_string(), buffer: Vec::with_capacity(CHUNK_BYTES), index: 0 }
    }

    fn emit(&mut self, last: bool) -> io::Result<()> {
        let sealed = self.key.seal(&chunk_aad(&self.file, self.index, last), &self.buffer);
        let len = u32::try_from(sealed.len()).map_err(|_| io::Error::other("chunk too large"))?;
        self.inner.write_all(&[u8::from(last)])?;
        self.inner.write_all(&len.to_le_bytes())?;
        self.inner.write_all(&sealed)?;
        self.buffer.clear();
        self.index += 1;
        Ok(())
    }

    /// Seals the last chunk and returns the inner writer.
    ///
    /// # Errors
    /// I/O errors.
    pub fn finish(mut self) -> io::Result<W> {
        self.emit(true)?;
        Ok(self.inner)
    }

    /// The inner writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }
}

impl<W: Write> Write for ChunkSealer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = CHUNK_BYTES - self.buffer.len();
        let n = room.min(buf.len());
        self.buffer.extend_from_slice(&buf[..n]);
        if self.buffer.len() == CHUNK_BYTES {
            self.emit(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Opens what a [`ChunkSealer`] wrote; any change is an `InvalidData` error
/// ("tampered"), and so is a file cut at a chunk boundary.
pub struct ChunkOpener<R: Read> {
    inner: R,
    key: Key,
    file: String,
    plain: Vec<u8>,
    offset: usize,
    index: u64,
    done: bool,
}

impl<R: Read> ChunkOpener<R> {
    /// Opens the data file `file` read from `inner`.
    pub fn new(inner: R, key: Key, file: &str) -> Self {
        Self { inner, key, file: file.to_string(), plain: Vec::new(), offset: 0, index: 0, done: false }
    }

    /// The inner reader.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn next_chunk(&mut self) -> io::Result<()> {
        let tampered =
            |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("an encrypted chunk was tampered with or is missing ({what})"));
        let mut head = [0u8; 5];
        if let Err(e) = self.inner.read_exact(&mut head) {
            return Err(if e.kind() == io::ErrorKind::UnexpectedEof { tampered("the file ends before its last chunk") } else { e });
        }
        let last = head[0] == 1;
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if len > CHUNK_BYTES + 64 {
            return Err(tampered("a chunk longer than any sealed chunk"));
        }
        let mut sealed = vec![0u8; len];
        self.inner.read_exact(&mut sealed).map_err(|_| tampered("a chunk cut short"))?;
        self.plain =
            self.key.open(&chunk_aad(&self.file, self.index, last), &sealed).map_err(|_| tampered(&format!("chunk {}", self.index)))?;
        self.offset = 0;
        self.index += 1;
        self.done = last;
        Ok(())
    }
}

impl<R: Read> Read for ChunkOpener<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.offset == self.plain.len() {
            if self.done {
                return Ok(0);
            }
            self.next_chunk()?;
        }
        let n = buf.len().min(self.plain.len() - self.offset);
        buf[..n].copy_from_slice(&self.plain[self.offset..self.offset + n]);
        self.offset += n;
        Ok(n)
    }
}

/// The plaintext bytes `offset..offset + len` of a sealed file of `size`
/// bytes, read through `read(disk_offset, disk_len)` and opening only the
/// chunks that cover them (every full chunk has the same size on disk).
///
/// # Errors
/// I/O errors; `InvalidData` for a chunk that does not open.
pub fn read_sealed_range(
    read: &dyn Fn(u64, u64) -> io::Result<Vec<u8>>,
    size: u64,
    key: &Key,
    file: &str,
    offset: u64,
    len: u64,
) -> io::Result<Vec<u8>> {
    if len == 0 {
        return Ok(Vec::new());
    }
    let chunk = CHUNK_BYTES as u64;
    let stride = chunk + 5 + key.seal(b"", b"").len() as u64;
    let (first, last) = (offset / chunk, (offset + len - 1) / chunk);
    let start = first * stride;
    let end = ((last + 1) * stride).min(size);
    if end <= start {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "a range beyond the end of a sealed file"));
    }
    let bytes = read(start, end - start)?;
    let mut opener = ChunkOpener {
        inner: &bytes[..],
        key: key.clone(),
        file: file.to_string(),
        plain: Vec::new(),
        offset: 0,
        index: first,
        done: false,
    };
    let mut plain = Vec::with_capacity(usize::try_from((last - first + 1) * chunk).unwrap_or(0));
    for _ in first..=last {
        if opener.done {
            break;
        }
        opener.next_chunk()?;
        plain.extend_from_slice(&opener.plain);
    }
    let skip = usize::try_from(offset - first * chunk).unwrap_or(usize::MAX);
    let want = usize::try_from(len).unwrap_or(usize::MAX);
    plain
        .get(skip..skip.saturating_add(want))
        .map(<[u8]>::to_vec)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "a range beyond the end of a sealed file"))
}

/// Associated data of a database key sealed with a set key.
pub const SEALED_DATABASE_KEY_AAD: &[u8] = b"rookery-database-key-in-set-v1";

#[cfg(test)]
mod tests {
    use super::*;

    fn seal(key: &Key, data: &[u8]) -> Vec<u8> {
        let mut s = ChunkSealer::new(Vec::new(), key.clone(), "documents-0001.zst");
        s.write_all(data).expect("writes");
        s.finish().expect("finishes")
    }

    fn open(key: &Key, sealed: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        ChunkOpener::new(sealed, key.clone(), "documents-0001.zst").read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn round_trip_over_several_chunks_and_tampering() {
        let key = Key::random();
        let data: Vec<u8> = (0..(CHUNK_BYTES * 2 + 1000)).map(|i| (i % 251) as u8).collect();
        let sealed = seal(&key, &data);
        assert_eq!(open(&key, &sealed).expect("opens"), data);
        let mut flipped = sealed.clone();
        flipped[100] ^= 1;
        assert!(open(&key, &flipped).is_err());
        // Cut after the first chunk: missing last chunk.
        let first_len = 5 + u32::from_le_bytes([sealed[1], sealed[2], sealed[3], sealed[4]]) as usize;
        assert!(open(&key, &sealed[..first_len]).is_err());
        assert!(open(&Key::random(), &sealed).is_err());
        // Another file name: refused.
        let mut out = Vec::new();
        assert!(ChunkOpener::new(&sealed[..], key.clone(), "other.zst").read_to_end(&mut out).is_err());
        // Empty data still has its last chunk.
        assert_eq!(open(&key, &seal(&key, b"")).expect("opens"), b"");
    }

    #[test]
    fn a_range_opens_only_its_chunks() {
        let key = Key::random();
        let data: Vec<u8> = (0..(CHUNK_BYTES * 3 + 777)).map(|i| (i % 251) as u8).collect();
        let sealed = seal(&key, &data);
        let read = |o: u64, l: u64| Ok(sealed[o as usize..(o + l) as usize].to_vec());
        for (o, l) in [(0, 10), (CHUNK_BYTES - 5, 10), (CHUNK_BYTES * 3 + 700, 77), (12_345, CHUNK_BYTES * 2)] {
            let got = read_sealed_range(&read, sealed.len() as u64, &key, "documents-0001.zst", o as u64, l as u64).expect("opens");
            assert_eq!(got, data[o..o + l]);
        }
        assert!(read_sealed_range(&read, sealed.len() as u64, &key, "other", 0, 10).is_err());
        assert!(read_sealed_range(&read, sealed.len() as u64, &key, "documents-0001.zst", data.len() as u64, 10).is_err());
    }

    #[test]
    fn passphrases_derive_the_same_key_from_the_manifest() {
        let new = SetKey::for_new_set(&SetSecret::Passphrase("correct horse".into())).expect("derives");
        let again = SetKey::for_existing_set(&new.description, &SetSecret::Passphrase("correct horse".into())).expect("matches");
        assert_eq!(again.check(), new.key.check());
        assert!(SetKey::for_existing_set(&new.description, &SetSecret::Passphrase("wrong".into())).is_err());
        assert!(SetKey::for_existing_set(&new.description, &SetSecret::Key(Key::random().to_base64())).is_err());
        assert!(!new.description.to_string().contains("correct horse"));
        let raw = Key::random();
        let set = SetKey::for_new_set(&SetSecret::Key(raw.to_base64())).expect("raw");
        assert!(SetKey::for_existing_set(&set.description, &SetSecret::Key(raw.to_base64())).is_ok());
    }
}
