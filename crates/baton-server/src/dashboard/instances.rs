//! Instances: the list (filters, cursor pages, a table that refreshes itself), starting an
//! instance, and one instance's page (the flow as a graph with task states, what it is waiting
//! for, the timeline of its journal, decision traces, and the operator's controls).

use baton_engine::Features;
use std::collections::BTreeSet;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use baton_core::{
    EffectRequest, Env, InstanceId, JournalEntry, Outcome, Program, Status, idempotency_key,
};
use baton_engine::Role;
use baton_engine::approvals::ApprovalTask;
use baton_store::Store;
use serde::Deserialize;
use serde_json::{Value, json};

use super::graph;
use super::progress::{self, APPROVAL_FUNCTION, Progress, key_reference};
use super::{
    Nav, NoFields, POLL, Posted, Session, UiError, compact, html, pretty, query_string, relative,
    render, render_str, status_of, time, url_encode,
};
use crate::AppState;
use crate::api::StartOutcome;
use crate::api::instances::{STUCK_AFTER_MS, list_page, start_instance};
use crate::api::views::{InstanceFilter, StartRequest, StatusView};

/// Journal entries shown in the timeline (the newest ones when there are more).
const TIMELINE_ENTRIES_MAX: usize = 500;
/// Bytes of an entry's value shown inline in the timeline.
const NOTE_BYTES_MAX: usize = 300;
const STATUSES: [&str; 7] = [
    "pending",
    "running",
    "waiting",
    "suspended",
    "completed",
    "faulted",
    "cancelled",
];

/// The list's filters as the form sends them: every field a string, empty meaning "any".
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    flow: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    stuck: String,
    #[serde(default)]
    cursor: String,
}

impl ListQuery {
    fn filter(&self) -> Result<InstanceFilter, UiError> {
        let status = match self.status.as_str() {
            "" => None,
            s => Some(Status::parse(s).map(StatusView::of).ok_or_else(|| {
                UiError::page(
                    StatusCode::BAD_REQUEST,
                    "Invalid filter",
                    format!("`{s}` is not a status"),
                )
            })?),
        };
        let opt = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
        Ok(InstanceFilter {
            status,
            flow: opt(&self.flow),
            version: opt(&self.version),
            stuck: Some(!self.stuck.is_empty()),
            cursor: opt(&self.cursor),
            limit: None,
        })
    }

    /// The filters as a query string, with or without the cursor.
    fn query(&self, cursor: Option<&str>) -> String {
        query_string(&[
            ("status", &self.status),
            ("flow", &self.flow),
            ("version", &self.version),
            ("stuck", if self.stuck.is_empty() { "" } else { "1" }),
            ("cursor", cursor.unwrap_or("")),
        ])
    }
}

struct Row {
    id: String,
    href: String,
    flow: String,
    version: String,
    status: &'static str,
    created: String,
    updated: String,
    updated_ago: String,
    stuck: bool,
}

#[derive(Template)]
#[template(path = "instances_table.html")]
struct Table {
    rows: Vec<Row>,
    /// The URL the table refreshes from; `None` on later pages (they are a snapshot to read).
    poll_url: Option<String>,
    poll: &'static str,
    next_url: Option<String>,
    first_url: Option<String>,
}

struct FlowOption {
    value: String,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "instances.html")]
struct Page {
    nav: Nav,
    status: String,
    flow: String,
    version: String,
    stuck: bool,
    statuses: &'static [&'static str],
    flow_names: Vec<String>,
    table: String,
    can_start: bool,
    start_flows: Vec<FlowOption>,
    start_version: String,
    start_input: String,
    start_error: Option<String>,
}

async fn table_html(state: &AppState, q: &ListQuery) -> Result<String, UiError> {
    let page = list_page(state, &q.filter()?).await?;
    let now = state.now_ms();
    let rows = page
        .items
        .iter()
        .map(|i| {
            let status = i.status.to_status();
            Row {
                href: format!("/ui/instances/{}", url_encode(&i.id)),
                id: i.id.clone(),
                flow: format!("{}/{}", i.flow.namespace, i.flow.name),
                version: i.flow.version.clone(),
                status: status.as_str(),
                created: time(i.created_at_ms),
                updated: time(i.updated_at_ms),
                updated_ago: relative(now, i.updated_at_ms),
                stuck: !status.is_terminal()
                    && now.saturating_sub(i.updated_at_ms) >= STUCK_AFTER_MS,
            }
        })
        .collect();
    let first_page = q.cursor.is_empty();
    render_str(&Table {
        rows,
        poll_url: first_page.then(|| format!("/ui/instances/table?{}", q.query(None))),
        poll: POLL,
        next_url: page
            .next_cursor
            .as_deref()
            .map(|c| format!("/ui?{}", q.query(Some(c)))),
        first_url: (!first_page).then(|| format!("/ui?{}", q.query(None))),
    })
}

/// `GET /ui/instances/table`: the table alone, for the page's refresh.
pub(crate) async fn table(
    State(state): State<Arc<AppState>>,
    _s: Session,
    Query(q): Query<ListQuery>,
) -> Result<Response, UiError> {
    let body = table_html(&state, &q).await?;
    Ok(html(body))
}

async fn page_with(
    state: &AppState,
    session: &Session,
    q: &ListQuery,
    start: StartForm,
    start_error: Option<String>,
) -> Result<Page, UiError> {
    let table = table_html(state, q).await?;
    let flows = crate::api::flows::flow_views(state).await?;
    let names: BTreeSet<String> = flows.iter().map(|f| f.name.clone()).collect();
    let mut start_flows: Vec<FlowOption> = flows
        .iter()
        .filter(|f| f.latest)
        .map(|f| {
            let value = format!("{}/{}", f.namespace, f.name);
            FlowOption {
                selected: value == start.flow,
                label: format!("{value} (latest {})", f.version),
                value,
            }
        })
        .collect();
    start_flows.sort_by(|a, b| a.value.cmp(&b.value));
    start_flows.dedup_by(|a, b| a.value == b.value);
    Ok(Page {
        nav: session.nav("instances"),
        status: q.status.clone(),
        flow: q.flow.clone(),
        version: q.version.clone(),
        stuck: !q.stuck.is_empty(),
        statuses: &STATUSES,
        flow_names: names.into_iter().collect(),
        table,
        can_start: session.actor.can(Role::Operator),
        start_flows,
        start_version: start.version,
        start_input: if start.input.is_empty() {
            "{}".into()
        } else {
            start.input
        },
        start_error,
    })
}

/// `GET /ui`: the instances.
pub(crate) async fn page(
    State(state): State<Arc<AppState>>,
    session: Session,
    Query(q): Query<ListQuery>,
) -> Result<Response, UiError> {
    let page = page_with(&state, &session, &q, StartForm::default(), None).await?;
    Ok(render(&page))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct StartForm {
    /// `namespace/name`.
    #[serde(default)]
    flow: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    input: String,
}

/// The list page again, with the start form as it was sent and why it failed.
async fn start_failed(
    state: &AppState,
    session: &Session,
    status: StatusCode,
    why: String,
    form: StartForm,
) -> Result<Response, UiError> {
    let page = page_with(state, session, &ListQuery::default(), form, Some(why)).await?;
    let mut r = render(&page);
    *r.status_mut() = status;
    Ok(r)
}

/// `POST /ui/instances`: starts an instance (operators), then shows it.
pub(crate) async fn start(
    State(state): State<Arc<AppState>>,
    Posted { session, form }: Posted<StartForm>,
) -> Result<Response, UiError> {
    let actor = session.require(Role::Operator)?.clone();
    let Some((namespace, name)) = form.flow.split_once('/') else {
        let why = "Choose a flow.".to_string();
        return start_failed(&state, &session, StatusCode::BAD_REQUEST, why, form).await;
    };
    let (namespace, name) = (namespace.to_string(), name.to_string());
    let input: Value = if form.input.trim().is_empty() {
        json!({})
    } else {
        match serde_json::from_str(&form.input) {
            Ok(v) => v,
            Err(e) => {
                let why = format!("The input is not JSON: {e}");
                return start_failed(&state, &session, StatusCode::BAD_REQUEST, why, form).await;
            }
        }
    };
    let req = StartRequest {
        flow: name,
        namespace: Some(namespace),
        version: (!form.version.trim().is_empty()).then(|| form.version.trim().to_string()),
        input: Some(input),
    };
    match start_instance(&state, &actor, req, None).await {
        Ok(StartOutcome::Created(rec) | StartOutcome::Replayed(rec)) => {
            Ok(Redirect::to(&format!("/ui/instances/{}", url_encode(&rec.id.0))).into_response())
        }
        Err(e) => {
            let why = format!("{}: {}", e.title, e.detail.clone().unwrap_or_default());
            start_failed(&state, &session, status_of(&e), why, form).await
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One instance

struct EntryView {
    seq: usize,
    at: String,
    kind: &'static str,
    key: String,
    outcome: &'static str,
    notes: String,
}

struct WaitView {
    key: String,
    what: String,
    approval: Option<ApprovalView>,
}

struct ApprovalView {
    title: String,
    assignees: String,
    level: usize,
    due: String,
    due_rel: String,
    late: bool,
    status: &'static str,
}

struct DecisionView {
    task: String,
    key: String,
    at: String,
    outcome: &'static str,
    output: String,
    trace: Option<String>,
}

#[derive(Template)]
#[template(path = "instance_live.html")]
struct Live {
    id: String,
    poll_url: Option<String>,
    poll: &'static str,
    status: &'static str,
    updated: String,
    output: Option<String>,
    error: Option<String>,
    svg: String,
    approximate: Option<String>,
    waiting: Vec<WaitView>,
    decisions: Vec<DecisionView>,
    /// Decision records (`baton_engine::decisions`): inputs with their sources and ages,
    /// rules, answers and overrides.
    records: Vec<super::records::RecordView>,
    timeline: Vec<EntryView>,
    timeline_skipped: usize,
}

#[derive(Template)]
#[template(path = "instance.html")]
struct DetailPage {
    nav: Nav,
    id: String,
    flow: String,
    created: String,
    input: String,
    live: String,
    can_operate: bool,
    can_cancel: bool,
    can_suspend: bool,
    can_resume: bool,
    action_url: String,
    error: Option<String>,
    /// `(registration, case)` when the instance is a shadow run.
    shadow: Option<(String, String)>,
}

/// The program an instance runs: the loaded one, or compiled from the stored source (an
/// instance of a version this process has not loaded).
async fn program_of(state: &AppState, hash: &str) -> Option<Arc<Program>> {
    if let Some(p) = state.runtime.catalog().by_hash(hash) {
        return Some(p);
    }
    let text = state.runtime.store().flow_source(hash).await.ok()??;
    let opts = baton_flow::ValidateOptions {
        known_functions: state.runtime.function_names(),
    };
    let loaded = baton_flow::load_flow(&text, &opts).ok()?;
    Some(Arc::new(Program::new(loaded.workflow, loaded.raw, &text)))
}

async fn live_of(state: &AppState, id: &str) -> Result<(Live, Status, String), UiError> {
    let iid = InstanceId(id.to_string());
    let rec = state
        .runtime
        .store()
        .instance(&iid)
        .await?
        .ok_or_else(|| UiError::from(crate::ApiError::not_found(format!("instance {id}"))))?;
    // Read after the summary, so the journal is at least as new; the replay needs every entry,
    // not the API's page of them.
    let journal = state.runtime.store().journal(&iid).await?;
    // An end journaled between the two reads is the instance's status.
    let status = match journal.last() {
        Some(JournalEntry::Completed { .. }) => Status::Completed,
        Some(JournalEntry::Faulted { .. }) => Status::Faulted,
        Some(JournalEntry::Cancelled { .. }) => Status::Cancelled,
        _ => rec.status,
    };
    let program = program_of(state, &rec.flow.hash).await;
    let env = Env {
        flows: state.runtime.catalog().clone(),
        ..Env::default()
    };
    let progress = progress::derive(&iid, program.as_ref(), env, &journal, status);
    let svg = match &program {
        Some(p) => graph::build(
            &p.workflow,
            &progress.states,
            Progress::default_state(status),
        )
        .to_svg(),
        None => String::new(),
    };
    let waiting = waiting(state, &iid, &progress).await;
    let decisions = program
        .as_ref()
        .map(|p| decisions(p, &journal))
        .unwrap_or_default();
    // Secrets are not bound for this replay: a record never shows one.
    let record_env = Env {
        flows: state.runtime.catalog().clone(),
        ..Env::default()
    };
    let records = super::records::views(&baton_engine::decisions::records(
        &iid,
        program.as_ref(),
        record_env,
        &journal,
    ));
    let skipped = journal.len().saturating_sub(TIMELINE_ENTRIES_MAX);
    let timeline = journal
        .iter()
        .enumerate()
        .skip(skipped)
        .map(|(i, e)| entry_view(i, e))
        .collect();
    let input = match journal.first() {
        Some(JournalEntry::Started { input, .. }) => pretty(input),
        _ => String::new(),
    };
    let live = Live {
        id: id.to_string(),
        poll_url: (!status.is_terminal()).then(|| format!("/ui/instances/{}/live", url_encode(id))),
        poll: POLL,
        status: status.as_str(),
        updated: time(rec.updated_at_ms),
        output: rec.output.as_ref().map(pretty),
        error: rec.error.as_ref().map(|p| pretty(&p.to_value())),
        svg,
        approximate: progress.approximate,
        waiting,
        decisions,
        records,
        timeline,
        timeline_skipped: skipped,
    };
    Ok((live, status, input))
}

/// What the instance waits for now: its effects in flight, with the approval task of each
/// approval (found by its id, which is the call's idempotency key).
async fn waiting(state: &AppState, id: &InstanceId, progress: &Progress) -> Vec<WaitView> {
    let approvals = state.runtime.approvals();
    let now = state.now_ms();
    let mut out = Vec::new();
    for (key, request) in &progress.outstanding {
        let (what, approval) = match request {
            EffectRequest::Function { name, .. } if name == APPROVAL_FUNCTION => {
                let task: Option<ApprovalTask> =
                    approvals.get(&idempotency_key(id, key)).await.ok();
                let view = task.map(|t| ApprovalView {
                    late: t.is_late(now),
                    title: t.title,
                    assignees: t.assignees.join(", "),
                    level: t.level,
                    due: time(t.due_at_ms),
                    due_rel: relative(now, t.due_at_ms),
                    status: t.status.as_str(),
                });
                ("Waiting for approval".to_string(), view)
            }
            EffectRequest::Function { name, .. } => (format!("Running function `{name}`"), None),
            // Only the method and the address without its query: a query may carry data.
            EffectRequest::Http(r) => (
                format!(
                    "HTTP {} {}",
                    r.method,
                    r.uri.split(['?', '#']).next().unwrap_or("")
                ),
                None,
            ),
            EffectRequest::Timer { fire_at_ms } => (
                format!(
                    "Timer, fires {} ({})",
                    time(*fire_at_ms),
                    relative(now, *fire_at_ms)
                ),
                None,
            ),
            EffectRequest::Emit { .. } => ("Emitting an event".to_string(), None),
            EffectRequest::Listen { .. } => ("Listening for an event".to_string(), None),
        };
        out.push(WaitView {
            key: key.0.clone(),
            what,
            approval,
        });
    }
    out
}

/// Results of `call: decide` tasks, with their traces.
fn decisions(program: &Program, journal: &[JournalEntry]) -> Vec<DecisionView> {
    let mut out = Vec::new();
    for e in journal {
        let JournalEntry::EffectCompleted {
            at_ms,
            key,
            outcome,
            ..
        } = e
        else {
            continue;
        };
        let reference = key_reference(&key.0);
        let is_decide = progress::task_definition(program, &reference)
            .and_then(|t| t.get("call"))
            .and_then(Value::as_str)
            == Some("decide");
        if !is_decide {
            continue;
        }
        let (output, trace) = match outcome {
            Outcome::Ok { value } => match value.as_object() {
                Some(obj) if obj.contains_key("trace") => {
                    let mut rest = obj.clone();
                    let trace = rest.remove("trace").map(|t| pretty(&t));
                    (pretty(&Value::Object(rest)), trace)
                }
                _ => (pretty(value), None),
            },
            Outcome::Failed { problem } => (pretty(&problem.to_value()), None),
            other => (
                pretty(&serde_json::to_value(other).unwrap_or_default()),
                None,
            ),
        };
        out.push(DecisionView {
            task: reference,
            key: key.0.clone(),
            at: time(*at_ms),
            outcome: outcome.label(),
            output,
            trace,
        });
    }
    out
}

fn entry_view(seq: usize, e: &JournalEntry) -> EntryView {
    let short = |v: &Value| compact(v, NOTE_BYTES_MAX);
    let (key, outcome, notes) = match e {
        JournalEntry::Started { input, flow, .. } => (
            String::new(),
            "",
            format!(
                "{}/{}:{} input {}",
                flow.namespace,
                flow.name,
                flow.version,
                short(input)
            ),
        ),
        JournalEntry::EffectCompleted { key, outcome, .. } => {
            let notes = match outcome {
                Outcome::Ok { value } => short(value),
                Outcome::Failed { problem } => short(&problem.to_value()),
                Outcome::Unknown { reason } => reason.clone(),
                Outcome::Stale { reason, .. } => reason.clone(),
            };
            let notes = match baton_engine::explain::explain(e) {
                Some(why) => format!("{why} — {notes}"),
                None => notes,
            };
            (key.0.clone(), outcome.label(), notes)
        }
        JournalEntry::EffectNote { key, note, .. } => (key.0.clone(), "", short(note)),
        JournalEntry::TaskNote { task, note, .. } => (
            task.clone(),
            "",
            baton_engine::explain::explain(e).unwrap_or_else(|| short(note)),
        ),
        JournalEntry::CancelRequested { reason, by, .. } => (
            String::new(),
            "",
            format!("by {}: {reason}", by.as_deref().unwrap_or("?")),
        ),
        JournalEntry::Suspended { by, reason, .. } => (
            String::new(),
            "",
            format!(
                "by {by}{}",
                reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            ),
        ),
        JournalEntry::Resumed { by, .. } => (String::new(), "", format!("by {by}")),
        JournalEntry::Completed { output, .. } => (String::new(), "", short(output)),
        JournalEntry::Faulted { problem, .. } => (String::new(), "", short(&problem.to_value())),
        JournalEntry::Cancelled { reason, .. } => (String::new(), "", reason.clone()),
    };
    EntryView {
        seq,
        at: time(e.at_ms()),
        kind: e.kind(),
        key,
        outcome,
        notes,
    }
}

async fn detail_page(
    state: &AppState,
    session: &Session,
    id: &str,
    error: Option<String>,
) -> Result<DetailPage, UiError> {
    let (live, status, input) = live_of(state, id).await?;
    let rec = state
        .runtime
        .store()
        .instance(&InstanceId(id.to_string()))
        .await?
        .ok_or_else(|| UiError::from(crate::ApiError::not_found(format!("instance {id}"))))?;
    Ok(DetailPage {
        nav: session.nav("instances"),
        id: id.to_string(),
        flow: format!(
            "{}/{}:{}",
            rec.flow.namespace, rec.flow.name, rec.flow.version
        ),
        created: time(rec.created_at_ms),
        input,
        live: render_str(&live)?,
        can_operate: session.actor.can(Role::Operator),
        can_cancel: !status.is_terminal(),
        can_suspend: !status.is_terminal() && status != Status::Suspended,
        can_resume: status == Status::Suspended,
        action_url: format!("/ui/instances/{}", url_encode(id)),
        error,
        shadow: state
            .runtime
            .shadows()
            .mark_of(&InstanceId(id.to_string()))
            .await
            .map_err(crate::ApiError::from)?
            .map(|m| {
                let s = |k: &str| m[k].as_str().unwrap_or("?").to_string();
                (s("registration"), s("case"))
            }),
    })
}

/// `GET /ui/instances/{id}`.
pub(crate) async fn detail(
    State(state): State<Arc<AppState>>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    Ok(render(&detail_page(&state, &session, &id, None).await?))
}

/// `GET /ui/instances/{id}/live`: the part of the page that changes while the instance runs.
pub(crate) async fn live(
    State(state): State<Arc<AppState>>,
    _s: Session,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let (live, _, _) = live_of(&state, &id).await?;
    Ok(html(render_str(&live)?))
}

#[derive(Deserialize)]
pub(crate) struct ReasonForm {
    #[serde(default)]
    reason: String,
}

enum Control {
    Cancel,
    Suspend,
    Resume,
}

async fn control(
    state: &AppState,
    session: &Session,
    id: &str,
    what: Control,
    reason: Option<String>,
) -> Result<Response, UiError> {
    let actor = session.require(Role::Operator)?;
    let iid = InstanceId(id.to_string());
    let (done, action) = match what {
        Control::Cancel => {
            let reason = reason
                .clone()
                .unwrap_or_else(|| "cancelled from the dashboard".into());
            (
                state.runtime.cancel(&iid, &reason, &actor.name).await,
                "instance.cancel",
            )
        }
        Control::Suspend => (
            state
                .runtime
                .suspend(&iid, &actor.name, reason.as_deref())
                .await,
            "instance.suspend",
        ),
        Control::Resume => (
            state.runtime.unsuspend(&iid, &actor.name).await,
            "instance.resume",
        ),
    };
    match done {
        Ok(_) => {
            state
                .audit(
                    actor,
                    action,
                    id,
                    json!({"reason": reason, "via": "dashboard"}),
                )
                .await?;
            Ok(Redirect::to(&format!("/ui/instances/{}", url_encode(id))).into_response())
        }
        Err(e) => {
            let api = crate::ApiError::from(e);
            let why = format!("{}: {}", api.title, api.detail.clone().unwrap_or_default());
            let mut r = render(&detail_page(state, session, id, Some(why)).await?);
            *r.status_mut() = status_of(&api);
            Ok(r)
        }
    }
}

fn reason_of(form: &ReasonForm) -> Option<String> {
    let r = form.reason.trim();
    (!r.is_empty()).then(|| r.to_string())
}

/// `POST /ui/instances/{id}/cancel`.
pub(crate) async fn cancel(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Posted { session, form }: Posted<ReasonForm>,
) -> Result<Response, UiError> {
    control(&state, &session, &id, Control::Cancel, reason_of(&form)).await
}

/// `POST /ui/instances/{id}/suspend`.
pub(crate) async fn suspend(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Posted { session, form }: Posted<ReasonForm>,
) -> Result<Response, UiError> {
    control(&state, &session, &id, Control::Suspend, reason_of(&form)).await
}

/// `POST /ui/instances/{id}/resume`.
pub(crate) async fn resume(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Posted { session, .. }: Posted<NoFields>,
) -> Result<Response, UiError> {
    control(&state, &session, &id, Control::Resume, None).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_from_the_form() {
        let q = ListQuery {
            status: "waiting".into(),
            flow: " ship ".into(),
            stuck: "on".into(),
            ..ListQuery::default()
        };
        let f = q.filter().unwrap_or_else(|_| panic!("valid filter"));
        assert_eq!(f.status, Some(StatusView::Waiting));
        assert_eq!(f.flow.as_deref(), Some("ship"));
        assert_eq!(f.version, None);
        assert_eq!(f.stuck, Some(true));
        assert_eq!(
            q.query(Some("c1")),
            "status=waiting&flow=%20ship%20&stuck=1&cursor=c1"
        );
        let bad = ListQuery {
            status: "sleeping".into(),
            ..ListQuery::default()
        };
        assert!(bad.filter().is_err());
    }

    #[test]
    fn timeline_rows_say_what_happened() {
        let row = entry_view(
            3,
            &JournalEntry::EffectCompleted {
                at_ms: 0,
                key: baton_core::EffectKey("/do/0/a#call".into()),
                outcome: Outcome::ok(json!({"x": "y".repeat(1000)})),
                facts: Vec::new(),
            },
        );
        assert_eq!(
            (row.kind, row.outcome, row.key.as_str()),
            ("effect_completed", "ok", "/do/0/a#call")
        );
        assert!(row.notes.len() < NOTE_BYTES_MAX + 20 && row.notes.ends_with("(cut)"));
    }

    #[test]
    fn decision_results_are_shown_with_their_traces() {
        let yaml = r#"
document: {dsl: '1.0.0', namespace: test, name: d, version: '1.0.0'}
do:
  - route:
      call: decide
      with: {model: m.dmn, decision: Route, input: {}}
  - fetch:
      call: approval
      with: {title: t, assignees: ann, window: PT1H}
"#;
        let opts = baton_flow::ValidateOptions {
            known_functions: vec!["decide".into(), "approval".into()],
        };
        let loaded = baton_flow::load_flow(yaml, &opts).unwrap_or_else(|d| panic!("{d:?}"));
        let program = Program::new(loaded.workflow, loaded.raw, yaml);
        let done = |key: &str, value: Value| JournalEntry::EffectCompleted {
            at_ms: 0,
            key: baton_core::EffectKey(key.into()),
            outcome: Outcome::ok(value),
            facts: Vec::new(),
        };
        let journal = [
            done(
                "/do/0/route#call",
                json!({"output": {"truck": "t-4"}, "trace": {"rules": [2]}}),
            ),
            done("/do/1/fetch#call", json!({"approved": true})),
        ];
        let shown = decisions(&program, &journal);
        assert_eq!(shown.len(), 1, "only `call: decide` results");
        let d = &shown[0];
        assert_eq!((d.task.as_str(), d.outcome), ("/do/0/route", "ok"));
        assert!(d.output.contains("t-4") && !d.output.contains("rules"));
        assert!(d.trace.as_deref().is_some_and(|t| t.contains("rules")));
    }
}
