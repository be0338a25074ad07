//! Authentication at the HTTP boundary: the middleware that every request
//! passes, the credential management routes, and the studio's sign-in.

use rookery_types::ErrorCode;
use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::body::json_request;
use super::error::ApiError;
use super::extract::{blocking, AppState};
use crate::auth::sessions::{cookie, CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE};
use crate::auth::{required_access, Access, AuthError, Identity, Role};
use rookery_types::{ApiKeyCreated, CreateApiKeyRequest, ErrorBody, LoginRequest, Me, PutUserRequest};

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Invalid(m) => ApiError::new(ErrorCode::InvalidRequest, m),
            AuthError::NotFound => ApiError::not_found("No such user or key."),
            AuthError::KeyExists(_) => ApiError::new(ErrorCode::ApiKeyExists, e.to_string()),
            AuthError::LastAdministrator(_) => ApiError::new(ErrorCode::LastAdministrator, e.to_string()),
            AuthError::Storage(s) => s.into(),
        }
    }
}

fn unauthorized() -> ApiError {
    ApiError::new(
        ErrorCode::Unauthorized,
        "Credentials are required: HTTP Basic (user:password) or 'Authorization: ApiKey name/secret', or sign in to the studio.",
    )
}

/// The client's address. Requests without one (in-process calls that carry
/// no browser address) share the unspecified address, so that their failed
/// credentials are limited too.
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        Ok(Self(ip.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))))
    }
}

enum Presented {
    Nothing,
    Valid(Identity, Option<String>),
    Invalid,
}

/// Reads the credentials of a request: `Authorization` (Basic or ApiKey),
/// else the studio's session cookie (with its CSRF token). A password not
/// verified before is hashed on a blocking thread, never on an async worker.
async fn presented(state: &AppState, headers: &HeaderMap) -> Presented {
    let auth = state.auth();
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let Ok(text) = value.to_str() else { return Presented::Invalid };
        let identity = if let Some(token) = text.strip_prefix("ApiKey ") {
            auth.verify_api_key(token.trim())
        } else if text.starts_with("Basic ") {
            match basic_credentials(headers) {
                None => None,
                Some((user, password)) => match auth.cached_password(&user, &password) {
                    Some(identity) => Some(identity),
                    None => {
                        let state = state.clone();
                        tokio::task::spawn_blocking(move || state.auth().verify_password(&user, &password)).await.ok().flatten()
                    }
                },
            }
        } else {
            None
        };
        return identity.map_or(Presented::Invalid, |i| Presented::Valid(i, None));
    }
    let cookies = headers.get(header::COOKIE).and_then(|v| v.to_str().ok()).unwrap_or("");
    match cookie(cookies, SESSION_COOKIE) {
        // An unknown session (ended, or from before a restart) is no guess: a
        // session token has 256 random bits. It does not count as a failure.
        Some(token) => {
            auth.sessions.get(token).map_or(Presented::Nothing, |session| Presented::Valid(session.identity, Some(session.csrf)))
        }
        None => Presented::Nothing,
    }
}

fn too_many_attempts() -> ApiError {
    ApiError::new(ErrorCode::TooManyAttempts, "Too many failed sign-ins from this address; wait a minute.")
}

/// Checks the credentials of a request from `ip`: refused while the address
/// is blocked, and every failure counts (a success does not wipe the count,
/// so valid credentials cannot launder guesses at others).
async fn check_credentials(state: &AppState, ip: IpAddr, headers: &HeaderMap) -> Result<Presented, ApiError> {
    let limiter = &state.auth().limiter;
    if limiter.is_blocked(ip) {
        return Err(too_many_attempts());
    }
    // A password not verified before costs a hash: it counts before it is
    // checked, so guesses sent at once are limited as they start.
    let expensive = uncached_password(state, headers);
    if expensive && !limiter.attempt(ip) {
        return Err(too_many_attempts());
    }
    let presented = presented(state, headers).await;
    match presented {
        Presented::Invalid if !expensive => limiter.fail(ip),
        Presented::Valid(..) if expensive => limiter.forgive(ip),
        _ => {}
    }
    Ok(presented)
}

/// Whether the request carries a Basic password that is not in the cache.
fn uncached_password(state: &AppState, headers: &HeaderMap) -> bool {
    basic_credentials(headers).is_some_and(|(user, password)| state.auth().cached_password(&user, &password).is_none())
}

/// The user name and password of an `Authorization: Basic` header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    use base64::Engine as _;
    let basic = headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Basic ")?;
    let pair = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(basic.trim()).ok()?).ok()?;
    pair.split_once(':').map(|(u, p)| (u.to_string(), p.to_string()))
}

/// The middleware: 401 without valid credentials where they are needed, 403
/// for a role that may not, 429 after too many failures from one address,
/// 403 `CsrfTokenMissing` for a session's state-changing request without its token.
pub async fn authorize(State(state): State<AppState>, ClientIp(ip): ClientIp, mut request: Request, next: Next) -> Response {
    let access = required_access(request.method().as_str(), request.uri().path());
    if access == Access::Public {
        return next.run(request).await;
    }
    let auth = state.auth();
    if auth.is_open() {
        request.extensions_mut().insert(Identity { name: "development".into(), role: Role::Admin, development: true });
        return next.run(request).await;
    }
    let (identity, csrf) = match check_credentials(&state, ip, request.headers()).await {
        Err(e) => return e.into_response(),
        Ok(Presented::Valid(identity, csrf)) => (identity, csrf),
        Ok(Presented::Invalid | Presented::Nothing) => return unauthorized().into_response(),
    };
    if let Some(expected) = csrf {
        let safe = matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        let sent = request.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        if !safe && sent != Some(expected.as_str()) {
            return ApiError::new(ErrorCode::CsrfTokenMissing, "This request needs the X-CSRF-Token header of the session.")
                .into_response();
        }
    }
    if !access.allows(identity.role) {
        let needs = match access {
            Access::Role(role) => format!("{role:?}"),
            _ => "Admin or Monitor".to_string(),
        };
        return ApiError::new(ErrorCode::Forbidden, format!("'{}' has the {:?} role; this needs {needs}.", identity.name, identity.role))
            .into_response();
    }
    request.extensions_mut().insert(identity);
    next.run(request).await
}

/// Creates or replaces a user.
#[utoipa::path(
    put,
    path = "/admin/users/{name}",
    tag = "auth",
    params(("name" = String, Path)),
    request_body = PutUserRequest,
    responses((status = 201, description = "Created"), (status = 200, description = "Replaced"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody))
)]
pub async fn put_user(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let request: PutUserRequest = json_request(body)?;
    blocking(move || {
        let created = state.auth().put_user(&name, &request.password, request.role)?;
        Ok(if created { StatusCode::CREATED } else { StatusCode::OK })
    })
    .await
}

/// Deletes a user.
#[utoipa::path(
    delete,
    path = "/admin/users/{name}",
    tag = "auth",
    params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "LastAdministrator"))
)]
pub async fn delete_user(State(state): State<AppState>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    blocking(move || {
        state.auth().delete_user(&name)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

/// Creates an API key; the answer shows its secret once.
#[utoipa::path(
    post,
    path = "/admin/apikeys",
    tag = "auth",
    request_body = CreateApiKeyRequest,
    responses((status = 201, body = ApiKeyCreated), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody, description = "ApiKeyExists"))
)]
pub async fn create_api_key(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ApiKeyCreated>), ApiError> {
    let request: CreateApiKeyRequest = json_request(body)?;
    blocking(move || {
        let api_key = state.auth().create_api_key(&request.name, request.role)?;
        Ok((StatusCode::CREATED, Json(ApiKeyCreated { api_key })))
    })
    .await
}

/// Deletes an API key.
#[utoipa::path(
    delete,
    path = "/admin/apikeys/{name}",
    tag = "auth",
    params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "LastAdministrator"))
)]
pub async fn delete_api_key(State(state): State<AppState>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    blocking(move || {
        state.auth().delete_api_key(&name)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

fn me(identity: Option<&Identity>, development: bool) -> Me {
    Me {
        authenticated: identity.is_some(),
        name: identity.map(|i| i.name.clone()),
        role: identity.map(|i| i.role),
        development_mode: development,
    }
}

/// Who this request is from. Its credential check counts toward the
/// failed-authentication limit like any other.
#[utoipa::path(
    get,
    path = "/auth/me",
    tag = "auth",
    responses((status = 200, body = Me), (status = 429, body = ErrorBody, description = "TooManyAttempts"))
)]
pub async fn whoami(State(state): State<AppState>, ClientIp(ip): ClientIp, headers: HeaderMap) -> Result<Json<Me>, ApiError> {
    if state.auth().is_open() {
        let identity = Identity { name: "development".into(), role: Role::Admin, development: true };
        return Ok(Json(me(Some(&identity), true)));
    }
    let identity = match check_credentials(&state, ip, &headers).await? {
        Presented::Valid(identity, _) => Some(identity),
        Presented::Invalid | Presented::Nothing => None,
    };
    Ok(Json(me(identity.as_ref(), false)))
}

/// The studio's sign-in: sets the session and CSRF cookies.
#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses((status = 200, body = Me), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody))
)]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: LoginRequest = json_request(body)?;
    // Counted before the hash, given back on success (see check_credentials).
    if !state.auth().limiter.attempt(ip) {
        return Err(too_many_attempts());
    }
    let generation = state.auth().generation();
    let auth_state = state.clone();
    let identity = blocking(move || Ok(auth_state.auth().verify_password(&request.username, &request.password))).await?;
    let Some(identity) = identity else {
        return Err(ApiError::new(ErrorCode::Unauthorized, "Wrong user name or password."));
    };
    state.auth().limiter.forgive(ip);
    // The user changed while the password was checked: sign in again.
    if state.auth().generation() != generation {
        return Err(ApiError::new(ErrorCode::Unauthorized, "The user changed meanwhile; sign in again."));
    }
    let (token, csrf) = state.auth().sessions.create(identity.clone());
    let secure = headers.get("x-forwarded-proto").is_some_and(|v| v.as_bytes() == b"https");
    let secure = if secure { "; Secure" } else { "" };
    let mut response = Json(me(Some(&identity), false)).into_response();
    let cookies = [
        format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}"),
        format!("{CSRF_COOKIE}={csrf}; Path=/; SameSite=Strict{secure}"),
    ];
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(response)
}

/// Signs out of the studio.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", responses((status = 204)))]
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let cookies = headers.get(header::COOKIE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if let Some(token) = cookie(cookies, SESSION_COOKIE) {
        state.auth().sessions.remove(token);
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    for name in [SESSION_COOKIE, CSRF_COOKIE] {
        if let Ok(v) = HeaderValue::from_str(&format!("{name}=; Path=/; Max-Age=0; SameSite=Strict")) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}
