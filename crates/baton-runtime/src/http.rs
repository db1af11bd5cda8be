//! Performing `call: http` and `call: openapi`: the request goes out with the effect's
//! `Idempotency-Key` and causation id; the answer becomes an [`Outcome`].
//!
//! Outcome rules: 2xx (and 3xx with `redirect: true`) is `ok`; any other status is `failed` with a
//! `communication` problem carrying the status; a failure before the request was sent (DNS,
//! connect refused) is `failed`; a timeout or a connection lost after sending is `unknown`, which
//! the driver reconciles by re-sending with the same key.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use baton_core::{EffectCall, ErrorKind, HttpAuth, HttpOutput, HttpRequest, Outcome, Problem};
use serde_json::{Map, Value, json};

/// Largest response body accepted.
const RESPONSE_BYTES_MAX: usize = 16 * 1024 * 1024;

pub(crate) struct HttpClients {
    follow: reqwest::Client,
    no_follow: reqwest::Client,
    /// OpenAPI documents fetched, by URL.
    documents: Mutex<HashMap<String, Value>>,
}

impl HttpClients {
    pub fn new(timeout_ms: u64) -> HttpClients {
        // ring is the only crypto provider compiled in; installing it twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let build = |policy| {
            reqwest::Client::builder()
                .timeout(Duration::from_millis(timeout_ms))
                .connect_timeout(Duration::from_millis(timeout_ms.min(10_000)))
                .redirect(policy)
                .build()
                .unwrap_or_else(|_| reqwest::Client::new())
        };
        HttpClients {
            follow: build(reqwest::redirect::Policy::limited(10)),
            no_follow: build(reqwest::redirect::Policy::none()),
            documents: Mutex::new(HashMap::new()),
        }
    }
}

fn communication(title: &str, detail: impl Into<String>) -> Problem {
    Problem::new(ErrorKind::Communication, title).with_detail(detail)
}

/// Whether an error happened after the request may have reached the server.
fn is_unknown(e: &reqwest::Error) -> bool {
    e.is_timeout() || (e.is_request() && !e.is_connect()) || e.is_body() || e.is_decode()
}

pub(crate) fn check_allowed(url: &str, allowed: &Option<Vec<String>>) -> Result<(), Problem> {
    match allowed {
        Some(prefixes) if !prefixes.iter().any(|p| url.starts_with(p.as_str())) => {
            Err(Problem::new(
                ErrorKind::Authorization,
                "Outbound call to an undeclared destination",
            )
            .with_detail(format!("{url} is not under any declared provider")))
        }
        _ => Ok(()),
    }
}

/// What sending a request came to.
pub(crate) enum Sent {
    /// The server answered (any status).
    Answer(RawAnswer),
    /// Nothing reached the server (bad method, DNS, connection refused): definitely not applied.
    Refused(Problem),
    /// The request went out but the answer was lost (timeout, connection drop): maybe applied.
    Lost(String),
}

/// An answer as received. Header names are lower case.
pub(crate) struct RawAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub is_json: bool,
}

/// Credentials a provider adds to every call; never journaled, never logged.
#[derive(Clone)]
pub(crate) enum ProviderAuth {
    Bearer(String),
    Basic(String, String),
    Header(String, String),
}

impl std::fmt::Debug for ProviderAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProviderAuth::Bearer(_) => f.write_str("Bearer(***)"),
            ProviderAuth::Basic(u, _) => write!(f, "Basic({u}, ***)"),
            ProviderAuth::Header(h, _) => write!(f, "Header({h}, ***)"),
        }
    }
}

/// Sends `req` with the effect's idempotency key and causation id.
pub(crate) async fn send(
    client: &reqwest::Client,
    call: &EffectCall,
    req: &HttpRequest,
    provider_auth: Option<&ProviderAuth>,
) -> Sent {
    let method = match reqwest::Method::from_bytes(req.method.as_bytes()) {
        Ok(m) => m,
        Err(_) => {
            return Sent::Refused(Problem::new(
                ErrorKind::Configuration,
                format!("invalid HTTP method `{}`", req.method),
            ));
        }
    };
    let mut rb = client.request(method, &req.uri);
    if !req.query.is_empty() {
        rb = rb.query(&req.query);
    }
    for (k, v) in &req.headers {
        rb = rb.header(k, v);
    }
    rb = rb
        .header("Idempotency-Key", &call.idempotency_key)
        .header("X-Baton-Causation-Id", &call.causation_id);
    match (&req.auth, provider_auth) {
        (Some(HttpAuth::Basic { username, password }), _) => {
            rb = rb.basic_auth(username, Some(password))
        }
        (Some(HttpAuth::Bearer { token }), _) => rb = rb.bearer_auth(token),
        (None, Some(ProviderAuth::Bearer(t))) => rb = rb.bearer_auth(t),
        (None, Some(ProviderAuth::Basic(u, p))) => rb = rb.basic_auth(u, Some(p)),
        (None, Some(ProviderAuth::Header(h, v))) => rb = rb.header(h, v),
        (None, None) => {}
    }
    if let Some(body) = &req.body {
        rb = rb.json(body);
    }
    let resp = match rb.send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => {
            return Sent::Lost(format!(
                "no answer from {} within the request timeout after sending",
                req.uri
            ));
        }
        Err(e) if is_unknown(&e) => {
            return Sent::Lost(format!("connection to {} lost after sending: {e}", req.uri));
        }
        Err(e) => return Sent::Refused(communication("Request failed", e.to_string())),
    };
    let status = resp.status().as_u16();
    let headers: Vec<(String, String)> = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let is_json = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("json"));
    match resp.bytes().await {
        Ok(b) if b.len() > RESPONSE_BYTES_MAX => Sent::Refused(communication(
            "Response too large",
            format!("{} bytes", b.len()),
        )),
        Ok(b) => Sent::Answer(RawAnswer {
            status,
            headers,
            body: b.to_vec(),
            is_json,
        }),
        Err(e) => Sent::Lost(format!("response body lost: {e}")),
    }
}

pub(crate) async fn perform(
    clients: &HttpClients,
    call: &EffectCall,
    req: &HttpRequest,
    allowed: &Option<Vec<String>>,
) -> Outcome {
    if let Err(p) = check_allowed(&req.uri, allowed) {
        return Outcome::failed(p);
    }
    let client = if req.redirect {
        &clients.follow
    } else {
        &clients.no_follow
    };
    match send(client, call, req, None).await {
        Sent::Answer(a) => shape(req, &a),
        Sent::Refused(p) => Outcome::failed(p),
        Sent::Lost(reason) => Outcome::Unknown { reason },
    }
}

/// The outcome of a plain `call: http` answer: 2xx (and 3xx with `redirect: true`) is data in
/// the shape `output` asks for; any other status is a `communication` error.
pub(crate) fn shape(req: &HttpRequest, answer: &RawAnswer) -> Outcome {
    let status = answer.status;
    let bytes = &answer.body;
    let content = if bytes.is_empty() {
        Value::Null
    } else if answer.is_json {
        match serde_json::from_slice(bytes) {
            Ok(v) => v,
            Err(e) => {
                return Outcome::failed(
                    communication("Malformed JSON response", e.to_string()).with_status(status),
                );
            }
        }
    } else {
        serde_json::from_slice(bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
    };
    let ok = (200..300).contains(&status) || (req.redirect && (300..400).contains(&status));
    if !ok {
        let title = format!("HTTP {status}");
        let mut p = communication(
            &title,
            format!("{} {} answered {status}", req.method, req.uri),
        )
        .with_status(status);
        if status == 401 {
            p.type_ = ErrorKind::Authentication.type_uri();
        } else if status == 403 {
            p.type_ = ErrorKind::Authorization.type_uri();
        }
        return Outcome::failed(p);
    }
    Outcome::ok(shape_value(req, answer, content))
}

/// The value a flow sees for a successful answer whose body is `content`.
pub(crate) fn shape_value(req: &HttpRequest, answer: &RawAnswer, content: Value) -> Value {
    match req.output {
        HttpOutput::Content => content,
        HttpOutput::Raw => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(&answer.body))
        }
        HttpOutput::Response => {
            // The recorded request leaves out credentials: the journal never holds secrets.
            let req_headers: Map<String, Value> = req
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            let headers: Map<String, Value> = answer
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            json!({
                "request": {"method": req.method, "uri": req.uri, "headers": req_headers},
                "statusCode": answer.status,
                "headers": headers,
                "content": content,
            })
        }
    }
}

/// `call: openapi`: fetches (and caches) the document, finds the operation and calls it.
pub(crate) async fn perform_openapi(
    clients: &HttpClients,
    call: &EffectCall,
    args: &Value,
    allowed: &Option<Vec<String>>,
) -> Outcome {
    match openapi_request(clients, args, allowed).await {
        Ok(req) => perform(clients, call, &req, allowed).await,
        Err(p) => Outcome::failed(p),
    }
}

async fn openapi_request(
    clients: &HttpClients,
    args: &Value,
    allowed: &Option<Vec<String>>,
) -> Result<HttpRequest, Problem> {
    let config = |m: String| Problem::new(ErrorKind::Configuration, m);
    let doc_url = match args.pointer("/document/endpoint") {
        Some(Value::String(s)) => s.clone(),
        Some(o) => o
            .get("uri")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| config("`document.endpoint.uri` is required".into()))?,
        None => {
            return Err(config(
                "`call: openapi` needs `with.document.endpoint`".into(),
            ));
        }
    };
    let op_id = args
        .get("operationId")
        .and_then(Value::as_str)
        .ok_or_else(|| config("`operationId` is required".into()))?;
    let cached = clients
        .documents
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&doc_url)
        .cloned();
    let doc =
        match cached {
            Some(d) => d,
            None => {
                check_allowed(&doc_url, allowed)?;
                let resp = clients.follow.get(&doc_url).send().await.map_err(|e| {
                    communication("Cannot fetch the OpenAPI document", e.to_string())
                })?;
                if !resp.status().is_success() {
                    return Err(communication(
                        "Cannot fetch the OpenAPI document",
                        format!("{doc_url} answered {}", resp.status()),
                    ));
                }
                let d: Value = resp.json().await.map_err(|e| {
                    communication("The OpenAPI document is not JSON", e.to_string())
                })?;
                clients
                    .documents
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(doc_url.clone(), d.clone());
                d
            }
        };
    let paths = doc
        .get("paths")
        .and_then(Value::as_object)
        .ok_or_else(|| config("the OpenAPI document has no `paths`".into()))?;
    let mut found = None;
    for (path, item) in paths {
        if let Some(ops) = item.as_object() {
            for (method, op) in ops {
                if op.get("operationId").and_then(Value::as_str) == Some(op_id) {
                    found = Some((
                        path.clone(),
                        method.clone(),
                        op.clone(),
                        item.get("parameters").cloned(),
                    ));
                }
            }
        }
    }
    let (path, method, op, shared_params) =
        found.ok_or_else(|| config(format!("no operation `{op_id}` in {doc_url}")))?;
    let base = server_base(&doc, &doc_url);
    let params = args
        .get("parameters")
        .cloned()
        .unwrap_or(Value::Object(Map::new()));
    let mut url_path = path.clone();
    let mut query = Vec::new();
    let mut headers = Vec::new();
    let mut body = None;
    let declared: Vec<Value> = op
        .get("parameters")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .chain(
            shared_params
                .and_then(|p| p.as_array().cloned())
                .unwrap_or_default(),
        )
        .collect();
    for p in &declared {
        let name = p.get("name").and_then(Value::as_str).unwrap_or("");
        let location = p.get("in").and_then(Value::as_str).unwrap_or("");
        let Some(v) = params.get(name) else {
            if p.get("required").and_then(Value::as_bool) == Some(true) && location != "body" {
                return Err(Problem::new(
                    ErrorKind::Validation,
                    format!("missing required parameter `{name}` of `{op_id}`"),
                ));
            }
            continue;
        };
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match location {
            "path" => url_path = url_path.replace(&format!("{{{name}}}"), &text),
            "query" => query.push((name.to_string(), text)),
            "header" => headers.push((name.to_string(), text)),
            "body" => body = Some(v.clone()),
            _ => {}
        }
    }
    if let Some(b) = params.get("body") {
        body.get_or_insert_with(|| b.clone());
    }
    let output = match args.get("output").and_then(Value::as_str) {
        Some("response") => HttpOutput::Response,
        Some("raw") => HttpOutput::Raw,
        _ => HttpOutput::Content,
    };
    Ok(HttpRequest {
        method: method.to_ascii_uppercase(),
        uri: format!("{}{}", base.trim_end_matches('/'), url_path),
        headers,
        query,
        body,
        output,
        redirect: args
            .get("redirect")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        auth: None,
    })
}

/// The base URL of an OpenAPI 3 (`servers`) or Swagger 2 (`schemes`, `host`, `basePath`)
/// document; relative to the document's own URL when it names none.
fn server_base(doc: &Value, doc_url: &str) -> String {
    if let Some(url) = doc.pointer("/servers/0/url").and_then(Value::as_str)
        && url.starts_with("http")
    {
        return url.to_string();
    }
    let origin = doc_url.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
    let host = doc.get("host").and_then(Value::as_str);
    let scheme = doc
        .pointer("/schemes/0")
        .and_then(Value::as_str)
        .unwrap_or("https");
    let base_path = doc.get("basePath").and_then(Value::as_str).unwrap_or("");
    match host {
        Some(h) => format!("{scheme}://{h}{base_path}"),
        None => format!("{origin}{base_path}"),
    }
}
