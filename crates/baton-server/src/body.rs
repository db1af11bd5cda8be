//! Request bodies: JSON read within the size limit, with every failure a problem detail.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::problem::{ApiError, Code};

/// A JSON request body. Unlike `axum::Json`, its rejections are problem details, and it accepts
/// `application/json`, any `+json` type (`application/cloudevents+json`) or no content type.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let bytes = raw_json(req, state).await?;
        Ok(JsonBody(parse(&bytes)?))
    }
}

/// A JSON body that may be left out (answers and reasons are optional on some routes): an empty
/// body is `T::default()`.
pub(crate) async fn optional_json<T: DeserializeOwned + Default>(
    req: Request,
    state: &Arc<AppState>,
) -> Result<T, ApiError> {
    let bytes = raw_json(req, state).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse(&bytes)
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(Code::InvalidRequest, "Invalid request body").detail(e.to_string())
    })
}

/// The body's bytes, checked for a JSON content type and the size limit.
pub(crate) async fn raw_json(req: Request, state: &Arc<AppState>) -> Result<Bytes, ApiError> {
    if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        let essence = ct.split(';').next().unwrap_or("").trim();
        if !(essence == "application/json" || essence.ends_with("+json")) {
            return Err(
                ApiError::new(Code::UnsupportedMediaType, "Unsupported media type")
                    .detail(format!("expected application/json, got `{essence}`")),
            );
        }
    }
    let limit = state.config.limits.request_bytes_max;
    axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|_| {
            ApiError::new(Code::PayloadTooLarge, "Payload too large")
                .detail(format!("request bodies are limited to {limit} bytes"))
        })
}
