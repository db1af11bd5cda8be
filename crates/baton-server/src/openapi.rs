//! The OpenAPI 3.1 document at `/openapi.json`, and a docs page at `/docs` rendered from it by
//! the server (no script from elsewhere).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::response::Html;
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::AppState;
use crate::api;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Errors are sent as `application/problem+json` (RFC 9457): say so for every 4xx/5xx response.
struct ProblemContentType;

impl Modify for ProblemContentType {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let ops = [
                item.get.as_mut(),
                item.put.as_mut(),
                item.post.as_mut(),
                item.delete.as_mut(),
                item.patch.as_mut(),
            ];
            for op in ops.into_iter().flatten() {
                for (code, resp) in op.responses.responses.iter_mut() {
                    let is_error = code.starts_with('4') || code.starts_with('5');
                    if let (true, utoipa::openapi::RefOr::T(resp)) = (is_error, resp)
                        && let Some(content) = resp.content.shift_remove("application/json")
                    {
                        resp.content
                            .insert("application/problem+json".to_string(), content);
                    }
                }
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Baton API", description = "Flows, instances, events, approvals and the audit trail of a Baton server. Errors are RFC 9457 problem details with stable codes (`code`, and `type` = https://baton.dev/errors/<slug>)."),
    modifiers(&BearerAuth, &ProblemContentType),
    components(schemas(api::approvals::ApprovalStatusView, api::views::StatusView)),
    paths(
        api::flows::healthz, api::flows::readyz, crate::metrics::scrape,
        api::shadows::list, api::shadows::register, api::shadows::get_one, api::shadows::post_decision,
        api::shadows::case, api::shadows::report, api::shadows::stop,
        api::flows::list, api::flows::register, api::flows::validate, api::flows::get_one,
        api::instances::list, api::instances::start, api::instances::get_one,
        api::instances::cancel, api::instances::suspend, api::instances::resume, api::instances::signal,
        api::events::publish, api::events::publish_batch, api::events::quarantine, api::events::replay,
        api::approvals::list, api::approvals::get_one, api::approvals::approve, api::approvals::reject,
        api::approvals::override_decision, api::approvals::overrides, api::approvals::audit,
        api::approvals::confirm_override, api::approvals::refuse_override, api::approvals::overrides_report,
        api::decisions::list, api::decisions::export,
    ),
    tags((name = "flows"), (name = "instances"), (name = "events"), (name = "approvals"), (name = "triggers"), (name = "audit"), (name = "shadows"), (name = "health"))
)]
pub struct ApiDoc;

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/openapi.json", get(|| async { Json(document()) }))
        .route("/docs", get(docs_page))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn docs_page() -> Html<String> {
    let doc = serde_json::to_value(document()).unwrap_or_default();
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Baton API</title>\
         <style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}\
         code{background:#f3f3f3;padding:0 .2rem}h3{margin-bottom:.2rem}.m{display:inline-block;min-width:4rem;font-weight:bold}</style>\
         </head><body><h1>Baton API</h1><p>The machine-readable document is <a href=\"/openapi.json\">/openapi.json</a> (OpenAPI 3.1). \
         Send <code>Authorization: Bearer &lt;token&gt;</code>.</p>",
    );
    if let Some(paths) = doc.get("paths").and_then(|p| p.as_object()) {
        for (path, ops) in paths {
            let Some(ops) = ops.as_object() else { continue };
            for (method, op) in ops {
                let summary = op
                    .get("summary")
                    .or_else(|| op.get("description"))
                    .and_then(|s| s.as_str())
                    .unwrap_or("");
                let codes: Vec<String> = op
                    .get("responses")
                    .and_then(|r| r.as_object())
                    .map(|r| r.keys().cloned().collect())
                    .unwrap_or_default();
                html.push_str(&format!(
                    "<h3><span class=\"m\">{}</span> <code>{}</code></h3><p>{}</p><p>Responses: {}</p>",
                    escape(&method.to_uppercase()),
                    escape(path),
                    escape(summary),
                    escape(&codes.join(", "))
                ));
            }
        }
    }
    html.push_str("</body></html>");
    Html(html)
}
