//! The server's configuration file: API tokens with their roles and groups, and request limits.
//! Tokens are read from the environment (or, for demos, written in the file) and kept only as
//! SHA-256 digests in memory, so they never reach logs or the dashboard.

use std::collections::HashMap;

use baton_engine::approvals::{OverridePolicy, OverrideRule, Principal, ScopedRule};
use baton_engine::{Actor, Role};
use baton_flow::{Diagnostic, SourceLocation};
use serde::Deserialize;
use sha2::{Digest, Sha256};

pub const CODE_SYNTAX: &str = "BATON-CONF-001";
pub const CODE_MODEL: &str = "BATON-CONF-002";
pub const CODE_TOKEN: &str = "BATON-CONF-003";
pub const CODE_POLICY: &str = "BATON-CONF-004";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    tokens: Vec<TokenSpec>,
    #[serde(default)]
    limits: Option<LimitsSpec>,
    /// Who may override which decisions (see `OverrideRuleSpec`).
    #[serde(default)]
    overrides: Vec<OverrideRuleSpec>,
}

/// One rule of the override policy: which decisions of which flows it covers, who may override
/// them, who must confirm, or that they may not be overridden at all.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideRuleSpec {
    /// `namespace/name`, `name` or `*`.
    flow: String,
    /// The decision's name (the approval's `decision`, else its title); `*` or a prefix `route*`.
    #[serde(default = "any")]
    decision: String,
    #[serde(default)]
    forbidden: bool,
    #[serde(default)]
    allow: Option<Vec<String>>,
    #[serde(default)]
    second_approver: Option<Vec<String>>,
}

fn any() -> String {
    "*".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenSpec {
    name: String,
    /// The environment variable holding the token (the production way).
    #[serde(default)]
    token_env: Option<String>,
    /// The token itself (demos and tests only).
    #[serde(default)]
    token: Option<String>,
    roles: Vec<Role>,
    #[serde(default)]
    groups: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsSpec {
    #[serde(default)]
    request_bytes_max: Option<usize>,
    #[serde(default)]
    list_limit_max: Option<usize>,
}

/// Limits on what one request may ask for.
#[derive(Debug, Clone)]
pub struct Limits {
    pub request_bytes_max: usize,
    pub list_limit_max: usize,
    /// Journal entries returned with one instance.
    pub journal_entries_max: usize,
    /// Events in one batch.
    pub batch_events_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_bytes_max: 1024 * 1024,
            list_limit_max: 500,
            journal_entries_max: 5_000,
            batch_events_max: 500,
        }
    }
}

/// The tokens the API accepts, by digest.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    by_digest: HashMap<[u8; 32], Actor>,
}

pub(crate) fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Tokens {
    pub fn insert(&mut self, token: &str, actor: Actor) {
        self.by_digest.insert(digest(token), actor);
    }

    /// The actor a presented token belongs to. The lookup is by digest, so comparing a wrong
    /// token takes no time that depends on how much of it matched.
    pub fn actor(&self, token: &str) -> Option<&Actor> {
        self.by_digest.get(&digest(token))
    }

    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }

    pub fn len(&self) -> usize {
        self.by_digest.len()
    }
}

#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    pub tokens: Tokens,
    pub limits: Limits,
    /// Who may override which decisions, and which overrides need a second approver.
    pub overrides: std::sync::Arc<OverridePolicy>,
}

/// Loads a configuration file; `env` looks up environment variables (injected for tests).
pub fn load_config(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ServerConfig, Vec<Diagnostic>> {
    let parsed = baton_flow::parse::parse_document(text).map_err(|ds| {
        ds.into_iter()
            .map(|d| {
                Diagnostic::coded(
                    CODE_SYNTAX,
                    d.message,
                    d.pointer,
                    SourceLocation {
                        line: d.line,
                        column: d.column,
                    },
                )
            })
            .collect::<Vec<_>>()
    })?;
    let (raw, spans) = (parsed.value, parsed.spans);
    let file: ConfigFile = serde_path_to_error::deserialize(&raw).map_err(|e| {
        let pointer = baton_flow::error_pointer(e.path());
        let at = spans.nearest_key(&pointer);
        vec![Diagnostic::coded(
            CODE_MODEL,
            format!("not a valid server configuration: {}", e.inner()),
            pointer,
            at,
        )]
    })?;
    let mut config = ServerConfig::default();
    if let Some(l) = file.limits {
        if let Some(n) = l.request_bytes_max {
            config.limits.request_bytes_max = n;
        }
        if let Some(n) = l.list_limit_max {
            config.limits.list_limit_max = n;
        }
    }
    let mut diags = Vec::new();
    let mut policy = OverridePolicy::default();
    for (i, r) in file.overrides.into_iter().enumerate() {
        let pointer = format!("/overrides/{i}");
        let mut list = |key: &str, names: Option<Vec<String>>| -> Option<Vec<Principal>> {
            let names = names?;
            let at = format!("{pointer}/{key}");
            if names.is_empty() {
                diags.push(Diagnostic::coded(
                    CODE_POLICY,
                    format!(
                        "override rule for `{}`: `{key}` is empty: nobody could act",
                        r.flow
                    ),
                    at.clone(),
                    spans.nearest_value(&at),
                ));
                return None;
            }
            let mut out = Vec::new();
            for n in names {
                match Principal::parse(&n) {
                    Ok(p) => out.push(p),
                    Err(e) => diags.push(Diagnostic::coded(
                        CODE_POLICY,
                        format!("override rule for `{}`: `{key}`: {e}", r.flow),
                        at.clone(),
                        spans.nearest_value(&at),
                    )),
                }
            }
            Some(out)
        };
        let allow = list("allow", r.allow);
        let second_approver = list("second_approver", r.second_approver);
        policy.rules.push(ScopedRule {
            flow: r.flow,
            decision: r.decision,
            rule: OverrideRule {
                forbidden: r.forbidden,
                allow,
                second_approver,
            },
        });
    }
    config.overrides = std::sync::Arc::new(policy);
    for (i, t) in file.tokens.into_iter().enumerate() {
        let pointer = format!("/tokens/{i}");
        let token = match (&t.token_env, &t.token) {
            (Some(var), None) => match env(var) {
                Some(v) if !v.is_empty() => Some(v),
                _ => {
                    diags.push(Diagnostic::coded(
                        CODE_TOKEN,
                        format!(
                            "token `{}`: the environment variable `{var}` is not set",
                            t.name
                        ),
                        format!("{pointer}/token_env"),
                        spans.nearest_value(&format!("{pointer}/token_env")),
                    ));
                    None
                }
            },
            (None, Some(v)) if !v.is_empty() => Some(v.clone()),
            _ => {
                diags.push(Diagnostic::coded(
                    CODE_TOKEN,
                    format!(
                        "token `{}` needs exactly one of `token_env` or `token`",
                        t.name
                    ),
                    pointer.clone(),
                    spans.nearest_key(&pointer),
                ));
                None
            }
        };
        if t.roles.is_empty() {
            diags.push(Diagnostic::coded(
                CODE_TOKEN,
                format!("token `{}` has no roles", t.name),
                format!("{pointer}/roles"),
                spans.nearest_value(&format!("{pointer}/roles")),
            ));
        }
        if let Some(token) = token {
            config.tokens.insert(
                &token,
                Actor {
                    name: t.name,
                    roles: t.roles,
                    groups: t.groups,
                },
            );
        }
    }
    if diags.is_empty() {
        Ok(config)
    } else {
        Err(diags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_the_environment_and_are_checked() {
        let text = "tokens:\n  - name: dana\n    token_env: DANA\n    roles: [approver]\n    groups: [dispatchers]\n  - name: ghost\n    token_env: NOPE\n    roles: [viewer]\n";
        let env = |k: &str| (k == "DANA").then(|| "t-dana".to_string());
        let errs = load_config(text, &env).unwrap_err();
        assert_eq!(errs.len(), 1);
        let shown = errs[0].render("server.yaml");
        assert!(
            shown.starts_with("server.yaml:7:16: error[BATON-CONF-003]"),
            "{shown}"
        );

        let ok = load_config(&text[..text.find("  - name: ghost").unwrap()], &env).unwrap();
        let dana = ok.tokens.actor("t-dana").unwrap();
        assert_eq!(dana.name, "dana");
        assert!(dana.can(Role::Approver) && !dana.can(Role::Operator));
        assert!(ok.tokens.actor("t-dan").is_none());
    }

    #[test]
    fn the_override_policy_is_read_and_checked() {
        let text = "overrides:\n  - flow: maplewood/director-override\n    decision: route*\n    allow: [group:directors]\n    second_approver: [group:fleet-managers]\n  - flow: '*'\n    decision: refund\n    forbidden: true\n";
        let c = load_config(text, &|_| None).unwrap();
        assert_eq!(c.overrides.rules.len(), 2);
        let rule = c
            .overrides
            .effective("maplewood", "director-override", "route drv-03", None);
        assert!(rule.needs_second_approver());
        let errs = load_config("overrides:\n  - flow: x\n    allow: [role:boss]\n", &|_| {
            None
        })
        .unwrap_err();
        let shown = errs[0].render("s.yaml");
        assert!(
            shown.contains("BATON-CONF-004")
                && shown.contains("s.yaml:3:")
                && shown.contains("role:boss"),
            "{shown}"
        );
    }

    #[test]
    fn unknown_fields_and_roles_are_errors_with_locations() {
        let errs = load_config(
            "tokens:\n  - name: x\n    token: y\n    roles: [boss]\n",
            &|_| None,
        )
        .unwrap_err();
        let shown = errs[0].render("s.yaml");
        assert!(
            shown.contains("BATON-CONF-002") && shown.contains("s.yaml:4:"),
            "{shown}"
        );
    }
}
