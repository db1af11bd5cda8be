//! A stand-in for the parts of `https://httpbin.org` the CTK uses: HTTP basic authentication.

use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

pub(crate) fn routes() -> Router {
    Router::new().route("/basic-auth/{user}/{passwd}", get(basic_auth))
}

/// 200 when the request's `Authorization: Basic` credentials are exactly `user:passwd`, else 401
/// with a challenge, as httpbin does.
async fn basic_auth(Path((user, passwd)): Path<(String, String)>, headers: HeaderMap) -> Response {
    if basic_credentials(&headers).is_some_and(|given| given == format!("{user}:{passwd}")) {
        return Json(json!({ "authenticated": true, "user": user })).into_response();
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"Fake Realm\"")],
        Json(json!({ "authenticated": false })),
    )
        .into_response()
}

/// The decoded `user:password` of a Basic `Authorization` header.
fn basic_credentials(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()
}
