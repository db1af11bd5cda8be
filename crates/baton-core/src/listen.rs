//! Event consumption strategies of `listen` (`one`, `any` with `until`, `all`) and the matching of
//! CloudEvents against event filters. Matching is pure so the driver and the core agree on it.
//!
//! A filter as the core hands it to the driver (in [`crate::EffectRequest::Listen`]) is the
//! spec's `with` object, plus two reserved keys that no CloudEvents attribute can collide with
//! (attribute names are lowercase letters and digits only):
//! - [`CORRELATE_KEY`]: the filter's `correlate` with each `expect` already resolved on the
//!   instance (`{name: {from, expect}}`); an event matches only if every `from`, evaluated on
//!   the event, equals its `expect`. A correlation without `expect` takes the value extracted
//!   from the first event the task consumes (the spec's rule), until then it accepts any value.
//! - [`INSTANCE_KEY`]: the listening instance's id. An event carrying the extension attribute
//!   [`TARGET_ATTRIBUTE`] (a signal aimed at one instance) is visible only to filters whose
//!   instance equals it.

use serde_json::{Map, Value};

use crate::problem::{ErrorKind, Problem};

/// Reserved key of a resolved filter: its correlations, `{name: {from, expect}}`.
pub const CORRELATE_KEY: &str = "$correlate";
/// Reserved key of a resolved filter: the id of the instance that listens.
pub const INSTANCE_KEY: &str = "$instance";
/// The CloudEvents extension attribute naming the one instance an event is for.
pub const TARGET_ATTRIBUTE: &str = "batoninstance";

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
                // `any: []` means any event at all; the scoping keys still apply, so a signal
                // aimed at another instance is not "any event" for this one.
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

    /// Every filter of the strategy, `until` included.
    fn filters_mut(&mut self) -> Vec<&mut Value> {
        match self {
            Strategy::All(f) => f.iter_mut().collect(),
            Strategy::Any { filters, until } => {
                let mut out: Vec<&mut Value> = filters.iter_mut().collect();
                if let Some(Until::Strategy(s)) = until {
                    out.extend(s.filters_mut());
                }
                out
            }
        }
    }

    /// Binds the correlations that have no `expect` to the values extracted from a consumed
    /// event: "if not set, the first extracted value will be used as the correlation's
    /// expectation". Correlations are bound by name across all the filters of the task, so
    /// `all: [order, payment]` correlated by `orderId` waits for a payment of the same order as
    /// the first event taken. The event is journaled, so replay binds the same values.
    pub fn bind_correlations(&mut self, event: &Value) {
        let mut bound: Map<String, Value> = Map::new();
        for filter in self.filters_mut() {
            if !matches(filter, event) {
                continue;
            }
            let Some(correlate) = filter.get(CORRELATE_KEY).and_then(Value::as_object) else {
                continue;
            };
            for (name, c) in correlate {
                if c.get("expect").is_some() || bound.contains_key(name) {
                    continue;
                }
                let value = c
                    .get("from")
                    .and_then(Value::as_str)
                    .and_then(|src| Test::compile(src).extract(event));
                if let Some(v) = value.filter(|v| !v.is_null()) {
                    bound.insert(name.clone(), v);
                }
            }
        }
        if bound.is_empty() {
            return;
        }
        for filter in self.filters_mut() {
            let Some(correlate) = filter.get_mut(CORRELATE_KEY).and_then(Value::as_object_mut)
            else {
                continue;
            };
            for (name, c) in correlate.iter_mut() {
                if let (Some(v), Some(obj)) = (bound.get(name), c.as_object_mut())
                    && !obj.contains_key("expect")
                {
                    obj.insert("expect".into(), v.clone());
                }
            }
        }
    }
}

/// Rewrites a `listen.to` for the driver: each event filter `{with, correlate}` becomes its
/// `with` object plus the reserved keys, `correlate`'s `expect` resolved by `resolve` (called
/// with the correlation's name and its `expect` as written) and the listening instance's id.
/// The result parses with [`Strategy::parse`] like the original.
pub fn resolve_filters(
    to: &Value,
    instance: &str,
    resolve: &mut dyn FnMut(&str, &Value) -> Result<Value, Problem>,
) -> Result<Value, Problem> {
    let Some(obj) = to.as_object() else {
        return Ok(to.clone());
    };
    let mut out = obj.clone();
    if let Some(one) = obj.get("one") {
        out.insert("one".into(), resolve_filter(one, instance, resolve)?);
    }
    for list in ["all", "any"] {
        if let Some(Value::Array(filters)) = obj.get(list) {
            let resolved = filters
                .iter()
                .map(|f| resolve_filter(f, instance, resolve))
                .collect::<Result<Vec<_>, _>>()?;
            out.insert(list.into(), Value::Array(resolved));
        }
    }
    if let Some(until @ Value::Object(_)) = obj.get("until") {
        out.insert("until".into(), resolve_filters(until, instance, resolve)?);
    }
    Ok(Value::Object(out))
}

fn resolve_filter(
    filter: &Value,
    instance: &str,
    resolve: &mut dyn FnMut(&str, &Value) -> Result<Value, Problem>,
) -> Result<Value, Problem> {
    let mut with = match filter.get("with") {
        Some(Value::Object(w)) => w.clone(),
        _ => Map::new(),
    };
    if let Some(correlate) = filter.get("correlate").and_then(Value::as_object) {
        let mut resolved = Map::new();
        for (name, c) in correlate {
            let Some(from) = c.get("from").and_then(Value::as_str) else {
                return Err(Problem::new(
                    ErrorKind::Configuration,
                    format!("The correlation `{name}` needs a `from` expression"),
                ));
            };
            let mut entry = Map::new();
            entry.insert("from".into(), Value::String(from.to_string()));
            if let Some(expect) = c.get("expect") {
                let value = resolve(name, expect)?;
                if value.is_null() {
                    // A null expectation would match every event lacking the key, or none:
                    // either way not what the author meant. Say so instead of waiting forever.
                    return Err(Problem::new(
                        ErrorKind::Validation,
                        format!("The correlation `{name}` expects null"),
                    )
                    .with_detail("its `expect` resolved to null on the instance's data"));
                }
                entry.insert("expect".into(), value);
            }
            resolved.insert(name.clone(), Value::Object(entry));
        }
        with.insert(CORRELATE_KEY.into(), Value::Object(resolved));
    }
    with.insert(INSTANCE_KEY.into(), Value::String(instance.to_string()));
    let mut out = Map::new();
    out.insert("with".into(), Value::Object(with));
    Ok(Value::Object(out))
}

/// How one property of a filter tests an event.
enum Test {
    /// A literal: the attribute must equal it.
    Equals(Value),
    /// A `${…}` predicate (or a correlation's `from`), compiled once; `None` when it does not
    /// compile (then nothing matches, as with an attribute that is absent).
    Expr(Option<baton_expr::Expr>),
}

impl Test {
    fn compile(src: &str) -> Test {
        Test::Expr(baton_expr::Expr::compile(baton_expr::loose_source(src), &[]).ok())
    }

    fn extract(&self, input: &Value) -> Option<Value> {
        match self {
            Test::Equals(v) => Some(v.clone()),
            Test::Expr(e) => e
                .as_ref()?
                .eval(input, &[], &baton_expr::Budget::default())
                .ok(),
        }
    }
}

/// A filter compiled once, to test many events (the driver scans the event log with it).
pub struct Matcher {
    attributes: Vec<(String, Test)>,
    /// `(from, expect)`; `expect` is `None` while a correlation is not bound yet.
    correlations: Vec<(Test, Option<Value>)>,
    instance: Option<String>,
}

impl Matcher {
    pub fn new(with: &Value) -> Matcher {
        let mut m = Matcher {
            attributes: Vec::new(),
            correlations: Vec::new(),
            instance: None,
        };
        let Some(props) = with.as_object() else {
            return m;
        };
        for (k, expected) in props {
            match k.as_str() {
                CORRELATE_KEY => {
                    for c in expected.as_object().into_iter().flat_map(|o| o.values()) {
                        let from = c.get("from").and_then(Value::as_str).unwrap_or("");
                        m.correlations
                            .push((Test::compile(from), c.get("expect").cloned()));
                    }
                }
                INSTANCE_KEY => m.instance = expected.as_str().map(str::to_string),
                _ => {
                    let test = match expected {
                        Value::String(s) => match baton_expr::strip_strict(s) {
                            Some(src) => Test::compile(src),
                            None => Test::Equals(expected.clone()),
                        },
                        other => Test::Equals(other.clone()),
                    };
                    m.attributes.push((k.clone(), test));
                }
            }
        }
        m
    }

    /// Whether the event passes: visible to this instance, every attribute as the filter says,
    /// every bound correlation equal.
    pub fn matches(&self, event: &Value) -> bool {
        // A signal aimed at one instance is invisible to every other listener, whatever its
        // filters say.
        if let Some(target) = event.get(TARGET_ATTRIBUTE).filter(|t| !t.is_null())
            && target.as_str() != self.instance.as_deref()
        {
            return false;
        }
        let attributes_ok = self.attributes.iter().all(|(k, test)| {
            let actual = event.get(k.as_str()).unwrap_or(&Value::Null);
            match test {
                Test::Equals(v) => v == actual,
                Test::Expr(_) => test
                    .extract(actual)
                    .is_some_and(|v| !matches!(v, Value::Null | Value::Bool(false))),
            }
        });
        attributes_ok
            && self.correlations.iter().all(|(from, expect)| {
                let Some(expect) = expect else { return true };
                from.extract(event).as_ref() == Some(expect)
            })
    }
}

/// Whether a CloudEvent matches a filter's `with` properties: every literal property equals the
/// event attribute; a `${…}` property is a jq predicate evaluated on that attribute; the
/// reserved keys scope and correlate as the module documentation says.
pub fn matches(with: &Value, event: &Value) -> bool {
    Matcher::new(with).matches(event)
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

    #[test]
    fn correlation_compares_the_extracted_value_with_the_resolved_expectation() {
        let to = json!({"one": {"with": {"type": "paid"},
            "correlate": {"order": {"from": "${ .data.order }", "expect": "${ .order }"}}}});
        let resolved = resolve_filters(&to, "i-1", &mut |_, _| Ok(json!(7))).unwrap();
        let s = Strategy::parse(&resolved).unwrap();
        let f = &s.pending_filters(&s.start())[0];
        assert!(matches(f, &json!({"type": "paid", "data": {"order": 7}})));
        assert!(!matches(f, &json!({"type": "paid", "data": {"order": 8}})));
        assert!(!matches(
            f,
            &json!({"type": "paid", "data": {"order": "7"}})
        ));
        assert!(!matches(f, &json!({"type": "paid"})));
    }

    #[test]
    fn a_null_expectation_is_refused() {
        let to = json!({"one": {"with": {"type": "paid"},
            "correlate": {"order": {"from": ".data.order", "expect": "${ .missing }"}}}});
        let err = resolve_filters(&to, "i-1", &mut |_, _| Ok(Value::Null)).unwrap_err();
        assert!(
            err.title.as_deref().unwrap_or("").contains("order"),
            "{err:?}"
        );
    }

    #[test]
    fn an_unset_expectation_binds_to_the_first_event_taken() {
        let to = json!({"all": [
            {"with": {"type": "order"}, "correlate": {"id": {"from": ".data.id"}}},
            {"with": {"type": "payment"}, "correlate": {"id": {"from": ".data.id"}}}]});
        let resolved = resolve_filters(&to, "i-1", &mut |_, v| Ok(v.clone())).unwrap();
        let mut s = Strategy::parse(&resolved).unwrap();
        let first = json!({"type": "order", "data": {"id": 3}});
        let mut st = s.start();
        assert!(matches(&s.pending_filters(&st)[0], &first));
        s.record(&mut st, &first);
        s.bind_correlations(&first);
        let pending = s.pending_filters(&st);
        assert_eq!(pending.len(), 1);
        assert!(!matches(
            &pending[0],
            &json!({"type": "payment", "data": {"id": 4}})
        ));
        assert!(matches(
            &pending[0],
            &json!({"type": "payment", "data": {"id": 3}})
        ));
    }

    #[test]
    fn a_targeted_event_is_visible_only_to_its_instance() {
        let mine = json!({"type": "t", INSTANCE_KEY: "a"});
        let theirs = json!({"type": "t", INSTANCE_KEY: "b"});
        let unscoped = json!({"type": "t"});
        let ev = json!({"type": "t", TARGET_ATTRIBUTE: "a"});
        assert!(matches(&mine, &ev));
        assert!(!matches(&theirs, &ev));
        assert!(!matches(&unscoped, &ev));
        // An event aimed at nobody (`""`, a trigger holding it back) is seen by no one.
        assert!(!matches(&mine, &json!({"type": "t", TARGET_ATTRIBUTE: ""})));
        assert!(matches(&theirs, &json!({"type": "t"})));
    }
}
