//! Turning an HTTP answer into what it means: data, a transient refusal worth retrying, a
//! definite failure, an accepted job to poll, or data too old to use.
//!
//! The rules (brief §5): 2xx is data only if its body parses, satisfies the operation's
//! contract and is fresh enough; 429, 5xx and 408 are transient; other 4xx are definite
//! failures. A body that breaks the contract, or an answer older than `max_age`, never reaches
//! a flow as data.

use baton_core::time::parse_time_ms;
use baton_core::{ErrorKind, Problem, baton_types};
use baton_expr::Budget;
use serde_json::Value;

use crate::catalog::{Operation, RetryOn};

/// An HTTP answer, IO already done. Header names are lower case.
pub struct Answer<'a> {
    pub status: u16,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

impl Answer<'_> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What an answer means.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Ok(Value),
    /// `202 Accepted` for an operation that declares how to follow it.
    Accepted {
        status_url: Option<String>,
        body: Value,
    },
    /// A transient refusal; `after_ms` is the provider's `Retry-After`, relative.
    Transient {
        class: RetryOn,
        after_ms: Option<u64>,
        problem: Problem,
    },
    Failed(Problem),
    Stale {
        value: Value,
        observed_at_ms: u64,
        reason: String,
    },
}

impl Verdict {
    /// Whether this answer says the provider is unwell (counts against its breaker).
    pub fn breaker_failure(&self) -> bool {
        match self {
            Verdict::Transient { class, .. } => *class != RetryOn::Throttled,
            Verdict::Failed(p) => p.type_ == baton_types::CONTRACT,
            Verdict::Ok(_) | Verdict::Accepted { .. } | Verdict::Stale { .. } => false,
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Ok(_) => "ok",
            Verdict::Accepted { .. } => "accepted",
            Verdict::Transient { .. } => "transient",
            Verdict::Failed(_) => "failed",
            Verdict::Stale { .. } => "stale",
        }
    }
}

fn communication(title: String, status: u16) -> Problem {
    let kind = match status {
        401 => ErrorKind::Authentication,
        403 => ErrorKind::Authorization,
        _ => ErrorKind::Communication,
    };
    Problem::new(kind, title).with_status(status)
}

fn contract(detail: String) -> Problem {
    Problem::of_type(baton_types::CONTRACT, 502, "Contract violation").with_detail(detail)
}

/// Budget for the catalogue's small jq expressions over one answer.
fn budget() -> Budget {
    Budget {
        steps_max: 100_000,
        ..Budget::default()
    }
}

/// Parses a body: JSON when it parses, text otherwise (an operation with a contract insists on
/// JSON).
fn parse_body(body: &[u8]) -> Result<Value, String> {
    if body.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

/// Classifies `answer` to a call of `op` (None for a plain `call: http` to the provider's base
/// URL) received at `now_ms`.
pub fn classify(op: Option<&Operation>, answer: &Answer<'_>, now_ms: u64) -> Verdict {
    let status = answer.status;
    match status {
        429 => {
            return Verdict::Transient {
                class: RetryOn::Throttled,
                after_ms: retry_after_ms(answer, now_ms),
                problem: communication("HTTP 429 Too Many Requests".into(), 429),
            };
        }
        408 => {
            return Verdict::Transient {
                class: RetryOn::RequestTimeout,
                after_ms: None,
                problem: communication("HTTP 408 Request Timeout".into(), 408),
            };
        }
        500..=599 => {
            return Verdict::Transient {
                class: RetryOn::ServerError,
                after_ms: retry_after_ms(answer, now_ms),
                problem: communication(format!("HTTP {status}"), status),
            };
        }
        200..=299 => {}
        _ => {
            let mut p = communication(format!("HTTP {status}"), status);
            if let Ok(Value::Object(body)) = parse_body(answer.body)
                && let Some(Value::String(d)) = body.get("detail").or(body.get("error"))
            {
                p = p.with_detail(d.clone());
            }
            return Verdict::Failed(p);
        }
    }
    let value = match parse_body(answer.body) {
        Ok(v) => v,
        Err(e) if op.is_some_and(|o| o.contract.is_some() || o.spec.freshness.is_some()) => {
            return Verdict::Failed(contract(format!("the body is not JSON: {e}")));
        }
        Err(_) => Value::String(String::from_utf8_lossy(answer.body).into_owned()),
    };
    let Some(op) = op else {
        return Verdict::Ok(value);
    };
    if status == 202
        && let Some(acc) = &op.accepted
    {
        let from_body = acc
            .status_url
            .as_ref()
            .and_then(|e| e.eval(&value, &[], &budget()).ok())
            .and_then(|v| v.as_str().map(str::to_string));
        let status_url = from_body.or_else(|| answer.header("location").map(str::to_string));
        return Verdict::Accepted {
            status_url,
            body: value,
        };
    }
    check_data(op, answer, value, now_ms)
}

/// Contract and freshness checks of a 2xx body (also used on a polled job's final answer).
pub fn check_data(op: &Operation, answer: &Answer<'_>, value: Value, now_ms: u64) -> Verdict {
    if let Some(schema) = &op.contract {
        let errors: Vec<String> = schema
            .iter_errors(&value)
            .take(3)
            .map(|e| {
                let at = e.instance_path().to_string();
                if at.is_empty() {
                    e.to_string()
                } else {
                    format!("{at}: {e}")
                }
            })
            .collect();
        if !errors.is_empty() {
            return Verdict::Failed(contract(format!(
                "`{}` answered a body that breaks its contract: {}",
                op.name,
                errors.join("; ")
            )));
        }
    }
    if let Some(f) = &op.spec.freshness {
        let stamp = match (&op.as_of, &f.header) {
            (Some(expr), _) => expr
                .eval(&value, &[], &budget())
                .ok()
                .and_then(|v| time_value_ms(&v)),
            (None, Some(h)) => answer.header(h).and_then(parse_time_ms),
            (None, None) => None,
        };
        let Some(observed_at_ms) = stamp else {
            return Verdict::Stale {
                value,
                observed_at_ms: 0,
                reason: format!(
                    "`{}` answered without a readable as-of time: its age is unknown",
                    op.name
                ),
            };
        };
        let age = now_ms.saturating_sub(observed_at_ms);
        if age > f.max_age.ms() {
            return Verdict::Stale {
                value,
                observed_at_ms,
                reason: format!(
                    "`{}` answered data {} old; at most {} is accepted",
                    op.name,
                    human_ms(age),
                    human_ms(f.max_age.ms())
                ),
            };
        }
    }
    Verdict::Ok(value)
}

/// The reconcile operation's answer: `Some(true)` applied, `Some(false)` not applied, `None`
/// when the answer does not say (the outcome stays unknown).
pub fn reconcile_answer(op: &Operation, answer: &Answer<'_>) -> Option<bool> {
    match answer.status {
        404 | 410 => Some(false),
        200..=299 => {
            let body = parse_body(answer.body).unwrap_or(Value::Null);
            let verdict = match &op.applied {
                Some(e) => e.eval(&body, &[], &budget()).ok()?,
                None => body.get("applied").cloned().unwrap_or(Value::Bool(true)),
            };
            verdict.as_bool()
        }
        _ => None,
    }
}

/// `Retry-After` as milliseconds from now: delta-seconds or an HTTP date.
pub fn retry_after_ms(answer: &Answer<'_>, now_ms: u64) -> Option<u64> {
    let v = answer.header("retry-after")?.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| (secs * 1000.0).min(86_400_000.0) as u64);
    }
    parse_time_ms(v).map(|at| at.saturating_sub(now_ms))
}

fn time_value_ms(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => parse_time_ms(s),
        _ => None,
    }
}

fn human_ms(ms: u64) -> String {
    if ms >= 3_600_000 {
        format!("{:.1} h", ms as f64 / 3_600_000.0)
    } else if ms >= 60_000 {
        format!("{:.1} min", ms as f64 / 60_000.0)
    } else if ms >= 1_000 {
        format!("{:.1} s", ms as f64 / 1_000.0)
    } else {
        format!("{ms} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::load_catalog;

    const CATALOG: &str = r#"
providers:
  inv:
    base_url: http://127.0.0.1:9/inv
    operations:
      stock:
        path: "/stock/{store}"
        contract: { type: object, required: [stock, as_of], properties: { stock: { type: integer } } }
        freshness: { as_of: .as_of, max_age: 1h }
      dated: { path: /d, freshness: { header: last-modified, max_age: 10m } }
      plan:
        method: POST
        path: /plans
        accepted: { done: '.status == "done"' }
"#;

    fn run(name: &str, status: u16, headers: &[(&str, &str)], body: &str, now: u64) -> Verdict {
        let c = load_catalog(CATALOG).expect("catalog");
        let o = &c.get("inv").expect("inv").operations[name];
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        classify(
            Some(o),
            &Answer {
                status,
                headers: &headers,
                body: body.as_bytes(),
            },
            now,
        )
    }

    // 2026-11-23T06:00:00Z
    const NOW: u64 = 1_795_413_600_000;

    #[test]
    fn fresh_valid_data_is_ok() {
        let v = run(
            "stock",
            200,
            &[],
            r#"{"stock": 4, "as_of": "2026-11-23T05:30:00Z"}"#,
            NOW,
        );
        assert!(matches!(v, Verdict::Ok(_)), "{v:?}");
    }

    #[test]
    fn old_data_is_stale_not_ok() {
        let v = run(
            "stock",
            200,
            &[],
            r#"{"stock": 4, "as_of": "2026-11-22T23:00:00-05:00"}"#,
            NOW,
        );
        let Verdict::Stale { reason, .. } = v else {
            panic!("{v:?}")
        };
        assert!(reason.contains("2.0 h old"), "{reason}");
        let v = run("stock", 200, &[], r#"{"stock": 4, "as_of": null}"#, NOW);
        assert!(
            matches!(&v, Verdict::Stale { reason, .. } if reason.contains("age is unknown")),
            "{v:?}"
        );
        let v = run(
            "dated",
            200,
            &[("Last-Modified", "Mon, 23 Nov 2026 05:55:00 GMT")],
            "{}",
            NOW,
        );
        assert!(matches!(v, Verdict::Ok(_)), "{v:?}");
        let v = run("dated", 200, &[], "{}", NOW);
        assert!(
            matches!(v, Verdict::Stale { .. }),
            "no date: age unknown: {v:?}"
        );
    }

    #[test]
    fn contract_violations_and_garbage_are_failures() {
        for body in [
            r#"{"stock": "N/A", "as_of": "2026-11-23T05:59:00Z"}"#,
            "<html>oops",
            "{\"stock\": 1",
        ] {
            let v = run("stock", 200, &[], body, NOW);
            let Verdict::Failed(p) = &v else {
                panic!("{v:?}")
            };
            assert_eq!(p.type_, baton_types::CONTRACT);
            assert!(v.breaker_failure());
        }
    }

    #[test]
    fn statuses() {
        let v = run("stock", 429, &[("Retry-After", "2")], "", NOW);
        assert!(matches!(
            v,
            Verdict::Transient {
                class: RetryOn::Throttled,
                after_ms: Some(2000),
                ..
            }
        ));
        assert!(!v.breaker_failure());
        let v = run("stock", 503, &[], "", NOW);
        assert!(matches!(
            v,
            Verdict::Transient {
                class: RetryOn::ServerError,
                ..
            }
        ));
        assert!(v.breaker_failure());
        let v = run("stock", 404, &[], r#"{"detail": "no store 9"}"#, NOW);
        let Verdict::Failed(p) = v else { panic!() };
        assert_eq!((p.status, p.detail.as_deref()), (404, Some("no store 9")));
        let v = run(
            "plan",
            202,
            &[("Location", "/inv/plans/7")],
            r#"{"status":"running"}"#,
            NOW,
        );
        assert_eq!(
            v,
            Verdict::Accepted {
                status_url: Some("/inv/plans/7".into()),
                body: serde_json::json!({"status":"running"})
            }
        );
    }

    #[test]
    fn retry_after_as_a_date() {
        let h = [(
            "retry-after".to_string(),
            "Mon, 23 Nov 2026 06:00:03 GMT".to_string(),
        )];
        let a = Answer {
            status: 429,
            headers: &h,
            body: b"",
        };
        assert_eq!(retry_after_ms(&a, NOW), Some(3_000));
    }
}
