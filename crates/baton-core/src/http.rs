//! Turns the evaluated `with` of a `call: http` into a concrete [`HttpRequest`]: pure, so it is
//! part of the deterministic core and tested without a network.

use serde_json::{Map, Value};

use crate::effect::{HttpAuth, HttpOutput, HttpRequest};
use crate::problem::{ErrorKind, Problem};

fn config(msg: impl Into<String>) -> Problem {
    Problem::new(ErrorKind::Configuration, msg)
}

/// Builds the request. `input` fills `{name}` URI template variables (top-level fields, as the
/// spec's simple interpolation); `auths` are the flow's `use.authentications`.
pub fn build_http_request(
    args: &Value,
    input: &Value,
    auths: Option<&Map<String, Value>>,
) -> Result<HttpRequest, Problem> {
    let method = args
        .get("method")
        .and_then(Value::as_str)
        .ok_or_else(|| config("`call: http` needs a string `with.method`"))?
        .to_ascii_uppercase();
    let endpoint = args
        .get("endpoint")
        .ok_or_else(|| config("`call: http` needs `with.endpoint`"))?;
    let (template, auth_def) = match endpoint {
        Value::String(s) => (s.as_str(), None),
        Value::Object(o) => (
            o.get("uri")
                .and_then(Value::as_str)
                .ok_or_else(|| config("`endpoint.uri` must be a string"))?,
            o.get("authentication"),
        ),
        _ => {
            return Err(config(
                "`endpoint` must be a string or an object with `uri`",
            ));
        }
    };
    let uri = expand_uri_template(template, input)?;
    let headers = string_pairs(args.get("headers"), "headers")?;
    let query = string_pairs(args.get("query"), "query")?;
    let output = match args.get("output").and_then(Value::as_str) {
        None | Some("content") => HttpOutput::Content,
        Some("response") => HttpOutput::Response,
        Some("raw") => HttpOutput::Raw,
        Some(other) => {
            return Err(config(format!(
                "unknown http output `{other}`: use content, response or raw"
            )));
        }
    };
    let redirect = args
        .get("redirect")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let auth = match auth_def {
        Some(a) => Some(resolve_auth(a, auths)?),
        None => None,
    };
    Ok(HttpRequest {
        method,
        uri,
        headers,
        query,
        body: args.get("body").cloned(),
        output,
        redirect,
        auth,
    })
}

fn resolve_auth(def: &Value, auths: Option<&Map<String, Value>>) -> Result<HttpAuth, Problem> {
    let def = match def.get("use").and_then(Value::as_str) {
        Some(name) => auths
            .and_then(|a| a.get(name))
            .ok_or_else(|| config(format!("unknown authentication `{name}`")))?,
        None => def,
    };
    let field = |obj: &Value, k: &str| -> Result<String, Problem> {
        obj.get(k)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| config(format!("authentication needs a string `{k}`")))
    };
    if let Some(b) = def.get("basic") {
        return Ok(HttpAuth::Basic {
            username: field(b, "username")?,
            password: field(b, "password")?,
        });
    }
    if let Some(b) = def.get("bearer") {
        return Ok(HttpAuth::Bearer {
            token: field(b, "token")?,
        });
    }
    Err(config(
        "only `basic` and `bearer` authentication are supported",
    ))
}

fn string_pairs(v: Option<&Value>, what: &str) -> Result<Vec<(String, String)>, Problem> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let obj = v
        .as_object()
        .ok_or_else(|| config(format!("`{what}` must be an object")))?;
    Ok(obj
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), scalar_text(v)))
        .collect())
}

/// A value as it goes into a URI or a header: a string as it is, anything else as JSON.
pub fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Expands `{name}` placeholders from the input's top-level fields, percent-encoding values.
pub fn expand_uri_template(template: &str, input: &Value) -> Result<String, Problem> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| config(format!("unclosed `{{` in URI template `{template}`")))?;
        let name = &after[..close];
        let value = input.get(name).filter(|v| !v.is_null()).ok_or_else(|| {
            Problem::new(
                ErrorKind::Validation,
                format!("URI template variable `{name}` is not in the task input"),
            )
        })?;
        out.push_str(&percent_encode(&scalar_text(value)));
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// What a URI component keeps as it is: RFC 3986's unreserved characters (letters, digits and
/// `-._~`); everything else is percent-encoded.
const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a value for a path segment or a query value: the one encoder of URI
/// templates, the DSL's and the provider catalogue's alike.
pub fn percent_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, COMPONENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expands_templates_and_encodes() {
        let u = expand_uri_template(
            "http://x/pet/{petId}?s={status}",
            &json!({"petId": 1, "status": "a b"}),
        )
        .unwrap();
        assert_eq!(u, "http://x/pet/1?s=a%20b");
        assert!(expand_uri_template("http://x/{missing}", &json!({})).is_err());
    }

    #[test]
    fn builds_request_with_basic_auth() {
        let r = build_http_request(
            &json!({"method": "get", "endpoint": {"uri": "http://h/a", "authentication": {"basic": {"username": "u", "password": "p"}}}}),
            &json!({}),
            None,
        )
        .unwrap();
        assert_eq!(r.method, "GET");
        // The password never shows in a debug print.
        assert_eq!(format!("{:?}", r.auth.unwrap()), "Basic(u, ***)");
    }
}
