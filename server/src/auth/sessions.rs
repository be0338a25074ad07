//! Studio sessions: a random token in an HttpOnly, SameSite=Strict cookie,
//! with a CSRF token that every state-changing request must echo in the
//! `X-CSRF-Token` header (the double-submit pattern).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use base64::Engine as _;

use super::identity::Identity;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "rookery_session";
/// The CSRF cookie's name (readable by the studio's script).
pub const CSRF_COOKIE: &str = "rookery_csrf";
/// The header that carries the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lives without use.
pub const SESSION_IDLE: Duration = Duration::from_secs(8 * 3600);

/// One signed-in studio user.
#[derive(Debug, Clone)]
pub struct Session {
    pub identity: Identity,
    pub csrf: String,
    last_used: Instant,
}

/// Sessions in memory (a restart signs everyone out).
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Sessions {
    /// Starts a session; returns `(session token, csrf token)`.
    pub fn create(&self, identity: Identity) -> (String, String) {
        let (token, csrf) = (random_token(), random_token());
        let mut map = self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, s| s.last_used.elapsed() < SESSION_IDLE);
        map.insert(token.clone(), Session { identity, csrf: csrf.clone(), last_used: Instant::now() });
        (token, csrf)
    }

    /// The live session of `token`.
    pub fn get(&self, token: &str) -> Option<Session> {
        let mut map = self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let session = map.get_mut(token)?;
        if session.last_used.elapsed() >= SESSION_IDLE {
            map.remove(token);
            return None;
        }
        session.last_used = Instant::now();
        Some(session.clone())
    }

    /// Ends a session.
    pub fn remove(&self, token: &str) {
        self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(token);
    }

    /// Ends every session of a user (deleted or changed).
    pub fn drop_user(&self, name: &str) {
        self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner).retain(|_, s| !s.identity.name.eq_ignore_ascii_case(name));
    }
}

/// The value of cookie `name` in a `Cookie` header.
#[must_use]
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').map(str::trim).find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then_some(v)
    })
}
