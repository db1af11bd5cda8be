//! Approvals: human tasks (`call: approval`) with assignees, a window, a due policy, escalation
//! and an inbox.
//!
//! A call creates (or, after a crash, finds) one task document of kind `approval` whose id is the
//! call's idempotency key, then waits durably: the answer is in the document, never only in
//! memory, so a process that restarts finds the task where it was and a task answered while the
//! process was down is delivered as soon as the call is performed again. The waiting call wakes
//! on an answer (the store's watch of the task document, so an answer given through another
//! process over the same store wakes it too), on the current level's due time (escalation) and
//! on the window's end (the default answer or a timeout), all on the injected clock.
//!
//! Every change of the document is a conditional write on its version, so an escalation, a
//! window end and two people answering at once cannot overwrite each other: exactly one wins and
//! the others see the task as it then is.

mod args;
mod calendar;
pub mod guard;
pub mod policy;
mod report;

use std::sync::Arc;

use baton_core::{ErrorKind, InstanceId, Outcome, Problem};
use baton_store::{
    Doc, DocQuery, DocStore, DocWatch, DocWrite, Expect, KeyRange, Store, StoreError,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use args::{ApprovalArgs, DuePolicy, WindowEnd};
pub use calendar::{Calendar, CalendarSpec};
pub use policy::{
    EffectiveRule, OverridePolicy, OverrideRefusal, OverrideRule, Principal, ScopedRule,
};
pub use report::{OverrideEntry, OverrideGroup, OverrideReport};

use baton_api::{Actor, Call, Clock, Function, FunctionResult, Role};

/// The function name flows call: `call: approval`.
pub const APPROVAL_FUNCTION: &str = baton_core::functions::names::APPROVAL;
/// The document kind of approval tasks.
pub const APPROVAL_KIND: &str = "approval";
/// Who records what Baton decides itself (escalations, default answers).
pub const SYSTEM_ACTOR: &str = "baton";

/// How many answered tasks per status the adaptive policy looks at to find the last answers of
/// an assignee.
const HISTORY_SCAN: usize = 500;
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;

/// Where a task stands. `open` until answered, defaulted at the window's end, or expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalStatus {
    Open,
    /// Approved by a person (also when the person replaced the output: verdict `overridden`).
    Approved,
    Rejected,
    /// Answered by Baton at the window's end (`on_window_end: approve | reject`).
    Defaulted,
    /// Not answered within the window (`on_window_end: fail`).
    Expired,
}

impl ApprovalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Open => "open",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Rejected => "rejected",
            ApprovalStatus::Defaulted => "defaulted",
            ApprovalStatus::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<ApprovalStatus> {
        Some(match s {
            "open" => ApprovalStatus::Open,
            "approved" => ApprovalStatus::Approved,
            "rejected" => ApprovalStatus::Rejected,
            "defaulted" => ApprovalStatus::Defaulted,
            "expired" => ApprovalStatus::Expired,
            _ => return None,
        })
    }
}

/// How a task was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Approved,
    Rejected,
    /// Approved with a replacement output.
    Overridden,
    /// Baton's answer at the window's end.
    Defaulted,
}

/// One step up the escalation chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Escalation {
    pub from_level: usize,
    pub to_level: usize,
    pub from: Vec<String>,
    pub to: Vec<String>,
    /// When Baton escalated.
    pub at_ms: u64,
    /// The due time the earlier level missed.
    pub missed_due_at_ms: u64,
    /// The new level's due time.
    pub due_at_ms: u64,
}

/// An approval task as stored and as the inbox shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalTask {
    /// The call's idempotency key.
    pub id: String,
    /// The instance that asked, when the flow passed it (`instance: ${ $workflow.id }`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    pub title: String,
    /// What the person decides about (e.g. a proposed decision output).
    pub data: Value,
    pub status: ApprovalStatus,
    /// The current escalation level (0: the first assignees).
    pub level: usize,
    /// The current level's assignees: user names and `group:NAME`.
    pub assignees: Vec<String>,
    /// Every level, the first assignees then the escalation chain.
    pub levels: Vec<Vec<String>>,
    pub created_at_ms: u64,
    /// When the current level was asked (creation, or its escalation).
    pub offered_at_ms: u64,
    /// The current level's due time (never after the window's end); also the inbox order.
    pub due_at_ms: u64,
    pub window_end_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<DuePolicy>,
    pub on_window_end: WindowEnd,
    #[serde(default)]
    pub escalations: Vec<Escalation>,
    /// Set once answered: whether the answer lets the flow go ahead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at_ms: Option<u64>,
    /// The replacement output of an override (`data` keeps what was proposed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Whether the answer came after the due time of the level that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_late: Option<bool>,
    /// The decision's name for the override policy and reports (`with: {decision}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    /// The flow's own override rule (`with: {override}`).
    #[serde(default, rename = "override", skip_serializing_if = "Option::is_none")]
    pub override_rule: Option<OverrideRule>,
    /// JSON Pointer into the instance's output where the flow says what an override cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<String>,
    /// An override that waits for its second approver; the task stays open meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_override: Option<PendingOverride>,
    /// Overrides the second approver refused, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused_overrides: Vec<RefusedOverride>,
    /// The second approver who confirmed the override in effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed_at_ms: Option<u64>,
    /// When the override in effect was asked for (its confirmation is `decided_at_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_proposed_at_ms: Option<u64>,
}

/// An override asked for and not yet confirmed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingOverride {
    pub output: Value,
    pub reason: String,
    pub by: String,
    pub at_ms: u64,
    /// Who may confirm it (every list must admit the second approver).
    pub second_approver: Vec<Vec<Principal>>,
}

/// An override its second approver refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefusedOverride {
    #[serde(flatten)]
    pub asked: PendingOverride,
    pub refused_by: String,
    pub refused_at_ms: u64,
    pub refusal_reason: String,
}

impl ApprovalTask {
    /// The decision's name: `with: {decision}`, else the title.
    pub fn decision_name(&self) -> &str {
        self.decision.as_deref().unwrap_or(&self.title)
    }

    /// The override in effect, as the journal records it with the answer: the original and the
    /// replacement, who asked and why, who confirmed. `None` unless the verdict is `overridden`.
    pub fn override_record(&self) -> Option<Value> {
        if self.verdict != Some(Verdict::Overridden) {
            return None;
        }
        let iso = |ms: Option<u64>| ms.map(baton_core::time::iso8601_utc);
        Some(json!({
            "decision": self.decision_name(),
            "original": self.data,
            "replacement": self.output,
            "by": self.decided_by,
            "reason": self.reason,
            "asked_at": iso(self.override_proposed_at_ms.or(self.decided_at_ms)),
            "effective_at": iso(self.decided_at_ms),
            "confirmed_by": self.confirmed_by,
            "confirmed_at": iso(self.confirmed_at_ms),
        }))
    }

    /// Open and past its current due time.
    pub fn is_late(&self, now_ms: u64) -> bool {
        self.status == ApprovalStatus::Open && now_ms >= self.due_at_ms
    }

    /// The cursor of the page that continues after this task (`ApprovalQuery::cursor`).
    pub fn cursor(&self) -> String {
        format!("{}:{}", self.due_at_ms, self.id)
    }

    /// Whether `actor` is among the assignees of the current or an earlier level, by name or
    /// through one of its groups. Earlier levels keep the right to answer: an escalation adds
    /// people, it does not take the task away from those first asked.
    pub fn is_assigned_to(&self, name: &str, groups: &[String]) -> bool {
        self.levels
            .iter()
            .take(self.level + 1)
            .flatten()
            .any(|a| match a.strip_prefix("group:") {
                Some(g) => groups.iter().any(|mine| mine == g),
                None => a == name,
            })
    }

    /// What the call returns once the task is closed: the answer as data, or the timeout
    /// problem of an expired task. `None` while open.
    pub fn outcome(&self) -> Option<Outcome> {
        match self.status {
            ApprovalStatus::Open => None,
            ApprovalStatus::Expired => Some(Outcome::failed(
                Problem::new(ErrorKind::Timeout, "Approval not answered").with_detail(format!(
                    "the approval `{}` ({}) was not answered before its window ended at {}; \
                     last assignees: {}; escalations: {}",
                    self.title,
                    self.id,
                    baton_core::time::iso8601_utc(self.window_end_at_ms),
                    self.assignees.join(", "),
                    self.escalations.len()
                )),
            )),
            _ => {
                let approved = self.approved.unwrap_or(false);
                let mut v = json!({
                    "task": self.id,
                    "approved": approved,
                    "verdict": self.verdict,
                    "by": self.decided_by,
                    "reason": self.reason,
                    "at": self.decided_at_ms.map(baton_core::time::iso8601_utc),
                    "late": self.answered_late.unwrap_or(false),
                });
                if approved {
                    v["output"] = self.output.clone().unwrap_or_else(|| self.data.clone());
                }
                if let Some(o) = self.override_record() {
                    v["override"] = o;
                }
                if !self.refused_overrides.is_empty() {
                    v["refused_overrides"] = json!(
                        self.refused_overrides
                            .iter()
                            .map(|r| json!({
                                "replacement": r.asked.output,
                                "by": r.asked.by,
                                "reason": r.asked.reason,
                                "asked_at": baton_core::time::iso8601_utc(r.asked.at_ms),
                                "refused_by": r.refused_by,
                                "refused_at": baton_core::time::iso8601_utc(r.refused_at_ms),
                                "refusal_reason": r.refusal_reason,
                            }))
                            .collect::<Vec<_>>()
                    );
                }
                Some(Outcome::ok(v))
            }
        }
    }
}

/// A person's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Approve,
    Reject,
    /// Approve with this output instead of the proposed `data`.
    Override {
        output: Value,
    },
}

/// Why an inbox operation was refused. The server maps each variant to one HTTP status and
/// problem code (`baton-server`'s `api/approvals.rs`), for the API and the dashboard alike.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApprovalError {
    #[error("no approval task `{0}`")]
    NotFound(String),
    #[error("forbidden: {why}")]
    Forbidden { why: String },
    #[error("conflict: {why}")]
    Conflict { why: String },
    #[error("invalid request: {why}")]
    Invalid { why: String },
    /// An override, or its confirmation, that the policy refuses.
    #[error("override refused: {why}")]
    Override {
        refusal: OverrideRefusal,
        why: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Which tasks to list, ordered by due time.
#[derive(Debug, Clone, Default)]
pub struct ApprovalQuery {
    pub status: Option<ApprovalStatus>,
    /// Only tasks this user may answer: assigned by name or (with `groups`) through a group, at
    /// the current or an earlier level. A `group:NAME` here matches that group's tasks.
    pub assignee: Option<String>,
    /// The groups of `assignee`.
    pub groups: Vec<String>,
    pub instance: Option<String>,
    /// Latest due time first.
    pub newest_first: bool,
    /// [`ApprovalTask::cursor`] of the last task of the previous page.
    pub cursor: Option<String>,
    /// 0 for the default (50); at most 1000.
    pub limit: usize,
}

impl ApprovalQuery {
    /// The open tasks `actor` may answer: the personal inbox.
    pub fn inbox_of(actor: &Actor) -> ApprovalQuery {
        ApprovalQuery {
            status: Some(ApprovalStatus::Open),
            assignee: Some(actor.name.clone()),
            groups: actor.groups.clone(),
            ..ApprovalQuery::default()
        }
    }

    fn admits(&self, t: &ApprovalTask) -> bool {
        self.instance
            .as_ref()
            .is_none_or(|i| t.instance.as_ref() == Some(i))
            && self.assignee.as_ref().is_none_or(|a| {
                // A person by name or through a group; `group:NAME` itself matches that entry.
                t.is_assigned_to(a, &self.groups)
                    || t.levels.iter().take(t.level + 1).flatten().any(|x| x == a)
            })
    }
}

fn corrupt(id: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("approval task {id}: {e}"))
}

/// What every person's answer to a task starts with (`decide`, `confirm_override`): the actor
/// must hold the approver role, and a blank reason is no reason.
fn approver_reason(actor: &Actor, reason: Option<String>) -> Result<Option<String>, ApprovalError> {
    if !actor.can(Role::Approver) {
        return Err(ApprovalError::Forbidden {
            why: format!("`{}` does not have the approver role", actor.name),
        });
    }
    Ok(reason
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty()))
}

fn task_of(doc: &Doc) -> Result<ApprovalTask, StoreError> {
    serde_json::from_value(doc.body.clone()).map_err(|e| corrupt(&doc.id, e))
}

/// Writes a task: status and listing time (its due time) go to the document's columns.
async fn write<S: DocStore>(
    store: &S,
    task: &ApprovalTask,
    expect: Expect,
) -> Result<Doc, StoreError> {
    let body = serde_json::to_value(task).map_err(|e| corrupt(&task.id, e))?;
    let version = store
        .put_doc(DocWrite {
            kind: APPROVAL_KIND.into(),
            id: task.id.clone(),
            status: task.status.as_str().into(),
            at_ms: task.due_at_ms,
            body: body.clone(),
            expect,
        })
        .await?;
    Ok(Doc {
        kind: APPROVAL_KIND.into(),
        id: task.id.clone(),
        status: task.status.as_str().into(),
        at_ms: task.due_at_ms,
        version,
        body,
    })
}

/// Nearest-rank percentile of `samples` (not empty).
fn percentile(mut samples: Vec<u64>, p: u8) -> u64 {
    samples.sort_unstable();
    let rank = (samples.len() * p as usize).div_ceil(100).max(1);
    samples[rank - 1]
}

/// The working time `assignees` took to answer their last `n` tasks, newest first: a task counts
/// when a person answered it while one of `assignees` was among the level asked. Measured with
/// the new task's calendar, so that answers given under other policies compare alike.
async fn response_times<S: DocStore>(
    store: &S,
    calendar: &Calendar,
    assignees: &[String],
    n: usize,
) -> Result<Vec<u64>, StoreError> {
    let mut answered: Vec<ApprovalTask> = Vec::new();
    for status in [ApprovalStatus::Approved, ApprovalStatus::Rejected] {
        let docs = store
            .docs(
                APPROVAL_KIND,
                &DocQuery {
                    status: Some(status.as_str().into()),
                    newest_first: true,
                    after: None,
                    limit: HISTORY_SCAN,
                },
            )
            .await?;
        for d in &docs {
            // One unreadable old task must not stop new tasks from being created.
            let Ok(t) = task_of(d) else { continue };
            if t.decided_at_ms.is_some() && t.assignees.iter().any(|a| assignees.contains(a)) {
                answered.push(t);
            }
        }
    }
    answered.sort_by_key(|t| std::cmp::Reverse(t.decided_at_ms));
    answered.truncate(n);
    Ok(answered
        .iter()
        .map(|t| calendar.working_between(t.offered_at_ms, t.decided_at_ms.unwrap_or(0)))
        .collect())
}

/// The due time of a level asked at `from_ms` (never after the window's end).
async fn due_time<S: DocStore>(
    store: &S,
    policy: Option<&DuePolicy>,
    assignees: &[String],
    from_ms: u64,
    window_end_ms: u64,
) -> Result<u64, StoreError> {
    let due = match policy {
        None => window_end_ms,
        Some(DuePolicy::Fixed { after_ms }) => from_ms.saturating_add(*after_ms),
        Some(
            p @ DuePolicy::Adaptive {
                default_ms,
                min_ms,
                max_ms,
                samples,
                percentile: pct,
                ..
            },
        ) => match p.calendar() {
            Some(cal) => {
                let times = response_times(store, &cal, assignees, *samples).await?;
                let working = if times.is_empty() {
                    *default_ms
                } else {
                    percentile(times, *pct)
                }
                .clamp(*min_ms, *max_ms);
                cal.add_working(from_ms, working)
                    .unwrap_or(from_ms.saturating_add(working))
            }
            // Checked when the task was created; a stored spec that no longer compiles (a
            // zone removed from the database) falls back to wall time rather than no due time.
            None => from_ms.saturating_add(*default_ms),
        },
    };
    Ok(due.min(window_end_ms))
}

/// The `call: approval` function.
pub struct ApprovalFunction<S: DocStore> {
    store: Arc<S>,
    clock: Arc<dyn Clock>,
}

impl<S: DocStore> ApprovalFunction<S> {
    pub fn new(store: Arc<S>, clock: Arc<dyn Clock>) -> ApprovalFunction<S> {
        ApprovalFunction { store, clock }
    }
}

impl<S: DocStore> Function for ApprovalFunction<S> {
    /// Approvals wait for people outside the process: they run after the barrier, like HTTP.
    fn is_local(&self) -> bool {
        false
    }

    /// The task records the instance it belongs to even when the flow does not pass
    /// `instance:`, so the inbox can link to it.
    fn invoke(&self, call: Call<'_>, args: Value) -> FunctionResult {
        baton_api::call_as_instance(call, args, "Invalid approval arguments", |args| {
            self.run(args, call.idempotency_key)
        })
    }
}

impl<S: DocStore> ApprovalFunction<S> {
    fn run(&self, args: Value, idempotency_key: &str) -> FunctionResult {
        let waiter = Waiter {
            store: self.store.clone(),
            clock: self.clock.clone(),
        };
        let id = idempotency_key.to_string();
        Box::pin(async move {
            let args = match ApprovalArgs::parse(&args) {
                Ok(a) => a,
                Err(why) => {
                    return Outcome::failed(
                        Problem::new(ErrorKind::Validation, "Invalid approval arguments")
                            .with_detail(why),
                    );
                }
            };
            match waiter.run(args, &id).await {
                Ok(o) => o,
                Err(e) => Outcome::failed(
                    Problem::new(ErrorKind::Runtime, "Approval task store failure")
                        .with_detail(e.to_string()),
                ),
            }
        })
    }
}

struct Waiter<S> {
    store: Arc<S>,
    clock: Arc<dyn Clock>,
}

impl<S: DocStore> Waiter<S> {
    async fn run(&self, args: ApprovalArgs, id: &str) -> Result<Outcome, StoreError> {
        // Subscribed before the first read, so an answer committed after it is never missed.
        let mut sub = self
            .store
            .watch(&[(APPROVAL_KIND, KeyRange::Exact(id.to_string()))]);
        let mut doc = self.open_or_create(args, id).await?;
        loop {
            let task = task_of(&doc)?;
            if let Some(outcome) = task.outcome() {
                return Ok(outcome);
            }
            let now = self.clock.now_ms();
            let escalates = task.level + 1 < task.levels.len();
            let next = if now >= task.window_end_at_ms {
                self.close(task, doc.version).await?
            } else if escalates && now >= task.due_at_ms {
                self.escalate(task, doc.version, now).await?
            } else {
                let deadline = if escalates {
                    task.due_at_ms
                } else {
                    task.window_end_at_ms
                };
                tokio::select! {
                    r = sub.changed() => r?,
                    _ = self.clock.sleep_until(deadline) => {}
                }
                None
            };
            doc = match next {
                Some(d) => d,
                // Woken, or lost a write to another writer: read the task as it is now.
                None => self.store.doc(APPROVAL_KIND, id).await?.ok_or_else(|| {
                    corrupt(id, "the task document was deleted while its call waited")
                })?,
            };
        }
    }

    /// The task of this call: the existing one after a crash or retry (the same key), or a new
    /// one, durable before anyone is asked.
    async fn open_or_create(&self, args: ApprovalArgs, id: &str) -> Result<Doc, StoreError> {
        if let Some(d) = self.store.doc(APPROVAL_KIND, id).await? {
            return Ok(d);
        }
        let now = self.clock.now_ms();
        let window_end = now.saturating_add(args.window_ms);
        let due = due_time(
            &*self.store,
            args.due.as_ref(),
            &args.levels[0],
            now,
            window_end,
        )
        .await?;
        let task = ApprovalTask {
            id: id.to_string(),
            instance: args.instance,
            title: args.title,
            data: args.data,
            status: ApprovalStatus::Open,
            level: 0,
            assignees: args.levels[0].clone(),
            levels: args.levels,
            created_at_ms: now,
            offered_at_ms: now,
            due_at_ms: due,
            window_end_at_ms: window_end,
            due: args.due,
            on_window_end: args.on_window_end,
            escalations: Vec::new(),
            approved: None,
            verdict: None,
            decided_by: None,
            reason: None,
            decided_at_ms: None,
            output: None,
            answered_late: None,
            decision: args.decision,
            override_rule: args.override_rule,
            cost: args.cost,
            pending_override: None,
            refused_overrides: Vec::new(),
            confirmed_by: None,
            confirmed_at_ms: None,
            override_proposed_at_ms: None,
        };
        match write(&*self.store, &task, Expect::Absent).await {
            Ok(d) => Ok(d),
            // Another performer of the same call created it first: that one is the task.
            Err(StoreError::DocConflict { .. }) => self
                .store
                .doc(APPROVAL_KIND, id)
                .await?
                .ok_or_else(|| corrupt(id, "created and gone")),
            Err(e) => Err(e),
        }
    }

    /// Moves the task to the next level. `None` when another writer got there first.
    async fn escalate(
        &self,
        mut task: ApprovalTask,
        version: u64,
        now: u64,
    ) -> Result<Option<Doc>, StoreError> {
        let to_level = task.level + 1;
        let to = task.levels[to_level].clone();
        let due = due_time(
            &*self.store,
            task.due.as_ref(),
            &to,
            now,
            task.window_end_at_ms,
        )
        .await?;
        task.escalations.push(Escalation {
            from_level: task.level,
            to_level,
            from: task.assignees.clone(),
            to: to.clone(),
            at_ms: now,
            missed_due_at_ms: task.due_at_ms,
            due_at_ms: due,
        });
        task.level = to_level;
        task.assignees = to;
        task.offered_at_ms = now;
        task.due_at_ms = due;
        self.commit(&task, version).await
    }

    /// Ends the task at its window's end with the default answer, or expires it.
    async fn close(&self, mut task: ApprovalTask, version: u64) -> Result<Option<Doc>, StoreError> {
        let approved = match task.on_window_end {
            WindowEnd::Approve => Some(true),
            WindowEnd::Reject => Some(false),
            WindowEnd::Fail => None,
        };
        task.status = if approved.is_some() {
            ApprovalStatus::Defaulted
        } else {
            ApprovalStatus::Expired
        };
        task.verdict = approved.map(|_| Verdict::Defaulted);
        task.approved = approved;
        task.decided_by = Some(SYSTEM_ACTOR.into());
        task.reason = Some("window ended".into());
        task.decided_at_ms = Some(task.window_end_at_ms);
        task.answered_late = Some(true);
        self.commit(&task, version).await
    }

    async fn commit(&self, task: &ApprovalTask, version: u64) -> Result<Option<Doc>, StoreError> {
        match write(&*self.store, task, Expect::Version(version)).await {
            Ok(d) => Ok(Some(d)),
            Err(StoreError::DocConflict { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The inbox: lists, shows and answers approval tasks. Cheap to clone. Answers wake the waiting
/// call of the task through the store's watch, in whichever process it waits.
pub struct Approvals<S: Store> {
    store: Arc<S>,
    clock: Arc<dyn Clock>,
    /// Who may override what (empty: the plain rules).
    policy: Arc<OverridePolicy>,
}

impl<S: Store> Clone for Approvals<S> {
    fn clone(&self) -> Self {
        Approvals {
            store: self.store.clone(),
            clock: self.clock.clone(),
            policy: self.policy.clone(),
        }
    }
}

fn parse_cursor(c: &str) -> Result<(u64, String), ApprovalError> {
    c.split_once(':')
        .and_then(|(at, id)| Some((at.parse().ok()?, id.to_string())))
        .ok_or_else(|| ApprovalError::Invalid {
            why: format!("`{c}` is not a cursor of the approvals list"),
        })
}

impl<S: Store> Approvals<S> {
    pub fn new(store: Arc<S>, clock: Arc<dyn Clock>) -> Approvals<S> {
        Approvals {
            store,
            clock,
            policy: Arc::new(OverridePolicy::default()),
        }
    }

    /// The same inbox, answering overrides under `policy`.
    pub fn with_override_policy(mut self, policy: Arc<OverridePolicy>) -> Approvals<S> {
        self.policy = policy;
        self
    }

    /// The rule that applies to overriding `task` (the server's policy and the flow's own
    /// declaration combined), and the flow of its instance when known.
    pub async fn override_rule_for(
        &self,
        task: &ApprovalTask,
    ) -> Result<EffectiveRule, ApprovalError> {
        let flow = match &task.instance {
            Some(i) => self
                .store
                .instance(&InstanceId(i.clone()))
                .await?
                .map(|r| r.flow),
            None => None,
        };
        let (ns, name) = flow
            .as_ref()
            .map_or(("", ""), |f| (f.namespace.as_str(), f.name.as_str()));
        Ok(self
            .policy
            .effective(ns, name, task.decision_name(), task.override_rule.as_ref()))
    }

    /// Wakes whenever a task is created, escalated, answered, closed or removed, by this
    /// process or another over the same store (for live views).
    pub fn changes(&self) -> DocWatch {
        self.store.watch(&[(APPROVAL_KIND, KeyRange::All)])
    }

    pub async fn get(&self, id: &str) -> Result<ApprovalTask, ApprovalError> {
        Ok(self.task_doc(id).await?.1)
    }

    /// A task with the document it was read from (whose version a conditional write needs);
    /// `NotFound` when there is no such task.
    async fn task_doc(&self, id: &str) -> Result<(Doc, ApprovalTask), ApprovalError> {
        let doc = self
            .store
            .doc(APPROVAL_KIND, id)
            .await?
            .ok_or_else(|| ApprovalError::NotFound(id.to_string()))?;
        let task = task_of(&doc)?;
        Ok((doc, task))
    }

    /// Tasks by due time (earliest first unless `newest_first`), filtered as the query says.
    pub async fn list(&self, q: &ApprovalQuery) -> Result<Vec<ApprovalTask>, ApprovalError> {
        let limit = match q.limit {
            0 => DEFAULT_LIMIT,
            n => n.min(MAX_LIMIT),
        };
        let filtered = q.assignee.is_some() || q.instance.is_some();
        // Filters the store cannot apply are applied here, page by page, until the page is full.
        let page = if filtered {
            (limit * 4).clamp(64, MAX_LIMIT)
        } else {
            limit
        };
        let mut after = q.cursor.as_deref().map(parse_cursor).transpose()?;
        let mut out = Vec::new();
        loop {
            let docs = self
                .store
                .docs(
                    APPROVAL_KIND,
                    &DocQuery {
                        status: q.status.map(|s| s.as_str().to_string()),
                        newest_first: q.newest_first,
                        after: after.clone(),
                        limit: page,
                    },
                )
                .await?;
            let n = docs.len();
            for d in docs {
                after = Some((d.at_ms, d.id.clone()));
                let t = task_of(&d)?;
                if q.admits(&t) {
                    out.push(t);
                    if out.len() == limit {
                        return Ok(out);
                    }
                }
            }
            if n < page {
                return Ok(out);
            }
        }
    }

    /// Answers a task. The actor needs the approver role; unless an admin, it must be assigned
    /// (current or earlier level). Rejections and overrides need a reason. A task that is no
    /// longer open, whose window has ended, or whose instance has ended is a conflict. Of two
    /// answers at once exactly one is recorded: the write is conditional on the version read.
    pub async fn decide(
        &self,
        id: &str,
        actor: &Actor,
        answer: Answer,
        reason: Option<String>,
    ) -> Result<ApprovalTask, ApprovalError> {
        let reason = approver_reason(actor, reason)?;
        loop {
            let (doc, mut task) = self.task_doc(id).await?;
            // An override under a rule that names who may override is theirs to make, assigned
            // or not (a director is rarely in the dispatchers' inbox); any other answer is the
            // assignees'.
            let rule = match &answer {
                Answer::Override { .. } => {
                    let rule = self.override_rule_for(&task).await?;
                    rule.check_overrider(actor)
                        .map_err(|why| ApprovalError::Override {
                            refusal: OverrideRefusal::NotAllowed,
                            why,
                        })?;
                    Some(rule)
                }
                _ => None,
            };
            let named = rule
                .as_ref()
                .is_some_and(EffectiveRule::names_who_may_override);
            if !named && !actor.can(Role::Admin) && !task.is_assigned_to(&actor.name, &actor.groups)
            {
                return Err(ApprovalError::Forbidden {
                    why: format!(
                        "`{}` is not among the assignees ({})",
                        actor.name,
                        task.levels
                            .iter()
                            .take(task.level + 1)
                            .flatten()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
            match (&answer, &reason) {
                (Answer::Reject, None) => {
                    return Err(ApprovalError::Invalid {
                        why: "a rejection needs a reason".into(),
                    });
                }
                (Answer::Override { .. }, None) => {
                    return Err(ApprovalError::Invalid {
                        why: "an override needs a reason".into(),
                    });
                }
                _ => {}
            }
            if task.status == ApprovalStatus::Open
                && let Some(p) = &task.pending_override
            {
                return Err(ApprovalError::Override {
                    refusal: OverrideRefusal::Pending,
                    why: format!(
                        "an override by {} (at {}: {}) waits for its second approver; it must be confirmed or refused first",
                        p.by,
                        baton_core::time::iso8601_utc(p.at_ms),
                        p.reason
                    ),
                });
            }
            if task.status != ApprovalStatus::Open {
                return Err(ApprovalError::Conflict {
                    why: format!(
                        "the task is already {} (by {} at {}{})",
                        task.status.as_str(),
                        task.decided_by.as_deref().unwrap_or("?"),
                        task.decided_at_ms
                            .map(baton_core::time::iso8601_utc)
                            .unwrap_or_default(),
                        task.reason
                            .as_deref()
                            .map(|r| format!(": {r}"))
                            .unwrap_or_default()
                    ),
                });
            }
            let now = self.clock.now_ms();
            if now >= task.window_end_at_ms {
                return Err(ApprovalError::Conflict {
                    why: format!(
                        "the task's window ended at {}",
                        baton_core::time::iso8601_utc(task.window_end_at_ms)
                    ),
                });
            }
            if let Some(inst) = &task.instance
                && let Some(rec) = self
                    .store
                    .instance(&baton_core::InstanceId(inst.clone()))
                    .await?
                && rec.status.is_terminal()
            {
                return Err(ApprovalError::Conflict {
                    why: format!(
                        "instance {inst} has ended ({}): nothing waits for this answer",
                        rec.status.as_str()
                    ),
                });
            }
            if let (Answer::Override { output }, Some(rule)) = (&answer, &rule)
                && rule.needs_second_approver()
            {
                // Not in effect yet: the task stays open (the instance keeps waiting) until a
                // second person confirms or refuses.
                task.pending_override = Some(PendingOverride {
                    output: output.clone(),
                    reason: reason.clone().unwrap_or_default(),
                    by: actor.name.clone(),
                    at_ms: now,
                    second_approver: rule.second_approver.clone(),
                });
                match write(&*self.store, &task, Expect::Version(doc.version)).await {
                    Ok(_) => return Ok(task),
                    Err(StoreError::DocConflict { .. }) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            let (status, verdict, approved) = match &answer {
                Answer::Approve => (ApprovalStatus::Approved, Verdict::Approved, true),
                Answer::Reject => (ApprovalStatus::Rejected, Verdict::Rejected, false),
                Answer::Override { output } => {
                    task.output = Some(output.clone());
                    task.override_proposed_at_ms = Some(now);
                    (ApprovalStatus::Approved, Verdict::Overridden, true)
                }
            };
            task.status = status;
            task.verdict = Some(verdict);
            task.approved = Some(approved);
            task.decided_by = Some(actor.name.clone());
            task.reason = reason.clone();
            task.decided_at_ms = Some(now);
            task.answered_late = Some(now >= task.due_at_ms);
            match write(&*self.store, &task, Expect::Version(doc.version)).await {
                Ok(_) => return Ok(task),
                // Escalated, closed or answered meanwhile: check again against what it is now.
                Err(StoreError::DocConflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The second approver's answer to a pending override: `confirm` puts it in effect (the
    /// task is answered `overridden`, by the person who asked, confirmed by `actor`); a refusal
    /// (a reason is required) drops it and the task stays open for any other answer. The
    /// second approver must be another person than the one who asked, hold the approver role
    /// and be admitted by every `second_approver` list of the rule.
    pub async fn confirm_override(
        &self,
        id: &str,
        actor: &Actor,
        confirm: bool,
        reason: Option<String>,
    ) -> Result<ApprovalTask, ApprovalError> {
        let reason = approver_reason(actor, reason)?;
        loop {
            let (doc, mut task) = self.task_doc(id).await?;
            let Some(pending) = task.pending_override.clone() else {
                return Err(ApprovalError::Override {
                    refusal: OverrideRefusal::NothingPending,
                    why: format!(
                        "no override of `{}` waits for confirmation (the task is {})",
                        task.title,
                        task.status.as_str()
                    ),
                });
            };
            if pending.by == actor.name {
                return Err(ApprovalError::Override {
                    refusal: OverrideRefusal::SamePerson,
                    why: format!(
                        "`{}` asked for this override and cannot also confirm it: a second, different approver must",
                        actor.name
                    ),
                });
            }
            let rule = EffectiveRule {
                second_approver: pending.second_approver.clone(),
                ..EffectiveRule::default()
            };
            rule.check_second_approver(actor)
                .map_err(|why| ApprovalError::Override {
                    refusal: OverrideRefusal::NotSecondApprover,
                    why,
                })?;
            if !confirm && reason.is_none() {
                return Err(ApprovalError::Invalid {
                    why: "refusing an override needs a reason".into(),
                });
            }
            let now = self.clock.now_ms();
            if task.status != ApprovalStatus::Open || now >= task.window_end_at_ms {
                return Err(ApprovalError::Conflict {
                    why: format!(
                        "the task is {} (window end {}): the override can no longer take effect",
                        task.status.as_str(),
                        baton_core::time::iso8601_utc(task.window_end_at_ms)
                    ),
                });
            }
            task.pending_override = None;
            if confirm {
                task.status = ApprovalStatus::Approved;
                task.verdict = Some(Verdict::Overridden);
                task.approved = Some(true);
                task.output = Some(pending.output.clone());
                task.decided_by = Some(pending.by.clone());
                task.reason = Some(pending.reason.clone());
                task.decided_at_ms = Some(now);
                task.answered_late = Some(now >= task.due_at_ms);
                task.override_proposed_at_ms = Some(pending.at_ms);
                task.confirmed_by = Some(actor.name.clone());
                task.confirmed_at_ms = Some(now);
            } else {
                task.refused_overrides.push(RefusedOverride {
                    asked: pending,
                    refused_by: actor.name.clone(),
                    refused_at_ms: now,
                    refusal_reason: reason.clone().unwrap_or_default(),
                });
            }
            match write(&*self.store, &task, Expect::Version(doc.version)).await {
                Ok(_) => return Ok(task),
                Err(StoreError::DocConflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Closes the open tasks of an instance that has ended (cancelled, faulted, completed by
    /// another path): nothing waits for their answer any more, so they leave the inbox as
    /// `expired`, by Baton, with the reason. Returns how many were closed.
    pub async fn close_for_ended_instance(
        &self,
        instance: &str,
        status: baton_core::Status,
    ) -> Result<usize, ApprovalError> {
        let q = ApprovalQuery {
            status: Some(ApprovalStatus::Open),
            instance: Some(instance.to_string()),
            limit: MAX_LIMIT,
            ..ApprovalQuery::default()
        };
        let mut closed = 0;
        for open in self.list(&q).await? {
            let Some(doc) = self.store.doc(APPROVAL_KIND, &open.id).await? else {
                continue;
            };
            let mut task = task_of(&doc)?;
            if task.status != ApprovalStatus::Open {
                continue;
            }
            task.status = ApprovalStatus::Expired;
            task.decided_by = Some(SYSTEM_ACTOR.to_string());
            task.reason = Some(format!(
                "instance {instance} ended ({}) before an answer",
                status.as_str()
            ));
            task.decided_at_ms = Some(self.clock.now_ms());
            match write(&*self.store, &task, Expect::Version(doc.version)).await {
                Ok(_) => closed += 1,
                // Answered at the same moment: the answer stands.
                Err(StoreError::DocConflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(closed)
    }

    /// `(open, late)`: open tasks, and those of them past their due time (metrics).
    pub async fn due_counts(&self) -> Result<(u64, u64), ApprovalError> {
        let open = self
            .store
            .count_docs(APPROVAL_KIND, Some(ApprovalStatus::Open.as_str()))
            .await?;
        let now = self.clock.now_ms();
        let mut late = 0;
        let mut after = None;
        // Open tasks are listed by due time: the late ones are a prefix of the list.
        loop {
            let docs = self
                .store
                .docs(
                    APPROVAL_KIND,
                    &DocQuery {
                        status: Some(ApprovalStatus::Open.as_str().into()),
                        newest_first: false,
                        after,
                        limit: MAX_LIMIT,
                    },
                )
                .await?;
            let n = docs.len();
            for d in &docs {
                if d.at_ms > now {
                    return Ok((open, late));
                }
                late += 1;
            }
            match docs.last() {
                Some(d) if n == MAX_LIMIT => after = Some((d.at_ms, d.id.clone())),
                _ => return Ok((open, late)),
            }
        }
    }
}
