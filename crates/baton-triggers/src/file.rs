//! The trigger file: a YAML (or JSON) list of rules, loaded with `file:line:column` diagnostics
//! like flows and the provider catalogue.
//!
//! ```yaml
//! triggers:
//!   - name: new-order                  # unique; part of the ids of the instances it starts
//!     on: { type: maplewood.order.created, source: maplewood/portal* }
//!     when: ${ .data.lines | length > 0 }   # jq over {event, data}; default: always
//!     start:
//!       flow: order-intake
//!       namespace: maplewood
//!       version: latest                # default
//!       input: ${ .data }              # jq over {event, data}; default: the event's data
//!     dedupe: { window: 24h }          # default 24h
//!   - name: truck-moved
//!     on: { type: maplewood.gps.position }
//!     debounce: { key: ${ .data.truck }, window: 30s }
//!     signal:
//!       flow: reroute
//!       namespace: maplewood
//!       instance: ${ .data.instance }  # optional: aim at one instance
//!   - name: eta-changed
//!     on: { type: maplewood.eta.updated }
//!     echo:                            # how to recognise the echo of Baton's own change
//!       entity: ${ .data.shipment }    # jq over {event, data}: the entity the event is about
//!       expect_within: 10m             # after Baton announced a change of that entity
//!     echoes: false                    # default: do not act on echoes
//!     start: { flow: reroute-shipment, namespace: maplewood }
//! ```
//!
//! An event is an echo when it carries back the causation id of an effect Baton performed (the
//! extension attribute `batoncausation`, or `data.causation_id`), or when a rule's `echo:` finds
//! a change Baton announced for the event's entity within `expect_within` (see
//! `Triggers::expect_change`). A rule does not act on an echo unless it says `echoes: true`.
//!
//! Loading reports everything it finds, each problem with a stable code:
//! - `BATON-TRIG-001`: not valid YAML (the flow parser's code is kept in the message).
//! - `BATON-TRIG-002`: not the trigger file's shape (a wrong type, an unknown or missing field).
//! - `BATON-TRIG-003`: an invalid value (a duration, a pattern, a duplicate or empty name, not
//!   exactly one of `start` and `signal`).
//! - `BATON-TRIG-004`: a jq expression that does not compile.
//!
//! The model is read by hand from the parsed value rather than through serde so that every
//! problem is reported (not only the first) at the exact node it concerns.

use baton_expr::Expr;
use baton_flow::diag::pointer_push;
use baton_flow::{Diagnostic, SpanIndex};
use serde_json::{Map, Value};

const CODE_SYNTAX: &str = "BATON-TRIG-001";
const CODE_MODEL: &str = "BATON-TRIG-002";
const CODE_VALUE: &str = "BATON-TRIG-003";
const CODE_COMPILE: &str = "BATON-TRIG-004";

/// The dedupe window when a rule does not say.
pub const DEFAULT_DEDUPE_WINDOW_MS: u64 = 24 * 3_600_000;

/// A loaded, checked trigger file.
#[derive(Debug, Clone, Default)]
pub struct TriggerSet {
    pub rules: Vec<Rule>,
}

impl TriggerSet {
    /// How long the identities of events (`source` + `id`) are remembered: the longest dedupe
    /// window of any rule. The memory is the event store's, shared by every rule, so a rule with
    /// a shorter window still sees a repeat as a duplicate until the longest one has passed.
    pub fn dedupe_window_ms(&self) -> u64 {
        self.rules
            .iter()
            .map(|r| r.dedupe_window_ms)
            .max()
            .unwrap_or(DEFAULT_DEDUPE_WINDOW_MS)
    }
}

/// One rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub on_type: Pattern,
    pub on_source: Pattern,
    /// The context gate: the rule acts only when this is neither `null` nor `false`.
    pub when: Option<Expr>,
    pub action: Action,
    pub dedupe_window_ms: u64,
    pub debounce: Option<Debounce>,
    /// Whether the rule also acts on echoes of Baton's own effects (events that carry back a
    /// causation id of Baton's, or that this rule's `echo` recognises). Default false: an event
    /// Baton caused must not start a new decision about what Baton just decided.
    pub echoes: bool,
    /// How this rule recognises the echo of a change Baton announced, for events that do not
    /// carry the causation id back.
    pub echo: Option<EchoMatch>,
}

/// `echo: {entity, expect_within}`: an event whose entity has a change announced by Baton (and
/// not yet echoed) within the last `expect_within` is that change's echo.
#[derive(Debug, Clone)]
pub struct EchoMatch {
    /// jq over `{event, data}`: the entity the event is about (a string or a number; `null` when
    /// the event is about no entity, which is then never an echo by this rule).
    pub entity: Expr,
    pub expect_within_ms: u64,
}

/// What a rule does with an event that passes its gate.
#[derive(Debug, Clone)]
pub enum Action {
    /// Start an instance of a flow, with an input computed from the event.
    Start {
        flow: String,
        namespace: String,
        /// `latest` or an exact version.
        version: String,
        /// jq over `{event, data}`; `None` hands the event's `data` over.
        input: Option<Expr>,
    },
    /// Hand the event to waiting instances through the normal listen path (their filters and
    /// `correlate` select it); with `instance`, only to that instance.
    Signal {
        flow: String,
        namespace: String,
        /// jq over `{event, data}` producing the id of the one instance the event is for.
        instance: Option<Expr>,
    },
}

impl Action {
    pub fn flow(&self) -> &str {
        match self {
            Action::Start { flow, .. } | Action::Signal { flow, .. } => flow,
        }
    }
}

/// Events of a rule with the same key within `window_ms` of each other collapse to the last
/// one, which acts once the key has been quiet for the window.
#[derive(Debug, Clone)]
pub struct Debounce {
    /// jq over `{event, data}`.
    pub key: Expr,
    pub window_ms: u64,
}

/// An attribute pattern: exact text, a prefix ending in `*`, or `*` for anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    Any,
    Exact(String),
    Prefix(String),
}

impl Pattern {
    fn parse(text: &str) -> Result<Pattern, String> {
        match text.find('*') {
            None => Ok(Pattern::Exact(text.to_string())),
            Some(i) if i + 1 == text.len() => Ok(if i == 0 {
                Pattern::Any
            } else {
                Pattern::Prefix(text[..i].to_string())
            }),
            Some(_) => Err(format!(
                "`{text}`: `*` may only end a pattern (a prefix match such as `maplewood.order.*`)"
            )),
        }
    }

    pub fn matches(&self, value: Option<&str>) -> bool {
        match (self, value) {
            (Pattern::Any, _) => true,
            (Pattern::Exact(p), Some(v)) => p == v,
            (Pattern::Prefix(p), Some(v)) => v.starts_with(p.as_str()),
            (_, None) => false,
        }
    }
}

/// Loads and checks a trigger file. `Ok` only when nothing is wrong; otherwise every diagnostic
/// found, in source order. Render them with `Diagnostic::render(path)`.
pub fn load_triggers(text: &str) -> Result<TriggerSet, Vec<Diagnostic>> {
    let parsed = baton_flow::parse::parse_document(text).map_err(|ds| {
        ds.into_iter()
            .map(|d| {
                Diagnostic::coded(
                    CODE_SYNTAX,
                    format!("{} ({})", d.message, d.code),
                    d.pointer,
                    baton_flow::SourceLocation {
                        line: d.line,
                        column: d.column,
                    },
                )
            })
            .collect::<Vec<_>>()
    })?;
    let mut reader = Reader {
        spans: &parsed.spans,
        diags: Vec::new(),
        names: Vec::new(),
    };
    let mut rules = Vec::new();
    if let Some(root) = reader.object(&parsed.value, "", &["triggers"], &["triggers"]) {
        match root.get("triggers") {
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(rule) =
                        reader.rule(item, &pointer_push("/triggers", &i.to_string()))
                    {
                        rules.push(rule);
                    }
                }
            }
            Some(_) => reader.report(
                CODE_MODEL,
                "/triggers",
                "`triggers` must be a list of rules".into(),
            ),
            None => {}
        }
    }
    if reader.diags.is_empty() {
        Ok(TriggerSet { rules })
    } else {
        let mut diags = reader.diags;
        diags.sort_by_key(|d| (d.line, d.column));
        Err(diags)
    }
}

struct Reader<'a> {
    spans: &'a SpanIndex,
    diags: Vec<Diagnostic>,
    /// Rule names so far, with the rule's position (1-based) for the duplicate message.
    names: Vec<(String, usize)>,
}

impl Reader<'_> {
    fn report(&mut self, code: &str, pointer: &str, message: String) {
        let at = self.spans.nearest_value(pointer);
        self.diags
            .push(Diagnostic::coded(code, message, pointer.to_string(), at));
    }

    fn report_key(&mut self, code: &str, pointer: &str, message: String) {
        let at = self.spans.nearest_key(pointer);
        self.diags
            .push(Diagnostic::coded(code, message, pointer.to_string(), at));
    }

    /// A mapping with only `allowed` keys and all of `required`; reports what is wrong.
    fn object<'v>(
        &mut self,
        v: &'v Value,
        pointer: &str,
        allowed: &[&str],
        required: &[&str],
    ) -> Option<&'v Map<String, Value>> {
        let Some(obj) = v.as_object() else {
            let what = if pointer.is_empty() {
                "the trigger file".to_string()
            } else {
                format!("`{}`", last_token(pointer))
            };
            self.report(CODE_MODEL, pointer, format!("{what} must be a mapping"));
            return None;
        };
        for k in obj.keys() {
            if !allowed.contains(&k.as_str()) {
                self.report_key(
                    CODE_MODEL,
                    &pointer_push(pointer, k),
                    format!(
                        "unknown field `{k}` (expected one of: {})",
                        allowed.join(", ")
                    ),
                );
            }
        }
        for r in required {
            if !obj.contains_key(*r) {
                self.report_key(CODE_MODEL, pointer, format!("missing field `{r}`"));
            }
        }
        Some(obj)
    }

    fn string(&mut self, obj: &Map<String, Value>, pointer: &str, key: &str) -> Option<String> {
        match obj.get(key)? {
            Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
            Value::String(_) => {
                self.report(
                    CODE_VALUE,
                    &pointer_push(pointer, key),
                    format!("`{key}` must not be empty"),
                );
                None
            }
            _ => {
                self.report(
                    CODE_MODEL,
                    &pointer_push(pointer, key),
                    format!("`{key}` must be a string"),
                );
                None
            }
        }
    }

    fn expr(&mut self, obj: &Map<String, Value>, pointer: &str, key: &str) -> Option<Expr> {
        let src = self.string(obj, pointer, key)?;
        let jq = baton_expr::loose_source(&src);
        match Expr::compile(jq, &[]) {
            Ok(e) => Some(e),
            Err(e) => {
                self.report(
                    CODE_COMPILE,
                    &pointer_push(pointer, key),
                    format!("`{}` is not a valid jq expression: {e}", jq.trim()),
                );
                None
            }
        }
    }

    fn duration(&mut self, obj: &Map<String, Value>, pointer: &str, key: &str) -> Option<u64> {
        let p = pointer_push(pointer, key);
        let ms = match obj.get(key)? {
            Value::String(s) => match baton_flow::parse_duration_text_ms(s) {
                Ok(ms) => ms,
                Err(e) => {
                    self.report(CODE_VALUE, &p, e);
                    return None;
                }
            },
            Value::Number(n) if n.as_u64().is_some() => n.as_u64().unwrap_or(0),
            _ => {
                self.report(
                    CODE_MODEL,
                    &p,
                    format!("`{key}` must be a duration such as `30s` or `24h`"),
                );
                return None;
            }
        };
        if ms == 0 {
            self.report(CODE_VALUE, &p, format!("`{key}` must be longer than zero"));
            return None;
        }
        Some(ms)
    }

    fn rule(&mut self, v: &Value, pointer: &str) -> Option<Rule> {
        let obj = self.object(
            v,
            pointer,
            &[
                "name", "on", "when", "start", "signal", "dedupe", "debounce", "echoes", "echo",
            ],
            &["name", "on"],
        )?;
        let before = self.diags.len();
        let name = self.string(obj, pointer, "name");
        if let Some(n) = &name {
            // Names are part of the ids of started instances and of the counters: they must
            // tell rules apart.
            let position = last_token(pointer).parse::<usize>().map_or(0, |i| i + 1);
            if let Some((_, first)) = self.names.iter().find(|(m, _)| m == n) {
                let first = *first;
                self.report(
                    CODE_VALUE,
                    &pointer_push(pointer, "name"),
                    format!("the rule name `{n}` is already used by rule {first}"),
                );
            }
            self.names.push((n.clone(), position));
        }
        let (on_type, on_source) = match obj.get("on") {
            Some(on) => self.on(on, &pointer_push(pointer, "on")),
            None => (None, Some(Pattern::Any)),
        };
        let when = if obj.contains_key("when") {
            self.expr(obj, pointer, "when")
        } else {
            None
        };
        let action = match (obj.get("start"), obj.get("signal")) {
            (Some(s), None) => self.start(s, &pointer_push(pointer, "start")),
            (None, Some(s)) => self.signal(s, &pointer_push(pointer, "signal")),
            (Some(_), Some(_)) => {
                self.report_key(
                    CODE_VALUE,
                    &pointer_push(pointer, "signal"),
                    "a rule either starts or signals, not both: write two rules".into(),
                );
                None
            }
            (None, None) => {
                self.report_key(
                    CODE_VALUE,
                    pointer,
                    "a rule needs an action: `start` or `signal`".into(),
                );
                None
            }
        };
        let mut dedupe_window_ms = DEFAULT_DEDUPE_WINDOW_MS;
        if let Some(d) = obj.get("dedupe") {
            let p = pointer_push(pointer, "dedupe");
            if let Some(o) = self.object(d, &p, &["window"], &["window"])
                && let Some(ms) = self.duration(o, &p, "window")
            {
                dedupe_window_ms = ms;
            }
        }
        let debounce = match obj.get("debounce") {
            Some(d) => {
                let p = pointer_push(pointer, "debounce");
                self.object(d, &p, &["key", "window"], &["key", "window"])
                    .and_then(|o| {
                        let key = self.expr(o, &p, "key");
                        let window = self.duration(o, &p, "window");
                        Some(Debounce {
                            key: key?,
                            window_ms: window?,
                        })
                    })
            }
            None => None,
        };
        let echoes = match obj.get("echoes") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                self.report(
                    CODE_MODEL,
                    &pointer_push(pointer, "echoes"),
                    "`echoes` must be true or false".into(),
                );
                false
            }
        };
        let echo = match obj.get("echo") {
            Some(e) => {
                let p = pointer_push(pointer, "echo");
                self.object(
                    e,
                    &p,
                    &["entity", "expect_within"],
                    &["entity", "expect_within"],
                )
                .and_then(|o| {
                    let entity = self.expr(o, &p, "entity");
                    let within = self.duration(o, &p, "expect_within");
                    Some(EchoMatch {
                        entity: entity?,
                        expect_within_ms: within?,
                    })
                })
            }
            None => None,
        };
        if self.diags.len() > before {
            return None;
        }
        Some(Rule {
            name: name?,
            on_type: on_type?,
            on_source: on_source?,
            when,
            action: action?,
            dedupe_window_ms,
            debounce,
            echoes,
            echo,
        })
    }

    fn on(&mut self, v: &Value, pointer: &str) -> (Option<Pattern>, Option<Pattern>) {
        let Some(obj) = self.object(v, pointer, &["type", "source"], &["type"]) else {
            return (None, None);
        };
        let mut pattern = |key: &str| -> Option<Pattern> {
            let text = self.string(obj, pointer, key)?;
            match Pattern::parse(&text) {
                Ok(p) => Some(p),
                Err(e) => {
                    self.report(CODE_VALUE, &pointer_push(pointer, key), e);
                    None
                }
            }
        };
        let on_type = pattern("type");
        let on_source = if obj.contains_key("source") {
            pattern("source")
        } else {
            Some(Pattern::Any)
        };
        (on_type, on_source)
    }

    fn start(&mut self, v: &Value, pointer: &str) -> Option<Action> {
        let obj = self.object(
            v,
            pointer,
            &["flow", "namespace", "version", "input"],
            &["flow", "namespace"],
        )?;
        let flow = self.string(obj, pointer, "flow");
        let namespace = self.string(obj, pointer, "namespace");
        let version = if obj.contains_key("version") {
            self.string(obj, pointer, "version")
        } else {
            Some("latest".to_string())
        };
        let input = if obj.contains_key("input") {
            Some(self.expr(obj, pointer, "input")?)
        } else {
            None
        };
        Some(Action::Start {
            flow: flow?,
            namespace: namespace?,
            version: version?,
            input,
        })
    }

    fn signal(&mut self, v: &Value, pointer: &str) -> Option<Action> {
        let obj = self.object(
            v,
            pointer,
            &["flow", "namespace", "instance"],
            &["flow", "namespace"],
        )?;
        let flow = self.string(obj, pointer, "flow");
        let namespace = self.string(obj, pointer, "namespace");
        let instance = if obj.contains_key("instance") {
            Some(self.expr(obj, pointer, "instance")?)
        } else {
            None
        };
        Some(Action::Signal {
            flow: flow?,
            namespace: namespace?,
            instance,
        })
    }
}

fn last_token(pointer: &str) -> &str {
    pointer.rsplit('/').next().unwrap_or(pointer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert_eq!(Pattern::parse("*").unwrap(), Pattern::Any);
        assert!(Pattern::parse("a.*").unwrap().matches(Some("a.b")));
        assert!(!Pattern::parse("a.*").unwrap().matches(Some("b.a")));
        assert!(Pattern::parse("a").unwrap().matches(Some("a")));
        assert!(!Pattern::parse("a").unwrap().matches(None));
        assert!(Pattern::parse("a*b").is_err());
    }

    #[test]
    fn defaults() {
        let set = load_triggers(
            "triggers:\n  - name: r\n    on: {type: t}\n    start: {flow: f, namespace: n}\n",
        )
        .unwrap();
        let r = &set.rules[0];
        assert_eq!(r.dedupe_window_ms, DEFAULT_DEDUPE_WINDOW_MS);
        assert_eq!(r.on_source, Pattern::Any);
        assert!(!r.echoes && r.echo.is_none() && r.debounce.is_none() && r.when.is_none());
        assert!(
            matches!(&r.action, Action::Start { version, input: None, .. } if version == "latest")
        );
    }

    #[test]
    fn echo_recognition_is_read_and_checked() {
        let set = load_triggers(
            "triggers:\n  - name: r\n    on: {type: t}\n    echo: {entity: '${ .data.shipment }', expect_within: 10m}\n    echoes: true\n    start: {flow: f, namespace: n}\n",
        )
        .unwrap();
        let e = set.rules[0].echo.as_ref().expect("echo");
        assert_eq!(e.expect_within_ms, 600_000);
        assert!(set.rules[0].echoes);
        let diags = load_triggers(
            "triggers:\n  - name: r\n    on: {type: t}\n    echo: {entity: '${ .[ }', within: 0s}\n    start: {flow: f, namespace: n}\n",
        )
        .unwrap_err();
        let codes: Vec<&str> = diags.iter().map(|d| d.code.as_str()).collect();
        let text: Vec<String> = diags.iter().map(|d| d.message.clone()).collect();
        assert!(codes.contains(&CODE_COMPILE), "{text:?}");
        assert!(
            text.iter().any(|m| m.contains("unknown field `within`")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|m| m.contains("missing field `expect_within`")),
            "{text:?}"
        );
    }
}
