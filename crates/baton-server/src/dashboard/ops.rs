//! The operations pages: providers (rate, outcomes, breaker and limiter, refreshing themselves)
//! and triggers (inbound events and the quarantine).

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use baton_engine::Role;
use baton_engine::StartError;
use baton_engine::triggers::{
    Action, EventOutcome, EventReport, Pattern, RuleAction, TriggerError,
};
use baton_store::{DocQuery, Store};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Nav, POLL, Posted, Session, UiError, compact, html, relative, render, render_str, time,
    url_encode,
};
use crate::AppState;

// ---------------------------------------------------------------------------------------------
// Providers

struct ProviderRow {
    name: String,
    rate: String,
    calls: u64,
    ok: u64,
    failed: u64,
    unknown: u64,
    stale: u64,
    retries: u64,
    throttled: u64,
    limiter_waits: u64,
    limiter_wait_ms: u64,
    tokens: String,
    free_slots: String,
    breaker: String,
    breaker_transitions: u64,
    rejected_open: u64,
    fallbacks: u64,
    reconciled: String,
    polls: u64,
    /// "p50 / p99" of request latency, to the provider layer's bucket resolution.
    latency: String,
}

#[derive(Template)]
#[template(path = "providers_table.html")]
struct ProvidersTable {
    configured: bool,
    rows: Vec<ProviderRow>,
    poll_url: String,
    poll: &'static str,
    measured: String,
}

#[derive(Template)]
#[template(path = "providers.html")]
struct ProvidersPage {
    nav: Nav,
    table: String,
}

/// The previous sample of the call counters, carried by the refreshing table in its own URL:
/// rates are differences between two samples, and keeping the last one in the page needs no
/// state on the server.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Sample {
    /// When it was taken (ms).
    #[serde(default)]
    t: Option<u64>,
    /// Calls per provider, in name order, separated by `.`.
    #[serde(default)]
    c: String,
}

fn providers_html(state: &AppState, prev: &Sample) -> Result<String, UiError> {
    let now = state.now_ms();
    let snapshot = state.runtime.provider_snapshot();
    let mut providers: Vec<(String, Value)> = match &snapshot {
        Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        _ => Vec::new(),
    };
    providers.sort_by(|a, b| a.0.cmp(&b.0));
    let before: Vec<u64> = prev.c.split('.').filter_map(|n| n.parse().ok()).collect();
    let elapsed_ms = prev.t.filter(|t| *t < now).map(|t| now - t);
    let comparable = before.len() == providers.len() && elapsed_ms.is_some();
    let mut rows = Vec::with_capacity(providers.len());
    for (i, (name, p)) in providers.iter().enumerate() {
        let num = |k: &str| p.get(k).and_then(Value::as_u64).unwrap_or(0);
        let opt = |k: &str| {
            p.get(k)
                .and_then(Value::as_u64)
                .map_or("—".to_string(), |n| n.to_string())
        };
        let calls = num("calls");
        let rate = match (comparable, elapsed_ms) {
            (true, Some(ms)) if calls >= before[i] => {
                format!("{:.1}/s", (calls - before[i]) as f64 * 1000.0 / ms as f64)
            }
            _ => "—".into(),
        };
        rows.push(ProviderRow {
            name: name.clone(),
            rate,
            calls,
            ok: num("ok"),
            failed: num("failed"),
            unknown: num("unknown"),
            stale: num("stale"),
            retries: num("retries"),
            throttled: num("throttled"),
            limiter_waits: num("limiter_waits"),
            limiter_wait_ms: num("limiter_wait_ms"),
            tokens: opt("tokens"),
            free_slots: opt("free_slots"),
            breaker: p
                .get("breaker")
                .and_then(Value::as_str)
                .unwrap_or("none")
                .to_string(),
            breaker_transitions: num("breaker_transitions"),
            rejected_open: num("rejected_open"),
            fallbacks: num("fallbacks"),
            reconciled: format!(
                "{} applied / {} not",
                num("reconciled_applied"),
                num("reconciled_not_applied")
            ),
            polls: num("polls"),
            latency: match (
                p.get("latency_p50_ms").and_then(Value::as_u64),
                p.get("latency_p99_ms").and_then(Value::as_u64),
            ) {
                (Some(a), Some(b)) => format!("≤{a} / ≤{b} ms"),
                _ => "–".into(),
            },
        });
    }
    let counts: Vec<String> = rows.iter().map(|r| r.calls.to_string()).collect();
    let poll_url = format!(
        "/ui/providers/table?t={now}&c={}",
        url_encode(&counts.join("."))
    );
    render_str(&ProvidersTable {
        configured: snapshot.is_some(),
        rows,
        poll_url,
        poll: POLL,
        measured: match elapsed_ms {
            Some(ms) if comparable => format!("over the last {:.1} s", ms as f64 / 1000.0),
            _ => "from the next refresh".into(),
        },
    })
}

/// `GET /ui/providers`.
pub(crate) async fn providers(
    State(state): State<Arc<AppState>>,
    session: Session,
) -> Result<Response, UiError> {
    let table = providers_html(&state, &Sample::default())?;
    Ok(render(&ProvidersPage {
        nav: session.nav("providers"),
        table,
    }))
}

/// `GET /ui/providers/table`: the table alone, for the page's refresh.
pub(crate) async fn providers_table(
    State(state): State<Arc<AppState>>,
    _s: Session,
    Query(prev): Query<Sample>,
) -> Result<Response, UiError> {
    Ok(html(providers_html(&state, &prev)?))
}

// ---------------------------------------------------------------------------------------------
// Triggers

const EVENTS_SHOWN: u64 = 25;
const QUARANTINE_SHOWN: usize = 100;

struct EventRow {
    seq: u64,
    source: String,
    kind: String,
    id: String,
    time: String,
    target: String,
}

struct QuarantineRow {
    id: String,
    status: String,
    at: String,
    at_rel: String,
    reason: String,
    source: String,
    kind: String,
    event_id: String,
    raw: String,
    /// What the corrected-replay form starts from.
    raw_edit: String,
    replay: String,
    replay_url: Option<String>,
}

struct RuleRow {
    name: String,
    on: String,
    action: String,
    dedupe: String,
    debounce: String,
    matched: u64,
    started: u64,
    signalled: u64,
    debounced: u64,
    gated_out: u64,
}

struct HeldRow {
    rule: String,
    key: String,
    due: String,
    due_rel: String,
    count: u64,
}

#[derive(Template)]
#[template(path = "triggers.html")]
struct TriggersPage {
    nav: Nav,
    /// Whether this server runs the trigger engine.
    engine: bool,
    /// `(outcome, count)` since the engine started.
    outcomes: Vec<(&'static str, u64)>,
    rules: Vec<RuleRow>,
    held: Vec<HeldRow>,
    events: Vec<EventRow>,
    quarantine_held: u64,
    quarantine: Vec<QuarantineRow>,
    notice: Option<String>,
    error: Option<String>,
}

/// The highest event sequence number in the store (0 without events). The store lists events
/// only forward from a sequence number, so the end is found by doubling then halving: about
/// 2·log2(n) one-row reads instead of reading every event.
async fn latest_event_seq(state: &AppState) -> Result<u64, UiError> {
    let store = state.runtime.store();
    let exists_after = async |seq: u64| -> Result<bool, UiError> {
        Ok(!store.events_after(seq, 1).await?.is_empty())
    };
    if !exists_after(0).await? {
        return Ok(0);
    }
    // Invariant: an event after `lo` exists; none after `hi` (once the doubling stops).
    let mut lo = 0u64;
    let mut hi = 1u64;
    while hi < u64::MAX && exists_after(hi).await? {
        lo = hi;
        hi = hi.saturating_mul(2);
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if exists_after(mid).await? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(hi)
}

fn text(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or("").to_string()
}

fn pattern(p: &Pattern) -> String {
    match p {
        Pattern::Any => "*".into(),
        Pattern::Exact(t) => t.clone(),
        Pattern::Prefix(t) => format!("{t}*"),
    }
}

fn duration(ms: u64) -> String {
    match ms {
        0 => "0".into(),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms => format!("{}s", ms as f64 / 1000.0),
    }
}

/// What an event report says, in a line.
fn outcome_line(r: &EventReport) -> String {
    match &r.outcome {
        EventOutcome::Accepted { actions } => {
            let acts: Vec<String> = actions
                .iter()
                .map(|a| match a {
                    RuleAction::Started { rule, instance } => format!("{rule} started {instance}"),
                    RuleAction::Signalled { rule, flow, .. } => format!("{rule} signalled {flow}"),
                    RuleAction::Debounced { rule, .. } => format!("{rule} held (debounce)"),
                    RuleAction::GatedOut { rule } => format!("{rule} gated out"),
                })
                .collect();
            format!("accepted ({})", acts.join("; "))
        }
        EventOutcome::Unmatched { .. } => "accepted; no rule acted on it".into(),
        EventOutcome::Duplicate => "duplicate (already processed)".into(),
        EventOutcome::Quarantined { reason, .. } => format!("quarantined again: {reason}"),
    }
}

async fn triggers_page(
    state: &AppState,
    session: &Session,
    notice: Option<String>,
    error: Option<String>,
) -> Result<TriggersPage, UiError> {
    let store = state.runtime.store();
    let latest_seq = latest_event_seq(state).await?;
    let mut events: Vec<EventRow> = store
        .events_after(
            latest_seq.saturating_sub(EVENTS_SHOWN),
            EVENTS_SHOWN as usize,
        )
        .await?
        .into_iter()
        .map(|e| EventRow {
            seq: e.seq,
            source: text(&e.event, "source"),
            kind: text(&e.event, "type"),
            id: text(&e.event, "id"),
            time: text(&e.event, "time"),
            target: text(&e.event, baton_engine::SIGNAL_TARGET),
        })
        .collect();
    events.reverse();
    let now = state.now_ms();
    let mut page = TriggersPage {
        nav: session.nav("triggers"),
        engine: false,
        outcomes: Vec::new(),
        rules: Vec::new(),
        held: Vec::new(),
        events,
        quarantine_held: 0,
        quarantine: Vec::new(),
        notice,
        error,
    };
    let Some(engine) = state.triggers.get() else {
        return Ok(page);
    };
    page.engine = true;
    let c = engine.counters();
    page.outcomes = vec![
        ("accepted", c.accepted),
        ("unmatched", c.unmatched),
        ("duplicate", c.duplicate),
        ("quarantined", c.quarantined),
        ("replayed", c.replayed),
        ("instances started", c.started),
        ("signals", c.signalled),
        ("debounced", c.debounced),
        ("gated out", c.gated_out),
        ("echoes", c.echoes),
        ("echoes suppressed", c.echoes_suppressed),
        ("expected changes", c.expected_changes),
    ];
    page.rules = engine
        .rules()
        .iter()
        .map(|r| {
            let rc = c.rules.get(&r.name).cloned().unwrap_or_default();
            RuleRow {
                name: r.name.clone(),
                on: format!("{} from {}", pattern(&r.on_type), pattern(&r.on_source)),
                action: match &r.action {
                    Action::Start {
                        flow,
                        namespace,
                        version,
                        ..
                    } => format!("start {namespace}/{flow}:{version}"),
                    Action::Signal {
                        flow, namespace, ..
                    } => format!("signal {namespace}/{flow}"),
                },
                dedupe: duration(r.dedupe_window_ms),
                debounce: r
                    .debounce
                    .as_ref()
                    .map(|d| duration(d.window_ms))
                    .unwrap_or_default(),
                matched: rc.matched,
                started: rc.started,
                signalled: rc.signalled,
                debounced: rc.debounced,
                gated_out: rc.gated_out,
            }
        })
        .collect();
    page.held = engine
        .held()
        .await
        .map_err(trigger_error)?
        .into_iter()
        .map(|h| HeldRow {
            rule: h.rule,
            key: compact(&h.key, 200),
            due: time(h.due_at_ms),
            due_rel: relative(now, h.due_at_ms),
            count: h.count,
        })
        .collect();
    page.quarantine_held = engine.quarantine_count().await.map_err(trigger_error)?;
    let can_replay = session.actor.can(Role::Operator);
    page.quarantine = engine
        .quarantine(&DocQuery {
            status: None,
            newest_first: true,
            after: None,
            limit: QUARANTINE_SHOWN,
        })
        .await
        .map_err(trigger_error)?
        .into_iter()
        .map(|q| QuarantineRow {
            replay_url: (can_replay && q.status == "held")
                .then(|| format!("/ui/triggers/quarantine/{}/replay", url_encode(&q.id))),
            source: text(&q.raw, "source"),
            kind: text(&q.raw, "type"),
            event_id: text(&q.raw, "id"),
            raw: match &q.raw {
                Value::String(t) => super::cut(t.clone(), 2_000),
                v => compact(v, 2_000),
            } + if q.truncated {
                " (truncated when received)"
            } else {
                ""
            },
            raw_edit: match &q.raw {
                Value::String(t) => super::cut(t.clone(), 64 * 1024),
                v => super::pretty(v),
            },
            replay: match (&q.replayed_at_ms, &q.replay) {
                (Some(at), r) => format!(
                    "replayed {}{}",
                    time(*at),
                    r.as_ref()
                        .map(|r| format!(": {}", compact(r, 300)))
                        .unwrap_or_default()
                ),
                _ => String::new(),
            },
            at: time(q.received_at_ms),
            at_rel: relative(now, q.received_at_ms),
            reason: q.reason,
            status: q.status,
            id: q.id,
        })
        .collect();
    Ok(page)
}

fn trigger_error(e: TriggerError) -> UiError {
    match e {
        TriggerError::Store(s) | TriggerError::Start(StartError::Store(s)) => s.into(),
        TriggerError::UnknownQuarantine(id) => UiError::page(
            StatusCode::NOT_FOUND,
            "Not found",
            format!("no quarantined event {id}"),
        ),
        TriggerError::AlreadyReplayed(id) => UiError::page(
            StatusCode::CONFLICT,
            "Already replayed",
            format!("quarantined event {id} was replayed before"),
        ),
        other => UiError::page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Trigger failure",
            other.to_string(),
        ),
    }
}

/// `GET /ui/triggers`.
pub(crate) async fn triggers(
    State(state): State<Arc<AppState>>,
    session: Session,
) -> Result<Response, UiError> {
    Ok(render(&triggers_page(&state, &session, None, None).await?))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ReplayForm {
    /// A corrected event (JSON) to process instead of the one received; empty for as received.
    #[serde(default)]
    corrected: String,
}

/// `POST /ui/triggers/quarantine/{id}/replay` (operators): processes a quarantined event again,
/// as received or corrected.
pub(crate) async fn replay_quarantined(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Posted { session, form }: Posted<ReplayForm>,
) -> Result<Response, UiError> {
    let actor = session.require(Role::Operator)?.clone();
    let engine = state.triggers.get().ok_or_else(|| {
        UiError::page(
            StatusCode::NOT_FOUND,
            "Not found",
            "this server runs without triggers",
        )
    })?;
    let corrected = match form.corrected.trim() {
        "" => Ok(None),
        text => serde_json::from_str::<Value>(text)
            .map(Some)
            .map_err(|e| format!("The corrected event is not JSON: {e}")),
    };
    let done = match corrected {
        Ok(corrected) => {
            let was_corrected = corrected.is_some();
            match engine.replay(&id, corrected).await {
                Ok(report) => {
                    state
                        .audit(
                            &actor,
                            "quarantine.replay",
                            &id,
                            json!({"corrected": was_corrected, "via": "dashboard"}),
                        )
                        .await?;
                    Ok(format!("Replayed {id}: {}", outcome_line(&report)))
                }
                Err(e) => match trigger_error(e) {
                    UiError::Page {
                        status,
                        title,
                        detail,
                    } => Err((status, format!("{title}: {detail}"))),
                    other => return Err(other),
                },
            }
        }
        Err(why) => Err((StatusCode::BAD_REQUEST, why)),
    };
    let (notice, error, status) = match done {
        Ok(n) => (Some(n), None, StatusCode::OK),
        Err((status, why)) => (None, Some(why), status),
    };
    let mut r = render(&triggers_page(&state, &session, notice, error).await?);
    *r.status_mut() = status;
    Ok(r)
}
