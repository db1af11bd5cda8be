//! The `with:` arguments of `call: approval`, checked before anything is stored: a task that
//! cannot be answered, escalated or closed as written must fail at once with the argument named,
//! not wait for a person who can do nothing with it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use baton_flow::duration_ms;

use super::calendar::{Calendar, CalendarSpec};
use super::policy::OverrideRule;

/// Defaults of the adaptive policy: enough samples to be stable, few enough to follow a change
/// in habits within a few weeks; p75 so that most answers come before the due time and the
/// escalation is for the unusual case.
const DEFAULT_SAMPLES: usize = 20;
const DEFAULT_PERCENTILE: u8 = 75;

/// What happens when the window ends with no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WindowEnd {
    /// Baton approves (the proposed `data` becomes the output).
    Approve,
    /// Baton rejects.
    Reject,
    /// The call fails with a timeout problem (the flow may catch it).
    Fail,
}

/// How the due time of a level is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DuePolicy {
    /// A fixed wall-clock time after the level was asked.
    Fixed { after_ms: u64 },
    /// The assignees' usual response time (a percentile of their last answers), counted in
    /// working time of the calendar and clamped to `[min_ms, max_ms]`; `default_ms` without
    /// history.
    Adaptive {
        calendar: CalendarSpec,
        default_ms: u64,
        min_ms: u64,
        max_ms: u64,
        samples: usize,
        percentile: u8,
    },
}

/// The checked arguments.
#[derive(Debug, Clone)]
pub struct ApprovalArgs {
    pub title: String,
    pub instance: Option<String>,
    pub data: Value,
    /// Level 0 (`assignees`) then each `escalate` level.
    pub levels: Vec<Vec<String>>,
    pub window_ms: u64,
    pub due: Option<DuePolicy>,
    pub on_window_end: WindowEnd,
    /// The decision's name for the override policy and reports (default: the title).
    pub decision: Option<String>,
    /// The flow's own override rule (`override:`), on top of the server's policy.
    pub override_rule: Option<OverrideRule>,
    /// Where the instance's output says what an override cost (a JSON Pointer, e.g.
    /// `/override_cost`), read once the instance has ended.
    pub cost: Option<String>,
}

const KEYS: [&str; 11] = [
    "title",
    "instance",
    "assignees",
    "data",
    "window",
    "due",
    "escalate",
    "on_window_end",
    "decision",
    "override",
    "cost",
];

fn positive_duration(v: &Value) -> Result<u64, String> {
    match duration_ms(v)? {
        0 => Err("must be longer than zero".into()),
        ms => Ok(ms),
    }
}

/// One level of assignees: a user name, `group:NAME`, or a list of them.
fn assignee_list(v: &Value) -> Result<Vec<String>, String> {
    let items: Vec<&Value> = match v {
        Value::String(_) => vec![v],
        Value::Array(a) => a.iter().collect(),
        Value::Object(o) if o.contains_key("assignees") && o.len() == 1 => {
            return assignee_list(&o["assignees"]);
        }
        _ => return Err("must be a user name, `group:NAME`, or a list of them".into()),
    };
    let mut out: Vec<String> = Vec::new();
    for i in items {
        let Some(s) = i.as_str().map(str::trim) else {
            return Err("must hold only strings (user names or `group:NAME`)".into());
        };
        if s.is_empty() || s == "group:" {
            return Err("has an empty name".into());
        }
        if !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    }
    if out.is_empty() {
        return Err("is empty: someone must be able to answer".into());
    }
    Ok(out)
}

fn adaptive(obj: &Map<String, Value>) -> Result<DuePolicy, String> {
    for k in obj.keys() {
        if !["calendar", "default", "min", "max", "samples", "percentile"].contains(&k.as_str()) {
            return Err(format!(
                "`due.adaptive`: unknown key `{k}` (expected calendar, default, min, max, samples, percentile)"
            ));
        }
    }
    let calendar = CalendarSpec::from_value(
        obj.get("calendar")
            .ok_or("`due.adaptive.calendar` is required")?,
    )
    .map_err(|e| format!("`due.adaptive.calendar`: {e}"))?;
    let dur = |k: &str| -> Result<u64, String> {
        positive_duration(
            obj.get(k)
                .ok_or_else(|| format!("`due.adaptive.{k}` is required"))?,
        )
        .map_err(|e| format!("`due.adaptive.{k}`: {e}"))
    };
    let (default_ms, min_ms, max_ms) = (dur("default")?, dur("min")?, dur("max")?);
    if min_ms > max_ms {
        return Err("`due.adaptive`: `min` is longer than `max`".into());
    }
    let samples = match obj.get("samples") {
        None => DEFAULT_SAMPLES,
        Some(v) => match v.as_u64() {
            Some(n @ 1..=200) => n as usize,
            _ => return Err("`due.adaptive.samples` must be a whole number from 1 to 200".into()),
        },
    };
    let percentile = match obj.get("percentile") {
        None => DEFAULT_PERCENTILE,
        Some(v) => match v.as_u64() {
            Some(n @ 1..=100) => n as u8,
            _ => {
                return Err(
                    "`due.adaptive.percentile` must be a whole number from 1 to 100".into(),
                );
            }
        },
    };
    Ok(DuePolicy::Adaptive {
        calendar,
        default_ms,
        min_ms,
        max_ms,
        samples,
        percentile,
    })
}

fn due_policy(v: &Value) -> Result<DuePolicy, String> {
    match v {
        // A bare duration is the fixed policy.
        Value::String(_) => positive_duration(v)
            .map(|after_ms| DuePolicy::Fixed { after_ms })
            .map_err(|e| format!("`due`: {e}")),
        Value::Object(o) if o.len() == 1 && o.contains_key("fixed") => {
            positive_duration(&o["fixed"])
                .map(|after_ms| DuePolicy::Fixed { after_ms })
                .map_err(|e| format!("`due.fixed`: {e}"))
        }
        Value::Object(o) if o.len() == 1 && o.contains_key("adaptive") => match &o["adaptive"] {
            Value::Object(a) => adaptive(a),
            _ => Err("`due.adaptive` must be an object `{calendar, default, min, max}`".into()),
        },
        _ => Err(
            "`due` must be `{fixed: DURATION}` or `{adaptive: {calendar, default, min, max}}`"
                .into(),
        ),
    }
}

impl ApprovalArgs {
    pub fn parse(args: &Value) -> Result<ApprovalArgs, String> {
        let obj = args
            .as_object()
            .ok_or("`call: approval` takes `with: {title, assignees, window, …}`")?;
        for k in obj.keys() {
            if !KEYS.contains(&k.as_str()) {
                return Err(format!(
                    "unknown argument `{k}` (expected one of {})",
                    KEYS.join(", ")
                ));
            }
        }
        let title = match obj.get("title") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            Some(_) => return Err("`title` must be a non-empty string".into()),
            None => return Err("`title` is required".into()),
        };
        let instance = match obj.get("instance") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err("`instance` must be a string (e.g. `${ $workflow.id }`)".into()),
        };
        let first = assignee_list(obj.get("assignees").ok_or("`assignees` is required")?)
            .map_err(|e| format!("`assignees` {e}"))?;
        let mut levels = vec![first];
        match obj.get("escalate") {
            None | Some(Value::Null) => {}
            Some(Value::Array(chain)) => {
                for (i, level) in chain.iter().enumerate() {
                    levels.push(assignee_list(level).map_err(|e| format!("`escalate[{i}]` {e}"))?);
                }
            }
            Some(_) => {
                return Err(
                    "`escalate` must be a list of levels, each a user, `group:NAME` or a list of them"
                        .into(),
                );
            }
        }
        let window_ms =
            positive_duration(obj.get("window").ok_or(
                "`window` is required: how long the task stays open (e.g. `PT4H` or `4h`)",
            )?)
            .map_err(|e| format!("`window`: {e}"))?;
        let due = match obj.get("due") {
            None | Some(Value::Null) => None,
            Some(v) => Some(due_policy(v)?),
        };
        if levels.len() > 1 && due.is_none() {
            return Err(
                "`escalate` needs a `due` policy: a level escalates when it is past its due time"
                    .into(),
            );
        }
        let on_window_end = match obj.get("on_window_end") {
            None | Some(Value::Null) => WindowEnd::Fail,
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|_| "`on_window_end` must be `approve`, `reject` or `fail`".to_string())?,
        };
        let decision = match obj.get("decision") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Some(_) => return Err("`decision` must be a non-empty string".into()),
        };
        let override_rule = match obj.get("override") {
            None | Some(Value::Null) => None,
            Some(v) => Some(OverrideRule::from_value(v)?),
        };
        let cost = match obj.get("cost") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() || s.starts_with('/') => Some(s.clone()),
            Some(_) => {
                return Err(
                    "`cost` must be a JSON Pointer into the instance's output, e.g. `/override_cost`"
                        .into(),
                );
            }
        };
        Ok(ApprovalArgs {
            decision,
            override_rule,
            cost,
            title,
            instance,
            data: obj.get("data").cloned().unwrap_or(Value::Null),
            levels,
            window_ms,
            due,
            on_window_end,
        })
    }
}

impl DuePolicy {
    /// The compiled calendar of an adaptive policy (its spec was checked when parsed).
    pub fn calendar(&self) -> Option<Calendar> {
        match self {
            DuePolicy::Adaptive { calendar, .. } => Calendar::compile(calendar).ok(),
            DuePolicy::Fixed { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(v: Value) -> String {
        ApprovalArgs::parse(&v).unwrap_err()
    }

    #[test]
    fn arguments_are_checked_and_named() {
        let base = json!({"title": "t", "assignees": "group:dispatchers", "window": "4h"});
        let ok = ApprovalArgs::parse(&base).unwrap();
        assert_eq!(ok.window_ms, 4 * 3_600_000);
        assert_eq!(ok.on_window_end, WindowEnd::Fail);
        let with = |k: &str, v: Value| {
            let mut b = base.clone();
            b[k] = v;
            b
        };
        assert!(err(with("window", json!("PT0S"))).contains("`window`"));
        assert!(err(with("window", json!("soon"))).contains("`window`"));
        assert!(err(with("assignees", json!([]))).contains("`assignees`"));
        assert!(err(with("assignees", json!([3]))).contains("`assignees`"));
        assert!(err(with("title", json!(""))).contains("`title`"));
        assert!(err(with("escalation", json!([]))).contains("`escalation`"));
        assert!(err(with("escalate", json!(["fleet-manager"]))).contains("`due`"));
        assert!(err(with("on_window_end", json!("maybe"))).contains("`on_window_end`"));
        assert!(err(with("due", json!({"fixed": "x"}))).contains("`due.fixed`"));
        let adaptive = |a: Value| with("due", json!({"adaptive": a}));
        assert!(
            err(adaptive(json!({"default": "1h", "min": "1m", "max": "2h"}))).contains("calendar")
        );
        assert!(
            err(adaptive(json!({"calendar": {"zone": "UTC", "hours": "08:00-17:00"}, "default": "1h", "min": "3h", "max": "2h"})))
                .contains("`min`")
        );
        let full = ApprovalArgs::parse(&json!({
            "title": "t", "assignees": ["ann", "group:dispatchers"], "window": "PT8H",
            "due": {"adaptive": {"calendar": {"zone": "America/Chicago", "hours": "08:00-17:00"},
                    "default": "PT1H", "min": "15m", "max": {"hours": 4}}},
            "escalate": [["fleet-manager"], "group:managers"],
            "on_window_end": "approve",
        }))
        .unwrap();
        assert_eq!(full.levels.len(), 3);
        assert!(matches!(
            full.due,
            Some(DuePolicy::Adaptive {
                max_ms: 14_400_000,
                samples: 20,
                percentile: 75,
                ..
            })
        ));
    }
}
