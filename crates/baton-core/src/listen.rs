//! Event consumption strategies of `listen` (`one`, `any` with `until`, `all`) and the matching of
//! CloudEvents against event filters. Matching is pure so the driver and the core agree on it.

use serde_json::Value;

use crate::problem::{ErrorKind, Problem};

/// A parsed `listen.to`.
#[derive(Debug, Clone)]
pub enum Strategy {
    /// Each filter must be matched once (`one` is `all` of one filter).
    All(Vec<Value>),
    /// Any filter; with `until` keep consuming until the condition holds.
    Any {
        filters: Vec<Value>,
        until: Option<Until>,
    },
}

#[derive(Debug, Clone)]
pub enum Until {
    Expression(String),
    Strategy(Box<Strategy>),
}

/// Progress through a strategy: which filters have matched so far.
#[derive(Debug, Clone, Default)]
pub struct State {
    matched: Vec<bool>,
    until: Option<Box<State>>,
    any_seen: bool,
}

fn filters_of(v: &Value, what: &str) -> Result<Vec<Value>, Problem> {
    let arr = v.as_array().ok_or_else(|| {
        Problem::new(
            ErrorKind::Configuration,
            format!("`listen.to.{what}` must be a list"),
        )
    })?;
    Ok(arr
        .iter()
        .map(|f| f.get("with").cloned().unwrap_or(Value::Null))
        .collect())
}

impl Strategy {
    pub fn parse(to: &Value) -> Result<Strategy, Problem> {
        if let Some(one) = to.get("one") {
            return Ok(Strategy::All(vec![
                one.get("with").cloned().unwrap_or(Value::Null),
            ]));
        }
        if let Some(all) = to.get("all") {
            return Ok(Strategy::All(filters_of(all, "all")?));
        }
        if let Some(any) = to.get("any") {
            let until = match to.get("until") {
                None => None,
                Some(Value::String(s)) => Some(Until::Expression(s.clone())),
                Some(other) => Some(Until::Strategy(Box::new(Strategy::parse(other)?))),
            };
            return Ok(Strategy::Any {
                filters: filters_of(any, "any")?,
                until,
            });
        }
        Err(Problem::new(
            ErrorKind::Configuration,
            "`listen.to` needs one of `one`, `any`, `all`",
        ))
    }

    pub fn start(&self) -> State {
        match self {
            Strategy::All(f) => State {
                matched: vec![false; f.len()],
                ..State::default()
            },
            Strategy::Any { filters, until } => State {
                matched: vec![false; filters.len()],
                until: match until {
                    Some(Until::Strategy(s)) => Some(Box::new(s.start())),
                    _ => None,
                },
                any_seen: false,
            },
        }
    }

    /// The filters an incoming event may match to be consumed next.
    pub fn pending_filters(&self, state: &State) -> Vec<Value> {
        match self {
            Strategy::All(f) => f
                .iter()
                .zip(&state.matched)
                .filter(|(_, m)| !**m)
                .map(|(f, _)| f.clone())
                .collect(),
            Strategy::Any { filters, until } => {
                let mut out = filters.clone();
                if let (Some(Until::Strategy(s)), Some(us)) = (until, &state.until) {
                    out.extend(s.pending_filters(us));
                }
                // `any: []` means any event at all.
                if out.is_empty() {
                    out.push(Value::Object(Default::default()));
                }
                out
            }
        }
    }

    /// Records a consumed event. Returns true when the event only served the `until` strategy
    /// (such events are not part of the task's output, as the spec says).
    pub fn record(&self, state: &mut State, event: &Value) -> bool {
        match self {
            Strategy::All(f) => {
                if let Some(i) = f
                    .iter()
                    .zip(&state.matched)
                    .position(|(flt, m)| !*m && matches(flt, event))
                {
                    state.matched[i] = true;
                }
                false
            }
            Strategy::Any { filters, until } => {
                let main = filters.is_empty() || filters.iter().any(|f| matches(f, event));
                if main {
                    state.any_seen = true;
                    return false;
                }
                if let (Some(Until::Strategy(s)), Some(us)) = (until, state.until.as_mut()) {
                    s.record(us, event);
                    return true;
                }
                false
            }
        }
    }

    pub fn is_done(&self, state: &State) -> bool {
        match self {
            Strategy::All(_) => state.matched.iter().all(|m| *m),
            Strategy::Any { until: None, .. } => state.any_seen,
            Strategy::Any {
                until: Some(Until::Strategy(s)),
                ..
            } => state.until.as_ref().is_some_and(|us| s.is_done(us)),
            Strategy::Any {
                until: Some(Until::Expression(_)),
                ..
            } => false,
        }
    }

    pub fn until_expression(&self) -> Option<&str> {
        match self {
            Strategy::Any {
                until: Some(Until::Expression(e)),
                ..
            } => Some(e),
            _ => None,
        }
    }
}

/// Whether a CloudEvent matches a filter's `with` properties: every literal property equals the
/// event attribute; a `${…}` property is a jq predicate evaluated on that attribute.
pub fn matches(with: &Value, event: &Value) -> bool {
    let Some(props) = with.as_object() else {
        return true;
    };
    props.iter().all(|(k, expected)| {
        let actual = event.get(k).unwrap_or(&Value::Null);
        match expected {
            Value::String(s) => match baton_expr::strip_strict(s) {
                Some(src) => baton_expr::Expr::compile(src, &[])
                    .map(|e| e.eval(actual, &[], &baton_expr::Budget::default()))
                    .ok()
                    .and_then(Result::ok)
                    .is_some_and(|v| !matches!(v, Value::Null | Value::Bool(false))),
                None => actual.as_str() == Some(s.as_str()),
            },
            other => other == actual,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn all_needs_every_filter() {
        let s =
            Strategy::parse(&json!({"all": [{"with": {"type": "a"}}, {"with": {"type": "b"}}]}))
                .unwrap();
        let mut st = s.start();
        s.record(&mut st, &json!({"type": "a"}));
        assert!(!s.is_done(&st));
        assert_eq!(s.pending_filters(&st), vec![json!({"type": "b"})]);
        s.record(&mut st, &json!({"type": "b"}));
        assert!(s.is_done(&st));
    }

    #[test]
    fn literal_and_expression_filters() {
        assert!(matches(
            &json!({"type": "t", "source": "s"}),
            &json!({"type": "t", "source": "s", "id": "1"})
        ));
        assert!(!matches(&json!({"type": "t"}), &json!({"type": "u"})));
        assert!(matches(
            &json!({"data": "${ .temperature > 38 }"}),
            &json!({"data": {"temperature": 39}})
        ));
        assert!(!matches(
            &json!({"data": "${ .temperature > 38 }"}),
            &json!({"data": {"temperature": 37}})
        ));
    }
}
