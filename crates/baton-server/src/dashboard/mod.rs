//! The dashboard under `/ui`: server-rendered HTML (askama templates in `templates/`) with htmx
//! for the parts that refresh themselves. No build step and no external URL: htmx is a committed
//! file served from the binary.
//!
//! Signing in: the login form takes an API token and keeps it in the `baton_token` cookie
//! (HttpOnly, SameSite=Strict, Path=/ui); every page asks the same token table as the API, and
//! the same roles guard the same actions (viewers look, operators start and stop instances,
//! approvers answer approvals).
//!
//! Cross-site request forgery, three locks on every form that changes something: the cookie is
//! SameSite=Strict (a browser does not send it with a request started by another site); the
//! request's `Origin` (or, without one, its `Referer` or `Sec-Fetch-Site`) must be this host; and
//! the form must carry `_csrf`, a value derived from the caller's token that another site cannot
//! compute. Requests authenticated by an `Authorization` header are not exposed to CSRF (a browser
//! never adds that header on its own) and skip the last two checks.

mod approvals;
pub mod graph;
mod instances;
mod ops;
mod progress;
mod records;
mod shadows;

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Form, FromRequest, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use baton_engine::{Actor, Role};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::auth::presented_token;
use crate::problem::ApiError;
use crate::{AppState, TOKEN_COOKIE};

/// htmx 2.0.11 (npm `htmx.org@2.0.11`, `dist/htmx.min.js`, licence 0BSD), unchanged. The
/// version is in the URL so that browsers may cache it for good.
const HTMX_JS: &[u8] = include_bytes!("../../static/htmx.min.js");
const HTMX_PATH: &str = "/ui/static/htmx-2.0.11.min.js";
/// The form field carrying the CSRF token.
const CSRF_FIELD: &str = "_csrf";
/// How often live parts of pages refresh themselves.
const POLL: &str = "every 2s";
/// JSON shown on a page is cut at this size: a page must stay usable with a large payload.
const JSON_SHOWN_BYTES_MAX: usize = 64 * 1024;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/ui", get(instances::page))
        .route("/ui/", get(|| async { Redirect::to("/ui") }))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", post(logout))
        .route(HTMX_PATH, get(htmx))
        .route("/ui/instances", post(instances::start))
        .route("/ui/instances/table", get(instances::table))
        .route("/ui/instances/{id}", get(instances::detail))
        .route("/ui/instances/{id}/live", get(instances::live))
        .route("/ui/instances/{id}/cancel", post(instances::cancel))
        .route("/ui/instances/{id}/suspend", post(instances::suspend))
        .route("/ui/instances/{id}/resume", post(instances::resume))
        .route("/ui/approvals", get(approvals::inbox))
        .route("/ui/approvals/{id}", post(approvals::decide))
        .route("/ui/overrides", get(records::overrides))
        .route("/ui/providers", get(ops::providers))
        .route("/ui/providers/table", get(ops::providers_table))
        .route("/ui/triggers", get(ops::triggers))
        .route("/ui/shadows", get(shadows::list))
        .route("/ui/shadows/{name}", get(shadows::detail))
        .route(
            "/ui/triggers/quarantine/{id}/replay",
            post(ops::replay_quarantined),
        )
}

/// A signed-in dashboard user.
pub(crate) struct Session {
    pub actor: Actor,
    /// The CSRF token forms must carry.
    pub csrf: String,
    /// Whether the token came from the cookie (a browser) rather than an `Authorization` header.
    by_cookie: bool,
}

impl Session {
    /// The same rule as the API's: the role, or admin.
    pub fn require(&self, role: Role) -> Result<&Actor, UiError> {
        if self.actor.can(role) {
            Ok(&self.actor)
        } else {
            Err(UiError::page(
                StatusCode::FORBIDDEN,
                "Forbidden",
                format!(
                    "`{}` needs the {} role for this.",
                    self.actor.name,
                    role.as_str()
                ),
            ))
        }
    }

    pub fn nav(&self, tab: &'static str) -> Nav {
        let mut roles: Vec<&str> = self.actor.roles.iter().map(|r| r.as_str()).collect();
        roles.sort_unstable();
        Nav {
            tab,
            user: self.actor.name.clone(),
            roles: roles.join(", "),
            csrf: self.csrf.clone(),
            htmx: HTMX_PATH,
        }
    }
}

/// What the page layout shows: tabs, who is signed in, the logout form.
pub(crate) struct Nav {
    pub tab: &'static str,
    pub user: String,
    pub roles: String,
    pub csrf: String,
    pub htmx: &'static str,
}

/// Derived from the token, so only a holder of the token can put it in a form. The prefix keeps
/// it from being any other digest of the token (the token table keys by plain SHA-256).
fn csrf_token(token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"baton-dashboard-csrf\0");
    h.update(token.as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// Compares without an early exit, so the time taken does not tell how much matched.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn is_htmx(headers: &HeaderMap) -> bool {
    headers.contains_key("hx-request")
}

impl FromRequestParts<Arc<AppState>> for Session {
    type Rejection = UiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let login = || UiError::Login {
            next: parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_default(),
            htmx: is_htmx(&parts.headers),
        };
        let token = presented_token(parts).ok_or_else(login)?;
        let actor = state
            .config
            .tokens
            .actor(&token)
            .cloned()
            .ok_or_else(login)?;
        Ok(Session {
            actor,
            csrf: csrf_token(&token),
            by_cookie: !parts.headers.contains_key(header::AUTHORIZATION),
        })
    }
}

/// Whether a request comes from a page of this server (see the module doc).
fn same_origin(headers: &HeaderMap) -> bool {
    let text = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
    let hosts: Vec<&str> = [text("host"), text("x-forwarded-host")]
        .into_iter()
        .flatten()
        .collect();
    let is_ours = |url: &str| {
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"));
        rest.is_some_and(|r| {
            let authority = r.split(['/', '?', '#']).next().unwrap_or("");
            hosts.iter().any(|h| h.eq_ignore_ascii_case(authority))
        })
    };
    if let Some(origin) = text("origin") {
        return is_ours(origin);
    }
    if let Some(referer) = text("referer") {
        return is_ours(referer);
    }
    text("sec-fetch-site") == Some("same-origin")
}

fn csrf_refused() -> UiError {
    UiError::page(
        StatusCode::FORBIDDEN,
        "Request refused",
        "The form did not come from this dashboard (cross-site request check). Reload the page and try again.",
    )
}

/// A form posted by a signed-in user, checked against CSRF (see the module doc). Its fields are
/// strings; `T` names the ones a handler needs.
pub(crate) struct Posted<T> {
    pub session: Session,
    pub form: T,
}

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for Posted<T> {
    type Rejection = UiError;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let session = Session::from_request_parts(&mut parts, state).await?;
        if session.by_cookie && !same_origin(&parts.headers) {
            return Err(csrf_refused());
        }
        let req = Request::from_parts(parts, body);
        let Form(mut fields) = Form::<HashMap<String, String>>::from_request(req, state)
            .await
            .map_err(|e| UiError::page(StatusCode::BAD_REQUEST, "Invalid form", e.body_text()))?;
        let token = fields.remove(CSRF_FIELD).unwrap_or_default();
        if session.by_cookie && !same_secret(&token, &session.csrf) {
            return Err(csrf_refused());
        }
        let fields: serde_json::Map<String, Value> = fields
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        let form = serde_json::from_value(Value::Object(fields))
            .map_err(|e| UiError::page(StatusCode::BAD_REQUEST, "Invalid form", e.to_string()))?;
        Ok(Posted { session, form })
    }
}

/// A form with no fields of its own (buttons).
#[derive(Deserialize)]
pub(crate) struct NoFields {}

/// Why a page could not be shown.
pub(crate) enum UiError {
    /// Not signed in (or the token is no longer valid): to the login page, then back.
    Login { next: String, htmx: bool },
    Page {
        status: StatusCode,
        title: String,
        detail: String,
    },
}

impl UiError {
    pub fn page(status: StatusCode, title: impl Into<String>, detail: impl Into<String>) -> Self {
        UiError::Page {
            status,
            title: title.into(),
            detail: detail.into(),
        }
    }
}

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> Self {
        UiError::page(status_of(&e), e.title, e.detail.unwrap_or_default())
    }
}

impl From<baton_store::StoreError> for UiError {
    fn from(e: baton_store::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    detail: &'a str,
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        match self {
            UiError::Login { next, htmx } => {
                if htmx {
                    // A refreshing fragment must not swap the login page into itself: htmx
                    // follows this header with a full navigation instead.
                    let mut r = StatusCode::UNAUTHORIZED.into_response();
                    r.headers_mut()
                        .insert("hx-redirect", HeaderValue::from_static("/ui/login"));
                    r
                } else {
                    let to = format!("/ui/login?next={}", url_encode(&safe_next(&next)));
                    Redirect::to(&to).into_response()
                }
            }
            UiError::Page {
                status,
                title,
                detail,
            } => {
                let page = ErrorPage {
                    status: status.as_u16(),
                    title: &title,
                    detail: &detail,
                };
                let mut r = render(&page);
                *r.status_mut() = status;
                r
            }
        }
    }
}

/// Renders a template as a page (see [`html`]).
pub(crate) fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(body) => html(body),
        Err(e) => {
            tracing::error!(error = %e, "dashboard template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "template error").into_response()
        }
    }
}

/// The HTTP status an API error maps to.
pub(crate) fn status_of(e: &ApiError) -> StatusCode {
    e.clone().into_response().status()
}

/// An HTML page or fragment, with the headers every dashboard answer gets: no caching of data,
/// no framing, scripts only from this server.
pub(crate) fn html(body: String) -> Response {
    let mut r = Html(body).into_response();
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data:; connect-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

pub(crate) fn render_str(t: &impl Template) -> Result<String, UiError> {
    t.render().map_err(|e| {
        UiError::page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Template error",
            e.to_string(),
        )
    })
}

async fn htmx() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        HTMX_JS,
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Login and logout

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    next: String,
    error: Option<String>,
}

#[derive(Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

/// Only a dashboard path is a place to go back to: anything else would make the login page an
/// open redirect.
fn safe_next(next: &str) -> String {
    let ok = (next == "/ui" || next.starts_with("/ui/") || next.starts_with("/ui?"))
        && !next.contains('\\')
        && !next.starts_with("/ui/logout")
        && !next.starts_with("/ui/login");
    if ok { next.to_string() } else { "/ui".into() }
}

async fn login_page(Query(q): Query<LoginQuery>) -> Response {
    render(&LoginPage {
        next: safe_next(q.next.as_deref().unwrap_or("/ui")),
        error: None,
    })
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    #[serde(default)]
    next: Option<String>,
}

/// Whether a token can be a cookie value as it is (RFC 6265 `cookie-octet`): the API's cookie
/// reader takes the value verbatim.
fn cookie_safe(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E))
}

fn session_cookie(value: &str, max_age: Option<u64>, secure: bool) -> HeaderValue {
    let mut c = format!("{TOKEN_COOKIE}={value}; Path=/ui; HttpOnly; SameSite=Strict");
    if let Some(s) = max_age {
        c.push_str(&format!("; Max-Age={s}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    // The value was checked to be cookie-safe, so this cannot fail; an empty header if it did.
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn behind_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

async fn login(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref().unwrap_or("/ui"));
    // Login CSRF: another site must not sign a browser in with the attacker's token.
    if !same_origin(&headers) {
        return csrf_refused().into_response();
    }
    let token = form.token.trim();
    let refuse = |why: &str| {
        let mut r = render(&LoginPage {
            next: next.clone(),
            error: Some(why.to_string()),
        });
        *r.status_mut() = StatusCode::UNAUTHORIZED;
        r
    };
    if state.config.tokens.actor(token).is_none() {
        return refuse("That token is not valid.");
    }
    if !cookie_safe(token) {
        return refuse(
            "This token has characters a cookie cannot hold; use the API with it, or issue a token of letters, digits and -_.",
        );
    }
    let mut r = Redirect::to(&next).into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(token, None, behind_https(&headers)),
    );
    r
}

async fn logout(headers: HeaderMap, _p: Posted<NoFields>) -> Response {
    let mut r = Redirect::to("/ui/login").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie("", Some(0), behind_https(&headers)),
    );
    r
}

// ---------------------------------------------------------------------------------------------
// Helpers shared by the pages

/// Percent-encodes a query value or path segment.
pub(crate) fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A query string from pairs, leaving out empty values.
pub(crate) fn query_string(pairs: &[(&str, &str)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", url_encode(v)))
        .collect();
    parts.join("&")
}

/// `2026-11-21 08:21:03Z`.
pub(crate) fn time(ms: u64) -> String {
    let iso = baton_core::time::iso8601_utc(ms);
    // `YYYY-MM-DDTHH:MM:SS.mmmZ`: the milliseconds are noise on a page.
    match iso.split_once('.') {
        Some((head, _)) => format!("{}Z", head.replacen('T', " ", 1)),
        None => iso.replacen('T', " ", 1),
    }
}

/// `3m ago`, `in 2h 5m`.
pub(crate) fn relative(now: u64, at: u64) -> String {
    let (d, future) = if at >= now {
        (at - now, true)
    } else {
        (now - at, false)
    };
    let s = d / 1000;
    let text = if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m", s / 60)
    } else if s < 86_400 {
        format!("{}h {}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}d {}h", s / 86_400, (s % 86_400) / 3600)
    };
    if future {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// Pretty JSON, cut to a size a page can hold.
pub(crate) fn pretty(v: &Value) -> String {
    let s = serde_json::to_string_pretty(v).unwrap_or_default();
    cut(s, JSON_SHOWN_BYTES_MAX)
}

/// One-line JSON, cut to `max` bytes.
pub(crate) fn compact(v: &Value, max: usize) -> String {
    cut(v.to_string(), max)
}

fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str(" … (cut)");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_only_ever_a_dashboard_path() {
        assert_eq!(safe_next("/ui/instances/abc"), "/ui/instances/abc");
        assert_eq!(safe_next("/ui?status=running"), "/ui?status=running");
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/uix",
            "/ui\\..\\x",
            "/v1/instances",
            "/ui/logout",
        ] {
            assert_eq!(safe_next(bad), "/ui", "{bad}");
        }
    }

    #[test]
    fn origin_must_be_this_host() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            h
        };
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080.evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "null")
        ])));
        // An Origin that disagrees wins over a Referer that agrees.
        assert!(!same_origin(&headers(&[
            ("host", "a:1"),
            ("origin", "http://b:1"),
            ("referer", "http://a:1/ui")
        ])));
        assert!(same_origin(&headers(&[
            ("host", "a:1"),
            ("referer", "http://a:1/ui/approvals")
        ])));
        assert!(same_origin(&headers(&[
            ("host", "a:1"),
            ("sec-fetch-site", "same-origin")
        ])));
        assert!(!same_origin(&headers(&[("host", "a:1")])));
    }

    #[test]
    fn csrf_tokens_differ_per_token_and_compare_exactly() {
        let a = csrf_token("t-ann");
        assert_eq!(a, csrf_token("t-ann"));
        assert_ne!(a, csrf_token("t-bob"));
        assert_eq!(a.len(), 32);
        assert!(same_secret(&a, &a.clone()));
        assert!(!same_secret(&a, &a[..31]));
        assert!(!same_secret(&a, &csrf_token("t-bob")));
    }

    #[test]
    fn cookie_values_and_helpers() {
        assert!(cookie_safe("t-abc_123.XYZ"));
        assert!(!cookie_safe("a b") && !cookie_safe("a;b") && !cookie_safe("a\"b"));
        assert!(!cookie_safe(""));
        assert_eq!(url_encode("a b/ü"), "a%20b%2F%C3%BC");
        assert_eq!(
            query_string(&[("status", "running"), ("flow", ""), ("v", "1.0")]),
            "status=running&v=1.0"
        );
        assert_eq!(relative(10_000, 5_000), "5s ago");
        assert_eq!(relative(0, 3_720_000), "in 1h 2m");
        assert_eq!(time(0), "1970-01-01 00:00:00Z");
        assert!(cut("ééé".into(), 3).starts_with('é'));
    }
}
