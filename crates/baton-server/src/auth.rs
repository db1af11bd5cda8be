//! Authentication: bearer tokens (API) or the same token in a cookie (dashboard), mapped to an
//! [`Actor`] with roles. Role checks happen in the handlers, next to what they protect.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use baton_engine::{Actor, Role};

use crate::AppState;
use crate::problem::{ApiError, Code};

/// The dashboard's cookie holding the caller's token.
pub const TOKEN_COOKIE: &str = "baton_token";

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller(pub Actor);

impl Caller {
    /// Fails with 403 unless the caller holds `role` (admins hold every role).
    pub fn require(&self, role: Role) -> Result<&Actor, ApiError> {
        if self.0.can(role) {
            Ok(&self.0)
        } else {
            Err(ApiError::new(Code::Forbidden, "Forbidden").detail(format!(
                "`{}` needs the {} role for this",
                self.0.name,
                role.as_str()
            )))
        }
    }
}

/// The token a request presents: `Authorization: Bearer …`, else the dashboard cookie.
pub(crate) fn presented_token(parts: &Parts) -> Option<String> {
    if let Some(v) = parts.headers.get(header::AUTHORIZATION) {
        let v = v.to_str().ok()?;
        let (scheme, token) = v.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_string());
    }
    for v in parts.headers.get_all(header::COOKIE) {
        let Ok(v) = v.to_str() else { continue };
        for pair in v.split(';') {
            if let Some((k, val)) = pair.trim().split_once('=')
                && k == TOKEN_COOKIE
            {
                return Some(val.to_string());
            }
        }
    }
    None
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let token = presented_token(parts).ok_or_else(|| {
            ApiError::new(Code::Unauthenticated, "Authentication required")
                .detail("send `Authorization: Bearer <token>`")
        })?;
        state
            .config
            .tokens
            .actor(&token)
            .cloned()
            .map(Caller)
            .ok_or_else(|| {
                ApiError::new(Code::Unauthenticated, "Authentication required")
                    .detail("the token is not valid")
            })
    }
}
