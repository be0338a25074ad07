//! Who a request is from: a user, an API key, or (on a server with no
//! credential yet) development mode.

use rookery_types::Role;

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub role: Role,
    /// The server runs open (no credentials exist); everyone is an administrator.
    pub development: bool,
}
