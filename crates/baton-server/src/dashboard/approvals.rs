//! The approvals inbox: open tasks first, by due time (late ones marked), with who may answer
//! and how far they were escalated; approvers approve, reject (with a reason) or override (with
//! the output to use instead and a reason). Answered tasks show who decided, when and why.

use baton_engine::Features;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use baton_engine::approvals::{
    Answer, ApprovalError, ApprovalQuery, ApprovalStatus, ApprovalTask, Verdict,
};
use baton_engine::{Actor, Role};
use serde::Deserialize;
use serde_json::Value;

use super::{Nav, Posted, Session, UiError, pretty, relative, render, time, url_encode};
use crate::AppState;

/// Open tasks on one page.
const OPEN_SHOWN_MAX: usize = 200;
/// Answered tasks shown (the most recently decided).
const ANSWERED_SHOWN_MAX: usize = 30;

struct TaskView {
    id: String,
    action_url: String,
    title: String,
    instance: Option<(String, String)>,
    data: String,
    status: &'static str,
    level: usize,
    /// The last escalation level.
    last_level: usize,
    assignees: String,
    escalations: Vec<String>,
    created: String,
    due: String,
    due_rel: String,
    late: bool,
    window_end: String,
    /// Whether the signed-in user may answer (approver, and assigned or admin).
    can_answer: bool,
    verdict: &'static str,
    decided_by: String,
    decided_at: String,
    reason: String,
    output: Option<String>,
    answered_late: bool,
    /// An approver may ask to override (the override policy decides whether they may).
    can_override: bool,
    /// An override waiting for its second approver: who asked, when, why, and what it would use.
    pending: Option<(String, String, String, String)>,
    /// Who may confirm the pending override.
    pending_needs: String,
    /// The signed-in user could confirm or refuse it (an approver, not the one who asked).
    can_confirm: bool,
    confirmed_by: String,
    /// Refused overrides: "who asked: why — refused by whom: why".
    refused: Vec<String>,
}

#[derive(Template)]
#[template(path = "approvals.html")]
struct Inbox {
    nav: Nav,
    open: Vec<TaskView>,
    answered: Vec<TaskView>,
    mine: bool,
    is_approver: bool,
    error: Option<String>,
    done: Option<String>,
}

fn verdict(v: Option<Verdict>) -> &'static str {
    match v {
        Some(Verdict::Approved) => "approved",
        Some(Verdict::Rejected) => "rejected",
        Some(Verdict::Overridden) => "overridden",
        Some(Verdict::Defaulted) => "defaulted",
        None => "",
    }
}

fn view(t: ApprovalTask, actor: &Actor, now: u64) -> TaskView {
    let open = t.status == ApprovalStatus::Open;
    let pending = t.pending_override.as_ref();
    let can_answer = open
        && pending.is_none()
        && actor.can(Role::Approver)
        && (actor.can(Role::Admin) || t.is_assigned_to(&actor.name, &actor.groups));
    TaskView {
        can_override: open && pending.is_none() && actor.can(Role::Approver),
        can_confirm: open
            && actor.can(Role::Approver)
            && pending.is_some_and(|p| p.by != actor.name),
        pending: pending.map(|p| {
            (
                p.by.clone(),
                time(p.at_ms),
                p.reason.clone(),
                pretty(&p.output),
            )
        }),
        pending_needs: pending
            .map(|p| {
                p.second_approver
                    .iter()
                    .map(|l| {
                        l.iter()
                            .map(|x| x.0.as_str())
                            .collect::<Vec<_>>()
                            .join(" or ")
                    })
                    .collect::<Vec<_>>()
                    .join(", and ")
            })
            .unwrap_or_default(),
        confirmed_by: t.confirmed_by.clone().unwrap_or_default(),
        refused: t
            .refused_overrides
            .iter()
            .map(|r| {
                format!(
                    "{} asked at {}: {} — refused by {} at {}: {}",
                    r.asked.by,
                    time(r.asked.at_ms),
                    r.asked.reason,
                    r.refused_by,
                    time(r.refused_at_ms),
                    r.refusal_reason
                )
            })
            .collect(),
        action_url: format!("/ui/approvals/{}", url_encode(&t.id)),
        late: t.is_late(now),
        instance: t
            .instance
            .as_ref()
            .map(|i| (i.clone(), format!("/ui/instances/{}", url_encode(i)))),
        data: pretty(&t.data),
        status: t.status.as_str(),
        level: t.level,
        last_level: t.levels.len().saturating_sub(1),
        assignees: t.assignees.join(", "),
        escalations: t
            .escalations
            .iter()
            .map(|e| {
                format!(
                    "{}: level {} ({}) missed {}, asked level {} ({})",
                    time(e.at_ms),
                    e.from_level,
                    e.from.join(", "),
                    time(e.missed_due_at_ms),
                    e.to_level,
                    e.to.join(", ")
                )
            })
            .collect(),
        created: time(t.created_at_ms),
        due: time(t.due_at_ms),
        due_rel: relative(now, t.due_at_ms),
        window_end: time(t.window_end_at_ms),
        can_answer,
        verdict: verdict(t.verdict),
        decided_by: t.decided_by.clone().unwrap_or_default(),
        decided_at: t.decided_at_ms.map(time).unwrap_or_default(),
        reason: t.reason.clone().unwrap_or_default(),
        output: t.output.as_ref().map(pretty),
        answered_late: t.answered_late.unwrap_or(false),
        id: t.id,
        title: t.title,
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct InboxQuery {
    /// Only the tasks the signed-in user may answer.
    #[serde(default)]
    mine: String,
    /// The task just answered (to say so).
    #[serde(default)]
    done: String,
}

async fn inbox_page(
    state: &AppState,
    session: &Session,
    q: &InboxQuery,
    error: Option<String>,
) -> Result<Inbox, UiError> {
    let approvals = state.runtime.approvals();
    let actor = &session.actor;
    let mine = !q.mine.is_empty();
    let open_query = if mine {
        ApprovalQuery {
            limit: OPEN_SHOWN_MAX,
            ..ApprovalQuery::inbox_of(actor)
        }
    } else {
        ApprovalQuery {
            status: Some(ApprovalStatus::Open),
            limit: OPEN_SHOWN_MAX,
            ..ApprovalQuery::default()
        }
    };
    let now = state.now_ms();
    let open = approvals
        .list(&open_query)
        .await
        .map_err(approval_error)?
        .into_iter()
        .map(|t| view(t, actor, now))
        .collect();
    // The store lists tasks by due time; the most recent answers are found among the latest
    // due of each closed status.
    let mut answered: Vec<ApprovalTask> = Vec::new();
    for status in [
        ApprovalStatus::Approved,
        ApprovalStatus::Rejected,
        ApprovalStatus::Defaulted,
        ApprovalStatus::Expired,
    ] {
        let base = if mine {
            ApprovalQuery::inbox_of(actor)
        } else {
            ApprovalQuery::default()
        };
        let mut page = approvals
            .list(&ApprovalQuery {
                status: Some(status),
                newest_first: true,
                limit: ANSWERED_SHOWN_MAX,
                ..base
            })
            .await
            .map_err(approval_error)?;
        answered.append(&mut page);
    }
    answered.sort_by_key(|t| std::cmp::Reverse(t.decided_at_ms));
    answered.truncate(ANSWERED_SHOWN_MAX);
    // Only a task that exists is named: the page never repeats text from its own URL.
    let done = match q.done.as_str() {
        "" => None,
        id => approvals
            .get(id)
            .await
            .ok()
            .map(|t| format!("“{}” is {}.", t.title, t.status.as_str())),
    };
    Ok(Inbox {
        nav: session.nav("approvals"),
        open,
        answered: answered.into_iter().map(|t| view(t, actor, now)).collect(),
        mine,
        is_approver: actor.can(Role::Approver),
        error,
        done,
    })
}

/// The page of a refused answer: the status is the API's for the same error (one mapping).
fn approval_error(e: ApprovalError) -> UiError {
    match e {
        ApprovalError::Store(s) => s.into(),
        other => {
            let message = other.to_string();
            let status = StatusCode::from_u16(crate::problem::ApiError::from(other).doc().status)
                .unwrap_or(StatusCode::BAD_REQUEST);
            UiError::page(status, "Approval", message)
        }
    }
}

/// `GET /ui/approvals`.
pub(crate) async fn inbox(
    State(state): State<Arc<AppState>>,
    session: Session,
    Query(q): Query<InboxQuery>,
) -> Result<Response, UiError> {
    Ok(render(&inbox_page(&state, &session, &q, None).await?))
}

#[derive(Debug, Deserialize)]
pub(crate) struct DecideForm {
    /// `approve`, `reject` or `override`.
    action: String,
    #[serde(default)]
    reason: String,
    /// The output to use instead (JSON), for `override`.
    #[serde(default)]
    output: String,
}

/// `POST /ui/approvals/{id}`: answers a task (approvers).
pub(crate) async fn decide(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Posted { session, form }: Posted<DecideForm>,
) -> Result<Response, UiError> {
    let actor = session.require(Role::Approver)?.clone();
    let reason = Some(form.reason.trim().to_string()).filter(|r| !r.is_empty());
    // The same checks and audit records as the API's: an override needs a reason, and it is
    // recorded as `approval.override` (so `/v1/overrides` lists it) or, when a second approver
    // must confirm it, `approval.override.requested`.
    let caller = crate::Caller(actor.clone());
    let result = match form.action.as_str() {
        // The second approver's answer to a pending override.
        confirm @ ("confirm" | "refuse") => {
            crate::api::approvals::second_answer(&state, &caller, &id, confirm == "confirm", reason)
                .await
        }
        action => {
            let answer = match action {
                "approve" => Ok(Answer::Approve),
                "reject" => Ok(Answer::Reject),
                "override" => serde_json::from_str::<Value>(&form.output)
                    .map(|output| Answer::Override { output })
                    .map_err(|e| format!("The override output is not JSON: {e}")),
                other => Err(format!("`{other}` is not an answer")),
            };
            match answer {
                Ok(a) => crate::api::approvals::answer(&state, &caller, &id, a, reason).await,
                Err(why) => {
                    let page =
                        inbox_page(&state, &session, &InboxQuery::default(), Some(why)).await?;
                    let mut r = render(&page);
                    *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
                    return Ok(r);
                }
            }
        }
    };
    match result {
        Ok(_) => {
            Ok(Redirect::to(&format!("/ui/approvals?done={}", url_encode(&id))).into_response())
        }
        Err(e) => {
            let doc = e.doc();
            let why = format!("{}: {}", doc.title, doc.detail.unwrap_or_default());
            let page = inbox_page(&state, &session, &InboxQuery::default(), Some(why)).await?;
            let mut r = render(&page);
            *r.status_mut() = StatusCode::from_u16(doc.status).unwrap_or(StatusCode::BAD_REQUEST);
            Ok(r)
        }
    }
}
