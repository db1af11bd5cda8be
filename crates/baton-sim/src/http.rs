//! Small helpers shared by the providers' handlers: answers, problem details, bodies and keys.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// A JSON answer.
pub(crate) fn reply(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// An RFC 9457 problem answer.
pub(crate) fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    let body = json!({
        "type": "about:blank",
        "status": status.as_u16(),
        "title": title,
        "detail": detail,
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

/// `429 Too Many Requests` with `Retry-After`.
pub(crate) fn too_many(retry_after_s: u64, detail: &str) -> Response {
    let mut resp = problem(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests", detail);
    if let Ok(v) = retry_after_s.to_string().parse() {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// The request body as `T`; an empty body reads as `{}`. The error is the answer to give.
pub(crate) fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, Box<Response>> {
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(text).map_err(|e| {
        Box::new(problem(
            StatusCode::BAD_REQUEST,
            "Bad request body",
            &format!("the body is not the JSON this route takes: {e}"),
        ))
    })
}

/// The `Idempotency-Key` header, when present and not empty.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Option<String> {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
}

/// The `X-Baton-Causation-Id` header, when present.
pub(crate) fn causation_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-baton-causation-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

pub(crate) fn not_found(what: &str) -> Response {
    problem(StatusCode::NOT_FOUND, "Not Found", what)
}
