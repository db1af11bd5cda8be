//! Decision records on the instance page, and the overrides report page (`/ui/overrides`):
//! the same records and report the API serves, put into words.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use baton_engine::approvals::OverrideReport;
use baton_engine::decisions::{DecisionKind, DecisionRecord};
use baton_engine::explain::age_whole;
use serde_json::Value;

use super::{Nav, Session, UiError, compact, pretty, render, time};
use crate::AppState;
use crate::api::approvals::PeriodFilter;

/// Characters of a value shown inline before it is cut.
const INLINE_MAX: usize = 160;

pub(crate) struct RecordView {
    pub kind: &'static str,
    pub task: String,
    pub at: String,
    pub key: String,
    pub flow: String,
    pub version: Option<String>,
    pub inputs: Vec<String>,
    pub inputs_unavailable: Option<String>,
    pub reads: Vec<String>,
    pub rules: Vec<String>,
    pub output: String,
    pub answer: Option<String>,
    pub override_: Option<(String, String, String)>,
    pub refused: Vec<String>,
    pub cost: Option<String>,
    pub link: Option<String>,
}

fn s(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(x)) => x.clone(),
        Some(Value::Null) | None => String::new(),
        Some(x) => x.to_string(),
    }
}

pub(crate) fn views(records: &[DecisionRecord]) -> Vec<RecordView> {
    records
        .iter()
        .map(|r| RecordView {
            kind: match r.kind {
                DecisionKind::Rules => "rules",
                DecisionKind::Approval => "approval",
            },
            task: r.task.clone(),
            at: time(r.at_ms),
            key: r.key.clone(),
            flow: format!(
                "{}/{}:{} ({})",
                r.flow.namespace, r.flow.name, r.flow.version, r.flow.hash
            ),
            version: r.decision.as_ref().map(|d| {
                format!(
                    "decision “{}” of {} ({}, hash {})",
                    s(d, "decision"),
                    s(d, "file"),
                    s(d, "name"),
                    s(d, "hash")
                )
            }),
            inputs: r
                .inputs
                .iter()
                .map(|i| {
                    let from = i
                        .sources
                        .iter()
                        .map(|src| {
                            format!(
                                "{} {} at {} ({} old)",
                                src.kind,
                                src.source,
                                src.path,
                                age_whole(src.age_ms)
                            )
                        })
                        .collect::<Vec<_>>();
                    format!(
                        "{} = {}{}",
                        i.name,
                        compact(&i.value, INLINE_MAX),
                        if from.is_empty() {
                            String::new()
                        } else {
                            format!(" ← {}", from.join("; "))
                        }
                    )
                })
                .collect(),
            inputs_unavailable: r.inputs_unavailable.clone(),
            reads: r
                .reads
                .iter()
                .map(|x| {
                    format!(
                        "{} {}{} — observed {}, {} old at the decision, {}",
                        x.kind,
                        x.source,
                        x.fact
                            .as_ref()
                            .map(|f| format!(" ({f})"))
                            .unwrap_or_default(),
                        time(x.observed_at_ms),
                        age_whole(x.age_ms),
                        x.status
                    )
                })
                .collect(),
            rules: r
                .rules
                .iter()
                .map(|f| {
                    format!(
                        "{} / table {} ({}): rule {} `{}`{}",
                        f.decision,
                        f.table,
                        f.hit_policy,
                        f.index,
                        f.id,
                        f.annotation
                            .as_ref()
                            .map(|a| format!(" — {a}"))
                            .unwrap_or_default()
                    )
                })
                .collect(),
            output: pretty(&r.output),
            answer: r.approval.as_ref().map(|a| {
                format!(
                    "{} by {} at {}{}{}",
                    s(a, "verdict"),
                    s(a, "by"),
                    s(a, "at"),
                    Some(s(a, "reason"))
                        .filter(|x| !x.is_empty())
                        .map(|x| format!(": “{x}”"))
                        .unwrap_or_default(),
                    if a.get("late") == Some(&Value::Bool(true)) {
                        " (late)"
                    } else {
                        ""
                    }
                )
            }),
            override_: r.override_.as_ref().map(|o| {
                let confirmed = s(o, "confirmed_by");
                (
                    format!(
                        "overridden by {} (asked {}, in effect {}){}: “{}”",
                        s(o, "by"),
                        s(o, "asked_at"),
                        s(o, "effective_at"),
                        if confirmed.is_empty() {
                            String::new()
                        } else {
                            format!(", confirmed by {confirmed} at {}", s(o, "confirmed_at"))
                        },
                        s(o, "reason")
                    ),
                    pretty(o.get("original").unwrap_or(&Value::Null)),
                    pretty(o.get("replacement").unwrap_or(&Value::Null)),
                )
            }),
            refused: r
                .refused_overrides
                .iter()
                .map(|x| {
                    format!(
                        "{} asked {} (“{}”); refused by {} at {}: “{}”",
                        s(x, "by"),
                        s(x, "asked_at"),
                        s(x, "reason"),
                        s(x, "refused_by"),
                        s(x, "refused_at"),
                        s(x, "refusal_reason")
                    )
                })
                .collect(),
            cost: r.cost.as_ref().map(|c| compact(c, 400)),
            link: r
                .reviews
                .as_ref()
                .map(|k| format!("reviews the decision {k}"))
                .or_else(|| {
                    r.reviewed_by.as_ref().map(|k| {
                        let how = r
                            .review
                            .as_ref()
                            .map(|v| {
                                let confirmed = v
                                    .pointer("/override/confirmed_by")
                                    .and_then(Value::as_str)
                                    .map(|c| format!(", confirmed by {c}"))
                                    .unwrap_or_default();
                                format!(": {} by {}{confirmed}", s(v, "verdict"), s(v, "by"))
                            })
                            .unwrap_or_default();
                        format!("reviewed by the approval {k}{how}")
                    })
                }),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "overrides.html")]
struct OverridesPage {
    nav: Nav,
    since: String,
    until: String,
    report: OverrideReport,
    rows: Vec<OverrideRow>,
    error: Option<String>,
}

struct OverrideRow {
    at: String,
    status: String,
    flow: String,
    decision: String,
    title: String,
    by: String,
    reason: String,
    confirmed: String,
    instance: Option<(String, String)>,
    original: String,
    replacement: String,
    cost: String,
}

/// `GET /ui/overrides?since=&until=`.
pub(crate) async fn overrides(
    State(state): State<Arc<AppState>>,
    session: Session,
    Query(f): Query<PeriodFilter>,
) -> Result<Response, UiError> {
    let (report, error) = match crate::api::approvals::override_report(&state, &f).await {
        Ok(r) => (r, None),
        Err(e) => {
            let doc = e.doc();
            let fallback = PeriodFilter {
                since: None,
                until: None,
            };
            let r = crate::api::approvals::override_report(&state, &fallback)
                .await
                .map_err(|e| {
                    UiError::page(
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        "Overrides",
                        e.doc().detail.unwrap_or_default(),
                    )
                })?;
            (r, Some(doc.detail.unwrap_or(doc.title)))
        }
    };
    let rows = report
        .overrides
        .iter()
        .map(|o| OverrideRow {
            at: time(o.at_ms),
            status: o.status.clone(),
            flow: o.flow.clone(),
            decision: o.decision.clone(),
            title: o.title.clone(),
            by: o.by.clone(),
            reason: o.reason.clone(),
            confirmed: match (&o.confirmed_by, &o.refused_by) {
                (Some(c), _) => format!("confirmed by {c}"),
                (_, Some(r)) => format!(
                    "refused by {r}: {}",
                    o.refusal_reason.clone().unwrap_or_default()
                ),
                _ if o.status == "pending" => "waits for a second approver".into(),
                _ => String::new(),
            },
            instance: o
                .instance
                .as_ref()
                .map(|i| (i.clone(), format!("/ui/instances/{}", super::url_encode(i)))),
            original: pretty(&o.original),
            replacement: pretty(&o.replacement),
            cost: o
                .cost
                .as_ref()
                .map(|c| match c.get("summary").and_then(Value::as_str) {
                    Some(summary) => summary.to_string(),
                    None => compact(c, 300),
                })
                .unwrap_or_default(),
        })
        .collect();
    Ok(render(&OverridesPage {
        nav: session.nav("overrides"),
        since: report.since.clone(),
        until: report.until.clone(),
        rows,
        report,
        error,
    }))
}
