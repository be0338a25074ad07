//! How the studio calls the REST API: the same endpoints as every client.
//!
//! After hydration, in the browser, requests go over HTTP with `gloo-net`.
//! During server-side rendering, the same requests go through the server's
//! REST router in-process (provided as [`SsrApi`] context), so the first
//! render shows exactly what an HTTP client would read.

use serde::de::DeserializeOwned;

pub use rookery_types::{encode_path, encode_query, format_bytes};
use serde::Serialize;

use rookery_types::ErrorBody;

/// A refused or failed request, as the studio shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApiFailure {
    pub status: u16,
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.error)
    }
}

impl ApiFailure {
    fn local(message: impl Into<String>) -> Self {
        Self { status: 0, error: "ClientError".into(), message: message.into() }
    }
}

/// The REST router, for in-process calls during server-side rendering.
#[cfg(feature = "ssr")]
#[derive(Clone)]
pub struct SsrApi(pub axum::Router);

/// HTTP methods the studio uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Put,
    Post,
    Delete,
}

/// `GET` a JSON answer.
pub async fn get_json<T: DeserializeOwned>(path: &str) -> Result<T, ApiFailure> {
    let (status, text) = call(Method::Get, path, None).await?;
    decode(status, &text)
}

/// Sends a JSON body (or none) and decodes a JSON answer (`()` for none).
pub async fn send_json<T: DeserializeOwned, B: Serialize>(method: Method, path: &str, body: Option<&B>) -> Result<T, ApiFailure> {
    let body = match body {
        Some(b) => Some(serde_json::to_string(b).map_err(|e| ApiFailure::local(e.to_string()))?),
        None => None,
    };
    let (status, text) = call(method, path, body).await?;
    decode(status, &text)
}

/// Uploads a file chosen in the browser (`<input type=file id=input_id>`) as the body of a POST.
#[cfg(all(feature = "hydrate", not(feature = "ssr")))]
pub async fn upload_file<T: DeserializeOwned>(path: &str, input_id: &str) -> Result<T, ApiFailure> {
    use wasm_bindgen::JsCast;
    let file = leptos::prelude::document()
        .get_element_by_id(input_id)
        .and_then(|e| e.dyn_into::<web_sys::HtmlInputElement>().ok())
        .and_then(|input| input.files())
        .and_then(|files| files.get(0))
        .ok_or_else(|| ApiFailure::local("Choose a .rookerydump file first."))?;
    let path = path.to_string();
    let result = send_wrapper::SendWrapper::new(async move {
        let mut builder = gloo_net::http::Request::post(&path).header("content-type", "application/octet-stream");
        if let Some(token) = csrf_token() {
            builder = builder.header("X-CSRF-Token", &token);
        }
        let response = builder
            .body(wasm_bindgen::JsValue::from(file))
            .map_err(|e| ApiFailure::local(e.to_string()))?
            .send()
            .await
            .map_err(|e| ApiFailure::local(format!("the upload failed: {e}")))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        Ok::<_, ApiFailure>((status, text))
    })
    .await?;
    decode(result.0, &result.1)
}

/// Uploads happen in the browser only.
#[cfg(not(all(feature = "hydrate", not(feature = "ssr"))))]
pub async fn upload_file<T: DeserializeOwned>(_path: &str, _input_id: &str) -> Result<T, ApiFailure> {
    Err(ApiFailure::local("uploads run in the browser"))
}

/// Sends raw JSON text (the document editor) and decodes the answer.
pub async fn send_text<T: DeserializeOwned>(method: Method, path: &str, body: String) -> Result<T, ApiFailure> {
    let (status, text) = call(method, path, Some(body)).await?;
    decode(status, &text)
}

fn decode<T: DeserializeOwned>(status: u16, text: &str) -> Result<T, ApiFailure> {
    if (200..300).contains(&status) {
        let text = if text.trim().is_empty() { "null" } else { text };
        serde_json::from_str(text).map_err(|e| ApiFailure::local(format!("unexpected answer: {e}")))
    } else {
        match serde_json::from_str::<ErrorBody>(text) {
            Ok(b) => Err(ApiFailure { status, error: b.error, message: b.message }),
            Err(_) => Err(ApiFailure { status, error: "HttpError".into(), message: format!("the server answered {status}") }),
        }
    }
}

async fn call(method: Method, path: &str, body: Option<String>) -> Result<(u16, String), ApiFailure> {
    call_with(method, path, body, Vec::new()).await
}

/// Sends raw JSON text with extra request headers (`If-Match`, `If-None-Match`)
/// and decodes the answer.
pub async fn send_text_with<T: DeserializeOwned>(
    method: Method,
    path: &str,
    body: String,
    headers: Vec<(&'static str, String)>,
) -> Result<T, ApiFailure> {
    let (status, text) = call_with(method, path, Some(body), headers).await?;
    decode(status, &text)
}

#[cfg(feature = "ssr")]
async fn call_with(
    method: Method,
    path: &str,
    body: Option<String>,
    headers: Vec<(&'static str, String)>,
) -> Result<(u16, String), ApiFailure> {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let Some(SsrApi(router)) = leptos::prelude::use_context::<SsrApi>() else {
        return Err(ApiFailure::local("no API in context"));
    };
    let method = match method {
        Method::Get => http::Method::GET,
        Method::Put => http::Method::PUT,
        Method::Post => http::Method::POST,
        Method::Delete => http::Method::DELETE,
    };
    let mut builder = http::Request::builder().method(method).uri(path).header("content-type", "application/json");
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    // Act as the person whose page is being rendered: their session or credentials.
    if let Some(parts) = leptos::prelude::use_context::<http::request::Parts>() {
        for name in [http::header::COOKIE, http::header::AUTHORIZATION] {
            if let Some(value) = parts.headers.get(&name) {
                builder = builder.header(name, value.clone());
            }
        }
        // And from their address, so that failed credentials count against it.
        if let Some(info) = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>() {
            builder = builder.extension(*info);
        }
    }
    let request = builder.body(axum::body::Body::from(body.unwrap_or_default())).map_err(|e| ApiFailure::local(e.to_string()))?;
    let response = router.oneshot(request).await.map_err(|e| ApiFailure::local(e.to_string()))?;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.map_err(|e| ApiFailure::local(e.to_string()))?.to_bytes();
    Ok((status, String::from_utf8_lossy(&bytes).to_string()))
}

#[cfg(all(feature = "hydrate", not(feature = "ssr")))]
fn call_with(
    method: Method,
    path: &str,
    body: Option<String>,
    headers: Vec<(&'static str, String)>,
) -> impl std::future::Future<Output = Result<(u16, String), ApiFailure>> + Send {
    // Browser futures are not `Send`; the browser has one thread, and resources want `Send`.
    let path = path.to_string();
    send_wrapper::SendWrapper::new(async move { browser_call(method, &path, body, headers).await })
}

#[cfg(all(feature = "hydrate", not(feature = "ssr")))]
async fn browser_call(
    method: Method,
    path: &str,
    body: Option<String>,
    headers: Vec<(&'static str, String)>,
) -> Result<(u16, String), ApiFailure> {
    use gloo_net::http::Request;
    let mut builder = match method {
        Method::Get => Request::get(path),
        Method::Put => Request::put(path),
        Method::Post => Request::post(path),
        Method::Delete => Request::delete(path),
    };
    for (name, value) in &headers {
        builder = builder.header(name, value);
    }
    // The session's CSRF token, which every state-changing request must echo.
    let builder = match (method, csrf_token()) {
        (Method::Get, _) | (_, None) => builder,
        (_, Some(token)) => builder.header("X-CSRF-Token", &token),
    };
    let response = match body {
        Some(b) => builder.header("content-type", "application/json").body(b).map_err(|e| ApiFailure::local(e.to_string()))?.send().await,
        None => builder.send().await,
    }
    .map_err(|e| ApiFailure::local(format!("the server cannot be reached: {e}")))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    Ok((status, text))
}

/// The `rookery_csrf` cookie, if the studio is signed in.
#[cfg(all(feature = "hydrate", not(feature = "ssr")))]
fn csrf_token() -> Option<String> {
    use wasm_bindgen::JsCast;
    let document = leptos::prelude::document().dyn_into::<web_sys::HtmlDocument>().ok()?;
    let cookies = document.cookie().ok()?;
    cookies.split(';').map(str::trim).find_map(|pair| pair.strip_prefix("rookery_csrf=").map(str::to_string))
}

#[cfg(not(any(feature = "ssr", feature = "hydrate")))]
async fn call_with(
    _method: Method,
    _path: &str,
    _body: Option<String>,
    _headers: Vec<(&'static str, String)>,
) -> Result<(u16, String), ApiFailure> {
    Err(ApiFailure::local("built without ssr or hydrate"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_readable() {
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(1536), "1.5 KB");
    }

    #[test]
    fn errors_decode_from_the_json_shape() {
        let e = decode::<()>(409, r#"{"Error":"DatabaseExists","Message":"taken"}"#).expect_err("an error");
        assert_eq!(e.error, "DatabaseExists");
        assert_eq!(e.to_string(), "taken (DatabaseExists)");
    }
}
