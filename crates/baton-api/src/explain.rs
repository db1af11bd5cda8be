//! One-line explanations of journal entries that record honest-data behaviour: a deadline's
//! default taken, a fan-out's missing branches, the fact (and its age) a step used, a claim won
//! or lost, an approval's answer, a flap guard's hold, a compensation done or skipped. `baton show` and the dashboard's timeline
//! print them next to the raw entry, so what Baton decided and why reads without decoding JSON.

use baton_core::{JournalEntry, Outcome};
use serde_json::Value;

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("?")
}

/// An age in words, to a tenth (`850 ms`, `12.2 s`, `4.5 min`, `3.4 h`): how the timeline says
/// how old a fact was.
pub fn age(ms: u64) -> String {
    age_to(ms, 1)
}

/// An age in words, seconds and minutes whole (`850 ms`, `12 s`, `4 min`, `3.4 h`): how
/// decision records (`baton decisions`, the dashboard) say how old each read was. Public so the
/// CLI and the dashboard print the same words.
pub fn age_whole(ms: u64) -> String {
    age_to(ms, 0)
}

/// The one age formatter; `decimals` applies to seconds and minutes (hours keep one).
fn age_to(ms: u64, decimals: usize) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.*} s", decimals, ms as f64 / 1e3),
        60_000..3_600_000 => format!("{:.*} min", decimals, ms as f64 / 6e4),
        _ => format!("{:.1} h", ms as f64 / 3.6e6),
    }
}

/// A compensation's note (see `baton_core`'s saga): what was undone, skipped or left for a person.
fn explain_compensation(note: &Value) -> String {
    let task = s(note, "task");
    let reconciled = match note.get("reconciled").and_then(Value::as_str) {
        Some(r) => format!(" (outcome was unknown; reconciled: {r})"),
        None if note.get("outcome").is_some() => " (outcome was unknown)".to_string(),
        None => String::new(),
    };
    match s(note, "compensation") {
        "compensated" => format!("compensated `{task}`: its effect was undone{reconciled}"),
        "skipped" => format!(
            "compensation of `{task}` skipped: {}{reconciled}",
            s(note, "reason")
        ),
        other => format!(
            "compensation of `{task}` {other}: {}{reconciled}",
            s(note, "reason")
        ),
    }
}

/// A request a shadow or a replay did not make, in a few words (see `shadow::describe`).
fn explain_request(r: &Value) -> String {
    match s(r, "effect") {
        "http" => format!("{} {}", s(r, "method"), s(r, "uri")),
        "function" if s(r, "function") == baton_core::functions::names::PROVIDER => format!(
            "{} {}",
            s(&r["args"], "provider"),
            s(&r["args"], "operation")
        ),
        "function" => format!("call: {}", s(r, "function")),
        "emit" => format!("emit {}", s(&r["event"], "type")),
        other => other.to_string(),
    }
}

/// The explanation of an entry, when it is one Baton's honest-data features wrote.
pub fn explain(entry: &JournalEntry) -> Option<String> {
    match entry {
        JournalEntry::EffectCompleted { key, outcome, .. }
            if baton_core::is_deadline_key(&key.0) =>
        {
            matches!(outcome, Outcome::Ok { .. })
                .then(|| "deadline reached: the safe default was taken".to_string())
        }
        JournalEntry::EffectCompleted {
            outcome: Outcome::Ok { value },
            ..
        } => explain_value(value),
        JournalEntry::TaskNote { note, .. } if note.get("compensation").is_some() => {
            Some(explain_compensation(note))
        }
        JournalEntry::EffectNote { note, .. } if note["shadow"] == "not_performed" => {
            Some(format!(
                "not performed ({}): {}; the flow got a stand-in answer",
                s(note, "mode"),
                explain_request(&note["request"])
            ))
        }
        JournalEntry::TaskNote { note, .. } => {
            let f = note.get("fan_out")?;
            let counts = f.get("counts").cloned().unwrap_or(Value::Null);
            let missing: Vec<String> = f
                .get("missing")
                .and_then(Value::as_array)
                .map(|m| {
                    m.iter()
                        .take(8)
                        .map(|x| {
                            let who = x
                                .get("branch")
                                .or_else(|| x.get("index"))
                                .map(|v| v.to_string().trim_matches('"').to_string())
                                .unwrap_or_default();
                            format!("{who} ({})", s(x, "reason"))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let more = counts
                .get("missing")
                .and_then(Value::as_u64)
                .unwrap_or(0)
                .saturating_sub(missing.len() as u64);
            Some(format!(
                "fan-out {}: {} of {} completed{}{}",
                s(f, "status"),
                counts.get("completed").and_then(Value::as_u64).unwrap_or(0),
                counts.get("total").and_then(Value::as_u64).unwrap_or(0),
                if missing.is_empty() {
                    String::new()
                } else {
                    format!("; missing {}", missing.join(", "))
                },
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            ))
        }
        _ => None,
    }
}

/// Explains the value of a function's answer by its shape (facts, claims, approvals, guards).
fn explain_value(v: &Value) -> Option<String> {
    if let Some(f) = v.get("fact").filter(|f| f.is_object()) {
        let status = v.get("status").and_then(Value::as_str).unwrap_or("fresh");
        let age_ms = f.get("age_ms").and_then(Value::as_u64);
        let mut line = format!(
            "fact {}/{} v{} from {}{}: {status}",
            s(f, "entity"),
            s(f, "name"),
            f.get("version").and_then(Value::as_u64).unwrap_or(0),
            s(f, "source"),
            age_ms
                .map(|a| format!(", {} old", age(a)))
                .unwrap_or_default(),
        );
        if let Some(r) = v.get("reason").and_then(Value::as_str) {
            line.push_str(&format!(" ({r})"));
        }
        return Some(line);
    }
    if let Some(claimed) = v.get("claimed").and_then(Value::as_bool) {
        return Some(if claimed {
            format!(
                "claim on {} won: token {}",
                s(v, "entity"),
                v.get("token").map(Value::to_string).unwrap_or_default()
            )
        } else {
            format!(
                "claim on {} lost: held by {}",
                s(v, "entity"),
                s(v, "holder")
            )
        });
    }
    if v.get("held").and_then(Value::as_bool) == Some(true) {
        return Some(format!("held: {}", s(v, "reason")));
    }
    if let Some(verdict) = v.get("verdict").and_then(Value::as_str)
        && v.get("by").is_some()
    {
        // An override that needed a second approver names who confirmed it.
        let confirmed = v
            .pointer("/override/confirmed_by")
            .and_then(Value::as_str)
            .map(|c| format!(", confirmed by {c}"))
            .unwrap_or_default();
        return Some(format!(
            "approval {verdict} by {}{confirmed}{}",
            s(v, "by"),
            v.get("reason")
                .and_then(Value::as_str)
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_core::EffectKey;
    use serde_json::json;

    fn done(key: &str, value: Value) -> JournalEntry {
        JournalEntry::EffectCompleted {
            at_ms: 0,
            key: EffectKey(key.into()),
            outcome: Outcome::ok(value),
            facts: Vec::new(),
        }
    }

    #[test]
    fn compensations_are_explained() {
        let note = |note: Value| JournalEntry::TaskNote {
            at_ms: 0,
            task: "/do/0/reserve".into(),
            note,
        };
        assert_eq!(
            explain(&note(json!({"compensation": "compensated", "task": "reserve", "outcome": "unknown", "reconciled": "applied"}))).unwrap(),
            "compensated `reserve`: its effect was undone (outcome was unknown; reconciled: applied)"
        );
        assert_eq!(
            explain(&note(
                json!({"compensation": "skipped", "task": "reserve", "reason": "already undone"})
            ))
            .unwrap(),
            "compensation of `reserve` skipped: already undone"
        );
        assert_eq!(
            explain(&note(json!({"compensation": "unresolved", "task": "charge", "reason": "a person must check", "outcome": "unknown"}))).unwrap(),
            "compensation of `charge` unresolved: a person must check (outcome was unknown)"
        );
    }

    #[test]
    fn honest_data_entries_are_explained() {
        let stale = done(
            "/do/0/stock",
            json!({"status": "unknown", "reason": "stale", "fact": {"entity": "store-01", "name": "stock", "version": 3, "source": "inventory", "age_ms": 12_240_000}}),
        );
        assert_eq!(
            explain(&stale).unwrap(),
            "fact store-01/stock v3 from inventory, 3.4 h old: unknown (stale)"
        );
        let lost = done(
            "/do/1/claim",
            json!({"claimed": false, "entity": "addr-19/10:00", "holder": "dispatcher"}),
        );
        assert_eq!(
            explain(&lost).unwrap(),
            "claim on addr-19/10:00 lost: held by dispatcher"
        );
        let note = JournalEntry::TaskNote {
            at_ms: 0,
            task: "/do/2/checks".into(),
            note: json!({"fan_out": {"status": "unknown", "counts": {"total": 50, "completed": 30, "missing": 20}, "missing": [{"index": 3, "reason": "not_ok"}]}}),
        };
        assert_eq!(
            explain(&note).unwrap(),
            "fan-out unknown: 30 of 50 completed; missing 3 (not_ok) and 19 more"
        );
        assert!(explain(&done("/do/0/x", json!({"plain": 1}))).is_none());
        let confirmed = done(
            "/do/3/ask#call",
            json!({"task": "t", "approved": true, "verdict": "overridden", "by": "rhea",
                   "reason": "favourite customer", "override": {"confirmed_by": "finn"}}),
        );
        assert_eq!(
            explain(&confirmed).unwrap(),
            "approval overridden by rhea, confirmed by finn: favourite customer"
        );
    }
}
