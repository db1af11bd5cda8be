//! Who may override which decision, and which overrides need a second person.
//!
//! Two places can say it: the server's policy (rules by flow and decision, written by whoever
//! runs Baton) and the approval call itself (`with: {override: …}`, written by the flow's
//! author). Both must agree: a person may override only when every rule that applies lets them,
//! and a second approver is needed when any rule asks for one. A flow can therefore narrow what
//! the server allows, never widen it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use baton_api::{Actor, Role};

/// Who a rule names: a user name, `group:NAME`, or `role:ROLE` (admins hold every role).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Principal(pub String);

impl Principal {
    /// Checks the spelling (`role:` must name a known role).
    pub fn parse(s: &str) -> Result<Principal, String> {
        let s = s.trim();
        if s.is_empty() || s == "group:" || s == "role:" {
            return Err("an empty name".into());
        }
        if let Some(r) = s.strip_prefix("role:")
            && Role::parse(r).is_none()
        {
            return Err(format!(
                "`{s}`: unknown role (expected viewer, operator, approver or admin)"
            ));
        }
        Ok(Principal(s.to_string()))
    }

    pub fn admits(&self, actor: &Actor) -> bool {
        if let Some(g) = self.0.strip_prefix("group:") {
            actor.groups.iter().any(|mine| mine == g)
        } else if let Some(r) = self.0.strip_prefix("role:") {
            Role::parse(r).is_some_and(|r| actor.can(r))
        } else {
            self.0 == actor.name
        }
    }
}

fn admitted(list: &[Principal], actor: &Actor) -> bool {
    list.iter().any(|p| p.admits(actor))
}

fn names(list: &[Principal]) -> String {
    list.iter()
        .map(|p| p.0.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What one rule says about overriding a decision.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OverrideRule {
    /// Overrides are refused outright.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forbidden: bool,
    /// Who may override. Absent: the task's assignees (and admins), as without a rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<Principal>>,
    /// Who must confirm an override before it takes effect (a different person). Absent: no
    /// second approver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_approver: Option<Vec<Principal>>,
}

fn principals(v: &Value, what: &str) -> Result<Vec<Principal>, String> {
    let items: Vec<&Value> = match v {
        Value::String(_) => vec![v],
        Value::Array(a) => a.iter().collect(),
        _ => {
            return Err(format!(
                "`{what}` must be a name, `group:NAME`, `role:ROLE` or a list"
            ));
        }
    };
    let mut out = Vec::new();
    for i in items {
        let s = i
            .as_str()
            .ok_or_else(|| format!("`{what}` must hold only strings"))?;
        out.push(Principal::parse(s).map_err(|e| format!("`{what}`: {e}"))?);
    }
    if out.is_empty() {
        return Err(format!("`{what}` is empty: nobody could act"));
    }
    Ok(out)
}

impl OverrideRule {
    /// Reads `override:` of an approval call: `false` (no overrides) or
    /// `{allow: […], second_approver: […]}`.
    pub fn from_value(v: &Value) -> Result<OverrideRule, String> {
        match v {
            Value::Bool(false) => Ok(OverrideRule {
                forbidden: true,
                ..OverrideRule::default()
            }),
            Value::Bool(true) => Ok(OverrideRule::default()),
            Value::Object(o) => {
                for k in o.keys() {
                    if k != "allow" && k != "second_approver" {
                        return Err(format!(
                            "`override`: unknown key `{k}` (expected allow, second_approver)"
                        ));
                    }
                }
                Ok(OverrideRule {
                    forbidden: false,
                    allow: o
                        .get("allow")
                        .map(|v| principals(v, "override.allow"))
                        .transpose()?,
                    second_approver: o
                        .get("second_approver")
                        .map(|v| principals(v, "override.second_approver"))
                        .transpose()?,
                })
            }
            _ => {
                Err("`override` must be `false` or `{allow: [...], second_approver: [...]}`".into())
            }
        }
    }
}

/// A rule of the server's policy and what it applies to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScopedRule {
    /// `namespace/name`, `name`, or `*`.
    pub flow: String,
    /// The decision's name (the approval's `decision`, else its title); `*` for any; a
    /// trailing `*` matches a prefix.
    pub decision: String,
    #[serde(flatten)]
    pub rule: OverrideRule,
}

fn pattern_matches(pattern: &str, value: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => value.starts_with(prefix),
        None => pattern == value,
    }
}

impl ScopedRule {
    fn applies(&self, namespace: &str, flow: &str, decision: &str) -> bool {
        let flow_ok = self.flow == "*"
            || self.flow == flow
            || self.flow == format!("{namespace}/{flow}")
            || (self.flow.ends_with('*')
                && pattern_matches(&self.flow, &format!("{namespace}/{flow}")));
        flow_ok && pattern_matches(&self.decision, decision)
    }
}

/// The server's override policy: the first rule that applies to a decision is its rule.
/// Decisions no rule names keep the plain behaviour (an assignee may override with a reason).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OverridePolicy {
    pub rules: Vec<ScopedRule>,
}

/// Why an override (or its confirmation) was refused; each is its own API problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverrideRefusal {
    /// The policy does not let this person override this decision.
    NotAllowed,
    /// The second approver must be another person than the one who overrode.
    SamePerson,
    /// The person confirming is not among the second approvers the policy names.
    NotSecondApprover,
    /// No override waits for confirmation on this task.
    NothingPending,
    /// Another override waits for confirmation; answer that first.
    Pending,
}

/// What applies to one decision, after combining the server's rule and the flow's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EffectiveRule {
    /// Where each part came from, for the refusal's message and the record.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forbidden: bool,
    /// Every list here must admit the person overriding.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<Vec<Principal>>,
    /// Every list here must admit the second approver; none: no second approver needed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub second_approver: Vec<Vec<Principal>>,
    /// The server's own policy names who may override. Only then may people outside the task's
    /// assignees override it: a flow's `allow` narrows who among them may, never adds anyone,
    /// because flows are written by their authors and the server's policy by its operators.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub server_allows: bool,
}

impl EffectiveRule {
    pub fn needs_second_approver(&self) -> bool {
        !self.second_approver.is_empty()
    }

    /// Whether the server's policy says who may override (then the assignment alone does not
    /// decide).
    pub fn names_who_may_override(&self) -> bool {
        self.server_allows
    }

    /// `Err(why)` unless `actor` may override under this rule.
    pub fn check_overrider(&self, actor: &Actor) -> Result<(), String> {
        if self.forbidden {
            return Err(format!(
                "this decision may not be overridden ({})",
                self.from.join("; ")
            ));
        }
        for list in &self.allow {
            if !admitted(list, actor) {
                return Err(format!(
                    "`{}` may not override this decision: only {} may ({})",
                    actor.name,
                    names(list),
                    self.from.join("; ")
                ));
            }
        }
        Ok(())
    }

    /// `Err(why)` unless `actor` may confirm an override as the second approver.
    pub fn check_second_approver(&self, actor: &Actor) -> Result<(), String> {
        for list in &self.second_approver {
            if !admitted(list, actor) {
                return Err(format!(
                    "`{}` cannot confirm this override: the second approver must be one of {}",
                    actor.name,
                    names(list)
                ));
            }
        }
        Ok(())
    }
}

impl OverridePolicy {
    /// The rule for a decision of flow `namespace/flow` named `decision`, combined with the
    /// flow's own `override:` declaration.
    pub fn effective(
        &self,
        namespace: &str,
        flow: &str,
        decision: &str,
        declared: Option<&OverrideRule>,
    ) -> EffectiveRule {
        let mut out = EffectiveRule::default();
        let mut add = |rule: &OverrideRule, from: String| {
            out.from.push(from);
            out.forbidden |= rule.forbidden;
            // The same list said twice (server and flow agree) is one condition.
            if let Some(a) = &rule.allow
                && !out.allow.contains(a)
            {
                out.allow.push(a.clone());
            }
            if let Some(s) = &rule.second_approver
                && !out.second_approver.contains(s)
            {
                out.second_approver.push(s.clone());
            }
        };
        if let Some(r) = self
            .rules
            .iter()
            .find(|r| r.applies(namespace, flow, decision))
        {
            add(
                &r.rule,
                format!("server policy for {} / {}", r.flow, r.decision),
            );
            out.server_allows = r.rule.allow.is_some();
        }
        if let Some(d) = declared {
            add(d, "the flow's `override` declaration".into());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn actor(name: &str, roles: &[Role], groups: &[&str]) -> Actor {
        Actor {
            name: name.into(),
            roles: roles.to_vec(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    #[test]
    fn server_and_flow_rules_both_apply() {
        let policy = OverridePolicy {
            rules: vec![
                ScopedRule {
                    flow: "maplewood/director-override".into(),
                    decision: "route*".into(),
                    rule: OverrideRule {
                        allow: Some(vec![Principal("group:directors".into())]),
                        second_approver: Some(vec![Principal("group:fleet".into())]),
                        ..OverrideRule::default()
                    },
                },
                ScopedRule {
                    flow: "*".into(),
                    decision: "refund".into(),
                    rule: OverrideRule {
                        forbidden: true,
                        ..OverrideRule::default()
                    },
                },
            ],
        };
        let director = actor("rhea", &[Role::Approver], &["directors"]);
        let dispatcher = actor("dana", &[Role::Approver], &["dispatchers"]);
        let fleet = actor("finn", &[Role::Approver], &["fleet"]);
        let r = policy.effective("maplewood", "director-override", "route drv-03", None);
        assert!(r.check_overrider(&director).is_ok());
        let why = r.check_overrider(&dispatcher).unwrap_err();
        assert!(why.contains("only group:directors"), "{why}");
        assert!(r.needs_second_approver());
        assert!(r.check_second_approver(&fleet).is_ok());
        assert!(r.check_second_approver(&dispatcher).is_err());
        // The flow narrows: only rhea herself.
        let declared = OverrideRule::from_value(&json!({"allow": ["rhea"]})).unwrap();
        let r = policy.effective("maplewood", "director-override", "route", Some(&declared));
        assert!(r.check_overrider(&director).is_ok());
        assert!(
            r.names_who_may_override(),
            "the server's rule names the directors"
        );
        // A flow alone cannot hand the task to people outside its assignees.
        let flow_only = policy.effective("shop", "returns", "other", Some(&declared));
        assert!(!flow_only.names_who_may_override());
        let other_director = actor("ray", &[Role::Approver], &["directors"]);
        assert!(r.check_overrider(&other_director).is_err());
        // Forbidden anywhere for refunds; unnamed decisions keep the plain behaviour.
        assert!(
            policy
                .effective("shop", "returns", "refund", None)
                .check_overrider(&director)
                .is_err()
        );
        let plain = policy.effective("shop", "returns", "other", None);
        assert!(!plain.names_who_may_override() && !plain.needs_second_approver());
        assert!(OverrideRule::from_value(&json!({"allow": ["role:boss"]})).is_err());
        assert!(OverrideRule::from_value(&json!({"who": []})).is_err());
        assert!(OverrideRule::from_value(&json!(false)).unwrap().forbidden);
    }
}
